"""What a reply asks of the remediation its discussion is about: the verb its tags say, the rung
it answers, and what it steers the run through (``RunSteering``)."""

from __future__ import annotations

from typing import Literal, Protocol

from ambient.discussions.rules import MessageIn, MessageView, remediation_post_id
from ambient.refusals import Refusal
from ambient.remediation.ladder import step_key
from ambient.remediation.views import RemediationStateError


class StepAnswered(Protocol):
    """An approval's answer: the step it was about (ambient/remediation/views.ApprovalAnswer)."""

    @property
    def rung(self) -> int: ...

    @property
    def mode(self) -> str | None: ...


class RunSteering(Protocol):
    """What a reply steers a remediation run through (ambient/remediation/service.py)."""

    async def approve(
        self,
        user: str,
        rid: str,
        approve: bool,
        reason: str = "",
        *,
        run_key: str | None = None,
        rung: int | None = None,
        via: Literal["discussion"],
    ) -> StepAnswered: ...

    async def abort(
        self,
        user: str,
        rid: str,
        reason: str = "",
        *,
        run_key: str | None = None,
        via: Literal["discussion"],
    ) -> object: ...


ACTION_TAGS = {"approve": "approve", "refuse": "refuse", "reject": "refuse", "abort": "abort"}


def rung_answered(run_key: str, thread: list[MessageView], reply_id: str) -> int | None:
    """The rung whose approval request (a post of the run) the stored reply answers: the one
    its reply chain leads to (through a colleague's remark on it), else the latest asked before
    the chain began (None: the thread holds none). The run may wait on its next rung by now,
    which nobody replying there has read about; a chain begun before every request (on the
    run's plan) was said under none of them, and is refused once two rungs were asked (with one,
    it can mean only that one)."""
    # The thread as stored, not the reply_to a sender sent (it names their own message first).
    # Each reply_to names a message stored before it: the chain ends.
    asks = {remediation_post_id(f"{step_key(run_key, n)}/approval-request"): n for n in range(1, 7)}
    by_id = {m.id: m for m in thread}
    root = at = by_id.get(reply_id)
    while at is not None:
        if at.id in asks and at.id != reply_id:
            return asks[at.id]
        root, at = at, by_id.get(at.reply_to or "")
    if root is None:
        return None
    began = (root.created_at, root.id)
    asked = [m for m in thread if m.id in asks]
    before = [m for m in asked if (m.created_at, m.id) < began]
    if len(asked) == 1 and not before:
        return asks[asked[0].id]  # one rung ever asked: the reply can mean no other
    if asked and not before:
        raise RemediationStateError(
            Refusal(
                "this reply answers what was said before any rung was asked: it does not act; "
                "reply to the approval request of the rung you mean"
            )
        )
    return asks[max(before, key=lambda m: (m.created_at, m.id)).id] if before else None


def verb_asked(message: MessageIn, subject: str) -> str | None:
    """What a message asks of the remediation its discussion is about: approve, refuse, abort."""
    if not subject.startswith("remediation/"):
        return None
    # Tags are typed by hand (a phone capitalises "Approve"): any case acts.
    said = [tag.casefold() for tag in message.tags]
    return next((ACTION_TAGS[t] for t in said if t in ACTION_TAGS), None)
