"""小智 devices (who is speaking to them: `ambient.speakers`; what waits for their users and
the per-wake context facts: `ambient.xiaozhi_context`).

A device is a 小智 speaker known by its MAC (the `device-id` header xiaozhi-server sends). It
belongs to one user, authenticates with its own token (stored hashed), and may name other
users who allowed it to answer them by voiceprint. Every permission is decided here, so the
API, the CLI and the voice tools cannot differ.

The refusals are in ambient.xiaozhi_errors, what a caller is shown in ambient.xiaozhi_views.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.domain.users import OPERATOR
from ambient.refusals import N_, Refusal, said_back
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.db import take_turn
from ambient.storage.models import (
    MAX_ID,
    AuditRecord,
    User,
    XiaozhiDevice,
    XiaozhiEndpoint,
    XiaozhiWithdrawal,
)
from ambient.storage.users import UserRepository, hash_token, not_registered
from ambient.storage.users import new_api_token as _new_token
from ambient.xiaozhi_errors import (
    NOT_ALLOWED,
    NOT_WITHDRAWN,
    NOT_YOURS_TO_LET_BACK,
    SPEAKERS_WITHDRAWN,
    WITHDRAWN,
    AmbiguousDeviceError,
    DeviceNotFoundError,
    DeviceRefusedError,
    InvalidDeviceError,
    UnknownOwnerError,
    UnregisteredUserError,
)
from ambient.xiaozhi_views import DeviceAdded, DeviceConsent, DeviceView, Withdrawals, viewed

# A MAC as xiaozhi-server sends it (aa:bb:cc:dd:ee:ff), or any short id of the same letters.
_DEVICE_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z:_.-]{0,63}$")
# A MAC as routers and labels write it (AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff, AABBCCDDEEFF; Huawei
# and H3C aabb-ccdd-eeff, HP aabbcc-ddeeff), or as 小智 writes it over MQTT (aa_bb_cc_dd_ee_ff in
# its client id and topic): stored as the firmware sends it in `device-id`, aa:bb:cc:dd:ee:ff,
# or no wake would ever match.
_MAC = re.compile(
    r"^[0-9a-f]{2}([-:_]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$"
    r"|^[0-9a-f]{4}([-.])[0-9a-f]{4}\2[0-9a-f]{4}$|^[0-9a-f]{6}-[0-9a-f]{6}$"
)
# The other ways a MAC was stored as typed before these were read as one (rows of earlier
# releases), by the digits' groups and their separator.
_NOTATIONS = ((2, ":"), (2, "-"), (2, "_"), (2, ""), (4, "."), (4, "-"), (6, "-"))
DEVICE_TOKEN_PREFIX = "xzd_"


def normalize_device_id(value: str) -> str:
    """MACs compare case-insensitively: stored and looked up lowercase."""
    value = value.strip()
    if not _DEVICE_ID.fullmatch(value):
        raise InvalidDeviceError(
            "device_id: the device's MAC as xiaozhi-server sends it in `device-id` "
            "(e.g. aa:bb:cc:dd:ee:ff), 1-64 letters, digits, ':', '_', '.', '-'"
        )
    value = value.lower()
    if _MAC.match(value):
        digits = re.sub(r"[-:._]", "", value)
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    if ":" in value:  # written as xiaozhi-server sends a MAC, but none: it would match no wake
        raise InvalidDeviceError(
            f"device_id: {value!r} is no MAC: six pairs of hex digits (0-9, a-f), e.g. "
            "aa:bb:cc:dd:ee:ff, as xiaozhi-server sends it in `device-id`"
        )
    return value


def _notations(mac: str) -> set[str]:
    """``mac`` (aa:bb:cc:dd:ee:ff) in every notation a device was stored in as typed."""
    if not _MAC.match(mac):
        return {mac}
    digits = mac.replace(":", "")
    return {
        separator.join(digits[i : i + size] for i in range(0, 12, size))
        for size, separator in _NOTATIONS
    }


def _device_keys(ref: str) -> set[str]:
    """What a device reference may be stored as: as typed (rows from before MACs were
    normalized) and normalized."""
    keys = {ref.strip().lower()}
    with suppress(InvalidDeviceError):
        keys.add(normalize_device_id(ref))
    return keys


async def speaks_to_us(db: Database, name: str) -> bool:
    """Whether ``name`` has a way to speak to the product, so that "by voice" is one of the
    ways they are told to answer: a 小智 device of theirs, a xiaozhi.me 接入点, a voice token (a
    self-hosted xiaozhi-server's), or another's device they allowed to answer them."""
    async with db.session() as session:
        owned = or_(
            select(User.id).where(User.name == name, User.voice_token_hash.is_not(None)).exists(),
            select(XiaozhiDevice.id).where(XiaozhiDevice.user == name).exists(),
            select(XiaozhiEndpoint.id).where(XiaozhiEndpoint.user == name).exists(),
        )
        if await session.scalar(select(owned)):
            return True
        # Few devices answer others: their lists of names read here (no JSON query per back end).
        lists = await session.scalars(
            select(XiaozhiDevice.speakers).where(XiaozhiDevice.user != name)
        )
        return any(name in (speakers or []) for speakers in lists)


class DeviceService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _admin(self, name: str | None) -> bool:
        """Whether ``name`` may act on everyone's devices; None is the operator (the CLI)."""
        if name is None:
            return True
        async with self.db.session() as session:
            refusal = DeviceRefusedError(f"{name!r} is not a registered user")
            user = await UserRepository(session).existing(name, refusal)
        return user.is_admin

    async def add(
        self,
        actor: str | None,
        user: str,
        device_id: str,
        *,
        speakers: list[str] | None = None,
        token: str | None = None,
    ) -> DeviceAdded:
        """Register a device to ``user`` (the user themself or an admin may); ``token``: its
        token as a page's form made it (`api.routers.settings_pages`), else a new one. A form's
        token the device had when it was removed is not given again (the form sent again after
        the remove, a removed token worked again): a new one is."""
        if actor != user and not await self._admin(actor):
            raise DeviceRefusedError("you may register devices only for yourself (or be an admin)")
        mac = normalize_device_id(device_id)
        names = sorted(set(speakers or []) - {user})
        if names and not await self._admin(actor):
            # Being answered by someone else's speaker is each person's own consent.
            raise DeviceRefusedError(
                "speakers: each user allows a device for themself (`allow`); "
                "only an admin or the operator names them at registration"
            )
        token = token or DEVICE_TOKEN_PREFIX + _new_token()
        async with self.db.write_session() as session:
            users = UserRepository(session)
            await users.existing(user, UnregisteredUserError(not_registered(user), "user"))
            for name in names:
                await users.existing(name, UnregisteredUserError(not_registered(name), "speakers"))
            await _owner_turn(session, user)
            # A withdrawal holds for every device of the owner's, one registered later too.
            if gone := [name for name in names if name in await _withdrawn(session, user)]:
                raise InvalidDeviceError(
                    Refusal(SPEAKERS_WITHDRAWN, speakers=", ".join(gone), owner=user)
                )
            if token and await _removed_with(session, mac, hash_token(token)):
                token = DEVICE_TOKEN_PREFIX + _new_token()
            taken = InvalidDeviceError(f"device_id: {mac} is already registered; remove it first")
            # As an earlier release stored it too (aa-bb-…, aabb.ccdd.eeff): a second row of
            # one device let `authenticate` pick either, refusing its owner.
            if owner := await session.scalar(
                select(XiaozhiDevice.user).where(XiaozhiDevice.device_id.in_(_notations(mac)))
            ):
                if owner == user:
                    raise taken
                # "Remove it first" asked for what the caller cannot do (it is not theirs).
                whose = f"to {owner}" if await self._admin(actor) else "to another user"
                raise InvalidDeviceError(
                    f"device_id: {mac} is registered {whose}: only its owner or an admin can "
                    "remove it"
                )
            row = XiaozhiDevice(
                device_id=mac, user=user, token_hash=hash_token(token), speakers=names
            )
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise taken from None
            await _audit(session, actor, "xiaozhi.device.add", row, speakers=names)
            await session.commit()
            [view] = await viewed(session, [row], actor)
        return DeviceAdded(**view.model_dump(), token=token)

    async def list(self, actor: str | None) -> list[DeviceView]:
        """The caller's devices (every device for an admin or the operator)."""
        query = select(XiaozhiDevice).order_by(XiaozhiDevice.id)
        if not await self._admin(actor):
            query = query.where(XiaozhiDevice.user == actor)
        async with self.db.session() as session:
            return await viewed(session, await session.scalars(query), actor)

    async def remove(self, actor: str | None, ref: str) -> DeviceView:
        """Remove by numeric id or device id (owner or admin); the token stops working."""
        admin = await self._admin(actor)
        async with self.db.session() as session:
            row = await self._yours(session, actor, admin, ref)
            # Its owner's withdrawals listed as they remain (they are the owner's, not its).
            [view] = await viewed(session, [row], actor)
            await session.execute(delete(XiaozhiDevice).where(XiaozhiDevice.id == row.id))
            await _audit(session, actor, REMOVED, row, token=row.token_hash[:REMOVED_HASH])
            await session.commit()
        return view

    async def allow(self, actor: str, ref: str, *, allowed: bool = True) -> DeviceConsent:
        """The caller lets this device answer them by voiceprint (or, ``allowed=False``, stops).

        Anyone may allow any device id they name: it only ever shares the caller's own data,
        and only with that device's owner's rights or less. Its number names it only to its
        owner, an admin, or who allowed it already (numbers walked from 1 must not list every
        speaker's MAC and owner); and another's answer shows only the caller's own consent,
        not whose device it is (a MAC is no secret: the answer named the user behind any MAC).
        """
        admin = await self._admin(actor)
        # Read, then written back with the caller in or out: one writer at a time per owner
        # (their turn, then the row, on PostgreSQL; the write lock taken first on SQLite), or a
        # consent given at the same moment is lost.
        async with self.db.write_session() as session:
            row = await self._find(
                session,
                ref,
                lambda row: (
                    admin
                    or row.user == actor
                    or actor in (row.speakers or [])
                    or row.device_id in _device_keys(ref)
                ),
            )
            if row is None:
                raise DeviceNotFoundError(f"no device {said_back(ref, 64)}")
            if allowed and actor in await _withdrawn(session, row.user):
                # The owner's withdrawal stands until they undo it, on every device of theirs:
                # a re-allow (of this device or another of the owner's) undid it at once.
                # Said by role, not name (a withdrawn member still learns which MACs are the
                # owner's: docs/xiaozhi.md says so).
                raise DeviceRefusedError(Refusal(WITHDRAWN, device=row.device_id))
            names = set(row.speakers or [])
            names = names | {actor} if allowed else names - {actor}
            row.speakers = sorted(names - {row.user})
            action = "xiaozhi.device.allow" if allowed else "xiaozhi.device.disallow"
            await _audit(session, actor, action, row)
            await session.commit()
            speakers = row.speakers if admin or row.user == actor else [actor] if allowed else []
            return DeviceConsent(device_id=row.device_id, speakers=speakers, allowed=allowed)

    @classmethod
    async def _yours(
        cls, session: AsyncSession, actor: str | None, admin: bool, ref: str, hint: str = ""
    ) -> XiaozhiDevice:
        row = await cls._find(session, ref, lambda row: admin or row.user == actor)
        if row is None:
            raise DeviceNotFoundError(f"no device {said_back(ref, 64)} among yours{hint}")
        return row

    @staticmethod
    async def _find(
        session: AsyncSession, ref: str, known: Callable[[XiaozhiDevice], bool]
    ) -> XiaozhiDevice | None:
        """The one device ``ref`` names among those the caller may know (``known``); a
        reference naming several (one's number, another's device id) is refused."""
        named: ColumnElement[bool] = XiaozhiDevice.device_id.in_(_device_keys(ref))
        number = ref.strip()
        # A number the database cannot hold ('²' is a digit to isdigit, not to int) is no id.
        if number.isascii() and number.isdigit() and int(number) <= MAX_ID:
            named = or_(named, XiaozhiDevice.id == int(number))
        rows = (await session.scalars(select(XiaozhiDevice).where(named))).all()
        rows = sorted((row for row in rows if known(row)), key=lambda row: row.id)
        if len(rows) > 1:
            raise AmbiguousDeviceError(
                Refusal(
                    "%(ref)s names %(count)s devices: %(listing)s; nothing changed; "
                    "name the one you mean by a reference only it has",
                    ref=said_back(ref, 64),
                    count=len(rows),
                    listing=", ".join(f"device {row.id} ({row.device_id})" for row in rows),
                ),
                ref,
            )
        if not rows:
            return None
        # The owner's turn first, then the device: a withdrawal then locks all of the owner's
        # devices, and two through different devices of one owner deadlocked (each held its own).
        await _owner_turn(session, rows[0].user)
        again = select(XiaozhiDevice).where(XiaozhiDevice.id == rows[0].id)
        return await session.scalar(
            again.with_for_update().execution_options(populate_existing=True)
        )

    async def authenticate(self, device_id: str, token: str) -> XiaozhiDevice:
        """The device, if ``token`` is the token of one of its owner's devices.

        xiaozhi-server sends the same configured headers for every device it serves, and only
        ``device-id`` tells them apart: one token answers for all of its owner's speakers.
        Raises DeviceRefusedError for a token that is no device's, and DeviceNotFoundError,
        saying how to register it, for a device that is not one of the token owner's (one not
        registered yet, or someone else's: the same words for both).
        """
        try:
            mac = normalize_device_id(device_id)
        except InvalidDeviceError:
            mac = device_id.strip().lower()
        async with self.db.session() as session:
            holder = await session.scalar(
                select(XiaozhiDevice).where(XiaozhiDevice.token_hash == hash_token(token))
            )
            # The MAC as the firmware sends it, or as a row of an earlier release typed it.
            row = await session.scalar(
                select(XiaozhiDevice).where(XiaozhiDevice.device_id.in_(_notations(mac)))
            )
        if holder is None:
            raise DeviceRefusedError(
                "wrong device token: send the token shown when one of your devices was registered"
            )
        if row is None or holder.user != row.user:
            raise DeviceNotFoundError(
                f"device {mac} is not one of {holder.user}'s devices: register it"
                " (POST /xiaozhi/devices, or ambient xiaozhi device add)"
            )
        return row

    async def withdraw(self, actor: str | None, ref: str, speaker: str) -> DeviceView:
        """The device stops answering ``speaker``, whose consent its owner (or an admin) takes
        back: someone else's consent is theirs to give, the owner's speaker the owner's to keep."""
        # Naming oneself: one's own consent is withdrawn where it was given. Said to anyone who
        # names themself, whether the device exists or not.
        own = f"; to stop it answering you, DELETE /xiaozhi/devices/{ref[:64]}/allow"
        own += " (or Stop allowing on your settings page)"
        admin = await self._admin(actor)
        async with self.db.write_session() as session:
            row = await self._yours(session, actor, admin, ref, own if speaker == actor else "")
            if speaker not in (row.speakers or []):
                raise InvalidDeviceError(
                    Refusal(
                        NOT_ALLOWED,
                        speaker=said_back(speaker, 63),
                        device=row.device_id,
                        speakers=", ".join(row.speakers or []) or Refusal(N_("only its owner")),
                    )
                )
            # Withdrawn from the owner, not the one device: every device of theirs stops
            # answering them, and none (one added later too) may be allowed until let back.
            mine = select(XiaozhiDevice).where(XiaozhiDevice.user == row.user)
            mine = mine.order_by(XiaozhiDevice.id).with_for_update()
            for device in await session.scalars(mine):
                device.speakers = [name for name in device.speakers or [] if name != speaker]
            if speaker not in await _withdrawn(session, row.user):
                session.add(XiaozhiWithdrawal(owner=row.user, speaker=speaker))
            await _audit(session, actor, "xiaozhi.device.withdraw", row, speaker=speaker)
            await session.commit()
            return (await viewed(session, [row], actor))[0]

    async def let_back(self, actor: str | None, ref: str, speaker: str) -> DeviceView:
        """``speaker``, whose consent the owner (or an admin) withdrew, may allow the device
        again (owner or admin): their consent is still theirs to give."""
        admin = await self._admin(actor)
        async with self.db.write_session() as session:
            row = await self._yours(session, actor, admin, ref)
            await _let_back(session, actor, row.user, speaker, f"xiaozhi-device:{row.device_id}")
            return (await viewed(session, [row], actor))[0]

    async def let_back_from(self, actor: str | None, owner: str, speaker: str) -> Withdrawals:
        """`let_back` naming the owner, not a device: one with no device left may too."""
        if not owner:  # named by no one: not read as the caller, at any door
            raise UnknownOwnerError(owner)
        if actor != owner and not await self._admin(actor):
            raise DeviceRefusedError(Refusal(NOT_YOURS_TO_LET_BACK))
        async with self.db.write_session() as session:
            await UserRepository(session).existing(owner, UnknownOwnerError(owner))
            await _owner_turn(session, owner)
            await _let_back(session, actor, owner, speaker, f"xiaozhi-owner:{owner}")
            return Withdrawals(user=owner, withdrawn=await _withdrawn(session, owner))

    async def withdrawals(self, actor: str | None) -> builtins.list[Withdrawals]:
        """The caller's withdrawals (every owner's for an admin or the operator)."""
        query = select(XiaozhiWithdrawal).order_by(XiaozhiWithdrawal.owner, XiaozhiWithdrawal.id)
        if not await self._admin(actor):
            query = query.where(XiaozhiWithdrawal.owner == actor)
        by_owner: dict[str, list[str]] = {}
        async with self.db.session() as session:
            for gone in await session.scalars(query):
                by_owner.setdefault(gone.owner, []).append(gone.speaker)
        return [Withdrawals(user=o, withdrawn=sorted(names)) for o, names in by_owner.items()]


async def _owner_turn(session: AsyncSession, owner: str) -> None:
    """One writer at a time on ``owner``'s devices and withdrawals (PostgreSQL; SQLite's write
    session already holds the one write lock), taken before any of their rows is locked."""
    await take_turn(session, f"xiaozhi-owner:{owner}")


async def _let_back(
    session: AsyncSession, actor: str | None, owner: str, speaker: str, subject: str
) -> None:
    """Lift ``owner``'s withdrawal of ``speaker`` (refused when there is none), audited."""
    withdrawn = await _withdrawn(session, owner)
    if speaker not in withdrawn:
        raise InvalidDeviceError(
            Refusal(
                NOT_WITHDRAWN,
                speaker=said_back(speaker, 63),
                owner=owner,
                withdrawn=", ".join(withdrawn) or Refusal(N_("no one")),
            )
        )
    await session.execute(
        delete(XiaozhiWithdrawal).where(
            XiaozhiWithdrawal.owner == owner, XiaozhiWithdrawal.speaker == speaker
        )
    )
    await AuditRepository(session).append(
        actor=actor or OPERATOR,
        action="xiaozhi.device.let_back",
        subject=subject,
        detail={"user": owner, "speaker": speaker},
    )
    await session.commit()


async def _withdrawn(session: AsyncSession, owner: str) -> list[str]:
    """Whose consent ``owner``'s devices may not take until let back."""
    query = select(XiaozhiWithdrawal.speaker).where(XiaozhiWithdrawal.owner == owner)
    return sorted(await session.scalars(query))


# A removal's audit names the hash of the token it ended (its first hex digits): a form's
# token is not given again (`add`).
REMOVED, REMOVED_HASH = "xiaozhi.device.remove", 16


async def _removed_with(session: AsyncSession, mac: str, token_hash: str) -> bool:
    """Whether the device ``mac`` was removed holding the token hashed ``token_hash``."""
    removals = await session.scalars(
        select(AuditRecord.detail).where(
            AuditRecord.action == REMOVED, AuditRecord.subject == f"xiaozhi-device:{mac}"
        )
    )
    return any(detail.get("token") == token_hash[:REMOVED_HASH] for detail in removals)


async def _audit(
    session: AsyncSession, actor: str | None, action: str, row: XiaozhiDevice, **detail: Any
) -> None:
    await AuditRepository(session).append(
        actor=actor or OPERATOR,
        action=action,
        subject=f"xiaozhi-device:{row.device_id}",
        detail={"user": row.user, **detail},
    )
