"""`ambient xiaozhi`: connect 小智 to the product — `endpoint` (xiaozhi.me MCP 接入点 the API
process dials, ambient.bridge) and `device` (the speakers that call the context provider).

Whoever runs these has the database in hand: the operator, who may register endpoints and
devices for any user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.text import Text

from ambient.bridge.endpoints import (
    EndpointCreate,
    EndpointError,
    EndpointPublic,
    Endpoints,
    EndpointUserError,
)
from ambient.cli_numbers import whole_number
from ambient.commands import (
    Json,
    echo_json,
    fail,
    parsed,
    run_in_session,
    run_operator,
    table_of,
    terminal,
)
from ambient.settings import Settings
from ambient.storage.models import MAX_ID
from ambient.xiaozhi import DeviceService
from ambient.xiaozhi_errors import DeviceError

app = typer.Typer(no_args_is_help=True)  # its help: ambient/cli_group.py LAZY
endpoint_app = typer.Typer(
    help="xiaozhi.me MCP 接入点: the product dials them and serves its tools.",
    no_args_is_help=True,
)
device_app = typer.Typer(
    help="Devices that call /xiaozhi/context (by the MAC xiaozhi-server sends as device-id).",
    no_args_is_help=True,
)
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(device_app, name="device")
console = terminal()
T = TypeVar("T")


# --- endpoints ------------------------------------------------------------------------------


def _endpoints(work: Callable[[Endpoints], Awaitable[T]], code: int = 1) -> T:
    """``work`` on the endpoints; a refusal is a line and exit ``code``, a user nobody
    registered exit 1, as every command says it."""
    try:
        return run_in_session(lambda s: work(Endpoints.of(s, Settings())))
    except EndpointError as exc:
        raise fail(str(exc), 1 if isinstance(exc, EndpointUserError) else code) from None


@endpoint_app.command("add")
def add_endpoint(
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
    added = _endpoints(lambda endpoints: endpoints.add(None, data), code=2)
    said = f"added endpoint {added.id} for {added.user}: {added.url}"
    console.print(said, soft_wrap=True, markup=False)
    console.print("check it with `ambient xiaozhi endpoint list` (connected within a few seconds)")


@endpoint_app.command("list")
def list_endpoints(as_json: Json = False) -> None:
    """Every endpoint with its state (connected/retrying), last error and since when."""
    rows: list[EndpointPublic] = _endpoints(lambda endpoints: endpoints.list(None))
    if as_json:
        echo_json(rows)
        return
    # The error is the far side's words and the URL the user's: table_of shows them as text.
    cells = [
        [
            str(row.id),
            row.user,
            Text(row.state, style="green" if row.state == "connected" else "yellow"),
            row.since.isoformat(timespec="seconds"),
            row.last_error or "",
            row.url,
        ]
        for row in rows
    ]
    console.print(table_of(["id", "user", "state", "since", "last error", "url"], cells))


@endpoint_app.command("remove")
def remove_endpoint(
    endpoint_id: Annotated[int, typer.Argument(parser=whole_number(1, MAX_ID))],
) -> None:
    """Remove an endpoint; its connection is closed within 5 s."""
    gone = _endpoints(lambda endpoints: endpoints.remove(None, endpoint_id))
    console.print(f"removed endpoint {gone.id} ({gone.user})", markup=False)


# --- devices --------------------------------------------------------------------------------


def _devices(work: Callable[[DeviceService], Awaitable[T]]) -> T:
    return run_operator(lambda db: work(DeviceService(db)), DeviceError)


@device_app.command("add")
def add_device(
    device_id: Annotated[str, typer.Argument(help="the device's MAC, e.g. aa:bb:cc:dd:ee:ff")],
    user: Annotated[str, typer.Option("--user", help="the user the device belongs to")],
    speakers: Annotated[
        list[str] | None,
        typer.Option("--speaker", help="another user who allows this device to answer them"),
    ] = None,
) -> None:
    """Register a device; prints its token once (stored hashed)."""
    # The operator (database in hand) may name the users who allowed the device.
    added = _devices(lambda s: s.add(None, user, device_id, speakers=speakers or []))
    said = f"device {added.device_id} (id {added.id}) registered to {added.user}"
    console.print(said, markup=False)
    console.print("device token (shown once; put it in xiaozhi-server's context_providers):")
    console.print(added.token, soft_wrap=True, highlight=False)


@device_app.command("list")
def list_devices(as_json: Json = False) -> None:
    """Every registered device (no tokens: only their hashes are stored), then the withdrawals
    of owners with no device left (--json: devices only; `withdrawn --json` lists withdrawals)."""
    devices = _devices(lambda s: s.list(None))
    if as_json:
        echo_json(devices)
        return
    owners = {d.user for d in devices}
    # No device lists them: `let-back --user` lifts them.
    kept = [k for k in _devices(lambda s: s.withdrawals(None)) if k.user not in owners]
    cells = [
        [
            str(d.id),
            d.device_id,
            d.user,
            *map(", ".join, (d.speakers, d.withdrawn)),
            str(d.created_at),
        ]
        for d in devices
    ]
    columns = ["id", "device_id", "user", "speakers", "withdrawn", "created_at"]
    console.print(table_of(columns, cells, title="小智 devices"))
    for d in devices:
        if d.warning:  # as the owner's settings page warns on the device's card
            console.print(f"{d.device_id} ({d.user}): {d.warning}", markup=False)
    for gone in kept:
        said = f"{gone.user}'s withdrawn (no device left): {', '.join(gone.withdrawn)}"
        console.print(said, markup=False)


@device_app.command("withdrawn")
def list_withdrawn(as_json: Json = False) -> None:
    """Every owner's withdrawn members, with or without a device left (`let-back` lifts one)."""
    owners = _devices(lambda s: s.withdrawals(None))
    if as_json:
        echo_json(owners)
        return
    for kept in owners:
        console.print(f"{kept.user}: {', '.join(kept.withdrawn)}", markup=False)


@device_app.command("remove")
def remove_device(
    ref: Annotated[str, typer.Argument(help="the id from `list`, or the device id")],
) -> None:
    """Remove a device: its token stops working at once."""
    removed = _devices(lambda s: s.remove(None, ref))
    console.print(f"removed device {removed.device_id} of {removed.user}", markup=False)


@device_app.command("withdraw")
def withdraw_speaker(
    ref: Annotated[str, typer.Argument(help="the id from `list`, or the device id")],
    speaker: Annotated[str, typer.Argument(help="the user who allowed the device")],
) -> None:
    """Stop a device answering another user who allowed it (their consent withdrawn): they may
    not allow it again until let back (`let-back`)."""
    left = _devices(lambda s: s.withdraw(None, ref, speaker))
    said = (
        f"device {left.device_id} no longer answers {speaker}; `let-back` lets them allow it again"
    )
    console.print(said, markup=False)


@device_app.command("let-back")
def let_speaker_back(
    ref: Annotated[
        str, typer.Argument(help="the id from `list`, or the device id; with --user, the SPEAKER")
    ],
    speaker: Annotated[
        str | None, typer.Argument(help="the user whose consent was withdrawn")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option("--user", help="the owner who withdrew them, naming no device (none left)"),
    ] = None,
) -> None:
    """Let a user whose consent was withdrawn allow the owner's devices again (theirs to give):
    `let-back DEVICE SPEAKER`, or `let-back --user OWNER SPEAKER`."""
    if owner is not None:
        if not owner:
            raise typer.BadParameter("name the owner who withdrew them", param_hint="--user")
        if speaker is not None:
            raise typer.BadParameter("name a device or --user OWNER, not both", param_hint="REF")
        lifted = _devices(lambda s: s.let_back_from(None, owner, ref))
        console.print(f"{ref} may allow {lifted.user}'s devices again", markup=False)
        return
    if speaker is None:
        raise typer.BadParameter("name the user whose consent was withdrawn", param_hint="SPEAKER")
    back = _devices(lambda s: s.let_back(None, ref, speaker))
    console.print(f"{speaker} may allow device {back.device_id} again", markup=False)
