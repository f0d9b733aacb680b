"""Why a message was not delivered, shared by the channels, the target rules and the registry.

NotifyError
 ├── TransientNotifyError   retry with backoff (timeouts, 5xx, rate limits)
 ├── PermanentNotifyError   never retry (bad address, auth rejected, bad payload)
 └── UnknownChannelError    the target names a channel nobody registered
"""

from __future__ import annotations


class NotifyError(Exception):
    """A message could not be delivered on one channel."""


class TransientNotifyError(NotifyError):
    """Delivery failed for a reason that may pass; retrying makes sense."""


class PermanentNotifyError(NotifyError):
    """Delivery failed for a reason retrying cannot fix."""


class UnknownChannelError(PermanentNotifyError):
    """The target names a channel that is not registered."""
