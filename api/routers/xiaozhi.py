"""小智: the context provider xiaozhi-server calls at every wake, the devices behind it, and the
xiaozhi.me 接入点 the bridge dials (owner or admin)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Header, Path, Query, status
from fastapi.responses import JSONResponse
from pydantic import Field

from ambient.bridge.endpoints import (
    EndpointCreate,
    EndpointError,
    EndpointInputError,
    EndpointNotFoundError,
    EndpointPermissionError,
    EndpointPublic,
    Endpoints,
)
from ambient.domain.configs import UserConfig
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.status import database_down, problem_told
from ambient.storage.models import MAX_ID
from ambient.storage.users import user_named
from ambient.xiaozhi_context import voice_facts
from ambient.xiaozhi_errors import (
    AmbiguousDeviceError,
    DeviceError,
    DeviceNotFoundError,
    DeviceRefusedError,
    InvalidDeviceError,
    UnknownOwnerError,
    UnregisteredUserError,
)
from ambient.xiaozhi_views import DeviceAdded, DeviceConsent, DeviceView, Withdrawals
from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import answers, refusal, unprocessable

STATUSES = {DeviceNotFoundError: 404, DeviceRefusedError: 403}

ENDPOINT_STATUSES = {EndpointPermissionError: 403, EndpointNotFoundError: 404}

router = APIRouter(prefix="/xiaozhi", tags=["xiaozhi"], responses=answers(*STATUSES.values(), 502))
endpoints_router = APIRouter(
    prefix="/xiaozhi/endpoints",
    tags=["xiaozhi"],
    responses=answers(*ENDPOINT_STATUSES.values(), 502),
)

Changed = TypeVar("Changed", DeviceView, Withdrawals)

# xiaozhi-server waits 3 s and then goes on without the context: answer well before that.
CONTEXT_BUDGET = 1.0


def _context_error(code: int, message: str) -> JSONResponse:
    # xiaozhi-server reads the body of a 200 only: it uses `data` when `code` is 0 and logs
    # `msg` otherwise (a non-200 is logged as a bare status). So the reason goes in `msg`.
    return JSONResponse({"code": code, "msg": message})


@router.get("/context")
# xiaozhi-server's GET follows no redirect: the url as pasted, trailing slash or not, answers.
@router.get("/context/", include_in_schema=False)
async def context(
    state: StateDep,
    device_id: Annotated[str | None, Header(alias="device-id")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Facts for the device's user, as `{"code":0,"data":{...}}` (xiaozhi-server's shape)."""
    if not device_id:
        return _context_error(400, "missing device-id header")
    # The scheme is case-insensitive (RFC 9110), as HTTPBearer reads it at every other door.
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else (authorization or "").strip()
    if not token:
        return _context_error(401, "send the device token: Authorization: Bearer <token>")
    try:
        async with asyncio.timeout(CONTEXT_BUDGET):
            try:
                device = await state.devices.authenticate(device_id, token)
            except (DeviceRefusedError, DeviceNotFoundError) as exc:
                return _context_error(401, str(exc))
            user = await user_named(state.db, device.user)
            if user is None:
                return _context_error(404, "the device's user no longer exists")
            facts = await voice_facts(
                state.db,
                user,
                state.remediations,
                briefings=state.briefings,
                budget=CONTEXT_BUDGET / 2,
                default_language=state.settings.default_language,
            )
    except TimeoutError:
        return _context_error(503, "context not ready in time")
    except Exception as exc:  # the database down: said in msg too, not as a bare status
        if not database_down(exc):
            raise
        # A device is no operator: what is down in a user's terms (the log keeps where).
        return _context_error(503, problem_told(exc, state.settings, operator=False) or "")
    return JSONResponse({"code": 0, "data": facts.model_dump()})


class DeviceIn(UserConfig):
    device_id: str = Field(max_length=64, description="the device's MAC (xiaozhi `device-id`)")
    user: str | None = Field(default=None, max_length=63, description="default: yourself")
    speakers: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list, max_length=20, description="other users who allow this device"
    )


# The refusals no field is to blame for; any other DeviceError names a field.


def http_error(exc: DeviceError) -> Exception:
    if isinstance(exc, tuple(STATUSES)):
        return refusal(exc, STATUSES)
    if isinstance(exc, AmbiguousDeviceError):  # every route names its device by the path's ref
        return unprocessable((["ref"], str(exc)), where="path", given=exc.ref)
    if isinstance(exc, UnregisteredUserError):  # its words name no field: it carries it
        return unprocessable(([exc.field], str(exc)))
    field = str(exc).split(":", 1)[0]
    where = field if field in DeviceIn.model_fields else "device_id"
    return unprocessable(([where], str(exc)))


@router.post("/devices", status_code=status.HTTP_201_CREATED)
async def add_device(body: DeviceIn, state: StateDep, caller: CurrentUser) -> DeviceAdded:
    """Register a device (yours, or anyone's for an admin); the token is shown once."""
    return await state.devices.add(
        caller.name, body.user or caller.name, body.device_id, speakers=body.speakers
    )


@router.post("/devices/{ref}/allow")
async def allow_device(ref: str, state: StateDep, caller: CurrentUser) -> DeviceConsent:
    """Let this device answer you by your voiceprint (your own briefing, tasks, approvals)."""
    return await state.devices.allow(caller.name, ref)


@router.delete("/devices/{ref}/allow")
async def disallow_device(ref: str, state: StateDep, caller: CurrentUser) -> DeviceConsent:
    """Stop this device answering you by voiceprint."""
    return await state.devices.allow(caller.name, ref, allowed=False)


@router.delete("/devices/{ref}/speakers/{name}")
async def withdraw_speaker(ref: str, name: str, state: StateDep, caller: CurrentUser) -> DeviceView:
    """Stop your device answering another user who allowed it (theirs to give, yours to end)."""
    return await _named_in_path(state.devices.withdraw(caller.name, ref, name), name)


@router.delete("/devices/{ref}/withdrawn/{name}")
async def let_speaker_back(ref: str, name: str, state: StateDep, caller: CurrentUser) -> DeviceView:
    """Let a user whose consent you withdrew allow your device again (theirs to give again)."""
    return await _named_in_path(state.devices.let_back(caller.name, ref, name), name)


@router.get("/withdrawn")
async def list_withdrawn(state: StateDep, caller: CurrentUser) -> list[Withdrawals]:
    """Whom your devices may not answer until let back, devices or none (an admin: everyone's)."""
    return await state.devices.withdrawals(caller.name)


@router.delete("/withdrawn/{name}")
async def let_withdrawn_back(
    name: str,
    state: StateDep,
    caller: CurrentUser,
    user: Annotated[
        str | None, Query(min_length=1, max_length=63, description="the owner; default: you")
    ] = None,
) -> Withdrawals:
    """Let back a user withdrawn from your devices, naming none (an admin names the ``user``)."""
    owner = caller.name if user is None else user
    return await _named_in_path(state.devices.let_back_from(caller.name, owner, name), name)


async def _named_in_path(change: Awaitable[Changed], name: str) -> Changed:
    """A change of the user ``name`` (on a device, or the owner's): refusals at the path's parts."""
    try:
        return await change
    except AmbiguousDeviceError as exc:
        raise http_error(exc) from None
    except UnknownOwnerError as exc:  # the owner the query named, before the name is looked at
        raise unprocessable((["user"], str(exc)), where="query", given=exc.owner) from None
    except InvalidDeviceError as exc:  # no body: the name in the path is what was refused
        raise unprocessable((["name"], str(exc)), where="path", given=name) from None


@router.get("/devices")
async def list_devices(state: StateDep, caller: CurrentUser) -> list[DeviceView]:
    return await state.devices.list(caller.name)


@router.delete("/devices/{ref}")
async def remove_device(ref: str, state: StateDep, caller: CurrentUser) -> DeviceView:
    return await state.devices.remove(caller.name, ref)


# The refusals no field is to blame for (every EndpointError is one of these or a field's).


def endpoint_error(exc: EndpointError) -> Exception:
    if isinstance(exc, EndpointInputError):
        return unprocessable(([exc.field], exc.message))
    return refusal(exc, ENDPOINT_STATUSES)


@endpoints_router.post("", status_code=status.HTTP_201_CREATED)
async def add_endpoint(
    body: EndpointCreate, user: CurrentUser, session: SessionDep, state: StateDep
) -> EndpointPublic:
    """Register a 接入点 URL for ``user`` (yourself, or anyone as an admin); dialed within 5 s."""
    return await Endpoints.of(session, state.settings).add(user, body)


@endpoints_router.get("")
async def list_endpoints(
    user: CurrentUser, session: SessionDep, state: StateDep
) -> list[EndpointPublic]:
    """Your endpoints (an admin sees all) with their state; tokens masked."""
    return await Endpoints.of(session, state.settings).list(user)


@endpoints_router.delete("/{endpoint_id}")
async def remove_endpoint(
    endpoint_id: Annotated[int, Path(ge=1, le=MAX_ID), WHOLE_NUMBER],
    user: CurrentUser,
    session: SessionDep,
    state: StateDep,
) -> EndpointPublic:
    """Remove an endpoint; its connection is closed within 5 s."""
    return await Endpoints.of(session, state.settings).remove(user, endpoint_id)
