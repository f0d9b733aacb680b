"""A user's push channels, checked by the target rules of the user's role and saved: the one
way every door (MCP, the API, the settings page, `ambient user push`) sets them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ambient.clients.notify.targets import TargetPolicy
from ambient.domain.push import PushConfig
from ambient.storage.models import User
from ambient.storage.repositories import UserRepository


async def save_push_config(
    session: AsyncSession, user: User, config: PushConfig, policy: TargetPolicy
) -> None:
    """Check every channel for ``user`` (TargetError naming it, nothing saved), then store."""
    policy.check_all(config.channels, user=user.name, is_admin=user.is_admin, field="channels")
    await UserRepository(session).set_push_config(user, config.model_dump(mode="json"))
