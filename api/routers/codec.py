"""The codec endpoint the Temporal Web UI calls to show encrypted payloads in clear.

Protocol of Temporal's remote codec servers: POST {"payloads": [...]} (proto JSON of
temporal.api.common.v1.Payloads) to /codec/encode or /codec/decode; same shape back.
Outside development the caller needs a user's bearer token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from ambient.codec import CodecKeyError
from ambient.settings import Environment
from ambient.storage.repositories import UserRepository
from ambient.temporal import payload_codec
from api.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/codec", tags=["codec"])


async def _authorize(request: Request, settings: SettingsDep, session: SessionDep) -> None:
    if settings.environment is Environment.DEVELOPMENT:
        return
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").strip()
    if not token or await UserRepository(session).by_token(token) is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "codec needs a user's bearer token")


async def _payloads(request: Request) -> Payloads:
    try:
        return json_format.Parse(await request.body(), Payloads())
    except json_format.ParseError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"body is not Payloads JSON: {exc}"
        ) from None


@router.post("/{direction}")
async def transcode(
    direction: str, request: Request, settings: SettingsDep, session: SessionDep
) -> dict[str, Any]:
    """Encode or decode payloads with the configured keys."""
    if direction not in ("encode", "decode"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "use /codec/encode or /codec/decode")
    await _authorize(request, settings, session)
    codec = payload_codec(settings)
    if codec is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "payload encryption is off (set AMBIENT_PAYLOAD_KEY)"
        )
    payloads = await _payloads(request)
    try:
        if direction == "encode":
            result = await codec.encode(payloads.payloads)
        else:
            result = await codec.decode(payloads.payloads)
    except (CodecKeyError, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return json_format.MessageToDict(Payloads(payloads=result))
