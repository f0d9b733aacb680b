"""`ambient user`: register users, grant roles and permissions, manage API tokens.

Whoever runs these has the database in hand: the operator. Changes are audited with the actor
"operator"; the API and MCP check roles, this CLI is how the first admin comes to be.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from ambient.clients.notify.targets import TargetError, TargetPolicy
from ambient.commands import fail, parsed, print_json, run_in_session, table_of, terminal
from ambient.domain.field_errors import field_problems
from ambient.domain.users import (
    OPERATOR,
    Grant,
    Language,
    Role,
    RollbackPermission,
    UserCreate,
)
from ambient.grants import free_name
from ambient.push import save_push_config
from ambient.settings import Settings
from ambient.storage.audit import AuditRepository
from ambient.storage.models import AuditRecord, User
from ambient.storage.users import (
    SettingRefusedError,
    TokenChangedError,
    UserExistsError,
    UserRepository,
    user_public,
    user_subject,
)

app = typer.Typer(no_args_is_help=True)  # its help: ambient/cli_group.py LAZY
console = terminal()
T = TypeVar("T")


def _run(work: Callable[[UserRepository], Awaitable[T]]) -> T:
    try:
        return run_in_session(lambda session: work(UserRepository(session)))
    except TokenChangedError as exc:  # rotated elsewhere at once: said, nothing issued
        raise fail(str(exc)) from None


async def _existing(users: UserRepository, name: str) -> User:
    """The user named ``name``; without one, that said and exit 1."""
    user = await users.get(name)
    if user is None:
        raise fail(f"no user {name!r}")
    return user


@app.command()
def create(
    name: str,
    email: str | None = None,
    timezone: str | None = None,
    language: Annotated[
        Language | None,
        typer.Option(help="the pages' language; default: the server's AMBIENT_DEFAULT_LANGUAGE"),
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="an admin: registers users and grants permissions")
    ] = False,
    rollback: Annotated[
        RollbackPermission, typer.Option(help="rollback_permission for cluster changes")
    ] = RollbackPermission.DRY_RUN,
) -> None:
    """Register a user and print its API token (shown once)."""
    data = parsed(
        UserCreate,
        name=name,
        email=email,
        timezone=timezone,
        language=language,
        role=Role.ADMIN if admin else Role.MEMBER,
        rollback_permission=rollback,
    )

    async def work(users: UserRepository) -> tuple[tuple[str, str] | None, str]:
        # A name the settings give rights to, held as another's voiceprint id: cleared.
        held = await free_name(users.session, name, settings=Settings(), actor=OPERATOR)
        await users.name_held(name)
        return held, (await users.create(data))[1]

    try:
        held, token = _run(work)
    except UserExistsError:
        raise fail(f"user {name!r} already exists") from None
    except SettingRefusedError as exc:
        raise fail(str(exc)) from None
    if held is not None:
        holder, voiceprint = held
        said = f"cleared {holder}'s voiceprint id {voiceprint!r}: the settings give {name!r} rights"
        console.print(said, soft_wrap=True, markup=False)
    console.print(f"created {name}; API token: {token}", soft_wrap=True, markup=False)


@app.command()
def show(name: str) -> None:
    """Print a user's settings."""
    user = user_public(_run(lambda users: _existing(users, name)))
    cells = [[field, str(value)] for field, value in user.model_dump().items()]
    console.print(table_of([], cells, show_header=False, title=f"user {user.name}"))


@app.command()
def token(name: str) -> None:
    """Issue a new API token for a user; the old one, voice token, devices, 接入点 stop."""

    async def work(users: UserRepository) -> tuple[str, tuple[bool, int, int]]:
        new = await users.rotate_token(await _existing(users, name), actor=OPERATOR)
        return new, users.removed

    new, (voice, devices, endpoints) = _run(work)
    console.print(f"new API token for {name}: {new}", soft_wrap=True, markup=False)
    ended = [f"{devices} 小智 device(s)"] if devices else []
    ended += [f"{endpoints} xiaozhi.me endpoint(s)"] if endpoints else []
    ended += ["the voice token"] if voice else []
    if ended:
        said = f"also ended for {name}: {', '.join(ended)} (set up again with the new token)"
        console.print(said, soft_wrap=True, markup=False)


@app.command("voice-token")
def voice_token(
    name: str,
    revoke: Annotated[bool, typer.Option("--revoke", help="stop the one issued")] = False,
) -> None:
    """Issue a voice token for a user: it opens /mcp/voice only.

    For a 小智 server's settings file (docs/xiaozhi.md); the one before stops working."""

    async def work(users: UserRepository) -> str | None:
        user = await _existing(users, name)
        if revoke:
            return None if await users.revoke_voice_token(user, actor=OPERATOR) else ""
        return await users.rotate_voice_token(user, actor=OPERATOR)

    new = _run(work)
    said = (
        f"new voice token for {name} (opens /mcp/voice only): {new}"
        if new
        else f"{name}'s voice token revoked"
        if new is None
        else f"{name} had no voice token"
    )
    console.print(said, soft_wrap=True, markup=False)


@app.command()
def push(
    name: str,
    config: Annotated[
        str, typer.Option(help='JSON, e.g. {"channels": [{"type": "email", "target": "a@b.c"}]}')
    ],
) -> None:
    """Replace a user's push channels and quiet hours."""
    from ambient.domain.push import PushConfig, keeping

    try:
        sent = json.loads(config)
    except ValueError as exc:  # not JSON
        raise fail(f"push config not changed: {exc}", 2) from None

    async def work(users: UserRepository) -> PushConfig:
        user = await _existing(users, name)
        push = PushConfig.model_validate(sent, context=keeping(user.push_config))
        # The same target rules as every other door, for that user's role.
        policy = TargetPolicy.from_settings(Settings())
        await save_push_config(users.session, user, push, policy)
        return push

    try:
        push = _run(work)
    except ValidationError as exc:
        raise fail(f"push config not changed: {'; '.join(field_problems(exc))}", 2) from None
    except TargetError as exc:
        raise fail(f"push config not changed: {exc}", 2) from None
    print_json(console, push)


@app.command()
def grant(
    name: str,
    rollback: Annotated[
        RollbackPermission | None,
        typer.Option(help="rollback_permission: none, dry_run or execute"),
    ] = None,
    role: Annotated[Role | None, typer.Option(help="admin or member")] = None,
) -> None:
    """Grant a user a role and/or rollback permission (audited, old -> new)."""
    try:
        change = Grant(role=role, rollback_permission=rollback)
    except ValidationError:
        raise fail("nothing to grant: give --rollback and/or --role", 2) from None

    async def work(users: UserRepository) -> dict[str, dict[str, str]]:
        return await users.grant(await _existing(users, name), change, actor=OPERATOR)

    changes = _run(work)
    if not changes:
        console.print(f"{name}: unchanged", markup=False)
    for field, values in changes.items():
        console.print(f"{name}: {field} {values['old']} -> {values['new']}", markup=False)


JsonOption = Annotated[bool, typer.Option("--json", help="print JSON (whole values, no table)")]


@app.command("list")
def list_users(as_json: JsonOption = False) -> None:
    """Every user with role and rollback permission."""
    found = [user_public(user) for user in _run(lambda users: users.list_all())]
    if as_json:
        print_json(console, found)
        return
    cells = [[u.name, u.role, u.rollback_permission, u.email or ""] for u in found]
    console.print(table_of(["name", "role", "rollback_permission", "email"], cells))


@app.command()
def audit(name: str, as_json: JsonOption = False) -> None:
    """The audit log of a user's registration and grants, oldest first."""

    async def work(users: UserRepository) -> list[dict[str, Any]]:
        audit = AuditRepository(users.session)
        records: list[AuditRecord] = []
        while page := await audit.list(
            subject=user_subject(name), limit=1000, after=records[-1].id if records else None
        ):
            records += page
        return [
            {
                "at": r.created_at.isoformat(timespec="seconds"),
                "actor": r.actor,
                "action": r.action,
                "detail": r.detail,
            }
            for r in records
        ]

    rows = _run(work)
    if as_json:
        console.print_json(data=rows)
        return
    # Details quote what people typed (an endpoint URL, a refusal): table_of shows them as text.
    cells = [
        [r["at"], r["actor"], r["action"], json.dumps(r["detail"], ensure_ascii=False)]
        for r in rows
    ]
    console.print(table_of(["at", "actor", "action", "detail"], cells))
