"""`ambient user`: register users and manage their API tokens from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from ambient.domain.users import UserCreate, UserPublic
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import UserExistsError, UserRepository, user_public

app = typer.Typer(help="Users and their API tokens.", no_args_is_help=True)
console = Console()
T = TypeVar("T")


def _run(work: Callable[[UserRepository], Awaitable[T]]) -> T:
    async def main() -> T:
        settings = Settings()
        await upgrade_async(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        try:
            async with db.session() as session:
                result = await work(UserRepository(session))
                await session.commit()
                return result
        finally:
            await db.close()

    return asyncio.run(main())


def _show(user: UserPublic) -> None:
    table = Table(show_header=False, title=f"user {user.name}")
    for field, value in user.model_dump().items():
        table.add_row(field, str(value))
    console.print(table)


@app.command()
def create(
    name: str,
    email: Annotated[str | None, typer.Option()] = None,
    timezone: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Register a user and print its API token (shown once)."""
    try:
        data = UserCreate(name=name, email=email, timezone=timezone)
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]{'.'.join(map(str, error['loc']))}: {error['msg']}[/]")
        raise typer.Exit(2) from None

    async def work(users: UserRepository) -> str:
        _, token = await users.create(data)
        return token

    try:
        token = _run(work)
    except UserExistsError:
        console.print(f"[red]user {name!r} already exists[/]")
        raise typer.Exit(1) from None
    console.print(f"created {name}; API token: {token}", soft_wrap=True)


@app.command()
def show(name: str) -> None:
    """Print a user's settings."""

    async def work(users: UserRepository) -> UserPublic | None:
        user = await users.get(name)
        return None if user is None else user_public(user)

    user = _run(work)
    if user is None:
        console.print(f"[red]no user {name!r}[/]")
        raise typer.Exit(1)
    _show(user)


@app.command()
def token(name: str) -> None:
    """Issue a new API token for a user; the old one stops working."""

    async def work(users: UserRepository) -> str | None:
        user = await users.get(name)
        return None if user is None else await users.rotate_token(user)

    new = _run(work)
    if new is None:
        console.print(f"[red]no user {name!r}[/]")
        raise typer.Exit(1)
    console.print(f"new API token for {name}: {new}", soft_wrap=True)


@app.command()
def push(
    name: str,
    config: Annotated[
        str, typer.Option(help='JSON, e.g. {"channels": [{"type": "email", "target": "a@b.c"}]}')
    ],
) -> None:
    """Replace a user's push channels and quiet hours."""
    import json

    from ambient.domain.push import PushConfig

    try:
        parsed = PushConfig.model_validate(json.loads(config))
    except (ValueError, ValidationError) as exc:
        console.print(f"[red]push config not changed: {exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None

    async def work(users: UserRepository) -> bool:
        user = await users.get(name)
        if user is None:
            return False
        await users.set_push_config(user, parsed.model_dump(mode="json"))
        return True

    if not _run(work):
        console.print(f"[red]no user {name!r}[/]")
        raise typer.Exit(1)
    console.print_json(parsed.model_dump_json())
