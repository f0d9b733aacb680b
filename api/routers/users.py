"""Users: register (admins, or anyone behind open registration), settings, grants, tokens.

Roles and permissions are granted, never taken: `PATCH /users/me` refuses them, and
`PATCH /users/{name}/permissions` is for admins acting on someone else. Every grant, and every
refused attempt to grant, is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from ambient import grants
from ambient.clients.notify.targets import TargetError
from ambient.domain.notify import MAX_TARGETS
from ambient.domain.push import PushChannelSent, PushConfig, keeping, stored_push_config
from ambient.domain.users import (
    GRANTED_FIELDS,
    Grant,
    Granted,
    Role,
    RollbackPermission,
    UserCreate,
    UserPublic,
    UserSettings,
)
from ambient.push import save_push_config
from ambient.storage.users import (
    SettingRefusedError,
    TokenChangedError,
    UserExistsError,
    UserRepository,
    user_public,
)
from ambient.user_settings import save_settings
from api.deps import INVALID_TOKEN, AdminUser, CurrentUser, OptionalUser, SessionDep, StateDep
from api.errors import answers, unauthorized, unprocessable

router = APIRouter(prefix="/users", tags=["users"], responses=answers(403, 404, 409))


class Registered(BaseModel):
    user: UserPublic
    token: str


class Token(BaseModel):
    token: str
    # A rotation's: the 小智 devices and xiaozhi.me 接入点 it removed (added again with the
    # new token: a leaked token could have made them).
    voice_token_revoked: bool = False
    devices_removed: int = 0
    endpoints_removed: int = 0


class SelfUpdate(UserSettings):
    """What PATCH /users/me accepts. The granted fields are named only to refuse them clearly."""

    role: Role | None = Field(default=None, description="refused (403): only an admin grants it")
    rollback_permission: RollbackPermission | None = Field(
        default=None, description="refused (403): only an admin grants it"
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def register(
    data: UserCreate, caller: OptionalUser, state: StateDep, session: SessionDep
) -> Registered:
    """Register a user (admins; anyone as a member with AMBIENT_OPEN_REGISTRATION=true).

    The API token in the answer is shown once.
    """
    try:
        user, token = await grants.register(session, caller, data, settings=state.settings)
    except grants.RegistrationRefusedError as exc:
        if exc.needs_token:
            raise unauthorized(str(exc)) from None
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except UserExistsError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"user {data.name!r} already exists"
        ) from None
    except SettingRefusedError as exc:
        given = getattr(data, exc.field)
        raise unprocessable(([exc.field], str(exc)), given=given) from None
    await session.commit()
    return Registered(user=user_public(user), token=token)


@router.get("")
async def list_users(_: AdminUser, session: SessionDep) -> list[UserPublic]:
    """Every user (admins only; a member reads only itself at /users/me)."""
    return [user_public(user) for user in await UserRepository(session).list_all()]


@router.get("/me")
async def read_me(user: CurrentUser) -> UserPublic:
    return user_public(user)


@router.patch("/me")
async def update_me(
    data: SelfUpdate, user: CurrentUser, session: SessionDep, state: StateDep
) -> UserPublic:
    """Change your settings: email, phone, wake words, time zone, briefing window...

    Role and rollback permission are refused with 403 and nothing changes.
    """
    granted = sorted(set(GRANTED_FIELDS) & data.model_fields_set)
    if granted:
        # Audited as the service records a refused grant, then the 403.
        refused = await grants.refuse(
            session,
            actor=user.name,
            subject=user.name,
            requested=data.model_dump(mode="json", include=set(granted)),
            reason=f"you cannot change your own {', '.join(granted)}: {grants.ADMIN_GRANTS}",
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused))
    wanted = UserSettings.model_validate(
        data.model_dump(exclude_unset=True, exclude=set(GRANTED_FIELDS))
    )
    # The user was loaded in this request's session (FastAPI shares the dependency).
    try:
        await save_settings(
            session, user, wanted, state.briefings, settings=state.settings, tasks=state.tasks
        )
    except SettingRefusedError as exc:
        raise unprocessable(([exc.field], str(exc)), given=getattr(wanted, exc.field)) from None
    return user_public(user)


@router.post("/me/token")
async def rotate_token(user: CurrentUser, session: SessionDep) -> Token:
    """Issue a new API token; the old one stops working, and so do your voice token, 小智
    devices and xiaozhi.me 接入点 (counted in the answer: add them again)."""
    users = UserRepository(session)
    with _still_current():
        token = await users.rotate_token(user)
    await session.commit()
    voice, devices, endpoints = users.removed
    return Token(
        token=token,
        voice_token_revoked=voice,
        devices_removed=devices,
        endpoints_removed=endpoints,
    )


@router.post("/me/voice-token")
async def rotate_voice_token(user: CurrentUser, session: SessionDep) -> Token:
    """Issue a voice token: it opens /mcp/voice only, as you (for a 小智 server's settings
    file, docs/xiaozhi.md); the one before stops working."""
    with _still_current():
        token = await UserRepository(session).rotate_voice_token(user)
    await session.commit()
    return Token(token=token)


@contextmanager
def _still_current() -> Iterator[None]:
    """A token issued only while the caller's token is still theirs: rotated meanwhile (by a
    request at once, their own or a leak's), the token they sent is invalid now."""
    try:
        yield
    except TokenChangedError:
        raise unauthorized(INVALID_TOKEN) from None


@router.delete("/me/voice-token", status_code=204)
async def revoke_voice_token(user: CurrentUser, session: SessionDep) -> None:
    """Stop your voice token (nothing to stop is no error)."""
    await UserRepository(session).revoke_voice_token(user)
    await session.commit()


@router.delete("/{name}/voice-token", status_code=204)
async def revoke_users_voice_token(
    name: Annotated[str, Path(max_length=63)], user: CurrentUser, session: SessionDep
) -> None:
    """Stop a user's voice token: your own, or anyone's as an admin (audited)."""
    try:
        await UserRepository(session).revoke_voice_token_of(user, name)
    except PermissionError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    await session.commit()


@router.get("/me/push")
async def read_push_config(user: CurrentUser) -> PushConfig:
    # Saved before a rule was added still reads; sending reports what no longer passes.
    return stored_push_config(user.push_config)


class PushConfigSent(PushConfig):
    """A push config as sent: its channels' forms are checked against the stored config."""

    channels: list[PushChannelSent] = Field(default_factory=list, max_length=MAX_TARGETS)  # type: ignore[assignment]


@router.put("/me/push")
async def set_push_config(
    sent: PushConfigSent, user: CurrentUser, session: SessionDep, state: StateDep
) -> PushConfig:
    """Replace the caller's push channels and quiet hours (the same target rules as sending:
    your own inbox only, secrets you may use, public addresses)."""
    try:
        # A channel sent back as stored is kept, however a rule added since reads it.
        raw = sent.model_dump(exclude_unset=True)
        config = PushConfig.model_validate(raw, context=keeping(user.push_config))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    try:
        await save_push_config(session, user, config, state.channels.policy)
    except TargetError as exc:
        raise unprocessable((exc.loc, str(exc))) from None
    await session.commit()
    return config


@router.get("/{name}")
async def read_user(
    name: Annotated[str, Path(max_length=63)], user: CurrentUser, session: SessionDep
) -> UserPublic:
    """A user's settings; members read only their own, admins anyone's."""
    if name == user.name:
        return user_public(user)
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you can read only your own user")
    refusal = HTTPException(status.HTTP_404_NOT_FOUND, f"no user {name!r}")
    return user_public(await UserRepository(session).existing(name, refusal))


@router.patch("/{name}/permissions")
async def grant(
    name: Annotated[str, Path(max_length=63)], data: Grant, user: CurrentUser, session: SessionDep
) -> Granted:
    """Grant another user a role and/or rollback permission (admins; audited old -> new)."""
    # Who may grant is decided (and a refusal audited) by the service, as for every door.
    try:
        return await grants.grant(session, user, name, data)
    except grants.GrantRefusedError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except grants.GrantTargetNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
