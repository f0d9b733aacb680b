"""The escalation ladder: its rungs and what an executor is asked to do at each.

Pure and deterministic (no clock, no I/O): workflows import this through the sandbox, and
executors (dry run, Kubernetes) implement ``RemediationExecutor`` against these models.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from ambient.refusals import N_

# Annotation stamped on an object with the step key of the last change we made to it, so a
# retried or re-run step finds its own effect instead of applying it twice.
STEP_ANNOTATION = "ambient-ops.io/remediation-step"
# The keys of the last steps that changed the object (a JSON list): two runs on one workload
# (two alerts) each replace STEP_ANNOTATION, and a retry must still find its own change.
STEP_HISTORY_ANNOTATION = "ambient-ops.io/remediation-steps"
STEP_HISTORY_LENGTH = 16
# Label a Service selector gains when rung 4 isolates the workload (matches no pod).
ISOLATION_LABEL = "ambient-ops.io/isolated"
# The isolation NetworkPolicy a full rollback removes, named on the Deployment it writes first:
# a deletion leaves no stamp, and a retry after it must still find it done.
REMOVED_POLICY_ANNOTATION = "ambient-ops.io/removed-policy"

Mode = Literal["dry_run", "execute"]


class Rung(IntEnum):
    """The escalation ladder, one rung per attempt."""

    RESTART = 1
    SCALE_OUT = 2
    ROLLBACK = 3
    ISOLATE = 4
    FULL_ROLLBACK = 5
    HAND_OVER = 6


# The plan's words: msgids the remediation pages translate (a plan recorded in other words is
# shown as recorded).
RUNG_ACTIONS: dict[Rung, str] = {
    Rung.RESTART: N_("rollout restart (new pods, same release)"),
    Rung.SCALE_OUT: N_("scale out (absolute replica count, capped by the blast-radius limit)"),
    Rung.ROLLBACK: N_("roll back the release to the revision before the one running at the start"),
    Rung.ISOLATE: N_("isolate the service (Service selector matches no pod)"),
    Rung.FULL_ROLLBACK: N_("full rollback: release, ConfigMaps, replicas and isolation as before"),
    Rung.HAND_OVER: N_("hand over to a person (broadcast queue + push now)"),
}
# A rung and a mode as a push says them to a Chinese reader: the pages' words for them (the
# catalog's; a workflow reads no catalog, so they are written here too).
RUNG_NAMES_ZH: dict[Rung, str] = {
    Rung.RESTART: "重启", Rung.SCALE_OUT: "扩容", Rung.ROLLBACK: "回滚", Rung.ISOLATE: "隔离",
    Rung.FULL_ROLLBACK: "全面回滚", Rung.HAND_OVER: "转交给人",
}  # fmt: skip
MODES_ZH: dict[str, str] = {"dry_run": "演练", "execute": "执行"}


def rung_zh(rung: Rung) -> str:
    """``rung`` as a Chinese reader is told it: 第 2 级（扩容）."""
    return f"第 {int(rung)} 级（{RUNG_NAMES_ZH[rung]}）"


# --- executors ------------------------------------------------------------------------


class WorkloadRef(BaseModel):
    cluster_id: str
    namespace: str
    name: str
    kind: str = "Deployment"
    # A TKE cluster's region (its kubeconfig is asked for there); None: the configured one.
    region: str | None = None

    def __str__(self) -> str:
        return f"{self.cluster_id}/{self.namespace}/{self.kind.lower()}/{self.name}"


class StepResult(BaseModel):
    applied: bool
    already_applied: bool = False
    detail: str
    patch: dict[str, Any] | None = None
    skipped_reason: str | None = None
    # Skipped because someone stopped the workload (0 replicas): it is not failing, and no
    # stronger rung is tried on it (the run hands over).
    stopped: bool = False


class Checkpoint(BaseModel):
    """What the workload looked like before a change, enough to undo it."""

    target: WorkloadRef
    # metadata.uid of the Deployment read: its revisions and spec belong to this life of it
    # (a Deployment deleted and created again under its name is another object).
    uid: str | None = None
    # deployment.kubernetes.io/revision running now, and the revision before it (the release
    # rung 3 returns to); None when unknown or there is no earlier ReplicaSet.
    revision: int | None
    previous_revision: int | None = None
    # That revision's pod template: the controller may delete its ReplicaSet before rung 3
    # (revisionHistoryLimit; our own restart makes a revision).
    previous_template: dict[str, Any] | None = None
    replicas: int | None
    # The HorizontalPodAutoscaler holding a Deployment at 0 replicas (read only then): named
    # by a dry run that cannot read the cluster again, as by the cluster's own plan.
    autoscaler: str | None = None
    images: list[str] = Field(default_factory=list)
    spec: dict[str, Any] = Field(default_factory=dict)
    # Service name -> its selector; ConfigMap name -> its data (what full rollback restores).
    service_selectors: dict[str, dict[str, str]] = Field(default_factory=dict)
    configmaps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # ConfigMap name -> its binaryData (base64), restored with its data; a checkpoint recorded
    # before it was kept has none: those ConfigMaps' binaryData is left as it is.
    configmap_binaries: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Deny-all NetworkPolicies of an earlier run's rung 4 (ISOLATION_LABEL) on the workload's
    # pods: no traffic reaches them, as behind a Service isolated since before the run.
    isolation_policies: list[str] = Field(default_factory=list)
    taken_at: datetime
    # False when nothing could be read (dry run without a reachable cluster).
    observed: bool = True
    detail: str = ""
    # A read before a rung asks for its approval (CheckpointInput.asking): what the rung's change
    # would do now, planned by its executor from this read and not sent. None: no change was
    # asked about (a checkpoint before a change, a read recorded before reads carried it).
    planned: StepResult | None = None
    # Such a read, or its plan, that failed for good (the Deployment re-created, refused, a
    # 503 to the last try): what it met, worded as the change's failure is; the rung asks.
    plan_failed: str | None = None


class StepRequest(BaseModel):
    remediation_id: str
    rung: Rung
    target: WorkloadRef
    mode: Mode
    # remediation id + rung: stamped on the object (STEP_ANNOTATION) so a retry finds it.
    key: str
    restarted_at: str | None = Field(default=None, description="RFC 3339, chosen by the workflow")
    replicas: int | None = Field(default=None, ge=1, description="absolute count for scale out")
    to_revision: int | None = Field(default=None, ge=1, description="revision rung 3 returns to")
    # The remediation's FIRST checkpoint (its baseline): what full rollback restores.
    checkpoint: Checkpoint | None = None
    # Asked for through a door (scale_workload): the count as asked, down too. The ladder's
    # scale out never lowers a count a person raised since its checkpoint.
    asked: bool = False
    # A try before this change's first attempt may have written (its answer lost): a refusal
    # of that attempt before it wrote does not give the step's slot back.
    after_lost_try: bool = False
    # Planned only, whatever the mode: nothing is sent, the answer is the mode's (a rung's
    # change read before its approval is asked: an execute run's isolation found in place is
    # its change made already, not a dry run's "already so" skip).
    unsent: bool = False


class RolloutHealth(BaseModel):
    available: bool
    ready_replicas: int
    desired: int
    detail: str
    # False when nothing could be read (dry run without a reachable cluster).
    observed: bool = True


class RemediationExecutor(Protocol):
    """Reads and changes one workload; every change is idempotent by ``StepRequest.key``."""

    async def checkpoint(self, target: WorkloadRef) -> Checkpoint: ...

    async def apply(self, step: StepRequest) -> StepResult: ...

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth: ...


# The ladder's rungs whose change's plan is run, sending nothing, before their approval is
# asked: every change (its plan may skip or stop it: paused, autoscaled, at its count, at 0
# replicas, no release to go back to, nothing to put back, an isolation a dry run finds made).
PLANNED_BEFORE_ASKING = (
    Rung.RESTART,
    Rung.SCALE_OUT,
    Rung.ROLLBACK,
    Rung.ISOLATE,
    Rung.FULL_ROLLBACK,
)


def paused_reason(name: str, rung: Rung) -> str:
    """Why the ladder's restart, scale out or rollback skips the paused Deployment ``name``."""
    if rung is Rung.SCALE_OUT:
        return (
            f"{name} is paused: someone holds its rollout, and the ladder does not scale it "
            "while it is held (kubectl rollout resume)"
        )
    action = "restart" if rung is Rung.RESTART else "rollback"
    return (
        f"{name} is paused: a {action} would not roll out until someone resumes it "
        "(kubectl rollout resume)"
    )


def skipped_as_paused(read: Checkpoint, rung: Rung) -> str | None:
    """Why ``rung`` was skipped before asking on the workload ``read``, by a read recorded before
    reads carried their plan's answer (``Checkpoint.planned``; replayed so): paused alone."""
    spec = read.spec
    if not (read.observed and spec.get("paused")):
        return None
    if rung is not Rung.ROLLBACK and spec.get("replicas", 1) == 0:
        return None
    return paused_reason(f"deployment {read.target.namespace}/{read.target.name}", rung)


def step_key(remediation: str, rung: Rung | int) -> str:
    """Idempotency key of one rung of one remediation."""
    return f"{remediation}#{int(rung)}"
