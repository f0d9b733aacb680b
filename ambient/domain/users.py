"""Users as the product sees them: identity, voice assistant settings, roles and permissions.

Two kinds of fields: settings a user changes for themselves (`UserSettings`) and grants only an
admin (or an operator with the database, `ambient user grant`) changes (`Grant`: role and
rollback permission). The split is in the types so no self-service path can carry a grant.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache
from typing import Annotated, Self
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from ambient.discussions.rules import PRODUCT_AGENTS
from ambient.domain.configs import UserConfig
from ambient.refusals import N_, Refusal, said_back

# Checked with fullmatch: re's "$" also matches before a final "\n" ("eve\n" was a user).
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MAX_USER_NAME = 63  # _NAME's most, the users table's column
# What people write between a phone number's digits.
PHONE_JUNK = re.compile(r"[\s().-]")
# With its country code: gateways put "+" before the digits (Apprise), so a number written
# without one (13800000000) would go to another country (+1 380...).
PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
# A user name as a filter (query parameters): the same format, checked where it arrives.
UserName = Annotated[str, StringConstraints(pattern=_NAME.pattern)]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# The audit log's actors that are no user: the operator's CLI, open registration, a
# remediation's own decisions. A user so named would pass for them in every record.
# The audit actor for changes made with direct database access (the `ambient user` CLI).
OPERATOR = "operator"
SYSTEM_ACTORS = frozenset({OPERATOR, "open-registration", "remediation"})
# What a voice model writes for a speaker's owner where no voiceprint names anyone
# (ambient.speakers): as one user's voiceprint id or name it was that user for every speaker,
# whose own owner was then answered as a stranger.
ROLE_WORDS = frozenset({"owner", "主人"})
MAX_VOICEPRINT = 128  # the users table's column


class RollbackPermission(StrEnum):
    NONE = "none"
    DRY_RUN = "dry_run"
    EXECUTE = "execute"


class Role(StrEnum):
    """An admin registers users and grants; a member changes only its own settings."""

    ADMIN = "admin"
    MEMBER = "member"


class Language(StrEnum):
    """The language of a user's pages (and of what the pages say back)."""

    ZH = "zh"
    EN = "en"


# Fields only an admin changes; named in refusals so the caller knows whom to ask.
GRANTED_FIELDS = ("role", "rollback_permission")


# What a user's or a task's name may be (their patterns alike), as every door refuses one.
NAME_RULE = N_(
    "must be 1-63 characters of lowercase letters, digits, '_', '.', '-', "
    "starting with a letter or digit"
)


def validate_user_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise Refusal(NAME_RULE)
    if value == "me":
        # /users/me is the caller: a user named "me" could not be addressed by name.
        raise Refusal("'me' is reserved (it means the caller in /users/me)")
    # The product's agents too: on the discussion bus a person's id is their name.
    if value in SYSTEM_ACTORS | PRODUCT_AGENTS.keys():
        raise Refusal(
            "%(name)s is reserved: the product itself speaks so (audit log, discussions)",
            name=repr(value),
        )
    if value in ROLE_WORDS:  # a name speaks for its user as a voiceprint id does
        raise Refusal(
            "%(name)s is reserved: a voice model calls a speaker's owner so", name=repr(value)
        )
    return value


def validate_voiceprint(value: str) -> str:
    """A voiceprint id as stored. It is matched in any case (ambient.speakers) by the
    database's lower(), which folds ASCII alone (SQLite): one holding capitals beyond ASCII is
    kept in lower case, or 'JOSÉ' was no voice of its user's and 'josé' free for another."""
    if any(not c.isascii() and c.lower() != c for c in value):
        value = value.lower()
    if len(value) > MAX_VOICEPRINT:  # lower() can lengthen it ('İ')
        raise Refusal("at most %(most)s characters in lower case", most=MAX_VOICEPRINT)
    if value.lower() in ROLE_WORDS:
        raise Refusal(
            "%(voiceprint)s cannot be used as a voiceprint id: a voice model calls a speaker's "
            "owner so",
            voiceprint=repr(value),
        )
    return value


def validate_hhmm(value: str) -> str:
    if not _HHMM.fullmatch(value):
        raise Refusal("must be a time as HH:MM (24-hour), e.g. 06:00")
    return value


def phone_problem(value: str) -> Refusal | None:
    if PHONE.fullmatch(PHONE_JUNK.sub("", value)):
        return None
    return Refusal(
        "not a phone number: %(value)s (international form, e.g. +8613800000000)",
        value=repr(value),
    )


def validate_phone(value: str) -> str:
    if problem := phone_problem(value):
        raise problem
    return value


# The zone names, listed once a process: available_timezones() lists the zone folders (~600
# files, ~10 ms of CPU) on every call, and a briefing or reminder config checks its zone each
# time it is decoded (every workflow task that reads one).
_zones = cache(available_timezones)


def validate_timezone(value: str) -> str:
    if value not in _zones():
        zone = said_back(value, 40)  # as far as a zone name could go
        raise Refusal("unknown IANA time zone %(zone)s; e.g. Asia/Shanghai, UTC", zone=zone)
    return value


# A user's briefing times unless they choose others (the users table's defaults).
BRIEFING_TIMES = {
    "briefing_prepare_at": "05:00",
    "briefing_window_start": "06:00",
    "briefing_window_end": "10:00",
}


def briefing_times_refused(times: dict[str, str], given: set[str]) -> tuple[str, Refusal] | None:
    """Why a user's briefing times could not make a briefing (as a briefing's own config
    checks them), and the field to blame: the one ``given`` if it was, else the one it met."""
    prepare, start, end = (times[field] for field in BRIEFING_TIMES)
    if end <= start:
        field = "briefing_window_end" if "briefing_window_end" in given else "briefing_window_start"
        return field, Refusal(
            "the greeting window ends (%(end)s) before it starts (%(start)s); "
            "give briefing_window_end later than briefing_window_start",
            end=end,
            start=start,
        )
    if prepare > start:
        field = "briefing_prepare_at" if "briefing_prepare_at" in given else "briefing_window_start"
        return field, Refusal(
            "preparation (%(prepare)s) must be at or before the greeting window's start "
            "(%(start)s) so the briefing is ready when the user arrives",
            prepare=prepare,
            start=start,
        )
    return None


# Words said to the speaker or by it (a wake word, the assistant's name): spaces around them are
# no part of them.
Spoken = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


def once_each(words: list[str] | None) -> list[str] | None:
    """Wake words each said once: the same again (whatever its case or spacing) is refused."""
    seen: set[str] = set()
    for word in words or ():
        if (said := " ".join(word.casefold().split())) in seen:
            raise Refusal('"%(word)s" is given twice', word=word)
        seen.add(said)
    return words


# A time of day as HH:MM and an IANA time zone, checked wherever a config or setting takes one.
HHMM = Annotated[str, AfterValidator(validate_hhmm)]
TimeZone = Annotated[str, AfterValidator(validate_timezone)]
Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(validate_phone)]


class UserSettings(UserConfig):
    """The settings a user may change for themselves; every field optional on update (a setting
    under another name is refused by it, not dropped)."""

    email: EmailStr | None = None
    # Texted by the SMS channel: in the form its gateways read (a stored one is checked at send).
    phone: Phone | None = None
    # Each one a phrase said to the speaker, as short as its assistant's name.
    wake_words: Annotated[list[Spoken] | None, AfterValidator(once_each)] = Field(
        default=None, max_length=10
    )
    # Spoken and shown as the assistant's name.
    assistant_name: Spoken | None = None
    # Matched trimmed, as a speaker's name is (ambient.speakers): stored trimmed too.
    voiceprint_id: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_VOICEPRINT),
            AfterValidator(validate_voiceprint),
        ]
        | None
    ) = None
    timezone: TimeZone | None = None
    briefing_prepare_at: HHMM | None = None
    briefing_window_start: HHMM | None = None
    briefing_window_end: HHMM | None = None
    # None on a user: not chosen, so the server's AMBIENT_DEFAULT_LANGUAGE.
    language: Language | None = None


# Settings a user may empty (null on update clears them); the others keep their value on null.
# language: back to not chosen (the browser's, else the server's default language).
CLEARABLE_SETTINGS = frozenset({"email", "phone", "voiceprint_id", "language"})


class Grant(UserConfig):
    """A change of role and/or rollback permission, made by an admin for another user."""

    role: Role | None = None
    rollback_permission: RollbackPermission | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.role is None and self.rollback_permission is None:
            raise ValueError("give role and/or rollback_permission")
        return self


class UserCreate(UserSettings):
    name: Annotated[str, AfterValidator(validate_user_name)]
    # Only an admin's registration may set these (open registration creates plain members).
    role: Role = Role.MEMBER
    rollback_permission: RollbackPermission = RollbackPermission.DRY_RUN


class UserPublic(BaseModel):
    name: str
    role: Role
    email: str | None
    phone: str | None
    rollback_permission: RollbackPermission
    wake_words: list[str]
    assistant_name: str
    voiceprint_id: str | None
    timezone: str
    briefing_prepare_at: str
    briefing_window_start: str
    briefing_window_end: str
    language: Language | None = Field(
        default=None, description="zh or en; null: not chosen, the server's default language"
    )
    push_config: dict[str, object]
    voice_token: bool = Field(
        default=False, description="a voice token is issued (it opens /mcp/voice only)"
    )


class Granted(BaseModel):
    user: UserPublic
    changes: dict[str, dict[str, str]] = Field(
        description="field -> {old, new}; empty when the values were already so"
    )
