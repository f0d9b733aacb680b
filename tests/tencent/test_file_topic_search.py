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
from ambient.clients.logs import file_query
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
