"""Cloud tools: read Tencent Cloud (CLS logs, Cloud Monitor, TKE) and scale node pools."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ambient.clients.kube import Workload
from ambient.clients.log_formats import EPOCH, parse_time
from ambient.clients.tencent import alarms, clusters, logs, metrics
from ambient.cloud.audit import Mode
from ambient.cloud.reads import (
    FILE_TOPIC,
    MAX_ALARM_HOURS,
    MAX_LOGS,
    MAX_METRIC_MINUTES,
    MAX_METRIC_PERIOD,
    LogSearch,
)
from ambient.domain.identifiers import (
    TENCENT_REGION_HINT,
    TKE_CLUSTER_HINT,
    ClusterRef,
    NamespaceName,
    TencentRegion,
    TkeClusterId,
)
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.domain.times import within_years
from ambient.refusals import Refusal, said_back
from ambient.storage.users import user_named
from mcp_server.auth import ANONYMOUS, Ctx, app_state, caller
from mcp_server.tools.hints import LOOK

# Every cloud write's mode: the door never executes unless the person said so.
ModeArg = Annotated[
    Mode,
    Field(
        description="dry_run (default): answer the exact request, send nothing; "
        "execute: make the change (needs rollback_permission 'execute')",
    ),
]

Region = Annotated[
    TencentRegion | None, Field(description=f"{TENCENT_REGION_HINT} (default: configured)")
]

# Both alarm APIs answer every region's alarms, each naming its own: none asked, all of them.
AlarmRegion = Annotated[
    TencentRegion | None,
    Field(
        description=f"only this region's alarms: {TENCENT_REGION_HINT} (default: every region's)"
    ),
]


class Clusters(BaseModel):
    clusters: list[clusters.Cluster]


class NodePools(BaseModel):
    node_pools: list[clusters.NodePool]


class Topics(BaseModel):
    topics: list[logs.LogTopic]


class Alarms(alarms.AlarmHistory):
    """The alarms read, and any source that could not be read (its alarms are missing)."""


class Metric(BaseModel):
    points: list[metrics.MetricPoint]


class Workloads(BaseModel):
    workloads: list[Workload]


def cloud_actor(ctx: Ctx) -> str:
    """Who asks for a cloud operation (anonymous over an unauthenticated transport)."""
    actor = caller(ctx)
    return ANONYMOUS if actor is None else actor


async def _caller_zone(ctx: Ctx) -> tzinfo:
    """The caller's time zone (their profile), where a time without an offset is; else UTC."""
    name = caller(ctx)
    if name is None:
        return UTC
    user = await user_named(app_state(ctx).db, name)
    return ZoneInfo(user.timezone) if user is not None and user.timezone else UTC


def _time(field: str, value: str | None, zone: tzinfo) -> datetime | None:
    """``value`` of the argument ``field`` as a time; refused naming ``field``, as a refused
    argument is named."""
    if value is None:
        return None
    try:
        if EPOCH.fullmatch(value.strip()):  # "ISO time", the schema says: no epoch digits
            raise ValueError(value)
        time = parse_time(value, zone)
    except ValueError:
        shown = said_back(value, 40)
        raise ToolError(
            f"invalid arguments — {field}: not an ISO time: {shown} "
            "(e.g. 2026-11-21T08:00:00+08:00)"
        ) from None
    try:
        return within_years(time)
    except Refusal as exc:
        raise ToolError(f"invalid arguments — {field}: {exc}") from None


async def list_clusters(ctx: Ctx, region: Region = None) -> Clusters:
    """TKE clusters with status, version and node count."""
    return Clusters(clusters=await app_state(ctx).cloud_reads.clusters(region))


async def list_node_pools(
    ctx: Ctx,
    cluster_id: Annotated[TkeClusterId, Field(description=f"TKE cluster: {TKE_CLUSTER_HINT}")],
    region: Region = None,
) -> NodePools:
    """Node pools of a TKE cluster with desired/min/max sizes."""
    return NodePools(node_pools=await app_state(ctx).cloud_reads.node_pools(cluster_id, region))


async def list_log_topics(ctx: Ctx, region: Region = None) -> Topics:
    """CLS log topics (ids for search_logs)."""
    return Topics(topics=await app_state(ctx).cloud_reads.log_topics(region))


async def search_logs(
    ctx: Ctx,
    topic_id: Annotated[
        str, Field(description="a CLS topic id, or file:NAME for a file under AMBIENT_LOG_DIR")
    ],
    query: Annotated[
        str,
        Field(
            description="CQL, e.g. 'level:ERROR', or '* | select ...' SQL; '*' for all "
            "(a file: topic takes field:value or text, joined by AND)"
        ),
    ] = "*",
    start: Annotated[str | None, Field(description="ISO time; default one hour before end")] = None,
    end: Annotated[str | None, Field(description="ISO time; default now")] = None,
    limit: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_LOGS,
            description="log lines at most; an SQL analysis answers as many rows as its own "
            "'limit N' says (100 without one)",
        ),
        WHOLE_NUMBER,
    ] = 100,
    region: Region = None,
) -> LogSearch:
    """Search logs in a time window, newest first."""
    # The caller's zone reads the times given and a log file's times written without offset.
    zone = await _caller_zone(ctx) if start or end or topic_id.startswith(FILE_TOPIC) else UTC
    begin, finish = _time("start", start, zone), _time("end", end, zone)
    return await app_state(ctx).cloud_reads.search_logs(
        topic_id, query, begin, finish, limit=limit, region=region, zone=zone
    )


async def get_metric(
    ctx: Ctx,
    namespace: Annotated[str, Field(description="e.g. QCE/CVM, QCE/TKE2")],
    metric: Annotated[str, Field(description="e.g. CPUUsage")],
    dimensions: Annotated[
        dict[str, str], Field(min_length=1, description='e.g. {"InstanceId": "ins-123"}')
    ],
    minutes: Annotated[int, Field(ge=1, le=MAX_METRIC_MINUTES), WHOLE_NUMBER] = 60,
    period: Annotated[
        int,
        Field(ge=1, le=MAX_METRIC_PERIOD, description="seconds per point: 60, 300, 3600, 86400"),
        WHOLE_NUMBER,
    ] = 60,
    region: Region = None,
) -> Metric:
    """Datapoints of a Cloud Monitor metric over the last minutes."""
    points = await app_state(ctx).cloud_reads.metric(
        namespace, metric, dimensions, minutes=minutes, period=period, region=region
    )
    return Metric(points=points)


async def list_alarms(
    ctx: Ctx,
    hours: Annotated[int, Field(ge=1, le=MAX_ALARM_HOURS), WHOLE_NUMBER] = 24,
    region: AlarmRegion = None,
) -> Alarms:
    """Cloud Monitor alarm history and CLS alert records, newest first."""
    return Alarms(**(await app_state(ctx).cloud_reads.alarms(hours, region)).model_dump())


async def list_workloads(
    ctx: Ctx,
    cluster_id: Annotated[
        ClusterRef | None,
        Field(
            description="TKE cluster id or a context of AMBIENT_KUBECONFIG; omit to use "
            "AMBIENT_KUBECONFIG's current context"
        ),
    ] = None,
    namespace: Annotated[
        NamespaceName | None, Field(description="all namespaces if omitted")
    ] = None,
    region: Region = None,
) -> Workloads:
    """Deployments with replicas ready/updated/available, current revision and images, and
    whether each is rolled out (healthy; health says what its rollout waits for or failed on)."""
    return Workloads(
        workloads=await app_state(ctx).cloud_reads.workloads(cluster_id, namespace, region)
    )


def register(mcp: MCPServer[Any]) -> None:
    for tool in (
        list_clusters,
        list_node_pools,
        list_workloads,
        list_log_topics,
        search_logs,
        get_metric,
        list_alarms,
    ):
        mcp.add_tool(tool, annotations=LOOK)  # type: ignore[arg-type]
