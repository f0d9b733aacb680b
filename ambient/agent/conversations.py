"""Chat conversations in the app database, so that any API replica continues any of them.

A conversation is one row (``ChatConversation``): its messages (the OpenAI chat message dicts
sent to the model), the tool calls its last confirm listed and that confirm's id. A turn holds
the row while it runs: a conditional UPDATE sets ``holder`` (the turn's own id) and
``lease_until``, renewed while the turn lives. A second turn of the conversation, on this
replica or another, waits until the first lets go or its lease runs out (its replica died),
``wait_seconds`` at most. Every write of a turn names its holder: a turn that lost its hold
writes nothing more, so calls a confirm listed are taken by one turn only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.agent.errors import ConversationError
from ambient.status import problem_told
from ambient.storage import Database
from ambient.storage.models import ChatConversation, utcnow

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageFunctionToolCall as ToolCall

log = logging.getLogger(__name__)

# A turn's hold, renewed every third of it: a replica killed mid-turn holds its conversation
# this long at most.
LEASE_SECONDS = 30.0
# How long a turn waits for the one holding its conversation: a model may answer for minutes,
# and a request silent longer is cut by the load balancer in front (often at 60 s).
WAIT_SECONDS = 50.0
# A conversation idle this long is gone; a user keeps their newest ``KEPT_PER_USER``.
TTL_SECONDS = 6 * 3600.0
KEPT_PER_USER = 50

BUSY = (
    "This conversation is still answering an earlier message (in this window or another); "
    "nothing was done. Send this one again once that answer is done."
)
GONE = (
    "This conversation is no longer kept (idle for hours, or too many newer ones); nothing "
    "was done. Send your message again to start a new one."
)
UNSTORED = "This conversation could not be read or stored, so nothing more was done"
TAKEN = (
    "Another request took this conversation over while this answer was running (this server "
    "did not renew its hold in time); nothing more was done here."
)


@dataclass
class Conversation:
    """A conversation as this process last read it; a turn reads it again once it holds it,
    and changes ``messages``, ``pending`` and ``confirm_id``."""

    id: str
    user: str
    store: ConversationStore = field(repr=False)
    messages: list[dict[str, Any]] = field(default_factory=list)
    # Destructive calls the model asked for, waiting for the person's yes or no.
    pending: list[ToolCall] = field(default_factory=list)
    # The confirm event that listed ``pending``: an answer naming another one runs nothing.
    confirm_id: str | None = None
    # The server of each of ``pending`` by function name, and that server's life then.
    confirm_lives: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # The turn of this process holding it now (None between turns, and once the hold is lost).
    holder: str | None = field(default=None, repr=False)
    # What the store has of it, as this turn last read or wrote it: a save that changes none of
    # it (a turn's end, after its answer was stored) writes the hold only, not every message.
    stored: tuple[list[dict[str, Any]], list[ToolCall], str | None] | None = field(
        default=None, repr=False, compare=False
    )

    def keep_stored(self) -> None:
        """Note what the store has now (a shallow copy: messages are only ever added)."""
        self.stored = (list(self.messages), list(self.pending), self.confirm_id)

    async def save(self) -> None:
        """Store what the turn has so far; ConversationError if the turn no longer holds it."""
        await self.store.save(self)


class ConversationStore:
    """Conversations in the app database: one turn of each at a time, across processes."""

    def __init__(
        self,
        db: Database,
        *,
        kept_per_user: int = KEPT_PER_USER,
        ttl_seconds: float = TTL_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db, self.kept = db, kept_per_user
        self.ttl, self.lease = timedelta(seconds=ttl_seconds), timedelta(seconds=lease_seconds)
        self.wait, self.clock = wait_seconds, clock
        # This process's turns of one conversation queue here, in order, rather than each
        # asking the database again and again.
        self._queues: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def open(self, user: str, conversation_id: str | None) -> Conversation:
        """``user``'s conversation ``conversation_id``, or a new one when none is given, it is
        another user's, or it is no longer kept (idle past the time to live, or pruned)."""
        now = self.clock()
        if conversation_id:
            async with self.db.session() as session:
                found = (
                    await session.execute(
                        select(ChatConversation.user, ChatConversation.updated_at).where(
                            ChatConversation.id == conversation_id
                        )
                    )
                ).first()
            if found is not None and found.user == user and found.updated_at >= now - self.ttl:
                return Conversation(id=conversation_id, user=user, store=self)
        conversation = Conversation(id=uuid.uuid4().hex, user=user, store=self)
        rows = ChatConversation
        async with self.db.writing() as session:
            session.add(
                rows(id=conversation.id, user=user, messages=[], pending=[], updated_at=now)
            )
            # Pruned as conversations are added: no job of its own to run somewhere.
            await session.execute(delete(rows).where(rows.updated_at < now - self.ttl))
            newest = (
                select(rows.id)
                .where(rows.user == user)
                .order_by(rows.updated_at.desc(), rows.id)
                .limit(self.kept)
            )
            await session.execute(delete(rows).where(rows.user == user, rows.id.not_in(newest)))
        return conversation

    @asynccontextmanager
    async def turn(self, conversation: Conversation) -> AsyncIterator[None]:
        """Hold ``conversation`` for one turn, read as stored; at the end store it and let go.
        ConversationError when another turn holds it past ``wait_seconds``, or it is gone."""
        queue = self._queues.setdefault(conversation.id, asyncio.Lock())
        deadline = asyncio.get_running_loop().time() + self.wait
        try:
            async with asyncio.timeout_at(deadline):
                await queue.acquire()
        except TimeoutError:
            raise ConversationError(BUSY) from None
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._claim(conversation)
            except TimeoutError:
                raise ConversationError(BUSY) from None
            keeping = asyncio.create_task(self._keep(conversation.id, conversation.holder))
            try:
                yield
            finally:
                # Also when the person's connection dropped (the request's task cancelled): the
                # conversation is stored as far as it went and let go now, not at lease end. A
                # database that does not answer (a row lock, a lost connection) is given a
                # renewal's time, not the request's whole life: the hold then runs out by itself.
                with anyio.move_on_after(self.lease.total_seconds() / 3, shield=True) as ending:
                    keeping.cancel()
                    await asyncio.wait({keeping})
                    await self._let_go(conversation)
                if ending.cancelled_caught:
                    log.warning("chat conversation %s: not let go in time", conversation.id)
        finally:
            queue.release()

    async def _claim(self, conversation: Conversation) -> None:
        """Wait until this turn holds the row (free, or its holder's lease ran out), then read
        it; asked again after 50 ms, doubling up to a second."""
        holder, pause, rows = uuid.uuid4().hex, 0.05, ChatConversation
        this = rows.id == conversation.id
        while True:
            now = self._hold_clock()
            async with self._writing() as session:
                taken = await session.execute(
                    update(rows)
                    .where(this, or_(rows.holder.is_(None), rows.lease_until < now))
                    .values(holder=holder, lease_until=now + self.lease, updated_at=self.clock())
                    .execution_options(synchronize_session=False)
                )
                if getattr(taken, "rowcount", 0):
                    read = select(
                        rows.messages, rows.pending, rows.confirm_id, rows.confirm_lives
                    ).where(this)
                    stored = (await session.execute(read)).one()
                    break
                if await session.scalar(select(rows.id).where(this)) is None:
                    raise ConversationError(GONE)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
        from openai.types.chat import ChatCompletionMessageFunctionToolCall

        conversation.messages = list(stored.messages)
        conversation.pending = [
            ChatCompletionMessageFunctionToolCall.model_validate(call) for call in stored.pending
        ]
        conversation.confirm_id = stored.confirm_id
        lives = stored.confirm_lives or {}  # none: asked before lives were kept (never run)
        conversation.confirm_lives = {name: (s, life) for name, (s, life) in lives.items()}
        conversation.holder = holder
        conversation.keep_stored()

    async def save(self, conversation: Conversation, *, let_go: bool = False) -> None:
        """Store ``conversation`` as its turn has it (the hold renewed, or given back with
        ``let_go``); ConversationError when that turn no longer holds it."""
        rows = ChatConversation
        values: dict[str, Any] = (
            {"holder": None, "lease_until": None}
            if let_go
            else {"lease_until": self._hold_clock() + self.lease}
        )
        values["updated_at"] = self.clock()
        state = (conversation.messages, conversation.pending, conversation.confirm_id)
        if state != conversation.stored:  # list equality: identity first, element by element
            values["messages"] = conversation.messages
            values["pending"] = [call.model_dump(mode="json") for call in conversation.pending]
            values["confirm_id"] = conversation.confirm_id
            # It changes only with confirm_id (a new confirm has a new one).
            values["confirm_lives"] = conversation.confirm_lives
        if conversation.holder is not None:
            async with self._writing() as session:
                saved = await session.execute(
                    update(rows)
                    .where(rows.id == conversation.id, rows.holder == conversation.holder)
                    .values(values)
                    .execution_options(synchronize_session=False)
                )
            if getattr(saved, "rowcount", 0):
                conversation.keep_stored()
                return
        conversation.holder = None
        raise ConversationError(TAKEN)

    def _hold_clock(self) -> ColumnElement[datetime] | datetime:
        """Now, for holds: the PostgreSQL server's clock, one for every replica (their hosts'
        may differ by more than a lease: one ahead would take a hold still renewed, one behind
        wait out a dead replica's for as long); SQLite's replicas share one host's."""
        return self.clock() if self.db.sqlite else func.now()

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A turn's write transaction: the database not answering ends the turn with an error
        event saying so, not with a stream cut off."""
        try:
            async with self.db.writing() as session:
                yield session
        except Exception as exc:
            # In a user's terms: a chat user is no operator (the log keeps where and why).
            if (problem := problem_told(exc, None, operator=False)) is None:
                raise
            raise ConversationError(f"{UNSTORED}: {problem}") from exc

    async def _let_go(self, conversation: Conversation) -> None:
        """The turn's end: stored and given back. Its events are sent already: a failure here
        is logged (its hold then runs out by itself)."""
        if conversation.holder is None:
            return  # lost during the turn, which said so
        try:
            await self.save(conversation, let_go=True)
        except ConversationError:
            log.warning("chat conversation %s: taken over as its turn ended", conversation.id)
        except Exception:
            log.exception("chat conversation %s: its turn's end was not stored", conversation.id)
        finally:
            conversation.holder = None

    async def _keep(self, conversation_id: str, holder: str | None) -> None:
        """Renew ``holder``'s lease every third of it until the turn ends or loses it."""
        rows = ChatConversation
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                async with self.db.writing() as session:
                    renewed = await session.execute(
                        update(rows)
                        .where(rows.id == conversation_id, rows.holder == holder)
                        .values(lease_until=self._hold_clock() + self.lease)
                        .execution_options(synchronize_session=False)
                    )
            except Exception as exc:  # the database away a moment: the next renewal tries again
                log.warning("chat conversation %s: lease not renewed: %s", conversation_id, exc)
                continue
            if not getattr(renewed, "rowcount", 0):
                return  # taken over: the turn's next write says so
