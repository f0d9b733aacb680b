"""Records told apart as the API references name them: a CLS log by its TopicId, Time, PkgId
and PkgLogId (SearchLog's LogInfo; DescribeLogContext names one log by them), a CLS alert
record by its RecordId. Two records alike in every other field are two; one record read twice
(a page re-served, its status changed meanwhile) is one. The real SDK against the stand-in."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from ambient.clients.tencent.alarms import ALARMS_CHANGED, list_alarms
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentAnswerError
from ambient.clients.tencent.logs import search_logs
from ambient.cloud.errors import told
from tests.standins.tencent_api import TencentApi
from tests.support.tencent import late_log_before_the_second_page

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = NOW - timedelta(hours=2), NOW


async def test_a_log_re_served_on_the_next_offset_page_is_counted_once(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.context_logs = 1_000  # past Context's cap the search goes on by Offset
    base = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    api.logs = [{"time": base + i, "json": {"n": i}} for i in range(2_500)]
    late_log_before_the_second_page(api, {"time": base + 2_400, "json": {"n": "late"}})
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=5_000)
    counts = Counter(r.content["n"] for r in found.logs)  # type: ignore[index]
    assert [n for n, times in counts.items() if times > 1] == []
    # Each log once, newest first; the late one landed where the search had already been.
    assert [r.content["n"] for r in found.logs] == list(range(2_499, -1, -1))  # type: ignore[index]
    assert found.complete


async def test_two_logs_alike_in_every_field_but_their_identity_are_both_counted(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A burst of one error in one millisecond from one source: two lines, not one."""
    api, tc = cloud
    api.context_logs = 2  # pages by Offset from the third log on
    base = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    same = {"level": "ERROR", "msg": "upstream timeout"}
    api.logs = [{"time": base, "json": dict(same)} for _ in range(5)]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=100)
    assert [r.content for r in found.logs] == [same] * 5 and found.complete


async def test_logs_answered_without_their_identity_are_each_counted(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Without PkgId and PkgLogId nothing tells a re-served log from a second alike: each
    line answered counts, as before."""
    api, tc = cloud
    api.log_identity = False
    base = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    api.logs = [{"time": base, "json": {"msg": "same"}} for _ in range(3)]
    found = await search_logs(tc, "topic-1", "*", *WINDOW, limit=100)
    assert len(found.logs) == 3 and found.complete


@pytest.mark.parametrize("pkg_id", [["528C1318606EFEB8-0"], {"id": "528C1318606EFEB8-0"}])
async def test_a_log_whose_package_id_is_not_an_id_is_not_the_apis_answer(
    cloud: tuple[TencentApi, TencentCloud], pkg_id: object
) -> None:
    """SearchLog's PkgId and PkgLogId are strings (LogInfo): a list or an object (a proxy's
    answer, say) failed the search with a TypeError (unhashable), not said as an answer that
    is not the API's."""
    api, tc = cloud
    at = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    log = {"Time": at, "TopicId": "topic-1", "PkgId": pkg_id, "PkgLogId": "65536"}
    body = {"Results": [{**log, "LogJson": "{}"}], "ListOver": True, "Context": ""}
    api.raw["SearchLog"] = [(200, "application/json", json.dumps({"Response": body}).encode())]
    with pytest.raises(TencentAnswerError, match="SearchLog answered a log whose PkgId is not"):
        await search_logs(tc, "topic-1", "*", *WINDOW, limit=100)


def _records(count: int) -> list[dict[str, object]]:
    """``count`` CLS alert records still firing, newest first, alike but for their time."""
    newest = int((NOW - timedelta(minutes=1)).timestamp() * 1000)
    return [
        {"AlarmName": "5xx burst", "Status": 0, "Duration": 5, "CreateTime": newest - i * 60_000}
        for i in range(count)
    ]


async def test_an_alert_record_re_served_with_its_status_changed_is_not_listed_twice(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Between two pages of DescribeAlertRecordHistory (newest first, 100 a page) a new record
    comes in and the one at the first page's edge recovers: it is served again on the second
    page, its Status and Duration changed. Told apart by all their fields, it was listed twice,
    once firing and once recovered, and the answer said whole. By RecordId, the list is seen
    to have changed while read and is read again from its first page: each record once."""
    api, tc = cloud
    api.cls_records = _records(150)
    edge = api.cls_records[99]

    def changed() -> None:
        newest = _records(1)[0]
        created = int(newest["CreateTime"]) + 1  # type: ignore[call-overload]
        api.cls_records.append({**newest, "AlarmName": "new burst", "CreateTime": created})
        edge.update(Status=1, Duration=9)

    _on_call(api, "DescribeAlertRecordHistory", 2, changed)
    history = await list_alarms(tc, NOW - timedelta(hours=6), NOW + timedelta(minutes=1))
    cls = [a for a in history.alarms if a.source == "cls"]
    assert [t for t, n in Counter(a.time for a in cls).items() if n > 1] == []
    assert len(cls) == 151 and history.unread == []
    assert [a.status for a in cls].count("OK") == 1
    assert [c[2]["Offset"] for c in api.calls if c[1] == "DescribeAlertRecordHistory"] == [
        0,
        100,
        0,
        100,
    ]


async def test_alert_records_alike_but_for_their_record_id_are_each_listed(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """One policy firing twice in one millisecond (two topics of one name, say): two records."""
    api, tc = cloud
    api.cls_records = [dict(_records(1)[0]) for _ in range(2)]
    history = await list_alarms(tc, NOW - timedelta(hours=6), NOW + timedelta(minutes=1))
    assert [a.name for a in history.alarms if a.source == "cls"] == ["5xx burst"] * 2


async def test_alert_records_without_a_record_id_are_not_the_apis_answer(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """The API reference gives every AlertHistoryRecord its RecordId: records without one (a
    proxy's answer, say) are refused as not the API's, not told apart by their fields."""
    api, tc = cloud
    api.record_ids = False
    api.cls_records = _records(3)
    history = await list_alarms(tc, NOW - timedelta(hours=6), NOW + timedelta(minutes=1))
    assert [a for a in history.alarms if a.source == "cls"] == []
    assert [(u.source, u.retryable) for u in history.unread] == [("cls", False)]
    assert "the answer is not the API's" in history.unread[0].error
    assert "without its RecordId" in history.unread[0].error


def _on_call(api: TencentApi, action: str, n: int, do: Callable[[], None]) -> None:
    """``do`` runs just before the ``n``-th request of ``action`` is handled."""
    if n == 1:
        api.before[action] = do
    else:
        api.before[action] = lambda: _on_call(api, action, n - 1, do)


async def test_a_monitor_alarm_recovering_while_the_open_ones_are_read_skips_none(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """The alarms still firing from before the window are read by AlarmStatus ALARM, oldest
    first, 100 a page. One on the first page recovers before the second is read: every later
    one moves a place back, and the first of the second page, still firing, was never listed
    (the briefing's open problems one short, said whole). Now the list is seen to have
    changed while read and is read again from its first page: every one still firing."""
    api, tc = cloud
    start = NOW - timedelta(hours=6)
    oldest = int((start - timedelta(days=10)).timestamp())
    api.monitor_alarms = [
        {"PolicyName": f"disk-{i}", "AlarmStatus": "ALARM", "FirstOccurTime": oldest + 60 * i}
        for i in range(150)
    ]
    # The window's read, the look-back's first page, then its second.
    _on_call(
        api, "DescribeAlarmHistories", 3, lambda: api.monitor_alarms[10].update(AlarmStatus="OK")
    )
    history = await list_alarms(tc, start, NOW, ongoing=True)
    firing = [a.name for a in history.alarms if a.ongoing]
    assert sorted(firing) == sorted(f"disk-{i}" for i in range(150) if i != 10)
    assert history.unread == []


async def test_a_cls_alert_recovering_while_the_open_ones_are_read_skips_none(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """CLS's twin: the records still firing from before the window (status 0), newest first,
    100 a page. One on the first page recovers before the second is read: the first of the
    second page moved onto the first, and the read found as many as the total then said,
    149, and called it whole. Read again from its first page, each one still firing is."""
    api, tc = cloud
    start = NOW - timedelta(hours=6)
    newest = int((start - timedelta(days=1)).timestamp() * 1000)
    api.cls_records = [
        {"AlarmName": f"5xx-{i}", "Status": 0, "Duration": 5, "CreateTime": newest - i * 60_000}
        for i in range(150)
    ]
    # The window's read (one page), the look-back's first page, then its second.
    _on_call(api, "DescribeAlertRecordHistory", 3, lambda: api.cls_records[10].update(Status=1))
    history = await list_alarms(tc, start, NOW, ongoing=True)
    firing = [a.name for a in history.alarms if a.ongoing]
    assert sorted(firing) == sorted(f"5xx-{i}" for i in range(150) if i != 10)
    assert history.unread == []


async def test_a_list_that_changes_at_each_read_is_said_unread_in_words_the_user_reads(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A flapping alert: the firing ones' list changes while each of its reads: after three
    reads the look-back is said unread (a passing failure), in words the user reads, and the
    window's alarms are listed still."""
    api, tc = cloud
    start = NOW - timedelta(hours=6)
    oldest = int((start - timedelta(days=10)).timestamp())
    api.monitor_alarms = [
        {"PolicyName": f"disk-{i}", "AlarmStatus": "ALARM", "FirstOccurTime": oldest + 60 * i}
        for i in range(150)
    ]
    today = {"PolicyName": "cpu", "AlarmStatus": "ALARM", "FirstOccurTime": int(NOW.timestamp())}
    api.monitor_alarms.append(today)
    recovering = iter(range(150))

    def recover() -> None:
        if "AlarmStatus" in api.calls[-1][2]:  # the look-back's pages: one recovers each time
            api.monitor_alarms[next(recovering)].update(AlarmStatus="OK")
        api.before["DescribeAlarmHistories"] = recover

    api.before["DescribeAlarmHistories"] = recover
    history = await list_alarms(tc, start, NOW + timedelta(seconds=1), ongoing=True, said=told)
    assert [a.name for a in history.alarms if a.source == "monitor"] == ["cpu"]
    assert [(u.source, u.retryable) for u in history.unread] == [
        ("monitor (firing since before)", True)
    ]
    assert history.unread[0].error == ALARMS_CHANGED
