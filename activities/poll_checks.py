"""A poll's check of one page and what it does with the answer: a new text stored (a change
told, or a new baseline when other rules read it), a failure counted (told once the page starts
failing), a recovery told, each with the page's new state in one write (``PageChecks.tell``,
through the poll's reports); and the pause a server's Retry-After asks for. The loop that runs
the checks on the grid is `activities.poll_session`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.poll_reports import Found, PollHost, PollReports
from activities.watches import NotModified, Page, read_page
from ambient.clients.extract import extractors_for
from ambient.clients.web_errors import FetchError, HttpStatusError
from ambient.watches.models import UrlState
from ambient.watches.page_changes import diff_pages
from ambient.watches.poll_store import PageText
from ambient.watches.polling import PollRequest

# The longest pause a server's Retry-After gets (a page rate-limited for a day is checked
# hourly, its failures counted): asked again at every check, a server that throttles could
# block the worker's address for every watch of its host.
LONGEST_PAUSE = 3600.0


class PageChecks:
    """The checks of a poll's pages, each page apart (`PollSession` is one)."""

    poller: PollHost
    request: PollRequest
    reports: PollReports
    urls: dict[str, UrlState]
    readings: dict[str, str]

    async def check(self, url: str) -> bool:
        """Check one page; False if it was not asked (its server asked for a pause)."""
        seen = self.urls.get(url) or self.urls.setdefault(url, UrlState())
        reading = self.readings[url]
        # A page read by other rules (an update's selector or ignore patterns, a release's
        # extractor for its path) is read anew: not a 304, not the bytes' last text. Its
        # validators sent, it answered 304 until it changed, and the change was taken as a new
        # baseline, not told.
        extractors = (None, *extractors_for(self.request.config.selector_for(url)))
        last = (
            seen
            if seen.hash is not None and seen.reading == reading and seen.extractor in extractors
            else None
        )
        now = datetime.now(UTC)
        if seen.not_before is not None and now < seen.not_before:
            return False  # the server asked for a pause (Retry-After): this check waits it out
        try:
            page = await read_page(self.poller.fetcher, url, self.request.config, last)
        except FetchError as exc:
            await self.failed(url, str(exc), now, _pause_asked(exc))
            return True
        if isinstance(page, Page) and page.hash != seen.hash:
            await self.changed(url, page, now)
            return True
        # The text as before (a 304, the same bytes, or read anew): the validators sent next
        # are those the page gave last (a 304's that it may name); the next same bytes are not
        # read again.
        validators = page.validators if isinstance(page, NotModified) else page.fresh
        seen.etag, seen.last_modified = validators["etag"], validators["last_modified"]
        seen.validators_from = validators["validators_from"]
        if isinstance(page, NotModified):
            await self.answered(url, "not_modified", now)
            return True
        seen.raw_hash, seen.reading = page.fresh["raw_hash"], reading
        seen.extractor = page.extractor
        await self.answered(url, "unchanged", now)
        return True

    async def changed(self, url: str, read: Page, now: datetime) -> None:
        """Store the new text; a change (not a first sight or a rule change) is an event."""
        config = self.request.config
        seen = self.urls[url]
        # A hash made by other extraction rules is not comparable: take the text as a new
        # baseline instead of reporting the rules' difference as a change of the page.
        reading = self.readings[url]
        comparable = (
            seen.hash is not None
            # (the release before's tag: the same rules read this text, hiding nothing)
            and seen.extractor in (read.extractor, read.earlier, None)
            and (seen.reading == reading or config.compares_with(url, seen.reading))
        )
        after = seen.model_copy(
            update={
                **read.fresh,
                "hash": read.hash,
                "extractor": read.extractor,
                "reading": reading,
                "last_checked_at": now,
                "last_outcome": "changed" if comparable else "baseline",
            }
        )
        if seen.failing or seen.failures:
            after.failures, after.failing, after.last_error = 0, False, None
            after.not_before = None
        if comparable:
            after.last_change_at = now
        page = PageText(url, seen.hash if comparable else None, read.hash, read.text)

        def found(old: str | None) -> list[tuple[str, dict[str, Any]]]:
            stored: list[tuple[str, dict[str, Any]]] = []
            if seen.failing:
                stored.append(("watch.recovered", {"url": url, "after_failures": seen.failures}))
            if comparable:
                diff = diff_pages(old.split("\n") if old else [], read.lines, config.keywords)
                payload = {"url": url, "excerpt": diff.excerpt, "hits": diff.hits}
                stored.append(("watch.hit" if diff.hits else "watch.change", payload))
            return stored

        # Not stored (a database error): the state stays, so the next check sees it again.
        await self.tell(url, after, found, now, page=page, what=f"storing the change of {url}")

    async def failed(
        self, url: str, error: str, now: datetime, pause: timedelta | None = None
    ) -> None:
        seen = self.urls[url]
        # As in answered: kept in place, but the page starting to fail is a new state.
        starts = seen.failures + 1 >= self.request.config.failure_threshold and not seen.failing
        after = seen.model_copy(update={"failing": True}) if starts else seen
        after.failures, after.last_error = seen.failures + 1, error[:500]
        after.last_outcome, after.last_checked_at = "error", now
        after.not_before = now + pause if pause else None
        if starts:
            payload = {"url": url, "error": error[:500], "failures": after.failures}
            await self.tell_one(url, after, "watch.failing", payload, now)
        else:
            await self.keep(url, after, now)  # counted towards failing past a killed worker

    async def answered(self, url: str, outcome: str, now: datetime) -> None:
        seen = self.urls[url]
        failures = seen.failures
        # The usual check (the page answered as before) is kept in place; a recovery is a
        # new state, taken once its event is stored.
        after = seen.model_copy(update={"failing": False}) if seen.failing else seen
        after.failures, after.last_error, after.not_before = 0, None, None
        after.last_outcome, after.last_checked_at = outcome, now
        if seen.failing:
            payload = {"url": url, "after_failures": seen.failures}
            await self.tell_one(url, after, "watch.recovered", payload, now)
        elif failures:
            await self.keep(url, after, now)  # the kept count is back to none

    async def keep(self, url: str, after: UrlState, now: datetime) -> None:
        """Store the poll's mark with a page's new failure count and no event: a poll that
        runs again after its worker died counts on from it."""
        await self.tell(url, after, lambda _: [], now, what=f"storing the checks of {url}")

    async def tell_one(
        self, url: str, after: UrlState, kind: str, payload: dict[str, Any], now: datetime
    ) -> None:
        """Store and notify one event that needs no old text (failing, recovered)."""
        what = f"storing {kind} of {url}"
        await self.tell(url, after, lambda _: [(kind, payload)], now, what=what)

    async def tell(
        self,
        url: str,
        after: UrlState,
        found: Found,
        now: datetime,
        *,
        page: PageText | None = None,
        what: str,
    ) -> None:
        """Store and notify what ``found`` returns with the page's new state (kept on failure)."""
        reports = self.reports
        reports.storing += 1
        if reports.turn.locked():
            self.poller.writer.hurry()  # the check holding the turn may wait in a linger
        try:
            async with reports.turn:
                # An end() cancels the check, never a write in flight: once committed, its
                # events are this poll's (taken, notified), or its result would hand back
                # fewer than the database holds and their messages would wait for the next.
                storing = asyncio.ensure_future(
                    reports.store({**self.urls, url: after}, found, now, page=page, what=what)
                )
                try:
                    await asyncio.shield(storing)
                except asyncio.CancelledError:
                    self.poller.writer.hurry()  # the end waits for no linger
                    raise
                finally:  # also when cancelled: the write finishes first
                    if await storing:
                        self.urls[url] = after
        finally:
            reports.storing -= 1


def _pause_asked(error: FetchError) -> timedelta | None:
    """The pause a 429's or 503's Retry-After asks for, at most ``LONGEST_PAUSE``."""
    if isinstance(error, HttpStatusError) and error.retry_after:
        return timedelta(seconds=min(error.retry_after, LONGEST_PAUSE))
    return None
