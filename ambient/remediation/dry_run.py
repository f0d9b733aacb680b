"""The dry-run executor: records exactly what each rung would patch, and changes nothing.

With a reachable cluster the patch is computed from a real read of the workload (its
revision, ReplicaSets, Services and ConfigMaps); without one, from the alert alone, and
the result says so. It is the default executor and the one every ``dry_run`` mode uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.core_v1 import ConfigMap
from lightkube.resources.networking_v1 import NetworkPolicy

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
    autoscaled_skip,
    configmaps_of,
    images_of,
    isolation_policy_name,
    isolation_value,
    revision_template,
    stamp_annotations,
    without_hash,
)
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.kube_reads import ClusterReads, previous_revision, rollout_health
from ambient.remediation.ladder import (
    ISOLATION_LABEL,
    REMOVED_POLICY_ANNOTATION,
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
    # The HorizontalPodAutoscaler that owns its replicas (with its bounds), if any.
    autoscaler: str | None = None

    @property
    def revision(self) -> int | None:
        return revision_number(annotations_of(self.deployment).get(REVISION))

    @property
    def replicas(self) -> int | None:
        value = self.deployment.get("spec", {}).get("replicas")
        return int(value) if value is not None else None


async def read_workload(
    client: AsyncClient, target: WorkloadRef, *, autoscalers: bool = False
) -> WorkloadView:
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
    autoscaler = await reads.autoscaler(target) if autoscalers else None
    return WorkloadView(deployment, revisions, services, configmaps, autoscaler)


def step_patches(
    step: StepRequest, view: WorkloadView | None, policy: str | None = None
) -> tuple[dict[str, Any], str]:
    """The patches a rung makes (by object) and a sentence for people; None view: from alert.
    ``policy``: the run's isolation NetworkPolicy, found in the cluster (rung 5 removes it)."""
    stamp = {
        "metadata": {"annotations": stamp_annotations(view.deployment if view else {}, step.key)}
    }
    deployment = f"deployment/{step.target.namespace}/{step.target.name}"
    if step.rung is Rung.RESTART:
        patch = {
            **stamp,
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: step.restarted_at}}}},
        }
        return {deployment: patch}, f"restart {deployment} (restartedAt {step.restarted_at})"
    if step.rung is Rung.SCALE_OUT:
        patch = {**stamp, "spec": {"replicas": step.replicas}}
        now = view.replicas if view else None
        return {deployment: patch}, f"scale {deployment} from {now} to {step.replicas} replicas"
    if step.rung is Rung.ROLLBACK:
        if view is not None and step.to_revision is not None:
            template = revision_template(view.revisions, step.to_revision, step.checkpoint)
            if template is not None:
                patch = {**stamp, "spec": {"template": template}}
                return {deployment: patch}, f"roll {deployment} back to revision {step.to_revision}"
        target = step.to_revision or "the revision before the one running at the start"
        return {deployment: {**stamp, "rollback_to_revision": target}}, (
            f"roll {deployment} back to {target}"
        )
    if step.rung is Rung.ISOLATE:
        label = {ISOLATION_LABEL: isolation_value(step.key)}
        services = view.services if view else {}
        if not services:
            return {f"services selecting {deployment}": {"spec": {"selector": label}}}, (
                f"isolate {deployment}: add {label} to the selector of its Services"
            )
        isolated = {
            f"service/{step.target.namespace}/{name}": {**stamp, "spec": {"selector": label}}
            for name in services
        }
        return isolated, f"isolate {deployment}: {len(isolated)} Service selector(s) match no pod"
    if step.rung is Rung.FULL_ROLLBACK:
        baseline = step.checkpoint
        if baseline is None or not baseline.observed:
            return {deployment: {**stamp, "restore": "the release before the incident"}}, (
                f"full rollback of {deployment}: nothing was read, so only the intent is recorded"
            )
        # The release before the incident: the revision before the one running when the
        # remediation began (what rung 3 and the Kubernetes executor restore), not the
        # template recorded then, which is the release under suspicion.
        release = step.to_revision or baseline.previous_revision
        rs = view.revisions.get(release) if view is not None and release else None
        template = (
            without_hash(rs["spec"]["template"])
            if rs is not None
            else baseline.spec.get("template", {})
        )
        # An autoscaler's Deployment keeps its count (the Kubernetes executor leaves it).
        hpa = view.autoscaler if view is not None else None
        spec = (
            {"template": template} if hpa else {"replicas": baseline.replicas, "template": template}
        )
        # As the Kubernetes executor writes it: the Deployment names the isolation policy
        # before it goes (a retry finds it), even when nothing else on it changes.
        named = {REMOVED_POLICY_ANNOTATION: policy} if policy else {}
        metadata = {"annotations": {**stamp["metadata"]["annotations"], **named}}
        patches: dict[str, Any] = {deployment: {"metadata": metadata, "spec": spec}}
        for name, selector in baseline.service_selectors.items():
            patches[f"service/{step.target.namespace}/{name}"] = {"spec": {"selector": selector}}
        for name, data in baseline.configmaps.items():
            patches[f"configmap/{step.target.namespace}/{name}"] = {"data": data}
        if policy:
            patches[f"networkpolicy/{step.target.namespace}/{policy}"] = {"delete": True}
        restored = release if rs is not None else baseline.revision
        replicas = f"replicas left to {hpa}" if hpa else f"{baseline.replicas} replicas"
        removed = f"; NetworkPolicy {policy} removed" if policy else ""
        return patches, (
            f"full rollback of {deployment} to revision {restored}: template, "
            f"{replicas}, {len(baseline.service_selectors)} Service(s), "
            f"{len(baseline.configmaps)} ConfigMap(s) as before the incident{removed}"
        )
    return {}, "hand over to a person: no change"


class DryRunExecutor:
    """Implements RemediationExecutor without writing anything."""

    def __init__(self, clients: KubeClients | None = None) -> None:
        self._clients = clients

    async def _view(
        self, target: WorkloadRef, *, autoscalers: bool = False
    ) -> tuple[WorkloadView | None, str]:
        if self._clients is None:
            return None, "no cluster access configured"
        try:
            client = await self._clients.client(target.cluster_id)
            return await read_workload(client, target, autoscalers=autoscalers), ""
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
        # Only the rungs that set a count read the autoscalers (one listing less per read).
        counted = step.rung in (Rung.SCALE_OUT, Rung.FULL_ROLLBACK)
        view, why = await self._view(step.target, autoscalers=counted)
        if step.rung is Rung.SCALE_OUT and view is not None and view.autoscaler:
            # What the Kubernetes executor does: the rung is skipped, nothing is planned.
            name = f"deployment {step.target.namespace}/{step.target.name}"
            return StepResult(
                applied=False,
                detail=f"dry run: {name} runs {view.replicas} replicas under {view.autoscaler}",
                skipped_reason=autoscaled_skip(name, view.autoscaler),
            )
        policy = await self._isolation_policy(step) if view is not None else None
        patches, sentence = step_patches(step, view, policy)
        source = "computed from a read of the workload" if view else f"from the alert ({why})"
        return StepResult(
            applied=False,
            detail=f"dry run: would {sentence}; {source}",
            patch=patches,
        )

    async def _isolation_policy(self, step: StepRequest) -> str | None:
        """The run's isolation NetworkPolicy if the cluster has it (only rung 5 removes it)."""
        if step.rung is not Rung.FULL_ROLLBACK or self._clients is None:
            return None
        name = isolation_policy_name(step.remediation_id)
        try:
            client = await self._clients.client(step.target.cluster_id)
            found = await ClusterReads(client).get(NetworkPolicy, step.target.namespace, name)
        except KubeError as exc:
            log.info("isolation policy %s not readable: %s", name, exc)
            return None
        return name if found is not None else None

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
