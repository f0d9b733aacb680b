"""CLS log search (CQL, or `... | select ...` SQL analysis) and the log topics to search."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ambient.clients.tencent.client import TencentCloud, field, from_ms, ms
from ambient.clients.tencent.errors import ANSWER, TencentAnswerError, TencentRequestError

MAX_CONTEXT_LOGS = 10_000  # CLS answers this many logs at most to a Context-paged search
MAX_SEARCH_LOGS = 200_000  # a search's logs at most, read by Offset past Context's 10,000
# An SQL answers its first 100 rows unless it says `limit N`, at most 10,000 (CLS LIMIT syntax,
# cloud.tencent.com/document/product/614/58977).
SQL_DEFAULT_ROWS, SQL_MAX_ROWS = 100, 10_000
SQL_LIMIT = re.compile(r"\blimit\s+(\d+)", re.IGNORECASE)
# [检索条件] | [SQL语句]: a CQL value in double quotes holds any character, `|` too (`msg:"a|b"`);
# the first `|` outside quotes starts the SQL analysis.
SEARCH_THEN_PIPE = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^"|])*\|')

# Nested deeper, a record's content is kept as its JSON text: pydantic encodes 255 levels at
# most, the answer's own with them, and a line nested past that failed the whole answer.
MAX_NESTING = 100

# cls errorcodes: FailedOperation.GetlogReachLimit, a search at its maximum count of logs.
REACH_LIMIT = "FailedOperation.GetlogReachLimit"
STOPPED = f"CLS stopped the search at its maximum count of logs ({REACH_LIMIT})"
# cls errorcodes: OperationDenied.NewSyntaxNotSupported (不支持新语法), CQL refused there.
NEW_SYNTAX = "OperationDenied.NewSyntaxNotSupported"
# A search refused with nothing read: what happened (with CLS's words) and what to do.
REFUSED = {
    REACH_LIMIT: (
        "CLS stopped the search at its maximum count of logs before any was read",
        "narrow the query or the time range",
    ),
    NEW_SYNTAX: (
        "CLS does not take CQL, the syntax this search is sent in (SearchLog's QuerySyntax 1), "
        "for this topic or in its region",
        "search the topic in the CLS console, which offers the Lucene syntax, or search a topic "
        "in a region whose CLS takes CQL",
    ),
}
# Said as a fact: each surface gives its own advice (the command: run it again).
SERVED_AGAIN = (
    "CLS answered a page without a log it had not answered before (logs landing late move a "
    "search on)"
)
# Pages without a log that are not the last (ListOver false): the search goes on from their
# Context (SearchLog's reference: 可使用Context参数获取后续更多日志), up to this many in a row.
EMPTY_PAGES = 20
NO_WAY_ON = "CLS answered pages without logs that were not the last and did not move its Context on"
# Ours: a log's Time is CLS's integer of ms, so logs without one are not the API's answer.
NO_TIME = "logs without a time in its range (SearchLog's Time, an integer of milliseconds)"


class LogRecord(BaseModel):
    time: datetime
    topic_id: str
    source: str | None = None
    content: dict[str, Any] | str

    @field_validator("content")
    @classmethod
    def _text_when_too_deep(cls, content: dict[str, Any] | str) -> dict[str, Any] | str:
        level: list[Any] = [content]
        for _ in range(MAX_NESTING):  # level by level: no recursion
            level = [v for x in level if isinstance(x, dict | list) for v in _inside(x)]
            if not level:
                return content
        with contextlib.suppress(RecursionError):  # json.loads read it a few frames higher
            return json.dumps(content, ensure_ascii=False)
        return "(a JSON object nested too deep to show)"


def _inside(value: dict[str, Any] | list[Any]) -> Iterable[Any]:
    return value.values() if isinstance(value, dict) else value


class SearchResult(BaseModel):
    logs: list[LogRecord] = Field(default_factory=list)
    analysis: list[dict[str, Any]] = Field(default_factory=list, description="SQL rows, if any")
    complete: bool = Field(
        description="false when the limit cut the result: the lines by `limit`, an SQL "
        "analysis's rows by the SQL's own `limit N` (100 rows without one, at most 10,000)"
    )
    skipped_lines: int = Field(
        default=0,
        description="lines skipped: a file's unreadable ones, CLS logs without a time (an "
        "integer of ms) in the search's range",
    )
    stopped: str | None = Field(
        default=None,
        description="why the search stopped before its end, if it did: CLS stopped it, or "
        "its pages did not move on or held only logs without a time",
    )


class LogTopic(BaseModel):
    topic_id: str
    name: str
    logset_id: str | None = None


def _log_time(item: dict[str, Any], params: dict[str, Any]) -> datetime | None:
    """A log's Time (SearchLog's LogInfo: "日志时间，单位ms", an integer) when it is one in the
    search's [From, To] (To too: an older reference did not say its end was out; the briefing's
    day leaves it to the next day); None for any other, a log the search cannot place."""
    when = item.get("Time")
    if isinstance(when, bool) or not isinstance(when, int):
        return None
    return from_ms(when) if params["From"] <= when <= params["To"] else None


def _log_record(item: dict[str, Any], topic_id: str, when: datetime) -> LogRecord:
    raw = item.get("LogJson") or item.get("RawLog") or ""
    content: dict[str, Any] | str = str(raw)
    with contextlib.suppress(TypeError, ValueError, RecursionError):
        content = json.loads(raw)
    return LogRecord(
        time=when,
        topic_id=item.get("TopicId", topic_id),
        source=item.get("Source"),
        content=content,
    )


async def log_pages(
    tc: TencentCloud,
    topic_id: str,
    query: str,
    start: datetime,
    end: datetime,
    *,
    limit: int = 100,
    region: str | None = None,
) -> AsyncIterator[SearchResult]:
    """A search's answer a page at a time, newest first, up to ``limit`` logs (at most
    MAX_SEARCH_LOGS): SQL analysis's rows in one page; logs paged with ``Context`` for CLS's
    first 10,000, then with ``Offset``, which has no such cap (SearchLog's reference: Context
    "总计最多可获取1万条原始日志", Offset "无日志条数限制"). A page's ``complete`` is true on
    the last page of a search read to its end; a search CLS stopped at its maximum count ends
    with a page saying so in ``stopped`` (what was read before it kept), as does one whose next
    page held no log not answered before. A log served again, or without a time in the range
    (skipped, counted in ``skipped_lines``), takes no place of the limit; as many skipped as
    the limit end the search, ``stopped`` saying how many."""
    # Either would come back as an empty answer (or an API error), not as what to change.
    if limit < 1:
        raise TencentRequestError("InvalidParameterValue.Limit", f"limit must be >= 1, not {limit}")
    if start > end:
        raise TencentRequestError(
            "InvalidParameterValue.From",
            f"the window's start ({start.isoformat()}) is after its end ({end.isoformat()})",
        )
    limit = min(limit, MAX_SEARCH_LOGS)
    params: dict[str, Any] = {
        "TopicId": topic_id,
        "QueryString": query or "*",
        "From": ms(start),
        "To": ms(end),
        "Limit": min(limit, 1000),
        "Sort": "desc",
        # CQL, the syntax QueryString is read in (deprecated SyntaxRule went with Query).
        "QuerySyntax": 1,
        # SQL rows come in AnalysisRecords only when asked for (otherwise AnalysisRecords is null).
        "UseNewAnalysis": True,
    }
    read, got, skips, empties, seen = 0, 0, 0, 0, set[int]()
    while True:
        try:
            page = await tc.call("cls", "SearchLog", params, region=region)
        except TencentRequestError as exc:
            if exc.code == REACH_LIMIT and read:
                # What was read is kept: the newest logs, said to be cut by CLS, not the limit.
                yield SearchResult(complete=False, stopped=STOPPED)
                return
            if exc.code in REFUSED:  # nothing to answer, only what to do
                said, todo = REFUSED[exc.code]
                message = f"{said} ({exc.message}): {todo}"
                raise TencentRequestError(exc.code, message, exc.request_id) from None
            if exc.code == "FailedOperation.InvalidContext" and "Context" in params:
                # A Context lives an hour (SearchLog's reference: "过期时间1小时"; cls errorcodes:
                # 检索游标已失效或不存在): a search read slower goes on by Offset from where it is.
                params = _by_offset(params, read)
                continue
            # An answer over 20 MB (cls errorcodes: 检索接口返回的日志量太大，超过20MB限制): the
            # search goes on from where it is in pages half the size (by Offset: Context pages
            # keep their first Limit). Past the search's memory (检索内存超限), no page size
            # helps: raised as answered, failure() says what to do.
            if exc.code != "LimitExceeded.SearchResultTooLarge":
                raise
            if params["Limit"] == 1 or sql_part(query) is not None:
                raise TencentRequestError(
                    exc.code, f"{exc.message}: narrow the query or the time range", exc.request_id
                ) from None
            params = _by_offset(params, read) | {"Limit": params["Limit"] // 2}
            continue
        if page.get("Analysis"):
            rows = [json.loads(row) for row in page.get("AnalysisRecords") or []]
            # As many rows as the SQL's limit allows may be a cut answer, not the whole one.
            limit_clause = SQL_LIMIT.search(sql_part(query) or "")
            cap = min(int(limit_clause[1]), SQL_MAX_ROWS) if limit_clause else SQL_DEFAULT_ROWS
            yield SearchResult(analysis=rows, complete=len(rows) < cap)
            return
        results = page.get("Results") or []
        # Logs served again (by Offset) or skipped take no place of the limit: the next fill it.
        logs: list[LogRecord] = []
        skipped, used, new = 0, 0, False
        for item in results:
            if got + len(logs) >= limit:
                break
            used += 1
            if not _first_time(item, seen):
                continue
            new = True
            if (when := _log_time(item, params)) is None:
                skipped += 1  # said in the result (skipped_lines), not dropped unsaid
            else:
                logs.append(_log_record(item, topic_id, when))
        read, got = read + used, got + len(logs)  # read: positions, as Offset counts them
        skips += skipped
        # The last page is the one ListOver says is (SearchLog's reference: 日志是否已全部返回),
        # or by Offset an empty one: a page short of Limit may come before more. Without a
        # next Context (at Context's cap), the rest is read by Offset.
        by_offset = "Offset" in params
        over = bool(page.get("ListOver")) or (by_offset and not results)
        # A page without a log, not the last, whose Context moves the search on: the logs
        # come on the pages after it.
        empties = 0 if results else empties + 1
        moved = bool(page.get("Context")) and page.get("Context") != params.get("Context")
        goes_on = not results and moved and empties < EMPTY_PAGES
        if got >= limit or over or not (new or goes_on):
            complete = over and used == len(results)
            # A page of none but logs already read, not the last: no next page can be told.
            stopped = None if over or new else SERVED_AGAIN if results else NO_WAY_ON
            yield SearchResult(logs=logs, skipped_lines=skipped, complete=complete, stopped=stopped)
            return
        if skips >= limit:  # skipped logs bound the pages as answered ones do
            stopped = f"the search stopped after {skips} {NO_TIME}"
            yield SearchResult(logs=logs, skipped_lines=skipped, complete=False, stopped=stopped)
            return
        yield SearchResult(logs=logs, skipped_lines=skipped, complete=False)
        if by_offset or read >= MAX_CONTEXT_LOGS or not page.get("Context"):
            params = _by_offset(params, read)
        else:  # other parameters must stay unchanged between Context's pages
            params = {**params, "Context": page["Context"]}


def sql_part(query: str) -> str | None:
    """The SQL analysis after a query's first `|` outside quotes; None for a search alone."""
    head = SEARCH_THEN_PIPE.match(query)
    return None if head is None else query[head.end() :]


def _first_time(item: dict[str, Any], seen: set[int]) -> bool:
    """Whether a log is answered for the first time in its search, told apart as CLS names a
    log (SearchLog's LogInfo: PkgId "日志上报请求包的ID", PkgLogId "请求包内日志的ID"; with its
    topic and Time, DescribeLogContext's key to one log). By Offset, a log landing late among
    the logs read moves the rest on: one is answered again on the next page. Two lines alike in
    every field are two. Without the pair, each line answered counts; a pair that is not two
    ids (a list, an object) is not the API's answer."""
    pkg, pkg_log = item.get("PkgId"), item.get("PkgLogId")
    if pkg is None or pkg_log is None:
        return True
    for name, value in (("PkgId", pkg), ("PkgLogId", pkg_log)):
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TencentAnswerError(
                ANSWER,
                f"the answer is not the API's: SearchLog answered a log whose {name} is not an "
                f"id (check the way to the API: a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT): "
                f"{str(value)[:200]}",
            )
    # A hash, not the strings: a day's 200,000 logs in 15.5 MB (measured), a collision ~1e-9.
    key = hash((str(item.get("TopicId")), str(item.get("Time")), pkg, pkg_log))
    if key in seen:
        return False
    seen.add(key)
    return True


def _by_offset(params: dict[str, Any], offset: int) -> dict[str, Any]:
    """The search's parameters for the page at ``offset`` by Offset (never with Context)."""
    return {k: v for k, v in params.items() if k != "Context"} | {"Offset": offset}


async def search_logs(
    tc: TencentCloud,
    topic_id: str,
    query: str,
    start: datetime,
    end: datetime,
    *,
    limit: int = 100,
    region: str | None = None,
) -> SearchResult:
    """CQL search or `... | select ...` SQL analysis, up to ``limit`` logs (see log_pages)."""
    result = SearchResult(complete=False)
    async for page in log_pages(tc, topic_id, query, start, end, limit=limit, region=region):
        result.logs += page.logs
        result.skipped_lines += page.skipped_lines
        result.analysis, result.complete = page.analysis, page.complete
        result.stopped = page.stopped
    return result


async def list_log_topics(tc: TencentCloud, *, region: str | None = None) -> list[LogTopic]:
    async def load() -> list[LogTopic]:
        # Every page: search_logs needs the id of whichever topic the user means.
        topics = await tc.paged("cls", "DescribeTopics", {}, "Topics", "TopicId", region=region)
        return [
            LogTopic(
                topic_id=field(t, "TopicId", "DescribeTopics"),
                name=t.get("TopicName", ""),
                logset_id=t.get("LogsetId"),
            )
            for t in topics
        ]

    return await tc.cached(("topics", region or tc.region), load)
