"""Reading the bus: search, anomalies and annotations (analysis flags inferred text), browsing."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    Select,
    String,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ambient.discussions.access import DiscussionAccess, registered
from ambient.discussions.rules import (
    PRODUCT_AGENTS,
    MessageView,
    ParticipantRole,
    annotate,
    detect_anomalies,
)
from ambient.discussions.views import (
    AnnotationReport,
    AnomalyReport,
    DiscussionList,
    DiscussionRead,
    Found,
    InvalidDiscussionError,
    ProjectRow,
    Projects,
    Stats,
    StoreInit,
    discussion_view,
)
from ambient.domain.configs import NUL_REFUSED, holds_nul
from ambient.render import markdown_literal
from ambient.storage.models import (
    MAX_ID,
    Base,
    Discussion,
    DiscussionMessage,
    DiscussionParticipant,
)


class utf8_bytes(FunctionElement[int]):
    """The size of a text in UTF-8 bytes (``length`` counts characters)."""

    type = Integer()
    inherit_cache = True


@compiles(utf8_bytes)
def _octet_length(element: utf8_bytes, compiler: SQLCompiler, **kw: Any) -> str:
    return f"octet_length({compiler.process(element.clauses, **kw)})"


@compiles(utf8_bytes, "sqlite")
def _blob_length(element: utf8_bytes, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite has octet_length only from 3.43: the length of the text as a blob is its bytes.
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


async def _count(session: AsyncSession, rows: FromClause | type[Base]) -> int:
    """How many rows a table or a subquery holds."""
    return int((await session.execute(select(func.count()).select_from(rows))).scalar_one())


# The most discussions or messages one answer holds: a long thread is read in pages.
PAGE = 100
# The most message text (characters) a page of messages holds, past its first message: 100
# long messages were 313 KB of text (twice that with the structured copy), past what an
# agent's context or our own chat (it cuts a tool's text at 20,000) keeps of next_offset.
PAGE_CHARS = 60_000


def _fitting(messages: list[MessageView]) -> int:
    """How many of ``messages``, in page order, fit PAGE_CHARS (at least one)."""
    size = 0
    for n, message in enumerate(messages):
        size += len(message.content)
        if n and size > PAGE_CHARS:
            return n
    return len(messages)


def _check_offset(offset: int) -> None:
    if not 0 <= offset <= MAX_ID:  # a larger one overflows the database's integer
        raise InvalidDiscussionError(
            f"offset: 0 to {MAX_ID} (0, or the next_offset of the previous page)"
        )


def _checked_limit(limit: int | None) -> int:
    if limit is not None and not 1 <= limit <= PAGE:
        raise InvalidDiscussionError(f"limit: 1 to {PAGE}")
    return PAGE if limit is None else limit


async def _newest_first(
    session: AsyncSession, query: Select[Any], order: list[Any], total: int, offset: int, size: int
) -> tuple[list[Any], int | None]:
    """A page of a newest-first list and its next_offset, counted from the oldest end: rows
    added at the newest end between pages neither come again nor push one onto the next page.
    ``offset`` 0: the newest ``size``; else the newest ``size`` of the ``offset`` oldest rows
    (the ``order`` columns, oldest first)."""
    left = min(offset or total, total)
    rows = await session.scalars(
        query.order_by(*order).offset(max(0, left - size)).limit(min(left, size))
    )
    return list(rows)[::-1], left - size if left > size else None


async def _count_by(
    session: AsyncSession, column: InstrumentedAttribute[Any], where: ColumnElement[bool]
) -> dict[Any, int]:
    """How many rows meet ``where``, per value of ``column``."""
    query = select(column, func.count()).where(where).group_by(column)
    return {value: int(n) for value, n in (await session.execute(query)).all()}


class DiscussionReads(DiscussionAccess):
    """annotate (read-only analysis) and bus (browse and set-up), each filtered by membership."""

    # --- annotate (read-only analysis) -----------------------------------------------

    async def search_messages(
        self, user: str, keyword: str, offset: int = 0, limit: int | None = None
    ) -> Found:
        """Messages containing ``keyword`` (any case) in the discussions ``user`` sees, a page
        of at most ``limit`` (None: PAGE) and PAGE_CHARS from ``offset``."""
        _check_offset(offset)
        limit = _checked_limit(limit)
        words = keyword.strip()
        if not words or len(words) > 200:
            raise InvalidDiscussionError("keyword: a word or phrase of 1-200 characters")
        if holds_nul(words):  # PostgreSQL refuses the query itself; no message holds one
            raise InvalidDiscussionError(f"keyword: {NUL_REFUSED}")
        # As written, or as our agents' posts quote it (markdown, escaped).
        said = (words, markdown_literal(words))
        async with self.db.session() as session:
            matching = (
                select(DiscussionMessage)
                .join(Discussion, Discussion.id == DiscussionMessage.discussion_id)
                .where(
                    # autoescape: a '%' or '_' in the keyword is a character to find, not a
                    # LIKE wildcard that matches every message.
                    or_(*(self._holds(w) for w in said)),
                    await self._visible(session, user),
                )
            )
            total = await _count(session, matching.subquery())
            order = [DiscussionMessage.created_at, DiscussionMessage.id]
            rows, more = await _newest_first(session, matching, order, total, offset, limit)
            found = [MessageView.model_validate(r, from_attributes=True) for r in rows]
        # Older ones left out by size: the next page starts with them (counted from the oldest).
        kept = _fitting(found)
        if kept < len(found):
            more = (more or 0) + len(found) - kept
        return Found(query=words, total_matches=total, results=found[:kept], next_offset=more)

    def _holds(self, word: str) -> ColumnElement[bool]:
        """A message holding ``word`` in any case, of any script: PostgreSQL's ILIKE, SQLite's
        casefold (its own lower() folds ASCII alone: "DÉPLOIEMENT" found no "déploiement")."""
        if self.db.sqlite:
            folded = func.casefold(DiscussionMessage.content, type_=String)
            return folded.contains(word.casefold(), autoescape=True)
        return DiscussionMessage.content.icontains(word, autoescape=True)

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
            anomalies=anomalies[:PAGE],
        )

    async def annotate_discussion(self, user: str, discussion_id: str) -> AnnotationReport:
        """Set source_type from anomalies, `auto_reply` tags and unknown senders (members)."""
        async with self.db.writing() as session:
            await self._get(session, discussion_id, user)
            messages = await self._messages(session, discussion_id)
            known = set(await session.scalars(select(DiscussionParticipant.id)))
            changes = annotate(messages, known)
            for change in changes:
                row = await session.get(DiscussionMessage, change.message_id)
                assert row is not None
                row.source_type = change.source_type
                row.tags = [*(row.tags or []), *change.tags_added]
        return AnnotationReport(
            discussion_id=discussion_id, count=len(changes), changed=changes[:PAGE]
        )

    # --- bus (browse and set-up) ------------------------------------------------------

    async def list_discussions(
        self,
        user: str,
        status: Literal["open", "closed"] | None = None,
        limit: int = PAGE,
        offset: int = 0,
    ) -> DiscussionList:
        """The discussions ``user`` sees, newest activity first, with their open/closed counts:
        a page of ``limit`` from ``offset``."""
        _check_offset(offset)
        async with self.db.session() as session:
            visible = await self._visible(session, user)
            counts = await _count_by(session, Discussion.status, visible)
            query = select(Discussion).where(visible)
            if status:
                query = query.where(Discussion.status == status)
            total = counts.get(status, 0) if status else sum(counts.values())
            # The id breaks ties, so pages neither repeat nor skip a discussion.
            order = [Discussion.updated_at, Discussion.id]
            rows, more = await _newest_first(session, query, order, total, offset, limit)
            listed = DiscussionMessage.discussion_id.in_([r.id for r in rows])
            per = await _count_by(session, DiscussionMessage.discussion_id, listed)
        return DiscussionList(
            open=counts.get("open", 0),
            closed=counts.get("closed", 0),
            discussions=[discussion_view(r, per.get(r.id, 0)) for r in rows],
            next_offset=more,
        )

    async def read_discussion(
        self, user: str, discussion_id: str, offset: int | None = 0, limit: int | None = None
    ) -> DiscussionRead:
        """A discussion and a page of at most ``limit`` of its messages (None: PAGE) and
        PAGE_CHARS, oldest first, from ``offset`` (None: its newest page, which the web page
        opens on)."""
        _check_offset(offset or 0)
        limit = _checked_limit(limit)
        async with self.db.session() as session:
            discussion = await self._get(session, discussion_id, user)
            theirs = DiscussionMessage.discussion_id == discussion_id
            per = await _count_by(session, DiscussionMessage.discussion_id, theirs)
            total = per.get(discussion_id, 0)
            if offset is None:
                offset = max(0, (total - 1) // PAGE * PAGE)
            messages = await self._messages(session, discussion_id, offset, limit)
        messages = messages[: _fitting(messages)]
        after = offset + len(messages)
        return DiscussionRead(
            discussion=discussion_view(discussion, total),
            messages=messages,
            next_offset=after if after < total else None,
        )

    async def init_store(self, user: str) -> StoreInit:
        """Make sure the product's own participants exist (idempotent); report the counts
        ``get_stats`` gives (of the discussions ``user`` sees, like every count of the bus)."""
        seeded: list[str] = []
        async with self.db.writing() as session:
            for agent, name in PRODUCT_AGENTS.items():
                if await session.get(DiscussionParticipant, agent) is None:
                    role = ParticipantRole.AGENT.value
                    session.add(DiscussionParticipant(id=agent, display_name=name, role=role))
                    seeded.append(agent)
        stats = await self.get_stats(user)
        totals = stats.model_dump(include={"participants", "discussions", "messages"})
        return StoreInit(**totals, seeded=seeded)

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
        """Totals over the discussions ``user`` sees (participants: the product's agents and
        who opened or posted in those; an admin's: everyone on the bus)."""
        async with self.db.session() as session:
            visible = await self._visible(session, user)
            states = await _count_by(session, Discussion.status, visible)
            mine = DiscussionMessage.discussion_id.in_(select(Discussion.id).where(visible))
            per = await _count_by(session, DiscussionMessage.from_id, mine)
            latest, size = (
                await session.execute(
                    select(
                        func.max(DiscussionMessage.created_at),
                        func.coalesce(func.sum(utf8_bytes(DiscussionMessage.content)), 0),
                    ).where(mine)
                )
            ).one()
            # Counted over the whole bus, a member's number rose at each stranger's first post.
            known = or_(
                DiscussionParticipant.id.in_(PRODUCT_AGENTS),
                DiscussionParticipant.id.in_(select(DiscussionMessage.from_id).where(mine)),
                DiscussionParticipant.id.in_(select(Discussion.initiator).where(visible)),
            )
            admin = (await registered(session, user)).is_admin
            seen = select(DiscussionParticipant.id).where(true() if admin else known)
            participants = await _count(session, seen.subquery())
        return Stats(
            discussions=sum(states.values()),
            open=states.get("open", 0),
            closed=states.get("closed", 0),
            messages=sum(per.values()),
            participants=participants,
            messages_per_participant=dict(sorted(per.items())),
            latest_activity=latest,
            store_bytes=int(size),
        )
