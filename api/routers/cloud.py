"""Asked-for cloud operations over HTTP: the same service and rules as the cloud_write tools.

Every write is a dry run unless the body says ``"mode": "execute"``; the caller's
rollback_permission is read from the database, never taken from the request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from ambient.cloud.apply import ApplyResult, ApplySpec
from ambient.cloud.audit import Mode
from ambient.cloud.creates import WriteResult
from ambient.cloud.errors import CloudOpsError, CloudOpsInputError
from ambient.cloud.images import (
    DEFAULT_QUESTION,
    MAX_DATA_URL,
    MAX_QUESTION,
    ImageDescription,
    describe_dashboard_image,
)
from ambient.cloud.logs import AlarmSpec, LogsetSpec, ScheduledSqlSpec, TopicSpec
from ambient.cloud.node_pools import NodePoolScaleResult, NodePoolScaleSpec, NodePoolSpec
from ambient.cloud.workloads import MAX_REPLICAS, WorkloadResult, WorkloadSpec
from ambient.domain.configs import UserConfig
from ambient.domain.numbers import WholeNumber
from api.deps import CurrentUser, StateDep
from api.errors import answers, unprocessable

# Upstream answers by class: what the caller can act on. A refusal of the server's own keys
# or kubeconfig (auth, account) stays 502: 401 and 403 speak of the caller's token and
# permission, which were fine. Two say try again: "unavailable", an outage, 503 as for
# Temporal; "conflict" when a list changed at each read, 409 (the state changed: ask anew).
STATUS = {
    "refused": status.HTTP_403_FORBIDDEN,  # the caller's rollback_permission does not allow it
    "not_found": status.HTTP_404_NOT_FOUND,
    "invalid_parameter": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "invalid_document": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "quota": status.HTTP_409_CONFLICT,
    "conflict": status.HTTP_409_CONFLICT,
    "not_configured": status.HTTP_503_SERVICE_UNAVAILABLE,
    "offline": status.HTTP_503_SERVICE_UNAVAILABLE,
    "unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
}

router = APIRouter(prefix="/cloud", tags=["cloud"], responses=answers(*STATUS.values(), 502))
ModeField = Annotated[
    Mode, Field(description="dry_run (default) answers the exact request; execute sends it")
]


# A write body is its spec and this mode: named first among the bases, so mode comes last.
class WriteMode(BaseModel):
    mode: ModeField = "dry_run"


class NodePoolBody(WriteMode, NodePoolSpec): ...


class NodePoolScaleBody(WriteMode, NodePoolScaleSpec): ...


class LogsetBody(WriteMode, LogsetSpec): ...


class TopicBody(WriteMode, TopicSpec): ...


class AlarmBody(WriteMode, AlarmSpec): ...


class ScheduledSqlBody(WriteMode, ScheduledSqlSpec): ...


class ApplyBody(WriteMode, ApplySpec): ...


# Its own mode, after replicas (WriteMode's would come before them).
class ScaleBody(WorkloadSpec):
    replicas: WholeNumber = Field(ge=1, le=MAX_REPLICAS, description="absolute replica count")
    mode: ModeField = "dry_run"


class RestartBody(WriteMode, WorkloadSpec): ...


class ImageBody(UserConfig):
    image_url: str = Field(max_length=MAX_DATA_URL, description="http(s) URL or data:image/ upload")
    question: str = Field(default=DEFAULT_QUESTION, min_length=1, max_length=MAX_QUESTION)


def http_error(exc: CloudOpsError) -> Exception:
    if isinstance(exc, CloudOpsInputError):
        return unprocessable(([exc.field], str(exc)))
    return HTTPException(STATUS.get(exc.kind, status.HTTP_502_BAD_GATEWAY), str(exc))


@router.post("/node-pools")
async def create_node_pool(body: NodePoolBody, user: CurrentUser, state: StateDep) -> WriteResult:
    """Add a node pool to a TKE cluster (CreateClusterNodePool)."""
    return await state.cloud_ops.create_node_pool(user.name, body, body.mode)


@router.post("/node-pools/scale")
async def scale_node_pool(
    body: NodePoolScaleBody, user: CurrentUser, state: StateDep
) -> NodePoolScaleResult:
    """Set a node pool's desired size (ModifyNodePoolDesiredCapacityAboutAsg)."""
    return await state.cloud_ops.scale_node_pool(user.name, body, body.mode)


@router.post("/logsets")
async def create_logset(body: LogsetBody, user: CurrentUser, state: StateDep) -> WriteResult:
    """Create a CLS logset (CreateLogset)."""
    return await state.cloud_ops.create_logset(user.name, body, body.mode)


@router.post("/log-topics")
async def create_log_topic(body: TopicBody, user: CurrentUser, state: StateDep) -> WriteResult:
    """Create a CLS log topic (CreateTopic)."""
    return await state.cloud_ops.create_log_topic(user.name, body, body.mode)


@router.post("/alarms")
async def create_cls_alarm(body: AlarmBody, user: CurrentUser, state: StateDep) -> WriteResult:
    """Create a CLS alarm policy (CreateAlarm), with a new notice if named."""
    return await state.cloud_ops.create_cls_alarm(user.name, body, body.mode)


@router.post("/scheduled-sql")
async def create_scheduled_sql(
    body: ScheduledSqlBody, user: CurrentUser, state: StateDep
) -> WriteResult:
    """Create a CLS scheduled SQL task (CreateScheduledSql)."""
    return await state.cloud_ops.create_scheduled_sql(user.name, body, body.mode)


@router.post("/apply")
async def apply_yaml(body: ApplyBody, user: CurrentUser, state: StateDep) -> ApplyResult:
    """Server-side apply YAML documents; dry_run answers each document's diff."""
    return await state.workload_ops.apply_yaml(user.name, body, body.mode)


@router.post("/workloads/scale")
async def scale_workload(body: ScaleBody, user: CurrentUser, state: StateDep) -> WorkloadResult:
    """Scale a Deployment to an absolute replica count."""
    return await state.workload_ops.scale_workload(user.name, body, body.replicas, body.mode)


@router.post("/workloads/restart")
async def restart_workload(body: RestartBody, user: CurrentUser, state: StateDep) -> WorkloadResult:
    """Rolling-restart a Deployment."""
    return await state.workload_ops.restart_workload(user.name, body, body.mode)


@router.post("/dashboard-image")
async def describe_image(body: ImageBody, user: CurrentUser, state: StateDep) -> ImageDescription:
    """Ask the vision model about a dashboard image."""
    return await describe_dashboard_image(state.settings, body.image_url, body.question)
