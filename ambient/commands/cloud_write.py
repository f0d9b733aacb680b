"""`ambient cloud create-logset|create-topic|create-alarm|scale-node-pool|apply|...`: the asked-for
cloud operations from a terminal (same service, permission and audit as the MCP tools).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel
from rich.console import Console

from ambient.cli_numbers import whole_number
from ambient.cloud.apply import ApplySpec
from ambient.cloud.audit import Mode
from ambient.cloud.errors import CloudOpsError
from ambient.cloud.images import describe_dashboard_image
from ambient.cloud.logs import AlarmSpec, LogsetSpec, ScheduledSqlSpec, TopicSpec
from ambient.cloud.node_pools import NodePoolScaleSpec, NodePoolSpec
from ambient.cloud.service import CloudOpsService
from ambient.cloud.workloads import WorkloadOps, WorkloadSpec
from ambient.commands import Region, User, fail, parsed, print_json, run_service
from ambient.settings import Settings

Execute = Annotated[bool, typer.Option("--execute", help="make the change (default: preview)")]
Cluster = Annotated[str, typer.Option("--cluster", help="TKE cluster id or kubeconfig context")]
console = Console()
# Commands of `ambient cloud` (ambient/commands/cloud.py adds them to its own).
app = typer.Typer()


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


def _run(work: Callable[[CloudOpsService, Settings], Coroutine[Any, Any, BaseModel]]) -> None:
    result = run_service(lambda s: s, lambda s: work(s.cloud_ops, s.settings), CloudOpsError)
    print_json(console, result)


def _run_on_cluster(work: Callable[[WorkloadOps], Coroutine[Any, Any, BaseModel]]) -> None:
    async def run(service: CloudOpsService, settings: Settings) -> BaseModel:
        async with WorkloadOps(service, settings.kubeconfig) as ops:
            return await work(ops)

    _run(run)


@app.command("create-node-pool")
def create_node_pool(spec_file: SpecFile, user: User, execute: Execute = False) -> None:
    """Add a TKE node pool from a spec file (cluster_id, name, vpc_id, subnet_ids, ...)."""
    spec = _spec_file(NodePoolSpec, spec_file)
    _run(lambda s, _: s.create_node_pool(user, spec, _mode(execute)))


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
    _run(lambda s, _: s.scale_node_pool(user, spec, _mode(execute)))


@app.command("create-alarm")
def create_alarm(spec_file: SpecFile, user: User, execute: Execute = False) -> None:
    """Create a CLS alarm policy from a spec file (name, topic_id, query, condition, ...)."""
    spec = _spec_file(AlarmSpec, spec_file)
    _run(lambda s, _: s.create_cls_alarm(user, spec, _mode(execute)))


@app.command("create-logset")
def create_logset(name: str, user: User, execute: Execute = False, region: Region = None) -> None:
    """Create a CLS logset (preview unless --execute)."""
    spec = parsed(LogsetSpec, name=name, region=region)
    _run(lambda s, _: s.create_logset(user, spec, _mode(execute)))


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
    _run(lambda s, _: s.create_log_topic(user, spec, _mode(execute)))


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
    _run(lambda s, _: s.create_scheduled_sql(user, spec, _mode(execute)))


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
    _run_on_cluster(lambda ops: ops.apply_yaml(user, spec, _mode(execute)))


@app.command("scale")
def scale(
    namespace: str,
    name: str,
    replicas: Annotated[int, typer.Argument(parser=whole_number())],
    cluster: Cluster,
    user: User,
    execute: Execute = False,
    region: Region = None,
) -> None:
    """Scale a Deployment to REPLICAS (preview unless --execute)."""
    spec = parsed(WorkloadSpec, cluster_id=cluster, namespace=namespace, name=name, region=region)
    _run_on_cluster(lambda ops: ops.scale_workload(user, spec, replicas, _mode(execute)))


@app.command("restart")
def restart(
    namespace: str,
    name: str,
    cluster: Cluster,
    user: User,
    execute: Execute = False,
    region: Region = None,
) -> None:
    """Rolling-restart a Deployment (preview unless --execute)."""
    spec = parsed(WorkloadSpec, cluster_id=cluster, namespace=namespace, name=name, region=region)
    _run_on_cluster(lambda ops: ops.restart_workload(user, spec, _mode(execute)))


@app.command("describe-image")
def describe_image(
    image_url: str,
    question: Annotated[
        str, typer.Option(help="what to ask")
    ] = "What does this dashboard show? Anything abnormal?",
) -> None:
    """Ask the vision model about a dashboard image (URL)."""
    _run(lambda _, settings: describe_dashboard_image(settings, image_url, question))
