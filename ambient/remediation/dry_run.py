"""The dry-run executor: records exactly what each rung would patch, and changes nothing.

With a readable cluster a step is the Kubernetes executor's own plan, not sent: the same
writes, and none for an object already as the rung wants it; without one, the patch comes
from the alert and the checkpoint, and the result says so (a busy or restarting API server is
waited out by the activity's retries first, as in execute mode). It is the default executor
and the one every ``dry_run`` mode uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio import activity

from ambient import activity_attempts
from ambient.clients.kube import KubeClients
from ambient.clients.kube_errors import (
    KubeError,
    KubeNotFoundError,
    KubeUnreachableError,
    TkeClusterNotFoundError,
)
from ambient.clients.tencent.client import TencentCloud
from ambient.remediation.changes import (
    RESTARTED_AT,
    isolation_value,
    stamp_annotations,
    stopped_reason,
)
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.kube_plans import StepInputError, WorkloadReplacedError
from ambient.remediation.ladder import (
    ISOLATION_LABEL,
    Checkpoint,
    RemediationExecutor,
    RolloutHealth,
    Rung,
    StepRequest,
    StepResult,
    WorkloadRef,
)
from ambient.remediation.runs import CHANGE_RETRY
from ambient.settings import Settings

T = TypeVar("T")


def step_patches(step: StepRequest) -> tuple[dict[str, Any], str]:
    """The patches a rung would make (by object) and a sentence for people, from the alert and
    the checkpoint alone: what a dry run shows when the cluster cannot be read."""
    stamp = {"metadata": {"annotations": stamp_annotations({}, step.key)}}
    deployment = f"deployment/{step.target.namespace}/{step.target.name}"
    if step.rung is Rung.RESTART:
        patch = {
            **stamp,
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: step.restarted_at}}}},
        }
        return {deployment: patch}, f"restart {deployment} (restartedAt {step.restarted_at})"
    if step.rung is Rung.SCALE_OUT:
        patch = {**stamp, "spec": {"replicas": step.replicas}}
        seen = step.checkpoint if step.checkpoint and step.checkpoint.observed else None
        before = "" if seen is None or seen.replicas is None else f" from {seen.replicas}"
        return {deployment: patch}, f"scale {deployment}{before} to {step.replicas} replicas"
    if step.rung is Rung.ROLLBACK:
        target = step.to_revision or "the revision before the one running at the start"
        return {deployment: {**stamp, "rollback_to_revision": target}}, (
            f"roll {deployment} back to {target}"
        )
    if step.rung is Rung.ISOLATE:
        label = {ISOLATION_LABEL: isolation_value(step.key)}
        return {f"services selecting {deployment}": {"spec": {"selector": label}}}, (
            f"isolate {deployment}: add {label} to the selector of its Services"
        )
    if step.rung is Rung.FULL_ROLLBACK:
        baseline = step.checkpoint
        if baseline is None or not baseline.observed:
            return {deployment: {**stamp, "restore": "the release before the incident"}}, (
                f"full rollback of {deployment}: nothing was read, so only the intent is recorded"
            )
        # The checkpoint's objects, as it recorded them: what the cluster holds now is unknown.
        spec = {"replicas": baseline.replicas, "template": baseline.spec.get("template", {})}
        patches: dict[str, Any] = {deployment: {**stamp, "spec": spec}}
        for name, selector in baseline.service_selectors.items():
            patches[f"service/{step.target.namespace}/{name}"] = {"spec": {"selector": selector}}
        for name, data in baseline.configmaps.items():
            binary = baseline.configmap_binaries.get(name)
            restored = {"data": data, **({"binaryData": binary} if binary is not None else {})}
            patches[f"configmap/{step.target.namespace}/{name}"] = restored
        return patches, (
            f"full rollback of {deployment} to revision {baseline.revision}: template, "
            f"{baseline.replicas} replicas, {len(baseline.service_selectors)} Service(s), "
            f"{len(baseline.configmaps)} ConfigMap(s) as before the incident"
        )
    return {}, "hand over to a person: no change"


def first_read_try() -> bool:
    """Whether the running activity is a read's one try in the run's workflow task after its
    opening (a local activity of one attempt), which the regular activity goes on from."""
    if not activity.in_activity():
        return False
    info, policy = activity.info(), activity.info().retry_policy
    once = info.is_local and policy is not None and policy.maximum_attempts == 1
    return once and info.activity_type != "apply_remediation_step"


def tried_again() -> bool:
    """Whether the running change or checkpoint read is tried again after this attempt (never
    outside an activity): not its policy's last attempt, or the first change's one try in the
    opening's workflow task (a local activity of one attempt), which the regular activity
    goes on from (a read's one try there: ``first_read_try``)."""
    if not activity.in_activity():
        return False
    info = activity.info()
    if info.is_local and info.activity_type == "apply_remediation_step":
        return True
    # The policy the workflow gives a change and its checkpoint, where the server sends none.
    return not activity_attempts.last_attempt(CHANGE_RETRY.maximum_attempts)


class DryRunExecutor:
    """Implements RemediationExecutor without writing anything: the Kubernetes executor's own
    reads and plans (dry run and execute agree by construction), none of its writes."""

    def __init__(self, clients: KubeClients | None = None) -> None:
        self._kube = KubernetesExecutor(clients) if clients is not None else None

    async def _read(
        self, cluster_id: str, call: Callable[[KubernetesExecutor], Awaitable[T]]
    ) -> tuple[T | None, str]:
        """The Kubernetes executor's answer, or why the cluster gave none."""
        if self._kube is None:
            return None, "no cluster access configured"
        try:
            return await call(self._kube), ""
        except (KubeNotFoundError, TkeClusterNotFoundError, StepInputError, WorkloadReplacedError):
            # The cluster (or TKE: no cluster of that id) answered: no plan from the alert
            # would be true.
            raise
        except KubeError as exc:
            unanswered = isinstance(exc, KubeUnreachableError)
            if exc.retryable and (first_read_try() or (not unanswered and tried_again())):
                # A busy or restarting API server (it answered 429, 5xx): waited out by the
                # retries, as execute. One that does not answer is reported at once, but not
                # by a read's try in the task (4 s): by the regular activity's (25 s), as before.
                raise
            return None, str(exc)
        except Exception as exc:  # unreachable cluster, TKE errors: a dry run still reports
            return None, f"cluster {cluster_id} not reachable: {exc}"

    async def checkpoint(self, target: WorkloadRef) -> Checkpoint:
        read, why = await self._read(target.cluster_id, lambda kube: kube.checkpoint(target))
        if read is not None:
            return read.model_copy(update={"detail": f"read from the cluster: {read.detail}"})
        return Checkpoint(
            target=target,
            revision=None,
            replicas=None,
            taken_at=datetime.now(UTC),
            observed=False,
            detail=f"dry run from the alert alone ({why})",
        )

    async def apply(self, step: StepRequest) -> StepResult:
        # The Kubernetes executor's own plan, not sent: the dry run lists exactly the writes a
        # run with it would make (an object already as wanted is no change).
        dry = step.model_copy(update={"mode": "dry_run"})
        planned, why = await self._read(step.target.cluster_id, lambda kube: kube.apply(dry))
        if planned is not None:
            return planned
        seen = step.checkpoint if step.checkpoint and step.checkpoint.observed else None
        stopping = step.rung in (Rung.RESTART, Rung.SCALE_OUT) and not step.asked
        if stopping and seen is not None and seen.replicas == 0:
            # As the cluster's own plan says (kube_plans): what someone stopped stays stopped.
            name = f"deployment {step.target.namespace}/{step.target.name}"
            detail = f"dry run: {name} ran no pod at the first checkpoint; from it ({why})"
            reason = stopped_reason(name, step.rung, seen.autoscaler)
            return StepResult(applied=False, detail=detail, skipped_reason=reason, stopped=True)
        patches, sentence = step_patches(step)
        detail = f"dry run: would {sentence}; from the alert ({why})"
        return StepResult(applied=False, detail=detail, patch=patches)

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth:
        try:
            health, why = await self._read(
                target.cluster_id, lambda kube: kube.rollout_health(target)
            )
        except (KubeNotFoundError, TkeClusterNotFoundError) as exc:
            health, why = None, str(exc)
        if health is not None:
            return health
        return RolloutHealth(
            available=False, ready_replicas=0, desired=0, detail=why, observed=False
        )


def default_executors(
    settings: Settings, tencent: TencentCloud | None
) -> dict[str, RemediationExecutor]:
    """The dry-run and Kubernetes executors, sharing the worker's cluster clients."""
    clients = KubeClients(settings.kubeconfig, tencent)
    return {"dry_run": DryRunExecutor(clients), "kubernetes": KubernetesExecutor(clients)}
