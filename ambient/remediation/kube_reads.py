"""Reads of a workload's objects for the Kubernetes executor, errors mapped to ``KubeError``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lightkube import AsyncClient
from lightkube.core.resource import NamespacedResourceG
from lightkube.generic_resource import Generic, create_api_info
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet
from lightkube.resources.autoscaling_v1 import HorizontalPodAutoscaler
from lightkube.resources.core_v1 import Service
from lightkube.resources.networking_v1 import NetworkPolicy

from ambient.clients.kube import REVISION, collected, revision_number, rolled_out
from ambient.clients.kube_errors import KubeError, KubeNotFoundError, kube_call
from ambient.remediation.changes import (
    REVISION_HISTORY,
    Kind,
    Obj,
    annotations_of,
    release_of,
    selects,
)
from ambient.remediation.ladder import ISOLATION_LABEL, RolloutHealth, WorkloadRef

log = logging.getLogger(__name__)


# A Deployment and its ReplicaSets read as the server wrote them. lightkube's typed models drop
# every field their Kubernetes version does not know: a rollback puts back the template it
# read, and a cluster newer than the models would lose the release's newer pod fields (a
# sidecar's restartPolicy once was one) in the very rollback that was to restore it.
class AsWritten(NamespacedResourceG, Generic):  # type: ignore[misc]
    """An apps/v1 object kept as the server's JSON (lightkube's generic resources' way)."""


def _read_whole(kind: str, plural: str) -> type[AsWritten]:
    """The class reading ``kind`` so, named as the kind (an error says "reading Deployment")."""
    return type(kind, (AsWritten,), {"_api_info": create_api_info("apps", "v1", kind, plural)})


RawDeployment = _read_whole("Deployment", "deployments")
RawReplicaSet = _read_whole("ReplicaSet", "replicasets")


def as_written(value: Any) -> Any:
    """``value`` without its nulls (an empty template's ``creationTimestamp: null``), as the
    typed models read it: a template read now compares equal to one a checkpoint recorded."""
    if isinstance(value, dict):
        return {key: as_written(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [as_written(item) for item in value]
    return value


# One namespace's listing of a kind on the wire per cluster client: a listing asked while another
# is in flight takes that one's answer. In an alert storm a hundred checkpoints in one namespace
# each listed all its Services (hundreds, the largest answer a checkpoint reads) and its
# NetworkPolicies at once.
_listings: dict[tuple[int, str, type[Any]], asyncio.Task[list[Any]]] = {}


class ClusterReads:
    """The reads one step or checkpoint makes through one cluster's lightkube client."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, resource: Kind | type[AsWritten], namespace: str, name: str) -> Obj | None:
        what = f"reading {resource.__name__} {namespace}/{name}"
        try:
            obj = await kube_call(what, self._client.get(resource, name, namespace=namespace))
        except KubeNotFoundError:  # kube_error's answer to a 404
            return None
        found: Obj = obj.to_dict()
        # A typed model's dict has no nulls already; the server's JSON has them.
        return as_written(found) if isinstance(obj, AsWritten) else found

    async def deployment(self, target: WorkloadRef) -> Obj:
        if target.kind != "Deployment":
            raise KubeError(f"{target}: only Deployments can be remediated, not {target.kind}")
        found = await self.get(RawDeployment, target.namespace, target.name)
        if found is None:
            where = f"{target.namespace}/{target.name}"
            kind = await self._other_kind(target.namespace, target.name)
            if kind is not None:
                raise KubeNotFoundError(
                    f"{where} is a {kind}, not a Deployment: "
                    "ambient-ops restarts and scales only Deployments"
                )
            raise KubeNotFoundError(f"deployment {where} not found")
        return found

    async def _other_kind(self, namespace: str, name: str) -> str | None:
        """StatefulSet or DaemonSet when ``name`` is one (read only when no Deployment is):
        a restart asked for one heard "not found", as if nothing had that name. Listed by
        name (the RBAC granted lists them: docs/remediation.md); a list refused says nothing,
        the answer stays "not found"."""

        async def look(kind: type[StatefulSet | DaemonSet]) -> str | None:
            listing = self._client.list(kind, namespace=namespace, fields={"metadata.name": name})
            try:
                found = await kube_call(f"listing {kind.__name__}s", collected(listing))
            except KubeError:
                return None
            return kind.__name__ if found else None

        found = await asyncio.gather(look(StatefulSet), look(DaemonSet))
        return next((kind for kind in found if kind), None)

    async def revisions(self, deployment: Obj, *, with_history: bool = False) -> dict[int, Obj]:
        """The deployment's ReplicaSets by revision (owned through the controller reference)."""
        # with_history also finds a ReplicaSet by the numbers it had before a rollback
        # renumbered it (revision-history): the release recorded as revision 1 at the first
        # checkpoint is revision 4 after our own rung 3 brought it back.
        meta = deployment["metadata"]
        labels = deployment["spec"]["selector"].get("matchLabels") or {}
        sets = await kube_call(
            f"listing ReplicaSets of {meta['namespace']}/{meta['name']}",
            collected(self._client.list(RawReplicaSet, namespace=meta["namespace"], labels=labels)),
        )
        # The owner named by its uid, or by its name when the Deployment read has none.
        field, owner = ("uid", meta["uid"]) if meta.get("uid") else ("name", meta["name"])
        revisions: dict[int, Obj] = {}
        for rs in (as_written(s.to_dict()) for s in sets):
            owned = any(
                o.get("kind") == "Deployment" and o.get(field) == owner
                for o in rs["metadata"].get("ownerReferences") or []
            )
            revision = revision_number(annotations_of(rs).get(REVISION))
            if owned and revision is not None:
                revisions[revision] = rs
        if with_history:
            for rs in list(revisions.values()):
                for old in (annotations_of(rs).get(REVISION_HISTORY) or "").split(","):
                    if (number := revision_number(old.strip())) is not None:
                        revisions.setdefault(number, rs)
        return revisions

    async def sharing(self, deployment: Obj, services: list[Obj]) -> dict[str, list[str]]:
        """Service name -> the other workloads of the namespace whose pods it selects too
        ("deployment cart", "statefulset sessions"), or the kinds that could not be read."""
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        others: list[tuple[str, dict[str, str]]] = []
        unreadable: list[str] = []
        kinds: tuple[type[Deployment | StatefulSet | DaemonSet], ...] = (
            Deployment,
            StatefulSet,
            DaemonSet,
        )
        for kind in kinds:
            label = kind.__name__.lower()
            try:
                found = await self._list_now(kind, namespace)
            except KubeError as exc:
                # Not allowed to list them (RBAC granted before they were looked at): whether
                # a Service also serves them is unknown, and pointing it at no pod might cut
                # off a workload with no alert. Deployments were always read: their refusal
                # fails the step as before.
                if exc.retryable or kind is Deployment:
                    raise
                log.info("%ss in %s not readable: %s", kind.__name__, namespace, exc)
                unreadable.append(f"{label}s perhaps (they could not be listed: {exc})")
                continue
            for workload in (w.to_dict() for w in found):
                template = (workload.get("spec") or {}).get("template") or {}
                other = workload["metadata"]["name"]
                if not (kind is Deployment and other == name):
                    labels = (template.get("metadata") or {}).get("labels") or {}
                    others.append((f"{label} {other}", labels))
        shared: dict[str, list[str]] = {}
        for service in services:
            selector = service["spec"].get("selector") or {}
            picked = sorted(n for n, labels in others if selects(selector, labels))
            if picked or unreadable:
                shared[service["metadata"]["name"]] = picked + unreadable
        return shared

    async def autoscaler(self, target: WorkloadRef, *, at_zero: bool = False) -> str | None:
        """The HorizontalPodAutoscaler that owns the workload's replicas, with its bounds; one
        that holds it ``at_zero`` replicas only: of minReplicas 0, or KEDA's."""
        # Read as autoscaling/v1, which every cluster serves and has all read here (v2 only
        # since 1.23: before it, its 404 was taken as a refusal, and no HPA as found).
        try:
            found: list[HorizontalPodAutoscaler] = await self._list_now(
                HorizontalPodAutoscaler, target.namespace
            )
        except KubeError as exc:
            if exc.retryable:
                raise
            # Not allowed to read them (RBAC): one may own the count and put back any count
            # set on the Deployment (the metric then judged at its count), so it is taken as
            # there, named as not known, as `sharing` takes workloads it could not list.
            log.info("autoscalers of %s not readable: %s", target, exc)
            return f"an autoscaler perhaps (HorizontalPodAutoscalers could not be listed: {exc})"
        wanted = (target.kind, target.name)
        for hpa in found:
            spec, meta = hpa.spec, hpa.metadata
            if spec is not None and (spec.scaleTargetRef.kind, spec.scaleTargetRef.name) == wanted:
                least = 1 if spec.minReplicas is None else spec.minReplicas
                name = meta.name if meta is not None else None
                keda = _scaled_object(meta)
                # Kubernetes stops autoscaling a target at 0 (ScalingActive False,
                # ScalingDisabled) unless minReplicas is 0: a plain HPA does not hold it there.
                if at_zero and least > 0 and keda is None:
                    return None
                of = f" of ScaledObject {keda}" if keda is not None else ""
                return f"HorizontalPodAutoscaler {name}{of} ({least}-{spec.maxReplicas} replicas)"
        return None

    async def isolation_policies(self, deployment: Obj) -> list[str]:
        """The deny-all NetworkPolicies an earlier run's rung 4 left on the workload's pods."""
        namespace = deployment["metadata"]["namespace"]
        found: list[NetworkPolicy] = await self._listed(NetworkPolicy, namespace)
        labels = deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
        names: list[str] = []
        # Labels read on the parsed objects, only the isolation's turned into dicts: a namespace
        # of hundreds of policies (a CNI's) would be most of a storm's checkpoint CPU.
        for policy in (
            p.to_dict()
            for p in found
            if p.metadata is not None and ISOLATION_LABEL in (p.metadata.labels or {})
        ):
            chosen = (policy.get("spec") or {}).get("podSelector") or {}
            # Rung 4's pod selector (changes.own_pods; the Deployment's selector before):
            # its labels all the pods', its expressions the Deployment's own.
            expressions = chosen.get("matchExpressions")
            if selects(chosen.get("matchLabels") or {}, labels) and (
                not expressions
                or expressions == deployment["spec"]["selector"].get("matchExpressions")
            ):
                names.append(policy["metadata"]["name"])
        return sorted(names)

    async def services(self, deployment: Obj) -> list[Obj]:
        """Services in the namespace whose selector picks the workload's pods."""
        namespace = deployment["metadata"]["namespace"]
        labels = deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
        found: list[Service] = await self._listed(Service, namespace)
        # Matched on the parsed objects, turned into dicts only when they match: a namespace of
        # hundreds of Services made that conversion most of a checkpoint's CPU in a storm.
        return [
            s.to_dict()
            for s in found
            if selects((s.spec.selector if s.spec is not None else None) or {}, labels)
        ]

    async def isolated_services(self, namespace: str, isolated: str) -> list[Obj]:
        """Services in ``namespace`` whose selector carries rung 4's isolation label at
        ``isolated`` (`changes.isolation_value` of that step's key): pointed at no pod by it."""
        found: list[Service] = await self._listed(Service, namespace)
        return [
            s.to_dict()
            for s in found
            if s.spec is not None and (s.spec.selector or {}).get(ISOLATION_LABEL) == isolated
        ]

    async def _listed(self, kind: type[Any], namespace: str) -> list[Any]:
        """Every object of ``kind`` in ``namespace``, one listing in flight at a time
        (``_listings``); asked after it answered, a listing of its own (nothing stale is kept)."""
        key = (id(self._client), namespace, kind)
        listing = _listings.get(key)
        if (
            listing is None
            or listing.done()
            or listing.get_loop() is not asyncio.get_running_loop()
        ):
            listing = asyncio.create_task(self._list_now(kind, namespace))
            _listings[key] = listing
            listing.add_done_callback(
                lambda done: _listings.pop(key, None) if _listings.get(key) is done else None
            )
        # Shielded: one caller's cancellation (its activity's) does not fail the others.
        return await asyncio.shield(listing)

    async def _list_now(self, kind: type[Any], namespace: str) -> list[Any]:
        """Every object of ``kind`` in ``namespace``, in a listing of its own."""
        return await kube_call(
            f"listing {kind.__name__}s in {namespace}",
            collected(self._client.list(kind, namespace=namespace)),
        )


def previous_revision(
    revisions: dict[int, Obj], current: int | None, running: Obj | None = None
) -> int | None:
    """The newest revision deployed before the release running now first was, among the
    ReplicaSets' own numbers, and of another release than the ``running`` pod template when
    given: a revision a `rollout restart` made (before the alert, or a run before this one)
    differs only in its restart time, and rolling back to it rolls back nothing.

    A rollback gives the release it brings back the next number (its first ones kept in its
    ``revision-history``): the numbers under it are then of releases deployed after it, the bad
    one a run rolled back from among them. A later run "rolled back" to that one. The running
    release's first number is the least of its ReplicaSets' (a restart of it after such a
    rollback is a ReplicaSet of its own, with no history)."""
    # A number a rollback renumbered away (revision-history) may be the ReplicaSet running now.
    if current is None:
        return None
    own = [
        r for r, rs in revisions.items() if revision_number(annotations_of(rs).get(REVISION)) == r
    ]
    release = release_of(running) if running is not None else None
    now = revisions.get(current)
    for number in own:
        rs = revisions[number]
        if rs is now or (release is not None and release_of(rs["spec"]["template"]) == release):
            history = (annotations_of(rs).get(REVISION_HISTORY) or "").split(",")
            first = filter(None, (revision_number(h.strip()) for h in history))
            current = min([current, number, *first])
    for number in sorted((r for r in own if r < current), reverse=True):
        if release is None or release_of(revisions[number]["spec"]["template"]) != release:
            return number
    return None


def rollout_health(deployment: Obj) -> RolloutHealth:
    """The Deployment's ready and desired pods, and whether it is rolled out (``rolled_out``)."""
    replicas = deployment["spec"].get("replicas")
    available, detail = rolled_out(deployment)
    return RolloutHealth(
        available=available,
        ready_replicas=int((deployment.get("status") or {}).get("readyReplicas") or 0),
        desired=1 if replicas is None else int(replicas),
        detail=detail,
    )


def _scaled_object(meta: ObjectMeta | None) -> str | None:
    """The KEDA ScaledObject that made an HPA (its owner, or its label), which scales to 0."""
    if meta is None:
        return None
    for owner in meta.ownerReferences or []:
        if owner.kind == "ScaledObject":
            return owner.name
    return (meta.labels or {}).get("scaledobject.keda.sh/name")
