"""Asked-for Kubernetes changes: apply YAML, scale or restart a Deployment (dry run first).

Scale and restart go through the remediation's Kubernetes executor, so they carry the same
step-key stamp: the same idempotency key again finds the change already made.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from lightkube import AsyncClient
from pydantic import BaseModel, Field

from ambient.clients.kube import KubeClients
from ambient.clients.kube_errors import (
    KubeError,
    KubeForbiddenError,
    KubeNotFoundError,
    KubeRefusedError,
    KubeUnauthorizedError,
    KubeUnavailableError,
)
from ambient.cloud.apply import (
    ApplyResult,
    ApplySpec,
    DocumentChange,
    apply_documents,
    parse_documents,
    preview,
)
from ambient.cloud.audit import Mode, Region, outcome_of
from ambient.cloud.errors import CloudOpsFailedError, CloudOpsInputError, lacks_permission, readable
from ambient.cloud.service import CloudOpsService
from ambient.domain.configs import UserConfig
from ambient.domain.identifiers import ClusterRef, NamespaceName, ObjectName
from ambient.remediation.changes import RESTARTED_AT, Obj, annotations_of
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.kube_reads import ClusterReads
from ambient.remediation.ladder import STEP_ANNOTATION, Rung, StepRequest, StepResult, WorkloadRef


class WorkloadSpec(UserConfig):
    cluster_id: ClusterRef = Field(description="TKE cluster id or a context of AMBIENT_KUBECONFIG")
    namespace: NamespaceName = Field(description="namespace of the Deployment")
    name: ObjectName = Field(description="Deployment name")
    region: Region = Field(
        default=None, description="the TKE cluster's region (default: configured)"
    )
    idempotency_key: str | None = Field(
        default=None,
        max_length=100,
        description="the same key again finds the change already made (default: derived "
        "from the request and, for a scale, the Deployment as it is now; for a restart, the "
        "version read, or our own restart of it in the last 5 minutes when retried)",
    )


class WorkloadResult(BaseModel):
    mode: Mode
    target: str
    applied: bool
    already_applied: bool
    detail: str
    patch: dict[str, Any] | None = None
    idempotency_key: str


T = TypeVar("T")


def _kube_failure(exc: KubeError, what: str, unchanged: str = "") -> CloudOpsFailedError:
    """``exc`` in words; ``unchanged``: the workload said not changed (nothing was sent)."""
    if isinstance(exc, KubeForbiddenError):
        return lacks_permission(exc, f"{what} was not changed")
    if isinstance(exc, KubeRefusedError):  # a webhook's policy, a quota: not the credentials
        return CloudOpsFailedError("conflict", f"{exc}; {what} was not changed")
    kind, message = "failed", f"{what}: {exc}"
    if isinstance(exc, KubeNotFoundError):
        kind = "not_found"
    elif isinstance(exc, KubeUnauthorizedError):  # the credentials, not the request
        kind = "auth"
    elif isinstance(exc, KubeUnavailableError):
        unsaid = f"; {unchanged} was not changed" if unchanged else ""
        kind, message = "unavailable", f"{message}{unsaid}; try again"
    return CloudOpsFailedError(kind, message, stale=exc.stale, stale_again=exc.stale_again)


# The most replicas a scale may ask for, at every door (MCP and the API say it in their schema).
MAX_REPLICAS = 1000

# A restart asked for again this soon after our own restart of the Deployment is its retry.
RESTART_RETRY_WINDOW = timedelta(minutes=5)


def _hashed(derived: str) -> str:
    return hashlib.sha256(derived.encode()).hexdigest()[:24]


def _stamp(operation: str, key: str, *asked: object) -> str:
    # The operation and what is asked are part of the stamp: a scale and a restart under one
    # key are two, and so are a scale to 5 and one to 3 (a caller's key reused).
    return ":".join(["asked", operation, key, *map(str, asked)])


def _restart(asked: str, deployment: Obj | None) -> tuple[str, dict[str, Any]]:
    """A restart's derived key and restartedAt: our own restart's if it is the Deployment's
    last step and within the retry window (a client retrying after a timeout: found already
    made), else now, keyed by the version read (a retry racing its first call: one wins)."""
    now = datetime.now(UTC).replace(microsecond=0)
    moment = {"restarted_at": now.isoformat().replace("+00:00", "Z")}
    if deployment is None:
        return "", moment
    last = annotations_of(deployment["spec"]["template"]).get(RESTARTED_AT)
    step = annotations_of(deployment).get(STEP_ANNOTATION) or ""
    ours = step.removeprefix(_stamp("restart_workload", ""))
    with contextlib.suppress(ValueError, TypeError):
        if last and ours != step and now - datetime.fromisoformat(last) < RESTART_RETRY_WINDOW:
            return ours, {"restarted_at": last}
    version = deployment["metadata"].get("resourceVersion")
    return _hashed(f"{asked}{version}"), moment


class WorkloadOps:
    """apply_yaml, scale_workload and restart_workload, on the process's cluster clients (one
    a cluster, kept: a TKE cluster's kubeconfig is not asked for again before each change)."""

    def __init__(self, service: CloudOpsService, clients: KubeClients) -> None:
        self.service = service
        self.clients = clients
        self.executor = KubernetesExecutor(self.clients)

    async def _on_cluster(
        self,
        cluster_id: str,
        region: str | None,
        work: Callable[[AsyncClient], Awaitable[T]],
        unchanged: Callable[[], bool] = lambda: True,
    ) -> T:
        """``work`` on the cluster's kept client, made again once within the request when it
        is stale (refused credentials, the cluster re-created or moved), as the worker's is:
        KubeClients.using, with ``unchanged`` (false once ``work`` has changed something)."""
        try:
            with readable("tke", "DescribeClusterKubeconfig"):
                return await self.clients.using(cluster_id, region, work, unchanged)
        except KubeError as exc:  # no client: TKE gave no kubeconfig, the file is unreadable
            raise _kube_failure(exc, f"cluster {cluster_id}") from None

    async def apply_yaml(self, actor: str, spec: ApplySpec, mode: Mode = "dry_run") -> ApplyResult:
        subject = f"kube:{spec.cluster_id}"
        # Permission first: a caller who may not apply is not told what is wrong with the YAML.
        await self.service.authorize(actor, "apply_yaml", subject, mode)
        # The namespace too: it is where documents that name none go.
        key = _hashed(f"{spec.cluster_id}\n{spec.namespace}\n{spec.documents}")
        detail: dict[str, Any] = {"mode": mode, "idempotency_key": key, "sent": False}
        async with self.service.audited(actor, "apply_yaml", subject, detail):
            # Inside the audit: YAML refused before anything is sent leaves its row (invalid).
            objects = parse_documents(spec.documents, spec.namespace)
            writing: list[bool] = []

            async def apply(client: AsyncClient) -> list[DocumentChange]:
                changes = await preview(client, objects)
                detail["documents"] = [f"{c.kind}/{c.namespace or ''}/{c.name}" for c in changes]
                if mode == "execute":
                    writing.append(True)  # a refusal now may follow documents applied
                    detail["sent"] = True
                    await apply_documents(client, objects, changes)
                return changes

            changes = await self._on_cluster(
                spec.cluster_id, spec.region, apply, unchanged=lambda: not writing
            )
            applied = sum(c.applied for c in changes)
            counts = {k: sum(c.change == k for c in changes) for k in ("create", "update")}
            # An execute that changed nothing in the cluster is a no-op, not an execution.
            outcome = outcome_of(mode, changed=applied > 0)
            detail.update(outcome=outcome, **counts, applied=applied)
        verb = {
            "dry_run": "dry run: would apply",
            "executed": f"applied {applied}",
            "noop": "no-op: changed none",
        }[outcome]
        summary = (
            f"{verb} of {len(changes)} documents ({counts['create']} new, "
            f"{counts['update']} changed, {len(changes) - sum(counts.values())} unchanged)"
        )
        return ApplyResult(
            mode=mode,
            cluster_id=spec.cluster_id,
            documents=changes,
            idempotency_key=key,
            summary=summary,
        )

    async def _step(
        self,
        actor: str,
        operation: str,
        spec: WorkloadSpec,
        mode: Mode,
        rung: Rung,
        derive: Callable[[Obj | None], tuple[str, dict[str, Any]]],
        check: Callable[[], None] = lambda: None,
        **fields: Any,
    ) -> WorkloadResult:
        """The step; ``derive`` gives the derived key and more of the step's fields from the
        Deployment as it is now (read only when no key was given). ``check`` refuses bad
        input, after the permission: who may not act hears that, not what is wrong with it."""
        target = WorkloadRef.model_validate(spec, from_attributes=True)
        subject = f"kube:{target}"
        await self.service.authorize(actor, operation, subject, mode, **fields)
        detail: dict[str, Any] = {"mode": mode, **fields, "sent": False}
        async with self.service.audited(actor, operation, subject, detail):
            check()

            async def change(client: AsyncClient) -> tuple[str, StepResult]:
                try:
                    deployment = None
                    if spec.idempotency_key is None:
                        deployment = await ClusterReads(client).deployment(target)
                    derived, more = derive(deployment)
                    key = spec.idempotency_key or derived
                    detail.update(more, idempotency_key=key)
                    step = StepRequest(
                        remediation_id="asked",
                        asked=True,
                        rung=rung,
                        target=target,
                        mode=mode,
                        key=_stamp(operation, key, *fields.values()),
                        **fields,
                        **more,
                    )
                    # On this client: this is its one retry (not the executor's own too).
                    made = self.executor.apply_on(client, step, lambda now: detail.update(sent=now))
                    return key, await made
                except KubeError as exc:
                    unsent = "" if detail["sent"] else f"the workload {target.name}"
                    raise _kube_failure(exc, f"{operation} {target}", unsent) from None

            key, result = await self._on_cluster(spec.cluster_id, spec.region, change)
            detail["outcome"] = outcome_of(
                mode, changed=result.applied, existing=result.already_applied
            )
        return WorkloadResult(
            mode=mode,
            target=str(target),
            applied=result.applied,
            already_applied=result.already_applied,
            detail=result.skipped_reason or result.detail,
            patch=result.patch,
            idempotency_key=key,
        )

    async def scale_workload(
        self, actor: str, spec: WorkloadSpec, replicas: int, mode: Mode = "dry_run"
    ) -> WorkloadResult:
        def check() -> None:
            if replicas < 1:
                raise CloudOpsInputError("replicas", "must be at least 1")
            if replicas > MAX_REPLICAS:
                raise CloudOpsInputError("replicas", f"must be at most {MAX_REPLICAS}")

        asked = f"scale\n{spec.cluster_id}\n{spec.namespace}\n{spec.name}\n{replicas}"

        def derive(deployment: Obj | None) -> tuple[str, dict[str, Any]]:
            # A derived key belongs to the Deployment as it is now: the same words again after
            # another change (scale to 5, to 3, to 5) are a new change, while a retry finds
            # the count already made.
            version = deployment and deployment["metadata"].get("resourceVersion")
            return _hashed(f"{asked}\n{version}"), {}

        return await self._step(
            actor, "scale_workload", spec, mode, Rung.SCALE_OUT, derive, check, replicas=replicas
        )

    async def restart_workload(
        self, actor: str, spec: WorkloadSpec, mode: Mode = "dry_run"
    ) -> WorkloadResult:
        asked = f"restart\n{spec.cluster_id}\n{spec.namespace}\n{spec.name}\n"
        result = await self._step(
            actor, "restart_workload", spec, mode, Rung.RESTART, lambda d: _restart(asked, d)
        )
        if result.already_applied:
            # The executor names its stamp (a hash): say why instead, and how to restart anyway.
            window = int(RESTART_RETRY_WINDOW.total_seconds() // 60)
            why = (
                f"we restarted {spec.namespace}/{spec.name} less than {window} minutes ago"
                if spec.idempotency_key is None
                else f"this idempotency_key already restarted {spec.namespace}/{spec.name}"
            )
            result.detail = (
                f"Not restarted again: {why}, so this request counts as a retry of that "
                "restart. To restart it again now, ask again with a new idempotency_key."
            )
        return result
