"""`ambient cloud`: read Tencent Cloud from a terminal (the same operations as the MCP tools)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ambient.clients.tencent import ops
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.settings import Settings

app = typer.Typer(
    help="Tencent Cloud: clusters, node pools, logs, metrics, alarms.", no_args_is_help=True
)
console = Console()
T = TypeVar("T")
Region = Annotated[str | None, typer.Option(help="region (default: AMBIENT_TENCENTCLOUD_REGION)")]


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except TencentCloudError as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from None


def _cloud() -> TencentCloud:
    return TencentCloud.from_settings(Settings())


def _table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(str(v) if v is not None else "" for v in row))
    console.print(table)


@app.command()
def clusters(region: Region = None) -> None:
    """TKE clusters."""
    found = _run(ops.list_clusters(_cloud(), region=region))
    _table(
        "clusters",
        ["id", "name", "status", "version", "nodes"],
        [[c.cluster_id, c.name, c.status, c.version, c.nodes] for c in found],
    )


@app.command("node-pools")
def node_pools(cluster_id: str, region: Region = None) -> None:
    """Node pools of a cluster."""
    found = _run(ops.list_node_pools(_cloud(), cluster_id, region=region))
    _table(
        f"node pools of {cluster_id}",
        ["id", "name", "state", "desired", "min", "max"],
        [[p.node_pool_id, p.name, p.state, p.desired, p.minimum, p.maximum] for p in found],
    )


@app.command()
def topics(region: Region = None) -> None:
    """CLS log topics."""
    found = _run(ops.list_log_topics(_cloud(), region=region))
    _table(
        "log topics",
        ["topic id", "name", "logset"],
        [[t.topic_id, t.name, t.logset_id] for t in found],
    )


@app.command()
def logs(
    topic_id: str,
    query: Annotated[str, typer.Option()] = "*",
    hours: Annotated[float, typer.Option(help="how far back")] = 1.0,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Search a CLS topic (CQL, or '* | select ...' SQL)."""
    now = datetime.now(UTC)
    found = _run(
        ops.search_logs(_cloud(), topic_id, query, now - timedelta(hours=hours), now, limit=limit)
    )
    for row in found.analysis:
        console.print_json(data=row)
    for record in found.logs:
        console.print(
            f"{record.time:%Y-%m-%d %H:%M:%S} {record.content}", soft_wrap=True, markup=False
        )


@app.command()
def alarms(hours: Annotated[int, typer.Option()] = 24, region: Region = None) -> None:
    """Cloud Monitor alarms and CLS alert records."""
    now = datetime.now(UTC)
    found = _run(ops.list_alarms(_cloud(), now - timedelta(hours=hours), now, region=region))
    _table(
        "alarms",
        ["time", "source", "name", "status", "target"],
        [[f"{a.time:%m-%d %H:%M}", a.source, a.name, a.status, a.target] for a in found],
    )
