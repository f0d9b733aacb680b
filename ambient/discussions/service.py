"""The discussion bus: people and agents talk about what happened; analysis flags inferred text.

MCP tools (signing, annotate, bus), the API and the web page are thin adapters over
``DiscussionService``. Every write is signed, and a caller signs only as itself (a user), as an
agent it owns, or — admins — as one of the product's own agents.

A discussion is seen by its members: whoever opened it (or owns the agent that did), the owner
of the remediation it is about, and whoever posted in it (or owns an agent that did). Admins see
every discussion. Every read, search, count and post goes through ``members_see``: a discussion
the caller cannot see answers "no discussion" (as if it did not exist), so nobody becomes a
member by posting into it, and ``send_message`` on its topic opens the caller's own discussion.

Reads are in ``reading`` and membership in ``access``; a message stored (signer, id, retry,
whom to tell) in ``posting``; what a reply asks of a remediation in ``steering``; what it answers
and raises in ``views``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from ambient.discussions.access import registered
from ambient.discussions.posting import DiscussionPosts, Stored
from ambient.discussions.rules import (
    AgentPost,
    DiscussionNotice,
    MessageIn,
    MessageView,
    answered_fast,
    auto_replied,
    normalise_topic,
)
from ambient.discussions.steering import RunSteering, rung_answered, verb_asked
from ambient.discussions.views import (
    Closed,
    DiscussionClosedError,
    InvalidDiscussionError,
    Posted,
    SigningError,
)
from ambient.domain.configs import NUL_REFUSED, holds_nul, shows_nothing, unseen_codes
from ambient.refusals import Refusal
from ambient.remediation.views import RemediationError
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.db import take_turn


class DiscussionService(DiscussionPosts):
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
            asks = verb_asked(message, subject)
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
        if verb := verb_asked(message, subject):
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
            step: dict[str, Any] | None = None
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
                        await self.remediations.abort(
                            user, rid, reason, run_key=run_key, via="discussion"
                        )
                    else:
                        answer = await self.remediations.approve(
                            user,
                            rid,
                            verb == "approve",
                            reason,
                            run_key=run_key,
                            rung=rung_answered(subject, earlier, posted.message_id),
                            via="discussion",
                        )
                        step = {"rung": int(answer.rung), "mode": answer.mode}
                except RemediationError as exc:
                    why = exc
            posted.acted(rid, verb, why, step)
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


async def _raced(post: Callable[[], Awaitable[Posted]]) -> Posted:
    """A post, tried once more when a concurrent one stored the same row first (PostgreSQL,
    where writers do not queue: a retried message_id, a person's first participant row); the
    second try reads what the first stored."""
    try:
        return await post()
    except IntegrityError:
        return await post()
