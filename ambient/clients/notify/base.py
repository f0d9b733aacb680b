"""The channel interface and registry.

NotifyError
 ├── TransientNotifyError   retry with backoff (timeouts, 5xx, rate limits)
 ├── PermanentNotifyError   never retry (bad address, auth rejected, bad payload)
 └── UnknownChannelError    the target names a channel nobody registered
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ambient.domain.notify import Message

if TYPE_CHECKING:
    from ambient.clients.notify.targets import TargetPolicy


class NotifyError(Exception):
    """A message could not be delivered on one channel."""


class TransientNotifyError(NotifyError):
    """Delivery failed for a reason that may pass; retrying makes sense."""


class PermanentNotifyError(NotifyError):
    """Delivery failed for a reason retrying cannot fix."""


class UnknownChannelError(PermanentNotifyError):
    """The target names a channel that is not registered."""


class Channel(Protocol):
    """Sends one message to one target; returns the provider's message id if any."""

    name: str

    async def send(
        self, user: str, message: Message, target: str, *, idempotency_key: str
    ) -> str | None: ...


class ChannelRegistry:
    """Channels by name and the rules of sending through them; the notify activity routes
    each target through it (built once from settings by ``registry.build_channels``)."""

    def __init__(
        self,
        channels: list[Channel] | None = None,
        *,
        policy: TargetPolicy | None = None,
        target_timeout: float = 30.0,
        concurrency: int = 8,
    ) -> None:
        # Who may send where (secrets, inbox, allow-listed networks); None: form rules only.
        self.policy = policy
        self.target_timeout = target_timeout
        self.concurrency = concurrency
        self._channels: dict[str, Channel] = {}
        for channel in channels or []:
            self.register(channel)

    def register(self, channel: Channel) -> None:
        self._channels[channel.name] = channel

    def get(self, name: str) -> Channel:
        try:
            return self._channels[name]
        except KeyError:
            known = ", ".join(sorted(self._channels)) or "none"
            raise UnknownChannelError(f"unknown channel {name!r}; registered: {known}") from None

    @property
    def names(self) -> list[str]:
        return sorted(self._channels)
