"""Users' rows: accounts, their API tokens, settings, grants and voiceprints, given a session."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from ambient.domain.notify import redact_target
from ambient.domain.users import (
    BRIEFING_TIMES,
    CLEARABLE_SETTINGS,
    OPERATOR,
    Grant,
    UserCreate,
    UserPublic,
    UserSettings,
    briefing_times_refused,
)
from ambient.refusals import Refusal
from ambient.storage.audit import AuditRepository
from ambient.storage.db import Database, Repository, take_turn
from ambient.storage.models import VOICEPRINT_INDEX, User, XiaozhiDevice, XiaozhiEndpoint

TOKEN_PREFIX = "amb_"
VOICE_TOKEN_PREFIX = "ambv_"  # opens /mcp/voice only


class UserExistsError(Exception):
    """A user with that name is already registered."""


class SettingRefusedError(Exception):
    """A user's setting refused for the user's other settings or another user's (``field``
    names it); nothing changed."""

    def __init__(self, message: str | Refusal, field: str) -> None:
        super().__init__(message)
        self.field = field


class VoiceprintTakenError(SettingRefusedError):
    """A voiceprint id or new user name clashes with another user's (``field``: which one)."""


def _briefing_times_fit(current: dict[str, str], data: UserSettings) -> None:
    """The briefing times, as they would be stored, can make a briefing (else refused)."""
    given = data.model_dump(include=set(BRIEFING_TIMES), exclude_none=True)
    if (refused := briefing_times_refused({**current, **given}, set(given))) is not None:
        raise SettingRefusedError(refused[1], refused[0])


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_subject(name: str) -> str:
    """The audit subject of a user's permissions."""
    return f"user:{name}"


def user_public(user: User) -> UserPublic:
    """A user as readers (admins' listings, grants, /users/me) see it: push targets redacted
    (their keys stay with the owner's /users/me/push)."""
    public = UserPublic.model_validate(user, from_attributes=True)
    public.voice_token = user.voice_token_hash is not None
    channels = public.push_config.get("channels")
    if isinstance(channels, list):
        public.push_config["channels"] = [
            {**entry, "target": redact_target(str(entry.get("type")), entry["target"])}
            if isinstance(entry, dict) and isinstance(entry.get("target"), str)
            else entry
            for entry in channels
        ]
    return public


def voiceprint_taken(voiceprint: str | None, field: str = "voiceprint_id") -> VoiceprintTakenError:
    # Says what to do, not that another user has it, nor whether as a name or a voiceprint:
    # a member trying names learns no more of who is registered than any refused value tells.
    if field == "name":
        said = repr(voiceprint)
        refusal = Refusal("%(name)s cannot be used as a name: choose another", name=said)
    else:
        refusal = Refusal(
            "%(voiceprint)s cannot be used as a voiceprint id: choose another",
            voiceprint=repr(voiceprint),
        )
    return VoiceprintTakenError(refusal, field)


def _voiceprint_clash(exc: IntegrityError) -> bool:
    """The database refused a voiceprint id another user has (uq_users_voiceprint)."""
    return VOICEPRINT_INDEX in str(exc.orig)


def speaks_as(key: str) -> ColumnElement[bool]:
    """Users a voice named ``key`` is: their voiceprint id or name, whatever its case."""
    key = key.lower()
    return or_(func.lower(User.voiceprint_id) == key, func.lower(User.name) == key)


def voiced_by(key: str) -> ColumnElement[bool]:
    """Users a voice xiaozhi-server names ``key`` is, whatever its case: their voiceprint id,
    or the name of a user who has none. A user with a voiceprint id is that id alone: a voice
    it did not match, saying "我是frank", had the model name frank and acted as him."""
    key = key.lower()
    unset = or_(User.voiceprint_id.is_(None), User.voiceprint_id == "")
    return or_(func.lower(User.voiceprint_id) == key, and_(unset, func.lower(User.name) == key))


GRANT_TRIES = 10  # reads of a field that grants at once keep changing before one is set


class TokenChangedError(Exception):
    """A user's API token changed between its read and a token's write: nothing written."""


class UserRepository(Repository):
    # What the last rotate_token ended: the voice token (whether there was one), the 小智
    # devices and the 接入点 it removed.
    removed: tuple[bool, int, int] = (False, 0, 0)

    async def create(
        self, data: UserCreate, *, actor: str = OPERATOR, token: str | None = None
    ) -> tuple[User, str]:
        """Register a user, audited as ``actor``; its row and API token (shown once, hashed):
        ``token``, else a new one."""
        _briefing_times_fit(BRIEFING_TIMES, data)
        await self._voiceprint_free(data.voiceprint_id, data.name)
        # The name speaks for the user too: not if it is already someone else's voiceprint.
        await self._voiceprint_free(data.name, data.name, "name")
        token = token or new_api_token()
        fields = data.model_dump(exclude_none=True)
        user = User(api_token_hash=hash_token(token), push_config={}, **fields)
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            await self.session.rollback()
            if _voiceprint_clash(exc):  # taken by another registration or update meanwhile
                raise voiceprint_taken(data.voiceprint_id) from exc
            raise UserExistsError(data.name) from exc
        await AuditRepository(self.session).append(
            actor=actor,
            action="user.register",
            subject=user_subject(user.name),
            detail={"role": user.role, "rollback_permission": user.rollback_permission},
        )
        return user, token

    async def list_all(self) -> list[User]:
        return list(await self.session.scalars(select(User).order_by(User.name)))

    async def grant(self, user: User, grant: Grant, *, actor: str) -> dict[str, dict[str, str]]:
        """Change role and/or rollback permission (who may is ambient/grants.py's decision);
        the changes made, each audited old -> new ({}, nothing audited: already so)."""
        changes: dict[str, dict[str, str]] = {}
        for field, value in grant.model_dump(exclude_none=True).items():
            column = getattr(User, field)
            # Set only over the value read (compare and set): two grants at once each read the
            # same old value and audited "dry_run -> execute" twice, or answered "already so"
            # over a value another grant had just changed.
            for _ in range(GRANT_TRIES):
                old = await self.session.scalar(select(column).where(User.name == user.name))
                if old is None or old == value:
                    break
                done = await self.session.execute(
                    update(User)
                    .where(User.name == user.name, column == old)
                    .values({field: value})
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    changes[field] = {"old": old, "new": value}
                    break
        await self.session.refresh(user)
        if changes:
            await AuditRepository(self.session).append(
                actor=actor, action="user.grant", subject=user_subject(user.name), detail=changes
            )
        return changes

    async def get(self, name: str) -> User | None:
        return await self.session.scalar(select(User).where(User.name == name))

    async def existing(self, name: str, refusal: Exception) -> User:
        """The user named ``name``; without one, ``refusal`` is raised."""
        if (user := await self.get(name)) is None:
            raise refusal
        return user

    async def by_voiceprint(self, voiceprint: str) -> User | None:
        """The user with this voiceprint id, or of this name who set none (unique whatever its
        case, so matched so), as a voice tool's speaker is found (`voiced_by`)."""
        return await self.session.scalar(select(User).where(voiced_by(voiceprint.strip())))

    async def by_token(self, token: str) -> User | None:
        query = select(User).where(User.api_token_hash == hash_token(token))
        return await self.session.scalar(query)

    async def by_voice_token(self, token: str) -> User | None:
        """The user whose voice token this is: it opens the voice profile and nothing else."""
        query = select(User).where(User.voice_token_hash == hash_token(token))
        return await self.session.scalar(query)

    async def rotate_voice_token(self, user: User, *, actor: str | None = None) -> str:
        """A new voice token for ``user`` (shown once); the one before stops working.
        TokenChangedError: the API token changed since ``user`` was read (nothing written)."""
        token = VOICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self._tokens_swapped(user, voice_token_hash=hash_token(token))
        await self._token_audited(user, "user.voice_token.issued", actor)
        return token

    async def revoke_voice_token(self, user: User, *, actor: str | None = None) -> bool:
        """Whether ``user`` had a voice token; it stops working."""
        had, user.voice_token_hash = user.voice_token_hash is not None, None
        if had:
            await self._token_audited(user, "user.voice_token.revoked", actor)
        return had

    async def revoke_voice_token_of(self, caller: User, name: str) -> bool:
        """``name``'s voice token stopped by ``caller``: their own, or anyone's by an admin (a
        leaked 小智 settings file ended without the server's shell). Whether there was one;
        PermissionError for another's by a member, LookupError for no such user."""
        if name != caller.name and not caller.is_admin:
            raise PermissionError("only an admin stops another user's voice token")
        if (user := caller if name == caller.name else await self.get(name)) is None:
            raise LookupError(f"no user {name!r}")
        return await self.revoke_voice_token(user, actor=caller.name)

    async def _token_audited(
        self, user: User, action: str, actor: str | None, **detail: object
    ) -> None:
        """A token's change written and audited (never the token): by ``actor``, else the user."""
        await self.session.flush()
        await AuditRepository(self.session).append(
            actor=actor or user.name, action=action, subject=user_subject(user.name), detail=detail
        )

    async def update(self, user: User, data: UserSettings) -> None:
        """Change ``user``'s own settings (SettingRefusedError: nothing changed, rolled back)."""
        await self.check(user, data)
        for field, value in data.model_dump(exclude_unset=True).items():
            if value is not None or field in CLEARABLE_SETTINGS:
                setattr(user, field, value)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # Not a savepoint: on SQLite releasing one that began the transaction commits it.
            await self.session.rollback()
            await self.session.refresh(user)  # its stored values, not the refused ones
            if _voiceprint_clash(exc):  # another update took it after the check above
                raise voiceprint_taken(data.voiceprint_id) from exc
            raise

    async def check(self, user: User, data: UserSettings) -> None:
        """SettingRefusedError when ``data`` cannot be ``user``'s settings; changes nothing."""
        _briefing_times_fit({field: getattr(user, field) for field in BRIEFING_TIMES}, data)
        await self._voiceprint_free(data.voiceprint_id, user.name)

    async def _voiceprint_free(
        self, voiceprint: str | None, name: str, field: str = "voiceprint_id"
    ) -> None:
        # A speaker is found by voiceprint id or user name, case-insensitively
        # (ambient.speakers.resolve_speaker): one voice named twice answers to nobody.
        if voiceprint is None:
            return
        # Checked and written in turn across processes: a name registered on one API replica
        # while another's user took it as a voiceprint id (no index covers both) passed both
        # checks, and that voice answered to nobody.
        await take_turn(self.session, "user-names")
        query = select(User.id).where(User.name != name, speaks_as(voiceprint))
        if await self.session.scalar(query.limit(1)) is not None:
            raise voiceprint_taken(voiceprint, field)

    async def name_held(self, name: str) -> None:
        """Refuse registering ``name`` where another user's voiceprint id is it, naming that
        user: for an admin or the operator, who may read every user (the neutral "choose
        another" left them to search for why a colleague's name could not be registered)."""
        held_as = func.lower(User.voiceprint_id) == name.lower()
        holder = await self.session.scalar(select(User).where(User.name != name, held_as))
        if holder is not None:
            refusal = Refusal(
                "%(name)s is %(holder)s's voiceprint id: clear or change that voiceprint id "
                "first, or choose another name",
                name=repr(name),
                holder=holder.name,
            )
            raise VoiceprintTakenError(refusal, "name")

    async def release_voiceprint(self, name: str, *, actor: str) -> tuple[str, str] | None:
        """Clear another user's voiceprint id that is ``name`` (in any case), audited as
        ``actor``: who held it and as what, None when no one did. For a name the server's
        settings give rights to, being registered (ambient.grants.free_name)."""
        held_as = func.lower(User.voiceprint_id) == name.lower()
        query = select(User).where(User.name != name, held_as)
        holder = await self.session.scalar(query.limit(1))
        if holder is None:
            return None
        held = holder.voiceprint_id or ""
        holder.voiceprint_id = None
        await self.session.flush()
        await AuditRepository(self.session).append(
            actor=actor,
            action="user.voiceprint.cleared",
            subject=user_subject(holder.name),
            detail={"voiceprint_id": held, "registered": name},
        )
        return holder.name, held

    async def rotate_token(self, user: User, *, actor: str | None = None) -> str:
        """A new API token for ``user`` (shown once): the one before stops working, and so does
        all it could open that acts as the user (a leak's remedy ends them): the voice token,
        the 小智 devices' tokens and the xiaozhi.me 接入点 (a leak's own 接入点 kept serving
        approvals as the user; the bridge lets go of a removed one at its next scan)."""
        token = new_api_token()
        had_voice = user.voice_token_hash is not None
        await self._tokens_swapped(user, api_token_hash=hash_token(token), voice_token_hash=None)
        ended = []
        for table in (XiaozhiDevice, XiaozhiEndpoint):
            gone = await self.session.execute(delete(table).where(table.user == user.name))
            ended.append(cast(CursorResult[Any], gone).rowcount)
        # What the rotation ended, for the caller to tell (the audit keeps it too).
        devices, endpoints = ended
        self.removed = (had_voice, devices, endpoints)
        await self._token_audited(
            user,
            "user.token.rotated",
            actor,
            voice_token_revoked=had_voice,
            devices_removed=devices,
            endpoints_removed=endpoints,
        )
        return token

    async def _tokens_swapped(self, user: User, **hashes: str | None) -> None:
        """Write the token ``hashes`` of ``user`` while its API token is the one read with it:
        a leaked token's voice token issued as its owner rotated it was written after the
        rotation and worked on, and of two rotations at once both answered a token, one dead.
        TokenChangedError otherwise, nothing written."""
        swapped = await self.session.execute(
            update(User)
            .where(User.id == user.id, User.api_token_hash == user.api_token_hash)
            .values(**hashes)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], swapped).rowcount != 1:
            raise TokenChangedError(
                f"{user.name}'s API token was rotated elsewhere at the same moment: nothing was "
                "issued; run it again"
            )
        for name, value in hashes.items():
            set_committed_value(user, name, value)

    async def set_token(self, user: User, token: str) -> None:
        user.api_token_hash = hash_token(token)
        await self.session.flush()

    async def set_push_config(self, user: User, config: dict[str, Any]) -> None:
        user.push_config = config
        await self.session.flush()


async def user_named(db: Database, name: str) -> User | None:
    """The user named ``name`` (None: no such user), read in a session of its own."""
    async with db.session() as session:
        return await UserRepository(session).get(name)


def not_registered(name: str) -> str:
    """The one refusal of a name no user has, in every door's words."""
    return f"no user {name!r}: an admin registers it (ambient user create {name})"


async def registered(db: Database, name: str, refusal: Callable[[str], Exception]) -> User:
    """The user named ``name``; without one, ``refusal`` saying how to register: work made for
    nobody would run unseen, delivered to no one."""
    if (user := await user_named(db, name)) is None:
        raise refusal(not_registered(name))
    return user
