"""Why a message was not delivered, shared by the channels, the target rules and the registry.

TransientNotifyError   retry with backoff (timeouts, 5xx, rate limits)
PermanentNotifyError   never retry (bad address, auth rejected, bad payload, unknown channel)
"""

from __future__ import annotations


class TransientNotifyError(Exception):
    """Delivery failed for a reason that may pass; retrying makes sense."""


class PermanentNotifyError(Exception):
    """Delivery failed for a reason retrying cannot fix."""
