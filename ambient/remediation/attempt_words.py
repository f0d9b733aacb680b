"""An attempt's detail and verification as a page says them: stored as the English the executor
and the check wrote (records of any release read alike), read back clause by clause as the
Refusals of these msgids; a clause none fits stays as written."""

from __future__ import annotations

from ambient.clients.kube import NOT_A_CONTEXT
from ambient.refusals import N_, Refusal, read_back

DRY_FROM_ALERT = N_("dry run: would %(sentence)s; from the alert (%(why)s)")
DRY_WOULD = N_("dry run: would %(sentence)s")
DRY_ALREADY = N_("dry run: %(sentence)s")
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
)
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
)
# Why the cluster was not read, the alert's healthy lines.
WHYS = (
    NOT_A_CONTEXT,
    N_("no cluster access configured"),
    N_("at or above %(value)s"),
    N_("at or below %(value)s"),
    N_("above %(value)s"),
    N_("below %(value)s"),
)
AND_MORE = N_("%(said)s; %(more)s")
LISTED = N_("%(first)s, %(then)s")


def attempt_said(text: str) -> str | Refusal:
    """An attempt's stored ``detail`` or ``verification`` as the Refusal its clauses make."""
    if not text:
        return text
    if said := _clause(text, (DRY_FROM_ALERT, DRY_WOULD, DRY_ALREADY, *SENTENCES)):
        return said
    # Clauses joined by "; ": the shortest first clause that fits (a why in parentheses may
    # hold a "; " too, and read whole, a why would run on into the next clause).
    cut = text.find("; ")
    while cut != -1:
        first = _clause(text[:cut], (*SENTENCES, *CHECKS))
        if first is not None:
            return Refusal(AND_MORE, said=first, more=attempt_said(text[cut + 2 :]))
        cut = text.find("; ", cut + 2)
    return _clause(text, CHECKS) or text


def _clause(text: str, msgids: tuple[str, ...]) -> Refusal | None:
    said = read_back(text, msgids)
    if said is None:
        return None
    values = dict(said.values)
    if "sentence" in values:
        values["sentence"] = read_back(values["sentence"], SENTENCES) or values["sentence"]
    if "why" in values:
        values["why"] = _listed(values["why"])
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
