"""Checks of web monitors and threshold watches: fetch, extract, compare, read metrics."""

from __future__ import annotations

import asyncio

from pydantic import TypeAdapter
from temporalio import activity

from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.clients.tencent.ops import latest_metric_value
from ambient.clients.web import FetchError, WebFetcher, extract_text
from ambient.domain.checks import CheckPageInput, MetricReading, PageCheck, ReadMetricInput
from ambient.domain.watches import (
    HttpJsonSource,
    MetricSource,
    PrometheusSource,
    content_hash,
    diff_pages,
    normalise,
)
from ambient.storage import Database
from ambient.storage.repositories import SnapshotRepository


class WatchActivities:
    def __init__(self, db: Database, fetcher: WebFetcher, tencent: TencentCloud) -> None:
        self._db = db
        self._fetcher = fetcher
        self._tencent = tencent

    @activity.defn
    async def check_page(self, check: CheckPageInput) -> PageCheck:
        """Fetch one URL and compare its main text with the snapshot the workflow last saw.

        Safe to retry: the comparison is against ``last_hash``, not "the latest row".
        """
        try:
            fetched = await self._fetcher.fetch(
                check.url,
                etag=check.etag if check.last_hash else None,
                last_modified=check.last_modified if check.last_hash else None,
            )
        except FetchError as exc:
            return PageCheck(url=check.url, outcome="error", error=str(exc))
        if fetched.not_modified:
            return PageCheck(
                url=check.url,
                outcome="not_modified",
                hash=check.last_hash,
                etag=check.etag,
                last_modified=check.last_modified,
            )
        html = fetched.body.decode(errors="replace")
        # Extraction is CPU work: keep it off the event loop the other checks share.
        text = await asyncio.to_thread(extract_text, html, check.selector)
        lines = normalise(text, check.ignore_patterns)
        new_hash = content_hash(lines)
        result = PageCheck(
            url=check.url,
            outcome="unchanged",
            hash=new_hash,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
        )
        if new_hash == check.last_hash:
            return result
        async with self._db.session() as session:
            snapshots = SnapshotRepository(session)
            old = None
            if check.last_hash is not None:
                previous = await snapshots.text(check.task, check.url, check.last_hash)
                old = previous.split("\n") if previous is not None else []
            await snapshots.save(check.task, check.url, new_hash, "\n".join(lines))
            await session.commit()
        diff = diff_pages(old, lines, check.keywords)
        result.outcome = "baseline" if old is None else "changed"
        result.hits, result.excerpt = diff.hits, diff.excerpt
        return result

    @activity.defn
    async def read_metric(self, request: ReadMetricInput) -> MetricReading:
        """The current value of a metric source; errors are readings, not failures."""
        source = TypeAdapter(MetricSource).validate_python(request.source)
        try:
            if isinstance(source, HttpJsonSource):
                value = await self._fetcher.read_json_number(str(source.url), source.json_path)
            elif isinstance(source, PrometheusSource):
                value = await self._fetcher.read_prometheus(str(source.url), source.query)
            else:
                value = await latest_metric_value(
                    self._tencent,
                    source.namespace,
                    source.metric,
                    source.dimensions,
                    period=source.period,
                    region=source.region,
                )
        except (FetchError, TencentCloudError) as exc:
            # A reading that failed is state for the watch (failing after N), not a crash.
            return MetricReading(error=str(exc))
        return MetricReading(value=value)
