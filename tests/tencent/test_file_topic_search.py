"""`search_logs` on a `file:NAME` topic: a line's wall time is read in the caller's zone (as
the briefing and analyze_logs read it), and the query's simple CQL forms (`level:ERROR`, the
tool's own example) and text holding quotes or backslashes find what the line shows. Before,
a local-time line was read 8 hours late in Shanghai, and each of these searches answered
"no logs" with complete true."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ambient.clients.log_formats import parse_line
from ambient.clients.logs import FileLogSource, file_query
from ambient.clients.tencent.logs import LogRecord
from ambient.deps import WorkerDeps
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from tests.standins.tencent_api import TencentApi
from tests.tencent.test_cloud_tools import call, client, cloud_state  # noqa: F401


async def test_a_file_topics_local_wall_times_are_read_in_the_callers_zone(
    cloud_state: tuple[TencentApi, AppState],  # noqa: F811
    deps: WorkerDeps,
) -> None:
    _, state = cloud_state
    async with deps.db.session() as session:
        viewer = await UserRepository(session).get("viewer")
        assert viewer is not None
        viewer.timezone = "Asia/Shanghai"
        await session.commit()
    written = (datetime.now(UTC) - timedelta(minutes=10)).astimezone(ZoneInfo("Asia/Shanghai"))
    assert state.settings.log_dir is not None
    log = Path(state.settings.log_dir) / "svc.log"
    # Python logging's default: local wall time, no offset.
    log.write_text(f"{written:%Y-%m-%d %H:%M:%S},123 ERROR payment gateway timeout\n")
    naive = written.replace(tzinfo=None)
    start = (naive - timedelta(minutes=30)).isoformat(timespec="seconds")
    end = (naive + timedelta(minutes=30)).isoformat(timespec="seconds")
    async with client(state, "viewer") as c:
        failed, asked = await call(c, "search_logs", topic_id="file:svc.log", start=start, end=end)
        failed_too, last_hour = await call(c, "search_logs", topic_id="file:svc.log")
    assert not failed and not failed_too
    assert [r["content"]["message"] for r in asked["logs"]] == ["payment gateway timeout"]
    assert len(last_hour["logs"]) == 1, last_hour


async def test_a_file_topic_finds_its_examples_level_and_text_as_the_line_shows_it(
    cloud_state: tuple[TencentApi, AppState],  # noqa: F811
) -> None:
    _, state = cloud_state
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert state.settings.log_dir is not None
    log = Path(state.settings.log_dir) / "api.log"
    msg = 'user "bob" denied at C:\\srv\\app'
    log.write_text(json.dumps({"time": at, "level": "ERROR", "msg": msg}) + "\n")
    async with client(state, "viewer") as c:
        for query in ("level:ERROR", 'user "bob"', "C:\\srv\\app", "level:error AND bob"):
            failed, found = await call(c, "search_logs", topic_id="file:api.log", query=query)
            assert not failed, found
            assert [r["content"]["msg"] for r in found["logs"]] == [msg], query
        _, none = await call(c, "search_logs", topic_id="file:api.log", query="level:WARN")
    assert none["logs"] == [] and none["complete"] is True


def _record(line: str) -> LogRecord:
    record = parse_line(line, "app.log")
    assert record is not None
    return record


def test_a_file_query_reads_each_formats_level_fields_and_plain_text() -> None:
    plain = _record("2026-12-03 10:00:00,123 ERROR pay.handler: card declined: code 51")
    shouty = _record('{"time": "2026-12-03T10:00:00Z", "severity": "error", "msg": "disk full"}')
    warned = _record('{"time": "2026-12-03T10:00:00Z", "level": "warn", "msg": "slow: 3 s"}')
    cases = {
        "*": [plain, shouty, warned],
        "": [plain, shouty, warned],
        "level:ERROR": [plain, shouty],
        "level:warning": [warned],
        "msg:disk": [shouty],
        '"card declined"': [plain],
        "declined: code 51": [plain],  # a colon in text: no such field, the text as written
        "slow: 3 s": [warned],
        "level:ERROR AND disk": [shouty],
        "level:ERROR AND nothing": [],
    }
    for query, wanted in cases.items():
        matches = file_query(query)
        assert [r for r in (plain, shouty, warned) if matches(r)] == wanted, query


# A Java and a Python error, each with its stack trace, as Spring Boot and Python's logging
# write them.
TRACED = """\
2026-11-22 10:00:00.123 ERROR 1 --- [nio-8080-exec-1] c.e.shop.OrderController : Request failed
java.lang.NullPointerException: Cannot invoke "String.length()" because "s" is null
\tat com.example.shop.OrderController.create(OrderController.java:42)
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)
Caused by: java.sql.SQLException: Connection refused
\tat com.mysql.cj.jdbc.ConnectionImpl.<init>(ConnectionImpl.java:100)
\t... 12 more
2026-11-22 10:00:01.000  INFO 1 --- [main] c.e.shop.App : Started
2026-11-22 10:00:02,000 - app.views - ERROR - Internal Server Error: /api/orders/
Traceback (most recent call last):
  File "/srv/app/views.py", line 3, in get
    raise ValueError("bad card")
ValueError: bad card
2026-11-22 10:00:03,000 - app.views - INFO - fine
"""
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 22, tzinfo=SHANGHAI), datetime(2026, 11, 23, tzinfo=SHANGHAI)


async def test_a_file_topic_search_finds_the_exception_a_stack_trace_logged(
    tmp_path: Path,
) -> None:
    """The exception an operator searches for is in the trace below the event's line: it
    belongs to that event (as the briefing reads it, as CLS's multi-line records keep it), and
    searching for it answered no logs, complete. The record now holds its trace below its
    message."""
    log = tmp_path / "app.log"
    log.write_text(TRACED)
    source = FileLogSource(log, None, SHANGHAI)
    for query in ("NullPointerException", "SQLException", "ValueError", "bad card"):
        found = await source.search(query, *DAY)
        assert len(found.logs) == 1, (query, found.logs)
    [java] = (await source.search("NullPointerException", *DAY)).logs
    assert isinstance(java.content, dict)
    assert java.content["message"].splitlines() == [
        "Request failed",
        *TRACED.splitlines()[1:7],
    ]
    every = (await source.search("*", *DAY)).logs
    assert [r.content["level"] for r in every] == ["INFO", "ERROR", "INFO", "ERROR"]  # type: ignore[index]


ORDERS = "".join(
    f'{{"time":"2026-11-22T02:00:0{n}Z","level":"info","msg":"order paid",'
    f'"order_id":{order},"status":{status},"path":"/api/orders/{order}"}}\n'
    for n, (order, status) in enumerate([(7, 200), (17, 502), (70, 500), (1007, 404)])
)


async def test_a_file_topic_field_value_term_is_the_fields_value_not_a_part_of_it(
    tmp_path: Path,
) -> None:
    """As CQL reads them: `order_id:7` (a number) is order 7, not 17, 70 and 1007;
    `status:50` is no status here; a text field matches by its words, a trailing `*` a
    word's beginning. Each matched any value holding the digits."""
    log = tmp_path / "orders.log"
    log.write_text(ORDERS)
    source = FileLogSource(log, None, SHANGHAI)

    async def orders(query: str) -> list[int]:
        found = await source.search(query, *DAY)
        return sorted(r.content["order_id"] for r in found.logs)  # type: ignore[index]

    assert await orders("order_id:7") == [7]
    assert await orders("status:50") == []
    assert await orders("status:502") == [17]
    assert await orders("path:/api/orders/7") == [7]
    assert await orders('path:"orders/17"') == [17]
    assert await orders("path:1*") == [17, 1007]
    assert await orders("msg:paid") == [7, 17, 70, 1007]
    assert await orders("msg:pai") == []
    assert await orders("msg:pai*") == [7, 17, 70, 1007]


async def test_a_file_topic_field_term_reads_a_nested_json_field_by_its_dotted_name(
    tmp_path: Path,
) -> None:
    """Fluent Bit's and Filebeat's JSON lines nest Kubernetes' fields, which CLS's JSON index
    names by their dotted path: `kubernetes.pod_name:pay-1` answered no logs, complete."""
    log = tmp_path / "pods.log"
    log.write_text(
        '{"time":"2026-11-22T02:00:00Z","level":"error","msg":"charge failed",'
        '"kubernetes":{"pod_name":"pay-1","namespace_name":"shop"}}\n'
        '{"time":"2026-11-22T02:00:01Z","level":"error","msg":"charge failed",'
        '"kubernetes":{"pod_name":"web-2","namespace_name":"shop"}}\n'
    )
    source = FileLogSource(log, None, SHANGHAI)
    found = await source.search("kubernetes.pod_name:pay-1", *DAY)
    assert [r.content["kubernetes"]["pod_name"] for r in found.logs] == ["pay-1"]  # type: ignore[index]
    shop = await source.search("Kubernetes.Namespace_Name:shop AND level:error", *DAY)
    assert len(shop.logs) == 2


async def test_a_search_keeps_only_the_newest_it_answers_not_every_match(tmp_path: Path) -> None:
    """Every matching record of the window was held to be sorted (~1 KB each): a day of a
    million error lines searched with `*` held a gigabyte in the API or worker process."""
    import tracemalloc

    now = datetime.now(UTC).replace(microsecond=0)
    lines = (
        f"{(now - timedelta(seconds=n)).isoformat()} ERROR request {n} failed\n"
        for n in range(10_000)
    )
    (tmp_path / "big.log").write_text("".join(lines))
    source = FileLogSource(tmp_path / "big.log")
    tracemalloc.start()
    try:
        found = await source.search(
            "*", now - timedelta(days=1), now + timedelta(seconds=1), limit=5
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.content["message"] for r in found.logs] == [f"request {n} failed" for n in range(5)]
    assert not found.complete
    assert peak < 2 * 2**20, peak  # all 10,000 held: about 9 MiB; five: about 0.1 MiB
