"""The discussion bus: people and agents talk about what happened; analysis flags inferred text.

MCP tools (signing, annotate, bus), the API and the web page are thin adapters over
``DiscussionService``. Every write is signed, and a caller signs only as itself (a user), as an
agent it owns, or — admins — as one of the product's own agents.

A discussion is seen by its members: whoever opened it (or owns the agent that did), the owner
of the remediation it is about, and whoever posted in it (or owns an agent that did). Admins see
every discussion. Every read, search, count and post goes through ``members_see``: a discussion
the caller cannot see answers "no discussion" (as if it did not exist), so nobody becomes a
member by posting into it, and ``send_message`` on its topic opens the caller's own discussion.

Reads are in ``reading`` and membership in ``access``; what it answers and raises in ``views``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from ambient.discussions.access import registered
from ambient.discussions.reading import DiscussionReads
from ambient.discussions.rules import (
    AGENT_POST_ID,
    AUTO_REPLY,
    DEFAULT_PROJECT,
    AgentPost,
    DiscussionNotice,
    MessageIn,
    MessageView,
    ParticipantRole,
    answered_fast,
    auto_replied,
    discussion_id,
    normalise_topic,
    remediation_post_id,
)
from ambient.discussions.views import (
    Closed,
    DiscussionClosedError,
    InvalidDiscussionError,
    Posted,
    SigningError,
)
from ambient.domain.configs import NUL_REFUSED, holds_nul, shows_nothing, unseen_codes
from ambient.refusals import Refusal
from ambient.remediation.ladder import step_key
from ambient.remediation.views import RemediationError, RemediationStateError
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.db import take_turn
from ambient.storage.models import (
    Discussion,
    DiscussionMessage,
    DiscussionParticipant,
    RemediationRecord,
)


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
    ) -> object: ...

    async def abort(
        self, user: str, rid: str, reason: str = "", *, run_key: str | None = None
    ) -> object: ...


ACTION_TAGS = {"approve": "approve", "refuse": "refuse", "reject": "refuse", "abort": "abort"}
# A stored message as its post answers: what was posted, the discussion's topic, whom to tell.
Stored = tuple[Posted, str, list[str]]


class DiscussionService(DiscussionReads):
    """Signing: send, reply, post as an agent, close; replies can steer a remediation."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        client: Client | None = None,
        remediations: RunSteering | None = None,
    ) -> None:
        super().__init__(db, settings)
        self.client, self.remediations = client, remediations

    # --- signing ---------------------------------------------------------------------

    async def send_message(self, user: str, topic: str, message: MessageIn) -> Posted:
        """Join the open discussion on ``topic`` (same words, any case) or open one."""
        return await _raced(lambda: self._post_on_topic(user, topic, message, None))

    async def post_as_agent(self, post: AgentPost) -> Posted:
        """A product agent's post from our own workflows (trusted code: no caller to check)."""
        message = MessageIn(
            from_id=post.agent_id,
            content=post.content,
            tags=post.tags,
            message_id=post.message_id[:64],
        )
        return await _raced(
            lambda: self._post_on_topic(None, post.topic[:300], message, post.subject)
        )

    async def _post_on_topic(
        self, user: str | None, topic: str, message: MessageIn, subject: str | None
    ) -> Posted:
        if not topic.strip() or len(topic) > 300:
            raise InvalidDiscussionError(Refusal("topic: 1-300 characters"))
        if holds_nul(topic):  # like the message's own text (StorableText)
            raise InvalidDiscussionError(f"topic: {NUL_REFUSED}")
        if shows_nothing(topic):  # U+200B: listed as a link with no words to click
            raise InvalidDiscussionError(
                Refusal(
                    "topic: only invisible characters (%(codes)s): name it in words",
                    codes=unseen_codes(topic),
                )
            )
        # After the length: the key of a long topic is up to 18 times longer ('ﷺ').
        key = normalise_topic(topic)
        if len(key) > 300:  # its plain form is kept too ('ﷺ' is 18 characters of it)
            raise InvalidDiscussionError(
                Refusal(
                    "topic: at most 300 characters once its ligatures are spelt out "
                    "(this one makes %(length)d)",
                    length=len(key),
                )
            )
        if user is not None:
            async with self.db.session() as session:  # refused before the write turn
                await self._may_sign(session, user, message.from_id)
        # Whom to tell is read only when someone can tell them, or a person's post must say
        # that nobody was: an agent's post from our workflows (no client) tells no one.
        tell = self.client is not None or user is not None
        # A retry (the same message_id) is found in the write turn, where a concurrent post of
        # the same message is seen too: one read a post, not one before the turn and one in it.
        async with self.db.writing() as session:
            # Writers do not queue on PostgreSQL as on SQLite: posts at once on a new topic
            # would each find no open discussion and open one apiece.
            await take_turn(session, f"discussion-topic/{key}")
            if user is not None:
                await self._may_sign(session, user, message.from_id)
            retry = await self._retry(session, message, user is None, topic_key=key, tell=tell)
            if retry is None:
                retry = await self._store_on_topic(
                    session, user, topic, key, message, subject, tell
                )
        return await self._notify(retry, message)

    async def _store_on_topic(
        self,
        session: Any,
        user: str | None,
        topic: str,
        key: str,
        message: MessageIn,
        subject: str | None,
        tell: bool,
    ) -> Stored:
        """The message stored on the topic's open discussion, or on a new one (with whom to
        ``tell`` of it)."""
        query = select(Discussion).where(Discussion.topic_key == key, Discussion.status == "open")
        if user is None:
            # Our agents post about one subject (a remediation): its own discussion, never
            # another one's (or a person's) that happens to share the topic.
            query = query.where(
                Discussion.subject == subject if subject else Discussion.subject.is_(None)
            )
        else:
            query = query.where(await self._visible(session, user))
        # Locked: a close committed meanwhile is seen (a new discussion is opened), not joined.
        query = query.order_by(Discussion.updated_at.desc()).with_for_update()
        discussion = await session.scalar(query.limit(1))
        created = discussion is None
        now = datetime.now(UTC)
        if discussion is None:
            discussion = Discussion(
                id=discussion_id(now, uuid.uuid4().hex[:4]),
                topic=topic.strip(),
                topic_key=key,
                project=DEFAULT_PROJECT,
                initiator=message.from_id,
                status="open",
                subject=subject,
                created_at=now,
                updated_at=now,
            )
            session.add(discussion)
        row = await self._add(session, discussion, message, now, keep_id=user is None)
        recipients = await self._recipients(session, discussion, message.from_id) if tell else []
        posted = Posted(message_id=row.id, discussion_id=discussion.id, created_discussion=created)
        about = discussion.subject or ""
        if user is not None and (verb := _asked(message, about)):
            # Joined by its topic, not chosen: only a reply in that discussion acts.
            why = Refusal(
                "send_message does not act: reply_message in %(discussion)s does",
                discussion=discussion.id,
            )
            posted.acted(about.partition("@")[0], verb, why)
        return posted, discussion.topic, recipients

    async def reply_message(self, user: str, discussion_id: str, message: MessageIn) -> Posted:
        """Reply in an open discussion; in a remediation's discussion, a reply tagged
        approve/refuse/abort acts on the remediation only when the caller wrote it as
        themselves (not as an agent, whatever source_type says) and it does not look inferred."""
        return await _raced(lambda: self._reply(user, discussion_id, message))

    async def _reply(self, user: str, discussion_id: str, message: MessageIn) -> Posted:
        async with self.db.session() as session:  # refused before the write turn
            await self._may_sign(session, user, message.from_id)
            await self._get(session, discussion_id, user)
        # As on a topic, a retry (the same message_id) is found in the write turn. The try that
        # stored it may have died before acting: it acts now (the run refuses a second answer,
        # it does not apply it twice).
        async with self.db.writing() as session:
            await self._may_sign(session, user, message.from_id)
            # Only into a discussion the caller sees: posting must not make a member of anyone.
            # Locked until stored: a close committed meanwhile is seen here, not after.
            discussion = await self._get(session, discussion_id, user, lock=True)
            retry = await self._retry(session, message, False, discussion_id=discussion_id)
            if retry is None:
                if discussion.status != "open":
                    raise DiscussionClosedError(
                        f"discussion {discussion_id} is closed; send_message on its topic opens "
                        "a new one"
                    )
                row = await self._add(session, discussion, message, datetime.now(UTC), False)
                recipients = await self._recipients(session, discussion, message.from_id)
                posted = Posted(message_id=row.id, discussion_id=discussion_id)
                retry = posted, discussion.topic, recipients
            subject = discussion.subject or ""
            # The thread a reply's action is judged by (a fast answer does not act): read only
            # for a reply that asks something of a remediation, not for every reply.
            asks = _asked(message, subject)
            earlier = await self._messages(session, discussion_id) if asks else []
        return await self._steer(user, message, subject, earlier, retry)

    async def _steer(
        self,
        user: str,
        message: MessageIn,
        subject: str,
        earlier: list[MessageView],
        stored: Stored,
    ) -> Posted:
        """A stored reply acts on the discussion's remediation, then its members are told."""
        posted = stored[0]
        if verb := _asked(message, subject):
            # As stored (a retry claims nothing new): marked inferred by its sender or analysis.
            marked = {m.id for m in earlier if m.source_type != "real"}
            # Tagged auto_reply: machine-written by the analysis' own rule (rules.annotate).
            auto = auto_replied(message.tags)
            fast = answered_fast(earlier, posted.message_id)
            inferred = message.source_type != "real" or auto or fast or posted.message_id in marked
            # The speaker is the authenticated caller, never what the message claims: an
            # agent's message (ours or the caller's own) is no person's answer.
            in_person = message.from_id == user
            # A run's discussion names the run (remediation/{fingerprint}@{run id}): it steers
            # that run only, not a later run of the same alert.
            rid, _, run = subject.partition("@")
            # A Refusal or the run's own error: a page says it in its reader's language.
            why: Exception | None = None
            if not in_person:
                why = Refusal(
                    "only a person replying as themselves (from_id = your user name) can "
                    "approve, refuse or abort: an agent's message does not act"
                )
            elif inferred:
                why = Refusal(
                    "this reply looks machine-inferred (source_type not real, tagged "
                    "auto_reply, or sent within 2 s of what it answers): it does not act; a "
                    "person replies themself"
                )
            elif not run:
                # Stored by a release before runs were told apart: about whichever run was
                # then, which the alert's current run may not be.
                why = Refusal(
                    "this discussion was opened before each run had its own: a reply here does "
                    "not act; answer %(run)s's current run on its page or with "
                    "approve_remediation / abort_remediation",
                    run=rid,
                )
            elif self.remediations is None:
                why = Refusal("Temporal is not configured here")
            else:
                reason, run_key = message.content[:500], subject
                try:
                    if verb == "abort":
                        await self.remediations.abort(user, rid, reason, run_key=run_key)
                    else:
                        await self.remediations.approve(
                            user,
                            rid,
                            verb == "approve",
                            reason,
                            run_key=run_key,
                            rung=_rung_answered(subject, earlier, posted.message_id),
                        )
                except RemediationError as exc:
                    why = exc
            posted.acted(rid, verb, why)
        return await self._notify(stored, message)

    async def close_discussion(self, user: str, discussion_id: str) -> Closed:
        """Close a discussion (idempotent): its initiator's signer, or an admin."""
        async with self.db.writing() as session:  # locked: a close meanwhile is seen
            discussion = await self._get(session, discussion_id, user, lock=True)
            caller = await registered(session, user)
            if discussion.status == "closed":
                return Closed(discussion_id=discussion_id, already_closed=True)
            if not caller.is_admin:
                try:
                    await self._may_sign(session, user, discussion.initiator)
                except SigningError:
                    raise SigningError(
                        f"only whoever opened it ({discussion.initiator}) or an admin may "
                        "close this discussion"
                    ) from None
            discussion.status, discussion.updated_at = "closed", datetime.now(UTC)
        return Closed(discussion_id=discussion_id, already_closed=False)

    async def _may_sign(self, session: Any, user: str, from_id: str) -> None:
        caller = await registered(session, user)
        participant = await session.get(DiscussionParticipant, from_id)
        if from_id == caller.name:
            if participant is None:
                session.add(
                    DiscussionParticipant(
                        id=caller.name, display_name=caller.name, role=ParticipantRole.PERSON.value
                    )
                )
            elif participant.role != ParticipantRole.PERSON.value:
                raise SigningError(f"{from_id!r} is an agent's id, not a person's")
            return
        if participant is not None:
            if participant.owner == caller.name:
                return
            product_agent = (
                participant.owner is None and participant.role == ParticipantRole.AGENT.value
            )
            if product_agent and caller.is_admin:
                return  # the product's own agents speak through admins; people only as themselves
        raise SigningError(
            f"you may sign only as yourself (from_id={caller.name!r})"
            + (", or a product agent" if caller.is_admin else ", or as an agent you own")
        )

    @staticmethod
    async def _add(
        session: Any, discussion: Discussion, message: MessageIn, now: datetime, keep_id: bool
    ) -> DiscussionMessage:
        """Store the message; its reply_to names a message of the same discussion (not a
        probe into another one). A person's ``message_id`` is their own key (``client_id``,
        a retry finds it by sender) and the message's id while no message has that id (so a
        reply_to names it): one another sender took, or an id our agents post under, gets
        the bus's own id instead, and the answer says which. A product agent's post keeps
        the id its run gives it (a reply names a rung's approval request by it)."""
        replied = await _replied(session, discussion.id, message)
        if message.reply_to is not None and replied is None:
            raise InvalidDiscussionError(
                f"reply_to: no message {message.reply_to!r} in this discussion"
            )
        wanted = message.message_id
        if not keep_id and wanted is not None:
            taken = wanted.startswith(AGENT_POST_ID)
            if not taken:
                taken = await session.get(DiscussionMessage, wanted) is not None
            wanted = None if taken else wanted
        row = DiscussionMessage(
            id=wanted or f"msg_{uuid.uuid4().hex[:16]}",
            client_id=None if keep_id else message.message_id,
            discussion_id=discussion.id,
            from_id=message.from_id,
            content=message.content,
            reply_to=replied,
            tags=list(message.tags),
            source_type=message.source_type,
            created_at=now,
        )
        session.add(row)
        discussion.updated_at = now
        return row

    async def _retry(
        self,
        session: Any,
        message: MessageIn,
        agent: bool,
        *,
        topic_key: str = "",
        discussion_id: str = "",
        tell: bool = True,
    ) -> Stored | None:
        """A retry of a stored message (None: nothing yet): what it posted, its topic and whom
        to tell. They are told again (once per message: the notice's workflow id and delivery
        keys), so a post that died between storing and telling tells them now. A retry is the
        same message to the same place (topic or discussion): another message with that id is
        refused, not answered "already posted" and lost. A sender's ``message_id`` names their
        own messages only (``from_id``): nobody takes the one another's client posts under."""
        if message.message_id is None:
            return None
        found: DiscussionMessage | None
        if agent:  # a product agent's post keeps its id (_add)
            found = await session.get(DiscussionMessage, message.message_id)
        else:
            found = await session.scalar(
                select(DiscussionMessage).where(
                    DiscussionMessage.from_id == message.from_id,
                    DiscussionMessage.client_id == message.message_id,
                )
            )
        if found is None:
            return None
        discussion = await session.get(Discussion, found.discussion_id)
        # Its words, tags (an approve acts) and reply_to; annotate_discussion adds auto_reply.
        if (
            (found.content, found.reply_to)
            != (message.content, await _replied(session, found.discussion_id, message))
            or {*(found.tags or [])} - {AUTO_REPLY} != {*message.tags} - {AUTO_REPLY}
            or (discussion_id and found.discussion_id != discussion_id)
            or (topic_key and discussion.topic_key != topic_key)
        ):
            raise InvalidDiscussionError(
                f"message_id: {message.message_id!r} already names another message of yours "
                f"(in {found.discussion_id}); a retry sends the same message, a new one a new id"
            )
        posted = Posted(message_id=found.id, discussion_id=found.discussion_id, already_posted=True)
        recipients = await self._recipients(session, discussion, message.from_id) if tell else []
        return posted, discussion.topic, recipients

    async def _recipients(self, session: Any, discussion: Discussion, sender: str) -> list[str]:
        """People in the discussion (and owners of its agents), not the sender."""
        senders = select(DiscussionMessage.from_id).where(
            DiscussionMessage.discussion_id == discussion.id, DiscussionMessage.from_id != sender
        )
        people: set[str] = set()
        query = select(DiscussionParticipant).where(DiscussionParticipant.id.in_(senders))
        for participant in await session.scalars(query):
            if participant.role == ParticipantRole.PERSON.value:
                people.add(participant.id)
            elif participant.owner:
                people.add(participant.owner)
        # The owner of the remediation it is about is one of its people, posted or not (the
        # run's agent posts there, not the owner): the run key, or a discussion stored before
        # runs were told apart, the remediation id.
        if subject := discussion.subject:
            about = or_(
                RemediationRecord.run_key == subject, RemediationRecord.remediation_id == subject
            )
            people.update(await session.scalars(select(RemediationRecord.user).where(about)))
        return sorted(people - {sender})

    async def _notify(self, stored: Stored, message: MessageIn) -> Posted:
        posted, topic, recipients = stored
        if not recipients:
            return posted
        if self.client is None:
            posted.notify_error = "Temporal is not configured here: nobody was notified"
            return posted
        from workflows.discussions import DiscussionNotifyWorkflow

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


def _rung_answered(run_key: str, thread: list[MessageView], reply_id: str) -> int | None:
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


def _asked(message: MessageIn, subject: str) -> str | None:
    """What a message asks of the remediation its discussion is about: approve, refuse, abort."""
    if not subject.startswith("remediation/"):
        return None
    # Tags are typed by hand (a phone capitalises "Approve"): any case acts.
    said = [tag.casefold() for tag in message.tags]
    return next((ACTION_TAGS[t] for t in said if t in ACTION_TAGS), None)


async def _raced(post: Callable[[], Awaitable[Posted]]) -> Posted:
    """A post, tried once more when a concurrent one stored the same row first (PostgreSQL,
    where writers do not queue: a retried message_id, a person's first participant row); the
    second try reads what the first stored."""
    try:
        return await post()
    except IntegrityError:
        return await post()


async def _replied(session: Any, discussion_id: str, message: MessageIn) -> str | None:
    """The id of the message ``reply_to`` names in the discussion: the sender's own under that
    key first (their client knows it by the message_id it gave, which another sender's message
    may hold as its id), then the message of that id."""
    if message.reply_to is None:
        return None
    own = select(DiscussionMessage.id).where(
        DiscussionMessage.discussion_id == discussion_id,
        DiscussionMessage.from_id == message.from_id,
        DiscussionMessage.client_id == message.reply_to,
    )
    if (found := await session.scalar(own)) is not None:
        return str(found)
    target = await session.get(DiscussionMessage, message.reply_to)
    return target.id if target is not None and target.discussion_id == discussion_id else None
