"""The Kubernetes remediation executor: checkpoints and the ladder's changes, through lightkube.

Every change carries the step key in the ``STEP_ANNOTATION`` of the object it changes, in the
same write, and with the ``resourceVersion`` it was computed from. ``apply`` reads first: an
object that already carries the key is left alone, so a worker killed after the write and
before its activity completed does not change anything twice; a concurrent writer turns our
write into a 409 Conflict, and the step is computed again from a fresh read.

Errors (from ``ambient.clients.kube``):

    KubeError                  forbidden, invalid: not retryable
    ├── StepInputError         (here) the step lacks what its rung needs: not retryable
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
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import ConfigMap, Service
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.types import PatchType

from ambient.clients.kube import (
    REVISION,
    KubeError,
    KubeNotFoundError,
    KubeUnavailableError,
    client_from_kubeconfig,
    kube_error,
    kubeconfig_contexts,
)
from ambient.clients.kube_changes import (
    NOT_A_REVISION,
    RESTARTED_AT,
    REVISION_HISTORY,
    Change,
    Kind,
    Obj,
    StepPlan,
    annotations_of,
    configmaps_of,
    images_of,
    isolation_policy_name,
    isolation_value,
    json_stamp,
    merge_diff,
    selects,
    stamp,
    stamped,
    without_hash,
)
from ambient.clients.tencent import ops
from ambient.clients.tencent.client import TencentCloud
from ambient.domain.remediation import (
    ISOLATION_LABEL,
    STEP_ANNOTATION,
    Checkpoint,
    RolloutHealth,
    Rung,
    StepRequest,
    StepResult,
    WorkloadRef,
)

# Fresh reads after a 409 before giving up (the activity's retry policy takes it from there).
CONFLICT_ATTEMPTS = 4


class StepInputError(KubeError):
    """The step lacks what its rung needs (e.g. a restart without ``restarted_at``)."""


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

    # --- reads --------------------------------------------------------------------------
    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except ApiError as exc:
            raise kube_error(exc, what) from None
        except httpx2.TransportError as exc:
            raise KubeUnavailableError(f"{what}: {exc}") from None

    async def _get(
        self, client: AsyncClient, resource: Kind, namespace: str, name: str
    ) -> Obj | None:
        try:
            obj = await client.get(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise kube_error(exc, f"reading {resource.__name__} {namespace}/{name}") from None
        except httpx2.TransportError as exc:
            raise KubeUnavailableError(
                f"reading {resource.__name__} {namespace}/{name}: {exc}"
            ) from None
        found: Obj = obj.to_dict()
        return found

    async def _deployment(self, client: AsyncClient, target: WorkloadRef) -> Obj:
        if target.kind != "Deployment":
            raise KubeError(f"{target}: only Deployments can be remediated, not {target.kind}")
        found = await self._get(client, Deployment, target.namespace, target.name)
        if found is None:
            raise KubeNotFoundError(f"deployment {target.namespace}/{target.name} not found")
        return found

    async def _revisions(
        self, client: AsyncClient, deployment: Obj, *, with_history: bool = False
    ) -> dict[int, Obj]:
        """The deployment's ReplicaSets by revision (owned through the controller reference).

        ``with_history`` also finds a ReplicaSet by the numbers it had before a rollback
        renumbered it (``revision-history``): the release recorded as revision 1 at the
        first checkpoint is revision 4 after our own rung 3 brought it back.
        """
        meta = deployment["metadata"]
        labels = deployment["spec"]["selector"].get("matchLabels") or {}
        sets = await self._call(
            f"listing ReplicaSets of {meta['namespace']}/{meta['name']}",
            _collect(client.list(ReplicaSet, namespace=meta["namespace"], labels=labels)),
        )
        revisions: dict[int, Obj] = {}
        for rs in (s.to_dict() for s in sets):
            owners = rs["metadata"].get("ownerReferences") or []
            owned = any(
                o.get("kind") == "Deployment"
                and (
                    o.get("uid") == meta.get("uid")
                    if meta.get("uid")
                    else o.get("name") == meta["name"]
                )
                for o in owners
            )
            revision = annotations_of(rs).get(REVISION)
            if owned and revision and revision.isdigit():
                revisions[int(revision)] = rs
        if with_history:
            for rs in list(revisions.values()):
                for old in (annotations_of(rs).get(REVISION_HISTORY) or "").split(","):
                    if old.strip().isdigit():
                        revisions.setdefault(int(old), rs)
        return revisions

    async def _services(self, client: AsyncClient, deployment: Obj) -> list[Obj]:
        """Services in the namespace whose selector picks the workload's pods."""
        namespace = deployment["metadata"]["namespace"]
        labels = deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
        found = await self._call(
            f"listing Services in {namespace}", _collect(client.list(Service, namespace=namespace))
        )
        services = [s.to_dict() for s in found]
        return [s for s in services if selects((s.get("spec") or {}).get("selector") or {}, labels)]

    async def checkpoint(self, target: WorkloadRef) -> Checkpoint:
        """Spec, revision (and the one before), replicas, images, Service selectors, ConfigMaps."""
        client = await self.client(target.cluster_id)
        deployment = await self._deployment(client, target)
        revision_text = annotations_of(deployment).get(REVISION)
        revision = int(revision_text) if revision_text and revision_text.isdigit() else None
        earlier = [
            r
            for r in await self._revisions(client, deployment)
            if revision is not None and r < revision
        ]
        notes = [f"revision {revision}, {deployment['spec'].get('replicas', 1)} replicas"]
        # Access to Services and ConfigMaps may be withheld (RBAC): the checkpoint still
        # serves rungs 1-3 and says what full rollback will not be able to restore.
        services: list[Obj] = []
        try:
            services = await self._services(client, deployment)
        except KubeError as exc:
            if exc.retryable:
                raise
            notes.append(f"Service selectors not recorded ({exc})")
        configmaps: dict[str, dict[str, Any]] = {}
        for name in configmaps_of(deployment["spec"]["template"]):
            try:
                found = await self._get(client, ConfigMap, target.namespace, name)
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
        client = await self.client(target.cluster_id)
        deployment = await self._deployment(client, target)
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
        sent: Obj = {}  # object -> what this call wrote to it, across fresh reads after conflicts
        for _attempt in range(CONFLICT_ATTEMPTS):
            plan = await self._plan(client, step)
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

    async def _plan(self, client: AsyncClient, step: StepRequest) -> StepPlan:
        if step.rung is Rung.RESTART:
            return await self._plan_restart(client, step)
        if step.rung is Rung.SCALE_OUT:
            return await self._plan_scale(client, step)
        if step.rung is Rung.ROLLBACK:
            return await self._plan_rollback(client, step)
        if step.rung is Rung.ISOLATE:
            return await self._plan_isolate(client, step)
        if step.rung is Rung.FULL_ROLLBACK:
            return await self._plan_full_rollback(client, step)
        return StepPlan(
            skipped_reason="handing over is not a cluster change", detail="hand over to a person"
        )

    async def _plan_restart(self, client: AsyncClient, step: StepRequest) -> StepPlan:
        if not step.restarted_at:
            raise StepInputError("restarted_at is required for rung 1 (restart)")
        deployment = await self._deployment(client, step.target)
        name = f"deployment {step.target.namespace}/{step.target.name}"
        if stamped(deployment, step.key):
            return StepPlan(done=[name], detail=f"{name} was already restarted by {step.key}")
        body = {
            "metadata": stamp(deployment, step.key),
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: step.restarted_at}}}},
        }
        return StepPlan(
            changes=[self._merge(Deployment, step.target, body)],
            detail=f"restart {name} (restartedAt {step.restarted_at})",
        )

    async def _plan_scale(self, client: AsyncClient, step: StepRequest) -> StepPlan:
        if step.replicas is None:
            raise StepInputError("replicas is required for rung 2 (scale out)")
        deployment = await self._deployment(client, step.target)
        name = f"deployment {step.target.namespace}/{step.target.name}"
        if stamped(deployment, step.key):
            return StepPlan(done=[name], detail=f"{name} was already scaled by {step.key}")
        current = deployment["spec"].get("replicas", 1)
        if current == step.replicas:
            return StepPlan(
                skipped_reason=f"already at {current} replicas",
                detail=f"{name} already runs {current} replicas",
            )
        # The Deployment itself, not its scale subresource: the scale subresource drops
        # metadata, and the step key must land in the same write as the new count.
        body = {"metadata": stamp(deployment, step.key), "spec": {"replicas": step.replicas}}
        return StepPlan(
            changes=[self._merge(Deployment, step.target, body)],
            detail=f"scale {name} from {current} to {step.replicas} replicas",
        )

    async def _plan_rollback(self, client: AsyncClient, step: StepRequest) -> StepPlan:
        deployment = await self._deployment(client, step.target)
        name = f"deployment {step.target.namespace}/{step.target.name}"
        if stamped(deployment, step.key):
            return StepPlan(done=[name], detail=f"{name} was already rolled back by {step.key}")
        if step.to_revision is None:
            return StepPlan(
                skipped_reason=NOT_A_REVISION,
                detail=f"{name}: no earlier revision was recorded at the first checkpoint",
            )
        revisions = await self._revisions(client, deployment, with_history=True)
        if step.to_revision not in revisions:
            known = ", ".join(str(r) for r in sorted(revisions)) or "none"
            return StepPlan(
                skipped_reason=NOT_A_REVISION,
                detail=f"{name} has no ReplicaSet of revision {step.to_revision} "
                f"(revisions: {known})",
            )
        template = without_hash(revisions[step.to_revision]["spec"]["template"])
        if template == deployment["spec"]["template"]:
            return StepPlan(
                skipped_reason=f"current template already matches revision {step.to_revision}",
                detail=f"{name} already runs the template of revision {step.to_revision}",
            )
        operations = [
            *json_stamp(deployment, step.key),
            {"op": "replace", "path": "/spec/template", "value": template},
        ]
        return StepPlan(
            changes=[
                Change(
                    Deployment,
                    step.target.namespace,
                    step.target.name,
                    "patch",
                    operations,
                    PatchType.JSON,
                )
            ],
            detail=f"roll back {name} to revision {step.to_revision} "
            f"({', '.join(images_of(template))})",
        )

    async def _plan_isolate(self, client: AsyncClient, step: StepRequest) -> StepPlan:
        deployment = await self._deployment(client, step.target)
        namespace = step.target.namespace
        services = await self._services(client, deployment)
        if not services:
            return await self._plan_deny_policy(client, step, deployment)
        plan = StepPlan()
        isolated = isolation_value(step.key)
        for service in services:
            name = service["metadata"]["name"]
            selector = service["spec"]["selector"]
            if stamped(service, step.key) or ISOLATION_LABEL in selector:
                plan.done.append(f"service {namespace}/{name}")
                continue
            body = {
                "metadata": stamp(service, step.key),
                "spec": {"selector": {ISOLATION_LABEL: isolated}},
            }
            plan.changes.append(Change(Service, namespace, name, "patch", body, PatchType.MERGE))
        names = ", ".join(c.name for c in plan.changes)
        plan.detail = (
            f"isolate: Services {names} in {namespace} select no pod ({ISOLATION_LABEL}={isolated})"
        )
        return plan

    async def _plan_deny_policy(
        self, client: AsyncClient, step: StepRequest, deployment: Obj
    ) -> StepPlan:
        namespace = step.target.namespace
        name = isolation_policy_name(step.remediation_id)
        if await self._get(client, NetworkPolicy, namespace, name) is not None:
            return StepPlan(
                done=[f"networkpolicy {namespace}/{name}"], detail=f"isolation policy {name} exists"
            )
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {STEP_ANNOTATION: step.key},
                "labels": {ISOLATION_LABEL: isolation_value(step.key)},
            },
            "spec": {
                "podSelector": {
                    "matchLabels": dict(deployment["spec"]["selector"].get("matchLabels") or {})
                },
                # Ingress listed with no rules: all inbound traffic to the pods is denied.
                "policyTypes": ["Ingress"],
            },
        }
        return StepPlan(
            changes=[Change(NetworkPolicy, namespace, name, "create", body)],
            detail=f"isolate: no Service selects {step.target.name}; deny-all NetworkPolicy {name}",
        )

    async def _plan_full_rollback(self, client: AsyncClient, step: StepRequest) -> StepPlan:
        baseline = step.checkpoint
        if baseline is None:
            raise StepInputError(
                "checkpoint (the first checkpoint) is required for rung 5 (full rollback)"
            )
        deployment = await self._deployment(client, step.target)
        namespace, plan = step.target.namespace, StepPlan()
        notes: list[str] = []
        await self._restore_release(client, step, baseline, deployment, plan, notes)
        for name, data in sorted(baseline.configmaps.items()):
            await self._restore_configmap(client, step, name, data, plan, notes)
        for name, selector in sorted(baseline.service_selectors.items()):
            service = await self._get(client, Service, namespace, name)
            if service is None:
                notes.append(f"Service {name} is gone")
            elif stamped(service, step.key):
                plan.done.append(f"service {namespace}/{name}")
            elif (service.get("spec") or {}).get("selector") != selector:
                diff = merge_diff(service["spec"].get("selector") or {}, selector)
                body = {"metadata": stamp(service, step.key), "spec": {"selector": diff}}
                plan.changes.append(
                    Change(Service, namespace, name, "patch", body, PatchType.MERGE)
                )
                notes.append(f"Service {name} selector back to {selector}")
        policy = isolation_policy_name(step.remediation_id)
        if await self._get(client, NetworkPolicy, namespace, policy) is not None:
            plan.changes.append(Change(NetworkPolicy, namespace, policy, "delete"))
            notes.append(f"NetworkPolicy {policy} removed")
        plan.detail = "full rollback: " + (
            "; ".join(notes) or "everything is as at the first checkpoint"
        )
        return plan

    async def _restore_release(
        self,
        client: AsyncClient,
        step: StepRequest,
        baseline: Checkpoint,
        deployment: Obj,
        plan: StepPlan,
        notes: list[str],
    ) -> None:
        """The release before the incident (or the baseline's own template) and its replicas."""
        name = f"deployment {step.target.namespace}/{step.target.name}"
        if stamped(deployment, step.key):
            plan.done.append(name)
            return
        revision = step.to_revision or baseline.previous_revision
        revisions = await self._revisions(client, deployment, with_history=True) if revision else {}
        if revision in revisions:
            template = without_hash(revisions[revision]["spec"]["template"])
            notes.append(f"{name} to revision {revision}")
        else:
            template = baseline.spec.get("template") or deployment["spec"]["template"]
            why = NOT_A_REVISION if revision else "no earlier revision"
            notes.append(f"{name} to its template at the first checkpoint ({why})")
        operations: list[Obj] = []
        if template != deployment["spec"]["template"]:
            operations.append({"op": "replace", "path": "/spec/template", "value": template})
        replicas = baseline.replicas
        if replicas is not None and replicas != deployment["spec"].get("replicas", 1):
            operations.append({"op": "replace", "path": "/spec/replicas", "value": replicas})
            notes.append(f"replicas back to {replicas}")
        if operations:
            ops_ = [*json_stamp(deployment, step.key), *operations]
            plan.changes.append(
                Change(
                    Deployment,
                    step.target.namespace,
                    step.target.name,
                    "patch",
                    ops_,
                    PatchType.JSON,
                )
            )

    async def _restore_configmap(
        self,
        client: AsyncClient,
        step: StepRequest,
        name: str,
        data: dict[str, Any],
        plan: StepPlan,
        notes: list[str],
    ) -> None:
        namespace = step.target.namespace
        current = await self._get(client, ConfigMap, namespace, name)
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": {STEP_ANNOTATION: step.key},
                },
                "data": data,
            }
            plan.changes.append(Change(ConfigMap, namespace, name, "create", body))
            notes.append(f"ConfigMap {name} recreated")
        elif stamped(current, step.key):
            plan.done.append(f"configmap {namespace}/{name}")
        elif (current.get("data") or {}) != data:
            body = {
                "metadata": stamp(current, step.key),
                "data": merge_diff(current.get("data") or {}, data),
            }
            plan.changes.append(Change(ConfigMap, namespace, name, "patch", body, PatchType.MERGE))
            notes.append(f"ConfigMap {name} data back to the first checkpoint")

    @staticmethod
    def _merge(resource: Kind, target: WorkloadRef, body: Obj) -> Change:
        return Change(resource, target.namespace, target.name, "patch", body, PatchType.MERGE)


async def _collect(items: Any) -> list[Any]:
    return [item async for item in items]
