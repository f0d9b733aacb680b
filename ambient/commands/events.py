"""`ambient events`, `ambient inbox`, `ambient deliveries`: what happened and what was sent.

Run by the operator (the database in hand): any user's records, everyone's when no user is
named. `--json` prints the same records the API and the MCP tools return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import typer
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from ambient import history
from ambient.cli_numbers import whole_number
from ambient.commands import (
    Json,
    cell,
    echo_json,
    err_console,
    fail,
    run_in_session,
    table_of,
    terminal,
)
from ambient.history import DeliveryPublic, EventPublic, InboxMessagePublic
from ambient.storage.models import MAX_ID, next_before

User = Annotated[str | None, typer.Option("--user", help="only this user's (default: everyone's)")]
Limit = Annotated[
    int, typer.Option(parser=whole_number(1, 1000), help="at most this many, newest first")
]
BeforeId = Annotated[
    int | None,
    typer.Option(parser=whole_number(1, MAX_ID), help="next page: the last id shown"),
]


Reads = Callable[[AsyncSession], Awaitable[Sequence[BaseModel]]]


def _print(read: Reads, as_json: bool, columns: list[str], title: str, limit: int) -> None:
    """The first ``limit`` rows ``read`` reads (one past it: is there a next page?); a next page
    is said on stderr under a table, where a script's JSON or a pipe's lines stay as they are."""
    try:
        rows = run_in_session(read)
    except history.FilterError as exc:
        raise fail(f"--{exc}", 2) from None
    shown, more = rows[:limit], next_before(rows, limit)
    if as_json:
        echo_json(shown)
        return
    console = terminal()  # made now: sized to the terminal (or COLUMNS) of this run
    # Ids, tasks and errors are never cut: they are what the user copies.
    dumped = [row.model_dump(mode="json") for row in shown]
    if not shown:
        console.print(f"no {title}")
    elif not console.is_terminal:  # a pipe's lines: one a row, tab-separated, nothing folded
        for data in dumped:
            # A receiver's error may hold line breaks and tabs: a row stays one line.
            line = (" ".join(cell(data.get(column)).split()) for column in columns)
            print("\t".join(line), file=console.file)
    else:
        # A link folded in a table's cell could be neither clicked nor copied: each is on a
        # line of its own below it.
        kept = [column for column in columns if column != "link"]
        cells = [[cell(data.get(column)) for column in kept] for data in dumped]
        console.print(table_of(kept, cells, title=title))
        for data in dumped:
            if link := data.get("link"):
                console.print(
                    f"{data['id']}: {link}", soft_wrap=True, highlight=False, markup=False
                )
    if more:
        err_console.print(f"more: --before-id {more}", highlight=False)


def events(
    user: User = None,
    kind: Annotated[str | None, typer.Option(help="e.g. watch.hit, delivery.failed")] = None,
    task: Annotated[str | None, typer.Option(help="only this task_id")] = None,
    before_id: BeforeId = None,
    limit: Limit = 50,
    as_json: Json = False,
) -> None:
    """Events, newest first (watch hits, task changes, failed deliveries with their error)."""

    async def read(session: AsyncSession) -> list[EventPublic]:
        rows = await history.events(
            session,
            user,
            kind=kind,
            task=task,
            before_id=before_id,
            limit=limit + 1,
            operator=True,
        )
        return await history.found_for(session, user, rows)

    columns = ["id", "created_at", "user", "kind", "task", "payload"]
    _print(read, as_json, columns, "events", limit)


def inbox(
    user: Annotated[str, typer.Option("--user", help="whose inbox")],
    unread: Annotated[bool, typer.Option("--unread", help="only unread messages")] = False,
    before_id: BeforeId = None,
    limit: Limit = 20,
    as_json: Json = False,
) -> None:
    """A user's inbox, newest first."""

    async def read(session: AsyncSession) -> list[InboxMessagePublic]:
        rows = await history.inbox(
            session, user, unread_only=unread, before_id=before_id, limit=limit + 1
        )
        return await history.found_for(session, user, rows, everyone=False)

    columns = ["id", "created_at", "kind", "title", "read", "link"]
    _print(read, as_json, columns, "inbox messages", limit)


def deliveries(
    user: User = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="pending (in flight), deferred (to be tried again later), sent, failed or "
            "suppressed"
        ),
    ] = None,
    channel: Annotated[str | None, typer.Option(help="email, webhook, wecom, ...")] = None,
    task: Annotated[str | None, typer.Option(help="only this task_id")] = None,
    before_id: BeforeId = None,
    limit: Limit = 50,
    as_json: Json = False,
) -> None:
    """Deliveries, newest first, with attempts and the error of each failure."""

    async def read(session: AsyncSession) -> list[DeliveryPublic]:
        rows = await history.deliveries(
            session,
            user,
            status=status,
            channel=channel,
            task=task,
            before_id=before_id,
            limit=limit + 1,
            operator=True,  # the server's own command line: its operator's
        )
        return await history.found_for(session, user, rows)

    columns = ["id", "created_at", "user", "task", "channel", "target", "status", "attempts"]
    _print(read, as_json, [*columns, "retry_until", "error"], "deliveries", limit)
