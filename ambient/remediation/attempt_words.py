"""An attempt's detail and verification as a page says them: stored as the English the executor
and the check wrote (records of any release read alike), read back clause by clause as the
Refusals of these msgids; a clause none fits stays as written."""

from __future__ import annotations

from ambient.clients.kube import NOT_A_CONTEXT
from ambient.refusals import N_, Refusal, read_back
from ambient.remediation.outcomes import CANCELLED
from ambient.remediation.safety import skipped_said

DRY_FROM_ALERT = N_("dry run: would %(sentence)s; from the alert (%(why)s)")
DRY_WOULD = N_("dry run: would %(sentence)s")
DRY_ALREADY = N_("dry run: %(sentence)s")
DRY_STOPPED = N_(
    "dry run: deployment %(name)s ran no pod at the first checkpoint; from it (%(why)s)"
)
FULL_ROLLBACK = N_("full rollback: %(notes)s")
# What a full rollback puts back, one note each ("; " between them).
NOTES = (
    N_("deployment %(name)s to revision %(revision)s"),
    N_("deployment %(name)s to revision %(revision)s (as recorded at the first checkpoint)"),
    N_("deployment %(name)s to its template at the first checkpoint (%(why)s)"),
    N_("deployment %(name)s is paused: its release is not put back until it is resumed"),
    N_("replicas left to %(hpa)s"),
    N_("replicas back to %(replicas)s"),
    N_("ConfigMap %(name)s recreated"),
    N_("ConfigMap %(name)s data back to the first checkpoint"),
    N_("Service %(name)s is gone"),
    N_("Service %(name)s selector back to %(selector)s"),
    N_("NetworkPolicy %(name)s removed"),
    N_("already done by this step: %(done)s"),
    N_("everything is as at the first checkpoint"),
)
# What a rung would do or did: from the alert alone (deployment/ns/name) and as the cluster's
# plan names it (deployment ns/name).
SENTENCES = (
    N_("restart deployment/%(name)s (restartedAt %(time)s)"),
    N_("restart deployment %(name)s (restartedAt %(time)s)"),
    N_("scale deployment/%(name)s from %(current)s to %(replicas)s replicas"),
    N_("scale deployment/%(name)s to %(replicas)s replicas"),
    N_("scale deployment %(name)s from %(current)s to %(replicas)s replicas"),
    N_("roll deployment/%(name)s back to the revision before the one running at the start"),
    N_("roll deployment/%(name)s back to %(revision)s"),
    N_("roll back deployment %(name)s to revision %(revision)s (%(images)s)"),
    # The cluster's plan of each rung, as a dry run previews it and a change makes it: the
    # isolation, the full rollback (its notes below), a paused or 0-replica Deployment, a step
    # found made; and from the alert alone, the isolation and the full rollback.
    N_("deployment %(name)s runs no pod"),
    N_("deployment %(name)s is paused (spec.paused): nothing rolls out"),
    N_("%(name)s is paused (spec.paused): not scaled"),
    N_("deployment %(name)s runs %(current)s replicas under %(hpa)s"),
    N_("deployment %(name)s already runs %(current)s replicas"),
    N_("deployment %(name)s was already restarted by %(key)s"),
    N_("deployment %(name)s was already scaled by %(key)s"),
    N_("deployment %(name)s was already rolled back by %(key)s"),
    N_("deployment %(name)s: no earlier revision was recorded at the first checkpoint"),
    N_("deployment %(name)s has no ReplicaSet of revision %(revision)s (revisions: %(revisions)s)"),
    N_("deployment %(name)s already runs the template of revision %(revision)s"),
    N_("isolate: Services %(names)s in %(namespace)s select no pod (%(label)s)"),
    N_("isolate: no Service selects %(name)s; deny-all NetworkPolicy %(policy)s"),
    N_("isolate: no Service selects only %(name)s; deny-all NetworkPolicy %(policy)s"),
    N_("Service %(name)s also selects the pods of %(names)s: left as it is"),
    N_("isolation policy %(name)s exists"),
    N_("isolate deployment/%(name)s: add %(selector)s to the selector of its Services"),
    N_("full rollback of deployment/%(name)s: nothing was read, so only the intent is recorded"),
    N_(
        "full rollback of deployment/%(name)s to revision %(revision)s: template, %(replicas)s "
        "replicas, %(services)s Service(s), %(configmaps)s ConfigMap(s) as before the incident"
    ),
    N_("already applied (%(done)s)"),
)
VERIFY_FAILED = N_("verification failed: %(error)s")
# A check's verdict, one clause each.
CHECKS = (
    N_("metric %(value)s is healthy (%(why)s)"),
    N_("metric %(value)s is not healthy (%(why)s)"),
    N_("metric unreadable: %(error)s"),
    N_("rollout not observed (%(why)s)"),
    N_("rollout available: %(why)s"),
    N_("rollout not available: %(why)s"),
    N_("a dry run changes nothing, and no verify metric tells if the alert cleared"),
    N_("already done: %(why)s"),
    # A check that failed (its error's own words, read back in turn), a datapoint from before.
    VERIFY_FAILED,
    N_("no datapoint after the change: the newest (%(moment)s UTC) is from before it"),
    N_("no datapoint after the change: the newest is from before it"),
    N_("metric: no datapoint after the change: the newest (%(moment)s UTC) is from before it"),
    N_("metric: no datapoint after the change: the newest is from before it"),
)
# A run's end the run wrote as text: refused by the permission asked before a rung (and why),
# cancelled in Temporal.
ENDS = (
    N_("refused: %(reason)s"),
    N_("rollback_permission is 'none': an admin must grant dry_run or execute"),
    N_("no user %(user)s"),
    N_("unknown rollback_permission %(permission)s"),
    CANCELLED,
)
# Why the cluster was not read, the alert's healthy lines.
WHYS = (
    NOT_A_CONTEXT,
    N_("no cluster access configured"),
    N_("at or above %(value)s"),
    N_("at or below %(value)s"),
    N_("above %(value)s"),
    N_("below %(value)s"),
    # Why a release was not put back by its revision (a full rollback's note).
    N_("release is not a Deployment revision"),
    N_("no earlier revision"),
    N_("cluster %(cluster)s not reachable: %(error)s"),
    # The cluster's rollout verdict (what `kubectl rollout status` decides).
    N_("waiting for the controller to observe %(name)s's new spec"),
    N_("deployment %(name)s exceeded its progress deadline (ProgressDeadlineExceeded: %(why)s)"),
    N_("deployment %(name)s is scaled to 0 replicas: no pod serves"),
    N_("%(updated)s of %(desired)s new replicas have been updated"),
    N_("%(count)s old replicas are pending termination"),
    N_("%(available)s of %(updated)s updated replicas are available"),
    N_("%(name)s successfully rolled out (%(available)s/%(desired)s available)"),
    # A paused Deployment, judged by its available replicas (its rollout goes no further).
    N_("deployment %(name)s is paused: %(available)s of %(desired)s available"),
    N_(
        "deployment %(name)s is paused mid-rollout (%(updated)s of %(desired)s updated): "
        "%(available)s/%(total)s available"
    ),
    N_("deployment %(name)s is paused: %(available)s/%(total)s available"),
)
# Why the executor skipped a step (an attempt's skipped reason): a paused Deployment, one at 0
# replicas (someone's or its autoscaler's), one an autoscaler scales, one already so.
SKIPS = (
    N_(
        "deployment %(name)s is paused: a restart would not roll out until someone resumes it "
        "(kubectl rollout resume)"
    ),
    N_(
        "deployment %(name)s is paused: a rollback would not roll out until someone resumes it "
        "(kubectl rollout resume)"
    ),
    N_(
        "deployment %(name)s is scaled to 0 replicas: someone stopped it, and a restart would "
        "start no pod of it (scale it up by hand if it should run)"
    ),
    N_(
        "deployment %(name)s is scaled to 0 replicas: someone stopped it, and the scale out "
        "does not start it again (scale it up by hand if it should run)"
    ),
    N_(
        "deployment %(name)s is scaled to 0 replicas by %(hpa)s (or what drives it, such as "
        "KEDA), and a restart would start no pod of it (change the autoscaler's bounds or "
        "triggers if it should run)"
    ),
    N_(
        "deployment %(name)s is scaled to 0 replicas by %(hpa)s (or what drives it, such as "
        "KEDA), and the scale out does not start it again (change the autoscaler's bounds or "
        "triggers if it should run)"
    ),
    N_(
        "deployment %(name)s is scaled to 0 replicas: no pod runs, so there is nothing to "
        "restart (scale it up by hand if it should run)"
    ),
    N_(
        "deployment %(name)s is scaled to 0 replicas by %(hpa)s (or what drives it, such as "
        "KEDA): no pod runs, so there is nothing to restart (change the autoscaler's bounds or "
        "triggers if it should run)"
    ),
    N_(
        "deployment %(name)s is scaled by %(hpa)s: its controller would undo a count set on "
        "the Deployment; raise the autoscaler's bounds instead"
    ),
    N_(
        "%(name)s is paused: someone holds its rollout, and the ladder does not scale it while "
        "it is held (kubectl rollout resume)"
    ),
    N_("already at %(current)s replicas"),
    N_("current template already matches revision %(revision)s"),
    N_("release is not a Deployment revision"),
    N_("nothing to write, already so: %(done)s"),
)
AND_MORE = N_("%(said)s; %(more)s")
LISTED = N_("%(first)s, %(then)s")


def attempt_said(text: str) -> str | Refusal:
    """An attempt's stored ``detail`` or ``verification`` as the Refusal its clauses make."""
    if not text:
        return text
    dry = (DRY_FROM_ALERT, DRY_STOPPED, DRY_WOULD, DRY_ALREADY)
    if said := _clause(text, dry) or _sentence(text):
        return said
    return _clauses(text, (*SENTENCES, *CHECKS)) or _clause(text, CHECKS) or text


def outcome_words(outcome: str | Refusal) -> str | Refusal:
    """A run's end as a page says it: its Refusal's reason, or the text the run wrote, read
    back as ENDS say them (a revoked permission's, a cancel in Temporal)."""
    if isinstance(outcome, Refusal):
        values = {
            name: outcome_words(value) if name == "reason" else value
            for name, value in outcome.values.items()
        }
        return Refusal(outcome.msgid, **values)
    said = read_back(outcome, ENDS)
    if said is not None and isinstance(reason := said.values.get("reason"), str):
        return Refusal(said.msgid, reason=read_back(reason, ENDS) or reason)
    return said or outcome


def skipped_words(reason: str) -> str | Refusal:
    """A skipped attempt's reason as a page says it: the executor's (a paused Deployment, one
    at 0 replicas...) as its Refusal, the breaker's as ``skipped_said`` reads it."""
    return read_back(reason, SKIPS) or skipped_said(reason)


def _clauses(text: str, msgids: tuple[str, ...]) -> Refusal | None:
    """Clauses joined by "; ": the shortest first clause that fits (a why in parentheses may
    hold a "; " too, and read whole, a why would run on into the next clause), then the rest."""
    cut = text.find("; ")
    while cut != -1:
        first = _clause(text[:cut], msgids) or _full_rollback(text[:cut])
        if first is not None:
            return Refusal(AND_MORE, said=first, more=attempt_said(text[cut + 2 :]))
        cut = text.find("; ", cut + 2)
    return None


def _sentence(text: str) -> Refusal | None:
    """What a rung would do or did: one sentence, a full rollback's notes, or sentences joined
    by "; " (an isolation that leaves a shared Service as it is)."""
    return _clause(text, SENTENCES) or _full_rollback(text)


def _full_rollback(text: str) -> Refusal | None:
    """ "full rollback: " and its notes (and what the step found done, after them)."""
    notes = text.removeprefix("full rollback: ")
    if notes == text:
        return None
    return Refusal(FULL_ROLLBACK, notes=_notes(notes))


def _notes(text: str) -> str | Refusal:
    first, cut, rest = text.partition("; ")
    said = _clause(first, (*NOTES, *CHECKS)) or first
    if not cut:
        return said
    return Refusal(AND_MORE, said=said, more=_notes(rest))


def _clause(text: str, msgids: tuple[str, ...]) -> Refusal | None:
    said = read_back(text, msgids)
    if said is None:
        return None
    values = dict(said.values)
    if "sentence" in values:
        sentence = values["sentence"]
        values["sentence"] = _sentence(sentence) or _clauses(sentence, SENTENCES) or sentence
    if "why" in values:
        values["why"] = _listed(values["why"])
    if said.msgid == VERIFY_FAILED:
        values["error"] = _clause(values["error"], CHECKS) or values["error"]
    return Refusal(said.msgid, **values)


def _listed(text: str) -> str | Refusal:
    """A why, or the alert's healthy lines ("below 0.05, above 0.01"), as their Refusals."""
    if said := read_back(text, WHYS):
        return said
    first, comma, then = text.partition(", ")
    head = read_back(first, WHYS)
    if comma and head is not None:
        return Refusal(LISTED, first=head, then=_listed(then))
    return text
