"""`ambient xiaozhi device`: 小智 devices (the context provider's callers)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ambient.commands import Json, run_operator
from ambient.xiaozhi import DeviceError, DeviceService

device_app = typer.Typer(
    help="Devices that call /xiaozhi/context (by the MAC xiaozhi-server sends as device-id).",
    no_args_is_help=True,
)
console = Console()
T = TypeVar("T")


def _run(work: Callable[[DeviceService], Awaitable[T]]) -> T:
    try:
        return run_operator(lambda db: work(DeviceService(db)))
    except DeviceError as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(1) from None


@device_app.command("add")
def add(
    device_id: Annotated[str, typer.Argument(help="the device's MAC, e.g. aa:bb:cc:dd:ee:ff")],
    user: Annotated[str, typer.Option("--user", help="the user the device belongs to")],
    speakers: Annotated[
        list[str] | None,
        typer.Option("--speaker", help="another user who allows this device to answer them"),
    ] = None,
) -> None:
    """Register a device; prints its token once (stored hashed)."""
    # The operator (database in hand) may name the users who allowed the device.
    added = _run(lambda s: s.add(None, user, device_id, speakers=speakers or []))
    console.print(f"device {added.device_id} (id {added.id}) registered to {added.user}")
    console.print("device token (shown once; put it in xiaozhi-server's context_providers):")
    console.print(added.token, soft_wrap=True, highlight=False)


@device_app.command("list")
def list_devices(as_json: Json = False) -> None:
    """Every registered device (no tokens: only their hashes are stored)."""
    devices = _run(lambda s: s.list(None))
    if as_json:
        print(json.dumps([d.model_dump(mode="json") for d in devices], ensure_ascii=False))
        return
    table = Table(title="小智 devices")
    for column in ("id", "device_id", "user", "speakers", "created_at"):
        table.add_column(column)
    for d in devices:
        table.add_row(str(d.id), d.device_id, d.user, ", ".join(d.speakers), str(d.created_at))
    console.print(table)


@device_app.command("remove")
def remove(
    ref: Annotated[str, typer.Argument(help="the id from `list`, or the device id")],
) -> None:
    """Remove a device: its token stops working at once."""
    removed = _run(lambda s: s.remove(None, ref))
    console.print(f"removed device {removed.device_id} of {removed.user}")
