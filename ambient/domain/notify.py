"""Notification messages and targets as they cross workflow and activity boundaries."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class NotificationKind(StrEnum):
    BRIEFING = "briefing"
    WATCH = "watch"
    REMEDIATION = "remediation"
    SYSTEM = "system"


class Attachment(BaseModel):
    filename: str
    content_type: str = "application/octet-stream"
    # Base64 so the model stays JSON-safe inside workflow history.
    content_b64: str


class Message(BaseModel):
    """One notification: a title, a markdown body and optional richer parts."""

    title: str
    body: str = Field(description="Markdown text; channels without markdown get it as plain text")
    html: str | None = None
    kind: NotificationKind = NotificationKind.SYSTEM
    link: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)


class Target(BaseModel):
    """Where a message goes: a channel name and a channel-specific address."""

    channel: str = Field(description="inbox, email, wecom, dingtalk, webhook, apprise, ...")
    target: str = Field(default="", description="address, URL or secret name; inbox: the user")


class DeliveryStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    # Quiet hours: recorded, not sent (the inbox copy still lands).
    SUPPRESSED = "suppressed"


class Delivery(BaseModel):
    channel: str
    target: str
    status: DeliveryStatus
    provider_id: str | None = None
    error: str | None = None


class NotifyRequest(BaseModel):
    user: str
    message: Message
    targets: list[Target]
    # A business key (workflow id + step) so a retried or replayed send is recognised.
    idempotency_key: str


class NotifyResult(BaseModel):
    deliveries: list[Delivery]
