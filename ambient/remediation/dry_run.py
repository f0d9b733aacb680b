"""The dry-run executor: records exactly what each rung would patch, and changes nothing.

With a readable cluster a step is the Kubernetes executor's own plan, not sent: the same
writes, and none for an object already as the rung wants it; without one, the patch comes
from the alert and the checkpoint, and the result says so. It is the default executor and the
one every ``dry_run`` mode uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.core_v1 import ConfigMap

from ambient.clients.kube import (
    REVISION,
    KubeClients,
    KubeError,
    KubeNotFoundError,
    KubeUnauthorizedError,
    revision_number,
)
from ambient.clients.tencent.client import TencentCloud
from ambient.remediation.changes import (
    RESTARTED_AT,
    annotations_of,
    configmaps_of,
    images_of,
    isolation_value,
    revision_template,
    stamp_annotations,
)
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.kube_plans import StepInputError, WorkloadReplacedError
from ambient.remediation.kube_reads import ClusterReads, previous_revision, rollout_health
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
from ambient.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class WorkloadView:
    """What one read of a Deployment and its neighbours shows (plain dicts, as the API sent)."""

    deployment: dict[str, Any]
    # ReplicaSets by revision, also under the numbers a rollback renumbered them from.
    revisions: dict[int, dict[str, Any]]
    services: dict[str, dict[str, str]]
    configmaps: dict[str, dict[str, Any]]

    @property
    def revision(self) -> int | None:
        return revision_number(annotations_of(self.deployment).get(REVISION))

    @property
    def replicas(self) -> int | None:
        value = self.deployment.get("spec", {}).get("replicas")
        return int(value) if value is not None else None


async def read_workload(client: AsyncClient, target: WorkloadRef) -> WorkloadView:
    """The Deployment and its neighbours: the same reads the Kubernetes executor plans from."""
    reads = ClusterReads(client)
    deployment = await reads.deployment(target)
    revisions = await reads.revisions(deployment, with_history=True)
    services: dict[str, dict[str, str]] = {}
    configmaps: dict[str, dict[str, Any]] = {}
    try:
        for service in await reads.services(deployment):
            services[service["metadata"]["name"]] = dict(service["spec"]["selector"])
        for name in configmaps_of(deployment["spec"]["template"]):
            found = await reads.get(ConfigMap, target.namespace, name)
            if found is not None:
                configmaps[name] = dict(found.get("data") or {})
    except KubeError as exc:
        # A cluster (or stand-in) without these reads still gets restart/scale/rollback.
        log.info("services/configmaps of %s not readable: %s", target, exc)
    return WorkloadView(deployment, revisions, services, configmaps)


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
        return {deployment: patch}, f"scale {deployment} from None to {step.replicas} replicas"
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
            patches[f"configmap/{step.target.namespace}/{name}"] = {"data": data}
        return patches, (
            f"full rollback of {deployment} to revision {baseline.revision}: template, "
            f"{baseline.replicas} replicas, {len(baseline.service_selectors)} Service(s), "
            f"{len(baseline.configmaps)} ConfigMap(s) as before the incident"
        )
    return {}, "hand over to a person: no change"


class DryRunExecutor:
    """Implements RemediationExecutor without writing anything."""

    def __init__(self, clients: KubeClients | None = None) -> None:
        self._clients = clients

    async def _view(self, target: WorkloadRef) -> tuple[WorkloadView | None, str]:
        if self._clients is None:
            return None, "no cluster access configured"
        try:
            client = await self._clients.client(target.cluster_id)
            return await read_workload(client, target), ""
        except KubeNotFoundError:
            # The cluster answered that there is no such workload: not a plan from the alert.
            raise
        except KubeError as exc:
            if isinstance(exc, KubeUnauthorizedError):
                await self._clients.forget(target.cluster_id)
            return None, str(exc)
        except Exception as exc:  # unreachable cluster, TKE errors: a dry run still reports
            return None, f"cluster {target.cluster_id} not reachable: {exc}"

    async def checkpoint(self, target: WorkloadRef) -> Checkpoint:
        view, why = await self._view(target)
        now = datetime.now(UTC)
        if view is None:
            return Checkpoint(
                target=target,
                revision=None,
                replicas=None,
                taken_at=now,
                observed=False,
                detail=f"dry run from the alert alone ({why})",
            )
        previous = previous_revision(view.revisions, view.revision)
        return Checkpoint(
            target=target,
            uid=view.deployment.get("metadata", {}).get("uid"),
            revision=view.revision,
            previous_revision=previous,
            # As the Kubernetes executor records it: a rung 3 after the pruning still shows it.
            previous_template=revision_template(view.revisions, previous, None),
            replicas=view.replicas,
            images=images_of(view.deployment.get("spec", {}).get("template") or {}),
            spec=view.deployment.get("spec", {}),
            service_selectors=view.services,
            configmaps=view.configmaps,
            taken_at=now,
            detail="read from the cluster",
        )

    async def apply(self, step: StepRequest) -> StepResult:
        why = "no cluster access configured"
        if self._clients is not None:
            try:
                # The Kubernetes executor's own plan, not sent: the dry run lists exactly the
                # writes a run with it would make (an object already as wanted is no change).
                return await KubernetesExecutor(self._clients).apply(
                    step.model_copy(update={"mode": "dry_run"})
                )
            except (KubeNotFoundError, StepInputError, WorkloadReplacedError):
                raise  # the cluster answered: no plan from the alert would be true
            except KubeError as exc:
                why = str(exc)
            except Exception as exc:  # unreachable cluster, TKE errors: a dry run still reports
                why = f"cluster {step.target.cluster_id} not reachable: {exc}"
        patches, sentence = step_patches(step)
        detail = f"dry run: would {sentence}; from the alert ({why})"
        return StepResult(applied=False, detail=detail, patch=patches)

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth:
        try:
            view, why = await self._view(target)
        except KubeNotFoundError as exc:
            view, why = None, str(exc)
        if view is None:
            return RolloutHealth(
                available=False, ready_replicas=0, desired=0, detail=why, observed=False
            )
        # The Kubernetes executor's verdict: old pods still ready do not make a stuck or
        # unfinished rollout healthy.
        return rollout_health(view.deployment)


def default_executors(
    settings: Settings, tencent: TencentCloud | None
) -> dict[str, RemediationExecutor]:
    """The dry-run and Kubernetes executors, sharing the worker's cluster clients."""
    clients = KubeClients(settings.kubeconfig, tencent)
    return {"dry_run": DryRunExecutor(clients), "kubernetes": KubernetesExecutor(clients)}
