"""The Kubernetes remediation executor: checkpoints and the ladder's changes, through lightkube.

Every change carries the step key in the ``STEP_ANNOTATION`` of the object it changes, in the
same write, and with the ``resourceVersion`` it was computed from. ``apply`` reads first: an
object that already carries the key is left alone, so a worker killed after the write and
before its activity completed does not change anything twice; a concurrent writer turns our
write into a 409 Conflict, and the step is computed again from a fresh read.

Errors (from ``ambient.clients.kube``):

    KubeError                  forbidden, invalid: not retryable
    ├── StepInputError         (kube_plans) the step lacks what its rung needs: not retryable
    ├── KubeNotFoundError      the workload does not exist: not retryable
    └── KubeUnavailableError   unreachable, 5xx, 429, conflicts that kept coming: retryable
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx2
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import ConfigMap

from ambient.clients.kube import (
    REVISION,
    KubeError,
    KubeUnavailableError,
    client_from_kubeconfig,
    kube_error,
    kubeconfig_contexts,
)
from ambient.clients.tencent import ops
from ambient.clients.tencent.client import TencentCloud
from ambient.remediation.changes import (
    Change,
    Obj,
    StepPlan,
    annotations_of,
    configmaps_of,
    images_of,
)
from ambient.remediation.kube_plans import StepPlanner
from ambient.remediation.kube_reads import ClusterReads
from ambient.remediation.ladder import (
    Checkpoint,
    RolloutHealth,
    StepRequest,
    StepResult,
    WorkloadRef,
)

# Fresh reads after a 409 before giving up (the activity's retry policy takes it from there).
CONFLICT_ATTEMPTS = 4


class ClusterClients(Protocol):
    """Where a worker keeps its lightkube clients (shared with the dry-run executor)."""

    async def client(self, cluster_id: str) -> AsyncClient | None: ...


class KubernetesExecutor:
    """``RemediationExecutor`` against real clusters: one lightkube client per cluster id.

    Clients come from ``clients`` when given (the worker's shared cache); otherwise a
    ``cluster_id`` that names a context of ``kubeconfig`` (AMBIENT_KUBECONFIG) uses it and
    any other is a TKE cluster whose kubeconfig comes from ``DescribeClusterKubeconfig``.
    """

    def __init__(
        self,
        clients: ClusterClients | None = None,
        *,
        kubeconfig: Path | None = None,
        tencent: TencentCloud | None = None,
        region: str | None = None,
    ) -> None:
        self._shared = clients
        self._kubeconfig, self._tencent, self._region = kubeconfig, tencent, region
        self._clients: dict[str, AsyncClient] = {}
        self._lock = asyncio.Lock()

    async def client(self, cluster_id: str) -> AsyncClient:
        if self._shared is not None:
            client = await self._shared.client(cluster_id)
            if client is None:
                raise KubeError(
                    f"cluster {cluster_id!r} is not a context of AMBIENT_KUBECONFIG and no "
                    "TKE kubeconfig could be had for it (is Tencent Cloud configured?)"
                )
            return client
        async with self._lock:
            if cluster_id not in self._clients:
                self._clients[cluster_id] = await self._connect(cluster_id)
            return self._clients[cluster_id]

    async def _connect(self, cluster_id: str) -> AsyncClient:
        if cluster_id in kubeconfig_contexts(self._kubeconfig):
            return client_from_kubeconfig(path=self._kubeconfig, context=cluster_id)
        if self._tencent is None or not self._tencent.configured:
            raise KubeError(
                f"cluster {cluster_id!r} is not a context of AMBIENT_KUBECONFIG and Tencent "
                "Cloud is not configured (set TENCENTCLOUD_SECRET_ID/KEY for TKE clusters)"
            )
        text = await ops.get_kubeconfig(self._tencent, cluster_id, region=self._region)
        if not text.strip():
            raise KubeError(
                f"TKE returned no kubeconfig for {cluster_id!r}: enable the cluster's API "
                "server access (intranet or internet) in the TKE console"
            )
        return client_from_kubeconfig(text)

    async def aclose(self) -> None:
        """Close the clients this executor made (shared ones belong to their owner)."""
        async with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    async def checkpoint(self, target: WorkloadRef) -> Checkpoint:
        """Spec, revision (and the one before), replicas, images, Service selectors, ConfigMaps."""
        reads = ClusterReads(await self.client(target.cluster_id))
        deployment = await reads.deployment(target)
        revision_text = annotations_of(deployment).get(REVISION)
        revision = int(revision_text) if revision_text and revision_text.isdigit() else None
        earlier = [
            r for r in await reads.revisions(deployment) if revision is not None and r < revision
        ]
        notes = [f"revision {revision}, {deployment['spec'].get('replicas', 1)} replicas"]
        # Access to Services and ConfigMaps may be withheld (RBAC): the checkpoint still
        # serves rungs 1-3 and says what full rollback will not be able to restore.
        services: list[Obj] = []
        try:
            services = await reads.services(deployment)
        except KubeError as exc:
            if exc.retryable:
                raise
            notes.append(f"Service selectors not recorded ({exc})")
        configmaps: dict[str, dict[str, Any]] = {}
        for name in configmaps_of(deployment["spec"]["template"]):
            try:
                found = await reads.get(ConfigMap, target.namespace, name)
            except KubeError as exc:
                if exc.retryable:
                    raise
                notes.append(f"ConfigMap {name} not recorded ({exc})")
                continue
            if found is None:
                notes.append(f"ConfigMap {name} does not exist (nothing to restore)")
            else:
                configmaps[name] = dict(found.get("data") or {})
        detail = "; ".join(notes)
        return Checkpoint(
            target=target,
            revision=revision,
            previous_revision=max(earlier) if earlier else None,
            replicas=deployment["spec"].get("replicas", 1),
            images=images_of(deployment["spec"]["template"]),
            spec=deployment["spec"],
            service_selectors={
                s["metadata"]["name"]: dict(s["spec"]["selector"]) for s in services
            },
            configmaps=configmaps,
            taken_at=datetime.now(UTC),
            detail=detail,
        )

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth:
        """What `kubectl rollout status` decides: the new pods are all updated and available."""
        reads = ClusterReads(await self.client(target.cluster_id))
        deployment = await reads.deployment(target)
        spec, status, meta = (
            deployment["spec"],
            deployment.get("status") or {},
            deployment["metadata"],
        )
        desired = spec.get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        available = status.get("availableReplicas", 0)
        total = status.get("replicas", 0)
        ready = status.get("readyReplicas", 0)
        name = f"{meta['namespace']}/{meta['name']}"
        if status.get("observedGeneration", 0) < meta.get("generation", 0):
            detail, ok = f"waiting for the controller to observe {name}'s new spec", False
        elif updated < desired:
            detail, ok = f"{updated} of {desired} new replicas have been updated", False
        elif total > updated:
            detail, ok = f"{total - updated} old replicas are pending termination", False
        elif available < updated:
            detail, ok = f"{available} of {updated} updated replicas are available", False
        else:
            detail, ok = f"{name} successfully rolled out ({available}/{desired} available)", True
        return RolloutHealth(available=ok, ready_replicas=ready, desired=desired, detail=detail)

    # --- changes ------------------------------------------------------------------------
    async def apply(self, step: StepRequest) -> StepResult:
        """Make the rung's change once: read, skip what carries the key, write the rest."""
        client = await self.client(step.target.cluster_id)
        planner = StepPlanner(ClusterReads(client))
        sent: Obj = {}  # object -> what this call wrote to it, across fresh reads after conflicts
        for _attempt in range(CONFLICT_ATTEMPTS):
            plan = await planner.plan(step)
            if not plan.changes and sent:
                return self._applied(plan, sent)
            if not plan.changes and plan.done:
                detail = plan.detail or f"already applied ({', '.join(plan.done)})"
                return StepResult(applied=True, already_applied=True, detail=detail)
            if not plan.changes:
                reason = plan.skipped_reason or "nothing to change"
                return StepResult(applied=False, detail=plan.detail, skipped_reason=reason)
            if step.mode == "dry_run":
                patch = {c.object: c.sent() for c in plan.changes}
                return StepResult(
                    applied=False, detail=f"dry run: would {plan.detail}", patch=patch
                )
            try:
                for change in plan.changes:
                    await self._send(client, change)
                    sent[change.object] = change.sent()
            except ApiError as exc:
                if exc.status.code == 409:
                    continue  # someone wrote in between: compute the step again from fresh reads
                raise kube_error(exc, f"rung {int(step.rung)} on {step.target}") from None
            except httpx2.TransportError as exc:
                raise KubeUnavailableError(
                    f"rung {int(step.rung)} on {step.target}: {exc}"
                ) from None
            return self._applied(plan, sent)
        raise KubeUnavailableError(
            f"rung {int(step.rung)} on {step.target}: conflicts kept coming "
            f"({CONFLICT_ATTEMPTS} fresh reads, each overtaken by another writer)"
        )

    @staticmethod
    def _applied(plan: StepPlan, sent: Obj) -> StepResult:
        done = f"; already done: {', '.join(plan.done)}" if plan.done else ""
        return StepResult(applied=True, detail=plan.detail + done, patch=sent)

    async def _send(self, client: AsyncClient, change: Change) -> None:
        if change.verb == "patch":
            assert change.patch_type is not None
            await client.patch(
                change.resource,
                change.name,
                change.body,
                namespace=change.namespace,
                patch_type=change.patch_type,
            )
        elif change.verb == "create":
            created: Any = change.resource.from_dict(change.body)
            await client.create(created)
        else:
            try:
                await client.delete(change.resource, change.name, namespace=change.namespace)
            except ApiError as exc:
                if exc.status.code != 404:  # already gone is what we wanted
                    raise
