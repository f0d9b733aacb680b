"""Asked-for cloud operations: create node pools, logsets, topics, CLS alarms, scheduled SQL.

One service behind the MCP tools, the API routes and the CLI, so the rules hold everywhere:

- the caller's permission is read from the database on every call (`rollback_permission`:
  ``none`` refuses, ``dry_run`` may preview, ``execute`` may change the cloud);
- ``dry_run`` is the default and sends nothing: it answers the exact request that would go;
- a create first looks its resource up by name, so a retried create finds what the first
  attempt made instead of making a second one;
- every call leaves an audit row (refusals and failures included);
- Tencent Cloud errors come back as one readable sentence per class (auth, quota, invalid
  parameter, not found, unavailable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ambient.clients.tencent import writes
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import (
    TencentAuthError,
    TencentCloudError,
    TencentNotConfiguredError,
    TencentNotFoundError,
    TencentRetryableError,
)
from ambient.clients.tencent.writes import CloudRequest
from ambient.domain.users import RollbackPermission
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import UserRepository

Mode = Literal["dry_run", "execute"]
Region = str | None
Finder = Callable[[], Awaitable[str | None]]

QUOTA_PREFIXES = ("LimitExceeded", "ResourceInsufficient", "ResourceUnavailable.Quota")
INVALID_PREFIXES = ("InvalidParameter", "MissingParameter", "UnknownParameter", "OperationDenied")


class CloudOpsError(Exception):
    """A cloud operation was refused or failed; the message is meant for the person asking."""

    kind = "failed"


class CloudOpsRefusedError(CloudOpsError):
    """The caller may not do this."""

    kind = "refused"


class CloudOpsInputError(CloudOpsError):
    """The input cannot work; ``field`` names what to fix."""

    kind = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class CloudOpsFailedError(CloudOpsError):
    """Tencent Cloud (or the cluster) answered with an error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def readable(exc: TencentCloudError, request: CloudRequest) -> CloudOpsFailedError:
    """One sentence per error class that says what to do about it."""
    where = f"{request.action} ({exc.code})"
    if isinstance(exc, TencentNotConfiguredError):
        return CloudOpsFailedError("not_configured", exc.message)
    if isinstance(exc, TencentAuthError):
        return CloudOpsFailedError(
            "auth",
            f"Tencent Cloud refused {where}: check the SecretId/SecretKey and that the CAM "
            f"policy allows {request.cam_action} (docs/tencent-cloud.md). {exc.message}",
        )
    if exc.code.startswith(QUOTA_PREFIXES):
        return CloudOpsFailedError(
            "quota",
            f"Tencent Cloud quota or limit reached for {where}: remove unused resources or "
            f"raise the quota in the console. {exc.message}",
        )
    if isinstance(exc, TencentNotFoundError):
        return CloudOpsFailedError(
            "not_found", f"{where}: something the request names does not exist. {exc.message}"
        )
    if exc.code.startswith(INVALID_PREFIXES):
        return CloudOpsFailedError(
            "invalid_parameter",
            f"Tencent Cloud rejected a parameter of {where}: {exc.message}",
        )
    if isinstance(exc, TencentRetryableError):
        return CloudOpsFailedError(
            "unavailable", f"Tencent Cloud is unavailable for {where}; try again. {exc.message}"
        )
    return CloudOpsFailedError("failed", f"{where} failed: {exc.message}")


# --- what can be asked for (typed inputs shared by MCP, API and CLI) ------------------------
class NodePoolSpec(BaseModel):
    cluster_id: str = Field(max_length=64, description="TKE cluster, e.g. cls-abc123")
    name: str = Field(min_length=1, max_length=64, description="node pool name (unique)")
    vpc_id: str = Field(max_length=64, description="VPC of the cluster, e.g. vpc-abc123")
    subnet_ids: list[str] = Field(min_length=1, max_length=20, description="subnets for nodes")
    instance_type: str = Field(max_length=64, description="CVM instance type, e.g. S5.MEDIUM4")
    minimum: int = Field(default=0, ge=0, le=1000, description="fewest nodes")
    maximum: int = Field(default=3, ge=0, le=1000, description="most nodes")
    desired: int = Field(default=1, ge=0, le=1000, description="nodes to start with")
    disk_type: str = Field(default="CLOUD_PREMIUM", max_length=32, description="system disk")
    disk_size: int = Field(default=50, ge=20, le=1024, description="system disk GB")
    security_group_ids: list[str] = Field(default_factory=list, max_length=5)
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes node labels")
    os_name: str | None = Field(default=None, max_length=64, description="e.g. tlinux3.1x86_64")
    region: Region = Field(default=None, description="region (default: configured)")


class LogsetSpec(BaseModel):
    name: str = Field(min_length=1, max_length=255, description="logset name (unique)")
    region: Region = Field(default=None, description="region (default: configured)")


class TopicSpec(BaseModel):
    logset_id: str = Field(max_length=64, description="the logset the topic belongs to")
    name: str = Field(min_length=1, max_length=255, description="topic name (unique in logset)")
    period: int = Field(default=30, ge=1, le=3600, description="retention days")
    partitions: int = Field(default=1, ge=1, le=10, description="partition count")
    region: Region = Field(default=None, description="region (default: configured)")


class AlarmSpec(BaseModel):
    name: str = Field(min_length=1, max_length=255, description="alarm policy name (unique)")
    topic_id: str = Field(max_length=64, description="CLS topic the query runs on")
    query: str = Field(
        min_length=1, max_length=4000, description="e.g. 'level:ERROR | select count(*) as n'"
    )
    condition: str = Field(
        min_length=1, max_length=1000, description="trigger, e.g. '$1.n > 10' ($1 = the query)"
    )
    period_minutes: int = Field(default=5, ge=1, le=1440, description="how often it runs")
    window_minutes: int = Field(default=15, ge=1, le=1440, description="minutes searched")
    trigger_count: int = Field(default=1, ge=1, le=10, description="hits before it fires")
    level: int = Field(default=1, ge=0, le=2, description="0 warning, 1 info, 2 critical")
    notice_ids: list[str] = Field(
        default_factory=list, max_length=10, description="existing notice ids (notice-...)"
    )
    notice_name: str | None = Field(
        default=None, max_length=255, description="create (or reuse) a notice of this name"
    )
    notice_webhook: str | None = Field(
        default=None, max_length=1000, description="webhook URL the new notice calls"
    )
    notice_uids: list[int] = Field(
        default_factory=list, max_length=20, description="sub-account uins to email/SMS"
    )
    region: Region = Field(default=None, description="region (default: configured)")


class ScheduledSqlSpec(BaseModel):
    name: str = Field(min_length=1, max_length=255, description="task name (unique)")
    source_topic_id: str = Field(max_length=64, description="topic the SQL reads")
    target_topic_id: str = Field(max_length=64, description="topic the results go to")
    sql: str = Field(min_length=1, max_length=4000, description="e.g. '* | select count(*)'")
    period_minutes: int = Field(default=60, ge=1, le=1440, description="run every N minutes")
    window: str = Field(
        default="@m-1h,@m", max_length=64, description="time window of each run, CLS syntax"
    )
    start: datetime | None = Field(default=None, description="first run (default: now)")
    region: Region = Field(default=None, description="region (default: configured)")


class WriteStep(BaseModel):
    request: CloudRequest = Field(description="exactly what is (or would be) sent")
    idempotency_key: str
    sent: bool = Field(description="true when this call sent the request")
    existing: bool = Field(description="true when a resource of that name already existed")
    resource_id: str | None = None


class WriteResult(BaseModel):
    operation: str
    mode: Mode
    steps: list[WriteStep]
    resource_id: str | None = Field(description="the id of the created (or found) resource")
    summary: str


class CloudOpsService:
    """Cloud writes for one process; callers pass who is asking, never what they may do."""

    def __init__(self, db: Database, tencent: TencentCloud) -> None:
        self.db, self.tencent = db, tencent

    # --- permission and audit -----------------------------------------------------------
    async def permission(self, actor: str) -> RollbackPermission:
        async with self.db.session() as session:
            user = await UserRepository(session).get(actor)
        return RollbackPermission(user.rollback_permission) if user else RollbackPermission.NONE

    async def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        async with self.db.session() as session:
            await AuditRepository(session).append(
                actor=actor, action=action, subject=subject, detail=detail
            )
            await session.commit()

    async def authorize(self, actor: str, operation: str, subject: str, mode: Mode) -> None:
        """Refuse (and audit the refusal) unless the stored permission covers ``mode``."""
        permission = await self.permission(actor)
        if permission is RollbackPermission.NONE:
            reason = (
                f"You may not change the cloud ({actor!r} has rollback_permission 'none' or "
                "is not a registered user); ask an admin."
            )
        elif mode == "execute" and permission is not RollbackPermission.EXECUTE:
            reason = (
                "Your rollback_permission is 'dry_run': you may preview this change "
                "(mode='dry_run') but not execute it; ask an admin."
            )
        else:
            return
        await self.audit(
            actor,
            f"cloud.{operation}",
            subject,
            {"mode": mode, "outcome": "refused", "permission": permission.value},
        )
        raise CloudOpsRefusedError(reason)

    # --- the shared create flow ---------------------------------------------------------
    async def _create(
        self,
        actor: str,
        operation: str,
        subject: str,
        mode: Mode,
        request: CloudRequest,
        find: Finder,
    ) -> WriteStep:
        key = request.idempotency_key()
        detail: dict[str, Any] = {
            "mode": mode,
            "request": request.model_dump(),
            "idempotency_key": key,
        }
        try:
            try:
                found = await find()
                step = WriteStep(
                    request=request,
                    idempotency_key=key,
                    sent=False,
                    existing=found is not None,
                    resource_id=found,
                )
                if found is None and mode == "execute":
                    step.resource_id = await writes.send(self.tencent, request)
                    step.sent = True
            except TencentCloudError as exc:
                raise readable(exc, request) from None
        except CloudOpsError as exc:
            await self.audit(
                actor,
                f"cloud.{operation}",
                subject,
                {**detail, "outcome": "failed", "kind": exc.kind, "reason": str(exc)},
            )
            raise
        outcome = "existing" if step.existing else ("executed" if step.sent else "dry_run")
        await self.audit(
            actor,
            f"cloud.{operation}",
            subject,
            {**detail, "outcome": outcome, "resource_id": step.resource_id},
        )
        return step

    @staticmethod
    def _result(operation: str, mode: Mode, steps: list[WriteStep], what: str) -> WriteResult:
        last = steps[-1]
        if last.existing:
            summary = f"{what} already exists ({last.resource_id}); nothing sent"
        elif last.sent:
            summary = f"created {what} ({last.resource_id})"
        else:
            summary = f"dry run: would send {last.request.action} for {what}; nothing sent"
        return WriteResult(
            operation=operation,
            mode=mode,
            steps=steps,
            resource_id=last.resource_id,
            summary=summary,
        )

    # --- operations ---------------------------------------------------------------------
    async def create_node_pool(
        self, actor: str, spec: NodePoolSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        if not spec.minimum <= spec.desired <= spec.maximum:
            raise CloudOpsInputError(
                "desired", f"must be within [minimum, maximum] = [{spec.minimum}, {spec.maximum}]"
            )
        subject = f"tke:{spec.cluster_id}/nodepool:{spec.name}"
        await self.authorize(actor, "create_node_pool", subject, mode)
        request = writes.node_pool_request(
            cluster_id=spec.cluster_id,
            name=spec.name,
            vpc_id=spec.vpc_id,
            subnet_ids=spec.subnet_ids,
            instance_type=spec.instance_type,
            minimum=spec.minimum,
            maximum=spec.maximum,
            desired=spec.desired,
            disk_type=spec.disk_type,
            disk_size=spec.disk_size,
            security_group_ids=spec.security_group_ids,
            labels=spec.labels,
            os_name=spec.os_name,
            region=spec.region,
        )
        step = await self._create(
            actor,
            "create_node_pool",
            subject,
            mode,
            request,
            lambda: writes.find_node_pool(
                self.tencent, spec.cluster_id, spec.name, region=spec.region
            ),
        )
        return self._result("create_node_pool", mode, [step], f"node pool {spec.name!r}")

    async def create_logset(
        self, actor: str, spec: LogsetSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        subject = f"cls:logset:{spec.name}"
        await self.authorize(actor, "create_logset", subject, mode)
        request = writes.logset_request(name=spec.name, region=spec.region)
        step = await self._create(
            actor,
            "create_logset",
            subject,
            mode,
            request,
            lambda: writes.find_logset(self.tencent, spec.name, region=spec.region),
        )
        return self._result("create_logset", mode, [step], f"logset {spec.name!r}")

    async def create_log_topic(
        self, actor: str, spec: TopicSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        subject = f"cls:{spec.logset_id}/topic:{spec.name}"
        await self.authorize(actor, "create_log_topic", subject, mode)
        request = writes.topic_request(
            logset_id=spec.logset_id,
            name=spec.name,
            period=spec.period,
            partitions=spec.partitions,
            region=spec.region,
        )
        step = await self._create(
            actor,
            "create_log_topic",
            subject,
            mode,
            request,
            lambda: writes.find_topic(self.tencent, spec.logset_id, spec.name, region=spec.region),
        )
        return self._result("create_log_topic", mode, [step], f"log topic {spec.name!r}")

    async def create_cls_alarm(
        self, actor: str, spec: AlarmSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        wants_notice = bool(spec.notice_name)
        if not spec.notice_ids and not wants_notice:
            raise CloudOpsInputError(
                "notice_ids", "name an existing notice or give notice_name to create one"
            )
        if wants_notice and not (spec.notice_webhook or spec.notice_uids):
            raise CloudOpsInputError(
                "notice_webhook", "a new notice needs notice_webhook or notice_uids"
            )
        subject = f"cls:alarm:{spec.name}"
        await self.authorize(actor, "create_cls_alarm", subject, mode)
        steps: list[WriteStep] = []
        notice_ids = list(spec.notice_ids)
        if spec.notice_name:
            notice_name = spec.notice_name
            notice = await self._create(
                actor,
                "create_cls_alarm_notice",
                f"cls:notice:{notice_name}",
                mode,
                writes.alarm_notice_request(
                    name=notice_name,
                    webhook_url=spec.notice_webhook,
                    receiver_uids=spec.notice_uids,
                    region=spec.region,
                ),
                lambda: writes.find_alarm_notice(self.tencent, notice_name, region=spec.region),
            )
            steps.append(notice)
            # In a dry run a new notice has no id yet: the placeholder says where it comes from.
            notice_ids.append(notice.resource_id or f"<id of new notice {notice_name!r}>")
        request = writes.alarm_request(
            name=spec.name,
            topic_id=spec.topic_id,
            query=spec.query,
            condition=spec.condition,
            period_minutes=spec.period_minutes,
            window_minutes=spec.window_minutes,
            trigger_count=spec.trigger_count,
            notice_ids=notice_ids,
            level=spec.level,
            region=spec.region,
        )
        steps.append(
            await self._create(
                actor,
                "create_cls_alarm",
                subject,
                mode,
                request,
                lambda: writes.find_alarm(self.tencent, spec.name, region=spec.region),
            )
        )
        return self._result("create_cls_alarm", mode, steps, f"alarm policy {spec.name!r}")

    async def create_scheduled_sql(
        self,
        actor: str,
        spec: ScheduledSqlSpec,
        mode: Mode = "dry_run",
        *,
        now: datetime | None = None,
    ) -> WriteResult:
        if spec.source_topic_id == spec.target_topic_id:
            raise CloudOpsInputError("target_topic_id", "must differ from source_topic_id")
        subject = f"cls:scheduled_sql:{spec.name}"
        await self.authorize(actor, "create_scheduled_sql", subject, mode)
        start = spec.start or now or datetime.now(UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        request = writes.scheduled_sql_request(
            name=spec.name,
            source_topic_id=spec.source_topic_id,
            target_topic_id=spec.target_topic_id,
            sql=spec.sql,
            # Whole minutes: a retry a few seconds later builds the same request (same key).
            start_ms=int(start.replace(second=0, microsecond=0).timestamp()) * 1000,
            period_minutes=spec.period_minutes,
            window=spec.window,
            region=spec.region,
        )
        step = await self._create(
            actor,
            "create_scheduled_sql",
            subject,
            mode,
            request,
            lambda: writes.find_scheduled_sql(self.tencent, spec.name, region=spec.region),
        )
        return self._result("create_scheduled_sql", mode, [step], f"scheduled SQL {spec.name!r}")
