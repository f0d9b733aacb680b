"""The codec endpoint the Temporal Web UI calls to show encrypted payloads in clear.

Protocol of Temporal's remote codec servers: POST {"payloads": [...]} (proto JSON of
temporal.api.common.v1.Payloads) to .../encode or .../decode; same shape back. Only the last
path segment names the direction, so the endpoint may sit at any depth.

Decoding shows any user's payloads, so it is an operator's tool, behind auth in every
environment: an admin's bearer token, or the codec token (AMBIENT_CODEC_TOKEN) for a Web UI that
cannot send our tokens — `temporal server start-dev` has no setting for a header, so the UI is
pointed at /codec/ui/{codec token} and the token travels in the path.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from ambient.codec import CodecKeyError
from ambient.settings import Settings
from ambient.temporal import payload_codec
from api.deps import SessionDep, StateDep, bearer, get_current_user, get_optional_user
from api.errors import answers, unauthorized
from api.security import is_one_of

router = APIRouter(prefix="/codec", tags=["codec"], responses=answers(403, 404))


async def _authorize(request: Request, settings: Settings, session: SessionDep) -> None:
    credentials = await bearer(request)  # the API's own reading of the header
    if credentials is None:
        raise unauthorized(
            "the codec needs an admin's bearer token or the codec token "
            "(the Web UI uses /codec/ui/{AMBIENT_CODEC_TOKEN})"
        )
    if is_one_of(credentials.credentials, [settings.codec_token]):
        return
    # An admin's token, read as every route reads one (401 for a token of no user).
    user = await get_current_user(await get_optional_user(request, session, credentials))
    if not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "decoding payloads shows every user's data: only admins use the codec",
        )


async def _transcode(direction: str, request: Request, settings: Settings) -> dict[str, Any]:
    if direction not in ("encode", "decode"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "use .../encode or .../decode")
    codec = payload_codec(settings)
    if codec is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "payload encryption is off (set AMBIENT_PAYLOAD_KEY)"
        )
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except (json_format.ParseError, UnicodeDecodeError) as exc:  # JSON is UTF-8 (RFC 8259)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"body is not Payloads JSON: {exc}"
        ) from None
    try:
        result = await getattr(codec, direction)(payloads.payloads)
    except (CodecKeyError, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return json_format.MessageToDict(Payloads(payloads=result))


@router.post("/ui/{token}/{direction}")
async def transcode_for_ui(
    token: str, direction: str, request: Request, state: StateDep
) -> dict[str, Any]:
    """Encode or decode for the Temporal Web UI, authorised by the codec token in the path."""
    if not is_one_of(token, [state.settings.codec_token]):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid codec token")
    return await _transcode(direction, request, state.settings)


@router.post("/{direction}")
async def transcode(
    direction: str, request: Request, state: StateDep, session: SessionDep
) -> dict[str, Any]:
    """Encode or decode payloads with the configured keys (an admin's or the codec token)."""
    await _authorize(request, state.settings, session)
    return await _transcode(direction, request, state.settings)
