"""Granting roles and rollback permission: who may, checked here for every door.

The API (PATCH /users/{name}/permissions) and the MCP tool (grant_permission) both call
``grant``; neither decides who may grant. Registering a user is a grant too: the API and the
page's open registration call ``register``. An admin grants to another user (two people for
every grant, which also keeps the last admin from demoting themselves); anyone else is
refused, and the refusal is audited and committed (it is the record). The operator's
``ambient user grant`` on the server is the way the first admin comes to be and is not a door
of this service.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ambient.domain.users import GRANTED_FIELDS, Grant, Granted, UserCreate
from ambient.setting_types import ServerSecret
from ambient.settings import Settings
from ambient.storage.audit import AuditRepository
from ambient.storage.models import User
from ambient.storage.users import UserRepository, user_public, user_subject, voiceprint_taken

ADMIN_GRANTS = (
    "only an admin grants role and rollback_permission "
    "(PATCH /users/{name}/permissions, or `ambient user grant` on the server)"
)


class GrantRefusedError(Exception):
    """The caller may not make this grant; the refusal is audited."""


class GrantTargetNotFoundError(Exception):
    """No user of that name."""


class RegistrationRefusedError(Exception):
    """The caller may not register this user; ``needs_token``: no caller, and one is needed."""

    def __init__(self, message: str, *, needs_token: bool = False) -> None:
        super().__init__(message)
        self.needs_token = needs_token


async def refuse(
    session: AsyncSession, *, actor: str, subject: str, requested: dict[str, object], reason: str
) -> GrantRefusedError:
    """Audit a refused grant (committed: the refusal is the record) and build the error."""
    await AuditRepository(session).append(
        actor=actor,
        action="user.grant.refused",
        subject=user_subject(subject),
        detail={"requested": requested, "reason": reason},
    )
    await session.commit()
    return GrantRefusedError(reason)


async def grant(session: AsyncSession, caller: User, name: str, change: Grant) -> Granted:
    """Give ``name`` the role and/or permission of ``change``, as ``caller``; committed,
    with the changes made (old -> new; {} when already so)."""
    requested = change.model_dump(mode="json", exclude_none=True)
    name = caller.name if name == "me" else name  # as in /users/me: no user is named so
    reason = None
    if not caller.is_admin:
        reason = f"Only an admin may grant permissions ({caller.name!r} is a {caller.role}): "
        reason += ADMIN_GRANTS
    elif name == caller.name:
        reason = (
            "No one grants to themselves: ask another admin, or the operator "
            "(`ambient user grant` on the server)"
        )
    if reason is not None:
        raise await refuse(
            session, actor=caller.name, subject=name, requested=requested, reason=reason
        )
    users = UserRepository(session)
    target = await users.existing(name, GrantTargetNotFoundError(f"No user {name!r}."))
    changes = await users.grant(target, change, actor=caller.name)
    await session.commit()
    return Granted(user=user_public(target), changes=changes)


def named_in_settings(settings: Settings) -> set[str]:
    """The users the server's settings give rights to by name: the approvers of clusters'
    remediations, the users of server secrets, the nightly triage's user."""
    granted = [*settings.remediation_approvers.values(), [settings.remediation_triage_user or ""]]
    granted += [s.users for s in settings.secrets.values() if isinstance(s, ServerSecret)]
    return {name for names in granted for name in names if name}


def check_voiceprint(settings: Settings, voiceprint: str | None, name: str) -> None:
    """Refuse ``voiceprint`` as the voiceprint id of user ``name`` when it is another name the
    settings give rights to: it names its user as a name does, and so kept that name from
    being registered, by an admin too. Said as a voiceprint id someone has (nothing of what
    the settings give it). VoiceprintTakenError; every door's check (registration, settings)."""
    key = (voiceprint or "").lower()
    if key and key != name.lower() and key in {n.lower() for n in named_in_settings(settings)}:
        raise voiceprint_taken(voiceprint)


async def free_name(
    session: AsyncSession, name: str, *, settings: Settings, actor: str
) -> tuple[str, str] | None:
    """Before an admin or the operator registers ``name``, a name the settings give rights to:
    a voiceprint id another user holds that is ``name`` (taken before such ids were refused,
    or before the settings named it) is cleared, audited. Who held it and as what, else
    None."""
    if name not in named_in_settings(settings):
        return None
    return await UserRepository(session).release_voiceprint(name, actor=actor)


async def register(
    session: AsyncSession,
    caller: User | None,
    data: UserCreate,
    *,
    settings: Settings,
    token: str | None = None,
) -> tuple[User, str]:
    """Register ``data`` as ``caller``: an admin registers anyone; with open registration
    anyone registers a member with the default permission, under a name the settings give no
    rights to. No voiceprint id may be another name the settings give rights to; an admin
    registering such a name clears another's voiceprint id that is it (``free_name``). The
    user and its API token (UserExistsError if the name is taken); not committed."""
    if caller is not None and caller.is_admin:
        actor = caller.name
    elif settings.open_registration:
        defaults = UserCreate.model_fields
        if granted := [f for f in GRANTED_FIELDS if getattr(data, f) != defaults[f].default]:
            raise RegistrationRefusedError(
                f"open registration creates members with the default permission; {ADMIN_GRANTS} "
                f"(remove {', '.join(granted)})"
            )
        if data.name in named_in_settings(settings):
            # Whoever took it first would have had them, before its person was registered.
            raise RegistrationRefusedError(
                f"the server's settings give {data.name!r} rights open registration does not "
                "(AMBIENT_REMEDIATION_APPROVERS, AMBIENT_SECRETS or "
                "AMBIENT_REMEDIATION_TRIAGE_USER): an admin registers it"
            )
        actor = caller.name if caller is not None else "open-registration"
    elif caller is None:
        raise RegistrationRefusedError(
            "registering a user needs an admin's bearer token (open registration is off: "
            "AMBIENT_OPEN_REGISTRATION=false)",
            needs_token=True,
        )
    else:
        raise RegistrationRefusedError("only an admin registers users")
    check_voiceprint(settings, data.voiceprint_id, data.name)
    # Open registration never gets here with such a name (refused above).
    await free_name(session, data.name, settings=settings, actor=actor)
    if caller is not None and caller.is_admin:
        await UserRepository(session).name_held(data.name)
    return await UserRepository(session).create(data, actor=actor, token=token)
