"""Reminders and scheduled actions (Temporal Schedules), in the original config forms."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

from ambient.domain.notify import Target
from ambient.domain.users import validate_timezone
from ambient.domain.watches import NotificationSpec

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ReminderConfig(BaseModel):
    """daily / weekly at hh:mm in a time zone, or cron; runs a message or a named action."""

    type: Literal["daily", "weekly", "cron"] = "daily"
    hour: int = Field(default=8, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    days: list[str] = Field(default_factory=list, description="weekly: mon..sun")
    cron: str | None = Field(default=None, description="five-field cron, e.g. '0 8 * * 1-5'")
    timezone: str = "Asia/Shanghai"
    action: Literal["reminder", "news_digest"] = "reminder"
    message: str = Field(default="", max_length=2000)
    news_urls: list[HttpUrl] = Field(default_factory=list, max_length=50)
    categories: list[str] = Field(default_factory=list)
    notification: NotificationSpec | None = None
    targets: list[Target] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return validate_timezone(value)

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
        if self.type == "cron" and not (self.cron and len(self.cron.split()) == 5):
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

    news_urls: list[HttpUrl] = Field(min_length=1, max_length=50)
    hour: int = Field(default=8, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    categories: list[str] = Field(default_factory=list)
    timezone: str = "Asia/Shanghai"
    notification: NotificationSpec | None = None

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
