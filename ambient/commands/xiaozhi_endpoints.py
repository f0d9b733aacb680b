"""`ambient xiaozhi endpoint`: the xiaozhi.me MCP 接入点 URLs the API process dials
(ambient.bridge). Whoever runs these has the database in hand: the operator, who may register
endpoints for any user.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ambient.bridge.endpoints import (
    EndpointCreate,
    EndpointError,
    EndpointPublic,
    Endpoints,
    mask_url,
)
from ambient.commands import parsed, run_operator
from ambient.settings import Settings
from ambient.storage import Database

endpoint_app = typer.Typer(
    help="xiaozhi.me MCP 接入点: the product dials them and serves its tools.",
    no_args_is_help=True,
)
console = Console()
T = TypeVar("T")


def _run(work: Callable[[Endpoints], Awaitable[T]]) -> T:
    settings = Settings()

    async def in_session(db: Database) -> T:
        async with db.session() as session:
            return await work(Endpoints.of(session, settings))

    return run_operator(in_session, settings)


@endpoint_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="the 接入点 URL: wss://api.xiaozhi.me/mcp/?token=...")],
    user: Annotated[str, typer.Option(help="the user the endpoint acts as")],
    verbatim: Annotated[
        bool,
        typer.Option(
            "--verbatim",
            help='answer {"action":"RESPONSE",...} so an mcp_endpoint relay speaks it as is',
        ),
    ] = False,
) -> None:
    """Register an endpoint; the API process connects to it within 5 s."""
    data = parsed(EndpointCreate, user=user, url=url, verbatim=verbatim)
    try:
        added = _run(lambda endpoints: endpoints.add(None, data))
    except EndpointError as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"added endpoint {added.id} for {added.user}: {mask_url(url)}", soft_wrap=True)
    console.print("check it with `ambient xiaozhi endpoint list` (connected within a few seconds)")


@endpoint_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines for scripts")] = False,
) -> None:
    """Every endpoint with its state (connected/retrying), last error and since when."""
    rows: list[EndpointPublic] = _run(lambda endpoints: endpoints.list(None))
    if as_json:
        typer.echo(json.dumps([row.model_dump(mode="json") for row in rows], ensure_ascii=False))
        return
    table = Table("id", "user", "state", "since", "last error", "url")
    for row in rows:
        colour = "green" if row.state == "connected" else "yellow"
        table.add_row(
            str(row.id),
            row.user,
            f"[{colour}]{row.state}[/]",
            row.since.isoformat(timespec="seconds"),
            row.last_error or "",
            row.url,
        )
    console.print(table)


@endpoint_app.command("remove")
def remove(endpoint_id: int) -> None:
    """Remove an endpoint; its connection is closed within 5 s."""
    try:
        gone = _run(lambda endpoints: endpoints.remove(None, endpoint_id))
    except EndpointError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"removed endpoint {gone.id} ({gone.user})")
