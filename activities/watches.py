"""Checks of news digests and threshold watches: fetch, extract, compare, read metrics; and
``read_page``, how every check reads a page (web monitors check in activities/polling.py).

What the outside world answers is data: a page that cannot be fetched or parsed is an
``error`` check, a metric source that answers HTML is a failed reading. Only bad input
from the workflow itself raises (a non-retryable ``ApplicationError`` with a type).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import overload

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ambient.clients.extract import FEED_HEAD, UNREADABLE, extracted, extractor_for
from ambient.clients.metric_reads import (
    KEPT,
    NO_NUMBER,
    Credentials,
    read_json_number,
    read_prometheus,
)
from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.tencent.client import TencentCloud, calls_within
from ambient.clients.tencent.errors import RATE_LIMITS, TencentCloudError, TencentRetryableError
from ambient.clients.tencent.metrics import (
    NOT_ANSWERED,
    NoCurrentValueError,
    coded,
    latest_metric_point,
)
from ambient.clients.web import WebFetcher, validators_key
from ambient.clients.web_errors import (
    FROM_SOURCE,
    NO_BODY,
    FetchError,
    HttpStatusError,
    NoAnswerError,
    fetch_refusal,
)
from ambient.cloud.errors import failure
from ambient.domain.checks import CheckPageInput, MetricReading, PageCheck, ReadMetricInput
from ambient.domain.configs import STORED
from ambient.refusals import Refusal
from ambient.storage import Database
from ambient.storage.polls import WatchSnapshot
from ambient.storage.users import user_named
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import UrlState
from ambient.watches.page_changes import PageDiff, diff_pages, normalise
from ambient.watches.poll_store import PageText, advance_round, advance_snapshot
from ambient.watches.threshold_config import HttpJsonSource, MetricSource, PrometheusSource

SOURCES: TypeAdapter[MetricSource] = TypeAdapter(MetricSource)


@dataclass
class Page:
    """A page read: ``fresh`` validators and bytes' hash, its ``lines``, ``text`` and ``hash``,
    and the ``extractor`` tag of the path that read it."""

    fresh: dict[str, str | None]
    lines: list[str]
    text: str
    hash: str
    extractor: str
    # The tag the release before read this same text under, if it read the same (EARLIER).
    earlier: str | None = None


@dataclass
class SameBytes:
    """A page of the bytes its last text was read from: no text read, ``fresh`` as Page's;
    ``extractor``, the tag that text was read under (the path's now)."""

    fresh: dict[str, str | None]
    extractor: str


@dataclass
class NotModified:
    """A 304: the page as last read; the ``validators`` to send next, and where from."""

    validators: dict[str, str | None]


@overload
async def read_page(fetcher: WebFetcher, url: str, config: WebMonitorConfig | None) -> Page: ...
@overload
async def read_page(
    fetcher: WebFetcher, url: str, config: WebMonitorConfig | None, seen: UrlState | None
) -> Page | SameBytes | NotModified: ...
async def read_page(
    fetcher: WebFetcher, url: str, config: WebMonitorConfig | None, seen: UrlState | None = None
) -> Page | SameBytes | NotModified:
    """The page, its text read once by ``config``'s rules; SameBytes if its bytes are those of
    ``seen``'s text, NotModified if not modified since ``seen``. Nothing seen: always a Page."""
    # Every diff, keyword hit and stored hash of a page come from the one text read here.
    last = seen or UrlState()  # nothing seen: no validators sent, the text read
    fetched = await fetcher.fetch(
        url,
        etag=last.etag,
        last_modified=last.last_modified,
        validators_from=last.validators_from,
    )
    # The validators and where they came from (None: the page's own URL; else, as a key,
    # where a redirect led), a 304's too.
    validators = {
        "etag": fetched.etag,
        "last_modified": fetched.last_modified,
        "validators_from": validators_key(fetched.url) if fetched.url != url else None,
    }
    if fetched.not_modified:
        return NotModified(validators)
    if not fetched.body or fetched.body.isspace():
        # A 204 No Content, an empty 200: nothing was sent to read (the extractor's "has no
        # text" asked whether the page is rendered by JavaScript). Its URL is beside it.
        raise FetchError(str(Refusal(NO_BODY, status=fetched.status)))
    raw_hash = hashlib.sha256(fetched.body).hexdigest()
    fresh = {**validators, "raw_hash": raw_hash}
    selector, ignored = (config.selector_for(url), config.ignore_patterns) if config else (None, [])
    # The same bytes as last time, their text read under the tag this answer is read under
    # now: the same text, not read again. Another tag (a JSON answer the release before read
    # as a page) is read anew, or its next change would be a baseline, not told.
    same = last.hash is not None and raw_hash == last.raw_hash
    head = fetched.body[:FEED_HEAD].decode("utf-8", "replace")  # a feed served as a page
    if same and last.extractor == extractor_for(selector, fetched.content_type, head):
        return SameBytes(fresh, last.extractor)
    kind = fetched.content_type
    try:
        html = fetched.text()
    except Exception as exc:  # bytes no codec reads: a failed check of this page, not the poll's
        raise FetchError(f"{UNREADABLE}{exc}") from None
    # The body, then its text, are not held while the check waits for a thread to extract
    # and for its write (docs/benchmarks.md, "Worker memory", round 5).
    del fetched

    def read() -> tuple[list[str], str, str | None]:
        text, extractor, earlier = extracted(html, selector, kind)
        return normalise(text, ignored), extractor, earlier

    try:
        # Extraction is CPU work: keep it off the event loop the other checks share.
        lines, extractor, earlier = await asyncio.to_thread(read)
    except Exception as exc:  # the page (or its selector) cannot be read: a failed check
        raise FetchError(f"{UNREADABLE}{exc}") from None
    text = "\n".join(lines)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Page(fresh, lines, text, digest, extractor, earlier)


class WatchActivities:
    def __init__(
        self,
        db: Database,
        fetcher: WebFetcher,
        tencent: TencentCloud,
        secrets: SecretResolver | None = None,
    ) -> None:
        self._db = db
        self._fetcher = fetcher
        self._tencent = tencent
        self._secrets = secrets or SecretResolver({})

    @activity.defn
    async def check_page(self, check: CheckPageInput) -> PageCheck:
        """Fetch one news page and compare its main text with the newest stored for it (with
        a round's: the newest an earlier round stored)."""
        if check.round is not None:
            return await self._check_round(check, check.round)
        async with self._db.session() as session:
            stored = (
                await session.execute(
                    select(WatchSnapshot.id, WatchSnapshot.hash, WatchSnapshot.created_at)
                    .where(WatchSnapshot.task == check.task, WatchSnapshot.url == check.url)
                    .order_by(WatchSnapshot.created_at.desc(), WatchSnapshot.id.desc())
                    .limit(2)
                )
            ).all()
        last_hash = stored[0].hash if stored else None
        try:
            read = await read_page(self._fetcher, check.url, None)
        except FetchError as exc:
            return PageCheck(url=check.url, outcome="error", error=str(exc))
        # An earlier attempt of this check stored it and its answer was lost (a worker
        # killed): the change is still news, against the text stored before it.
        if read.hash == last_hash and not _stored_by_an_earlier_attempt(stored[0].created_at):
            return PageCheck(url=check.url, outcome="unchanged", hash=read.hash)
        if read.hash == last_hash:
            before = await self._snapshot_text(stored[1].id) if len(stored) > 1 else None
        else:
            # The new text stored and the old one read back, in one short write transaction.
            async with self._db.writing() as session:
                page = PageText(check.url, last_hash, read.hash, read.text)
                before = await advance_snapshot(session, check.task, page)
        return await _compared(check, read, before)

    async def _check_round(self, check: CheckPageInput, round: str) -> PageCheck:
        """``check`` as one of its round's: against the text the rounds before stored last,
        which every check of the round compares with (`advance_round`)."""
        try:
            read = await read_page(self._fetcher, check.url, None)
        except FetchError as exc:
            return PageCheck(url=check.url, outcome="error", error=str(exc))
        async with self._db.writing() as session:
            page = PageText(check.url, None, read.hash, read.text)
            last_hash, before = await advance_round(session, check.task, round, page)
        if read.hash == last_hash:
            return PageCheck(url=check.url, outcome="unchanged", hash=read.hash)
        return await _compared(check, read, before)

    async def _snapshot_text(self, snapshot_id: int) -> str | None:
        async with self._db.session() as session:
            return await session.scalar(
                select(WatchSnapshot.text).where(WatchSnapshot.id == snapshot_id)
            )

    @activity.defn
    async def read_metric(self, request: ReadMetricInput) -> MetricReading:
        """The current value of a metric source; errors are readings, not failures."""
        try:
            # The watch's config as it ran (stored data): a rule added since refuses it at the
            # doors, not here on every check of a watch that is running.
            source = SOURCES.validate_python(request.source, context=STORED)
        except ValidationError as exc:
            raise ApplicationError(
                f"source: not a metric source: {exc}",
                type="InvalidMetricSource",
                non_retryable=True,
            ) from None
        credentials = None
        try:
            if isinstance(source, HttpJsonSource):
                credentials = await self._credentials(source, request.owner, request.sender)
                value = await read_json_number(
                    self._fetcher, str(source.url), source.json_path, credentials
                )
            elif isinstance(source, PrometheusSource):
                credentials = await self._credentials(source, request.owner, request.sender)
                value = await read_prometheus(
                    self._fetcher, str(source.url), source.query, credentials
                )
            else:
                within = _cloud_read_time()
                try:
                    # The SDK's request ends with the read (its thread, of the process's
                    # shared pool, was held for its own 30 s after a local read was ended).
                    async with calls_within(within) if within else contextlib.nullcontext():
                        point = await latest_metric_point(
                            self._tencent,
                            source.namespace,
                            source.metric,
                            source.dimensions,
                            period=source.period,
                            region=source.region,
                            # A local read is cut off after a moment and read again as an
                            # activity: backing off inside it sent the refused tries twice.
                            patient=not _local(),
                        )
                except TimeoutError:
                    if _local():  # finished as a regular read, given its longer time
                        raise ApplicationError(
                            f"Cloud Monitor did not answer within {within:.1f} s",
                            type="LocalReadSlow",
                            # A planned hand-over, logged at DEBUG: each was a warning with a
                            # traceback, 143 in one throttled hour, burying real errors.
                            category=ApplicationErrorCategory.BENIGN,
                        ) from None
                    said = NOT_ANSWERED % {"seconds": f"{within:.0f}"}
                    raise TencentRetryableError(*coded(said)) from None
                return MetricReading(value=point.value, at=point.time)
        except TencentRetryableError as exc:
            if exc.code.startswith(RATE_LIMITS) and _local():
                # Rate-limited: handed to the activity read, which backs off (one try here).
                raise ApplicationError(
                    str(exc)[:500], type="RateLimited", category=ApplicationErrorCategory.BENIGN
                ) from None
            return self._failed(request, exc)
        except FetchError as exc:
            # An HTTP status or a timeout said with its endpoint: nothing beside a threshold
            # watch's alert or a remediation's hand-over names it (a web monitor's page row
            # does, so the fetch's own words leave it out).
            where = ""
            if fetch_refusal(str(exc)) and isinstance(source, HttpJsonSource | PrometheusSource):
                where = FROM_SOURCE % {"reason": "", "url": source.url}
            return self._failed(request, exc, where, credentials)
        except NoCurrentValueError as exc:
            # Its datapoint's time in the owner's zone, as the watch says its other times.
            return self._failed(request, exc.in_zone(await self._zone(request.owner)))
        except TencentCloudError as exc:
            return self._failed(request, exc)
        except (ValueError, LookupError, TypeError, AttributeError, RecursionError) as exc:
            # The source answered, but not with what it should (HTML for JSON, a wrong shape,
            # JSON nested past the parser's depth: read again, it crashed the same way).
            said = NO_NUMBER % {"error": f"{type(exc).__name__}: {exc}"}
            return MetricReading(error=_scrubbed(said, credentials)[:500])
        return MetricReading(value=value)

    async def _zone(self, owner: str | None) -> str:
        """``owner``'s time zone (UTC for a read of no one's, or of a user since removed)."""
        user = await user_named(self._db, owner) if owner is not None else None
        return user.timezone if user is not None and user.timezone else "UTC"

    async def _credentials(
        self, source: HttpJsonSource | PrometheusSource, owner: str | None, sender: str | None
    ) -> Credentials | None:
        """The source's Authorization, its secret read now (settings, never history), if its
        ``owner`` (and its ``sender``, if any) may still use it (as a notification target's at
        send)."""
        if source.auth is None:
            return None
        name = source.auth.secret.removeprefix("secret:")
        try:
            # The operator may have removed it, its origin or its user since the watch began.
            readers = dict.fromkeys(u for u in (owner, sender) if u is not None)
            if not readers:  # a read of no one's: only where its value may go
                self._secrets.check_origin(source.auth.secret, str(source.url))
            for who in readers:
                user = await user_named(self._db, who)
                admin = user is not None and user.is_admin
                self._secrets.check_use(
                    source.auth.secret, str(source.url), user=who, is_admin=admin
                )
            value = self._secrets.resolve(source.auth.secret)
        except PermanentNotifyError as exc:
            raise FetchError(str(exc)) from None
        return Credentials.of(source.auth.type, name, value)

    @staticmethod
    def _failed(
        request: ReadMetricInput,
        exc: FetchError | TencentCloudError,
        where: str = "",
        credentials: Credentials | None = None,
    ) -> MetricReading:
        """A read that failed (``where``: whose endpoint, said after the error): a failed
        reading, or (``retry_failures``) a retryable error; the secret's value unsaid."""
        said = _scrubbed(f"{_readable(exc)}{where}", credentials)
        if request.retry_failures and _may_pass_later(exc):
            reads = activity.info().attempt + request.tried
            raise ApplicationError(
                f"{reads} read{'s' if reads > 1 else ''} failed, the last: {said}"[:500],
                type="MetricUnavailable",
            ) from None
        # A reading that failed is state for the watch (failing after N), not a crash;
        # bounded, as it is kept in the watch's history and status.
        return MetricReading(error=said[:KEPT])


def _readable(exc: FetchError | TencentCloudError) -> str:
    """A read's error as said to its owner: Tencent Cloud's as the cloud tools say it, what to
    do about it (the keys, the CAM policy, arrears, a busy or unreachable API), in words its
    page, notification and the voice read back (cloud.errors.read_refusal)."""
    return str(failure(exc)) if isinstance(exc, TencentCloudError) else str(exc)


def _scrubbed(said: str, credentials: Credentials | None) -> str:
    # Scrubbed before it is cut: a value cut in two would be said in part.
    return credentials.scrubbed(said) if credentials else said


async def _compared(check: CheckPageInput, read: Page, before: str | None) -> PageCheck:
    """``read`` against the text ``before`` it (None: no last text, a first look; "": gone)."""
    old = before.split("\n") if before else ([] if before is not None else None)
    diff: PageDiff = await asyncio.to_thread(diff_pages, old, read.lines, check.keywords)
    return PageCheck(
        url=check.url,
        outcome="baseline" if old is None else "changed",
        hash=read.hash,
        hits=diff.hits,
        excerpt=diff.excerpt,
        more_added=diff.more_added,
    )


def _stored_by_an_earlier_attempt(stored_at: datetime) -> bool:
    """Whether an earlier attempt of the running activity stored what was stored then."""
    if not activity.in_activity():
        return False
    info = activity.info()
    return info.attempt > 1 and stored_at >= info.scheduled_time


# Seconds of an activity's time left when a Cloud Monitor read is given up: the SDK's own
# request timeout (30 s) is as long as the read's activity, which timed out first, and the
# watch said "activity StartToClose timeout", nothing of what did not answer.
CLOUD_READ_MARGIN = 5.0


def _cloud_read_time() -> float | None:
    """How long a Cloud Monitor read of this activity may take (None: not in an activity, or
    it has no bound): its time but CLOUD_READ_MARGIN (a fifth of a local read's few seconds)."""
    if not activity.in_activity() or (limit := activity.info().start_to_close_timeout) is None:
        return None
    seconds = limit.total_seconds()
    if _local():  # a few seconds: a fifth kept, then finished as the regular read
        return seconds * 0.8
    return max(seconds - CLOUD_READ_MARGIN, 1.0)


def _local() -> bool:
    """Whether this read runs as a local activity (the threshold watch's first try)."""
    return activity.in_activity() and activity.info().is_local


def _may_pass_later(error: FetchError | TencentCloudError) -> bool:
    """No answer, or a busy server or API: the same read may pass in a moment (an answer of
    the wrong shape, a refused address or certificate, a 4xx does not)."""
    if isinstance(error, HttpStatusError):
        return error.status >= 500 or error.status == 429
    return isinstance(error, NoAnswerError | TencentRetryableError)
