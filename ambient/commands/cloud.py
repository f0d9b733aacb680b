"""`ambient cloud`: read Tencent Cloud from a terminal (the same operations as the MCP tools)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from ambient.cli_numbers import decimal_number, whole_number
from ambient.clients.tencent import ops
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.commands import (
    Json,
    Region,
    cloud_write,
    err_console,
    fail,
    print_json,
    print_rows,
)
from ambient.domain.identifiers import tke_cluster_id
from ambient.settings import Settings

app = typer.Typer(no_args_is_help=True)  # its help: ambient/cli.py LAZY
# The asked-for writes (create, apply, scale, restart) live in their own module.
app.add_typer(cloud_write.app)
console = Console()
T = TypeVar("T")


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except TencentCloudError as exc:
        raise fail(str(exc)) from None


def _cloud() -> TencentCloud:
    return TencentCloud.from_settings(Settings())


@app.command()
def clusters(region: Region = None, as_json: Json = False) -> None:
    """TKE clusters."""
    found = _run(ops.list_clusters(_cloud(), region=region))
    print_rows(
        console,
        ["id", "name", "status", "version", "nodes"],
        [[c.cluster_id, c.name, c.status, c.version, c.nodes] for c in found],
        found,
        as_json,
        title="clusters",
    )


def _tke_cluster(value: str) -> str:
    try:
        return tke_cluster_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("node-pools")
def node_pools(
    cluster_id: Annotated[str, typer.Argument(callback=_tke_cluster)],
    region: Region = None,
    as_json: Json = False,
) -> None:
    """Node pools of a TKE cluster (cls-...)."""
    found = _run(ops.list_node_pools(_cloud(), cluster_id, region=region))
    print_rows(
        console,
        ["id", "name", "state", "desired", "min", "max"],
        [[p.node_pool_id, p.name, p.state, p.desired, p.minimum, p.maximum] for p in found],
        found,
        as_json,
        title=f"node pools of {cluster_id}",
    )


@app.command()
def topics(region: Region = None, as_json: Json = False) -> None:
    """CLS log topics."""
    found = _run(ops.list_log_topics(_cloud(), region=region))
    print_rows(
        console,
        ["topic id", "name", "logset"],
        [[t.topic_id, t.name, t.logset_id] for t in found],
        found,
        as_json,
        title="log topics",
    )


# How far back the look-back options reach: list_alarms' MCP bound (30 days) and, for logs,
# ten years (any real look-back). Far past them the window cannot even be computed.
MAX_LOG_HOURS = 24 * 3650
MAX_ALARM_HOURS = 24 * 30


def _log_hours(value: float) -> float:
    if not 0 < value <= MAX_LOG_HOURS:
        raise typer.BadParameter(f"between 0 and {MAX_LOG_HOURS} hours, not {value:g}")
    return value


@app.command()
def logs(
    topic_id: str,
    query: str = "*",
    hours: Annotated[
        float, typer.Option(help="how far back", parser=decimal_number, callback=_log_hours)
    ] = 1.0,
    limit: Annotated[int, typer.Option(parser=whole_number())] = 50,
    region: Region = None,
    as_json: Json = False,
) -> None:
    """Search a CLS topic (CQL, or '* | select ...' SQL)."""
    now = datetime.now(UTC)
    begin = now - timedelta(hours=hours)
    found = _run(ops.search_logs(_cloud(), topic_id, query, begin, now, limit=limit, region=region))
    if as_json:
        print_json(console, found)
        return
    for row in found.analysis:
        console.print_json(data=row)
    for record in found.logs:
        # A JSON record is printed as the JSON CLS holds, not as a Python dict.
        content = record.content
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        console.print(f"{record.time:%Y-%m-%d %H:%M:%S} {text}", soft_wrap=True, markup=False)
    # Said apart from the records (stderr), so a pipe reads only them.
    if not found.logs and not found.analysis:
        span = f"{hours:g} hour" + ("" if hours == 1 else "s")
        err_console.print(f"no logs matched {query!r} in the last {span}", markup=False)
    elif not found.complete and found.logs:
        err_console.print(
            f"more logs matched than the {len(found.logs)} shown: raise --limit or narrow "
            "the query or the hours",
            markup=False,
        )


@app.command()
def alarms(
    hours: Annotated[int, typer.Option(parser=whole_number(1, MAX_ALARM_HOURS))] = 24,
    region: Region = None,
    as_json: Json = False,
) -> None:
    """Cloud Monitor alarms and CLS alert records."""
    now = datetime.now(UTC)
    history = _run(ops.list_alarms(_cloud(), now - timedelta(hours=hours), now, region=region))
    found = history.alarms
    for unread in history.unread:
        err_console.print(str(unread), markup=False, highlight=False)
    print_rows(
        console,
        ["time", "source", "name", "status", "target"],
        [[f"{a.time:%m-%d %H:%M}", a.source, a.name, a.status, a.target] for a in found],
        found,
        as_json,
        title="alarms",
    )
