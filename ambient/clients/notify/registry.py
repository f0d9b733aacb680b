"""Build the channel registry from settings: the one place channels are wired."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from ambient.clients.notify.apprise import AppriseChannel, SmsChannel
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.clients.notify.email import EmailChannel
from ambient.clients.notify.inbox import InboxChannel
from ambient.clients.notify.robots import SharedRateLimiter
from ambient.clients.notify.targets import TargetPolicy
from ambient.clients.notify.webhook import WebhookChannel
from ambient.clients.notify.wecom import WeComChannel
from ambient.settings import Settings
from ambient.storage import Database


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def build_channels(settings: Settings, db: Database, http: httpx.AsyncClient) -> ChannelRegistry:
    """Every channel; those lacking configuration answer with what to configure."""
    policy = TargetPolicy.from_settings(settings)
    secrets, guard = policy.secrets, policy.guard
    return ChannelRegistry(
        [
            InboxChannel(db),
            EmailChannel(
                settings.smtp_host,
                settings.smtp_port,
                settings.smtp_from,
                username=settings.smtp_username,
                password=_secret(settings.smtp_password),
                tls=settings.smtp_tls,
                helo=settings.smtp_helo,
                # A third of the send's deadline at most: a greeting never sent is then said
                # (STARTTLS asked of an implicit-TLS port) before the deadline cuts the send.
                greeting_wait=min(10.0, settings.notify_target_timeout / 3),
            ),
            # A robot's limit is kept by all who send: every worker and API replica. A receiver
            # (a robot, a private gateway, a webhook) may take the send's whole deadline to
            # answer: a fixed 15 s cut one answering in 17, which had posted, "failed".
            WeComChannel(
                http,
                secrets,
                settings.wecom_base_url,
                timeout=settings.notify_target_timeout,
                limiter=SharedRateLimiter(db),
            ),
            DingTalkChannel(
                http,
                secrets,
                settings.dingtalk_base_url,
                timeout=settings.notify_target_timeout,
                limiter=SharedRateLimiter(db),
            ),
            WebhookChannel(
                secrets,
                _secret(settings.webhook_signing_secret),
                guard,
                timeout=settings.notify_target_timeout,
            ),
            AppriseChannel(secrets, guard, limiter=SharedRateLimiter(db)),
            SmsChannel(_secret(settings.sms_apprise_url), secrets),
        ],
        policy=policy,
        target_timeout=settings.notify_target_timeout,
        retry_seconds=settings.notify_retry_seconds,
        give_up_seconds=settings.notify_give_up_seconds,
        later_seconds=settings.notify_later_seconds,
        concurrency=settings.notify_concurrency,
        language=settings.default_language.value,
        pages=settings.public_base_url,
    )
