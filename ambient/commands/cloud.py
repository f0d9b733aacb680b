"""`ambient cloud`: read Tencent Cloud from a terminal (the same operations as the MCP tools)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ambient.clients.tencent import ops
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.commands import Json, Region, fail
from ambient.domain.identifiers import tke_cluster_id
from ambient.settings import Settings

app = typer.Typer(
    help="Tencent Cloud: clusters, node pools, logs, metrics, alarms.", no_args_is_help=True
)
console = Console()
T = TypeVar("T")


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except TencentCloudError as exc:
        raise fail(str(exc)) from None


def _cloud() -> TencentCloud:
    return TencentCloud.from_settings(Settings())


def _table(
    title: str, columns: list[str], rows: list[list[object]], items: list[Any], as_json: bool
) -> None:
    """JSON, a table on a terminal (ids fold, never cut), or tab-separated lines in a pipe."""
    if as_json:
        console.print_json(json.dumps([item.model_dump(mode="json") for item in items]))
        return
    cells = [[str(v) if v is not None else "" for v in row] for row in rows]
    if not console.is_terminal:
        for row_cells in cells:
            print("\t".join(row_cells), file=console.file)
        return
    table = Table(*columns, title=title)
    for column in table.columns:
        column.overflow = "fold"
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)


@app.command()
def clusters(region: Region = None, as_json: Json = False) -> None:
    """TKE clusters."""
    found = _run(ops.list_clusters(_cloud(), region=region))
    _table(
        "clusters",
        ["id", "name", "status", "version", "nodes"],
        [[c.cluster_id, c.name, c.status, c.version, c.nodes] for c in found],
        found,
        as_json,
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
    _table(
        f"node pools of {cluster_id}",
        ["id", "name", "state", "desired", "min", "max"],
        [[p.node_pool_id, p.name, p.state, p.desired, p.minimum, p.maximum] for p in found],
        found,
        as_json,
    )


@app.command()
def topics(region: Region = None, as_json: Json = False) -> None:
    """CLS log topics."""
    found = _run(ops.list_log_topics(_cloud(), region=region))
    _table(
        "log topics",
        ["topic id", "name", "logset"],
        [[t.topic_id, t.name, t.logset_id] for t in found],
        found,
        as_json,
    )


@app.command()
def logs(
    topic_id: str,
    query: Annotated[str, typer.Option()] = "*",
    hours: Annotated[float, typer.Option(help="how far back")] = 1.0,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Json = False,
) -> None:
    """Search a CLS topic (CQL, or '* | select ...' SQL)."""
    now = datetime.now(UTC)
    found = _run(
        ops.search_logs(_cloud(), topic_id, query, now - timedelta(hours=hours), now, limit=limit)
    )
    if as_json:
        console.print_json(found.model_dump_json())
        return
    for row in found.analysis:
        console.print_json(data=row)
    for record in found.logs:
        console.print(
            f"{record.time:%Y-%m-%d %H:%M:%S} {record.content}", soft_wrap=True, markup=False
        )


@app.command()
def alarms(
    hours: Annotated[int, typer.Option()] = 24, region: Region = None, as_json: Json = False
) -> None:
    """Cloud Monitor alarms and CLS alert records."""
    now = datetime.now(UTC)
    found = _run(ops.list_alarms(_cloud(), now - timedelta(hours=hours), now, region=region))
    _table(
        "alarms",
        ["time", "source", "name", "status", "target"],
        [[f"{a.time:%m-%d %H:%M}", a.source, a.name, a.status, a.target] for a in found],
        found,
        as_json,
    )


# The asked-for writes (create, apply, scale, restart) live in their own module.
from ambient.commands.cloud_write import register as _register_writes  # noqa: E402

_register_writes(app)
