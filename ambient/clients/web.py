"""Fetching web pages and metric values safely: the destination guard at every hop, the size
cap, redirects (and a page's refresh) followed within bounds; its errors in web_errors."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import re
import ssl
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urldefrag, urlencode, urljoin, urlsplit, urlunsplit

from ambient.clients.guard import (
    DestinationGuard,
    DestinationLookupError,
    RefusedDestinationError,
)
from ambient.clients.http1 import Answer, PageClient
from ambient.clients.http1_errors import (
    CODINGS,
    TWO_LOCATIONS,
    BodyTooLargeError,
    ConnectionCutError,
    HttpProtocolError,
)
from ambient.clients.page_encodings import page_text
from ambient.clients.web_errors import (
    ANSWER_CUT,
    HTTP_STATUS,
    HTTP_STATUS_WAIT,
    NO_CONNECTION,
    NO_LOCATION,
    REDIRECT_LOOP,
    REDIRECT_REFUSED,
    REDIRECTED,
    SIGN_IN,
    TIMED_OUT,
    TLS_FAILED,
    TOO_LARGE,
    TOO_MANY_REDIRECTS,
    WHOLE_NOT_MODIFIED,
    FetchError,
    HttpStatusError,
    NoAnswerError,
    RefusedAddressError,
    SignInRequiredError,
    TooLargeError,
    TooManyRedirectsError,
)
from ambient.domain.deliver_later import retry_after_seconds
from ambient.log_redaction import hide_in_urls
from ambient.refusals import Refusal, read_back

MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
FETCH_TIMEOUT = 20.0  # one fetch's deadline: every hop's DNS lookup, connection and answer
USER_AGENT = "ambient-ops/0.1 (+web monitor)"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A signed URL's parameters that change at each signature (COS and its STS token, S3, OSS,
# OBS, GCS, CloudFront, a CDN's sign or auth_key): the next signature names the same page.
# Names a page may use for its content (t, sig, token, e, session...) are a signature's only
# beside its mark (SIGNED_BY): ?t=topic names a page, ?sign=…&t=… is Tencent CDN type D's
# time; an Azure SAS (sig with sv) drops its fields, Qiniu's token with its deadline e. A key
# that changes costs one whole GET; one shared by two pages misses a change.
SIGNING = re.compile(
    r"q-sign-.*|q-ak|q-key-time|q-header-list|q-url-param-list|q-signature|x-cos-.*"
    r"|x-amz-.*|x-oss-.*|x-obs-.*|x-goog-.*|signature|expires|ossaccesskeyid|awsaccesskeyid"
    r"|accesskeyid|googleaccessid|key-pair-id|security-token|sign|auth_key",
    re.IGNORECASE,
)
AZURE_SAS = ("sv", "st", "se", "sr", "sp", "spr", "ss", "srt", "si", "sip", "sdd", "ses", "sig")
AZURE_DELEGATION = ("skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid")
SIGNED_BY = (
    (frozenset({"sign"}), frozenset({"t"})),
    (frozenset({"sig", "sv"}), frozenset(AZURE_SAS + AZURE_DELEGATION)),
    (frozenset({"token", "e"}), frozenset({"token", "e"})),
    (frozenset({"key-pair-id"}), frozenset({"policy"})),
)


@dataclass
class FetchResult:
    url: str
    status: int
    not_modified: bool
    etag: str | None
    last_modified: str | None
    body: bytes
    content_type: str

    def text(self) -> str:
        """The body in the encoding the page declares (``page_text``)."""
        return page_text(self.body, self.content_type)


# How long a URL's checked addresses are reused (two checks at a 1-minute interval; a failed
# connection or a timeout drops them at once), and how many URLs are kept.
CHECKED_TTL = 150.0
CHECKED_SIZE = 50_000


class WebFetcher:
    """GET with conditional headers, a size cap, checked redirects and an SSRF guard.

    Requests go through ``PageClient`` to the addresses the guard checked, HTTPS included."""

    def __init__(
        self,
        client: PageClient | None = None,
        *,
        allow_cidrs: list[str] | None = None,
        max_bytes: int = MAX_BYTES,
        max_redirects: int = MAX_REDIRECTS,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self._client = client or PageClient()
        self._guard = DestinationGuard(allow_cidrs or [])
        # The guard's verdict per URL (its checked addresses), reused for CHECKED_TTL seconds:
        # a watch asks for the same URL every minute. Refusals are never kept.
        self._checked: dict[str, tuple[float, list[str]]] = {}
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._timeout = timeout

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check_destination(self, url: str) -> list[str]:
        """The addresses of the URL's host; refused if any is not public (unless allow-listed)."""
        now = time.monotonic()
        if (cached := self._checked.get(url)) is not None and cached[0] > now:
            return cached[1]
        try:
            addresses = await self._guard.check_url(url)
        except RefusedDestinationError as exc:
            raise RefusedAddressError(str(exc)) from None
        except DestinationLookupError as exc:
            raise NoAnswerError(str(exc)) from exc
        if len(self._checked) >= CHECKED_SIZE:
            self._checked.clear()
        self._checked[url] = (now + CHECKED_TTL, addresses)
        return addresses

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "text/html,application/xhtml+xml,*/*;q=0.8",
        validators_from: str | None = None,
        authorization: str | None = None,
        form: bytes = b"",
    ) -> FetchResult:
        """GET ``url`` (POST ``form``), following redirects; ``etag`` and ``last_modified``
        are sent to the URL they came from alone (``validators_from``, its ``validators_key``;
        None: ``url``), not to a hop that never issued them (another site's ETag would tell it
        what the watch saw there); ``authorization`` only while every hop keeps to ``url``'s
        origin (``keeps_credentials``), as browsers and httpx send it."""
        plain = {"User-Agent": USER_AGENT, "Accept": accept}
        conditional = dict(plain)
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        hops = [url]  # where it went: the last, where the deadline found it
        try:
            async with asyncio.timeout(self._timeout):  # its redirects and DNS lookups too
                return await self._follow(
                    hops, conditional, plain, validators_from, authorization, form
                )
        except TimeoutError:
            self._checked.pop(hops[-1], None)
            said = Refusal(TIMED_OUT, seconds=f"{self._timeout:g}")
            raise NoAnswerError(_redirected(url, hops[-1], said)) from None

    async def _follow(
        self,
        hops: list[str],
        conditional: dict[str, str],
        plain: dict[str, str],
        validators_from: str | None,
        authorization: str | None,
        form: bytes,
    ) -> FetchResult:
        """The fetch of ``hops[0]``, each redirect's target added to ``hops``."""
        url = current = before = hops[0]
        for _ in range(self._max_redirects + 1):
            try:
                addresses = await self.check_destination(current)
            except FetchError as exc:
                if current == url:
                    raise
                # The address refused (or not found) is not the one the user gave: say how
                # the watched URL (beside the error) led there, or the refusal names a host
                # they never wrote.
                said = Refusal(REDIRECT_REFUSED, target=scrubbed(current, 150), reason=str(exc))
                raise type(exc)(str(said)) from None
            # Asked of a destination the guard took (a port past 65535 is its refusal).
            if authorization and not keeps_credentials(before, current):
                authorization = None  # and not sent again, should a later hop come back
            if validators_from is None:
                issued_here = current == url
            else:  # NOT_KNOWN (a state of the release before) is no URL's key: sent nowhere
                issued_here = validators_key(current) == validators_from
            headers = conditional if issued_here else plain
            if authorization:
                headers = headers | {"Authorization": authorization}
            try:
                answer = await self._client.get(
                    current,
                    headers,
                    addresses=addresses,
                    time_limit=self._timeout,
                    max_bytes=self._max_bytes,
                    form=form,
                )
            except BodyTooLargeError:
                said = Refusal(TOO_LARGE, bytes=self._max_bytes)
                raise TooLargeError(_redirected(url, current, said)) from None
            except TimeoutError:
                raise  # the fetch's deadline (the client's own, a moment after), said there
            except (OSError, HttpProtocolError, ValueError) as exc:
                self._checked.pop(current, None)  # the next check asks the guard (and DNS) again
                raise _unanswered(exc) from exc
            location = answer.headers.get("location")
            if answer.status in REDIRECTS and location:
                # Fields arrive as latin-1: a Location in raw UTF-8 (a Chinese path, not
                # percent-encoded) is read as browsers read it.
                with suppress(UnicodeDecodeError):
                    location = location.encode("latin-1").decode()
                target = _spaces_encoded(urljoin(current, location.strip()))
                if answer.status == 303 and form:
                    # A form goes on (RFC 9110 15.4: a 301 or 302 may keep the method; the
                    # query is the request), but a 303's other resource is read by GET
                    # (15.4.4), without it: not asked, said by the caller, who knows the form.
                    raise HttpStatusError(
                        303,
                        current,
                        answer.body,
                        _redirected(url, current, Refusal(HTTP_STATUS, status=303)),
                        posted=True,
                        location=target,
                    )
                before, current = current, _next_hop(hops, target)
                continue
            if answer.status == 200 and not form and (sent_on := refreshed_to(current, answer)):
                # A stub that sends the browser on (a portal's home to /cn/index.html) is no
                # page to watch: followed as a redirect, through the guard at the loop's top.
                before, current = current, _next_hop(hops, sent_on)
                continue
            if (
                answer.status == 200
                and not _same_page(url, current)
                and _signs_in(current, answer.body)
            ):
                said = Refusal(SIGN_IN, url=scrubbed(current, 150))
                raise SignInRequiredError(str(said))
            return self._result(url, current, answer, headers, posted=bool(form))
        raise TooManyRedirectsError(str(Refusal(TOO_MANY_REDIRECTS, most=self._max_redirects)))

    @staticmethod
    def _result(
        asked: str, url: str, answer: Answer, sent: dict[str, str], *, posted: bool = False
    ) -> FetchResult:
        if answer.status == 304:
            etag, modified = sent.get("If-None-Match"), sent.get("If-Modified-Since")
            if etag is None and modified is None:  # nothing to be the same as
                raise FetchError(_redirected(asked, url, Refusal(WHOLE_NOT_MODIFIED)))
            # A 304 names the validators a 200 would carry now (RFC 9110 15.4.5). Answering
            # If-None-Match, that tag weakly matches the one sent (13.1.2): taken, with its
            # Last-Modified, to be sent next. One naming another tag answered by something
            # else (If-Modified-Since alone), and a cache updates nothing from a 304 whose
            # strong validator differs from its own (RFC 9111 4.3.4): the ones sent stay.
            named = answer.headers.get("etag")
            if etag is not None and named is not None and _opaque(named) == _opaque(etag):
                etag, modified = named, answer.headers.get("last-modified") or modified
            return FetchResult(url, 304, True, etag, modified, b"", "")
        if answer.status in REDIRECTS:  # not followed: no Location
            raise FetchError(_redirected(asked, url, Refusal(NO_LOCATION, status=answer.status)))
        if answer.status >= 400:
            wait = answer.headers.get("retry-after") if answer.status in (429, 503) else None
            after = retry_after_seconds(wait, datetime.now(UTC)) if wait else None
            said = (
                Refusal(HTTP_STATUS_WAIT, status=answer.status, seconds=math.ceil(after))
                if after
                else Refusal(HTTP_STATUS, status=answer.status)
            )
            reason = _redirected(asked, url, said)
            raise HttpStatusError(
                answer.status,
                url,
                answer.body,
                reason,
                after,
                challenge=answer.headers.get("www-authenticate", ""),
                authorized="Authorization" in sent,
                posted=posted,
            )
        return FetchResult(
            url,
            answer.status,
            False,
            answer.headers.get("etag"),
            answer.headers.get("last-modified"),
            answer.body,
            answer.headers.get("content-type", ""),
        )


# A <meta http-equiv="refresh"> in a page's head: its content, the wait and where to go
# (HTML's "shared declarative refresh steps": seconds, then ";" or ",", then "url=" and the URL,
# quoted or not).
META_REFRESH = re.compile(rb"<meta\b[^>]*\bhttp-equiv\s*=\s*[\"']?refresh\b[^>]*>", re.I)
# What a browser running scripts does not read as tags: comments, and the insides of script,
# style, template and noscript (each to its end, or the head's end: no search backtracks).
UNREAD = re.compile(
    rb"<!--.*?(?:-->|\Z)|<(script|noscript|template|style)\b.*?(?:</\1\s*>|\Z)", re.I | re.S
)
CONTENT = re.compile(rb"\bcontent\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.I)
REFRESH = re.compile(
    r"\s*(\d+)(?:\.\d*)?\s*[;,]?\s*(?:url\s*=\s*)?([\"']?)(.*?)\2\s*$", re.I | re.S
)
# A refresh sooner than this is a stub sending the reader on; a later one reloads the page.
REFRESH_FOLLOWED = 5
# The head a stub's refresh is looked for in.
REFRESH_HEAD = 8192


def refreshed_to(url: str, answer: Answer) -> str | None:
    """Where an HTML page's meta refresh sends its reader at once (within REFRESH_FOLLOWED
    seconds), if elsewhere than ``url``; None for a page to read."""
    kind = answer.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in ("", "text/html", "application/xhtml+xml"):
        return None
    tag = META_REFRESH.search(UNREAD.sub(b" ", answer.body[:REFRESH_HEAD]))
    content = CONTENT.search(tag[0]) if tag else None
    if content is None:
        return None
    written = next(part for part in content.groups() if part is not None)
    refresh = REFRESH.match(written.decode("latin-1"))
    if refresh is None or int(refresh[1]) > REFRESH_FOLLOWED or not refresh[3].strip():
        return None
    target = _spaces_encoded(urljoin(url, refresh[3].strip()))
    return None if urldefrag(target)[0] == urldefrag(url)[0] else target


def _unanswered(exc: OSError | HttpProtocolError | ValueError) -> FetchError:
    """A GET without an answer to read, said in words a page translates where the connection
    failed (a NoAnswerError, but for a certificate refused: that passes no sooner)."""
    detail = f"{type(exc).__name__}: {exc or 'no detail'}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        refused = f"certificate verify failed: {exc.verify_message or exc}"
        return FetchError(str(Refusal(TLS_FAILED, reason=refused)))
    if isinstance(exc, ssl.SSLError):
        return NoAnswerError(str(Refusal(TLS_FAILED, reason=str(exc) or detail)))
    if isinstance(exc, ConnectionCutError):
        return NoAnswerError(str(Refusal(ANSWER_CUT, reason=str(exc))))
    if isinstance(exc, OSError):
        return NoAnswerError(str(Refusal(NO_CONNECTION, reason=detail)))
    if str(exc) == TWO_LOCATIONS or read_back(str(exc), CODINGS):
        return FetchError(str(exc))  # a page says it in its reader's words, the voice too
    return FetchError(detail)  # an answer this client cannot read, a request it cannot send


def keeps_credentials(url: str, led: str) -> bool:
    """Whether a redirect from ``url`` to ``led`` keeps its Authorization header: the same
    origin, or its own host upgraded from http to https (as httpx keeps it)."""
    (scheme, host, port), (led_scheme, led_host, led_port) = _origin(url), _origin(led)
    upgraded = (scheme, port, led_scheme, led_port) == ("http", 80, "https", 443)
    return host == led_host and ((scheme, port) == (led_scheme, led_port) or upgraded)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(scheme)


def scrubbed(url: str, most: int = 150) -> str:
    """``url`` as an error, an event or workflow history shows it, cut after ``most``
    characters: its query, user and token-like path segments hidden, as in the logs
    (log_redaction.hide_in_urls). A redirect may lead to a signed URL: no secret shown."""
    shown = hide_in_urls(re.sub(r"[\s'\"<>]", lambda c: quote(c[0]), url))  # one URL
    return shown if len(shown) <= most else f"{shown[: most - 1]}…"


def validators_key(url: str) -> str:
    """Where a page's validators came from, as a watch keeps it: a hash of the URL without its
    user, fragment and signing parameters (SIGNING), its query sorted. The next signature's
    URL is the same page; /view?id=6 is another page than /view?id=5."""
    parts = urlsplit(url)
    fields = parse_qsl(parts.query, keep_blank_values=True)
    names = {name.lower() for name, _ in fields}
    signed = set().union(*(drop for marks, drop in SIGNED_BY if marks <= names))
    query = sorted(
        (name, value)
        for name, value in fields
        if not SIGNING.fullmatch(name) and name.lower() not in signed
    )
    place = f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}?{urlencode(query)}"
    return hashlib.sha256(place.encode()).hexdigest()[:16]


def _opaque(tag: str) -> str:
    """An entity tag as weak comparison reads it (RFC 9110 8.8.3.2): W/"1" is "1"."""
    return tag.strip().removeprefix("W/")


def _next_hop(hops: list[str], target: str) -> str:
    """``target``, added to ``hops``; one already there is a loop, said with its hops."""
    if target in hops:
        loop = [*hops[hops.index(target) :], target]
        origin = urlsplit(loop[0])[:2]
        # Each hop as short as tells it apart (a check keeps 500 characters of its error): one
        # on the first's site after one there by its path, a long one without its middle.
        shown = [scrubbed(hop, 10_000) for hop in loop]
        shown[1:] = [
            urlunsplit(("", "", *urlsplit(hop)[2:]))
            if urlsplit(hop)[:2] == urlsplit(before)[:2] == origin
            else hop
            for before, hop in itertools.pairwise(shown)
        ]
        width = max(24, 280 // len(shown))
        said = " → ".join(
            hop if len(hop) <= width else f"{hop[: width // 3]}…{hop[1 - width * 2 // 3 :]}"
            for hop in shown
        )
        raise TooManyRedirectsError(str(Refusal(REDIRECT_LOOP, hops=said)))
    hops.append(target)
    return target


def _redirected(asked: str, url: str, said: Refusal) -> str:
    """What a fetch of ``asked`` says of its answer from ``url``: the URL only where a redirect
    led (the URL asked is shown beside the error)."""
    return str(said) if url == asked else REDIRECTED % {"reason": said, "url": scrubbed(url, 150)}


def _spaces_encoded(url: str) -> str:
    """A redirect's path and query with spaces as %20 (a host's stay, for the guard)."""
    parts = urlsplit(url)
    path, query = parts.path.replace(" ", "%20"), parts.query.replace(" ", "%20")
    return urlunsplit(parts._replace(path=path, query=query))


# Where sites send a browser to sign in, and the form's password field.
_SIGN_IN_PATH = re.compile(
    r"(?i)(?:^|[/_.-])(?:log-?in|sign-?in|sign-?on|sso|oauth2?|auth(?:orize)?|cas|passport"
    r"|session/new)(?:$|[/_.?-])"
)
_PASSWORD_FIELD = re.compile(rb"(?i)<input\b[^>]*\btype\s*=\s*[\"']?password\b")


def _signs_in(url: str, body: bytes) -> bool:
    """Whether a page a redirect led to is a sign-in form: a sign-in path (its query is
    the page's: "?next=/login") and a password field in its first 256 KiB."""
    path = urlsplit(url).path
    return bool(_SIGN_IN_PATH.search(path)) and bool(_PASSWORD_FIELD.search(body[:262144]))


# A language's prefix a site puts before its pages (/en/login, /zh-cn/login).
_LOCALE = re.compile(r"^/[a-z]{2}(?:[-_][a-z]{2,4})?(?=/)", re.IGNORECASE)


def _same_page(asked: str, landed: str) -> bool:
    """Whether a redirect led to the page asked for, as given (a sign-in page watched on
    purpose): the same host, its path but for a trailing slash, a language's prefix or the
    scheme (http to https)."""
    a, b = urlsplit(asked), urlsplit(landed)

    def page(path: str) -> str:
        return _LOCALE.sub("", path.rstrip("/")) or "/"

    return a.hostname == b.hostname and page(a.path) == page(b.path)
