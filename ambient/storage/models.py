"""Tables of the app database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.hybrid import hybrid_method
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; a naive value is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A time column written and read as aware UTC on every database (SQLite keeps no offset:
    converted to UTC on the way in, marked UTC on the way out)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    process_result_value = process_bind_param  # the same both ways


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


# Ids are 64-bit: BIGINT on PostgreSQL (0030; INTEGER's 2**31 - 1 ran out in a few years of
# millions of events a day), SQLite's rowid (its INTEGER PRIMARY KEY, which AUTOINCREMENT
# needs, already holds 64 bits). Anything larger cannot name a row, and a driver refuses it
# with an error, not an answer.
ID = BigInteger().with_variant(Integer, "sqlite")
MAX_ID = 2**63 - 1


def next_before(rows: Sequence[Any], limit: int) -> int | None:
    """The id to read the next (older) page before, of ``rows`` read newest first one past
    ``limit``: none when nothing is past it (a last page that filled its limit pointed at an
    empty one)."""
    return rows[limit - 1].id if len(rows) > limit else None


class Numbered:
    """A table keyed by an integer ``id`` (its first column)."""

    id: Mapped[int] = mapped_column(ID, primary_key=True, sort_order=-1)


class Removable(Numbered):
    """A numbered table whose rows people remove by id: a removed row's id never names a later
    one, so a stale page or a retried remove answers "no such row" rather than removing what
    was added since. SQLite reuses the newest removed row's id unless the table says
    AUTOINCREMENT; PostgreSQL's sequences never hand out an id twice."""

    __table_args__: ClassVar[dict[str, Any]] = {"sqlite_autoincrement": True}


class Dated:
    """A table whose rows keep when they were made (``created_at``)."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Updated:
    """A table whose rows keep when they were last changed (``updated_at``)."""

    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class User(Numbered, Dated, Updated, Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(63), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A token that opens only the voice profile (/mcp/voice), for a 小智 server's settings file.
    voice_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    push_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rollback_permission: Mapped[str] = mapped_column(String(16), default="dry_run")
    # "admin" or "member" (ambient.domain.users.Role); only an admin registers users and grants.
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    wake_words: Mapped[list[str]] = mapped_column(default=lambda: ["你好，小智"])
    assistant_name: Mapped[str] = mapped_column(String(40), default="小智")
    voiceprint_id: Mapped[str | None] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    briefing_prepare_at: Mapped[str] = mapped_column(String(5), default="05:00")
    briefing_window_start: Mapped[str] = mapped_column(String(5), default="06:00")
    briefing_window_end: Mapped[str] = mapped_column(String(5), default="10:00")
    # "zh" or "en" (ambient.domain.users.Language); NULL: not chosen, the server's default.
    language: Mapped[str | None] = mapped_column(String(8))

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# One voice, one user, whatever the case (UserRepository checks it against names, in code).
VOICEPRINT_INDEX = "uq_users_voiceprint"
Index(VOICEPRINT_INDEX, func.lower(User.voiceprint_id), unique=True)


class Event(Numbered, Dated, Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_user_time", "user", "created_at"),)

    kind: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str | None] = mapped_column(String(63))
    task: Mapped[str | None] = mapped_column(String(255), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set when an event comes from a workflow step, so a retried activity records it once.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)


# A conversation's own state kept as events of its user's, so the next call on any replica
# reads it back (`voice.*`: a question the voice asked back, the tasks an answer named), tells
# of nothing that happened: no list or stream of a user's events shows it.
HAPPENED = Event.kind.not_like("voice.%")


class Delivery(Numbered, Dated, Updated, Base):
    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_user_id", "user", "id"),)

    # idempotency key of the notify request + channel + target: one row per delivery. Compared
    # bytewise (SQLite's way; "C" in PostgreSQL, 0023): a notification's rows are a key range.
    key: Mapped[str] = mapped_column(
        String(255).with_variant(String(255, collation="C"), "postgresql"), unique=True
    )
    user: Mapped[str | None] = mapped_column(String(63), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    # A pending row is in flight until its lease expires; only then may a retry take it over.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    task: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(32))
    # A deferred row (its receiver said "try again later": a deliver-later run has it): the
    # run's give-up, until which it is tried again (docs/notifications.md, "Deliver later").
    retry_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def _takeable(self, now: datetime) -> bool:
        """Whether an attempt may take the lease: failed transiently, deferred, or pending and
        expired."""
        lease = self.lease_until
        failed = self.status == "failed" and (self.error or "").startswith("transient:")
        return (
            failed
            or self.status == "deferred"
            or (self.status == "pending" and (lease is None or lease < now))
        )

    @classmethod
    def _takeable_sql(cls, now: datetime) -> ColumnElement[bool]:
        failed = (cls.status == "failed") & cls.error.startswith("transient:")
        expired = cls.lease_until.is_(None) | (cls.lease_until < now)
        return failed | (cls.status == "deferred") | ((cls.status == "pending") & expired)

    # The same rule on a loaded row and in SQL (the conditional UPDATE that takes the lease).
    takeable = hybrid_method(_takeable, _takeable_sql)

    def _retries_ended(self, before: datetime) -> bool:
        """Whether a deferred row's retries are over: its give-up fell ``before``
        (`ambient.domain.deliver_later.retries_ended_before`), its run never said so."""
        until = self.retry_until
        return self.status == "deferred" and until is not None and until < before

    @classmethod
    def _retries_ended_sql(cls, before: datetime) -> ColumnElement[bool]:
        # Not NULL said: "NOT retries_ended" must hold for a deferred row with no give-up.
        return (
            (cls.status == "deferred") & cls.retry_until.is_not(None) & (cls.retry_until < before)
        )

    # The same rule on a row read and in SQL (a status filter of the deliveries' list).
    retries_ended = hybrid_method(_retries_ended, _retries_ended_sql)


class RobotWindow(Base):
    """A group robot's sends of the last minute (ambient.clients.notify.robots): every worker
    and API replica takes its slots here, so their sends to one robot keep its limit together."""

    __tablename__ = "robot_windows"

    # sha256 of the robot's key (the key is a credential: never stored).
    robot: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The slots taken, oldest first: epoch seconds, the newest possibly ahead of now.
    slots: Mapped[list[float]] = mapped_column(JSON, default=list)
    # The newest slot: a row whose newest is a minute old holds nothing and is removed.
    until: Mapped[float] = mapped_column(Float, index=True)


class InboxMessage(Numbered, Dated, Base):
    __tablename__ = "inbox"

    user: Mapped[str] = mapped_column(String(63), ForeignKey("users.name", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(1024))
    read: Mapped[bool] = mapped_column(default=False)


class ShareLink(Numbered, Dated, Base):
    __tablename__ = "share_links"

    token_id: Mapped[str] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(255))
    html: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditRecord(Numbered, Dated, Base):
    """One line of the append-only audit log (permission changes, cloud writes, remediation)."""

    __tablename__ = "audit_log"

    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(512), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Briefing(Numbered, Dated, Updated, Base):
    """One user's briefing for one local date; the workflow decides when it is given."""

    __tablename__ = "briefings"
    __table_args__ = (UniqueConstraint("user", "date", name="uq_briefing_user_date"),)

    user: Mapped[str] = mapped_column(String(63), index=True)
    date: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default="ready")
    generated_by: Mapped[str] = mapped_column(String(16), default="offline")
    version: Mapped[int] = mapped_column(Integer, default=1)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report_markdown: Mapped[str] = mapped_column(Text, default="")
    prepared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    given_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    given_via: Mapped[str | None] = mapped_column(String(32))
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def headline(self) -> str:
        return str(self.content.get("headline", ""))


class LogBaselineRow(Updated, Base):
    """The per-user 7-day log baseline the reducer compares a day against."""

    __tablename__ = "log_baselines"

    user: Mapped[str] = mapped_column(String(63), primary_key=True)
    # Local date of the last day folded in, so re-preparing the same day does not fold twice.
    last_date: Mapped[str | None] = mapped_column(String(10))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Broadcast(Numbered, Dated, Base):
    """A problem for the user's next briefing (e.g. one remediation could not solve)."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_user_pending", "user", "broadcast_on"),)

    key: Mapped[str] = mapped_column(String(255), unique=True)
    user: Mapped[str] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    # Local date of the briefing that carried it; NULL while pending.
    broadcast_on: Mapped[str | None] = mapped_column(String(10))


class AlertRuleRow(Numbered, Dated, Base):
    """A per-service remediation override: pin importance or force manual handling."""

    __tablename__ = "alert_rules"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    cluster_id: Mapped[str] = mapped_column(String(128), default="*")
    namespace: Mapped[str] = mapped_column(String(63), default="*")
    workload: Mapped[str] = mapped_column(String(253), default="*")
    importance: Mapped[int | None] = mapped_column(Integer)
    manual: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(Text, default="")


class RemediationRecord(Numbered, Base):
    """One run of a graded remediation: who, what, and how it ended (for lists and stats)."""

    __tablename__ = "remediations"
    __table_args__ = (Index("ix_remediations_user_started", "user", "started_at"),)

    # workflow id @ run id: the same alert remediated again later is a new run.
    run_key: Mapped[str] = mapped_column(String(255), unique=True)
    remediation_id: Mapped[str] = mapped_column(String(255), index=True)
    user: Mapped[str] = mapped_column(String(63))
    cluster_id: Mapped[str] = mapped_column(String(128), index=True)
    service: Mapped[str] = mapped_column(String(512))
    alert_type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    score: Mapped[int | None] = mapped_column(Integer)
    budget: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    resolved_rung: Mapped[int | None] = mapped_column(Integer)
    budget_exhausted: Mapped[bool] = mapped_column(default=False)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RemediationAction(Numbered, Base):
    """A change made (or reserved) on a cluster: the per-cluster rate limit counts these."""

    __tablename__ = "remediation_actions"
    __table_args__ = (Index("ix_remediation_actions_cluster_at", "cluster_id", "at"),)

    # remediation run + rung: a retried reservation finds its row.
    key: Mapped[str] = mapped_column(String(255), unique=True)
    cluster_id: Mapped[str] = mapped_column(String(128))
    service: Mapped[str] = mapped_column(String(512))
    rung: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class RemediationBreaker(Base):
    """Consecutive failures of one rung on one service (the circuit breaker)."""

    __tablename__ = "remediation_breakers"

    service: Mapped[str] = mapped_column(String(512), primary_key=True)
    rung: Mapped[int] = mapped_column(Integer, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Key of the last outcome folded in, so a retried activity does not count twice.
    last_key: Mapped[str | None] = mapped_column(String(255))


class AgentServer(Numbered, Dated, Base):
    """An MCP server a user added to their agent (ours is always there and is not stored)."""

    __tablename__ = "agent_servers"
    __table_args__ = (UniqueConstraint("user", "name", name="uq_agent_server"),)

    user: Mapped[str] = mapped_column(String(63), ForeignKey("users.name", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ChatConversation(Dated, Base):
    """A chat conversation (ambient.agent.conversations): what the model was told and said,
    the calls waiting for the person's yes, and which turn holds it now. Any API replica
    continues it; a turn holds it (``holder`` until ``lease_until``) so that turns of one
    conversation run one after the other, across processes."""

    __tablename__ = "chat_conversations"
    __table_args__ = (Index("ix_chat_conversations_user_updated", "user", "updated_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # No foreign key: a row lives 6 idle hours at most, and users are never removed.
    user: Mapped[str] = mapped_column(String(63))
    # The OpenAI chat messages, as sent to the model.
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The tool calls a confirm listed (ChatCompletionMessageFunctionToolCall, dumped).
    pending: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    confirm_id: Mapped[str | None] = mapped_column(String(32))
    # Each listed call's server and that server's life (its agent_servers row) when the confirm
    # was shown, by function name: a yes runs nothing on a server removed or added again since.
    confirm_lives: Mapped[dict[str, list[Any]] | None] = mapped_column(JSON)
    holder: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Its last turn: idle past the store's time to live, it is gone.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class DiscussionParticipant(Dated, Base):
    """Who may speak on the discussion bus: people (users) and agents (ours or a user's)."""

    __tablename__ = "discussion_participants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(63))


class Discussion(Dated, Base):
    __tablename__ = "discussions"
    __table_args__ = (Index("ix_discussions_topic_key_status", "topic_key", "status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(300))
    topic_key: Mapped[str] = mapped_column(String(300))
    project: Mapped[str] = mapped_column(String(64), default="ambient-ops")
    initiator: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # What the discussion is about, e.g. a remediation id: replies there can act on it.
    subject: Mapped[str | None] = mapped_column(String(255), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DiscussionMessage(Dated, Base):
    __tablename__ = "discussion_messages"
    __table_args__ = (
        Index("ix_discussion_messages_disc_time", "discussion_id", "created_at"),
        Index("ux_discussion_messages_sender_key", "from_id", "client_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The sender's own message_id, theirs alone (a retry with it finds the message).
    client_id: Mapped[str | None] = mapped_column(String(64))
    discussion_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("discussions.id", ondelete="CASCADE")
    )
    from_id: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(default=list)
    source_type: Mapped[str] = mapped_column(String(16), default="real")


class XiaozhiDevice(Removable, Dated, Base):
    """A 小智 device (its MAC, xiaozhi-server's `device-id`) of one user, its token hashed;
    ``speakers``: the other users it may answer by voiceprint (their briefing, their tasks)."""

    __tablename__ = "xiaozhi_devices"

    device_id: Mapped[str] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(String(63), ForeignKey("users.name", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    speakers: Mapped[list[str]] = mapped_column(default=list)


class XiaozhiWithdrawal(Numbered, Dated, Base):
    """A member whose consent to ``owner``'s 小智 devices the owner (or an admin) withdrew: no
    device of the owner's, present or future, may be allowed by them until let back."""

    __tablename__ = "xiaozhi_withdrawals"
    __table_args__ = (UniqueConstraint("owner", "speaker", name="uq_xiaozhi_withdrawal"),)

    owner: Mapped[str] = mapped_column(String(63), ForeignKey("users.name", ondelete="CASCADE"))
    speaker: Mapped[str] = mapped_column(String(63), ForeignKey("users.name", ondelete="CASCADE"))


class XiaozhiEndpoint(Removable, Dated, Base):
    """A xiaozhi.me MCP 接入点 dialled out to as its user: ``url_sealed`` the secret URL
    encrypted (bridge.endpoints.EndpointCipher), ``url_masked`` what lists and logs show;
    ``holder`` and ``lease_until``: the one runner of the replicas holding the connection."""

    __tablename__ = "xiaozhi_endpoints"

    user: Mapped[str] = mapped_column(String(63), index=True)
    url_sealed: Mapped[str] = mapped_column(Text)
    url_masked: Mapped[str] = mapped_column(String(2048))
    # A digest of what names the 接入点 at its broker (host, port, path, token): one row each.
    broker_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    verbatim: Mapped[bool] = mapped_column(default=False)
    # "retrying" until a runner holds the connection, then "connected".
    state: Mapped[str] = mapped_column(String(16), default="retrying")
    last_error: Mapped[str | None] = mapped_column(String(500))
    since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
