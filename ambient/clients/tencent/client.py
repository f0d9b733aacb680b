"""The Tencent Cloud client: region, endpoint override, off-loop calls, retries (its credentials
in credentials.py).

Every product goes through its SDK client's signed request (`_call`: real TC3 signing and
transport; the body read by `transport.answer`, not `call_json`); calls run in a thread
because the SDK is synchronous. The SDK's own retryer and region
breaker stay off (see NOTES): rate limits back off here, anything else that is
retryable is left to the caller (Temporal retry policies in activities).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from ambient.clients.tencent.credentials import credential_from_env
from ambient.clients.tencent.errors import (
    ANSWER,
    LIST_CHANGED,
    PRODUCT_NAMES,
    RATE_LIMITS,
    REGION_NOT_OFFERED,
    TencentAnswerError,
    TencentCloudError,
    TencentListChangedError,
    TencentNotConfiguredError,
    TencentNotFoundError,
    TencentRequestError,
    translate,
)
from ambient.clients.tencent.transport import answer, unanswered
from ambient.domain.identifiers import (
    TENCENT_REGION_EXAMPLES,
    TENCENT_REGION_SHORT_NAMES,
    tencent_region,
)
from ambient.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
CACHE_TTL = 300.0  # seconds a read-mostly answer (topics, clusters) is kept
SLOW_READ = 0.5  # seconds: `read_soon`'s read still running after this is a slow one
LIMIT_RETRIES = 3  # rate-limited calls retried here before the caller sees the error


def backoff(base: float, attempt: int) -> float:
    """Seconds before a rate-limited call's next try: ``base`` doubled each try, spread over
    half to one and a half of it. Calls refused together came back together, all at 0.5, 1.5
    and 3.5 s, and were refused again: 60 watches' reads at once (their creation, a worker
    back after a pause) sent 220 requests at a limit of 20 a second, 20 reads failing."""
    delay = base * 2**attempt
    return random.uniform(delay / 2, delay * 3 / 2)


# Reads of a list that changed while it was read, each from its first page (a few pages: an
# alarm recovering while the firing ones are read, say), before it is said changed.
LIST_READS = 3
MAX_PAGES = 200  # a paged list without a total read no further (20,000 items of 100 a page)
NOT_CONFIGURED = (
    "Tencent Cloud is not configured: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY "
    "(and AMBIENT_TENCENTCLOUD_REGION), or run on a CVM with a role (AMBIENT_TENCENTCLOUD_CVM_ROLE)"
)


# When the calls made inside `calls_within` are cut off (the loop's clock; None: not bounded).
_deadline: ContextVar[float | None] = ContextVar("tencent_deadline", default=None)
# The shortest request timeout a bounded call is given (the SDK's request needs some).
MIN_REQUEST_TIMEOUT = 0.1


@asynccontextmanager
async def calls_within(seconds: float) -> AsyncIterator[None]:
    """The calls made inside, cut off after ``seconds`` (a TimeoutError), each SDK request
    timed out by then too: the SDK is synchronous, and a request cut off only here held its
    thread until its own timeout (30 s), after its caller had gone."""
    loop = asyncio.get_running_loop()
    outer = _deadline.get()
    deadline = loop.time() + max(0.0, seconds)
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            yield
    finally:
        _deadline.reset(token)


# Time units differ by API (see NOTES): CLS SearchLog and alert records are in milliseconds,
# Monitor GetMonitorData in ISO strings, DescribeAlarmHistories in seconds.
def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def from_ms(value: int | str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


# Common error codes: a region the API does not know is an InvalidParameterValue whose message
# names only its header ("A value specified in X-TC-Region is not valid, ...").
UNKNOWN_REGION = "X-TC-Region"


def unknown_region(region: str, where: str) -> str:
    """A region written as one (ap-guangzhuo) that Tencent Cloud does not know, said by name."""
    known = sorted(set(TENCENT_REGION_SHORT_NAMES.values()))
    close = difflib.get_close_matches(region, known, n=1)
    guess = f"; did you mean {close[0]}?" if close else "."
    named = f"no region named {region}{_set_as(where)}"
    return f"{named}{guess} Regions look like {TENCENT_REGION_EXAMPLES}"


def _set_as(where: str) -> str:
    """Where the region asked came from, when the user did not give it in the call."""
    return "" if where == "region" else f" (set as {where})"


def field(item: Any, name: str, action: str) -> Any:
    """``item[name]``, a field the API reference gives every item of ``action``'s answer;
    without it the answer is not the API's: a TencentAnswerError, not retried."""
    value = item.get(name) if isinstance(item, dict) else None
    if value in (None, ""):
        raise TencentAnswerError(
            ANSWER,
            f"the answer is not the API's: {action} answered an item without its {name} "
            f"(check the way to the API: a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT): "
            f"{str(item)[:200]}",
        )
    return value


class TencentCloud:
    """One entry point for every product; build once per process, pass it down."""

    def __init__(
        self,
        credential: Any | None,
        *,
        region: str,
        endpoint: str | None = None,
        protocol: str = "https",
        timeout: int = 30,
        backoff: float = 0.5,
        tke_extranet: bool = False,
    ) -> None:
        self.credential = credential
        self.region = region
        self.tke_extranet = tke_extranet  # which TKE kubeconfig reaches clusters from here
        self._endpoint, self._protocol, self._timeout = endpoint, protocol, timeout
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        # `shared` reads in flight, with when each began.
        self._reading: dict[tuple[Any, ...], tuple[asyncio.Task[Any], float]] = {}
        self._unread_until: dict[tuple[Any, ...], float] = {}  # `read_soon`'s, failed or late
        self._backoff = backoff

    @classmethod
    def from_settings(cls, settings: Settings) -> TencentCloud:
        return cls(
            credential_from_env(settings.tencentcloud_cvm_role),
            region=settings.tencentcloud_region,
            endpoint=settings.tencentcloud_endpoint,
            protocol=settings.tencentcloud_protocol,
            tke_extranet=settings.tke_extranet,
        )

    @property
    def configured(self) -> bool:
        return self.credential is not None

    def _client(self, product: str, region: str, timeout: float | None = None) -> Any:
        # The SDK's product clients and their models take ~90 ms to import (with requests):
        # only a process that calls Tencent Cloud needs them.
        from tencentcloud.cls.v20201016.cls_client import ClsClient
        from tencentcloud.monitor.v20180724.monitor_client import MonitorClient
        from tencentcloud.tke.v20180525.tke_client import TkeClient
        from tencentcloud.tts.v20190823.tts_client import TtsClient

        products = {"cls": ClsClient, "monitor": MonitorClient, "tke": TkeClient, "tts": TtsClient}
        endpoint = self._endpoint
        if endpoint is None and region.endswith("-fsi"):
            # A finance region is isolated: its domain names it (the nearby domain the SDK
            # picks, <product>.tencentcloudapi.com, serves the other regions only).
            endpoint = f"{product}.{region}.tencentcloudapi.com"
        timeout = self._timeout if timeout is None else min(self._timeout, timeout)
        http = HttpProfile(protocol=self._protocol, endpoint=endpoint, reqTimeout=timeout)
        return products[product](self.credential, region, ClientProfile(httpProfile=http))

    async def call(
        self,
        product: str,
        action: str,
        params: dict[str, Any],
        *,
        region: str | None = None,
        patient: bool = True,
    ) -> dict[str, Any]:
        """The `Response` object of one API call (RequestId removed); ``patient``: a rate
        limit is waited out here (LIMIT_RETRIES tries more, backing off), else raised at once."""
        if self.credential is None:
            raise TencentNotConfiguredError("NotConfigured", NOT_CONFIGURED)
        # The region travels as a header: out of format, the SDK fails it as a (retryable)
        # ClientNetworkError, or the API as an unsupported region; neither can ever work.
        # The configured default is fixed where it is set, not in the call that used it.
        where = "region" if region else "AMBIENT_TENCENTCLOUD_REGION"
        try:
            region = tencent_region(region or self.region)
        except ValueError as exc:
            raise TencentRequestError("InvalidParameterValue.Region", f"{where} {exc}") from None
        for attempt in range(LIMIT_RETRIES + 1):
            # Inside `calls_within`, the request is timed out when its caller is cut off.
            deadline, left = _deadline.get(), None
            if deadline is not None:
                left = max(MIN_REQUEST_TIMEOUT, deadline - asyncio.get_running_loop().time())
            client = self._client(product, region, left)
            try:
                return await asyncio.to_thread(answer, client, action, params)
            except TencentCloudSDKException as exc:
                if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                    # Timed out with its caller (`calls_within`): cut off, as the caller is.
                    raise TimeoutError from None
                error = translate(exc)
                error.unanswered = unanswered(exc)
                # Rate limits (retryable) back off here; the rest is the caller's.
                if patient and error.code.startswith(RATE_LIMITS) and attempt < LIMIT_RETRIES:
                    await asyncio.sleep(backoff(self._backoff, attempt))
                    continue
                if UNKNOWN_REGION in error.message:
                    # Its words name the header, not the region the user gave (a typo).
                    error = TencentRequestError(
                        error.code, unknown_region(region, where), error.request_id
                    )
                elif error.code in REGION_NOT_OFFERED:
                    # Its words name no region: the one asked is what to change.
                    error = TencentRequestError(
                        error.code,
                        f"{PRODUCT_NAMES.get(product, product)} is not offered in region "
                        f"{region}{_set_as(where)}; give a "
                        f"region where it is (its API reference lists them). {error.message}",
                        error.request_id,
                    )
                elif isinstance(error, TencentNotFoundError):
                    # A topic or cluster lives in one region: the id may be right, the region not.
                    error = TencentNotFoundError(
                        error.code,
                        f"{error.message} (looked for in region {region}; if it is in another "
                        "region, give that region)",
                        error.request_id,
                    )
                error.call = (product, action)
                error.role = getattr(self.credential, "role", None)
                error.temporary = error.role is None and bool(self.credential.token)
                raise error from None
        raise AssertionError("unreachable")

    async def cached(self, key: tuple[Any, ...], load: Callable[[], Awaitable[T]]) -> T:
        """Read-mostly answers (topics, clusters) kept for the cache TTL."""
        now = time.monotonic()
        if (hit := self._cache.get(key)) is not None and now - hit[0] < CACHE_TTL:
            return cast(T, hit[1])
        value = await load()
        self._cache[key] = (now, value)
        return value

    def shared(
        self, key: tuple[Any, ...], load: Callable[[], Coroutine[Any, Any, T]]
    ) -> asyncio.Task[T]:
        """The read of ``key`` under way, else ``load()`` started: one at a time, shared by
        every caller. Awaited shielded, it goes on when a caller stops waiting (a voice call's
        budget), and what it reads (`cached`) is the next caller's."""
        if key not in self._reading:
            reading = asyncio.create_task(load())
            self._reading[key] = reading, time.monotonic()

            def ended(done: asyncio.Task[Any]) -> None:
                del self._reading[key]
                if not done.cancelled():
                    done.exception()  # retrieved: a read nobody waits for any more is no crash

            reading.add_done_callback(ended)
        return cast(asyncio.Task[T], self._reading[key][0])

    async def read_soon(
        self,
        key: tuple[Any, ...],
        load: Callable[[], Coroutine[Any, Any, T]],
        *,
        within: float,
        unread_for: float,
    ) -> T | None:
        """``load()`` (a read, `cached` or not) for callers that can go without it: one read of
        ``key`` at a time (`shared`), each waiting ``within`` seconds at most; None when
        it fails (a TencentCloudError) or is late, and for ``unread_for`` seconds after, None at
        once without asking again. A late read goes on alone: once read, it is the next
        caller's. Whoever waits less than the read takes leaves no SDK thread of its own."""
        if time.monotonic() < self._unread_until.get(key, 0.0):
            return None
        if key not in self._reading:

            def ended(done: asyncio.Task[Any]) -> None:
                if done.cancelled() or done.exception() is not None:
                    self._unread_until[key] = time.monotonic() + unread_for
                else:  # read, if late: the next caller has it
                    self._unread_until.pop(key, None)

            self.shared(key, load).add_done_callback(ended)
        reading, started = self._reading[key]
        try:
            async with asyncio.timeout(max(within, 0.0)):
                # Shielded: a caller that stops waiting leaves the read to the next ones.
                return cast(T, await asyncio.shield(reading))
        except TencentCloudError as exc:
            # Kept unread for a while (also a read another caller started: `shared`).
            log.info("%s not read: %r", key, exc)
            self._unread_until[key] = time.monotonic() + unread_for
            return None
        except TimeoutError:
            if reading.done():  # read meanwhile (a caller with no time left: from the cache)
                return None if reading.cancelled() or reading.exception() else reading.result()
            if time.monotonic() - started >= SLOW_READ:
                # Slow, not just asked by a caller with no time left: the next ones go without
                # it for a while rather than each wait for it.
                log.info("%s not read in time", key)
                self._unread_until[key] = time.monotonic() + unread_for
            return None

    def forget(self, region: str | None = None) -> None:
        """Drop the cached answers of ``region`` (a write there may have changed them)."""
        region = region or self.region
        self._cache = {key: hit for key, hit in self._cache.items() if key[1:2] != (region,)}

    async def paged(
        self,
        product: str,
        action: str,
        params: dict[str, Any],
        items: str,
        key: str | None,
        *,
        page_size: int = 100,
        by_number: bool = False,
        region: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every item, paged with Offset/Limit until the total is reached: a lookup by name
        (matched by substring) or a list cut short would miss what it looks for. Items are
        told apart by ``key``, their id (None: by all their fields); a page that brings no new
        one (an API that ignores Offset) ends the read, as do the pages its TotalCount needs
        and one more, or without a total MAX_PAGES pages. A list that changed while it was read
        (`_read_once`) is read again from its first page, up to LIST_READS times; short the
        same at each read (its first page, total and count alike), it is no list that changed
        but a way to the API that drops items: a TencentAnswerError. ``by_number``: a list paged
        with PageNumber/PageSize (Monitor's), its pages counted as they come, read alike."""

        def page(offset: int, number: int) -> Awaitable[dict[str, Any]]:
            paging = {"PageNumber": number, "PageSize": page_size} if by_number else {}
            asked = {**params, **(paging or {"Offset": offset, "Limit": page_size})}
            return self.call(product, action, asked, region=region)

        shorts: list[tuple[Any, ...]] = []  # each read short of its total: how it was
        for read in range(1, LIST_READS + 1):
            try:
                return await _read_once(page, action, items, key, shorts)
            except TencentListChangedError as exc:
                log.info("%s read again from its first page: %s", action, exc.message)
                if read == LIST_READS and len(shorts) == read and len(set(shorts)) == 1:
                    raise TencentAnswerError(
                        ANSWER,
                        f"{shorts[0][0]}, the same at each of its {read} reads (a list that "
                        "changed would not answer alike): check the API's pages or the way to "
                        "it (a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT)",
                    ) from None
                if read == LIST_READS:  # said to whoever reads it: what happened, what to do
                    raise TencentListChangedError(
                        LIST_CHANGED,
                        f"Tencent Cloud's {action} list changed at each of its {LIST_READS} "
                        "reads (items made or removed meanwhile); try again in a moment",
                    ) from None
        raise AssertionError("unreachable")  # the last read returned or raised


async def _read_once(
    page: Callable[[int, int], Awaitable[dict[str, Any]]],
    action: str,
    items: str,
    key: str | None,
    shorts: list[tuple[Any, ...]],
) -> list[dict[str, Any]]:
    """One read of a paged list from its first page, ``page`` asked its offset and number (a
    page at an Offset, or PageNumber, holds the items from there as the list stands when asked:
    the Describe* references). Short of its total, or
    lower at a later page, after items made or removed meanwhile (a total that changed, a page
    starting earlier than asked): a TencentListChangedError (retryable); after an empty page
    or the first answered again, which no list answers: a TencentAnswerError (a lookup said
    "none" would create a duplicate). Without a total, said in the log. A read short of its
    total, or lower at a later page, is added to ``shorts`` (how it was, first page, its total)."""
    found: dict[str, dict[str, Any]] = {}
    offset, asked, pages, total, first = 0, 0, MAX_PAGES, None, None
    batch: list[Any] = []
    heads: list[str] = []  # the first page's items
    new: dict[str, dict[str, Any]] = {}
    while asked < pages:
        answer = await page(offset, asked + 1)
        asked += 1
        batch = answer.get(items) or []
        total = answer.get("TotalCount", answer.get("Total"))
        first = total if asked == 1 else first
        if total is not None and first is not None and int(total) < int(first):
            lower = f"{action} listed {first} items, then {total} at page {asked}"
            shorts.append((lower, tuple(heads), first))  # alike at each read: not a change
            raise TencentListChangedError(
                LIST_CHANGED,
                f"{lower}: one left the list while it was read, and a later one may have been "
                "skipped",
            )
        idents = [_identity(item, key, action) for item in batch]
        heads = idents if asked == 1 else heads  # as served: a row twice in it kept twice
        new = dict(zip(idents, batch, strict=True))
        new = {ident: item for ident, item in new.items() if ident not in found}
        found |= new
        offset += len(batch)
        if total is not None and batch:  # pages of this one's size (an API may cut Limit)
            pages = asked + -(-max(int(total) - offset, 0) // len(batch)) + 1
        if not new or (total is not None and offset >= int(total)):
            break
    if total is not None and len(found) < int(total):
        short = f"{action} listed {len(found)} of its {total} items in {asked} pages"
        shorts.append((short, tuple(heads), first))
        paged = batch and idents != heads
        if total != first or paged:  # items made (or made and removed) while it was read
            raise TencentListChangedError(LIST_CHANGED, f"{short}: the list changed")
        raise TencentAnswerError(
            ANSWER,
            f"the answer is not the API's: {short} (its pages did not move on: check the "
            "way to the API, a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT)",
        )
    if batch and (not new or asked >= pages):
        log.warning("%s read no further after %d pages: kept %d items", action, asked, len(found))
    return list(found.values())


def _identity(item: Any, key: str | None, action: str) -> str:
    """What tells a listed item apart: its id ``key``, else all of it."""
    return f"id:{field(item, key, action)}" if key else json.dumps(item, sort_keys=True)
