"""An admin for API tests, made the way an operator makes one (`ambient user create --admin`)."""

from __future__ import annotations

from ambient.domain.users import Role, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository


async def admin_headers(settings: Settings, name: str = "admin") -> dict[str, str]:
    """Bearer headers of admin ``name`` in the app's (already migrated) database."""
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            users = UserRepository(session)
            user = await users.get(name)
            if user is None:
                _, token = await users.create(UserCreate(name=name, role=Role.ADMIN))
            else:
                token = await users.rotate_token(user)
            await session.commit()
    finally:
        await db.close()
    return {"Authorization": f"Bearer {token}"}
