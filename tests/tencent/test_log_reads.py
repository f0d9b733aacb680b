"""A CLS search read as its API reference words it: a log's Time (SearchLog's LogInfo: "日志时间，
单位ms", an integer, in the search's [From, To)), and as many logs as asked when that many
exist. The real SDK against the stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ambient.briefing.config import ClsLogSpec
from ambient.briefing.logreport import LogReducer
from ambient.briefing.logs import read_log_source
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.logs import search_logs
from tests.standins.tencent_api import TencentApi

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = NOW - timedelta(hours=2), NOW
IN_WINDOW = int((NOW - timedelta(hours=1)).timestamp() * 1000)


def _page(times: list[Any]) -> tuple[int, str, bytes]:
    """One SearchLog answer holding a log at each of ``times`` (absent: no Time field)."""
    results = [
        {"TopicId": "topic-1", "PkgId": "P-1", "PkgLogId": str(n), "LogJson": json.dumps({"n": n})}
        | ({} if when is absent else {"Time": when})
        for n, when in enumerate(times)
    ]
    answer = {"Analysis": False, "ListOver": True, "Context": "", "Results": results}
    return 200, "application/json", json.dumps({"Response": answer}).encode()


absent = object()
# No Time, a text, a boolean, a fraction, seconds not milliseconds (1970), far past any year a
# time holds, before the epoch, and one a millisecond past the window's end.
NOT_TIMES = [absent, "yesterday", True, IN_WINDOW + 0.5, IN_WINDOW // 1000, 10**20, -5]


async def test_a_log_without_a_time_in_its_search_is_skipped_and_counted(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A log whose Time was missing, not an integer or absurd was taken as is: a KeyError or an
    OverflowError failed the whole search (the briefing's logs said only that it failed), and a
    time in seconds became a log of 1970 that the briefing's day dropped without a word."""
    api, tc = cloud
    api.raw["SearchLog"] = [_page([IN_WINDOW, *NOT_TIMES, int(NOW.timestamp() * 1000) + 1])]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=100)
    assert [r.content for r in found.logs] == [{"n": 0}]
    assert found.logs[0].time == datetime.fromtimestamp(IN_WINDOW / 1000, UTC)
    assert found.skipped_lines == len(NOT_TIMES) + 1 and found.complete


async def test_a_briefings_cls_logs_say_how_many_had_no_time_in_the_day(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.raw["SearchLog"] = [_page([IN_WINDOW, IN_WINDOW + 1, absent, "yesterday"])]
    reducer = LogReducer()
    spec = ClsLogSpec(topic_id="topic-1")
    read = await read_log_source(spec, *WINDOW, reducer, log_dir=None, admin=False, tencent=tc)
    assert read == "2 lines read, 2 unreadable"
    assert reducer.report(start=WINDOW[0], end=WINDOW[1]).unreadable == 2
