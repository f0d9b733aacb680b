"""A message stored on the discussion bus: who may sign as whom, its row and id, a retry of it
found, and whom to tell of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select

from ambient.discussions.access import registered
from ambient.discussions.reading import DiscussionReads
from ambient.discussions.rules import (
    AGENT_POST_ID,
    AUTO_REPLY,
    DEFAULT_PROJECT,
    MessageIn,
    ParticipantRole,
    discussion_id,
)
from ambient.discussions.steering import verb_asked
from ambient.discussions.views import InvalidDiscussionError, Posted, SigningError
from ambient.refusals import Refusal
from ambient.storage.models import (
    Discussion,
    DiscussionMessage,
    DiscussionParticipant,
    RemediationRecord,
)

# A stored message as its post answers: what was posted, the discussion's topic, whom to tell.
Stored = tuple[Posted, str, list[str]]


class DiscussionPosts(DiscussionReads):
    """Storing a signed message: on a topic's open discussion or a new one, once per message id."""

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
        if user is not None and (verb := verb_asked(message, about)):
            # Joined by its topic, not chosen: only a reply in that discussion acts.
            why = Refusal(
                "send_message does not act: reply_message in %(discussion)s does",
                discussion=discussion.id,
            )
            posted.acted(about.partition("@")[0], verb, why)
        return posted, discussion.topic, recipients

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
