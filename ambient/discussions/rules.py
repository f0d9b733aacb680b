"""Discussions, the team's message bus: pure rules (ids, topics, anomalies, annotation).

A reply that lands within a couple of seconds after what it answers (the message it replies
to, a post of the product's agents) was most likely not typed by a person: the analysis marks
such messages `inferred` — which matters when a reply is an approval (only a `real` approve
acts on a remediation).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ambient.domain.configs import UserConfig, shows_nothing, unseen_codes
from ambient.domain.workflow_input import WorkflowInput
from ambient.refusals import Refusal

SourceType = Literal["real", "inferred", "unverifiable"]
AUTO_REPLY = "auto_reply"
DEFAULT_PROJECT = "ambient-ops"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_TAG = re.compile(r"^[\w.:-]{1,40}$")
# Characters that show nothing and join nothing (zero-width space, word joiner, BOM, soft
# hyphen, Mongolian vowel separator, invisible operators). Other format characters are part of
# what a topic says: ZWJ/ZWNJ (emoji sequences, Persian and Indic words), bidi marks, the tag
# characters of a flag: dropped, different topics met in one discussion.
_INVISIBLE = frozenset("\u200b\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064")


class ParticipantRole(StrEnum):
    PERSON = "person"
    AGENT = "agent"


# The product's own agents by id, with their display names: seeded by the migration (the names
# are editable).
PRODUCT_AGENTS = {
    "xiaozhi": "小智 (assistant)",
    "remediation": "Graded remediation",
    "briefing": "Morning briefing",
    "triage": "Nightly alert triage",
}


def normalise_topic(topic: str) -> str:
    """The key that makes "Checkout 5xx ", "checkout 5xx" and "check" U+200B "out 5xx" the
    same discussion: invisible characters and controls inside (U+200B, U+2060, U+FEFF, a soft
    hyphen) are no part of it, or a topic that reads the same opened another one."""
    plain = unicodedata.normalize("NFKC", topic)
    shown = "".join(
        c for c in plain if c.isspace() or not (c in _INVISIBLE or unicodedata.category(c) == "Cc")
    )
    return re.sub(r"\s+", " ", shown.strip().casefold())


def discussion_id(at: datetime, suffix: str) -> str:
    """`disc_YYYYMMDDHHMMSS_xxxx`: readable, sortable, unique with a short random suffix."""
    return f"disc_{at.strftime('%Y%m%d%H%M%S')}_{suffix}"


class MessageIn(UserConfig):
    """What a sender writes (send_message / reply_message arguments)."""

    from_id: str
    content: str = Field(min_length=1, max_length=20_000)
    # A message's id (its column's length): a longer one names no message.
    reply_to: str | None = Field(default=None, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=20)
    source_type: SourceType = "real"
    message_id: str | None = Field(
        default=None, description="your own id for this message: a retry with it is a no-op"
    )

    @field_validator("content")
    @classmethod
    def _content(cls, content: str) -> str:
        if not content.strip():
            raise Refusal("say something: the message is blank")
        if shows_nothing(content):  # U+200B, U+3164: a blank line on every page
            raise Refusal(
                "only invisible characters (%(codes)s): say something a person can read",
                codes=unseen_codes(content),
            )
        return content

    @field_validator("message_id")
    @classmethod
    def _message_id(cls, value: str | None) -> str | None:
        # The store keeps ids in 64 characters; one a person can quote back in a retry.
        if value is not None and not _ID.fullmatch(value):
            raise Refusal("1-64 letters, digits, '_', '.', ':' or '-', starting alphanumeric")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not _TAG.fullmatch(tag):
                raise Refusal(
                    "tag %(tag)s: 1-40 letters, digits, '_', '.', ':' or '-'", tag=repr(tag)
                )
        return list(dict.fromkeys(tags))


class MessageView(BaseModel):
    id: str
    discussion_id: str
    from_id: str
    content: str
    reply_to: str | None
    tags: list[str]
    source_type: SourceType
    created_at: datetime


class Anomaly(BaseModel):
    message_id: str
    from_id: str
    previous_id: str
    previous_from: str
    gap_seconds: float


def detect_anomalies(messages: list[MessageView], threshold_seconds: float = 2.0) -> list[Anomaly]:
    """Messages sent within ``threshold_seconds`` after what they answer, as an automatic
    reply is: the message they reply to, or a post our workflows made as a product agent (a
    run's plan, a rung's approval request), by another sender. Other members' messages are
    not what a message answers: counted, one member posting non-stop made every approval
    look fast."""
    by_id = {m.id: m for m in messages}
    latest: dict[str, MessageView] = {}  # each agent's newest post so far
    found: list[Anomaly] = []
    for message in sorted(messages, key=lambda m: (m.created_at, m.id)):
        answered = [by_id.get(message.reply_to or ""), *latest.values()]
        gaps = [
            ((message.created_at - m.created_at).total_seconds(), m)
            for m in answered
            if m is not None and m.from_id != message.from_id
        ]
        near = [(gap, m) for gap, m in gaps if 0 <= gap < threshold_seconds]
        if near:
            gap, previous = min(near, key=lambda g: g[0])
            found.append(
                Anomaly(
                    message_id=message.id,
                    from_id=message.from_id,
                    previous_id=previous.id,
                    previous_from=previous.from_id,
                    gap_seconds=round(gap, 3),
                )
            )
        # Posted by our workflows (an id no caller's post gets): an admin may post as a product
        # agent, and what they type there is a member's chatter, not the run's plan or request.
        if message.from_id in PRODUCT_AGENTS and message.id.startswith(AGENT_POST_ID):
            latest[message.from_id] = message
    return found


def answered_fast(messages: list[MessageView], message_id: str) -> bool:
    """Whether the message is one of ``detect_anomalies``' (the rule annotation reads too)."""
    return any(a.message_id == message_id for a in detect_anomalies(messages))


class Annotation(BaseModel):
    message_id: str
    source_type_before: SourceType
    source_type: SourceType
    tags_added: list[str] = Field(default_factory=list)


def auto_replied(tags: list[str]) -> bool:
    """Tagged `auto_reply`, in any case (tags are typed by hand, like the action tags)."""
    return AUTO_REPLY in {tag.casefold() for tag in tags}


def annotate(messages: list[MessageView], known_senders: set[str]) -> list[Annotation]:
    """What the analysis changes: anomalies and `auto_reply` tags → inferred (tagged);
    senders nobody knows → unverifiable. Messages already right are left alone."""
    fast = {a.message_id for a in detect_anomalies(messages)}
    changes: list[Annotation] = []
    for message in messages:
        target: SourceType = message.source_type
        added: list[str] = []
        if message.from_id not in known_senders:
            target = "unverifiable"
        elif message.id in fast or auto_replied(message.tags):
            target = "inferred"
            if not auto_replied(message.tags):
                added.append(AUTO_REPLY)
        if target != message.source_type or added:
            changes.append(
                Annotation(
                    message_id=message.id,
                    source_type_before=message.source_type,
                    source_type=target,
                    tags_added=added,
                )
            )
    return changes


class DiscussionNotice(WorkflowInput):
    """What the notify workflow tells the other people of a discussion."""

    message_id: str
    discussion_id: str
    topic: str
    from_id: str
    content: str
    recipients: list[str]


class AgentPost(BaseModel):
    """A product agent's post (a remediation's plan, steps, outcome), idempotent by id."""

    agent_id: str
    topic: str
    content: str
    subject: str | None = None
    tags: list[str] = Field(default_factory=list)
    message_id: str


# The ids our agents' posts take: a person's message is never stored under one (service._add).
AGENT_POST_ID = "rem-"


def remediation_post_id(key: str) -> str:
    """The message id of a remediation run's post ``key`` (``<run>#<rung>/approval-request``):
    deterministic (unlike hash()), so a retried post finds the first one."""
    return AGENT_POST_ID + hashlib.sha256(key.encode()).hexdigest()[:40]


class AgentPosted(BaseModel):
    discussion_id: str
    message_id: str
