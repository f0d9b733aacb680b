"""A log source read into the reducer: a file (confined to AMBIENT_LOG_DIR) or a CLS topic;
a briefing's day of it copied into the briefing's inputs, and the analysis of any time range
(`analyze_logs`, the reduction a briefing makes of its day, on request)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from ambient.briefing.config import BriefingConfig, ClsLogSpec, FileLogSpec
from ambient.briefing.errors import BriefingError, InvalidBriefingError
from ambient.briefing.logreport import LogReducer, LogReport, most_frequent_error
from ambient.briefing.logreport_markdown import anomaly_said, render_markdown
from ambient.briefing.models import BriefingInputs, LogAnalysis
from ambient.clients.log_formats import full_text_fields, line_field
from ambient.clients.logs import FileLogSource, uncaught_crash
from ambient.clients.tencent.client import NOT_CONFIGURED, TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.clients.tencent.logs import (
    MAX_SEARCH_LOGS,
    SERVED_AGAIN,
    LogRecord,
    log_pages,
)
from ambient.cloud.errors import NO_INDEX_CODE, QUERY_CODES, filter_refused
from ambient.domain.events import clipped
from ambient.domain.field_errors import field_problems
from ambient.domain.loglevels import ERROR_LEVELS, level_and_message
from ambient.refusals import said_back
from ambient.request_deadline import bounded
from ambient.settings import Settings

# A file source is read for at most this long (about 6 million lines here; a day past it would
# outlast its preparation's bound, where CLS stops at MAX_SEARCH_LOGS), the rest said unread;
# its reader looks at the time and at its caller's cancel every LOOK_EVERY lines it reads.
FILE_READ_SECONDS = 300.0
HOUR = timedelta(hours=1)


class LogFileError(Exception):
    """The configured log file cannot be read."""


def resolve_log_path(
    path: str, log_dir: Path | None, *, admin: bool, existing: bool = False
) -> Path:
    """A file source path, inside AMBIENT_LOG_DIR if set; else any file, named by an admin
    only (a member could read the server's secrets as "log lines"). ``existing``: a file or
    folder must be there (a briefing's config; a morning's read says a missing one instead)."""
    if "\x00" in path:  # the file system refuses it: a ValueError, not a refusal by name
        raise LogFileError("log_source.path: a path cannot hold a NUL character")
    candidate = resolved = Path(path).expanduser()
    base = log_dir.resolve() if log_dir is not None else None
    if base is None and not admin:
        raise LogFileError(
            "log_source.path: this server reads log files for members only from "
            "AMBIENT_LOG_DIR, which is not set: ask an admin to set it (or use a CLS topic)"
        )
    # The folder's place on the server is an admin's to read: a member names a path in it.
    folder = f"AMBIENT_LOG_DIR ({base})" if admin else "AMBIENT_LOG_DIR (a path relative to it)"
    if base is not None:
        resolved = (base / candidate).resolve()  # an absolute candidate replaces base
        if resolved != base and base not in resolved.parents:
            raise LogFileError(f"log_source.path: {path!r} is outside {folder}")
    if existing and not (resolved.is_file() or resolved.is_dir()):
        inside = f" inside {folder}" if base is not None else ""
        raise LogFileError(
            f"log_source.path: no log file or folder at {path!r} on this API server (its workers "
            f"read the same path: docs/deploy.md); give the path "
            f"of an existing log file or folder of rotated logs{inside}"
        )
    return resolved


def source_name(spec: FileLogSpec | ClsLogSpec) -> str:
    """A log source as its user reads it, in a briefing's notes and in analyze_logs."""
    return (
        f"log file {spec.path}" if isinstance(spec, FileLogSpec) else f"CLS topic {spec.topic_id}"
    )


async def read_log_source(
    spec: FileLogSpec | ClsLogSpec,
    start: datetime,
    end: datetime,
    reducer: LogReducer,
    *,
    log_dir: Path | None,
    admin: bool,
    tencent: TencentCloud,
    zone: tzinfo = UTC,
    within: float = FILE_READ_SECONDS,
) -> str:
    """Feed the source's lines in [start, end) to ``reducer``; what was read (``admin``: the
    reader's role now, for resolve_log_path; ``zone``: of a file's times without offset, unless
    its spec names its own; ``within``: seconds a file source is read for, the rest said
    unread)."""
    if isinstance(spec, FileLogSpec):
        if spec.timezone is not None:  # the zone its writer's clock keeps, said in the config
            zone = ZoneInfo(spec.timezone)
        # A folder's files are checked against log_dir one by one too: one symlinked out of the
        # folder is skipped.
        source = FileLogSource(resolve_log_path(spec.path, log_dir, admin=admin), log_dir, zone)
        stop = threading.Event()
        try:
            return await asyncio.to_thread(_read_files, source, start, end, reducer, stop, within)
        except asyncio.CancelledError:
            stop.set()  # the thread is not cancelled with its caller: it stops at its next look
            raise
    # A page at a time into the reducer: a busy topic's day never sits in memory as records.
    read, complete, stopped, timed = 0, True, None, False
    async for page in log_pages(
        tencent, spec.topic_id, spec.query, start, end, limit=MAX_SEARCH_LOGS, region=spec.region
    ):
        # [From, To): a record at midnight is the next day's, as in a file source.
        records = [r for r in page.logs if start <= r.time < end]
        counted = reducer.add_many(_cls_lines(records, zone))
        read, complete, stopped = read + len(counted), page.complete, page.stopped
        reducer.unreadable += page.skipped_lines  # logs without a time in the day
        timed = timed or bool(page.logs)
    # Every log without a time read here: said unread as a file's would be, not a day of none.
    reducer.timed = timed
    reducer.capped = not complete  # the search is newest first
    reducer.stopped = _CUT.get(stopped or "", stopped)
    cut = reducer.stopped or f"capped at {MAX_SEARCH_LOGS}"
    suffix = "" if complete else f" ({cut}, the newest read)"
    skipped = f", {reducer.unreadable} unreadable" if reducer.unreadable else ""
    return f"{read} lines read{skipped}{suffix}"


# A search's stop in the briefing's words: its reader cannot search again.
_CUT = {SERVED_AGAIN: "CLS answered again only logs already read as logs landing late moved it on"}


def _cls_lines(records: list[LogRecord], zone: tzinfo) -> Iterator[tuple[datetime, str, str]]:
    """A page's records as (time, level, message) lines; an uncaught crash a multi-line record
    holds below its first line is a CRITICAL line of its own, as in a file source."""
    for record in records:
        level, message = level_and_message(full_text_fields(record.content, zone))
        yield record.time, level, message
        key = line_field(record.content)
        text = record.content.get(key) if key and isinstance(record.content, dict) else None
        if isinstance(text, str) and (crash := uncaught_crash(text, level)):
            yield record.time, "CRITICAL", crash


def _read_files(
    source: FileLogSource,
    start: datetime,
    end: datetime,
    reducer: LogReducer,
    stop: threading.Event,
    within: float,
) -> str:
    # Streamed: a day of logs never sits in memory as records. The bound and the cancel are
    # looked at as the lines are read, whatever their day (a month's file read for one day).
    until = time.monotonic() + within
    source.give_up = lambda: stop.is_set() or time.monotonic() > until
    records = ((r.time, *level_and_message(r.content)) for r in source.records(start, end))
    count = len(reducer.add_many(records))
    if source.gave_up and not stop.is_set():
        source.failed.append(
            f"the read stopped after {within:.0f} s (more lines than a briefing reads in time): "
            "the rest unread"
        )
    reducer.unreadable = skipped = source.skipped
    reducer.timed = source.timed
    reducer.broken = list(source.failed)
    failed = f"; not read to the end: {'; '.join(source.failed)}" if source.failed else ""
    return f"{count} lines read" + (f", {skipped} unreadable" if skipped else "") + failed


async def check_log_path(
    spec: FileLogSpec | ClsLogSpec | None, log_dir: Path | None, *, admin: bool
) -> None:
    """A file source's path is refused by field unless it names a file or folder there that
    this caller may read (checked when a briefing is set up and a range is analyzed)."""
    if isinstance(spec, FileLogSpec):
        try:  # in a thread: a network share can stall a look at its disk
            await asyncio.to_thread(
                resolve_log_path, spec.path, log_dir, admin=admin, existing=True
            )
        except LogFileError as exc:
            raise InvalidBriefingError(str(exc), given=spec.path) from None


def check_cls_keys(spec: FileLogSpec | ClsLogSpec | None, tencent: TencentCloud) -> None:
    """A CLS source is refused without Tencent Cloud's keys: no read of it could succeed."""
    if isinstance(spec, ClsLogSpec) and not tencent.configured:
        raise InvalidBriefingError(f"log_source: {NOT_CONFIGURED}; or use a file source")


# A CLS source's filter is tried when it is set (one log of the last hour), for this long at most.
QUERY_TRY_SECONDS = 10.0


async def check_cls_query(spec: FileLogSpec | ClsLogSpec | None, tencent: TencentCloud) -> None:
    """A CLS source is refused by field when CLS cannot search it as given: a filter it refuses
    (its syntax, a field without an index) or a topic with no index, tried with one search (its
    first page, within QUERY_TRY_SECONDS and what is left of the request); any other failure
    (the network, the keys, a busy API, a query that failed to run) is no refusal of the
    config: the morning's read says it, as it would have."""
    if not isinstance(spec, ClsLogSpec):
        return
    end = datetime.now(UTC)
    pages = log_pages(
        tencent, spec.topic_id, spec.query, end - HOUR, end, limit=1, region=spec.region
    )
    try:
        async with asyncio.timeout(bounded(QUERY_TRY_SECONDS)):
            await anext(aiter(pages), None)  # the first page answers whether CLS searches it
    except TencentCloudError as exc:
        words = clipped(exc.message, 300)
        if exc.code == NO_INDEX_CODE:
            raise InvalidBriefingError(
                f"log_source.topic_id: CLS cannot search topic {spec.topic_id}: it has no index "
                f"({exc.code}: {words}); turn on its index (full text, or the fields the filter "
                "names) in the CLS console",
                given=spec.topic_id,
            ) from None
        if filter_refused(exc):
            fix = (
                "correct its syntax"
                if exc.code == QUERY_CODES[1]
                else "give one on fields the topic's index holds (or index the field in its "
                "index configuration), or '*'"
            )
            raise InvalidBriefingError(
                f"log_source.query: CLS refuses the filter {said_back(spec.query, 200)} on topic "
                f"{spec.topic_id} ({exc.code}: {words}); {fix}",
                given=spec.query,
            ) from None
    except TimeoutError:
        pass  # not answered in time: not refused


def fill_from_report(inputs: BriefingInputs, report: LogReport) -> None:
    inputs.log_lines, inputs.logs_capped = report.total, report.capped
    inputs.logs_unreadable = report.unreadable
    inputs.logs_broken = len(report.broken)
    inputs.errors = sum(n for lvl, n in report.by_level.items() if lvl in ERROR_LEVELS)
    inputs.warnings = report.by_level.get("WARNING", 0)
    inputs.logs_unleveled = report.by_level.get("UNKNOWN", 0)
    # The most severe first, and the error the briefing names as the most frequent (past 20
    # CRITICAL templates it was left out, and a line of one said over one of thousands).
    kept = report.templates[:20]
    top = most_frequent_error(report.templates)
    if top is not None and top not in kept:
        kept = [*kept[:19], top]
    inputs.top_templates = [t.model_copy(update={"example": t.example[:300]}) for t in kept]
    zone = ZoneInfo(inputs.timezone)  # the briefing's, as its log report says times
    zh = inputs.language == "zh"
    inputs.anomalies = [anomaly_said(a, zone, zh) for a in report.anomalies[:10]]
    change, days = report.trend.get("errors_change_pct"), report.trend.get("baseline_days")
    if change is not None and days:
        # One day is no average; a change that rounds to 0% is none ("+0%", "增加 0%").
        past = f"前 {days} 天" + ("平均" if days > 1 else "")
        if not zh:
            past = f"the previous {days} days' average" if days > 1 else "the previous day"
        if report.partly_read and round(change) <= 0:
            # Its count is of the lines read, a floor: "fell" or "level" may be false of the
            # day (a capped day of as many errors as usual "fell"); a rise is one all the same.
            n = inputs.errors
            inputs.trend = (
                f"错误至少 {n} 个：日志没能全部读取，没有与{past}比较"
                if zh
                else f"At least {n} errors: not compared with {past}, as not all logs could be read"
            )
        elif report.partly_read:
            inputs.trend = (
                f"错误数比{past}至少增加 {change:.0f}%"
                if zh
                else f"Errors rose at least {change:.0f}% against {past}"
            )
        elif round(change) == 0:
            inputs.trend = f"错误数与{past}持平" if zh else f"Errors were level with {past}"
        else:
            more = ("增加", "rose") if change > 0 else ("减少", "fell")
            inputs.trend = (
                f"错误数比{past}{more[0]} {abs(change):.0f}%"
                if zh
                else f"Errors {more[1]} {abs(change):.0f}% against {past}"
            )


async def analyze_logs(
    source: dict[str, Any],
    start: datetime,
    end: datetime,
    *,
    settings: Settings,
    tencent: TencentCloud,
    is_admin: Callable[[], Awaitable[bool]],
) -> LogAnalysis:
    """The reduction report (templates, trend, anomalies, keywords) for any time range.
    ``is_admin``: whether the caller may read any file (asked of a file source only)."""
    for name, value in (("start", start), ("end", end)):
        # Log times are instants: a time without an offset is hours off in any other zone.
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidBriefingError(
                f"{name}: {value.isoformat()} has no UTC offset; give one, "
                f"e.g. {value.isoformat()}+08:00 or {value.isoformat()}Z",
                field=name,
            )
    if end <= start:
        raise InvalidBriefingError("end: must be later than start")
    try:
        spec = BriefingConfig.model_validate({"log_source": source}).log_source
    except ValidationError as exc:
        raise InvalidBriefingError("; ".join(field_problems(exc))) from None
    assert spec is not None
    # Only a file source asks who may read it: a CLS search reads no role.
    admin = isinstance(spec, FileLogSpec) and await is_admin()
    await check_log_path(spec, settings.log_dir, admin=admin)
    check_cls_keys(spec, tencent)
    reducer = LogReducer()
    try:
        read = await read_log_source(
            spec,
            start,
            end,
            reducer,
            log_dir=settings.log_dir,
            admin=admin,
            tencent=tencent,
            # A line's wall time (no offset) is read where the range was asked, as a
            # briefing reads it in its time zone.
            zone=start.tzinfo or UTC,
        )
    except LogFileError as exc:
        raise InvalidBriefingError(str(exc)) from None
    except (OSError, TencentCloudError) as exc:
        raise BriefingError(f"log_source could not be read: {exc}") from None
    report = reducer.report(start=start, end=end)
    # Said in the offset the range was asked in, as a briefing says its day in its zone.
    markdown = render_markdown(report, tz=start.tzinfo)
    return LogAnalysis(report=report, markdown=markdown, source=source_name(spec), read=read)
