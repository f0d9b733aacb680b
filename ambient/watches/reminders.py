"""Reminders and scheduled actions (Temporal Schedules), in the original config forms."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from croniter import CroniterError, croniter
from pydantic import Field, ValidationInfo, field_validator, model_validator
from temporalio.client import ScheduleActionStartWorkflow, ScheduleDescription
from temporalio.converter import DataConverter

from ambient.domain.configs import (
    UserConfig,
    read_stored,
    reading_stored,
    shows_nothing,
    unseen_codes,
)
from ambient.domain.notify import MAX_TARGETS, Target
from ambient.domain.users import TimeZone
from ambient.domain.workflow_input import WorkflowInput
from ambient.refusals import Refusal
from ambient.watches.configs import Count, Keyword, PageUrls
from ambient.watches.notification_spec import Notification

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CRON_FIELDS = "minute hour day-of-month month day-of-week"
# A fixed start (not the clock: the domain stays deterministic) to prove a cron ever fires.
_CRON_PROBE_START = datetime(2026, 1, 1)


# One item of a cron field as Temporal's schedules read it: *, a number or a three-letter name,
# a range, a step. croniter also takes L, W, # and ?, which a schedule refuses or misreads.
_CRON_ITEM = re.compile(r"(\*|(\d+|[a-z]{3})(-(\d+|[a-z]{3}))?)(/\d+)?", re.IGNORECASE)
# Names as a schedule numbers them (Sunday 0: it ends no range but its own).
_NUMBERED = {day: n for n, day in enumerate(("sun", *DAYS[:6]))} | {
    month: n for n, month in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)
}


def check_cron(expression: str, *, stored: bool = False) -> str:
    """A five-field cron expression that parses, fires at least once and means to a Temporal
    schedule what it says (``stored``: a schedule's own, read as it runs)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} is not a five-field cron expression ({CRON_FIELDS}), "
            "e.g. '0 9 * * 1-5'"
        )
    try:
        croniter(expression, _CRON_PROBE_START).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(
            f"{expression!r} is not a valid cron expression ({CRON_FIELDS}): {exc}"
        ) from None
    for item in (item for field in fields for item in field.split(",") if not stored):
        if not (match := _CRON_ITEM.fullmatch(item)):
            raise ValueError(
                f"{expression!r}: {item!r} is not supported (numbers, three-letter names, "
                "ranges, lists and steps only: no L, W, # or ?), e.g. '0 9 * * 1-5'"
            )
        if match[4] and _number(match[4]) < _number(match[2]):
            # A schedule's ranges only go up: its create refused this with a raw RPC error.
            raise ValueError(
                f"{expression!r}: {item!r} runs backwards (ranges go up, e.g. 'mon-fri'); "
                "write it as a list, e.g. 'sat,sun' or '22-23,0-2'"
            )
    return " ".join(fields)


def schedule_crons(expression: str) -> list[str]:
    """A checked cron as a Temporal schedule's crons, meaning what cron means by it."""
    minute, hour, day, month, weekday = expression.split()
    # A weekday step from a start ends at Saturday; a schedule's goes on to 7 (Sunday again).
    # Cron's 7 is Sunday: "7/2" starts at 0 (as "7-6/2", a schedule refused it at create).
    weekday = re.sub(
        r"(?<![-\w])(\d+|[a-z]{3})/",
        lambda start: f"{_number(start[1]) % 7}-6/",
        weekday,
        flags=re.IGNORECASE,
    )
    if "*" in (day, weekday):
        return [f"{minute} {hour} {day} {month} {weekday}"]
    # Cron runs on either day field when both are given; a schedule's cron needs both to match.
    return [f"{minute} {hour} {day} {month} *", f"{minute} {hour} * {month} {weekday}"]


def _number(value: str) -> int:
    return int(value) if value.isdigit() else _NUMBERED.get(value.lower(), 0)


class ReminderConfig(UserConfig):
    """daily / weekly at hh:mm in a time zone, or cron; runs a message or a named action.

    ``type`` and ``action`` follow from the fields given when they are left out (a ``cron``
    makes a cron schedule, ``days`` a weekly one, ``news_urls`` a news digest): an agent or a
    voice model writes ``{"message": ..., "cron": ...}`` and means the cron. A field that
    belongs to another type or action than the one given is refused by name, never ignored.
    """

    type: Literal["daily", "weekly", "cron"] = Field(
        default="daily", description="daily, weekly (with days) or cron (with cron)"
    )
    hour: Count = Field(default=8, ge=0, le=23, description="hour of the day, 0-23")
    minute: Count = Field(default=0, ge=0, le=59, description="minute, 0-59")
    days: list[str] = Field(default_factory=list, max_length=7, description="weekly: mon..sun")
    cron: str | None = Field(
        default=None, max_length=200, description="five-field cron, e.g. '0 8 * * 1-5'"
    )
    timezone: TimeZone = Field(
        default="Asia/Shanghai", description="IANA time zone; left out: the user's own"
    )
    action: Literal["reminder", "news_digest"] = Field(
        default="reminder", description="reminder (send message) or news_digest"
    )
    message: str = Field(default="", max_length=2000, description="the reminder text")
    news_urls: PageUrls = Field(
        default_factory=list, max_length=50, description="news_digest: pages to digest, 1-50"
    )
    categories: list[Keyword] = Field(
        default_factory=list,
        max_length=20,
        description="news_digest: categories to keep, keywords as a web monitor's",
    )
    notification: Notification = None
    targets: list[Target] = Field(
        default_factory=list, max_length=MAX_TARGETS, description="extra notification targets"
    )

    @model_validator(mode="before")
    @classmethod
    def _implied(cls, data: Any) -> Any:
        """The type and action the given fields imply, when they were left out."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("type") is None:
            if data.get("cron") is not None:
                data["type"] = "cron"
            elif data.get("days"):
                data["type"] = "weekly"
            else:
                data.pop("type", None)
        if data.get("action") is None:
            if data.get("news_urls") and not data.get("message"):
                data["action"] = "news_digest"
            else:
                data.pop("action", None)
        if data.get("type") == "cron" and isinstance(cron := data.get("cron"), str):
            # A cron's own time of day as its config shows it (`shown`), sent back whole (a
            # config read, then written with another field changed): not a time of its own.
            at = dict(zip(("hour", "minute"), cron_time(cron) or (), strict=False))
            for field, value in at.items():
                if type(data.get(field)) is int and data[field] == value:
                    del data[field]
        return data

    @field_validator("hour", "minute")
    @classmethod
    def _clock(cls, value: int, info: ValidationInfo) -> int:
        # Fields are validated in declaration order: `type` is already in `info.data`.
        default = cls.model_fields[str(info.field_name)].default
        if info.data.get("type") == "cron" and value != default:
            raise ValueError(
                "a cron schedule takes its times from `cron`; leave hour and minute out, "
                "or use type 'daily' or 'weekly'"
            )
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("type", "cron") != "cron":
            raise ValueError(
                f"a cron expression is only for type 'cron', not {info.data['type']!r}; "
                "set type to 'cron' (or leave type out), or give hour and minute instead"
            )
        return check_cron(value, stored=reading_stored(info))

    @field_validator("days")
    @classmethod
    def _days(cls, values: list[str], info: ValidationInfo) -> list[str]:
        # A day's name or its start ("tues"), never a word that only begins like one ("month").
        names = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        days = [value.lower()[:3] for value in values]
        unknown = [
            v for v in values if len(v) < 3 or not any(n.startswith(v.lower()) for n in names)
        ]
        if unknown:
            raise ValueError(f"unknown days {unknown}; use {', '.join(DAYS)}")
        kind = info.data.get("type", "weekly")
        if days and kind != "weekly":
            hint = "put them in the cron expression" if kind == "cron" else "use type 'weekly'"
            raise ValueError(f"days are only for type 'weekly', not {kind!r}: {hint}")
        return days

    @field_validator("message")
    @classmethod
    def _message(cls, value: str, info: ValidationInfo) -> str:
        if value and shows_nothing(value) and not reading_stored(info):
            if value.isspace():
                raise ValueError("only spaces: a reminder says its text, so write one")
            raise Refusal(
                "only invisible characters (%(codes)s): a reminder says its text, so write one",
                codes=unseen_codes(value),
            )
        if value and info.data.get("action") == "news_digest":
            raise ValueError(
                "a news digest sends the digest of news_urls, not a message; leave message "
                "out, or use action 'reminder'"
            )
        return value

    @field_validator("news_urls", "categories")
    @classmethod
    def _digest_only(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        if value and info.data.get("action", "news_digest") != "news_digest":
            raise ValueError(
                f"{info.field_name} are only for action 'news_digest', not "
                f"{info.data['action']!r}; set action to 'news_digest' (or leave action out)"
            )
        return value

    @model_validator(mode="after")
    def _shape(self) -> ReminderConfig:
        if self.type == "cron" and not self.cron:
            raise ValueError("cron: a five-field cron expression is required for type 'cron'")
        if self.type == "weekly" and not self.days:
            raise ValueError("days: give at least one day for a weekly schedule")
        if self.action == "news_digest" and not self.news_urls:
            raise ValueError("news_urls: a news digest needs at least one URL")
        if self.action == "reminder" and not self.message:
            raise ValueError("message: a reminder needs a message")
        return self


class NewsDigestConfig(UserConfig):
    """The original news_digest task: pages to digest daily at an hour."""

    news_urls: PageUrls = Field(
        min_length=1, max_length=50, description="pages to digest: http(s) URLs, 1-50"
    )
    hour: Count = Field(default=8, ge=0, le=23, description="hour of the day, 0-23")
    minute: Count = Field(default=0, ge=0, le=59, description="minute, 0-59")
    categories: list[Keyword] = Field(
        default_factory=list,
        max_length=20,
        description="categories to keep, keywords as a web monitor's",
    )
    timezone: TimeZone = Field(
        default="Asia/Shanghai", description="IANA time zone; left out: the user's own"
    )
    notification: Notification = None

    def as_reminder(self) -> ReminderConfig:
        """The same digest as a daily schedule's config (every field is one of its fields)."""
        return ReminderConfig(type="daily", action="news_digest", **self.model_dump())


class ReminderRun(WorkflowInput):
    user: str
    task: str
    config: ReminderConfig
    # The schedule's life (a create's; kept by its updates): a digest's pages are stored under
    # it, so a run of a deleted life that stores a page late is not a new life's last look.
    # None: a schedule created before lives were kept, its pages stored under its task.
    life: str | None = None

    @property
    def pages_key(self) -> str:
        """The task a digest's page texts are stored under: beside the task's own, as a round's
        are (`ambient.storage.polls.with_rounds` reads and purges them with the task's)."""
        return f"{self.task}/life-{self.life}" if self.life else self.task

    @field_validator("config", mode="before")
    @classmethod
    def _as_it_ran(cls, value: Any) -> Any:
        """A schedule stored before contradictions were refused, read as it ran: the fields
        its type or action ignored, or no config has, are dropped so its runs still start."""
        if not isinstance(value, dict):
            return value
        value = dict(value)
        kind, action = value.get("type") or "daily", value.get("action") or "reminder"
        if kind == "daily" and value.get("days"):
            value["type"] = "weekly"  # the calendar spec applied the days
        for name in unused_by(kind, action):
            value.pop(name, None)
        return read_stored(ReminderConfig, value)


def unused_by(kind: str, action: str) -> tuple[str, ...]:
    """The fields a schedule of this type and action has no use for."""
    unused = {"cron": ("hour", "minute", "days"), "weekly": ("cron",)}.get(kind, ("cron", "days"))
    return unused + (("news_urls", "categories") if action == "reminder" else ("message",))


def retyped(patch: Mapping[str, Any], whole: Mapping[str, Any]) -> dict[str, Any]:
    """A reminder's config ``whole`` that ``patch`` was merged into: its type follows from the
    patch's fields when the patch leaves it out (a cron sent makes a cron schedule, days a
    weekly one, as in a new config), and the stored fields its type and action have no use for
    are dropped (a weekly made daily loses its days; a cron made daily or weekly keeps its
    one time of day as hour and minute); a field sent stays, to be refused by name. Every
    other stored field stays, refused by name if it is refused now."""
    out = dict(whole)
    if "type" not in patch:
        if patch.get("cron") is not None:
            out["type"] = "cron"
        elif patch.get("days"):
            out["type"] = "weekly"
    kind = out.get("type") or "daily"
    cron = out.get("cron") if "cron" not in patch else None
    at = re.fullmatch(r"(\d{1,2}) (\d{1,2}) \* \* \S+", cron.strip()) if cron else None
    if kind != "cron" and at:
        # A cron's one time of day is the new type's ("0 7 * * 1-5" made weekly: 07:00),
        # not the default 08:00 its unused hour and minute held; a field sent is as sent.
        for field, value in (("minute", at[1]), ("hour", at[2])):
            sent = patch.get(field)
            out[field] = int(value) if sent is None else sent
    unused = unused_by(kind, out.get("action") or "reminder")
    return {key: value for key, value in out.items() if key not in unused or key in patch}


def cron_time(cron: str | None) -> tuple[int, int] | None:
    """The one time of day a cron runs at, (hour, minute): its minute and hour fields are
    each one number ("0 7 * * 1-5"); None when it runs at several or none is fixed."""
    fields = (cron or "").split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit():
        return int(fields[1]), int(fields[0])
    return None


def shown(config: ReminderConfig) -> dict[str, Any]:
    """A reminder's config as every door shows it (get_task, an update's answer, and what an
    update compares and names in ``changed``): a cron one's hour and minute are the cron's own
    time of day, or left out when it has none; never the unused defaults it holds (08:00,
    read as the time it runs at). Sent back whole, they are taken as its own (`_implied`)."""
    said = config.model_dump(mode="json")
    if config.type == "cron":
        if (at := cron_time(config.cron)) is None:
            del said["hour"], said["minute"]
        else:
            said["hour"], said["minute"] = at
    return said


async def stored_run(
    converter: DataConverter, description: ScheduleDescription
) -> ReminderRun | None:
    """The reminder run a schedule starts, read as stored (None: no such action)."""
    action = description.schedule.action
    if not (isinstance(action, ScheduleActionStartWorkflow) and action.args):
        return None
    # A described schedule carries raw payloads: decoded with our converter.
    (run,) = await converter.decode(action.args[:1], [ReminderRun])
    return run
