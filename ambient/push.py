"""A user's push channels, checked by the target rules of the user's role and saved: the one
way every door (MCP, the API, the settings page, `ambient user push`) sets them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ambient.clients.notify.targets import TargetError, TargetPolicy
from ambient.domain.push import KEPT, PushConfig, fallback_address, keeping
from ambient.refusals import Refusal
from ambient.storage.models import User
from ambient.storage.users import UserRepository


async def save_push_config(
    session: AsyncSession, user: User, config: PushConfig, policy: TargetPolicy
) -> None:
    """Check every channel for ``user`` (TargetError naming it, nothing saved), then store;
    one sent back as it is stored is kept unchecked (``config`` read with ``keeping``)."""
    stored = keeping(user.push_config)[KEPT]
    for index, channel in enumerate(config.channels):
        if (channel.type, channel.target) in stored:
            continue
        if (why := policy.problem(channel, user=user.name, is_admin=user.is_admin)) is not None:
            raise TargetError("channels", index, why)
    # An email or sms channel without a target sends to another of its type's address, else
    # the profile's: with neither, every push to it would fail ("no email target").
    for index, channel in enumerate(config.channels):
        kind = channel.type
        if kind in ("email", "sms") and not (
            channel.target or fallback_address(kind, config.channels, user.email, user.phone)
        ):
            field = Refusal("email") if kind == "email" else Refusal("phone")  # said in words
            why = Refusal(
                "an %(kind)s channel without a target sends to the %(field)s in your profile, "
                "and your profile has no %(field)s: give the address as target, or set your "
                "%(field)s first",
                kind=kind,
                field=field,
            )
            raise TargetError("channels", index, why)
    await UserRepository(session).set_push_config(user, config.model_dump(mode="json"))
