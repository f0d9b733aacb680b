"""The event-driven agent's pure parts: which events matter, and the offline decision.

Every few minutes (a Schedule per user who turns it on) the agent reads the events it has not
seen and decides whether to tell the person, in one message that sums several up — instead of
one push per hit. The LLM decides when one is configured; otherwise these rules do.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ambient.domain.events import clipped
from ambient.domain.notify import INTERNAL_ERROR, Wording, made_here
from ambient.domain.workflow_input import WorkflowInput

AGENT_KINDS = ("agent.digest", "agent.held")
# Worth a person's attention on their own; everything else waits for the next digest or none.
NOTABLE_PREFIXES = (
    "watch.hit", "watch.breach", "watch.failing", "watch.recovery", "watch.recovered",
    "watch.poll_failed", "watch.delivery_failed", "schedule.delivery_failed", "delivery.failed",
    "remediation.", "briefing.failed",
)  # fmt: skip
MAX_EVENTS = 200


def agent_task(user: str) -> str:
    """The agent's own task id, and its Schedule's: its decisions, and its pushes and their
    failures, are filed under it."""
    return f"event-agent/{user}"


class DigestRun(WorkflowInput):
    user: str
    every_minutes: int = Field(default=15, ge=5, le=1440)


class EventBrief(BaseModel):
    """One event as the agent (and the model) sees it: kind, task, a short gist."""

    id: int
    kind: str
    task: str | None = None
    at: datetime
    gist: str = ""


class CollectedEvents(BaseModel):
    after_id: int
    events: list[EventBrief] = Field(default_factory=list)
    # The highest id read, of anyone's events: those not to tell are passed too.
    read_to: int = 0
    # Ids below the new high-water mark not committed yet, with when they were first missed
    # (ISO): the next run reads them again (ambient/storage/event_cursor.py).
    gaps: list[tuple[int, str]] = Field(default_factory=list)

    @property
    def last_id(self) -> int:
        # An event that committed late has an id below after_id: the mark never goes back.
        return max([self.after_id, self.read_to, *(e.id for e in self.events)])

    @property
    def mark(self) -> str:
        """What this batch is known by (keys of its push and decision): the high-water mark,
        and the late events too, so a batch of late events is not taken for the last one."""
        # Late: read from the gaps of an earlier run (committed after it passed them).
        late = [e.id for e in self.events if e.id <= self.after_id]
        return f"{self.last_id}+{'.'.join(map(str, late))}" if late else str(self.last_id)


class DigestDecision(BaseModel):
    """What the agent decided about a batch of events."""

    notify: bool = Field(description="true if the person should hear about these events now")
    title: str = Field(default="", max_length=120, description="the message title")
    body: str = Field(default="", max_length=2000, description="markdown summary, a few lines")
    reason: str = Field(default="", max_length=300, description="why notify or hold")


class DigestDraft(DigestDecision):
    """What the model is asked for: a message short enough that a loop cannot run long (the
    answer's grammar stops the body at this length), converted to a DigestDecision."""

    body: str = Field(default="", max_length=600, description="the message, a few sentences")

    def decision(self) -> DigestDecision:
        return DigestDecision.model_validate(self.model_dump())


class DigestVerdict(BaseModel):
    decision: DigestDecision
    generated_by: str = "offline"
    # The model answered hold about notable events: the rules told them (generated_by
    # offline, the model's answer in the reason).
    overruled: bool = False
    # The rules' message in Chinese (a model's is written in the events' language).
    zh: Wording | None = None


class DigestResult(BaseModel):
    last_event_id: int
    events: int
    notified: bool
    generated_by: str = "offline"


def gist(payload: dict[str, Any]) -> str:
    """An event payload in 160 characters at most, flat (url, value, error... first)."""
    preferred = ("url", "value", "error", "excerpt", "state", "headline", "message")
    if isinstance(error := payload.get("error"), str) and made_here(error):
        # The product's own failure: its text (a host, the database's words) an administrator's.
        payload = {**payload, "error": f"{error.partition(INTERNAL_ERROR)[0]}{INTERNAL_ERROR}…"}
    parts = [f"{k}={payload[k]}" for k in preferred if payload.get(k) not in (None, "", [])]
    text = ", ".join(parts) or ", ".join(f"{k}={v}" for k, v in list(payload.items())[:3])
    return clipped(text, 160)


def notable(kind: str) -> bool:
    return kind.startswith(NOTABLE_PREFIXES)


def _chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def events_language(events: list[EventBrief]) -> str:
    """The language of a message about these events: zh if any holds Chinese text, else en."""
    return "zh" if _chinese("".join(f"{e.task or ''}{e.gist}" for e in events)) else "en"


def looping(decision: DigestDecision) -> bool:
    """The body repeats a sentence three times or more: a small model's loop, not a message."""
    sentences = [t.strip() for t in re.split(r"[.。!！?？;；\n]+", decision.body)]
    counts = Counter(t for t in sentences if len(t) >= 12)
    return any(n >= 3 for n in counts.values())


def written_in(decision: DigestDecision, language: str) -> bool:
    """The message is in ``language``: Chinese text for zh, none for en."""
    return _chinese(decision.title + decision.body) == (language == "zh")


def sendable(decision: DigestDecision, language: str) -> bool:
    """A message to send: in the events' language, and not a loop."""
    return written_in(decision, language) and not looping(decision)


def offline_verdict(
    events: list[EventBrief], why: str = "", *, overruled: bool = False
) -> DigestVerdict:
    """The rules' decision, ``why`` they decided added to its reason; its message in English
    and in Chinese (the kinds, tasks and gists as written)."""
    worth = [e for e in events if notable(e.kind)]
    if not worth:
        reason = f"{len(events)} routine event(s), nothing that needs you{why}"
        return DigestVerdict(decision=DigestDecision(notify=False, reason=reason[:300]))
    groups = Counter((e.kind, e.task or "") for e in worth)
    lines = [
        f"- **{kind}** ×{count}" + (f" — {task}" if task else "")
        for (kind, task), count in groups.most_common(10)
    ]
    latest = {e.kind: e for e in worth}
    gists = [(kind, e.gist) for kind, e in latest.items() if e.gist][:5]
    many = len(worth) > 1
    decision = DigestDecision(
        notify=True,
        title=f"{len(worth)} event(s) worth a look" if many else worth[0].kind,
        body="\n".join(lines + [f"  - latest {kind}: {gist}" for kind, gist in gists]),
        reason=f"{len(worth)} notable of {len(events)} new event(s){why}"[:300],
    )
    zh = Wording(
        title=f"{len(worth)} 个事件值得关注" if many else worth[0].kind,
        body="\n".join(lines + [f"  - 最近一次 {kind}：{gist}" for kind, gist in gists]),
    )
    return DigestVerdict(decision=decision, zh=zh, overruled=overruled)
