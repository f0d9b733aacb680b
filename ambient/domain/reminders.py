"""Reminders and scheduled actions (Temporal Schedules), in the original config forms."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from croniter import CroniterError, croniter
from pydantic import BaseModel, Field, field_validator, model_validator

from ambient.domain.notify import Target
from ambient.domain.users import validate_timezone
from ambient.domain.watches import MAX_TARGETS, Count, NotificationSpec, ShortText, WebUrl

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CRON_FIELDS = "minute hour day-of-month month day-of-week"
# A fixed start (not the clock: the domain stays deterministic) to prove a cron ever fires.
_CRON_PROBE_START = datetime(2026, 1, 1)


def check_cron(expression: str) -> str:
    """A five-field cron expression that parses and fires at least once."""
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
    return " ".join(fields)


class ReminderConfig(BaseModel):
    """daily / weekly at hh:mm in a time zone, or cron; runs a message or a named action."""

    type: Literal["daily", "weekly", "cron"] = Field(
        default="daily", description="daily, weekly (with days) or cron (with cron)"
    )
    hour: Count = Field(default=8, ge=0, le=23, description="hour of the day, 0-23")
    minute: Count = Field(default=0, ge=0, le=59, description="minute, 0-59")
    days: list[str] = Field(default_factory=list, max_length=7, description="weekly: mon..sun")
    cron: str | None = Field(
        default=None, max_length=200, description="five-field cron, e.g. '0 8 * * 1-5'"
    )
    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone")
    action: Literal["reminder", "news_digest"] = Field(
        default="reminder", description="reminder (send message) or news_digest"
    )
    message: str = Field(default="", max_length=2000, description="the reminder text")
    news_urls: list[WebUrl] = Field(
        default_factory=list, max_length=50, description="news_digest: pages to digest, 1-50"
    )
    categories: list[ShortText] = Field(
        default_factory=list, max_length=20, description="news_digest: categories to keep"
    )
    notification: NotificationSpec | None = Field(
        default=None, description="the original form: {method, target | email | phone_number}"
    )
    targets: list[Target] = Field(
        default_factory=list, max_length=MAX_TARGETS, description="extra notification targets"
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return validate_timezone(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("days")
    @classmethod
    def _days(cls, values: list[str]) -> list[str]:
        days = [value.lower()[:3] for value in values]
        unknown = [value for value in days if value not in DAYS]
        if unknown:
            raise ValueError(f"unknown days {unknown}; use {', '.join(DAYS)}")
        return days

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


class NewsDigestConfig(BaseModel):
    """The original news_digest task: pages to digest daily at an hour."""

    news_urls: list[WebUrl] = Field(
        min_length=1, max_length=50, description="pages to digest: http(s) URLs, 1-50"
    )
    hour: Count = Field(default=8, ge=0, le=23, description="hour of the day, 0-23")
    minute: Count = Field(default=0, ge=0, le=59, description="minute, 0-59")
    categories: list[ShortText] = Field(
        default_factory=list, max_length=20, description="categories to keep"
    )
    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone")
    notification: NotificationSpec | None = Field(
        default=None, description="the original form: {method, target | email | phone_number}"
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return validate_timezone(value)

    def as_reminder(self) -> ReminderConfig:
        return ReminderConfig(
            type="daily",
            hour=self.hour,
            minute=self.minute,
            timezone=self.timezone,
            action="news_digest",
            news_urls=self.news_urls,
            categories=self.categories,
            notification=self.notification,
        )


class ReminderRun(BaseModel):
    user: str
    task: str
    config: ReminderConfig
