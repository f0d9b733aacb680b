"""What each rung changes on a live cluster, planned from fresh reads (sent by the executor).

Rungs 1-2 patch the Deployment; 3 puts back the template of an earlier ReplicaSet; 4 points
the Services at no pod (or denies ingress with a NetworkPolicy when none selects it); 5 puts
back the release, ConfigMaps, replicas and selectors of the first checkpoint.
"""

from __future__ import annotations

from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Service
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.types import PatchType

from ambient.clients.kube_errors import KubeError, KubeForbiddenError
from ambient.remediation.changes import (
    NOT_A_REVISION,
    RESTARTED_AT,
    Change,
    Kind,
    Obj,
    StepPlan,
    annotations_of,
    images_of,
    isolation_policy_name,
    isolation_value,
    json_stamp,
    merge_diff,
    own_pods,
    revision_template,
    sent_json_stamp,
    sent_stamp,
    stamp,
    stamped,
    stopped_reason,
)
from ambient.remediation.kube_reads import ClusterReads
from ambient.remediation.ladder import (
    ISOLATION_LABEL,
    REMOVED_POLICY_ANNOTATION,
    STEP_ANNOTATION,
    Checkpoint,
    Rung,
    StepRequest,
    WorkloadRef,
    paused_reason,
    step_key,
)

# A merge patch's null takes rung 4's key out of a Service's selector.
UNISOLATED = {ISOLATION_LABEL: None}


class StepInputError(KubeError):
    """The step lacks what its rung needs (e.g. a restart without ``restarted_at``)."""


class WorkloadReplacedError(KubeError):
    """The Deployment was deleted and created again since the run's first checkpoint."""


class StepPlanner:
    """Plans one rung's change on the cluster ``reads`` looks at."""

    def __init__(self, reads: ClusterReads) -> None:
        self._reads = reads

    async def plan(self, step: StepRequest) -> StepPlan:
        plans = {
            Rung.RESTART: self._plan_restart,
            Rung.SCALE_OUT: self._plan_scale,
            Rung.ROLLBACK: self._plan_rollback,
            Rung.ISOLATE: self._plan_isolate,
            Rung.FULL_ROLLBACK: self._plan_full_rollback,
        }
        if (planned := plans.get(step.rung)) is not None:
            return await planned(step)
        return StepPlan(
            skipped_reason="handing over is not a cluster change", detail="hand over to a person"
        )

    async def _read_deployment(self, step: StepRequest) -> Obj:
        """The step's Deployment, if it is still the one the run's first checkpoint read."""
        # Its revisions, spec and step stamps belong to that life of it: rolling a re-created
        # Deployment "back to revision 1" would put on the new one's own first release.
        deployment = await self._reads.deployment(step.target)
        uid = deployment["metadata"].get("uid")
        recorded = step.checkpoint.uid if step.checkpoint else None
        if recorded and uid != recorded:
            raise WorkloadReplacedError(
                f"{_deployment(step)} was re-created since the first checkpoint (uid {uid}, "
                f"the checkpoint read uid {recorded}): this remediation does not change "
                "another object of the same name"
            )
        return deployment

    async def _plan_restart(self, step: StepRequest) -> StepPlan:
        if not step.restarted_at:
            raise StepInputError("restarted_at is required for rung 1 (restart)")
        deployment = await self._read_deployment(step)
        name = _deployment(step)
        spec = {"template": {"metadata": {"annotations": {RESTARTED_AT: step.restarted_at}}}}
        if stamped(deployment, step.key):
            sent = {"metadata": sent_stamp(deployment, step.key), "spec": spec}
            return _sent_before(step, sent, f"{name} was already restarted by {step.key}")
        if deployment["spec"].get("replicas", 1) == 0:
            # A new template would start no pod (what kubectl rollout restart writes here): the
            # audit would say "restarted" of nothing. The ladder's run would climb on past a
            # workload someone stopped: it hands over here. A person asking hears why. One an
            # autoscaler holds at 0 (KEDA, an HPA scaling to zero) is handed over naming it;
            # a plain HPA stops at 0 (someone stopped it).
            autoscaler = await self._reads.autoscaler(step.target, at_zero=True)
            if not step.asked:
                return _stopped(name, Rung.RESTART, autoscaler)
            return StepPlan(
                skipped_reason=stopped_reason(name, Rung.RESTART, autoscaler, asked=True),
                detail=f"{name} runs no pod",
            )
        if deployment["spec"].get("paused"):
            return _paused(name, Rung.RESTART)
        body = {"metadata": stamp(deployment, step.key), "spec": spec}
        return StepPlan(
            changes=[_patch(Deployment, step.target, body)],
            detail=f"restart {name} (restartedAt {step.restarted_at})",
        )

    async def _plan_scale(self, step: StepRequest) -> StepPlan:
        if step.replicas is None:
            raise StepInputError("replicas is required for rung 2 (scale out)")
        deployment = await self._read_deployment(step)
        name, spec = _deployment(step), {"replicas": step.replicas}
        if stamped(deployment, step.key):
            sent = {"metadata": sent_stamp(deployment, step.key), "spec": spec}
            return _sent_before(step, sent, f"{name} was already scaled by {step.key}")
        current = deployment["spec"].get("replicas", 1)
        # A plain HPA stops scaling a Deployment at 0 (ScalingDisabled): a count set by hand
        # there is not undone (it starts the HPA again). KEDA's, or one of minReplicas 0, is.
        hpa = await self._reads.autoscaler(step.target, at_zero=current == 0)
        if current == 0 and not step.asked:
            # At 0 on purpose, whether a person or its autoscaler put it there: the ladder
            # hands over (as its restart does), it does not climb on to a rollback.
            return _stopped(name, Rung.SCALE_OUT, hpa)
        if deployment["spec"].get("paused") and not step.asked:
            # Someone holds its rollout (kubectl rollout pause): the ladder leaves its pods as
            # they hold them, as its restart and rollback do. A person may scale it.
            return StepPlan(
                skipped_reason=paused_reason(name, Rung.SCALE_OUT),
                detail=f"{name} is paused (spec.paused): not scaled",
            )
        if hpa is not None:
            return StepPlan(
                skipped_reason=f"{name} is scaled by {hpa}: its controller would undo a count set "
                "on the Deployment; raise the autoscaler's bounds instead",
                detail=f"{name} runs {current} replicas under {hpa}",
            )
        # The ladder's count is at least: one raised since the checkpoint (by a person) is kept.
        if current == step.replicas or (current > step.replicas and not step.asked):
            return StepPlan(
                skipped_reason=f"already at {current} replicas",
                detail=f"{name} already runs {current} replicas",
            )
        # The Deployment itself, not its scale subresource: the scale subresource drops
        # metadata, and the step key must land in the same write as the new count.
        body = {"metadata": stamp(deployment, step.key), "spec": spec}
        return StepPlan(
            changes=[_patch(Deployment, step.target, body)],
            detail=f"scale {name} from {current} to {step.replicas} replicas",
        )

    async def _plan_rollback(self, step: StepRequest) -> StepPlan:
        deployment = await self._read_deployment(step)
        name = _deployment(step)
        if stamped(deployment, step.key):
            template, _ = await self._revision_template(step, deployment, step.to_revision)
            sent = sent_json_stamp(deployment, step.key)
            if template is not None:
                sent.append({"op": "replace", "path": "/spec/template", "value": template})
            return _sent_before(step, sent, f"{name} was already rolled back by {step.key}")
        if deployment["spec"].get("paused"):
            return _paused(name, Rung.ROLLBACK)
        if step.to_revision is None:
            return StepPlan(
                skipped_reason=NOT_A_REVISION,
                detail=f"{name}: no earlier revision was recorded at the first checkpoint",
            )
        template, revisions = await self._revision_template(step, deployment, step.to_revision)
        if template is None:
            known = ", ".join(str(r) for r in sorted(revisions)) or "none"
            return StepPlan(
                skipped_reason=NOT_A_REVISION,
                detail=f"{name} has no ReplicaSet of revision {step.to_revision} "
                f"(revisions: {known})",
            )
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
            changes=[_patch(Deployment, step.target, operations, PatchType.JSON)],
            detail=f"roll back {name} to revision {step.to_revision} "
            f"({', '.join(images_of(template))})",
        )

    async def _revision_template(
        self, step: StepRequest, deployment: Obj, revision: int | None
    ) -> tuple[Obj | None, dict[int, Obj]]:
        """``revision_template`` of ``revision``, and the Deployment's ReplicaSets by revision."""
        revisions = await self._reads.revisions(deployment, with_history=True) if revision else {}
        return revision_template(revisions, revision, step.checkpoint), revisions

    async def _plan_isolate(self, step: StepRequest) -> StepPlan:
        deployment = await self._read_deployment(step)
        namespace = step.target.namespace
        services = await self._reads.services(deployment)
        # A Service that selects another workload's pods too is not pointed at no pod: that
        # workload (no alert of its own) would lose its traffic. One this step already isolated
        # (a retry) is its own still.
        shared = await self._reads.sharing(deployment, services)
        shared = {n: d for n, d in shared.items() if not _stamped_service(services, n, step.key)}
        left = "; ".join(
            f"Service {n} also selects the pods of {', '.join(d)}: left as it is"
            for n, d in sorted(shared.items())
        )
        services = [s for s in services if s["metadata"]["name"] not in shared]
        if not services:
            plan = await self._plan_deny_policy(step, deployment, bool(shared))
            plan.detail = "; ".join(filter(None, [plan.detail, left]))
            return plan
        plan = StepPlan()
        isolated = isolation_value(step.key)
        for service in services:
            name = service["metadata"]["name"]
            selector = service["spec"]["selector"]
            isolating = {"spec": {"selector": {ISOLATION_LABEL: isolated}}}
            if stamped(service, step.key):
                sent = {"metadata": sent_stamp(service, step.key), **isolating}
                change = Change(Service, namespace, name, "patch", sent, PatchType.MERGE)
                plan.sent_before[change.object] = sent
            if stamped(service, step.key) or ISOLATION_LABEL in selector:
                plan.done.append(f"service {namespace}/{name}")
                continue
            body = {"metadata": stamp(service, step.key), **isolating}
            plan.changes.append(Change(Service, namespace, name, "patch", body, PatchType.MERGE))
        names = ", ".join(s["metadata"]["name"] for s in services)
        plan.detail = (
            f"isolate: Services {names} in {namespace} select no pod ({ISOLATION_LABEL}={isolated})"
        )
        if left:
            plan.detail += f"; {left}"
        return plan

    async def _plan_deny_policy(
        self, step: StepRequest, deployment: Obj, shared: bool = False
    ) -> StepPlan:
        namespace = step.target.namespace
        name = isolation_policy_name(step.remediation_id)
        found = await self._reads.get(NetworkPolicy, namespace, name)
        # The ReplicaSets with pods: a rollout under way runs two releases' pods at once.
        running = [
            rs
            for rs in (await self._reads.revisions(deployment)).values()
            if (rs.get("status") or {}).get("replicas")
        ]
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
                "podSelector": own_pods(deployment, running),
                # Ingress listed with no rules: all inbound traffic to the pods is denied.
                "policyTypes": ["Ingress"],
            },
        }
        change = Change(NetworkPolicy, namespace, name, "create", body)
        if found is not None:
            # The policy's name is this run's: it exists because this step created it.
            sent = {change.object: change.sent()} if stamped(found, step.key) else {}
            return StepPlan(
                done=[f"networkpolicy {namespace}/{name}"],
                detail=f"isolation policy {name} exists",
                sent_before=sent,
            )
        return StepPlan(
            changes=[change],
            detail=f"isolate: no Service selects {'only ' if shared else ''}{step.target.name}; "
            f"deny-all NetworkPolicy {name}",
        )

    async def _plan_full_rollback(self, step: StepRequest) -> StepPlan:
        baseline = step.checkpoint
        if baseline is None:
            raise StepInputError(
                "checkpoint (the first checkpoint) is required for rung 5 (full rollback)"
            )
        deployment = await self._read_deployment(step)
        namespace, plan = step.target.namespace, StepPlan()
        notes: list[str] = []
        policy = isolation_policy_name(step.remediation_id)
        removing = await self._reads.get(NetworkPolicy, namespace, policy) is not None
        await self._restore_release(
            step, baseline, deployment, plan, notes, policy if removing else None
        )
        for name, data in sorted(baseline.configmaps.items()):
            binary = baseline.configmap_binaries.get(name)
            await self._restore_configmap(step, name, data, binary, plan, notes)
        for name, selector in sorted(baseline.service_selectors.items()):
            service = await self._reads.get(Service, namespace, name)
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
        # A Service rung 4 isolated that the first checkpoint did not hold (created, or pointed
        # at the pods, since): its isolation key taken out, the rest of its selector its own.
        isolate_key = step_key(step.key.rpartition("#")[0], Rung.ISOLATE)
        try:
            isolated = await self._reads.isolated_services(namespace, isolation_value(isolate_key))
        except KubeForbiddenError:  # Services withheld (RBAC): rung 4 could list none either
            isolated = []
        for service in isolated:
            name = service["metadata"]["name"]
            if name not in baseline.service_selectors:
                body = {"metadata": stamp(service, step.key), "spec": {"selector": UNISOLATED}}
                plan.changes.append(
                    Change(Service, namespace, name, "patch", body, PatchType.MERGE)
                )
                notes.append(f"Service {name} selects its pods again ({ISOLATION_LABEL} removed)")
        removal = Change(NetworkPolicy, namespace, policy, "delete")
        if removing:
            plan.changes.append(removal)
            notes.append(f"NetworkPolicy {policy} removed")
        elif (
            stamped(deployment, step.key)
            and annotations_of(deployment).get(REMOVED_POLICY_ANNOTATION) == policy
        ):
            plan.done.append(f"networkpolicy {namespace}/{policy}")
            plan.sent_before[removal.object] = removal.sent()
        if plan.done and not plan.changes:
            # A retry after the last write (the executor names done objects only beside writes).
            notes.append("already done by this step: " + ", ".join(plan.done))
        plan.detail = "full rollback: " + (
            "; ".join(notes) or "everything is as at the first checkpoint"
        )
        return plan

    async def _restore_release(
        self,
        step: StepRequest,
        baseline: Checkpoint,
        deployment: Obj,
        plan: StepPlan,
        notes: list[str],
        removing: str | None = None,
    ) -> None:
        """The release before the incident (or the baseline's own template) and its replicas;
        the Deployment names the isolation policy ``removing`` (written even with no change)."""
        name = _deployment(step)
        if stamped(deployment, step.key):
            plan.done.append(name)
            return
        revision = step.to_revision or baseline.previous_revision
        template, revisions = await self._revision_template(step, deployment, revision)
        if revision in revisions:
            notes.append(f"{name} to revision {revision}")
        elif template is not None:
            notes.append(f"{name} to revision {revision} (as recorded at the first checkpoint)")
        else:
            template = baseline.spec.get("template") or deployment["spec"]["template"]
            why = NOT_A_REVISION if revision else "no earlier revision"
            notes.append(f"{name} to its template at the first checkpoint ({why})")
        operations: list[Obj] = []
        if template != deployment["spec"]["template"] and deployment["spec"].get("paused"):
            # A paused Deployment rolls out no template: restoring it would be reported and
            # not run (ConfigMaps, replicas and selectors still are).
            notes[-1] = f"{name} is paused: its release is not put back until it is resumed"
        elif template != deployment["spec"]["template"]:
            operations.append({"op": "replace", "path": "/spec/template", "value": template})
        replicas, current = baseline.replicas, deployment["spec"].get("replicas", 1)
        if replicas is not None and replicas != current:
            # An autoscaler would undo the count (as for scale out): it stays the HPA's, but
            # for one at 0 a plain HPA does not scale.
            hpa = await self._reads.autoscaler(step.target, at_zero=current == 0)
            if hpa is not None:
                notes.append(f"replicas left to {hpa}")
            else:
                operations.append({"op": "replace", "path": "/spec/replicas", "value": replicas})
                notes.append(f"replicas back to {replicas}")
        if operations or removing:
            also = {REMOVED_POLICY_ANNOTATION: removing} if removing else None
            operations = [*json_stamp(deployment, step.key, also), *operations]
            plan.changes.append(_patch(Deployment, step.target, operations, PatchType.JSON))

    async def _restore_configmap(
        self,
        step: StepRequest,
        name: str,
        data: dict[str, Any],
        binary: dict[str, str] | None,
        plan: StepPlan,
        notes: list[str],
    ) -> None:
        """Put the ConfigMap's data and its binaryData (None: not recorded) back."""
        namespace = step.target.namespace
        current = await self._reads.get(ConfigMap, namespace, name)
        wanted: dict[str, dict[str, Any]] = {"data": data}
        if binary is not None:
            wanted["binaryData"] = binary
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": {STEP_ANNOTATION: step.key},
                },
                **wanted,
            }
            plan.changes.append(Change(ConfigMap, namespace, name, "create", body))
            notes.append(f"ConfigMap {name} recreated")
        elif stamped(current, step.key):
            plan.done.append(f"configmap {namespace}/{name}")
        elif changed := {
            field: merge_diff(current.get(field) or {}, kept)
            for field, kept in wanted.items()
            if (current.get(field) or {}) != kept
        }:
            body = {"metadata": stamp(current, step.key), **changed}
            plan.changes.append(Change(ConfigMap, namespace, name, "patch", body, PatchType.MERGE))
            notes.append(f"ConfigMap {name} data back to the first checkpoint")


def _sent_before(step: StepRequest, body: Obj | list[Obj], detail: str) -> StepPlan:
    """The step's Deployment patch, found made by an earlier attempt (our stamp is on it)."""
    sent = _patch(Deployment, step.target, body)
    return StepPlan(done=[_deployment(step)], detail=detail, sent_before={sent.object: body})


def _stopped(name: str, rung: Rung, autoscaler: str | None = None) -> StepPlan:
    return StepPlan(
        skipped_reason=stopped_reason(name, rung, autoscaler),
        stopped=True,
        detail=f"{name} runs no pod",
    )


def _paused(name: str, rung: Rung) -> StepPlan:
    # What kubectl rollout restart / undo refuse: a paused Deployment rolls out no new template.
    return StepPlan(
        skipped_reason=paused_reason(name, rung),
        detail=f"{name} is paused (spec.paused): nothing rolls out",
    )


def _stamped_service(services: list[Obj], name: str, key: str) -> bool:
    return any(s["metadata"]["name"] == name and stamped(s, key) for s in services)


def _deployment(step: StepRequest) -> str:
    return f"deployment {step.target.namespace}/{step.target.name}"


def _patch(
    resource: Kind, target: WorkloadRef, body: Any, patch_type: PatchType = PatchType.MERGE
) -> Change:
    """A patch of the step's own workload."""
    return Change(resource, target.namespace, target.name, "patch", body, patch_type)
