"""CLS log search (CQL, or `... | select ...` SQL analysis) and the log topics to search."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ambient.clients.tencent.client import TencentCloud, from_ms, ms
from ambient.clients.tencent.errors import TencentRequestError

MAX_SEARCH_LOGS = 10_000  # CLS caps a Context-paged search here
# An SQL answers its first 100 rows unless it says `limit N`, at most 10,000 (CLS LIMIT syntax,
# cloud.tencent.com/document/product/614/58977).
SQL_DEFAULT_ROWS, SQL_MAX_ROWS = 100, 10_000
SQL_LIMIT = re.compile(r"\blimit\s+(\d+)", re.IGNORECASE)

# Nested deeper, a record's content is kept as its JSON text: pydantic encodes 255 levels at
# most, the answer's own with them, and a line nested past that failed the whole answer.
MAX_NESTING = 100


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
    complete: bool = Field(description="false when the limit cut the result")


class LogTopic(BaseModel):
    topic_id: str
    name: str
    logset_id: str | None = None


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
    """CQL search or `... | select ...` SQL analysis, paged with Context up to ``limit``."""
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
    result = SearchResult(complete=False)
    while True:
        try:
            page = await tc.call("cls", "SearchLog", params, region=region)
        except TencentRequestError as exc:
            # An answer over 20 MB (cls errorcodes: 检索接口返回的日志量太大，超过20MB限制): the
            # search starts over with half the page (Context pages keep their first Limit).
            # Past the search's memory (检索内存超限), no page size helps.
            too_large = exc.code == "LimitExceeded.SearchResultTooLarge"
            if not too_large and exc.code != "LimitExceeded.SearchResources":
                raise
            if not too_large or params["Limit"] == 1 or "|" in query:
                raise TencentRequestError(
                    exc.code, f"{exc.message}: narrow the query or the time range", exc.request_id
                ) from None
            params = {key: value for key, value in params.items() if key != "Context"}
            params["Limit"] //= 2
            result.logs = []
            continue
        if page.get("Analysis"):
            result.analysis = [json.loads(row) for row in page.get("AnalysisRecords") or []]
            # As many rows as the SQL's limit allows may be a cut answer, not the whole one.
            limit_clause = SQL_LIMIT.search(query.split("|", 1)[-1])
            cap = min(int(limit_clause[1]), SQL_MAX_ROWS) if limit_clause else SQL_DEFAULT_ROWS
            result.complete = len(result.analysis) < cap
            return result
        for item in page.get("Results") or []:
            raw = item.get("LogJson") or item.get("RawLog") or ""
            content: dict[str, Any] | str = str(raw)
            with contextlib.suppress(TypeError, ValueError, RecursionError):
                content = json.loads(raw)
            result.logs.append(
                LogRecord(
                    time=from_ms(item["Time"]),
                    topic_id=item.get("TopicId", topic_id),
                    source=item.get("Source"),
                    content=content,
                )
            )
        if page.get("ListOver") or not page.get("Context"):
            result.complete = True
            break
        if len(result.logs) >= limit:
            break
        # Other parameters must stay unchanged between pages.
        params = {**params, "Context": page["Context"]}
    if len(result.logs) > limit:
        result.logs, result.complete = result.logs[:limit], False
    return result


async def list_log_topics(tc: TencentCloud, *, region: str | None = None) -> list[LogTopic]:
    async def load() -> list[LogTopic]:
        # Every page: search_logs needs the id of whichever topic the user means.
        topics = await tc.paged("cls", "DescribeTopics", {}, "Topics", region=region)
        return [
            LogTopic(
                topic_id=t["TopicId"], name=t.get("TopicName", ""), logset_id=t.get("LogsetId")
            )
            for t in topics
        ]

    return await tc.cached(("topics", region or tc.region), load)
