"""Per-user push configuration: which channels get which kinds, and quiet hours."""

from __future__ import annotations

from datetime import time
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ambient.domain.notify import NotificationKind, Target
from ambient.domain.users import validate_hhmm

ChannelType = Literal["email", "wecom", "dingtalk", "webhook", "apprise", "inbox", "sms"]
ALL_KINDS = [NotificationKind.BRIEFING, NotificationKind.WATCH, NotificationKind.REMEDIATION]


class PushChannel(BaseModel):
    type: ChannelType
    target: str = Field(
        default="",
        description="address, URL, robot key or secret:NAME (email: an address; inbox: empty)",
    )
    kinds: list[NotificationKind] = Field(
        default_factory=lambda: list(ALL_KINDS),
        description="briefing, watch, remediation (all when omitted)",
    )


class QuietHours(BaseModel):
    start: str = Field(description="HH:MM in the user's time zone, e.g. 22:00")
    end: str = Field(description="HH:MM, e.g. 07:30 (may wrap past midnight)")
    # Remediation escalations still get through unless this is set.
    include_remediation: bool = False

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        return validate_hhmm(value)

    def covers(self, now: time, kind: NotificationKind) -> bool:
        if kind is NotificationKind.REMEDIATION and not self.include_remediation:
            return False
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        if start <= end:
            return start <= now < end
        return now >= start or now < end


class PushConfig(BaseModel):
    channels: list[PushChannel] = Field(default_factory=list, max_length=20)
    quiet_hours: QuietHours | None = None

    @field_validator("channels")
    @classmethod
    def _targets(cls, channels: list[PushChannel]) -> list[PushChannel]:
        for index, channel in enumerate(channels):
            if channel.type not in ("inbox", "email", "sms") and not channel.target:
                raise ValueError(f"channels[{index}]: a {channel.type} channel needs a target")
        return channels


def route(config: PushConfig, kind: NotificationKind) -> list[Target]:
    """The user's channels configured for ``kind``."""
    return [Target(channel=c.type, target=c.target) for c in config.channels if kind in c.kinds]


def default_target(config: PushConfig, channel: str) -> str | None:
    """The configured target of a channel type, for `{"method": "email"}` without an address."""
    for configured in config.channels:
        if configured.type == channel and configured.target:
            return configured.target
    return None
