"""The Kubernetes remediation executor: checkpoints and the ladder's changes, through lightkube.

Every change carries the step key in the ``STEP_ANNOTATION`` of the object it changes, in the
same write, and with the ``resourceVersion`` it was computed from. ``apply`` reads first: an
object that already carries the key is left alone, so a worker killed after the write and
before its activity completed does not change anything twice; a concurrent writer turns our
write into a 409 Conflict, and the step is computed again from a fresh read.

Errors (from ``ambient.clients.kube``):

    KubeError                  invalid: not retryable
    ├── KubeForbiddenError     RBAC refused the call (403): not retryable
    ├── KubeRefusedError       a rule of the cluster's refused it (a webhook's 403): not retryable
    ├── StepInputError         (kube_plans) the step lacks what its rung needs: not retryable
    ├── KubeNotFoundError      the workload does not exist: not retryable
    └── KubeUnavailableError   unreachable, 5xx, 429, conflicts that kept coming: retryable
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import ConfigMap

from ambient.clients.kube import REVISION, KubeClients, revision_number
from ambient.clients.kube_errors import (
    NO_TOKEN,
    KubeError,
    KubeUnavailableError,
    answered,
    api_status,
    kube_error,
    no_token,
    status_of,
    unreachable,
)
from ambient.remediation.changes import (
    Change,
    Obj,
    StepPlan,
    annotations_of,
    configmaps_of,
    images_of,
    revision_template,
)
from ambient.remediation.kube_plans import StepPlanner
from ambient.remediation.kube_reads import ClusterReads, previous_revision, rollout_health
from ambient.remediation.ladder import (
    Checkpoint,
    RolloutHealth,
    Rung,
    StepRequest,
    StepResult,
    WorkloadRef,
)

T = TypeVar("T")

# The rungs that write the Deployment alone: refused at its read, the step changed nothing.
DEPLOYMENT_ONLY = (Rung.RESTART, Rung.SCALE_OUT, Rung.ROLLBACK)
# Fresh reads after a 409 before giving up (the activity's retry policy takes it from there).
CONFLICT_ATTEMPTS = 4


class KubernetesExecutor:
    """``RemediationExecutor`` against real clusters, through the worker's cluster clients."""

    def __init__(self, clients: KubeClients) -> None:
        self._clients = clients

    # Each on the cluster's kept client; one that is stale (its credentials refused, no
    # connection made: the cluster re-created or moved) is dropped and the call made once
    # more on the kubeconfig read again (KubeClients.using, as at the doors). A step is made
    # again whole: it reads first and skips what already carries its key.
    async def checkpoint(self, target: WorkloadRef) -> Checkpoint:
        return await self._on(target, lambda client: self._checkpoint(client, target))

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth:
        deployment = await self._on(target, lambda c: ClusterReads(c).deployment(target))
        return rollout_health(deployment)

    async def apply(self, step: StepRequest) -> StepResult:
        return await self._on(step.target, lambda client: self.apply_on(client, step))

    async def _on(self, target: WorkloadRef, work: Callable[[AsyncClient], Awaitable[T]]) -> T:
        return await self._clients.using(target.cluster_id, target.region, work)

    async def _checkpoint(self, client: AsyncClient, target: WorkloadRef) -> Checkpoint:
        """Spec, revision (and the one before), replicas (and an autoscaler holding them at 0),
        images, Service selectors, ConfigMaps."""
        reads = ClusterReads(client)
        deployment = await reads.deployment(target)
        revision = revision_number(annotations_of(deployment).get(REVISION))
        revisions = await reads.revisions(deployment)
        previous = previous_revision(revisions, revision, deployment["spec"]["template"])
        notes = [f"revision {revision}, {deployment['spec'].get('replicas', 1)} replicas"]
        # Access to Services, NetworkPolicies and ConfigMaps may be withheld (RBAC): the
        # checkpoint still serves rungs 1-3 and says what it could not read (what full rollback
        # will not restore, or that an earlier isolation goes unseen).
        unread = "Service selectors not recorded"
        services = await _unless_refused(reads.services(deployment), [], notes, unread)
        unread = "isolation NetworkPolicies not looked for"
        policies = await _unless_refused(reads.isolation_policies(deployment), [], notes, unread)
        configmaps: dict[str, dict[str, Any]] = {}
        binaries: dict[str, dict[str, str]] = {}
        for name in configmaps_of(deployment["spec"]["template"]):
            read = reads.get(ConfigMap, target.namespace, name)
            # {} when refused: a ConfigMap read always has its metadata.
            found = await _unless_refused(read, {}, notes, f"ConfigMap {name} not recorded")
            if found is None:
                notes.append(f"ConfigMap {name} does not exist (nothing to restore)")
            elif found:
                configmaps[name] = dict(found.get("data") or {})
                binaries[name] = dict(found.get("binaryData") or {})
        replicas = deployment["spec"].get("replicas", 1)
        return Checkpoint(
            target=target,
            uid=deployment["metadata"].get("uid"),
            revision=revision,
            previous_revision=previous,
            previous_template=revision_template(revisions, previous, None),
            replicas=replicas,
            autoscaler=await reads.autoscaler(target, at_zero=True) if replicas == 0 else None,
            images=images_of(deployment["spec"]["template"]),
            spec=deployment["spec"],
            service_selectors={
                s["metadata"]["name"]: dict(s["spec"]["selector"]) for s in services
            },
            configmaps=configmaps,
            configmap_binaries=binaries,
            isolation_policies=policies,
            taken_at=datetime.now(UTC),
            detail="; ".join(notes),
        )

    # --- changes ------------------------------------------------------------------------
    async def apply_on(
        self,
        client: AsyncClient,
        step: StepRequest,
        sending: Callable[[bool], object] = lambda _: None,
    ) -> StepResult:
        """Make the rung's change once: read, skip what carries the key, write the rest (on
        the client of a caller that keeps it: the doors' asked-for changes, told by
        ``sending`` whether a write may be stored: true as one goes out, back to whether an
        earlier one was once the API server refuses it or it never connects)."""
        planner = StepPlanner(ClusterReads(client))
        # What a failure names: a ladder's rung, or the workload a person's change was of.
        what = str(step.target) if step.asked else f"rung {int(step.rung)} on {step.target}"
        sent: Obj = {}  # object -> what this call wrote to it, across fresh reads after conflicts
        for _attempt in range(CONFLICT_ATTEMPTS):
            try:
                plan = await planner.plan(step)
            except KubeError as refused:
                # Refused at its reads before this call sent a write (a 503 on the Deployment's
                # GET): it wrote nothing (of this try: its activity says so on a first try
                # only), and an abort while it is retried is "before its change". Refused for
                # good there, these rungs' one object carries no change of this step (its
                # Deployment gone, re-created or unreadable): slot given back.
                if not sent and (refused.retryable or step.rung in DEPLOYMENT_ONLY):
                    refused.changed, refused.unread = False, refused.retryable
                raise
            if not plan.changes and sent:
                return self._applied(plan, sent)
            if not plan.changes and plan.done and step.mode == "dry_run" and not plan.sent_before:
                # Already as the rung wants (another run's isolation): a dry run applied nothing.
                # Made by this step (its stamp: a dry run of an execute run's change, read before
                # its approval is asked), it is as execute says it: already applied.
                done = ", ".join(plan.done)
                return StepResult(
                    applied=False,
                    detail=f"dry run: {plan.detail}",
                    skipped_reason=f"nothing to write, already so: {done}",
                )
            if not plan.changes and plan.done:
                detail = plan.detail or f"already applied ({', '.join(plan.done)})"
                return StepResult(
                    applied=True,
                    already_applied=True,
                    detail=detail,
                    patch=plan.sent_before or None,
                )
            if not plan.changes:
                reason = plan.skipped_reason or "nothing to change"
                return StepResult(
                    applied=False, detail=plan.detail, skipped_reason=reason, stopped=plan.stopped
                )
            if step.mode == "dry_run" or step.unsent:
                patch = {c.object: c.sent() for c in plan.changes}
                return StepResult(
                    applied=False, detail=f"dry run: would {plan.detail}", patch=patch
                )
            try:
                for change in plan.changes:
                    sending(True)
                    await self._send(client, change)
                    sent[change.object] = change.sent()
            except httpx2.HTTPStatusError as exc:  # ApiError and answers that are no Status
                if api_status(exc) and status_of(exc)[0] < 500:
                    sending(bool(sent))  # refused by the API server: this write stored nothing
                if status_of(exc)[0] == 409:
                    continue  # someone wrote in between: compute the step again from fresh reads
                error = kube_error(exc, what)
                written = [*sent, *plan.done]
                if written:
                    # A step refused halfway (a full rollback at its ConfigMap after the
                    # release): the person it is handed to must not read that nothing changed.
                    said = type(error)(
                        f"{error}; written by this step before it was refused: "
                        + ", ".join(written)
                    )
                    said.retry_after = error.retry_after  # the server's asked wait, kept
                    error = said
                # Refused before it was handled (a 4xx, the API server's own 503: shutting
                # down), nothing of this write was stored: the step changed something if this
                # call wrote before it or an earlier attempt stamped objects. Any other 5xx (a
                # 504 Timeout, a 500 ServerTimeout, a gateway's page) may follow a stored write.
                error.changed = True if written else (False if _stored_nothing(exc) else None)
                raise error from None
            except httpx2.TransportError as exc:
                if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
                    sending(bool(sent))  # not connected: this write was not sent
                raise unreachable(exc, what) from None
            except NO_TOKEN as exc:
                sending(bool(sent))  # no token for this write: not sent
                error = no_token(exc, what)
                error.changed = bool([*sent, *plan.done])
                raise error from None
            return self._applied(plan, sent)
        overtaken = KubeUnavailableError(
            f"{what}: conflicts kept coming "
            f"({CONFLICT_ATTEMPTS} fresh reads, each overtaken by another writer)"
        )
        # A 409 stores nothing: the step changed something only if a write of this call went
        # through before a conflict, or an earlier try stamped objects (it had been said "may
        # have been applied", its slot kept, with nothing written).
        overtaken.changed = bool(sent or plan.done)
        raise overtaken

    @staticmethod
    def _applied(plan: StepPlan, sent: Obj) -> StepResult:
        done = f"; already done: {', '.join(plan.done)}" if plan.done else ""
        return StepResult(applied=True, detail=plan.detail + done, patch=plan.sent_before | sent)

    async def _send(self, client: AsyncClient, change: Change) -> None:
        await answered(self._write(client, change))

    @staticmethod
    async def _write(client: AsyncClient, change: Change) -> None:
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
            except httpx2.HTTPStatusError as exc:
                # Already gone is what we wanted: the API server's own 404, not a proxy's page.
                if not (isinstance(exc, ApiError) and exc.status.code == 404):
                    raise


def _stored_nothing(exc: httpx2.HTTPStatusError) -> bool:
    """Whether the API server refused a write before handling it: its own Status of a 4xx, or
    of a 503 (it answers so before a request is handled: shutting down). A 500 or 504 (its
    storage did not answer in time) and any page of what stands before it may follow a write
    it stored."""
    return api_status(exc) and (status_of(exc)[0] < 500 or status_of(exc)[0] == 503)


async def _unless_refused(read: Awaitable[T], refused: T, notes: list[str], what: str) -> T:
    """The read's answer, or ``refused`` and a note of ``what`` RBAC kept from the checkpoint."""
    try:
        return await read
    except KubeError as exc:
        if exc.retryable:
            raise
        notes.append(f"{what} ({exc})")
        return refused
