"""What a caller is shown of 小智 devices (ambient.xiaozhi): a device with its owner's
withdrawals and its voiceprint warning, a consent given, an owner's withdrawals."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.speakers import UNMATCHED_WARNING, UNMATCHED_WARNING_OTHERS
from ambient.storage.models import User, XiaozhiDevice, XiaozhiWithdrawal


class DeviceView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str
    user: str
    speakers: list[str] = Field(description="other users this device may answer by voiceprint")
    withdrawn: list[str] = Field(
        default_factory=list,
        description="users whose consent the owner (or an admin) withdrew: they may not allow "
        "this device, nor any other of the owner's, again until let back",
    )
    created_at: datetime
    warning: str | None = Field(
        default=None,
        description="why a voice it does not match may read but not act, while it answers others "
        "and its owner has no voiceprint id (as the settings page's card says it)",
    )


class DeviceConsent(BaseModel):
    """The answer to an allow (or its withdrawal): what the caller may know. Not whose device
    it is: a MAC is no secret, and its owner is theirs to tell."""

    device_id: str
    speakers: list[str] = Field(
        description="who this device may answer by voiceprint: all of them for its owner or an "
        "admin; anyone else's answer names only themselves, if they allowed it"
    )
    allowed: bool = Field(description="whether the caller's consent is now given")


class Withdrawals(BaseModel):
    """An owner's withdrawals, with or without a device of theirs left."""

    user: str = Field(description="the owner whose devices may not take their consent")
    withdrawn: list[str] = Field(description="the users withdrawn, until let back")


class DeviceAdded(DeviceView):
    token: str = Field(description="the device token, shown once (stored hashed)")


_NO_VOICEPRINT = (User.voiceprint_id.is_(None), User.voiceprint_id == "")


async def viewed(
    session: AsyncSession, rows: Iterable[XiaozhiDevice], actor: str | None
) -> list[DeviceView]:
    """The devices as listed, with their owner's withdrawals, and warned (UNMATCHED_WARNING to
    the owner, UNMATCHED_WARNING_OTHERS naming them to an admin or the operator) on every device
    of an owner with no voiceprint id once any device of theirs answers others: a mark like
    "未知" there may read but not act (resolve_speaker, _nobody_named: a rule per owner)."""
    rows = list(rows)
    owners = {row.user for row in rows}
    withdrawn: dict[str, list[str]] = {}
    query = select(XiaozhiWithdrawal).where(XiaozhiWithdrawal.owner.in_(owners))
    for gone in await session.scalars(query.order_by(XiaozhiWithdrawal.speaker)):
        withdrawn.setdefault(gone.owner, []).append(gone.speaker)
    answering = select(XiaozhiDevice.user, XiaozhiDevice.speakers).where(
        XiaozhiDevice.user.in_(owners)
    )
    unenrolled = select(User.name).where(User.name.in_(owners), or_(*_NO_VOICEPRINT))
    bare = set(await session.scalars(unenrolled)) & {
        name for name, speakers in (await session.execute(answering)).tuples() if speakers
    }

    def warning(owner: str) -> str | None:
        if owner not in bare:
            return None
        return UNMATCHED_WARNING if owner == actor else UNMATCHED_WARNING_OTHERS % {"owner": owner}

    return [
        DeviceView.model_validate(row).model_copy(
            update={
                "withdrawn": withdrawn.get(row.user, []),
                "warning": warning(row.user),
            }
        )
        for row in rows
    ]
