"""Alarm history read as the API references say it is answered: Monitor's DescribeAlarmHistories
paged by PageNumber with the checks CLS's Offset lists have, an alarm's time (FirstOccurTime in
seconds, a CLS record's CreateTime in ms) checked as a log's Time is. The real SDK against the
loopback stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ambient.clients.tencent.alarms import list_alarms
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentRequestError
from ambient.cloud.errors import told
from tests.standins.tencent_api import TencentApi

NOW = datetime.now(UTC).replace(microsecond=0)
START, END = NOW - timedelta(hours=6), NOW
IN_WINDOW = int((NOW - timedelta(hours=1)).timestamp())  # seconds, as FirstOccurTime is


def _answer(payload: dict[str, Any]) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps({"Response": payload}).encode()


def _alarm(n: int, when: object = IN_WINDOW) -> dict[str, Any]:
    return {"AlarmId": f"alarm-{n:06d}", "PolicyName": f"disk-{n}", "FirstOccurTime": when}


async def test_monitor_alarms_served_in_pages_smaller_than_asked_are_read_to_their_total(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """PageSize 100 asked, 50 a page answered (a proxy's cap, say), TotalCount 150: the read
    stopped at page * 100 >= 150, after two pages, and listed 100 of 150 as the whole day. Read
    as an Offset list is, its pages counted at the size they come in: every alarm."""
    api, tc = cloud
    alarms = [_alarm(n, IN_WINDOW + n) for n in range(150)]
    api.raw["DescribeAlarmHistories"] = [
        _answer({"Histories": alarms[at : at + 50], "TotalCount": 150}) for at in (0, 50, 100)
    ]
    history = await list_alarms(tc, START, END)
    assert sorted(a.name for a in history.alarms) == sorted(f"disk-{n}" for n in range(150))
    assert history.unread == []
    asked = [c[2]["PageNumber"] for c in api.calls if c[1] == "DescribeAlarmHistories"]
    assert asked == [1, 2, 3]


async def test_monitor_alarms_whose_pages_stop_short_of_their_total_are_said_unread(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """The first page answered to every PageNumber, TotalCount 250: 100 alarms were listed as
    the day's. Short alike at each read, it is no list that changed: not the API's answer, said
    unread (the way to the API to check), not listed short."""
    api, tc = cloud
    first = [_alarm(n) for n in range(100)]
    api.raw["DescribeAlarmHistories"] = [
        _answer({"Histories": first, "TotalCount": 250}) for _ in range(9)
    ]
    history = await list_alarms(tc, START, END, said=told)
    assert [a for a in history.alarms if a.source == "monitor"] == []
    assert [(u.source, u.retryable) for u in history.unread] == [("monitor", False)]
    assert "DescribeAlarmHistories listed 100 of its 250 items" in history.unread[0].error


# FirstOccurTime missing, not an integer, in ms (out of the range asked), a bool: no time.
NOT_TIMES: list[object] = [None, "yesterday", IN_WINDOW * 1000, True, 1.5e9]


async def test_monitor_alarms_without_a_time_in_the_range_asked_are_skipped_and_counted(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """An alarm's FirstOccurTime was taken unchecked: missing, it became an alarm of 1970 that
    the day dropped without a word; not an integer, a ValueError failed the whole alarm read.
    Now, as a log's Time is: skipped and counted, the alarms with a time listed."""
    api, tc = cloud
    served = [_alarm(0), *(_alarm(n + 1, when) for n, when in enumerate(NOT_TIMES))]
    served[2].pop("FirstOccurTime")
    api.raw["DescribeAlarmHistories"] = [_answer({"Histories": served, "TotalCount": 6})]
    history = await list_alarms(tc, START, END, said=told)
    assert [a.name for a in history.alarms] == ["disk-0"]
    assert history.alarms[0].time == datetime.fromtimestamp(IN_WINDOW, UTC)
    assert (history.unreadable, history.unread) == (5, [])


async def test_cls_alert_records_without_a_time_in_the_range_asked_are_skipped_and_counted(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """CLS's twin: a record's CreateTime (ms) in seconds was an alarm of 1970, dropped unsaid."""
    api, tc = cloud
    in_window = IN_WINDOW * 1000
    seconds = {"RecordId": "r-seconds", "AlarmName": "5xx-s", "Status": 0, "CreateTime": IN_WINDOW}
    real = [
        {"RecordId": f"r-{n}", "AlarmName": f"5xx-{n}", "Status": 0, "CreateTime": when}
        for n, when in enumerate([in_window, in_window + 1])
    ]
    odd = [{**seconds}, {**seconds, "RecordId": "r-none", "CreateTime": None}]
    api.raw["DescribeAlertRecordHistory"] = [_answer({"Records": real + odd, "TotalCount": 4})]
    history = await list_alarms(tc, START, END, said=told)
    assert sorted(a.name for a in history.alarms) == ["5xx-0", "5xx-1"]
    assert (history.unreadable, history.unread) == (2, [])


async def test_a_source_whose_every_alarm_has_no_time_is_said_unread_not_a_day_of_none(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Every alarm of Monitor's answer without a time (in ms, say): the day was said to have
    no Monitor alarm. It is said unread, its words naming the field and what to check."""
    api, tc = cloud
    served = [_alarm(n, IN_WINDOW * 1000 + n) for n in range(3)]
    api.raw["DescribeAlarmHistories"] = [_answer({"Histories": served, "TotalCount": 3})]
    history = await list_alarms(tc, START, END, said=told)
    assert history.alarms == []  # its count said in its words, not again as skipped ones
    assert history.unreadable == 0
    assert [(u.source, u.retryable) for u in history.unread] == [("monitor", False)]
    assert "3 alarms without a time in the range asked" in history.unread[0].error
    assert "FirstOccurTime" in history.unread[0].error


async def test_cls_alert_records_begun_outside_the_range_asked_are_not_unreadable(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """DescribeAlertRecordHistory's reference does not say From/To filter on CreateTime: a
    record begun before From (still open), a valid time in ms, was counted unreadable, and a
    read of only such records said CLS unread, a proxy to blame. Out of the day it is dropped
    as any alarm out of it is; only a time missing or not in ms is unreadable."""
    api, tc = cloud
    before = int((START - timedelta(days=2)).timestamp() * 1000)
    records = [
        {"RecordId": f"r-{n}", "AlarmName": f"5xx-{n}", "Status": 0, "CreateTime": before + n}
        for n in range(2)
    ]
    api.raw["DescribeAlertRecordHistory"] = [_answer({"Records": records, "TotalCount": 2})]
    history = await list_alarms(tc, START, END, said=told)
    assert (history.alarms, history.unreadable, history.unread) == ([], 0, [])


async def test_unreadable_alarms_skipped_are_said_with_their_source(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """ "3 unreadable alarms skipped" named no source: which console to look in was not said.
    Each source's are counted and said by its name."""
    api, tc = cloud
    served = [_alarm(0), _alarm(1, None), _alarm(2, "yesterday")]
    api.raw["DescribeAlarmHistories"] = [_answer({"Histories": served, "TotalCount": 3})]
    records = [
        {"RecordId": f"r-{n}", "AlarmName": f"5xx-{n}", "Status": 0, "CreateTime": when}
        for n, when in enumerate([IN_WINDOW * 1000, IN_WINDOW])
    ]
    api.raw["DescribeAlertRecordHistory"] = [_answer({"Records": records, "TotalCount": 2})]
    history = await list_alarms(tc, START, END, said=told)
    assert (history.unreadable, history.unreadable_by) == (3, {"monitor": 2, "cls": 1})
    assert history.skipped_said() == [
        "2 unreadable alarms skipped (Cloud Monitor)",
        "1 unreadable alarm skipped (CLS)",
    ]


@pytest.mark.parametrize("given", [2**64, -(2**63) - 1, "10"])
@pytest.mark.parametrize("field", ["StartTime", "EndTime"])
async def test_an_alarm_time_asked_that_is_no_integer_is_refused_as_the_api_refuses_it(
    cloud: tuple[TencentApi, TencentCloud], field: str, given: object
) -> None:
    """DescribeAlarmHistories' StartTime and EndTime are Integers, whose upper limit is an
    unsigned 64-bit integer's (API 3.0's 参数类型): a number past it, or text, is refused
    InvalidParameter (common error codes: a parameter's format or type wrong)."""
    api, tc = cloud
    api.monitor_alarms = [{"PolicyName": "disk", "AlarmStatus": "ALARM", "FirstOccurTime": 10}]
    with pytest.raises(TencentRequestError) as refused:
        await tc.call("monitor", "DescribeAlarmHistories", {"Module": "monitor", field: given})
    assert (refused.value.code, type(refused.value)) == ("InvalidParameter", TencentRequestError)
    assert f"`{field}`" in refused.value.message


async def test_an_alarm_time_up_to_the_unsigned_64_bit_limit_or_null_is_an_integer_or_absent(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """2**64 - 1 is an Integer (the stand-in refused it past 2**63 - 1); a None is left out of
    the request (the API refuses a null), so the documented defaults hold: StartTime a day
    before now (the stand-in failed on it with a Python TypeError, an HTTP 500)."""
    api, tc = cloud
    api.monitor_alarms = [_alarm(1, 10), _alarm(2, IN_WINDOW)]
    asked = {"Module": "monitor", "StartTime": None, "EndTime": 2**64 - 1}
    answer = await tc.call("monitor", "DescribeAlarmHistories", asked)
    assert [h["PolicyName"] for h in answer["Histories"]] == ["disk-2"]
