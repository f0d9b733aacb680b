"""Who is speaking to a 小智 speaker: the voiceprint name a model passes, resolved against the
device owner's account. Another user is answered only if they allowed one of the owner's
devices (`ambient.xiaozhi`), and only with rights the owner has too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.domain.users import ROLE_WORDS
from ambient.refusals import N_
from ambient.remediation.safety import PERMISSION_ORDER
from ambient.storage import Database
from ambient.storage.models import User, XiaozhiDevice
from ambient.storage.users import UserRepository, voiced_by


class SpeakerKind(StrEnum):
    OWNER = "owner"  # nobody named, or the owner named themself
    # A voiceprint's mark for a voice it did not match ("未知", "主人") on a device that answers
    # others (a colleague allowed it) while the owner has no voiceprint id: the owner's own voice
    # or a stranger's, no one can tell. Read as the owner; refused a tool that acts.
    UNMATCHED = "unmatched"
    # Nobody named where the owner set a voiceprint id (their voice comes by that name), on a
    # call naming no device: maybe a voice the voiceprint did not match, the model leaving the
    # name out. Read as the owner; refused a tool that acts. A xiaozhi.me 接入点's call names
    # its device and never a voice (no voiceprint there): the owner's.
    UNNAMED = "unnamed"
    ALLOWED = "allowed"  # another user who allowed one of the owner's devices
    UNKNOWN = "unknown"  # a name no user has, or one who did not allow the owner's device
    BEYOND = "beyond"  # a user who would have rights the owner lacks
    NO_ACCOUNT = "no_account"  # the owner itself is no user (a misspelt `--user`, one removed)


# Said wherever a device's speakers are listed (API, CLI, the settings page's card) while they
# make a mark like "未知" UNMATCHED: the owner told why their speaker may stop acting for them.
UNMATCHED_WARNING = N_(
    "Without your voiceprint id, a voice it does not match may be yours or a stranger's: it is "
    "told what only reads (your errors, your tasks), and may not act for you (approve, refuse, "
    "pause, resume, the greeting). Set your voiceprint id in your settings (then a voice it does "
    "not name may not act either), or stop answering the others."
)
# The same to an admin about another's devices, or to the operator's CLI: whose, and what to run.
UNMATCHED_WARNING_OTHERS = N_(
    "%(owner)s has no voiceprint id and a device of theirs answers others: a voice it does not "
    "match may be theirs or a stranger's, told what only reads and refused what acts for them. "
    "They set their voiceprint id in their settings (then a voice it does not name may not act "
    "either), or their devices stop answering the others "
    "(DELETE /xiaozhi/devices/{MAC}/speakers/{name}, or ambient xiaozhi device withdraw MAC NAME)."
)


@dataclass(frozen=True)
class Speaker:
    kind: SpeakerKind
    user: User | None  # the account to act as; None for UNKNOWN / BEYOND / NO_ACCOUNT


def _within(speaker: User, owner: User, approvers: Mapping[str, list[str]]) -> bool:
    """The speaker's rights are no more than the owner's: role, rollback permission, and the
    clusters the approval policy (AMBIENT_REMEDIATION_APPROVERS) names them an approver for."""
    if not owner.is_admin:  # an admin sees and steers every run already
        if speaker.is_admin:
            return False
        if any(speaker.name in names and owner.name not in names for names in approvers.values()):
            return False
    return PERMISSION_ORDER.get(speaker.rollback_permission, 0) <= PERMISSION_ORDER.get(
        owner.rollback_permission, 0
    )


NO_SPEAKER = frozenset(
    {"", "null", "none", "nil", "n/a", "unknown", "user", "speaker", "me", "用户", "我", "未知"}
)
# ROLE_WORDS: "主人" (the owner) is what a model writes when its role prompt calls the user so
# and no voiceprint names anyone (xiaozhi.me passes none): refusing it refused the owner. No
# user may now take it as a voiceprint id or name (one called so before is that user).
# What xiaozhi-server's voiceprint says of a voice it did not match ("未知说话人"), as a model
# passes it on, shortened or translated. The whole mark, "陌生人" and "stranger" name no user
# and are refused always; "未知", "unknown", "主人" and "owner" are the owner's filler too, and
# get what resolve_speaker says.
UNKNOWN_VOICE = frozenset(
    {"未知", "未知说话人", "未知用户", "陌生人", "unknown", "unknown speaker", "stranger"}
)
# The assistant's name where a user set none, and how a model spells it in Latin letters.
DEFAULT_ASSISTANT = "小智"
_ASSISTANT_SPELLINGS = {DEFAULT_ASSISTANT: {"xiaozhi", "xiao zhi"}}


def names_no_speaker(speaker: str | None, assistant: str | None, described_as: str = "") -> bool:
    """True when a model's ``speaker`` argument names nobody: a placeholder ("unknown"), the
    assistant itself however repeated or spelt ("小智小智", "xiaozhi"), or words copied from
    the argument's own description (a small model filled "声纹认出的人名", docs/benchmarks.md).
    Such a call is the owner's, not a stranger's to refuse."""
    key = (speaker or "").strip().lower()
    name = (assistant or "").strip().lower()
    return (
        key in NO_SPEAKER
        or (bool(name) and key.replace(name, "") == "")
        or key in _ASSISTANT_SPELLINGS.get(name, set())
        or (len(key) >= 2 and key in described_as.lower())
    )


async def resolve_speaker(
    db: Database,
    owner: str,
    speaker: str | None,
    described_as: str = "",
    *,
    approvers: Mapping[str, list[str]],
    device: str = "",
) -> Speaker:
    """Who the voiceprint name ``speaker`` is, as far as the ``owner``'s endpoint may tell.

    Matched against a user's voiceprint id or user name (case-insensitive). Another user is
    answered only if they allowed one of the owner's devices, and only with rights the owner
    has too: a speaker never gains rights through someone else's speaker. ``device``: the
    device the call names (a xiaozhi.me broker's ``clientId``), "" when none.
    """
    async with db.session() as session:
        users = UserRepository(session)
        if (account := await users.get(owner)) is None:
            return Speaker(SpeakerKind.NO_ACCOUNT, None)
        if device:
            # A xiaozhi.me broker's call names its device, never a voice: there is no voiceprint
            # there, and the name is what the model wrote ("我是梅" said by anyone near the
            # speaker, or the owner's own spoken name). It is the owner's, whatever it names:
            # a name answered another user who had allowed one of the owner's devices.
            return Speaker(SpeakerKind.OWNER, account)
        key = (speaker or "").strip().lower()
        assistant = account.assistant_name or DEFAULT_ASSISTANT
        # "未知" / "unknown" / "主人" / "owner", by the owner's settings alone (docs/xiaozhi.md):
        # the owner set a voiceprint id: a stranger (the owner's voice comes by that id). None
        # set: the owner where no device of theirs answers anyone else, else UNMATCHED (read as
        # the owner, acting refused; see _nobody_named). Another's consent is not the owner's
        # choice and never makes the owner a stranger.
        if (key in UNKNOWN_VOICE or key in ROLE_WORDS) and account.voiceprint_id:
            return Speaker(SpeakerKind.UNKNOWN, None)
        # xiaozhi-server's own marks for a voice it did not match ("未知说话人", "stranger"), no
        # model's filler: a stranger always, never a user who took one as a name or voiceprint.
        if key in UNKNOWN_VOICE - NO_SPEAKER:
            return Speaker(SpeakerKind.UNKNOWN, None)
        # A model that knows no voiceprint name fills the argument with a placeholder or the
        # assistant's own name ("null", "user", "小智"): that is no speaker named, not a stranger.
        if names_no_speaker(speaker, assistant):
            return await _nobody_named(session, account, key)
        found = list(await session.scalars(select(User).where(voiced_by(key))))
        # Words copied from the argument's description name nobody, unless someone is called
        # so: a colleague's voiceprint "Nam" is inside "name", and is them, not the owner.
        if not found and (key in ROLE_WORDS or names_no_speaker(speaker, assistant, described_as)):
            return await _nobody_named(session, account, key)
        if len(found) != 1:
            return Speaker(SpeakerKind.UNKNOWN, None)
        person = found[0]
        if person.name == owner:
            return Speaker(SpeakerKind.OWNER, account)
        mine = select(XiaozhiDevice).where(XiaozhiDevice.user == owner)
        if not any(person.name in (d.speakers or []) for d in await session.scalars(mine)):
            return Speaker(SpeakerKind.UNKNOWN, None)
        if not _within(person, account, approvers):
            return Speaker(SpeakerKind.BEYOND, None)
        return Speaker(SpeakerKind.ALLOWED, person)


async def _nobody_named(session: AsyncSession, owner: User, key: str) -> Speaker:
    """A call naming nobody is the owner's. But where the owner's device answers others and the
    owner enrolled no voiceprint id, xiaozhi-server's voiceprint may be on: its mark for a voice
    it did not match, as a model words it ("未知", "unknown", "主人"), is then the owner's or a
    stranger's, no one can tell (UNMATCHED). With a voiceprint id set, the owner's voice is
    named by it: nobody named is UNNAMED. (A xiaozhi.me broker's call is the owner's before
    any of this: ``resolve_speaker``.)"""
    if owner.voiceprint_id:
        return Speaker(SpeakerKind.UNNAMED, owner)
    if key in UNKNOWN_VOICE or key in ROLE_WORDS:
        consents = select(XiaozhiDevice.speakers).where(XiaozhiDevice.user == owner.name)
        if any(await session.scalars(consents)):
            return Speaker(SpeakerKind.UNMATCHED, owner)
    return Speaker(SpeakerKind.OWNER, owner)
