"""`ambient cloud`: Tencent Cloud from a terminal. Reads (clusters, node pools, topics, logs,
alarms) with the same service as the MCP cloud tools; the asked-for operations (create-logset,
create-topic, create-alarm, scale-node-pool, apply, ...) with the same service, permission and
audit as the cloud_write tools.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel

from ambient.cli_numbers import decimal_number, whole_number
from ambient.clients.kube import KubeClients
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.clients.tencent.logs import (
    NO_TIME,
    NO_WAY_ON,
    SERVED_AGAIN,
    SQL_LIMIT,
    SQL_MAX_ROWS,
    sql_part,
)
from ambient.cloud.apply import ApplySpec
from ambient.cloud.audit import Mode
from ambient.cloud.errors import CloudOpsError, told
from ambient.cloud.images import DEFAULT_QUESTION, describe_dashboard_image
from ambient.cloud.logs import AlarmSpec, LogsetSpec, ScheduledSqlSpec, TopicSpec
from ambient.cloud.node_pools import NodePoolScaleSpec, NodePoolSpec
from ambient.cloud.reads import MAX_ALARM_HOURS, MAX_LOG_HOURS, MAX_LOGS, CloudReads, look_back
from ambient.cloud.workloads import WorkloadSpec
from ambient.commands import (
    Json,
    Region,
    User,
    err_console,
    fail,
    parsed,
    print_json,
    print_rows,
    run_service,
    said_at,
    terminal,
)
from ambient.domain.identifiers import tke_cluster_id
from ambient.settings import Settings

if TYPE_CHECKING:  # the state is built when a command runs (run_service)
    from ambient.wiring import AppState

app = typer.Typer(no_args_is_help=True)  # its help: ambient/cli_group.py LAZY
console = terminal()
T = TypeVar("T")


def _read(work: Callable[[CloudReads], Coroutine[Any, Any, T]]) -> T:
    """``work`` on the cloud reads; what fails is one line, exit 1."""
    # A read needs no database: the service is built from the settings alone.
    settings = Settings()
    tencent = TencentCloud.from_settings(settings)

    async def run() -> T:
        clusters = KubeClients(settings.kubeconfig, tencent)
        try:
            return await work(CloudReads(settings, tencent, clusters))
        finally:
            await clusters.aclose()

    try:
        return asyncio.run(run())
    except (TencentCloudError, CloudOpsError) as exc:
        raise fail(told(exc)) from None


@app.command()
def clusters(region: Region = None, as_json: Json = False) -> None:
    """TKE clusters."""
    found = _read(lambda reads: reads.clusters(region))
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
    found = _read(lambda reads: reads.node_pools(cluster_id, region))
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
    found = _read(lambda reads: reads.log_topics(region))
    print_rows(
        console,
        ["topic id", "name", "logset"],
        [[t.topic_id, t.name, t.logset_id] for t in found],
        found,
        as_json,
        title="log topics",
    )


def _log_hours(value: float) -> float:
    try:
        look_back(value, MAX_LOG_HOURS, "hours")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


@app.command()
def logs(
    topic_id: str,
    query: str = "*",
    hours: Annotated[
        float, typer.Option(help="how far back", parser=decimal_number, callback=_log_hours)
    ] = 1.0,
    limit: Annotated[int, typer.Option(parser=whole_number(1, MAX_LOGS))] = 50,
    region: Region = None,
    as_json: Json = False,
) -> None:
    """Search a CLS topic (CQL, or '* | select ...' SQL), or file:NAME under AMBIENT_LOG_DIR."""
    # A log file's times written without offset are this terminal's wall times.
    here = datetime.now().astimezone().tzinfo or UTC
    found = _read(
        lambda reads: reads.search_logs(
            topic_id, query, hours=hours, limit=limit, region=region, zone=here
        )
    )
    if as_json:
        print_json(console, found)
        return
    for row in found.analysis:
        console.print_json(data=row)
    for record in found.logs:
        # A JSON record is printed as the JSON CLS holds, not as a Python dict.
        content = record.content
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        console.print(f"{said_at(record.time)} {text}", soft_wrap=True, markup=False)
    # Said apart from the records (stderr), so a pipe reads only them.
    if found.stopped:
        err_console.print(f"{found.stopped}: {_stop_advice(found.stopped)}", markup=False)
    elif not found.logs and not found.analysis and not found.skipped_lines:
        span = f"{hours:g} hour" + ("" if hours == 1 else "s")
        err_console.print(f"no logs matched {query!r} in the last {span}", markup=False)
    elif not found.complete and found.logs:
        err_console.print(
            f"more logs matched than the {len(found.logs)} shown: raise --limit or narrow "
            "the query or the hours",
            markup=False,
        )
    elif not found.complete and found.analysis:  # --limit counts lines, not an SQL's rows
        rows = len(found.analysis)
        if rows >= SQL_MAX_ROWS:
            more = "the most an analysis answers: narrow the query or the hours"
        elif SQL_LIMIT.search(sql_part(query) or ""):
            more = f"its own limit: raise it for more (at most {SQL_MAX_ROWS:,})"
        else:
            more = f"add 'limit N' to the SQL for more (at most {SQL_MAX_ROWS:,})"
        err_console.print(f"the SQL answered its first {rows:,} rows, {more}", markup=False)
    if skipped := found.skipped_lines:  # a file's unreadable lines, CLS logs without a time
        err_console.print(f"{skipped} unreadable line{'' if skipped == 1 else 's'} skipped")


def _stop_advice(stopped: str) -> str:
    if stopped in (SERVED_AGAIN, NO_WAY_ON):
        return "run it again"
    if stopped.endswith(NO_TIME):
        return "check the way to the API (AMBIENT_TENCENTCLOUD_ENDPOINT, a proxy)"
    return "narrow the query or the hours"


@app.command()
def alarms(
    hours: Annotated[int, typer.Option(parser=whole_number(1, MAX_ALARM_HOURS))] = 24,
    region: Annotated[
        str | None, typer.Option(help="only this region's alarms (default: every region's)")
    ] = None,
    as_json: Json = False,
) -> None:
    """Cloud Monitor alarms and CLS alert records."""
    history = _read(lambda reads: reads.alarms(hours, region))
    found = history.alarms
    for unread in [*map(str, history.unread), *history.skipped_said()]:
        err_console.print(unread, markup=False, highlight=False)
    print_rows(
        console,
        ["time", "source", "name", "status", "target"],
        [[said_at(a.time, seconds=False), a.source, a.name, a.status, a.target] for a in found],
        found,
        as_json,
        title="alarms",
    )


# --- the asked-for operations: a preview unless --execute ------------------------------------

Execute = Annotated[bool, typer.Option("--execute", help="make the change (default: preview)")]
Cluster = Annotated[str, typer.Option("--cluster", help="TKE cluster id or kubeconfig context")]
IdempotencyKey = Annotated[
    str | None, typer.Option(help="a new key makes the change again; the same key finds it made")
]

S = TypeVar("S", bound=BaseModel)


def _text(path: Path) -> str:
    """The file's text; else one line naming it and exit 2 (nothing was done)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise fail(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8", 2
        ) from None
    except OSError as exc:
        raise fail(f"{path}: {exc}", 2) from None


def _spec_file(model: type[S], path: Path) -> S:
    """A spec from a JSON or YAML file (the same fields as the MCP tool and the API body)."""
    try:
        values = yaml.safe_load(_text(path))
    except yaml.YAMLError as exc:
        raise fail(f"{path}: {exc}", 2) from None
    if not isinstance(values, dict):
        raise fail(f"{path}: expected a mapping of fields", 2)
    return parsed(model, **values)


SpecFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="JSON or YAML file with the fields")
]


def _mode(execute: bool) -> Mode:
    return "execute" if execute else "dry_run"


def _run(work: Callable[[AppState], Coroutine[Any, Any, BaseModel]]) -> None:
    print_json(console, run_service(lambda s: s, work, CloudOpsError))


def _workload(
    cluster: str, namespace: str, name: str, region: str | None, key: str | None
) -> WorkloadSpec:
    return parsed(
        WorkloadSpec,
        cluster_id=cluster,
        namespace=namespace,
        name=name,
        region=region,
        idempotency_key=key,
    )


@app.command("create-node-pool")
def create_node_pool(spec_file: SpecFile, user: User, execute: Execute = False) -> None:
    """Add a TKE node pool from a spec file (cluster_id, name, vpc_id, subnet_ids, ...)."""
    spec = _spec_file(NodePoolSpec, spec_file)
    _run(lambda s: s.cloud_ops.create_node_pool(user, spec, _mode(execute)))


@app.command("scale-node-pool")
def scale_node_pool(
    node_pool_id: str,
    desired: Annotated[int, typer.Argument(parser=whole_number())],
    cluster: Cluster,
    user: User,
    execute: Execute = False,
    region: Region = None,
) -> None:
    """Set a node pool's desired size (preview unless --execute)."""
    spec = parsed(
        NodePoolScaleSpec,
        cluster_id=cluster,
        node_pool_id=node_pool_id,
        desired=desired,
        region=region,
    )
    _run(lambda s: s.cloud_ops.scale_node_pool(user, spec, _mode(execute)))


@app.command("create-alarm")
def create_alarm(spec_file: SpecFile, user: User, execute: Execute = False) -> None:
    """Create a CLS alarm policy from a spec file (name, topic_id, query, condition, ...)."""
    spec = _spec_file(AlarmSpec, spec_file)
    _run(lambda s: s.cloud_ops.create_cls_alarm(user, spec, _mode(execute)))


@app.command("create-logset")
def create_logset(name: str, user: User, execute: Execute = False, region: Region = None) -> None:
    """Create a CLS logset (preview unless --execute)."""
    spec = parsed(LogsetSpec, name=name, region=region)
    _run(lambda s: s.cloud_ops.create_logset(user, spec, _mode(execute)))


@app.command("create-topic")
def create_topic(
    logset_id: str,
    name: str,
    user: User,
    period: Annotated[int, typer.Option(help="retention days", parser=whole_number())] = 30,
    execute: Execute = False,
    region: Region = None,
) -> None:
    """Create a CLS log topic in a logset (preview unless --execute)."""
    spec = parsed(TopicSpec, logset_id=logset_id, name=name, period=period, region=region)
    _run(lambda s: s.cloud_ops.create_log_topic(user, spec, _mode(execute)))


@app.command("create-scheduled-sql")
def create_scheduled_sql(
    name: str,
    source_topic_id: str,
    target_topic_id: str,
    sql: str,
    user: User,
    every: Annotated[int, typer.Option(help="minutes between runs", parser=whole_number())] = 60,
    execute: Execute = False,
    region: Region = None,
) -> None:
    """Create a CLS scheduled SQL task (preview unless --execute)."""
    spec = parsed(
        ScheduledSqlSpec,
        name=name,
        source_topic_id=source_topic_id,
        target_topic_id=target_topic_id,
        sql=sql,
        period_minutes=every,
        region=region,
    )
    _run(lambda s: s.cloud_ops.create_scheduled_sql(user, spec, _mode(execute)))


@app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML file")],
    cluster: Cluster,
    user: User,
    namespace: Annotated[str, typer.Option(help="for documents without one")] = "default",
    execute: Execute = False,
    region: Region = None,
) -> None:
    """Server-side apply a YAML file; the preview shows each document's diff."""
    spec = parsed(
        ApplySpec, cluster_id=cluster, documents=_text(file), namespace=namespace, region=region
    )
    _run(lambda s: s.workload_ops.apply_yaml(user, spec, _mode(execute)))


@app.command("scale")
def scale(
    namespace: str,
    name: str,
    replicas: Annotated[int, typer.Argument(parser=whole_number())],
    cluster: Cluster,
    user: User,
    execute: Execute = False,
    region: Region = None,
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Scale a Deployment to REPLICAS (preview unless --execute)."""
    spec = _workload(cluster, namespace, name, region, idempotency_key)
    _run(lambda s: s.workload_ops.scale_workload(user, spec, replicas, _mode(execute)))


@app.command("restart")
def restart(
    namespace: str,
    name: str,
    cluster: Cluster,
    user: User,
    execute: Execute = False,
    region: Region = None,
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Rolling-restart a Deployment (preview unless --execute)."""
    spec = _workload(cluster, namespace, name, region, idempotency_key)
    _run(lambda s: s.workload_ops.restart_workload(user, spec, _mode(execute)))


@app.command("describe-image")
def describe_image(
    image_url: str,
    question: Annotated[str, typer.Option(help="what to ask")] = DEFAULT_QUESTION,
) -> None:
    """Ask the vision model about a dashboard image (URL)."""
    _run(lambda s: describe_dashboard_image(s.settings, image_url, question))
