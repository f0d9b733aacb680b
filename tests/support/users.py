"""Users registered for a test, as an operator registers them (`ambient user create NAME`):
a task or a briefing is refused for a user nobody registered."""

from __future__ import annotations

from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.users import UserRepository


async def register(db: Database, *names: str) -> None:
    """Register each of ``names`` not registered yet (a member with the defaults)."""
    async with db.session() as session:
        users = UserRepository(session)
        for name in names:
            if await users.get(name) is None:
                await users.create(UserCreate(name=name))
        await session.commit()
