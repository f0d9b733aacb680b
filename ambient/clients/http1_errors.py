"""How the page client fails, and the words it says so in (a page says them in its reader's
language; the voice says its own words for each, mcp_server/voice_failures.py).

    HttpProtocolError            the answer is not HTTP/1.x this client can read
     ├── ConnectionCutError      the connection ended before the answer was whole
     └── BodyTooLargeError       the (decoded) body is larger than the caller's cap
    StaleConnectionError         a kept connection ended before the first byte (tried anew)
"""

from __future__ import annotations

from ambient.refusals import N_

# How an answer was cut (a ConnectionCutError's words): a page says them in its reader's language.
CLOSED_UNANSWERED = N_("the server closed the connection unanswered")
RESET_INSIDE = N_("the connection was reset inside the answer")
ENDED_IN_BODY = N_("the connection ended inside the body: %(got)s of %(length)s bytes")
ENDED_IN_HEADERS = N_("the connection ended inside the headers: %(error)s")
ENDED_IN_BODY_SAID = N_("the connection ended inside the body: %(error)s")
TRUNCATED = N_("the %(coding)s body ends before its end (truncated)")
CUTS = (
    CLOSED_UNANSWERED,
    RESET_INSIDE,
    ENDED_IN_BODY,
    ENDED_IN_HEADERS,
    ENDED_IN_BODY_SAID,
    TRUNCATED,
)


# A body this client does not decode: a coding of the registry it does not ask for, or gzip's
# bytes under a name that is no coding (Chromium refuses both). Said of "the answer": a page's
# or a metric source's (whose URL is said after).
UNDECODED_CODING = N_(
    "the answer is in Content-Encoding %(coding)s, which is not decoded here (gzip and deflate "
    "are: ask its server for one of those, or none), and cannot be read"
)
GZIP_MISNAMED = N_(
    "the answer is gzip bytes under Content-Encoding %(coding)s, which is no content coding (ask "
    "its server to label them gzip alone), and cannot be read"
)
MANY_MEMBERS = N_(
    "the answer is gzip of more than %(members)s members, which no page is sent as, and cannot "
    "be read"
)
CODINGS = (UNDECODED_CODING, GZIP_MISNAMED, MANY_MEMBERS)
# Not named: either may be a signed URL (ambient.clients.web.scrubbed, which this precedes).
TWO_LOCATIONS = N_(
    "the answer names two different Locations: a redirect names one target; watch the page "
    "it should lead to, or ask its site to send one"
)


class HttpProtocolError(Exception):
    """The server's answer is not HTTP/1.x this client can read."""


class ConnectionCutError(HttpProtocolError):
    """The connection ended or was reset before the answer was whole (may pass later)."""


class BodyTooLargeError(HttpProtocolError):
    """The (decoded) body is larger than the caller's cap."""


class StaleConnectionError(Exception):
    """The connection ended before the first byte of an answer."""
