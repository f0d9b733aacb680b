"""Who sees a discussion: its members, or every one for an admin (every read goes through here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.discussions.rules import (
    MessageView,
    ParticipantRole,
)
from ambient.discussions.views import (
    DiscussionNotFoundError,
    InvalidDiscussionError,
    SigningError,
)
from ambient.domain.configs import holds_nul
from ambient.refusals import Refusal
from ambient.remediation.intake import cluster_approvers
from ambient.remediation.storage import RemediationRepository
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import (
    Discussion,
    DiscussionMessage,
    DiscussionParticipant,
    RemediationRecord,
    User,
)
from ambient.storage.users import UserRepository, not_registered

# No discussion id is longer than its column: a longer one is refused, not looked up or quoted.
ID_LENGTH = 64


async def registered(session: AsyncSession, name: str) -> User:
    """The user who signs or reads; anyone else is refused."""
    return await UserRepository(session).existing(name, SigningError(not_registered(name)))


async def members_see(
    session: AsyncSession, user: str, approvers: Mapping[str, list[str]]
) -> ColumnElement[bool]:
    """The discussions ``user`` sees: every one for an admin, else those they are a member of —
    opened (themself or by an agent they own), about a remediation they may steer (its owner,
    or an approver the policy names for its cluster), or posted in (the same way). Every read
    of the bus filters with it (the briefing's too)."""
    caller = await registered(session, user)
    if caller.is_admin:
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
    # A remediation's people are who may steer it (may_steer): its owner and the approvers
    # named for its cluster. Sending the same alert again grants nothing.
    steers = await RemediationRepository(session).seen_by(caller, approvers)
    # A run's discussion is about that run (its run key); one stored before runs were told
    # apart names the remediation id only.
    owns_run = select(RemediationRecord.run_key).where(steers)
    owns = select(RemediationRecord.remediation_id).where(steers)
    return or_(
        Discussion.initiator.in_(speaks_as),
        Discussion.id.in_(posted_in),
        Discussion.subject.in_(owns_run),
        Discussion.subject.in_(owns),
    )


class DiscussionAccess:
    """The bus's database and the membership filter every read and post applies."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings

    async def _visible(self, session: AsyncSession, user: str) -> ColumnElement[bool]:
        return await members_see(session, user, cluster_approvers(self.settings))

    async def _get(
        self, session: Any, discussion_id: str, user: str, *, lock: bool = False
    ) -> Discussion:
        """The discussion, if ``user`` sees it; one they do not see is "no discussion" too.
        ``lock``: a write turn's, row-locked until it ends (its status holds while it posts)."""
        if len(discussion_id) > ID_LENGTH:
            raise InvalidDiscussionError(
                Refusal("discussion_id: at most %(max)d characters", max=ID_LENGTH)
            )
        missing = DiscussionNotFoundError(
            f"no discussion {discussion_id!r} that you take part in; list_discussions shows yours"
        )
        if holds_nul(discussion_id):  # no id holds one, and PostgreSQL refuses the query
            raise missing
        query = select(Discussion).where(
            Discussion.id == discussion_id, await self._visible(session, user)
        )
        if lock:  # PostgreSQL; SQLite's writers queue anyway
            query = query.with_for_update()
        found: Discussion | None = await session.scalar(query)
        if found is None:
            raise missing
        return found

    async def _messages(
        self, session: Any, discussion_id: str, offset: int = 0, limit: int | None = None
    ) -> list[MessageView]:
        rows = await session.scalars(
            select(DiscussionMessage)
            .where(DiscussionMessage.discussion_id == discussion_id)
            .order_by(DiscussionMessage.created_at, DiscussionMessage.id)
            .offset(offset)
            .limit(limit)
        )
        return [MessageView.model_validate(r, from_attributes=True) for r in rows]
