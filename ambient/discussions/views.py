"""What the discussion bus answers and raises: views, results, errors.

DiscussionError
 ├── InvalidDiscussionError   bad arguments: nothing changed
 ├── DiscussionNotFoundError  no such discussion or message
 ├── DiscussionClosedError    replies go to open discussions only
 └── SigningError             from_id is not the caller's to sign as
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, field_validator

from ambient.discussions.rules import (
    Annotation,
    Anomaly,
    MessageView,
)
from ambient.storage.models import Discussion


class DiscussionError(Exception):
    """A discussion operation failed; the message says what to do."""


class InvalidDiscussionError(DiscussionError):
    """Bad arguments; nothing changed. The message starts with the field: "field: why"."""

    @property
    def field(self) -> str:
        return str(self).partition(": ")[0]


class DiscussionNotFoundError(DiscussionError):
    """No such discussion (or message)."""


class DiscussionClosedError(DiscussionError):
    """The discussion is closed: replies are refused."""


class SigningError(DiscussionError):
    """The caller may not sign as that participant."""


class DiscussionView(BaseModel):
    id: str
    topic: str
    project: str
    initiator: str
    status: str
    subject: str | None
    created_at: datetime
    updated_at: datetime
    messages: int = 0

    @field_validator("subject", mode="before")
    @classmethod
    def _remediation_id(cls, value: object) -> object:
        # Stored per run (remediation/{fingerprint}@{run id}); shown as what get_remediation
        # takes.
        if isinstance(value, str) and value.startswith("remediation/"):
            return value.partition("@")[0]
        return value


class Posted(BaseModel):
    message_id: str
    discussion_id: str
    created_discussion: bool = False
    already_posted: bool = False
    notified: list[str] = Field(default_factory=list)
    notify_error: str | None = None
    # A reply tagged approve/refuse/abort in a remediation's discussion: what it did.
    action: dict[str, Any] | None = None
    # Why the action was not done, as raised (a page says it in its reader's language; the
    # action's "reason" is its English).
    _refused: Exception | None = PrivateAttr(default=None)

    def acted(
        self,
        remediation_id: str,
        verb: str,
        why: Exception | None,
        step: dict[str, Any] | None = None,
    ) -> None:
        """What the reply asked of the remediation: done (an answer's ``step``: its rung and
        mode, as every door names it), or not and why."""
        self.action = {"remediation_id": remediation_id, "verb": verb, "done": why is None}
        self.action |= step or {}
        if why is not None:
            self._refused = why
            self.action["reason"] = str(why)

    @property
    def refused(self) -> Exception | None:
        return self._refused


class Closed(BaseModel):
    discussion_id: str
    status: str = "closed"
    already_closed: bool


class Found(BaseModel):
    """search_messages' answer, in the LingMessage spec's names."""

    query: str
    total_matches: int = Field(description="all matching messages you can see")
    # Before the page: an answer cut on its way keeps it.
    next_offset: int | None = Field(
        default=None, description="more matches: search again with this offset"
    )
    results: list[MessageView] = Field(
        description="a page, newest first: at most limit, fewer when they are long"
    )


class AnomalyReport(BaseModel):
    discussion_id: str
    threshold_seconds: float
    count: int = Field(description="all that were found")
    anomalies: list[Anomaly] = Field(description="the first 100, oldest first")


class AnnotationReport(BaseModel):
    discussion_id: str
    count: int = Field(description="all the messages changed")
    changed: list[Annotation] = Field(description="the first 100")


class DiscussionList(BaseModel):
    open: int
    closed: int
    discussions: list[DiscussionView] = Field(description="a page: at most 100")
    next_offset: int | None = Field(
        default=None, description="more discussions: list again with this offset"
    )


class DiscussionRead(BaseModel):
    discussion: DiscussionView
    # Before the page: an answer cut on its way keeps it.
    next_offset: int | None = Field(
        default=None, description="more messages: read again with this offset"
    )
    messages: list[MessageView] = Field(
        description="a page, oldest first: at most limit, fewer when they are long"
    )


class StoreInit(BaseModel):
    participants: int
    discussions: int
    messages: int
    seeded: list[str]


class ProjectRow(BaseModel):
    project: str
    discussions: int
    open: int
    messages: int


class Projects(BaseModel):
    count: int
    projects: list[ProjectRow]


class Stats(BaseModel):
    discussions: int
    open: int
    closed: int
    messages: int
    participants: int
    messages_per_participant: dict[str, int]
    latest_activity: datetime | None
    store_bytes: int = Field(description="size of the bus's rows (text), in bytes")


def discussion_view(row: Discussion, messages: int = 0) -> DiscussionView:
    """One stored discussion as callers see it, with its message count."""
    view = DiscussionView.model_validate(row, from_attributes=True)
    view.messages = messages
    return view
