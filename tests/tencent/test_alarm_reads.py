"""Alarm history read as the API references say it is answered: Monitor's DescribeAlarmHistories
paged by PageNumber with the checks CLS's Offset lists have, an alarm's time (FirstOccurTime in
seconds, a CLS record's CreateTime in ms) checked as a log's Time is. The real SDK against the
loopback stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ambient.clients.tencent.alarms import list_alarms
from ambient.clients.tencent.client import TencentCloud
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
