"""Watches as the product defines them: their configs and how they are checked at entry.

The threshold watch's config is in ambient/watches/threshold_config.py, its rule in
ambient/watches/threshold_rule.py, what changed on a page in ambient/watches/page_changes.py.

Pure and deterministic (no clock, no I/O): workflows import this through the sandbox.
Configs accept the original task configs as they are (``check_interval_minutes``,
``notification: {"method": "send_sms", ...}``, ``metric`` + ``threshold``).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import re2
from jsonpath_ng.ext import parse as parse_jsonpath
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BeforeValidator,
    Field,
    HttpUrl,
    Strict,
    StringConstraints,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from selectolax.lexbor import LexborHTMLParser
from temporalio import workflow

from ambient.domain.configs import (
    UserConfig,
    readable_json_path,
    reading_stored,
    shows_nothing,
    unseen,
    unseen_codes,
)
from ambient.domain.notify import MAX_TARGETS, Target
from ambient.refusals import N_, Refusal
from ambient.watches.notification_spec import Notification

MAX_URLS = 50
MAX_KEYWORDS = 100
MAX_PATTERNS = 50
MAX_CONDITIONS = 10

# Numbers are numbers: `true` or "5" is refused, not read as 1 or 5; NaN and infinity too.
Number = Annotated[float, Strict(), AllowInfNan(False)]
Count = Annotated[int, Strict()]


def _host_as_written(value: Any) -> Any:
    # The URL standard reads "http:///path" as host "path"; a URL a person wrote without a
    # host is a mistake, not a page to poll.
    if isinstance(value, str) and re.match(r"^\s*https?:", value, re.IGNORECASE):
        after = re.sub(r"^\s*https?:", "", value, flags=re.IGNORECASE)
        if not after.startswith("//") or after[2:3] in ("", "/", "\\", "?", "#"):
            raise ValueError("must be an http(s) URL with a host, e.g. https://example.com/page")
    return value


def _as_read(url: str) -> str:
    """A URL as ``WebUrl`` reads it; not one: as it is."""
    try:
        return str(_URLS.validate_python(url))
    except ValidationError:
        return url


MAX_URL = 2048


def _sent_length(url: HttpUrl, info: ValidationInfo) -> HttpUrl:
    """A URL as it is sent and stored (its non-ASCII percent-encoded: three to nine times as
    long) fits the stored page's column: a 620-character Chinese path, 5,420 encoded, was
    taken, and PostgreSQL refused every check's text of it (SQLite kept it); a stored one as
    it ran."""
    if len(str(url)) > MAX_URL and not reading_stored(info):
        raise ValueError(
            f"the URL is {len(str(url)):,} characters as sent (its non-ASCII characters "
            f"percent-encoded): at most {MAX_URL:,}"
        )
    return url


# http(s) with a host, at most 2,048 characters as typed and as sent (HttpUrl refuses file:,
# gopher:, javascript:).
WebUrl = Annotated[
    HttpUrl,
    UrlConstraints(max_length=MAX_URL, allowed_schemes=["http", "https"]),
    BeforeValidator(_host_as_written),
    AfterValidator(_sent_length),
]
_URLS: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


LISTED_TWICE = N_(
    "%(url)s is listed twice (%(name)s[%(first)s] and %(name)s[%(second)s]); list each page once"
)


def listed_once(urls: list[Any], info: ValidationInfo) -> list[Any]:
    """Each page once, as URLs are read ("https://EXAMPLE.com" is "https://example.com/"): a
    page listed twice was checked twice (a monitor's failures counted twice); a stored list
    as it ran."""
    first: dict[str, int] = {}
    for index, url in enumerate(urls):
        if str(url) in first and not reading_stored(info):
            raise Refusal(
                LISTED_TWICE,
                url=repr(str(url)),
                name=info.field_name,
                first=first[str(url)],
                second=index,
            )
        first.setdefault(str(url), index)
    return urls


PageUrls = Annotated[list[WebUrl], AfterValidator(listed_once)]
Pattern = Annotated[str, StringConstraints(min_length=1, max_length=500)]


# RE2's reasons (its error codes' words, then ": " and the part of the pattern at fault), said
# in the page's language by these msgids; another is said as RE2 words it.
RE2_REASONS = frozenset(
    {
        N_("unexpected error"),
        N_("invalid escape sequence"),
        N_("invalid character class"),
        N_("invalid character class range"),
        N_("missing ]"),
        N_("missing )"),
        N_("unexpected )"),
        N_("trailing \\"),
        N_("no argument for repetition operator"),
        N_("invalid repetition size"),
        N_("bad repetition operator"),
        N_("invalid perl operator"),
        N_("invalid UTF-8"),
        N_("invalid named capture group"),
        N_("pattern too large - compile failed"),
    }
)


def _re2_reason(reason: str) -> str | Refusal:
    """RE2's reason, a Refusal where it is one of RE2_REASONS (its English as RE2 words it)."""
    code, sep, part = reason.partition(": ")
    if code not in RE2_REASONS:
        return reason
    return (
        Refusal("%(problem)s: %(part)s", problem=Refusal(code), part=part) if sep else Refusal(code)
    )


def compile_user_regex(pattern: str, *, ignore_case: bool = False) -> Any:
    """A user's regular expression in RE2: linear time, so no pattern can stall the worker."""
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the user's error, not a log line
    options.case_sensitive = not ignore_case
    # A page is matched line by line: no pattern matches a line break (an ignore pattern's
    # "[^|]+" took every line after its own away, "\s*" joined two lines).
    options.never_nl = True
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise Refusal(
            "%(pattern)s is not a valid regular expression: %(reason)s (RE2 syntax: no "
            "backreferences or lookaround)",
            pattern=repr(pattern),
            reason=_re2_reason(str(reason)),
        ) from None


def check_selector(selector: str) -> str:
    """A CSS selector selectolax can run; refused at creation, not at the first check."""
    try:
        LexborHTMLParser("<p></p>").css(selector)
    except Exception:  # selectolax raises its own error type for every parse failure
        raise ValueError(f"{selector!r} is not a valid CSS selector") from None
    return selector


def check_json_path(path: str) -> str:
    """A JSONPath that compiles (jsonpath-ng, the reader's own parser)."""
    if workflow.in_workflow() or workflow.unsafe.in_sandbox():
        # Checked where the config entered; jsonpath-ng imports its parser tables on every
        # parse, which the workflow sandbox would re-import (and warn about) on each run.
        return path
    try:
        parse_jsonpath(readable_json_path(path))
    except Exception as exc:  # jsonpath-ng raises lexer/parser errors outside ValueError
        raise ValueError(f"{path!r} is not a valid JSONPath: {exc}") from None
    return path


def _check_keyword(value: str, info: ValidationInfo) -> str:
    if reading_stored(info):
        return value  # as it ran: a replay matches what the run matched
    regex = value.startswith("re:")
    text = value[3:] if regex else value
    if regex:
        # A pattern that matches empty text ("re:", "re:error|", "re:\\b" or "re:a|\\b" in a
        # line: every match, not only the first) matches every line, as " " did.
        pattern = compile_user_regex(text, ignore_case=True)
        if any(not m.group() for line in ("", "a b") for m in pattern.finditer(line)):
            raise Refusal(
                "%(pattern)s matches empty text, so every line: a hit at every change; write "
                "what a line must contain (no empty alternative, not only '?', '*' or '\\b')",
                pattern=repr(text),
            )
    # Pages are matched with their whitespace collapsed: spaces around a word are no part of
    # it, and " " alone would match every line that has two words.
    if text.isspace():
        raise ValueError("a keyword of only spaces matches every line: write a word or phrase")
    # A pattern's text is read as a word is: a raw U+200B in it matches nothing a person reads
    # either (an escape, \x{200B}, is no raw one).
    if shows_nothing(text):
        raise Refusal(
            "a keyword of only invisible characters (%(codes)s) matches nothing a person "
            "reads on a page: write a word or phrase",
            codes=unseen_codes(text),
        )
    if (hidden := unseen_inside(text)) is not None:
        raise Refusal(
            "a keyword with an invisible character inside it (%(code)s at character "
            "%(position)s) matches nothing a person reads on a page: write it without",
            code=f"U+{ord(text[hidden]):04X}",
            position=str(len(value) - len(text) + hidden + 1),
        )
    return value if regex else value.strip()


def unseen_inside(text: str) -> int | None:
    """Where ``text`` holds a character a person does not see amid a word they do (U+200B in
    "error", a soft hyphen, U+2060, U+FEFF); None when each one shapes what it sits on: a
    combining mark on its letter (e + U+0301), a joiner in an emoji sequence or a script that
    joins (U+200D, U+200C), a flag's tags. At a word's edge one hides no part of it."""
    on = False  # a character shown before this one, in this word
    for i, c in enumerate(text):
        if c.isspace() or not unseen(c):
            on = not c.isspace()
            continue
        rest = text[i + 1 :]
        after = rest[:1]
        if (
            not on
            or shows_nothing(rest.split()[0] if after.strip() else "")
            or unicodedata.category(c) == "Mn"
            or "\U000e0020" <= c <= "\U000e007f"
            # Latin letters are drawn alike with or without a joiner: there it hides.
            or (c in "\u200c\u200d" and not unseen(after) and not (text[i - 1] + after).isascii())
        ):
            continue
        return i
    return None


def _check_ignore_pattern(value: str) -> str:
    compile_user_regex(value)
    return value


Keyword = Annotated[Pattern, AfterValidator(_check_keyword)]
IgnorePattern = Annotated[Pattern, AfterValidator(_check_ignore_pattern)]
Selector = Annotated[Pattern, AfterValidator(check_selector)]


class TaskKind(StrEnum):
    WEB_MONITOR = "web_monitor"
    THRESHOLD_WATCH = "threshold_watch"
    SCHEDULE = "schedule"
    NEWS_DIGEST = "news_digest"
    DAILY_BRIEFING = "daily_briefing"  # one per user: `daily-briefing/{user}`


class TaskState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"


# A task's id is `{prefix}/{user}/{name}` (a daily briefing's: `daily-briefing/{user}`).
PREFIXES = {
    TaskKind.WEB_MONITOR: "web-monitor",
    TaskKind.THRESHOLD_WATCH: "threshold-watch",
    TaskKind.SCHEDULE: "reminder",
}


def task_id_for(user: str) -> str:
    """The user's briefing workflow id (one per user)."""
    return f"daily-briefing/{user}"


def task_kind(user: str, task_id: str) -> TaskKind | None:
    """The kind of ``user``'s task ``task_id`` names, read from the id's form; None: the id
    names no task of ``user``'s."""
    if task_id == task_id_for(user):
        return TaskKind.DAILY_BRIEFING
    for kind, prefix in PREFIXES.items():
        if task_id.startswith(f"{prefix}/{user}/"):
            return kind
    return None


class _TaskBase(UserConfig):
    check_interval_minutes: Number = Field(
        default=5, ge=1, le=7 * 24 * 60, description="minutes between checks, at least 1"
    )
    notification: Notification = None
    targets: list[Target] = Field(
        default_factory=list,
        max_length=MAX_TARGETS,
        description=f"extra notification targets [{{channel, target}}], at most {MAX_TARGETS}",
    )
    failure_threshold: Count = Field(
        default=3, ge=1, le=100, description="consecutive failed checks before 'failing' is sent"
    )

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.check_interval_minutes)


# --- web monitor ----------------------------------------------------------------------


class WebMonitorConfig(_TaskBase):
    """Watch pages for changes and keyword hits."""

    urls: PageUrls = Field(
        min_length=1,
        max_length=MAX_URLS,
        description=f"pages to watch: http(s) URLs with a host, 1-{MAX_URLS}",
    )
    keywords: list[Keyword] = Field(
        default_factory=list,
        max_length=MAX_KEYWORDS,
        description="case-insensitive; plain text, or a regular expression (RE2 syntax) "
        f"prefixed with 're:'; at most {MAX_KEYWORDS}",
    )
    selectors: dict[Annotated[str, StringConstraints(max_length=2048)], Selector] = Field(
        default_factory=dict,
        max_length=MAX_URLS,
        description="optional CSS selector per URL (URL -> selector), checked at creation",
    )
    ignore_patterns: list[IgnorePattern] = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="regular expressions (RE2 syntax) removed before comparing, "
        f"at most {MAX_PATTERNS}",
    )

    @field_validator("selectors")
    @classmethod
    def _one_selector_a_page(
        cls, selectors: dict[str, str], info: ValidationInfo
    ) -> dict[str, str]:
        # urls are read as URLs ("https://Example.com/新闻" is "https://example.com/%E6..."):
        # a key is looked up the same way (`selector_for`), so the keys of one page must agree.
        # Kept as written: a stored monitor's state from before was read by the exact key
        # (`compares_with`).
        read: dict[str, str] = {}
        for key, selector in selectors.items():
            url = _as_read(key)
            if read.setdefault(url, selector) != selector and not reading_stored(info):
                raise ValueError(f"{url!r} is one page with two selectors; give it one")
        return selectors

    @field_validator("urls")
    @classmethod
    def _checked_once(cls, urls: list[HttpUrl]) -> list[HttpUrl]:
        # A monitor stored with a page twice (``listed_once``) checks it once.
        return list({str(url): url for url in urls}.values())

    @model_validator(mode="after")
    def _selectors_of_watched_urls(self, info: ValidationInfo) -> WebMonitorConfig:
        # A selector keyed by a URL that is not watched would never be used.
        watched = {form for url in self.urls for form in (str(url), str(url).rstrip("/"))}
        unused = [key for key in self.selectors if _as_read(key) not in watched]
        if unused and reading_stored(info):
            self.selectors = {k: v for k, v in self.selectors.items() if k not in unused}
        elif unused:
            raise ValueError(
                f"selectors: {unused[0]!r} is not one of the watched urls; key each selector "
                "by a URL of `urls`"
            )
        return self

    def selector_for(self, url: str) -> str | None:
        """The selector of a key read as ``url`` is (the last, of a stored monitor's keys)."""
        found = {_as_read(k): v for k, v in self.selectors.items()}  # few, if any
        return found.get(url) or found.get(url.rstrip("/"))

    def reading(self, url: str, *, as_before: bool = False) -> str:
        """The rules that make ``url``'s text of its page (its selector, the ignore patterns),
        as a digest: a text made by other ones is not comparable with this one's. As before:
        with the selector keyed exactly by ``url``, as pages were read before keys were read
        as URLs (when their states kept no reading)."""
        exact = self.selectors.get(url) or self.selectors.get(url.rstrip("/"))
        rules = json.dumps([exact if as_before else self.selector_for(url), self.ignore_patterns])
        return hashlib.sha256(rules.encode()).hexdigest()[:16]

    def compares_with(self, url: str, reading: str | None) -> bool:
        """Whether a text of ``url`` read by ``reading`` compares with one read now. A state
        saved before readings were kept (None) was read by the exact key: when that gave
        other rules, the first read now is a new baseline, not a change of the page."""
        now = self.reading(url)
        return reading == now or (reading is None and self.reading(url, as_before=True) == now)
