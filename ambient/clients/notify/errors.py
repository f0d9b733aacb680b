"""Why a message was not delivered, shared by the channels, the target rules and the registry.

TransientNotifyError   retry with backoff (timeouts, 5xx, rate limits)
 └ DeferredNotifyError the receiver said "try again later" (SMTP 4xx, HTTP 429/503, a robot's
                       rate limit): retried after its asked delay, for longer (deliver later)
PermanentNotifyError   never retry (bad address, auth rejected, bad payload, unknown channel)
 └ SecretOriginError   a server secret asked for an origin its entry does not list
"""

from __future__ import annotations

import ssl

# A try whose lease ran out, and whose row another try took over (or ended), sends no more.
TAKEN_OVER = "another try took this delivery over"


class TransientNotifyError(Exception):
    """Delivery failed for a reason that may pass; retrying makes sense."""


class DeferredNotifyError(TransientNotifyError):
    """The receiver asked to be tried again later, after ``retry_after`` seconds if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentNotifyError(Exception):
    """Delivery failed for a reason retrying cannot fix."""


class SecretOriginError(PermanentNotifyError):
    """A `secret:NAME` would be sent to an origin its AMBIENT_SECRETS entry does not list."""


def ssl_error_in(exc: BaseException) -> ssl.SSLError | None:
    """The TLS failure ``exc`` is or wraps (an HTTP or SMTP client's connect error), if any."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, ssl.SSLError):
        seen = seen.__cause__ or seen.__context__
    return seen
