"""The discussion bus: people and agents talk about what happened; analysis flags inferred text.

MCP tools (signing, annotate, bus), the API and the web page are thin adapters over
``DiscussionService``. Every write is signed, and a caller signs only as itself (a user), as an
agent it owns, or — admins — as one of the product's own agents.

A discussion is seen by its members: whoever opened it (or owns the agent that did), the owner
of the remediation it is about, and whoever posted in it (or owns an agent that did). Admins see
every discussion. Every read, search, count and post goes through ``members_see``: a discussion
the caller cannot see answers "no discussion" (as if it did not exist), so nobody becomes a
member by posting into it, and ``send_message`` on its topic opens the caller's own discussion.

DiscussionError
 ├── InvalidDiscussionError   bad arguments: nothing changed
 ├── DiscussionNotFoundError  no such discussion or message
 ├── DiscussionClosedError    replies go to open discussions only
 └── SigningError             from_id is not the caller's to sign as
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from ambient.domain.discussions import (
    DEFAULT_PROJECT,
    AgentPost,
    Annotation,
    Anomaly,
    MessageIn,
    MessageView,
    ParticipantRole,
    annotate,
    detect_anomalies,
    discussion_id,
    normalise_topic,
)
from ambient.remediation.safety import named_approver
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import (
    Discussion,
    DiscussionMessage,
    DiscussionParticipant,
    RemediationRecord,
    User,
)
from ambient.storage.repositories import UserRepository

log = logging.getLogger(__name__)
ACTION_TAGS = {"approve": "approve", "refuse": "refuse", "reject": "refuse", "abort": "abort"}


class DiscussionError(Exception):
    """A discussion operation failed; the message says what to do."""


class InvalidDiscussionError(DiscussionError):
    """Bad arguments; nothing changed."""


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


class Posted(BaseModel):
    message_id: str
    discussion_id: str
    created_discussion: bool = False
    already_posted: bool = False
    notified: list[str] = Field(default_factory=list)
    notify_error: str | None = None
    # A reply tagged approve/refuse/abort in a remediation's discussion: what it did.
    action: dict[str, Any] | None = None


class Closed(BaseModel):
    discussion_id: str
    status: str = "closed"
    already_closed: bool


class Found(BaseModel):
    """search_messages' answer, in the LingMessage spec's names."""

    query: str
    total_matches: int = Field(description="all matching messages you can see")
    results: list[MessageView] = Field(description="the newest matches, at most `limit`")


class AnomalyReport(BaseModel):
    discussion_id: str
    threshold_seconds: float
    count: int
    anomalies: list[Anomaly]


class AnnotationReport(BaseModel):
    discussion_id: str
    count: int
    changed: list[Annotation]


class DiscussionList(BaseModel):
    open: int
    closed: int
    discussions: list[DiscussionView]


class DiscussionRead(BaseModel):
    discussion: DiscussionView
    messages: list[MessageView]


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


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _message(row: DiscussionMessage) -> MessageView:
    return MessageView(
        id=row.id,
        discussion_id=row.discussion_id,
        from_id=row.from_id,
        content=row.content,
        reply_to=row.reply_to,
        tags=list(row.tags or []),
        source_type=row.source_type,  # type: ignore[arg-type]
        created_at=_aware(row.created_at),
    )


def _discussion(row: Discussion, messages: int = 0) -> DiscussionView:
    return DiscussionView(
        id=row.id,
        topic=row.topic,
        project=row.project,
        initiator=row.initiator,
        status=row.status,
        subject=row.subject,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        messages=messages,
    )


async def members_see(
    session: AsyncSession, user: str, approvers: Mapping[str, list[str]]
) -> ColumnElement[bool]:
    """The discussions ``user`` sees: every one for an admin, else those they are a member of —
    opened (themself or by an agent they own), about a remediation they may steer (its owner,
    or an approver the policy names for its cluster), or posted in (the same way). Every read
    of the bus filters with it (the briefing's too)."""
    caller = await UserRepository(session).get(user)
    if caller is None:
        raise SigningError(f"{user!r} is not a registered user")
    if caller.role == "admin":
        return true()
    # Who the caller speaks as. A person's id must be a person's: a user named like one of
    # our agents does not become a member of that agent's discussions.
    speaks_as = select(DiscussionParticipant.id).where(
        or_(
            (DiscussionParticipant.id == caller.name)
            & (DiscussionParticipant.role == ParticipantRole.PERSON.value),
            DiscussionParticipant.owner == caller.name,
        )
    )
    posted_in = select(DiscussionMessage.discussion_id).where(
        DiscussionMessage.from_id.in_(speaks_as)
    )
    # A remediation's people are who may steer it (RemediationService._may_steer): its owner
    # and the approvers named for its cluster. Sending the same alert again grants nothing.
    steers = RemediationRecord.user == caller.name
    if any(caller.name in names for names in approvers.values()):
        clusters = (await session.scalars(select(RemediationRecord.cluster_id).distinct())).all()
        theirs = [c for c in clusters if named_approver(caller.name, c, approvers)]
        steers = or_(steers, RemediationRecord.cluster_id.in_(theirs))
    owns = select(RemediationRecord.remediation_id).where(steers)
    return or_(
        Discussion.initiator.in_(speaks_as),
        Discussion.id.in_(posted_in),
        Discussion.subject.in_(owns),
    )


class DiscussionService:
    def __init__(self, db: Database, settings: Settings, client: Client | None = None) -> None:
        self.db, self.settings, self.client = db, settings, client

    async def _visible(self, session: AsyncSession, user: str) -> ColumnElement[bool]:
        return await members_see(session, user, self.settings.remediation_approvers)

    # --- signing ---------------------------------------------------------------------

    async def send_message(
        self,
        user: str,
        topic: str,
        message: MessageIn,
        *,
        project: str = DEFAULT_PROJECT,
        subject: str | None = None,
    ) -> Posted:
        """Join the open discussion on ``topic`` (same words, any case) or open one."""
        return await self._post_on_topic(user, topic, message, project, subject)

    async def post_as_agent(self, post: AgentPost) -> Posted:
        """A product agent's post from our own workflows (trusted code: no caller to check)."""
        message = MessageIn(
            from_id=post.agent_id,
            content=post.content,
            tags=post.tags,
            message_id=post.message_id[:64],
        )
        return await self._post_on_topic(
            None, post.topic[:300], message, DEFAULT_PROJECT, post.subject
        )

    async def _post_on_topic(
        self,
        user: str | None,
        topic: str,
        message: MessageIn,
        project: str,
        subject: str | None,
    ) -> Posted:
        key = normalise_topic(topic)
        if not key or len(topic) > 300:
            raise InvalidDiscussionError("topic: 1-300 characters")
        async with self.db.write_session() as session:
            if user is not None:
                await self._may_sign(session, user, message.from_id)
            if found := await self._given(session, message):
                return await self._repeat(session, found, message.from_id)
            query = select(Discussion).where(
                Discussion.topic_key == key, Discussion.status == "open"
            )
            if user is None:
                # Our agents post about one subject (a remediation): its own discussion, never
                # another one's (or a person's) that happens to share the topic.
                query = query.where(
                    Discussion.subject == subject if subject else Discussion.subject.is_(None)
                )
            else:
                query = query.where(await self._visible(session, user))
            query = query.order_by(Discussion.updated_at.desc())
            discussion = (await session.execute(query.limit(1))).scalar_one_or_none()
            created = discussion is None
            now = datetime.now(UTC)
            if discussion is None:
                discussion = Discussion(
                    id=discussion_id(now, uuid.uuid4().hex[:4]),
                    topic=topic.strip(),
                    topic_key=key,
                    project=project,
                    initiator=message.from_id,
                    status="open",
                    subject=subject,
                    created_at=now,
                    updated_at=now,
                )
                session.add(discussion)
            await self._check_reply_to(session, discussion.id, message)
            row = self._add(session, discussion, message, now)
            recipients = await self._recipients(session, discussion.id, message.from_id)
            await session.commit()
        posted = Posted(message_id=row.id, discussion_id=discussion.id, created_discussion=created)
        return await self._notify(posted, topic, message, recipients)

    async def reply_message(self, user: str, discussion_id: str, message: MessageIn) -> Posted:
        """Reply in an open discussion; in a remediation's discussion, a reply tagged
        approve/refuse/abort acts on the remediation only when the caller wrote it as
        themselves (not as an agent, whatever source_type says) and it does not look inferred."""
        async with self.db.write_session() as session:
            await self._may_sign(session, user, message.from_id)
            # Only into a discussion the caller sees: posting must not make a member of anyone.
            discussion = await self._get(session, discussion_id, user)
            if found := await self._given(session, message):
                return await self._repeat(session, found, message.from_id)
            if discussion.status != "open":
                raise DiscussionClosedError(
                    f"discussion {discussion_id} is closed; send_message on its topic opens a "
                    "new one"
                )
            await self._check_reply_to(session, discussion.id, message)
            now = datetime.now(UTC)
            row = self._add(session, discussion, message, now)
            earlier = await self._messages(session, discussion.id)
            recipients = await self._recipients(session, discussion.id, message.from_id)
            subject, topic = discussion.subject, discussion.topic
            await session.commit()
        posted = Posted(message_id=row.id, discussion_id=discussion_id)
        verb = next((ACTION_TAGS[t] for t in message.tags if t in ACTION_TAGS), None)
        if verb and subject and subject.startswith("remediation/"):
            fast = {a.message_id for a in detect_anomalies(earlier)}
            inferred = message.source_type != "real" or row.id in fast
            # The speaker is the authenticated caller, never what the message claims: an
            # agent's message (ours or the caller's own) is no person's answer.
            in_person = message.from_id == user
            posted.action = await self._act(
                user, subject, verb, message.content, inferred, in_person=in_person
            )
        return await self._notify(posted, topic, message, recipients)

    async def close_discussion(self, user: str, discussion_id: str) -> Closed:
        """Close a discussion (idempotent): its initiator's signer, or an admin."""
        async with self.db.write_session() as session:
            discussion = await self._get(session, discussion_id, user)
            caller = await self._user(session, user)
            if discussion.status == "closed":
                return Closed(discussion_id=discussion_id, already_closed=True)
            if caller.role != "admin":
                await self._may_sign(session, user, discussion.initiator)
            discussion.status, discussion.updated_at = "closed", datetime.now(UTC)
            await session.commit()
        return Closed(discussion_id=discussion_id, already_closed=False)

    # --- annotate (read-only analysis) -----------------------------------------------

    async def search_messages(self, user: str, keyword: str, limit: int = 100) -> Found:
        """Messages containing ``keyword`` (any case) in the discussions ``user`` sees."""
        words = keyword.strip()
        if not words or len(words) > 200:
            raise InvalidDiscussionError("keyword: a word or phrase of 1-200 characters")
        async with self.db.session() as session:
            matching = (
                select(DiscussionMessage)
                .join(Discussion, Discussion.id == DiscussionMessage.discussion_id)
                .where(
                    # autoescape: a '%' or '_' in the keyword is a character to find, not a
                    # LIKE wildcard that matches every message.
                    DiscussionMessage.content.icontains(words, autoescape=True),
                    await self._visible(session, user),
                )
            )
            total = (
                await session.execute(select(func.count()).select_from(matching.subquery()))
            ).scalar_one()
            rows = await session.execute(
                matching.order_by(
                    DiscussionMessage.created_at.desc(), DiscussionMessage.id.desc()
                ).limit(limit)
            )
            found = [_message(r) for r in rows.scalars()]
        return Found(query=words, total_matches=int(total), results=found)

    async def detect_anomalies(
        self, user: str, discussion_id: str, threshold_seconds: float = 2.0
    ) -> AnomalyReport:
        if not 0 < threshold_seconds <= 3600:
            raise InvalidDiscussionError("threshold_seconds: more than 0, at most 3600")
        async with self.db.session() as session:
            await self._get(session, discussion_id, user)
            messages = await self._messages(session, discussion_id)
        anomalies = detect_anomalies(messages, threshold_seconds)
        return AnomalyReport(
            discussion_id=discussion_id,
            threshold_seconds=threshold_seconds,
            count=len(anomalies),
            anomalies=anomalies,
        )

    async def annotate_discussion(
        self, user: str, discussion_id: str, threshold_seconds: float = 2.0
    ) -> AnnotationReport:
        """Set source_type from anomalies, `auto_reply` tags and unknown senders (members)."""
        if not 0 < threshold_seconds <= 3600:
            raise InvalidDiscussionError("threshold_seconds: more than 0, at most 3600")
        async with self.db.write_session() as session:
            await self._get(session, discussion_id, user)
            messages = await self._messages(session, discussion_id)
            known = set((await session.execute(select(DiscussionParticipant.id))).scalars())
            changes = annotate(messages, known, threshold_seconds)
            for change in changes:
                row = await session.get(DiscussionMessage, change.message_id)
                assert row is not None
                row.source_type = change.source_type
                row.tags = [*(row.tags or []), *change.tags_added]
            await session.commit()
        return AnnotationReport(discussion_id=discussion_id, count=len(changes), changed=changes)

    # --- bus (browse and set-up) ------------------------------------------------------

    async def list_discussions(
        self, user: str, status: str | None = None, limit: int = 100
    ) -> DiscussionList:
        """The discussions ``user`` sees, newest activity first, with their open/closed counts."""
        if status not in (None, "open", "closed"):
            raise InvalidDiscussionError("status: open or closed (or omit it)")
        async with self.db.session() as session:
            visible = await self._visible(session, user)
            counts = dict(
                (
                    await session.execute(
                        select(Discussion.status, func.count())
                        .where(visible)
                        .group_by(Discussion.status)
                    )
                ).all()
            )
            query = (
                select(Discussion)
                .where(visible)
                .order_by(Discussion.updated_at.desc())
                .limit(limit)
            )
            if status:
                query = query.where(Discussion.status == status)
            rows = list((await session.execute(query)).scalars())
            per = dict(
                (
                    await session.execute(
                        select(DiscussionMessage.discussion_id, func.count())
                        .where(DiscussionMessage.discussion_id.in_([r.id for r in rows]))
                        .group_by(DiscussionMessage.discussion_id)
                    )
                ).all()
            )
        return DiscussionList(
            open=int(counts.get("open", 0)),
            closed=int(counts.get("closed", 0)),
            discussions=[_discussion(r, int(per.get(r.id, 0))) for r in rows],
        )

    async def read_discussion(self, user: str, discussion_id: str) -> DiscussionRead:
        async with self.db.session() as session:
            discussion = await self._get(session, discussion_id, user)
            messages = await self._messages(session, discussion_id)
        return DiscussionRead(discussion=_discussion(discussion, len(messages)), messages=messages)

    async def init_store(self) -> StoreInit:
        """Make sure the product's own participants exist (idempotent); report the counts."""
        from ambient.domain.discussions import PRODUCT_AGENTS

        seeded: list[str] = []
        async with self.db.write_session() as session:
            for agent in PRODUCT_AGENTS:
                if await session.get(DiscussionParticipant, agent.id) is None:
                    session.add(
                        DiscussionParticipant(
                            id=agent.id, display_name=agent.display_name, role=agent.role.value
                        )
                    )
                    seeded.append(agent.id)
            await session.commit()
            totals = [
                int((await session.execute(select(func.count()).select_from(table))).scalar_one())
                for table in (DiscussionParticipant, Discussion, DiscussionMessage)
            ]
        return StoreInit(
            participants=totals[0], discussions=totals[1], messages=totals[2], seeded=seeded
        )

    async def list_projects(self, user: str) -> Projects:
        async with self.db.session() as session:
            visible = await self._visible(session, user)
            rows = (
                await session.execute(
                    select(
                        Discussion.project,
                        func.count(Discussion.id.distinct()),
                        func.count(Discussion.id.distinct()).filter(Discussion.status == "open"),
                        func.count(DiscussionMessage.id),
                    )
                    .outerjoin(DiscussionMessage, DiscussionMessage.discussion_id == Discussion.id)
                    .where(visible)
                    .group_by(Discussion.project)
                    .order_by(Discussion.project)
                )
            ).all()
        projects = [
            ProjectRow(project=p, discussions=int(d), open=int(o), messages=int(m))
            for p, d, o, m in rows
        ]
        return Projects(count=len(projects), projects=projects)

    async def get_stats(self, user: str) -> Stats:
        """Totals over the discussions ``user`` sees (participants: everyone on the bus)."""
        listing = await self.list_discussions(user, limit=1)
        async with self.db.session() as session:
            visible = await self._visible(session, user)
            seen = select(Discussion.id).where(visible)
            mine = DiscussionMessage.discussion_id.in_(seen)
            per = dict(
                (
                    await session.execute(
                        select(DiscussionMessage.from_id, func.count())
                        .where(mine)
                        .group_by(DiscussionMessage.from_id)
                    )
                ).all()
            )
            latest = (
                await session.execute(select(func.max(DiscussionMessage.created_at)).where(mine))
            ).scalar()
            size = (
                await session.execute(
                    select(
                        func.coalesce(func.sum(func.length(DiscussionMessage.content)), 0)
                    ).where(mine)
                )
            ).scalar_one()
            participants = (
                await session.execute(select(func.count()).select_from(DiscussionParticipant))
            ).scalar_one()
        return Stats(
            discussions=listing.open + listing.closed,
            open=listing.open,
            closed=listing.closed,
            messages=sum(int(v) for v in per.values()),
            participants=int(participants),
            messages_per_participant={k: int(v) for k, v in sorted(per.items())},
            latest_activity=_aware(latest) if latest else None,
            store_bytes=int(size),
        )

    # --- helpers ---------------------------------------------------------------------

    async def _user(self, session: Any, name: str) -> User:
        user = await UserRepository(session).get(name)
        if user is None:
            raise SigningError(f"{name!r} is not a registered user")
        return user

    async def _may_sign(self, session: Any, user: str, from_id: str) -> None:
        caller = await self._user(session, user)
        participant = await session.get(DiscussionParticipant, from_id)
        if from_id == caller.name:
            if participant is None:
                session.add(
                    DiscussionParticipant(
                        id=caller.name, display_name=caller.name, role=ParticipantRole.PERSON.value
                    )
                )
            elif participant.role == ParticipantRole.PERSON.value:
                return
            else:
                raise SigningError(f"{from_id!r} is an agent's id, not a person's")
            return
        if participant is not None:
            if participant.owner == caller.name:
                return
            product_agent = (
                participant.owner is None and participant.role == ParticipantRole.AGENT.value
            )
            if product_agent and caller.role == "admin":
                return  # the product's own agents speak through admins; people only as themselves
        raise SigningError(
            f"you may sign only as yourself (from_id={caller.name!r})"
            + (", or as an agent you own" if caller.role != "admin" else ", or a product agent")
        )

    async def _get(self, session: Any, discussion_id: str, user: str) -> Discussion:
        """The discussion, if ``user`` sees it; one they do not see is "no discussion" too."""
        query = select(Discussion).where(
            Discussion.id == discussion_id, await self._visible(session, user)
        )
        found: Discussion | None = (await session.execute(query)).scalar_one_or_none()
        if found is None:
            raise DiscussionNotFoundError(
                f"no discussion {discussion_id!r} that you take part in; list_discussions "
                "shows yours"
            )
        return found

    @staticmethod
    async def _check_reply_to(session: Any, discussion_id: str, message: MessageIn) -> None:
        """reply_to names a message of the same discussion (not a probe into another one)."""
        if message.reply_to is None:
            return
        target = await session.get(DiscussionMessage, message.reply_to)
        if target is None or target.discussion_id != discussion_id:
            raise InvalidDiscussionError(
                f"reply_to: no message {message.reply_to!r} in this discussion"
            )

    async def _messages(self, session: Any, discussion_id: str) -> list[MessageView]:
        rows = await session.execute(
            select(DiscussionMessage)
            .where(DiscussionMessage.discussion_id == discussion_id)
            .order_by(DiscussionMessage.created_at, DiscussionMessage.id)
        )
        return [_message(r) for r in rows.scalars()]

    def _add(
        self, session: Any, discussion: Discussion, message: MessageIn, now: datetime
    ) -> DiscussionMessage:
        row = DiscussionMessage(
            id=message.message_id or f"msg_{uuid.uuid4().hex[:16]}",
            discussion_id=discussion.id,
            from_id=message.from_id,
            content=message.content,
            reply_to=message.reply_to,
            tags=list(message.tags),
            source_type=message.source_type,
            created_at=now,
        )
        session.add(row)
        discussion.updated_at = now
        return row

    @staticmethod
    async def _given(session: Any, message: MessageIn) -> DiscussionMessage | None:
        """The message a retry with the same message_id already posted."""
        if message.message_id is None:
            return None
        found: DiscussionMessage | None = await session.get(DiscussionMessage, message.message_id)
        return found

    async def _repeat(self, session: Any, found: DiscussionMessage, from_id: str) -> Posted:
        if found.from_id != from_id:
            raise InvalidDiscussionError(f"message_id: {found.id!r} is another sender's message")
        return Posted(message_id=found.id, discussion_id=found.discussion_id, already_posted=True)

    async def _recipients(self, session: Any, discussion_id: str, sender: str) -> list[str]:
        """People in the discussion (and owners of its agents), not the sender."""
        senders = set(
            (
                await session.execute(
                    select(DiscussionMessage.from_id)
                    .where(DiscussionMessage.discussion_id == discussion_id)
                    .distinct()
                )
            ).scalars()
        )
        people: set[str] = set()
        for pid in senders - {sender}:
            participant = await session.get(DiscussionParticipant, pid)
            if participant is None:
                continue
            if participant.role == ParticipantRole.PERSON.value:
                people.add(pid)
            elif participant.owner:
                people.add(participant.owner)
        return sorted(people - {sender})

    async def _notify(
        self, posted: Posted, topic: str, message: MessageIn, recipients: list[str]
    ) -> Posted:
        if not recipients:
            return posted
        if self.client is None:
            posted.notify_error = "Temporal is not configured here: nobody was notified"
            return posted
        from ambient.domain.discussions import DiscussionNotice
        from workflows.discussion_notify import DiscussionNotifyWorkflow

        try:
            await self.client.start_workflow(
                DiscussionNotifyWorkflow.run,
                DiscussionNotice(
                    message_id=posted.message_id,
                    discussion_id=posted.discussion_id,
                    topic=topic,
                    from_id=message.from_id,
                    content=message.content[:2000],
                    recipients=recipients,
                ),
                id=f"discussion-notify/{posted.message_id}",
                task_queue=self.settings.temporal_task_queue,
            )
        except WorkflowAlreadyStartedError:
            pass
        except Exception as exc:  # the message is posted; say that the notice did not go
            posted.notify_error = f"the message is posted, but nobody was notified: {exc}"
            return posted
        posted.notified = recipients
        return posted

    async def _act(
        self,
        user: str,
        remediation_id: str,
        verb: str,
        reason: str,
        inferred: bool,
        *,
        in_person: bool,
    ) -> dict[str, Any]:
        outcome: dict[str, Any] = {"remediation_id": remediation_id, "verb": verb}
        if not in_person:
            return {
                **outcome,
                "done": False,
                "reason": "only a person replying as themselves (from_id = your user name) can "
                "approve, refuse or abort: an agent's message does not act",
            }
        if inferred:
            return {
                **outcome,
                "done": False,
                "reason": "this reply looks machine-inferred (source_type not real, or sent "
                "within 2 s of another sender): it does not act; a person replies themself",
            }
        if self.client is None:
            return {
                "remediation_id": remediation_id,
                "verb": verb,
                "done": False,
                "reason": "Temporal is not configured here",
            }
        from ambient.remediation.service import RemediationService
        from ambient.remediation.views import RemediationError

        service = RemediationService(self.client, self.settings, self.db)
        try:
            if verb == "abort":
                await service.abort(user, remediation_id, reason[:500])
            else:
                await service.approve(user, remediation_id, verb == "approve", reason[:500])
        except RemediationError as exc:
            return {
                "remediation_id": remediation_id,
                "verb": verb,
                "done": False,
                "reason": str(exc),
            }
        return {"remediation_id": remediation_id, "verb": verb, "done": True}
