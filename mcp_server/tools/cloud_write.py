"""Asked-for cloud writes: node pools, logsets, topics, CLS alarms, scheduled SQL, workloads."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from ambient.cloud.apply import ApplyResult, ApplySpec
from ambient.cloud.creates import WriteResult
from ambient.cloud.images import DEFAULT_QUESTION, MAX_DATA_URL, MAX_QUESTION, ImageDescription
from ambient.cloud.images import describe_dashboard_image as describe_image
from ambient.cloud.logs import AlarmSpec, LogsetSpec, ScheduledSqlSpec, TopicSpec
from ambient.cloud.node_pools import NodePoolScaleResult, NodePoolScaleSpec, NodePoolSpec
from ambient.cloud.workloads import MAX_REPLICAS, WorkloadResult, WorkloadSpec
from ambient.domain.identifiers import TKE_CLUSTER_HINT, TkeClusterId
from ambient.domain.numbers import WHOLE_NUMBER
from mcp_server.auth import Ctx, app_state
from mcp_server.tools.cloud import ModeArg, Region, cloud_actor
from mcp_server.tools.hints import CHANGE, LOOK, WRITE


async def create_node_pool(
    ctx: Ctx,
    pool: Annotated[NodePoolSpec, Field(description="the node pool to add to a TKE cluster")],
    mode: ModeArg = "dry_run",
) -> WriteResult:
    """Add a node pool to a TKE cluster (CreateClusterNodePool); a retry finds it by name."""
    return await app_state(ctx).cloud_ops.create_node_pool(cloud_actor(ctx), pool, mode)


async def create_logset(
    ctx: Ctx,
    logset: Annotated[LogsetSpec, Field(description="the CLS logset to create")],
    mode: ModeArg = "dry_run",
) -> WriteResult:
    """Create a CLS logset (CreateLogset); a retry finds it by name."""
    return await app_state(ctx).cloud_ops.create_logset(cloud_actor(ctx), logset, mode)


async def create_log_topic(
    ctx: Ctx,
    topic: Annotated[TopicSpec, Field(description="the CLS log topic to create in a logset")],
    mode: ModeArg = "dry_run",
) -> WriteResult:
    """Create a CLS log topic in a logset (CreateTopic); a retry finds it by name."""
    return await app_state(ctx).cloud_ops.create_log_topic(cloud_actor(ctx), topic, mode)


async def create_cls_alarm(
    ctx: Ctx,
    alarm: Annotated[AlarmSpec, Field(description="the CLS alarm policy and its notice")],
    mode: ModeArg = "dry_run",
) -> WriteResult:
    """Create a CLS alarm policy (CreateAlarm), with a new notice (CreateAlarmNotice) if named."""
    return await app_state(ctx).cloud_ops.create_cls_alarm(cloud_actor(ctx), alarm, mode)


async def create_scheduled_sql(
    ctx: Ctx,
    task: Annotated[ScheduledSqlSpec, Field(description="the scheduled SQL analysis to create")],
    mode: ModeArg = "dry_run",
) -> WriteResult:
    """Create a CLS scheduled SQL task (CreateScheduledSql) writing results to another topic."""
    return await app_state(ctx).cloud_ops.create_scheduled_sql(cloud_actor(ctx), task, mode)


async def apply_yaml(
    ctx: Ctx,
    apply: Annotated[ApplySpec, Field(description="the cluster and the YAML documents")],
    mode: ModeArg = "dry_run",
) -> ApplyResult:
    """Server-side apply YAML documents to a cluster; dry_run shows each document's diff.

    Every document is dry-run on the server first: if one is refused, none is applied and the
    error names it. A document is `applied` only if it changed the cluster.
    """
    return await app_state(ctx).workload_ops.apply_yaml(cloud_actor(ctx), apply, mode)


async def scale_workload(
    ctx: Ctx,
    workload: Annotated[WorkloadSpec, Field(description="the Deployment to scale")],
    replicas: Annotated[
        int, Field(ge=1, le=MAX_REPLICAS, description="absolute replica count"), WHOLE_NUMBER
    ],
    mode: ModeArg = "dry_run",
) -> WorkloadResult:
    """Scale a Deployment to a replica count (stamped with its key: a retry changes nothing)."""
    return await app_state(ctx).workload_ops.scale_workload(
        cloud_actor(ctx), workload, replicas, mode
    )


async def restart_workload(
    ctx: Ctx,
    workload: Annotated[WorkloadSpec, Field(description="the Deployment to restart")],
    mode: ModeArg = "dry_run",
) -> WorkloadResult:
    """Rolling-restart a Deployment (what `kubectl rollout restart` does), once per key."""
    return await app_state(ctx).workload_ops.restart_workload(cloud_actor(ctx), workload, mode)


async def describe_dashboard_image(
    ctx: Ctx,
    image_url: Annotated[
        str,
        Field(
            max_length=MAX_DATA_URL,
            description="http(s) URL of a dashboard screenshot, or a data:image/...;base64 upload",
        ),
    ],
    question: Annotated[
        str,
        Field(min_length=1, max_length=MAX_QUESTION, description="what to find out from the image"),
    ] = DEFAULT_QUESTION,
) -> ImageDescription:
    """Look at a dashboard image with the vision model and answer a question about it."""
    return await describe_image(app_state(ctx).settings, image_url, question)


async def scale_node_pool(
    ctx: Ctx,
    cluster_id: Annotated[TkeClusterId, Field(description=f"TKE cluster: {TKE_CLUSTER_HINT}")],
    node_pool_id: Annotated[
        str, Field(max_length=128, description="e.g. np-abc123 (see list_node_pools)")
    ],
    desired: Annotated[
        int, Field(ge=0, le=1000, description="desired number of nodes"), WHOLE_NUMBER
    ],
    region: Region = None,
    mode: ModeArg = "dry_run",
) -> NodePoolScaleResult:
    """Set a node pool's desired size: dry_run (default) reports what would change, execute
    sets it (needs rollback_permission 'execute').

    Every call is audited, refusals included.
    """
    spec = NodePoolScaleSpec(
        cluster_id=cluster_id, node_pool_id=node_pool_id, desired=desired, region=region
    )
    # The service reads the permission from the database and decides; this door only asks.
    return await app_state(ctx).cloud_ops.scale_node_pool(cloud_actor(ctx), spec, mode)


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(describe_dashboard_image, annotations=LOOK)
    for tool in (
        create_node_pool,
        create_logset,
        create_log_topic,
        create_cls_alarm,
        create_scheduled_sql,
    ):
        # Creates add resources and find an existing one by name on a retry.
        mcp.add_tool(tool, annotations=WRITE)  # type: ignore[arg-type]
    # Changes to running workloads replace what runs (idempotent per key / apply).
    for change in (apply_yaml, scale_workload, restart_workload, scale_node_pool):
        mcp.add_tool(change, annotations=CHANGE)  # type: ignore[arg-type]
