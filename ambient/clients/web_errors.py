"""What a fetch of a page or a metric says when it fails: its errors, and its words (kept as
their English in a check's stored error, read back as the Refusal they were said from).

FetchError
 ├── RefusedAddressError   the destination guard refused it (ambient.clients.guard)
 ├── TooLargeError         the body passed the size cap
 ├── TooManyRedirectsError more redirects than allowed
 ├── SignInRequiredError   a redirect to a sign-in form
 ├── HttpStatusError       a non-success HTTP status
 └── NoAnswerError         no answer: the name unresolved, no connection or TLS, a timeout,
                           the connection cut (the same fetch may pass later)
An answer the client cannot read is a FetchError itself; so is a metric answer of the wrong
shape (ambient.clients.metric_reads).
"""

from __future__ import annotations

from ambient.clients.extract import NO_CONTENT_TYPE, NO_TEXTS, UNREADABLE_BECAUSE
from ambient.clients.guard import CANNOT_RESOLVE, REFUSALS, RefusedDestinationError
from ambient.clients.http1_errors import CODINGS, CUTS, TWO_LOCATIONS
from ambient.refusals import N_, Refusal, read_back

# A fetch's commonest failures, worded once. Kept as their English (a check's error, beside
# its page's URL: not named again), the pages say them in their reader's language.
HTTP_STATUS = N_("HTTP %(status)s")
HTTP_STATUS_WAIT = N_("HTTP %(status)s (Retry-After: %(seconds)s s)")
TIMED_OUT = N_("timed out after %(seconds)s s")
TOO_LARGE = N_("larger than the cap of %(bytes)s bytes")
TOO_MANY_REDIRECTS = N_("more than %(most)s redirects")
# A redirect back to a URL it came through: no number of hops more would end it.
REDIRECT_LOOP = N_(
    "the redirects go round in a loop: the site may want a cookie or a sign-in, which a "
    "monitor does not keep; watch the page a browser ends on (%(hops)s)"
)
REDIRECT_REFUSED = N_("redirected to %(target)s: %(reason)s")  # the reason: the guard's
NO_BODY = N_("the server answered HTTP %(status)s with no body: nothing to watch")
# RFC 9110 15.4: a redirect's target is its Location; its body, a note of the move, no page.
NO_LOCATION = N_(
    "the server answered HTTP %(status)s, a redirect, with no Location to follow: no page to "
    "read; open the URL in a browser to find where it moved, and watch that one"
)
WHOLE_NOT_MODIFIED = N_("the server answered 304 Not Modified to a request for the whole page")
NO_CONNECTION = N_("no connection: %(reason)s")  # refused, reset, unreachable
ANSWER_CUT = N_("the connection ended before the whole answer: %(reason)s")
TLS_FAILED = N_("TLS failed: %(reason)s")
REDIRECTED = N_("%(reason)s (redirected to %(url)s)")  # a status from where a redirect led
# A page that sends the browser to a sign-in form: its baseline was the form, and no change
# of the page behind it was ever seen.
SIGN_IN = N_(
    "the page sends the browser to sign in at %(url)s: a monitor cannot sign in and would see "
    "only the sign-in form; watch a page that opens without signing in"
)
# A metric read's failure with its endpoint (activities/watches.py: a threshold watch's alert
# names no page, so the source's URL is said after the fetch's words).
FROM_SOURCE = N_("%(reason)s from %(url)s")
_WORDED = (
    HTTP_STATUS,
    HTTP_STATUS_WAIT,
    TIMED_OUT,
    TOO_LARGE,
    TOO_MANY_REDIRECTS,
    REDIRECT_LOOP,
    REDIRECT_REFUSED,
    NO_BODY,
    NO_LOCATION,
    SIGN_IN,
    TWO_LOCATIONS,
    *CODINGS,
    WHOLE_NOT_MODIFIED,
    NO_CONNECTION,
    ANSWER_CUT,
    TLS_FAILED,
    CANNOT_RESOLVE,
    UNREADABLE_BECAUSE,
)
# The system's words inside those (the ``reason`` of a connection, a TLS handshake, a name that
# failed): the common ones said as what they mean, their raw detail after where it helps (the
# address refused, the certificate's fault), left out where it does not.
_SYSTEM = (
    N_("ConnectionRefusedError: %(error)s"),
    N_("ConnectionResetError: %(error)s"),
    N_("[SSL: WRONG_VERSION_NUMBER] %(error)s"),
    N_("certificate verify failed: %(error)s"),
    N_("[Errno -2] %(error)s"),  # EAI_NONAME
    N_("[Errno -3] %(error)s"),  # EAI_AGAIN
    N_("no addresses"),
    *CUTS,
    *NO_TEXTS,  # why a page's text cannot be read (UNREADABLE_BECAUSE's reason)
)


def fetch_refusal(error: str) -> Refusal | None:
    """A check's stored error as the Refusal it was said from (None: not one worded here); a
    reason in it (a redirect's refusal, the system's words) as its own Refusal where it is one."""
    return read_said(error, _WORDED)


def read_said(text: str, msgids: tuple[str, ...]) -> Refusal | None:
    """``text`` as the Refusal of the first of ``msgids`` it fits, its ``reason`` read too."""
    said = read_back(text, msgids)
    if said is None:
        return None
    if isinstance(reason := said.values.get("reason"), str):
        said.values["reason"] = read_said(reason, (*REFUSALS, *_WORDED, *_SYSTEM)) or reason
    if said.values.get("kind") == NO_CONTENT_TYPE:  # a body's kind in words, not a media type
        said.values["kind"] = Refusal(NO_CONTENT_TYPE)
    return said


class FetchError(Exception):
    """A page or metric could not be fetched."""


class RefusedAddressError(FetchError, RefusedDestinationError):
    """The destination guard refused the URL or the address it resolves to."""


class TooLargeError(FetchError):
    """The response body is larger than the cap."""


class TooManyRedirectsError(FetchError):
    """The redirect chain is longer than allowed."""


class SignInRequiredError(FetchError):
    """The page redirected to a sign-in form (a password field on a sign-in path)."""


class HttpStatusError(FetchError):
    """The server answered with an error status."""

    def __init__(
        self,
        status: int,
        url: str,
        body: bytes = b"",
        reason: str = "",
        retry_after: float | None = None,
        *,
        challenge: str = "",
        authorized: bool = False,
        posted: bool = False,
        location: str = "",
    ) -> None:
        super().__init__(reason or str(Refusal(HTTP_STATUS, status=status)))
        self.status = status
        self.url = url  # where the status came from (a redirect's target: not the URL asked)
        self.body = body  # what the server said (a JSON API's error), within the size cap
        # A 429's or 503's Retry-After in seconds: how long the server asks not to be asked.
        self.retry_after = retry_after
        self.challenge = challenge  # its WWW-Authenticate (a 401's scheme: Basic, Bearer)
        # Whether the request answered carried an Authorization header, and a POSTed form.
        self.authorized, self.posted = authorized, posted
        self.location = location  # a 303's target, not followed (a POSTed form's)


class NoAnswerError(FetchError):
    """No answer came: the name did not resolve, no connection or TLS, a timeout, the
    connection cut inside the answer. Unlike an answer of the wrong shape, it may pass later."""
