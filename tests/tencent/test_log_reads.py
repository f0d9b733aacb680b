"""A CLS search read as its API reference words it: a log's Time (SearchLog's LogInfo: "日志时间，
单位ms", an integer, in the search's [From, To)), and as many logs as asked when that many
exist. The real SDK against the stand-in."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ambient.briefing.config import ClsLogSpec
from ambient.briefing.logreport import LogReducer
from ambient.briefing.logs import analyze_logs, read_log_source
from ambient.briefing.models import BriefingInputs
from ambient.briefing.offline import offline_draft
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.logs import EMPTY_PAGES, NO_WAY_ON, SERVED_AGAIN, search_logs
from ambient.settings import Settings
from tests.standins.tencent_api import TencentApi
from tests.support.tencent import late_log_before_the_second_page

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = NOW - timedelta(hours=2), NOW
IN_WINDOW = int((NOW - timedelta(hours=1)).timestamp() * 1000)


def _page(
    times: list[Any], *, page: int = 0, over: bool = True, context: str = "c"
) -> tuple[int, str, bytes]:
    """SearchLog's answer holding a log at each of ``times`` (absent: no Time field); not
    ``over``, it names a next page (``context``)."""
    results = [
        {"TopicId": "topic-1", "PkgId": f"P-{page}", "PkgLogId": str(n)}
        | {"LogJson": json.dumps({"n": n})}
        | ({} if when is absent else {"Time": when})
        for n, when in enumerate(times)
    ]
    answer = {
        "Analysis": False,
        "ListOver": over,
        "Context": "" if over else context,
        "Results": results,
    }
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


async def test_a_search_answers_as_many_logs_as_asked_when_one_is_served_twice(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """By Offset, a log landing late among those read moves the rest on: the next page serves
    the last one read again. It was counted once but took a place of the limit: 1,499 logs
    answered to a search for 1,500 of 2,501, said cut by the limit."""
    api, tc = cloud
    api.context_logs = 1_000  # past Context's cap the search goes on by Offset
    api.logs = [{"time": IN_WINDOW + i, "json": {"n": i}} for i in range(2_500)]
    late_log_before_the_second_page(api, {"time": IN_WINDOW + 2_400, "json": {"n": "late"}})
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=1_500)
    assert [r.content["n"] for r in found.logs] == list(range(2_499, 999, -1))  # type: ignore[index]
    assert not found.complete and found.stopped is None


async def test_a_search_answers_as_many_logs_as_asked_past_logs_it_skips(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Logs without a time in the search's range are skipped: the next ones fill the limit."""
    api, tc = cloud
    first = [IN_WINDOW - n for n in range(5)] + ["x"] * 3  # a page of Limit's 8
    api.raw["SearchLog"] = [
        _page(first, over=False),
        _page([IN_WINDOW - 10 - n for n in range(8)], page=1, over=False),
    ]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=8)
    assert len(found.logs) == 8 and found.skipped_lines == 3
    assert not found.complete


async def test_a_search_whose_next_page_holds_only_logs_read_is_said_to_stop_short(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A next page of logs all answered before (its Context or Offset not moving the search on)
    left the search at 5 of 10 logs asked, said cut by the limit, not why it stopped."""
    api, tc = cloud
    times = [IN_WINDOW - n for n in range(5)]
    api.raw["SearchLog"] = [_page(times, over=False), _page(times, over=False)]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=5)
    assert len(found.logs) == 5 and found.complete is False
    api.raw["SearchLog"] = [_page(times, over=False), _page(times, over=False)]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=10)
    assert [r.content for r in found.logs] == [{"n": n} for n in range(5)]
    assert not found.complete and found.stopped == SERVED_AGAIN


async def test_a_search_goes_on_past_pages_without_logs_that_are_not_the_last(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """CLS may answer a page without a log, ListOver false, with a Context to go on from
    (SearchLog's reference: 可使用Context参数获取后续更多日志). Such a page ended the search: a
    briefing read 0 lines of a day of errors, said cut because logs landing late moved it on."""
    api, tc = cloud
    api.raw["SearchLog"] = [
        _page([], over=False, context="c1"),
        _page([IN_WINDOW - n for n in range(5)], page=1, over=False, context="c2"),
        _page([], page=2, over=False, context="c3"),
        _page([IN_WINDOW - 10 - n for n in range(3)], page=3),
    ]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=100)
    assert len(found.logs) == 8 and found.complete and found.stopped is None
    sent = [params.get("Context") for _, action, params in api.calls if action == "SearchLog"]
    assert sent == [None, "c1", "c2", "c3"]
    # The briefing's read of the same answers.
    api.raw["SearchLog"] = [
        _page([], over=False, context="c1"),
        _page([IN_WINDOW - n for n in range(5)], page=1),
    ]
    reducer = LogReducer()
    said = await read_log_source(
        ClsLogSpec(topic_id="topic-1"), *WINDOW, reducer, log_dir=None, admin=True, tencent=tc
    )
    assert said == "5 lines read" and not reducer.capped


async def test_a_search_whose_empty_pages_do_not_move_on_stops_and_says_why(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """An empty page that is not the last and names the Context it was asked with, or names
    none, cannot be gone on from: the search stops there (no loop), and says why."""
    api, tc = cloud
    for stuck in ("c1", ""):  # the Context it was asked with; none
        api.raw["SearchLog"] = [
            _page([IN_WINDOW], over=False, context="c1"),
            _page([], page=1, over=False, context=stuck),
        ]
        found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=100)
        assert len(found.logs) == 1 and not found.complete and found.stopped == NO_WAY_ON
    # Empty pages that do move on are followed up to EMPTY_PAGES in a row.
    api.raw["SearchLog"] = [
        _page([], page=n, over=False, context=f"c{n}") for n in range(EMPTY_PAGES + 5)
    ]
    calls = len(api.calls)
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=100)
    assert not found.logs and found.stopped == NO_WAY_ON
    assert len(api.calls) - calls == EMPTY_PAGES


async def test_a_search_of_logs_without_a_time_stops_once_as_many_are_skipped_as_asked(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Skipped logs took no place of the limit and nothing else bounded the pages: 30 pages of
    logs whose Time is in seconds were 31 calls for a search of 5."""
    api, tc = cloud
    api.raw["SearchLog"] = [
        _page([IN_WINDOW // 1000 - n for n in range(5)], page=p, over=False) for p in range(30)
    ]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=5)
    assert [c[1] for c in api.calls] == ["SearchLog"]
    assert found.logs == [] and found.skipped_lines == 5
    assert not found.complete and found.stopped == (
        "the search stopped after 5 logs without a time in its range (SearchLog's Time, an "
        "integer of milliseconds)"
    )


async def test_a_briefings_cls_search_that_does_not_move_on_is_said_in_the_briefings_words(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """The briefing's source note said "…: ask again, or narrow the time range", advice its
    reader cannot take, and the spoken briefing said the newest were read "(the source's
    limit)", a limit not reached."""
    api, tc = cloud
    times = [IN_WINDOW - n for n in range(5)]
    api.raw["SearchLog"] = [_page(times, over=False), _page(times, over=False)]
    reducer = LogReducer()
    spec = ClsLogSpec(topic_id="topic-1")
    read = await read_log_source(spec, *WINDOW, reducer, log_dir=None, admin=False, tencent=tc)
    assert read == (
        "5 lines read (CLS answered again only logs already read as logs landing late moved it "
        "on, the newest read)"
    )
    inputs = BriefingInputs(date="2026-11-22", language="en", log_lines=5, logs_capped=True)
    for language in ("en", "zh"):
        spoken = offline_draft(inputs.model_copy(update={"language": language})).spoken_text
        assert "source's limit" not in spoken and "日志源的上限" not in spoken, spoken


async def test_analyze_logs_says_a_search_that_does_not_move_on_with_its_own_reason(
    cloud: tuple[TencentApi, TencentCloud], settings: Settings
) -> None:
    """The report (the LLM prompt's, and what analyze_logs answers) said "Read only the newest
    5 lines (the source's limit)." of every stop: a search that did not move on too."""
    api, tc = cloud
    times = [IN_WINDOW - n for n in range(5)]
    api.raw["SearchLog"] = [_page(times, over=False), _page(times, over=False)]
    analysis = await analyze_logs(
        {"type": "cls", "topic_id": "topic-1"},
        *WINDOW,
        settings=settings,
        tencent=tc,
        is_admin=lambda: asyncio.sleep(0, result=False),
    )
    stop = "CLS answered again only logs already read as logs landing late moved it on"
    assert analysis.report.capped and analysis.report.stopped == stop
    assert f"Read only the newest 5 lines: {stop}.\n" in analysis.markdown
    assert "source's limit" not in analysis.markdown


async def test_a_short_page_by_offset_whose_list_is_not_over_does_not_end_the_search(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """SearchLog's ListOver says whether every log the search matches was answered; a page
    by Offset answered short of Limit while ListOver was false ended the search there, the
    logs after it unread and the search said complete."""
    api, tc = cloud

    def by_offset(first: int, count: int, over: bool) -> tuple[int, str, bytes]:
        status, kind, body = _page([IN_WINDOW - first - n for n in range(count)], page=first)
        answer = json.loads(body)["Response"] | {"ListOver": over, "Context": ""}
        return status, kind, json.dumps({"Response": answer}).encode()

    # Limit 100 asked: 5 (no Context: on by Offset), then 2 (short, not over), then 3 and over.
    api.raw["SearchLog"] = [by_offset(0, 5, False), by_offset(5, 2, False), by_offset(7, 3, True)]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=100)
    assert [r.time for r in found.logs] == [
        datetime.fromtimestamp((IN_WINDOW - n) / 1000, UTC) for n in range(10)
    ]
    assert found.complete and found.stopped is None
    assert [c[2].get("Offset") for c in api.calls] == [None, 5, 7]
