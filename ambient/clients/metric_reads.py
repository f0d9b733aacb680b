"""What a metric source answers, read as one number: a JSON document's value at a JSONPath, a
Prometheus instant query's one sample; an answer of any other shape is a FetchError saying
what came back, in words a page translates (``said_refusal``)."""

from __future__ import annotations

import ast
import base64
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from jsonpath_ng.ext import parse as jsonpath
from jsonpath_ng.jsonpath import Child, Fields, Index, JSONPath
from selectolax.lexbor import LexborHTMLParser

from ambient.clients.extract import NO_CONTENT_TYPE
from ambient.clients.notify import secrets
from ambient.clients.page_encodings import declared_encoding
from ambient.clients.web import FetchResult, WebFetcher, keeps_credentials, scrubbed
from ambient.clients.web_errors import (
    FROM_SOURCE,
    REDIRECTED,
    FetchError,
    HttpStatusError,
    fetch_refusal,
    read_said,
)
from ambient.cloud.errors import read_refusal
from ambient.domain.configs import readable_json_path
from ambient.refusals import N_, Refusal, read_back

QUERY_PATH = "/api/v1/query"  # the Prometheus HTTP API's instant query
# The characters of a read's error a check keeps (in the watch's history and status).
KEPT = 500
# A query whose GET URL would be longer is POSTed as a form, as the HTTP API takes it: proxies
# in front of Prometheus refuse long request lines with a 414 (nginx past 8 KB or as hardened,
# IIS past a 2,048-character query).
LONG_URL = 2000
# A metric answer no reading can be made of (a threshold watch's or a remediation's verify).
JSONPATH_NOTHING = N_("JSONPath %(path)s matched nothing")
JSONPATH_NOT_A_NUMBER = N_("JSONPath %(path)s is not a number: %(shown)s")
JSONPATH_SEVERAL = N_(
    "JSONPath %(path)s matched %(count)s values (%(shown)s): give a path to one of them, "
    "e.g. %(example)s"
)
# Values computed (`sub()`, `* 100`) with no one value's path to give.
JSONPATH_SEVERAL_COMPUTED = N_(
    "JSONPath %(path)s matched %(count)s values (%(shown)s): give a path to one of them"
)
PROMETHEUS_REFUSED_HTTP = N_("Prometheus refused the query %(query)s (HTTP %(status)s): %(reason)s")
PROMETHEUS_REFUSED = N_("Prometheus refused the query %(query)s: %(reason)s")
RANGE_VECTOR = N_(
    "query answered a range vector (matrix), not one sample: query an instant "
    "vector (no [range] selector): %(query)s"
)
STRING_ANSWER = N_(
    "query answered a string, not a number: query an instant vector returning one sample: %(query)s"
)
NO_SAMPLE = N_(
    "query answered no sample: no series matches it now (no data, not 0; where none means 0, "
    'add "or vector(0)"): %(query)s'
)
SEVERAL_SERIES = N_(
    "query answered %(count)s series (%(shown)s), not one: aggregate them (sum, max, ...) or "
    "pick one with a label matcher: %(query)s"
)
# Both, as an earlier release stored them (a watch's last error, until its next check).
NOT_ONE_SAMPLE = N_("query must return exactly one sample, got %(count)s: %(query)s")
NOT_FINITE = N_("query answered %(value)s, not a number (no data to divide?): %(query)s")
NATIVE_HISTOGRAM = N_(
    "query answered a native histogram, not a number: ask for one number of it "
    "(histogram_count, histogram_sum, histogram_quantile): %(query)s"
)
# A source's 401 or 403 to a request that carried its credentials (RFC 9110 15.5.2: a 401
# refuses them; 15.5.4: a 403 finds them insufficient for this).
CREDENTIALS_REFUSED = N_(
    "the source refused the credentials of secret %(secret)s (HTTP 401, scheme %(scheme)s): "
    "check the secret's value (a bearer token, or user:password for basic) and that its type "
    "is the one the source asks for"
)
CREDENTIALS_FORBIDDEN = N_(
    "the source forbids this to the account of secret %(secret)s (HTTP 403): ask whoever runs "
    "the source to let that account read it, or name a secret whose account may"
)
# A 401 from the source's origin to a source without auth.
NO_CREDENTIALS = N_(
    "the source asks for credentials (HTTP 401, scheme %(scheme)s): give the source an auth, e.g. "
    '{"type": "%(type)s", "secret": "secret:NAME"} with a server secret you may use'
)
# A 401 whose challenges name neither scheme a source's auth sends (Digest, Negotiate).
UNSUPPORTED_SCHEME = N_(
    "the source asks for credentials by scheme %(scheme)s (HTTP 401), which a source's auth "
    "does not send (it sends basic and bearer): let the source take one of them, or read it "
    "through a proxy that does"
)
# A query POSTed (too long for a URL) that something in front refuses by its method (405).
POST_REFUSED = N_(
    "the source refused the query POSTed (HTTP %(status)s), as a query past 2,000 characters "
    "is sent (too long for a URL): let POST %(path)s through whatever is in front of "
    "Prometheus, or shorten the query"
)
# A query POSTed refused 403: for a reason the server need not say (RFC 9110 15.5.4), not
# its method (that is a 405's).
POST_FORBIDDEN = N_(
    "the source, or something in front of it, refused the query (HTTP 403), sent by POST as a "
    "query past 2,000 characters is; a 403 does not say why: ask whoever runs the source what "
    "it refuses there (the account, the query, the method), or shorten the query to ask it by GET"
)
POST_FORBIDDEN_SECRET = N_(
    "the source, or something in front of it, refused the query (HTTP 403), sent by POST as a "
    "query past 2,000 characters is; a 403 does not say why: ask whoever runs the source what "
    "it refuses there (the account of secret %(secret)s, the query, the method), or shorten the "
    "query to ask it by GET"
)
# A query POSTed that a 303 sends on to be read by GET (RFC 9110 15.4.4), where it would not go.
POSTED_SEE_OTHER = N_(
    "the source answered the query POSTed (a query past 2,000 characters is sent so) with "
    "HTTP 303 See Other, to be read by GET at %(target)s, without the query: give the source "
    "the URL that answers the query itself, or shorten the query"
)
BAD_BASIC = N_("secret %(secret)s is not user:password, as basic credentials are: check its value")
BAD_TOKEN = N_(
    "secret %(secret)s cannot be sent as a bearer token: its value is empty or has characters "
    "no header carries (a line break inside it)"
)
NO_NUMBER = N_("the source did not answer a number (%(error)s)")  # a crash reading it
NOT_JSON = N_("the source answered %(kind)s, not JSON: %(shown)s")  # a sign-in page, say
# JSON that is no Prometheus API answer (another service at the address, a proxy's page): it
# had been said "no series matches it now" or crashed reading it.
NOT_PROMETHEUS = N_(
    'the answer to %(query)s is not a Prometheus API answer (no "status": "success" with '
    "its data): check that the URL is the Prometheus server's"
)
# A number as JSON writes one, or its text so (Python's 1_000 and 2024_12 are no numbers).
NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
METRIC_ANSWERS = (
    NOT_PROMETHEUS,
    JSONPATH_NOTHING,
    JSONPATH_NOT_A_NUMBER,
    JSONPATH_SEVERAL,
    JSONPATH_SEVERAL_COMPUTED,
    PROMETHEUS_REFUSED_HTTP,
    PROMETHEUS_REFUSED,
    RANGE_VECTOR,
    STRING_ANSWER,
    NO_SAMPLE,
    SEVERAL_SERIES,
    NOT_ONE_SAMPLE,
    NOT_FINITE,
    NATIVE_HISTOGRAM,
    NO_NUMBER,
    NOT_JSON,
    CREDENTIALS_REFUSED,
    CREDENTIALS_FORBIDDEN,
    NO_CREDENTIALS,
    UNSUPPORTED_SCHEME,
    POST_REFUSED,
    POST_FORBIDDEN,
    POST_FORBIDDEN_SECRET,
    POSTED_SEE_OTHER,
    BAD_BASIC,
    BAD_TOKEN,
)


@dataclass(frozen=True)
class Credentials:
    """A source's Authorization header and the secret it was made of (named, never shown)."""

    secret: str
    header: str = field(repr=False)
    unsaid: tuple[str, ...] = field(default=(), repr=False)  # what no error may say

    @classmethod
    def of(cls, kind: str, secret: str, value: str) -> Credentials:
        """The header of ``kind`` (bearer, basic) of the secret's ``value``; a FetchError that
        names the secret, never its value, for one no header carries."""
        if kind == "basic":
            value = value.rstrip("\r\n")  # a secret file's line break, as a token's
            if ":" not in value:
                raise FetchError(BAD_BASIC % {"secret": secret})
            encoded = base64.b64encode(value.encode()).decode()
            return cls(secret, f"Basic {encoded}", _unsaid((value, encoded.rstrip("="))))
        token = value.strip()  # a token file's line break
        if not token or not token.isascii() or not token.isprintable():
            raise FetchError(BAD_TOKEN % {"secret": secret})
        return cls(secret, f"Bearer {token}", _unsaid((token,)))

    def scrubbed(self, text: str) -> str:
        """``text`` (made of what a source answered: it may echo the request's headers) with
        the secret's value, in every form sent, said as its name."""
        for part in self.unsaid:
            text = text.replace(part, f"[secret {self.secret}]")
        return text

    def scrubbed_body(self, body: bytes) -> bytes:
        """A source's answer as ``scrubbed`` says it (forms of 8 characters and more: a
        shorter one could be part of the number read)."""
        for part in (part for part in self.unsaid if len(part) >= 8):
            body = body.replace(part.encode(), f"[secret {self.secret}]".encode())
        return body


def _unsaid(parts: tuple[str, ...]) -> tuple[str, ...]:
    # As sent, and as JSON or repr() quote it (a body's string shown again); longest first.
    said = {form for part in parts for form in (part, json.dumps(part)[1:-1], repr(part)[1:-1])}
    return tuple(sorted(said, key=len, reverse=True))


def said_refusal(error: str) -> Refusal | None:
    """A page's or a metric's stored error as a page says it: a fetch's (``fetch_refusal``), a
    status from where a redirect led, a metric answer of the wrong shape, Tencent Cloud's
    (``read_refusal``) (None: none)."""
    said = (
        fetch_refusal(error)
        or read_said(error, (REDIRECTED, FROM_SOURCE, *METRIC_ANSWERS, *secrets.REFUSALS))
        or read_refusal(error)
    )
    if said is None and len(error) == KEPT:
        # A secret's refusal naming a long origin twice (its example last) cut where it was kept.
        said = _cut_origin_refusal(error)
    if said is not None and isinstance(reason := said.values.get("reason"), str):
        # A metric answer said with where a redirect led (a sign-in page's, REDIRECTED).
        said.values["reason"] = read_said(reason, METRIC_ANSWERS) or reason
    return said


def _cut_origin_refusal(error: str) -> Refusal | None:
    """NOT_TO_ORIGIN cut inside its example, if that is the example its secret and origin make
    (any text after a whole refusal began like it: no refusal read back)."""
    said = read_back(error, (secrets.NOT_TO_ORIGIN,), cut=True)
    if said is None:
        return None
    try:
        name = ast.literal_eval(said.values["secret"])  # said as repr()
    except (ValueError, SyntaxError):
        return None
    example = secrets.origin_example(name, said.values["origin"])
    cut = said.values["example"].removesuffix("…")
    return said if isinstance(name, str) and example.startswith(cut) else None


async def read_json_number(
    fetcher: WebFetcher, url: str, json_path: str, credentials: Credentials | None = None
) -> float:
    """The number at ``json_path`` of the JSON document at ``url``."""
    document = _json(await _fetched(fetcher, url, credentials), url)
    found: dict[object, tuple[str | None, Any]] = {}
    for index, match in enumerate(jsonpath(readable_json_path(json_path)).find(document)):
        # Each node once (a recursive path can reach one twice); a value computed (`sub()`,
        # `* 100`, `len`) has no place of its own (jsonpath-ng's `this`): each is one.
        at = _where(match.full_path)
        found.setdefault(at or index, (at, match.value))
    if not found:
        raise FetchError(JSONPATH_NOTHING % {"path": json_path})
    if len(found) > 1:
        # Which of them is the metric is the owner's to say: the first was watched, unsaid.
        shown = [f"{at} = {_shown(v, 40)}" if at else _shown(v, 40) for at, v in found.values()]
        said = {"path": json_path, "count": len(found), "shown": _listed(shown)}
        first_at, first = next(iter(found.values()))
        # A computed value's path: the JSONPath's first of each [*], if that reads it alone.
        firsts = json_path.replace("[*]", "[0]")
        example = first_at or (
            firsts
            if [m.value for m in jsonpath(readable_json_path(firsts)).find(document)] == [first]
            else None
        )
        if example is None:
            raise FetchError(JSONPATH_SEVERAL_COMPUTED % said)
        raise FetchError(JSONPATH_SEVERAL % {**said, "example": example})
    ((_, value),) = found.values()
    if (number := _finite(value)) is None:
        raise FetchError(JSONPATH_NOT_A_NUMBER % {"path": json_path, "shown": _shown(value)})
    return number


async def read_prometheus(
    fetcher: WebFetcher, base_url: str, query: str, credentials: Credentials | None = None
) -> float:
    """The one number a Prometheus instant query answers (``base_url``: the server's, or the
    query endpoint's own URL, as it is often pasted)."""
    base = base_url.rstrip("/").removesuffix(QUERY_PATH)
    url, form = f"{base}{QUERY_PATH}?{urlencode({'query': query})}", b""
    if len(url) > LONG_URL:
        url, form = f"{base}{QUERY_PATH}", urlencode({"query": query}).encode()
    try:
        data = _json(await _fetched(fetcher, url, credentials, form), url)
    except HttpStatusError as exc:
        # The HTTP API answers a query it refuses (400 bad_data, 422 execution, 503
        # timeout) with its reason in the body: that is what the user must fix.
        if (refusal := _prometheus_error(exc.body)) is None:
            raise
        reason = PROMETHEUS_REFUSED_HTTP % {
            "query": repr(query),
            "status": exc.status,
            "reason": refusal,
        }
        raise HttpStatusError(exc.status, url, exc.body, reason) from None
    if (refusal := _prometheus_error(data)) is not None:
        raise FetchError(PROMETHEUS_REFUSED % {"query": repr(query), "reason": refusal})
    answer = data.get("data") if isinstance(data, dict) else None
    if not isinstance(answer, dict) or data.get("status") != "success":
        raise FetchError(NOT_PROMETHEUS % {"query": repr(query)})
    if answer.get("resultType") == "matrix":
        # A range selector (`up[5m]`): each series holds many values, none the current one.
        raise FetchError(RANGE_VECTOR % {"query": query})
    if answer.get("resultType") == "string":
        # A string literal's result is one [time, "text"] pair: no number to read.
        raise FetchError(STRING_ANSWER % {"query": query})
    if answer.get("resultType") == "scalar":
        # A scalar's result is one [time, value] pair, not a list of samples.
        value = answer["result"][1]
    else:
        results = answer.get("result", [])
        if not results:  # no data is no reading, never 0
            raise FetchError(NO_SAMPLE % {"query": query})
        if len(results) > 1:  # which one is the value is the owner's to say
            shown = _series(results)
            raise FetchError(
                SEVERAL_SERIES % {"count": len(results), "shown": shown, "query": query}
            )
        if "histogram" in results[0] and "value" not in results[0]:
            raise FetchError(NATIVE_HISTOGRAM % {"query": query})
        value = results[0]["value"][1]
    number = _finite(value)
    if number is None:
        # Prometheus answers NaN for 0/0 (a rate with no traffic) and +-Inf for x/0.
        raise FetchError(NOT_FINITE % {"value": value, "query": query})
    return number


async def _fetched(
    fetcher: WebFetcher, url: str, credentials: Credentials | None, form: bytes = b""
) -> FetchResult:
    """A source's answer; its 401 or 403 said as what to do about the credentials."""
    header = credentials.header if credentials else None
    try:
        fetched = await fetcher.fetch(
            url, accept="application/json", authorization=header, form=form
        )
    except HttpStatusError as exc:
        said = _status_said(exc, url, credentials)
        body = credentials.scrubbed_body(exc.body) if credentials else exc.body
        raise HttpStatusError(exc.status, exc.url, body, said, exc.retry_after) from None
    if credentials:  # scrubbed before any of it is shown, or cut inside the value
        fetched.body = credentials.scrubbed_body(fetched.body)
    return fetched


# A challenge's auth-scheme (RFC 9110 11.6.1): a token at the start or after a comma, followed
# by a space and no "=" (its params or token68) or by the end: not an auth-param's name. Read
# with its quoted strings blanked (QUOTED, escapes and all): a realm's words are no scheme.
CHALLENGE = re.compile(r"(?:^|,)\s*([-!#$%&'*+.^_`|~0-9A-Za-z]+)(?=\s*(?:,|$)|\s+[^=,\s])")
# An opening quote always matches (its close, or the end, a lone backslash there too): one
# that could fail was tried again at every later quote, quadratic in a hostile header.
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?$)', re.DOTALL)
CHALLENGE_READ = 4096  # characters of a WWW-Authenticate read for its schemes
SENT = ("basic", "bearer")  # the schemes a source's auth sends


def _status_said(exc: HttpStatusError, url: str, credentials: Credentials | None) -> str:
    """A status the credentials or the POST explain, said as what to do; else as it is (where
    a redirect led, or a hop that came back to the source after it, no credentials went)."""
    # RFC 9110 15.5.2: a 401 names the schemes it takes (WWW-Authenticate): basic or bearer
    # among them the one said, else the first.
    schemes = [
        named.capitalize() if named.lower() in SENT else named
        for named in CHALLENGE.findall(QUOTED.sub('""', exc.challenge[:CHALLENGE_READ]))
    ]
    sent = [named for named in schemes if named.lower() in SENT]
    scheme = (sent or schemes or ["not named"])[0]
    if exc.posted and exc.status == 303:
        return POSTED_SEE_OTHER % {"target": scrubbed(exc.location, 150)}
    if exc.posted and exc.status == 403 and credentials and exc.authorized:
        return POST_FORBIDDEN_SECRET % {"secret": credentials.secret}
    if exc.posted and exc.status == 403:
        return POST_FORBIDDEN
    if exc.posted and exc.status == 405:
        return POST_REFUSED % {"status": exc.status, "path": QUERY_PATH}
    if exc.status == 401 and schemes and not sent and keeps_credentials(url, exc.url):
        return UNSUPPORTED_SCHEME % {"scheme": scheme}
    if credentials and exc.authorized and exc.status == 401:
        return CREDENTIALS_REFUSED % {"secret": credentials.secret, "scheme": scheme}
    if credentials and exc.authorized and exc.status == 403:
        return CREDENTIALS_FORBIDDEN % {"secret": credentials.secret}
    if not credentials and exc.status == 401 and keeps_credentials(url, exc.url):
        kind = "basic" if scheme == "Basic" else "bearer"
        return NO_CREDENTIALS % {"scheme": scheme, "type": kind}
    return str(exc)


def _prometheus_error(answer: object) -> str | None:
    """``errorType: error`` of a Prometheus HTTP API error answer (bytes or parsed)."""
    if isinstance(answer, bytes):
        try:
            answer = json.loads(answer)
        except ValueError:
            return None
    if not isinstance(answer, dict) or answer.get("status") != "error":
        return None
    return f"{answer.get('errorType') or 'error'}: {answer.get('error') or 'no detail'}"


# The labels that say most of a series, named first: in alphabetical order a target's
# `container`, `endpoint` and such filled the 80 characters a series is shown in.
TELLING = ("__name__", "job", "instance")


def _series(results: list[Any]) -> str:
    """The first three series of a vector by the labels that tell them apart (``TELLING``
    first, then alphabetically)."""
    labels = [(r.get("metric") or {}) if isinstance(r, dict) else {} for r in results]
    apart = sorted(
        {k for each in labels for k in each if len({str(m.get(k)) for m in labels}) > 1},
        key=lambda k: (TELLING.index(k) if k in TELLING else len(TELLING), k),
    )
    return _listed(
        ["{" + ",".join(f'{k}="{each.get(k, "")}"' for k in apart) + "}" for each in labels[:4]]
    )


def _listed(items: list[str]) -> str:
    """The first three of ``items``, each cut after 80 characters, then "…" for the rest: said
    in punctuation (a page's language), and short enough that the 500 characters a check
    keeps of its error hold the words after them (its message then reads back, said_refusal)."""
    shown = [item if len(item) <= 80 else f"{item[:79]}…" for item in items[:3]]
    return ", ".join(shown + ["…"] * (len(items) > 3))


def _json(result: FetchResult, asked: str) -> Any:
    """A metric answer's JSON; one that is not JSON (a proxy's sign-in page) said as what
    came back, not as the decoder's "Expecting value: line 1 column 1"."""
    try:
        return _loaded(result)
    except ValueError as exc:
        kind = result.content_type.split(";")[0].strip() or NO_CONTENT_TYPE
        if "json" in kind:  # JSON, broken: where the decoder stopped
            said = NO_NUMBER % {"error": f"{type(exc).__name__}: {exc}"}
            raise FetchError(said) from None
        title = LexborHTMLParser(result.text()).css_first("title") if "html" in kind else None
        if title is not None and (named := " ".join(title.text().split())[:100]):
            shown = f"<title>{named}</title>"
        else:
            shown = " ".join(result.text()[:300].split())[:100] or '""'
        said = NOT_JSON % {"kind": kind, "shown": shown}
        if result.url != asked:  # a sign-in page a proxy led to
            said = REDIRECTED % {"reason": said, "url": scrubbed(result.url, 150)}
        raise FetchError(said) from None


def _loaded(result: FetchResult) -> Any:
    """A JSON answer's document: UTF-8 (RFC 8259), else in the charset its Content-Type
    declares (many Chinese services answer `application/json;charset=GBK`)."""
    try:
        return json.loads(result.body)
    except UnicodeDecodeError:
        encoding = declared_encoding(result.content_type)
        if encoding is None:
            raise
        return json.loads(result.body.decode(encoding))


def _where(path: JSONPath) -> str | None:
    """A JSONPath match's place as a path the reader takes (jsonpath-ng's, from the root);
    None: a value computed there (`this`, `len`), no place in the document."""
    return f"$.{path}" if _placed(path) else None


def _placed(path: JSONPath) -> bool:
    """Whether ``path`` names a place in the document (keys and indexes)."""
    if isinstance(path, Child):
        return _placed(path.left) and _placed(path.right)
    return isinstance(path, Fields | Index)


def _shown(value: object, limit: int = 100) -> str:
    """A JSON value as the answer wrote it (null, true, "42"), cut after ``limit`` characters."""
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= limit else f"{shown[:limit]}…"  # no words: a page's language


def _finite(value: object) -> float | None:
    """A number or a number's text as a float; None for anything else, NaN and infinity."""
    # NaN and infinity compare false or breach every line, and cannot travel as JSON.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None  # float(True) is 1.0: a flag is no reading
    if isinstance(value, str) and not NUMBER.fullmatch(value):
        return None  # "2024_12" read 202412.0, and "NaN" is none either
    try:
        number = float(value)
    except (ValueError, OverflowError):  # an integer past float's range overflows
        return None
    return number if math.isfinite(number) else None
