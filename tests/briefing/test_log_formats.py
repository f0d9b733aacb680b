"""Real teams' log files read by the briefing's preparation: time zones, encodings, levels."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import json
import lzma
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import ActivityEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig, FileLogSpec, plan_for
from ambient.briefing.logreport import LogReducer, LogReport
from ambient.briefing.logs import analyze_logs, fill_from_report, read_log_source
from ambient.briefing.models import BriefingInputs, PreparedBriefing, PrepareRequest
from ambient.briefing.offline import offline_draft
from ambient.clients.llm import LLMClient
from ambient.clients.log_formats import parse_line
from ambient.clients.log_parts import DOCKER_PIECE, whole_lines
from ambient.clients.logs import FileLogSource, uncaught_crash
from ambient.clients.tencent.client import TencentCloud
from ambient.commands.logs import read_line
from ambient.domain.loglevels import level_and_message
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.briefings import BriefingRepository

DAY = datetime(2026, 11, 23, tzinfo=UTC).date()
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The day before DAY in Shanghai, as the briefing of DAY reads it.
WINDOW = datetime(2026, 11, 22, tzinfo=SHANGHAI), datetime(2026, 11, 23, tzinfo=SHANGHAI)


async def prepare(
    settings: Settings, db: Database, path: Path, timezone: str = "Asia/Shanghai"
) -> tuple[PreparedBriefing, str]:
    """The real preparation activity (offline writer) on ``path``: its result and stored report."""
    acts = BriefingActivities(
        db, LLMClient(settings), TencentCloud(None, region="ap-guangzhou"), settings
    )
    config = BriefingConfig(
        timezone=timezone,
        log_source={"type": "file", "path": str(path)},  # type: ignore[arg-type]
    )
    request = PrepareRequest(
        user="alice", task_id="daily-briefing/alice", config=config, day=plan_for(DAY, config)
    )
    prepared = await ActivityEnvironment().run(acts.prepare_briefing, request)
    async with db.session() as session:
        row = await BriefingRepository(session).get("alice", DAY.isoformat())
    assert row is not None
    return prepared, row.report_markdown


def reduced(source: FileLogSource) -> LogReport:
    """The report of the source's records of WINDOW, as the briefing reduces them."""
    reducer = LogReducer()
    reducer.add_many((r.time, *level_and_message(r.content)) for r in source.records(*WINDOW))
    return reducer.report(start=WINDOW[0], end=WINDOW[1])


def log_note(prepared: PreparedBriefing) -> str:
    (note,) = [s for s in prepared.sources if s.source == "logs"]
    assert note.ok, note.detail
    return note.detail


async def test_timestamps_without_an_offset_are_the_briefings_local_time(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # A Shanghai service's log4j lines carry local time with no offset: the 22nd, local day.
    path = tmp_path / "app.log"
    path.write_text(
        "2026-11-21 23:59:59,999 WARN [main] c.a.Pay - the day before\n"
        "2026-11-22 00:00:00,000 ERROR [main] c.a.Pay - refused\n"
        "2026-11-22 23:30:00,123 ERROR [main] c.a.Pay - refused\n"
        "2026-11-23 00:00:00,000 WARN [main] c.a.Pay - today\n"
        "2026-11-23 07:00:00,000 WARN [main] c.a.Pay - today\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 2 lines read")
    assert "日志 2 行，错误 2" in report
    # Before, they were read as UTC: 08:00 to 08:00 local, the day before's last line in.
    assert "日志 2 行，错误 2，警告 0" in report


async def test_analyze_logs_names_its_source_as_the_briefing_does(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # The briefing said "log file X: ..." and analyze_logs answered the same file as "X".
    path = tmp_path / "app.log"
    path.write_text("2026-11-22 09:00:00,000 ERROR [main] c.a.Pay - refused\n", encoding="utf-8")
    prepared, _ = await prepare(settings, db, path)
    shanghai = ZoneInfo("Asia/Shanghai")
    analysis = await analyze_logs(
        {"type": "file", "path": str(path)},
        datetime(2026, 11, 22, tzinfo=shanghai),
        datetime(2026, 11, 23, tzinfo=shanghai),
        settings=settings,
        tencent=TencentCloud(None, region="ap-guangzhou"),
        is_admin=lambda: asyncio.sleep(0, result=False),
    )
    assert analysis.source == f"log file {path}"
    assert log_note(prepared) == f"{analysis.source}: {analysis.read}"


async def test_a_damaged_gz_in_a_rotated_folder_is_named_and_the_other_files_are_read(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    line = "2026-11-22T{:02d}:00:00+08:00 ERROR payment refused\n"
    (logs / "app.log").write_text(line.format(10), encoding="utf-8")
    # Still being compressed by logrotate: cut off before gzip's end-of-stream marker.
    whole = gzip.compress("".join(line.format(h) for h in range(8)).encode() * 200)
    (logs / "app.log.1.gz").write_bytes(whole[: len(whole) // 2])
    (logs / "app.log.2.gz").write_text(line.format(9), encoding="utf-8")  # named .gz, not gzip
    prepared, report = await prepare(settings, db, logs)
    note = log_note(prepared)
    assert "app.log.1.gz" in note and "end-of-stream" in note
    assert "app.log.2.gz" in note and "Not a gzipped file" in note
    # app.log's line and those of app.log.1.gz before the cut, in a briefing of the day.
    read = int(re.search(r": (\d+) lines read", note)[1])  # type: ignore[index]
    assert read > 1 and f"日志 {read} 行，错误 {read}" in report


async def test_rotated_files_compressed_with_xz_or_bzip2_are_read(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """logrotate's compresscmd may be xz or bzip2: their files were read as text, every line
    unreadable. A damaged one is named, as a damaged .gz is."""
    logs = tmp_path / "logs"
    logs.mkdir()
    line = "2026-11-22T{:02d}:00:00+08:00 ERROR payment refused\n"
    (logs / "app.log").write_text(line.format(10), encoding="utf-8")
    (logs / "app.log.1.xz").write_bytes(lzma.compress((line.format(8) + line.format(9)).encode()))
    (logs / "app.log.2.bz2").write_bytes(bz2.compress(line.format(7).encode()))
    (logs / "app.log.3.xz").write_text(line.format(6), encoding="utf-8")  # named .xz, not xz
    prepared, report = await prepare(settings, db, logs)
    note = log_note(prepared)
    assert ": 4 lines read; not read to the end: app.log.3.xz: Input format not" in note
    assert "日志 4 行，错误 4" in report


async def test_a_utf8_file_with_a_byte_order_mark_loses_no_line(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # Windows tools (Notepad, .NET's Encoding.UTF8) start a UTF-8 file with a BOM.
    path = tmp_path / "app.log"
    line = '{{"time": "2026-11-22T10:0{}:00+08:00", "level": "ERROR", "msg": "payment refused"}}\n'
    path.write_text("\ufeff" + line.format(0) + line.format(1), encoding="utf-8")
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 2 lines read")
    assert "日志 2 行，错误 2" in report


def test_a_utf8_line_cut_inside_a_character_keeps_its_chinese(tmp_path: Path) -> None:
    """A service that cuts a note to N bytes (Go's s[:n], C's snprintf) cuts inside a Chinese
    character mid-line: the line is UTF-8 but for that one character. Read whole as GBK, every
    Chinese word of it turned to mojibake, and the same error split off into its own template.
    The cut character is left out, as at a line's end."""
    lines = []
    for second, name in enumerate(["张三丰", "李四光明", "王五"]):
        note = ("备注" + name + "的订单").encode()[:8]  # cut inside 张/李/王
        lines.append(
            f"2026-11-22 10:00:0{second} ERROR 支付失败 订单 {1000 + second} 备注=".encode()
            + note
            + b"... retrying"
        )
    for second, note in enumerate(["好", "急", "加急"], 6):
        line = f"2026-11-22 10:00:0{second} ERROR 支付失败 订单 100{second} 备注={note}... retrying"
        lines.append(line.encode())
    path = tmp_path / "app.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    source = FileLogSource(path, zone=SHANGHAI)
    [first, *_] = source.records(*WINDOW)
    assert first.content["message"] == "支付失败 订单 1000 备注=备注... retrying"
    report = reduced(source)
    templates = [(t.count, t.template) for t in report.templates]
    assert templates == [(6, "支付失败订单<*>备注= <*> ... retrying")]


async def test_ecs_serilog_and_string_epoch_json_lines_are_read_and_a_bool_is_no_time(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "app.log"
    path.write_text(
        # Elastic Common Schema, flattened and nested; Serilog's compact JSON (CLEF).
        '{"@timestamp": "2026-11-22T10:00:00+08:00", "log.level": "error", "message": "db down"}\n'
        '{"@timestamp": "2026-11-22T10:01:00+08:00", "log": {"level": "error"}, "message": "x"}\n'
        '{"@t": "2026-11-22T02:02:00Z", "@l": "Error", "@m": "payment refused"}\n'
        '{"@t": "2026-11-22T02:03:00Z", "@mt": "Order {Id} placed", "Id": 7}\n'
        # An epoch written as a string; a bool is no time (it used to read as 1970-01-01).
        '{"ts": "1795312800", "level": "warn", "msg": "slow"}\n'
        '{"ts": true, "level": "error", "msg": "no time"}\n',
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 5 lines read, 1 unreadable")
    assert "日志 5 行，错误 3，警告 1" in report


# winston's format.combine(format.colorize(), format.json()) and zap's CapitalColorLevelEncoder
# under its JSON encoder: the level's colour codes are inside the JSON string, escaped (\u001b).
COLOURED_JSON = (
    '{"level":"\\u001b[31merror\\u001b[39m","message":"payment provider refused the charge",'
    '"timestamp":"2026-11-22T10:00:00+08:00"}\n'
    '{"level":"\\u001b[31mERROR\\u001b[0m","ts":1795312801.5,"msg":"ledger write failed",'
    '"caller":"ledger/write.go:42"}\n'
)


def test_a_json_lines_coloured_level_is_read(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(COLOURED_JSON, encoding="utf-8")
    report = reduced(FileLogSource(path, zone=SHANGHAI))
    assert report.by_level == {"ERROR": 2}, report.by_level
    assert [t.template for t in report.templates] == [
        "payment provider refused the charge",
        "ledger write failed",
    ]


async def test_a_day_of_coloured_json_errors_is_not_said_quiet(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # The level read as UNKNOWN: a day of errors was said "昨天一切平稳".
    path = tmp_path / "app.log"
    path.write_text(COLOURED_JSON, encoding="utf-8")
    prepared, report = await prepare(settings, db, path)
    assert "昨天一切平稳" not in prepared.spoken_text, prepared.spoken_text
    assert "错误 2" in report, report


async def test_dotnet_json_console_and_serilog_json_lines_are_read_with_their_level(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """.NET's own JSON console logger (AddJsonConsole: "LogLevel", "Message", and "Timestamp"
    when a format is set) and Serilog's JsonFormatter ("Timestamp", "Level",
    "RenderedMessage") name their fields in PascalCase. Behind a container runtime's time, an
    ASP.NET service's errors were all UNKNOWN (the briefing said no error at all); in a file
    of its own, every line was unreadable."""
    path = tmp_path / "0.log"
    dotnet = {"EventId": 0, "LogLevel": "Error", "Category": "Shop.Pay", "State": {}}
    path.write_text(
        "2026-11-22T02:00:00.1Z stdout F "
        + json.dumps({**dotnet, "Message": "payment refused"})
        + "\n"
        + json.dumps({"Timestamp": "2026-11-22T10:00:01+08:00", **dotnet, "Message": "x"})
        + "\n"
        + json.dumps(
            {
                "Timestamp": "2026-11-22T10:00:02.5+08:00",
                "Level": "Warning",
                "MessageTemplate": "Slow card {Card}",
                "RenderedMessage": "Slow card 42",
                "Properties": {"Card": 42},
            }
        )
        + "\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 3 lines read")
    assert "日志 3 行，错误 2，警告 1" in report
    assert "| ERROR | 1 | payment refused |" in report
    assert "| WARNING | 1 | Slow card <\\*> | Slow card 42 |" in report


# Rust's tracing-subscriber JSON format (fmt().json()): the message under "fields".
TRACING_JSON = "".join(
    f'{{"timestamp":"2026-11-22T02:00:0{i}.123456Z","level":"ERROR",'
    f'"fields":{{"message":"{message}","attempt":{i}}},"target":"app::{target}"}}\n'
    for i, (message, target) in enumerate(
        [
            ("database connection refused", "db"),
            ("payment provider timed out", "pay"),
            ("payment provider timed out", "pay"),
            ("user not found", "users"),
        ]
    )
)


async def test_rust_tracing_json_errors_are_told_apart_by_their_message(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # Read as "fields={...} target=...", every error was one template, "fields={<*>: <*>} <*>".
    path = tmp_path / "app.log"
    path.write_text(TRACING_JSON, encoding="utf-8")
    prepared, report = await prepare(settings, db, path)
    assert "payment provider timed out" in prepared.spoken_text, prepared.spoken_text
    assert "- ERROR ×2: payment provider timed out" in report, report
    assert "fields=" not in report, report


@pytest.mark.parametrize("level", [60, 50, 3, "Error"])
def test_a_clef_events_level_property_is_the_messages_not_its_level(level: object) -> None:
    """Serilog's compact JSON (CLEF) writes an event's properties as top-level keys and leaves
    out ``@l`` for Information: a property named "Level" (a tank's) is no level. Read as .NET's
    "Level", 60 and 50 made an Information event CRITICAL and ERROR (invented errors)."""
    event = {"@t": "2026-11-22T02:00:00Z", "@mt": "Tank {Tank} at {Level}%", "Level": level}
    assert level_and_message(event) == ("INFO", "Tank {Tank} at {Level}%")
    # Outside CLEF a "Level" that is no level's name leaves the line's own word to decide.
    assert level_and_message({"time": 1, "msg": "ERROR save failed", "Level": 3})[0] == "ERROR"


@pytest.mark.parametrize(
    ("record", "said"),
    [
        # OpenTelemetry's log record as its exporters write it (CLS takes OTLP in): counted as
        # UNKNOWN, the day's errors said "carry no level".
        ({"severityText": "Error", "body": "upstream timeout", "traceId": "ab12"}, "ERROR"),
        ({"severity_text": "WARN", "body": "disk low", "span_id": "cd34"}, "WARNING"),
        ({"SeverityText": "ERROR", "Body": "upstream timeout", "Resource": {"a": "b"}}, "ERROR"),
        ({"severityNumber": 17, "body": "upstream timeout"}, "ERROR"),
        ({"logLevel": "ERROR", "message": "upstream timeout"}, "ERROR"),
    ],
)
def test_opentelemetry_and_camel_case_levels_are_read(record: dict[str, object], said: str) -> None:
    level, message = level_and_message(record)
    assert (level, message) == (
        said,
        record.get("body") or record.get("Body") or "upstream timeout",
    )


def test_a_message_made_of_its_fields_leaves_out_cls_metadata_and_trace_ids() -> None:
    """A record with no message field is said as its fields: CLS's __TAG__ (a pod's name), the
    trace's ids and its resource went into the spoken error too."""
    record = {
        "level": "ERROR",
        "log_message": "支付失败：银行接口超时",
        "__TAG__": {"pod_name": "pay-7d9f"},
        "__TAG__.container_name": "pay",
        "__SOURCE__": "10.0.0.7",
        "trace_id": "4bf92f3577b34da6",
        "resource": {"service.name": "pay"},
    }
    assert level_and_message(record) == ("ERROR", "支付失败：银行接口超时")
    # Its attributes may be the event's own words: kept (three errors were one empty message).
    otel = {"severityText": "ERROR", "attributes": {"exception.message": "db pool exhausted"}}
    assert "db pool exhausted" in level_and_message(otel)[1]
    only_metadata = {"level": "ERROR", "resource": {"service.name": "pay"}, "trace_id": "4bf9"}
    assert level_and_message(only_metadata)[1]  # said whole, never empty


async def test_lines_exported_from_cls_are_timed_by_their_timestamp_field(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # CLS writes a record's time in __TIMESTAMP__ (epoch ms) beside __CONTENT__: such a file
    # was read as all unreadable.
    path = tmp_path / "cls-export.log"
    path.write_text(
        '{"__TIMESTAMP__": 1795312800000, "__CONTENT__": "ERROR db timeout"}\n'
        '{"__TIMESTAMP__": "1795312860000", "__LEVEL__": "warn", "__CONTENT__": "slow"}\n',
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 2 lines read")
    assert "日志 2 行，错误 1，警告 1" in report


async def test_syslog_access_nginx_chinese_date_and_logfmt_lines_are_read(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "app.log"
    access = '10.0.0.7 - - [22/Nov/2026:10:00:0{} +0800] "GET /pay HTTP/1.1" {} 12 "-" "curl/8"\n'
    path.write_text(
        "Nov 22 10:00:00 web1 pay[123]: ERROR payment refused\n"
        + access.format(1, 500)  # 5xx an error, 4xx a warning, the rest information
        + access.format(2, 404)
        + access.format(3, 200)
        + "2026/11/22 10:00:04 [error] 123#0: *1 connect() failed (111: Connection refused)\n"
        + "2026年11月22日 10:00:05 错误 连接数据库失败\n"
        + 'time=2026-11-22T10:00:06+08:00 level=warn msg="disk almost full" free=3%\n'
        + 'time="2026-11-22T02:00:07Z" level=error msg="db down" err="i/o timeout"\n'
        + "Nov 23 07:00:00 web1 pay[123]: today, not yesterday\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 8 lines read")
    assert "日志 8 行，错误 5，警告 2" in report


# Apache's vhost_combined (Debian's other_vhosts_access.log; nginx configs that put $host
# first): the virtual host before the combined format.
VHOST_ACCESS = (
    'shop.example.com:443 10.0.0.1 - - [22/Nov/2026:10:00:00 +0800] "GET /api/orders/123 '
    'HTTP/1.1" 502 157 "-" "curl/8.0"\n'
    'shop.example.com:443 10.0.0.2 - - [22/Nov/2026:10:00:01 +0800] "GET /api/orders/124 '
    'HTTP/1.1" 200 157 "-" "curl/8.0"\n'
    'shop.example.com 10.0.0.3 - - 0.012 [22/Nov/2026:10:00:02 +0800] "GET /api/orders/125 '
    'HTTP/1.1" 404 157 "-" "curl/8.0"\n'
)


async def test_an_access_log_with_fields_before_the_client_is_read_with_its_5xx_as_errors(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # Said unread: no line had a time in a format the briefing reads.
    path = tmp_path / "other_vhosts_access.log"
    path.write_text(VHOST_ACCESS, encoding="utf-8")
    prepared, report = await prepare(settings, db, path)
    assert "昨天有 1 个错误" in prepared.headline, (prepared.headline, prepared.sources)
    assert log_note(prepared).endswith(": 3 lines read")
    assert "日志 3 行，错误 1，警告 1" in report


def test_a_syslog_line_without_a_year_is_on_or_before_the_day_it_is_read_for(
    tmp_path: Path,
) -> None:
    path = tmp_path / "syslog"
    path.write_text(
        "Dec 31 23:59:59 web1 cron[7]: job done\nJan  1 00:00:01 web1 cron[7]: job started\n",
        encoding="utf-8",
    )
    source = FileLogSource(path, zone=ZoneInfo("Asia/Shanghai"))
    zone = ZoneInfo("Asia/Shanghai")
    start, end = datetime(2026, 12, 31, tzinfo=zone), datetime(2027, 1, 1, tzinfo=zone)
    written_at(path, datetime(2027, 1, 1, 0, 0, 1, tzinfo=zone))
    # Read on New Year's Day: 31 December is last year's, not the coming one.
    [record] = source.records(start, end)
    assert record.time == datetime(2026, 12, 31, 23, 59, 59, tzinfo=zone)
    assert source.skipped == 0


JAVA_AND_PYTHON_TRACES = """\
2026-11-22 10:00:00,000 ERROR [main] c.a.Pay - payment refused
java.lang.IllegalStateException: card declined
\tat com.acme.pay.Card.charge(Card.java:42)
\tat com.acme.pay.Checkout.run(Checkout.java:7)
Caused by: java.net.SocketTimeoutException: Read timed out
\tat java.net.SocketInputStream.read(SocketInputStream.java:150)
\t... 2 more
2026-11-22 10:00:01,000 ERROR [worker] job failed
Traceback (most recent call last):
  File "/srv/job.py", line 3, in <module>
    run()
KeyError: 'order_id'
"""


async def test_stack_trace_lines_belong_to_the_event_above_them_and_are_not_unreadable(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "app.log"
    java, python = JAVA_AND_PYTHON_TRACES.split("2026-11-22 10:00:01")
    path.write_text(f"{java}garbage without a time\n2026-11-22 10:00:01{python}", encoding="utf-8")
    prepared, report = await prepare(settings, db, path)
    # The one line that is neither an event nor part of one (after a trace's last frame) is
    # still unreadable.
    assert log_note(prepared).endswith(": 2 lines read, 1 unreadable")
    assert "日志 2 行，错误 2" in report


# Django's request logger: one logged error, its traceback a chained one (an exception raised
# while handling another), whose exceptions' names end in neither Error nor Exception.
DJANGO_CHAINED = """\
2026-11-22 10:00:02,000 ERROR django.request Internal Server Error: /api/users/5
Traceback (most recent call last):
  File "/app/views.py", line 10, in get
    user = User.objects.get(pk=pk)
  File "/usr/lib/python3/site-packages/django/db/models/query.py", line 637, in get
    raise self.model.DoesNotExist(
users.models.User.DoesNotExist: User matching query does not exist.

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/views.py", line 12, in get
    raise Http404("no user")
django.http.response.Http404: no user
2026-11-22 10:00:03,000 INFO django.server "GET /api/users/5 HTTP/1.1" 404 23
"""
# SQLAlchemy's error after psycopg2's, and requests' timeout after socket's: the exception's
# message over lines after it ([SQL: ...], PostgreSQL's DETAIL, SQLAlchemy's "Background").
SQLALCHEMY_CHAINED = """\
2026-11-22 11:00:00,000 ERROR app.orders could not save the order
Traceback (most recent call last):
  File "/app/orders.py", line 20, in save
    cursor.execute(statement, parameters)
psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint "orders_pkey"
DETAIL:  Key (id)=(5) already exists.


The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/orders.py", line 22, in save
    session.commit()
sqlalchemy.exc.IntegrityError: (psycopg2.errors.UniqueViolation) duplicate key value
DETAIL:  Key (id)=(5) already exists.
[SQL: INSERT INTO orders (id) VALUES (%(id)s)]
[parameters: {'id': 5}]
(Background on this error at: https://sqlalche.me/e/20/gkpj)
2026-11-22 11:00:01,000 WARNING app.fetch the ledger is slow
Traceback (most recent call last):
  File "/app/fetch.py", line 3, in get
    sock.recv(1024)
socket.timeout: timed out

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/fetch.py", line 5, in get
    raise ReadTimeout()
requests.exceptions.ReadTimeout
garbage without a time
"""


def test_a_logged_errors_chained_traceback_is_not_an_uncaught_crash(tmp_path: Path) -> None:
    """logger.exception's traceback belongs to its line (a traceback after a warning or an
    error is that line's own), chained too, whatever its exceptions are named (Django's
    DoesNotExist, psycopg2's UniqueViolation, requests' ReadTimeout): not a second, CRITICAL
    "uncaught crash" event, nor unreadable lines."""
    path = tmp_path / "app.log"
    path.write_text(DJANGO_CHAINED + SQLALCHEMY_CHAINED, encoding="utf-8")
    source = FileLogSource(path, zone=SHANGHAI)
    records = [(r.content.get("level"), r.content["message"]) for r in source.records(*WINDOW)]
    assert [(level, message.split("\n")[0]) for level, message in records] == [
        ("ERROR", "django.request Internal Server Error: /api/users/5"),
        ("INFO", 'django.server "GET /api/users/5 HTTP/1.1" 404 23'),
        ("ERROR", "app.orders could not save the order"),
        ("WARNING", "app.fetch the ledger is slow"),
    ]
    # Each holds its traceback below its line; an untimed line after a traceback's exception
    # line is that exception's message, as a Python exception's message may run over lines.
    assert records[2][1].split("\n")[1:] == [
        line for line in SQLALCHEMY_CHAINED.splitlines()[1:18] if line
    ]
    assert records[3][1].endswith("requests.exceptions.ReadTimeout\ngarbage without a time")
    assert source.skipped == 0, source.skipped_examples


async def test_a_logged_errors_chained_traceback_is_one_error_in_the_briefing(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # It was "2 errors": the second traceback read as an uncaught crash.
    path = tmp_path / "app.log"
    path.write_text(DJANGO_CHAINED, encoding="utf-8")
    prepared, report = await prepare(settings, db, path)
    assert "昨天有 1 个错误" in prepared.headline, prepared.headline
    assert "CRITICAL" not in report
    assert log_note(prepared).endswith(": 2 lines read"), log_note(prepared)


def _container_log(path: Path, runtime: str, written: list[tuple[str, str]]) -> Path:
    """(runtime time, line) as the kubelet ("cri") or Docker's json-file keeps them."""
    with path.open("w", encoding="utf-8") as out:
        for at, line in written:
            if runtime == "cri":
                out.write(f"{at} stderr F {line}\n")
            else:
                out.write(json.dumps({"log": line + "\n", "stream": "stderr", "time": at}) + "\n")
    return path


@pytest.mark.parametrize("runtime", ["cri", "docker"])
async def test_a_containers_stack_trace_belongs_to_the_event_above_it(
    settings: Settings, db: Database, tmp_path: Path, runtime: str
) -> None:
    """A container's trace as the kubelet (CRI) or Docker's json-file keeps it: each of its
    lines behind the runtime's time. Each was read as an event of its own (a frame an event
    of no level, ``Caused by: ...Exception`` one, an error where it said ERROR); now a line
    that continues the event above is read as in a plain file."""
    written, events = [], 0
    for line in [*JAVA_AND_PYTHON_TRACES.splitlines(), "Caused by: ERROR reading the ledger"]:
        events += line.startswith("2026-")  # a trace is written in its event's moment
        written.append((f"2026-11-22T02:00:{events:02}.000000001Z", line))
    path = _container_log(tmp_path / "0.log", runtime, written)
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 2 lines read")
    assert "日志 2 行，错误 2" in report


@pytest.mark.parametrize("runtime", ["cri", "docker"])
async def test_a_containers_line_that_looks_like_a_trace_is_an_event_when_nothing_above_wrote_it(
    settings: Settings, db: Database, tmp_path: Path, runtime: str
) -> None:
    """Node's console.error and a Rust main's Err print a bare "Error: ..." as an event's first
    line, its frames below: an hour after the line above it, or with no line above, it is an
    event of its own at the runtime's time (its frames its trace), not the trace of the line
    above, nor unreadable."""
    lines = [
        ("2026-11-22T01:00:00.000000001Z", "INFO listening on 8080"),
        ("2026-11-22T02:00:00.000000001Z", "Error: connect ECONNREFUSED 10.0.0.7:5432"),
        ("2026-11-22T02:00:00.000000002Z", "    at TCPConnectWrap.afterConnect (node:net:1555:16)"),
    ]
    for name, written in (("0.log", lines), ("1.log", lines[1:])):
        path = _container_log(tmp_path / name, runtime, written)
        prepared, report = await prepare(settings, db, path)
        read = len(written) - 1
        assert log_note(prepared).endswith(f": {read} lines read"), log_note(prepared)
        assert f"日志 {read} 行，错误 1" in report


UNCAUGHT_CRASHES = """\
2026-11-22 10:00:00 INFO payments started
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]

goroutine 1 [running]:
main.handler(0x0)
\t/app/main.go:42 +0x1c
exit status 2
2026-11-22 11:00:00 INFO worker started
Traceback (most recent call last):
  File "/srv/job.py", line 3, in <module>
    run()
KeyError: 'order_id'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/job.py", line 5, in <module>
    report()
ConnectionError: the ledger is down
2026-11-22 12:00:00 WARNING retrying the ledger
Traceback (most recent call last):
  File "/srv/job.py", line 9, in <module>
    connect()
TimeoutError: timed out
2026-11-22 13:00:00 INFO scheduler started
Exception in thread "main" java.lang.OutOfMemoryError: Java heap space
\tat com.acme.Batch.load(Batch.java:88)
garbage without a time
"""


async def test_an_uncaught_crash_without_a_time_is_a_critical_event_of_the_day(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Go's panic, Python's uncaught traceback (a chained one names its last exception) and
    the JVM's uncaught exception are printed with no time after the service's last line: each
    is one CRITICAL event at that line's time, its dump or frames part of it; a warning's own
    trace stays the warning's."""
    path = tmp_path / "app.log"
    path.write_text(UNCAUGHT_CRASHES, encoding="utf-8")
    zone = ZoneInfo("Asia/Shanghai")
    source = FileLogSource(path, zone=zone)
    day = datetime(2026, 11, 22, tzinfo=zone), datetime(2026, 11, 23, tzinfo=zone)
    records = [
        (r.time.hour, r.content.get("level"), r.content["message"].split("\n")[0])
        for r in source.records(*day)
    ]
    assert records == [
        (10, "INFO", "payments started"),
        (10, "CRITICAL", "panic: runtime error: invalid memory address or nil pointer dereference"),
        (11, "INFO", "worker started"),
        (11, "CRITICAL", "ConnectionError: the ledger is down"),
        (12, "WARNING", "retrying the ledger"),
        (13, "INFO", "scheduler started"),
        (13, "CRITICAL", 'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space'),
    ]
    assert source.skipped == 1 and source.skipped_examples == ["app.log:29"]
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 7 lines read, 1 unreadable")
    assert "ConnectionError: the ledger is down" in report and "panic: runtime error" in report


async def test_a_new_log_source_is_not_compared_with_the_days_of_the_one_it_replaced(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Moved to another log source (a config changed, or the briefing created again), the
    first week's briefings called every error of the new source new and said its error
    trend against the old source's days."""
    acts = BriefingActivities(
        db, LLMClient(settings), TencentCloud(None, region="ap-guangzhou"), settings
    )
    line = "2026-11-{:02d}T10:0{}:00+08:00 ERROR {}\n"

    async def briefed(day: int, name: str, message: str) -> str:
        path = tmp_path / name
        path.write_text(line.format(day - 1, 0, message) + line.format(day - 1, 1, message))
        config = BriefingConfig(log_source={"type": "file", "path": str(path)})  # type: ignore[arg-type]
        the_day = DAY.replace(day=day)
        request = PrepareRequest(
            user="alice",
            task_id="daily-briefing/alice",
            config=config,
            day=plan_for(the_day, config),
        )
        await ActivityEnvironment().run(acts.prepare_briefing, request)
        async with db.session() as session:
            row = await BriefingRepository(session).get("alice", the_day.isoformat())
        assert row is not None
        return row.report_markdown

    await briefed(22, "old.log", "payment refused")
    moved = await briefed(23, "new.log", "disk full")
    assert "(new)" not in moved and "新出现的错误" not in moved and "前 1 天" not in moved, moved
    # The new source's own days are its baseline from then on.
    again = await briefed(24, "new.log", "disk full")
    assert "前 1 天" in again, again


async def test_a_file_whose_every_line_is_unreadable_is_not_a_quiet_day(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """A log in a format the reader does not know (log4j's DATE: day, month's name, year) was
    briefed as "no logs were recorded yesterday", as if the service had been silent."""
    path = tmp_path / "error_log"
    path.write_text(
        "22 Nov 2026 10:00:00,123 ERROR [main] c.a.Pay - connect failed\n"
        "22 Nov 2026 10:00:05,123 ERROR [main] c.a.Pay - connect failed\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    (note,) = [s for s in prepared.sources if s.source == "logs"]
    assert not note.ok and note.detail.endswith(
        ": 0 lines read, 2 unreadable: no line has a time in a format the briefing reads"
    )
    assert prepared.headline == "昨天的日志没能读取"
    assert "昨天没有日志记录" not in prepared.spoken_text
    assert "日志没能读取（见数据源）" in report


async def test_a_zone_written_after_the_time_is_the_lines_zone_not_the_briefings(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """PostgreSQL writes `%m` as "2026-11-22 02:00:00.123 UTC", others a " +0000" after the
    time: both were read as the briefing's own wall time, eight hours off in Shanghai, so a
    third of the day's lines fell on the wrong day."""
    path = tmp_path / "postgresql.log"
    path.write_text(
        # 20:00 UTC on the 21st is 04:00 on the 22nd in Shanghai: the day briefed.
        "2026-11-21 20:00:00.123 UTC [41] ERROR:  deadlock detected\n"
        "2026-11-21 20:30:00 +0000 ERROR deadlock detected\n"
        "2026-11-21 21:00:00.456 GMT [41] ERROR:  deadlock detected\n"
        # 17:00 UTC on the 22nd is 01:00 on the 23rd in Shanghai: the next day.
        "2026-11-22 17:00:00.789 UTC [41] ERROR:  deadlock detected\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 3 lines read")
    assert "日志 3 行，错误 3" in report
    assert "UTC" not in report.split("## 日志模板")[1].split("## 数据源")[0]


async def test_kubernetes_container_logs_are_read_through_their_cri_prefix(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """A container's log as the kubelet keeps it (/var/log/pods/...): each line behind the
    runtime's time, stream and tag. The stream and tag were read as the message and a JSON
    line's level was lost (its errors counted as UNKNOWN); a long line the runtime split
    (tag P) counted as one line per piece."""
    path = tmp_path / "0.log"
    path.write_text(
        '2026-11-22T02:00:00.123456789Z stderr F {"level":"error","msg":"payment refused"}\n'
        '2026-11-22T02:00:01.123456789Z stderr F {"level":"error","msg":"payment refused"}\n'
        "2026-11-22T02:00:02.000000001Z stdout F 2026-11-22 10:00:02 WARN c.a.Pay - slow card\n"
        '2026-11-22T02:00:03.000000001Z stdout P {"level":"error","msg":"order ' + "x" * 40 + "\n"
        '2026-11-22T02:00:03.000000002Z stdout F  rejected"}\n',
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 4 lines read")
    assert "日志 4 行，错误 3，警告 1" in report
    assert "| ERROR | 2 | payment refused |" in report
    assert "| WARNING | 1 | c.a.Pay - slow card |" in report
    assert "stdout" not in report and "stderr" not in report


def test_a_line_longer_than_a_mebibyte_is_read_as_its_first_mebibyte(tmp_path: Path) -> None:
    """A line of hundreds of megabytes (a dump written without newlines) was read whole and
    copied as it was parsed: 200 MiB took about 700 MB of the worker's memory; a bigger one
    could end it. Now a line's first MiB is read, the rest passed over without keeping it."""
    path = tmp_path / "app.log"
    path.write_bytes(
        b"\xef\xbb\xbf2026-11-22 01:00:00 ERROR dump " + b"x" * (3 << 20) + b"\n"
        b"2026-11-22 02:00:00 ERROR next line\n"
        b"2026-11-22 03:00:00 ERROR last line, no newline"
    )
    zone = ZoneInfo("Asia/Shanghai")
    source = FileLogSource(path, zone=zone)
    day = datetime(2026, 11, 22, tzinfo=zone), datetime(2026, 11, 23, tzinfo=zone)
    first, *others = source.records(*day)
    assert first.time.hour == 1 and len(first.content["message"]) < 1 << 20
    assert [r.content["message"] for r in others] == ["next line", "last line, no newline"]
    assert source.skipped == 0


async def test_go_kit_logfmt_and_klog_lines_are_read(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """go-kit's logfmt puts the level first (Loki, Thanos, older Prometheus) and klog
    (Kubernetes' own components, ingress-nginx's controller) writes `E1122 10:00:00.123456
    1 file.go:42] ...`: both were unreadable, so such a log was briefed as a quiet day."""
    path = tmp_path / "controller.log"
    path.write_text(
        'level=error ts=2026-11-22T02:00:00.123Z caller=main.go:42 msg="db connect failed"\n'
        'level=warn time="2026-11-22T10:00:01+08:00" msg="slow flush"\n'
        "E1122 10:00:02.123456       1 controller.go:123] sync failed for default/web\n"
        "W1122 10:00:03.000001       1 reflector.go:9] watch closed\n"
        "I1122 10:00:04.000001       1 leaderelection.go:2] became leader\n"
        "F1123 00:00:05.000001       1 main.go:1] the next day\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 5 lines read")
    assert "日志 5 行，错误 2，警告 2" in report
    # The code's place (controller.go:123) is no word of the message: it began with "<*>]".
    assert "| ERROR | 1 | sync failed for default/web |" in report


async def test_docker_json_file_logs_are_read_as_the_lines_the_container_wrote(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Docker's json-file driver wraps each line the container wrote in {"log", "stream",
    "time"}: a JSON line inside lost its level (its errors counted as UNKNOWN, the day
    "quiet") and a text line kept its own time in its template."""
    path = tmp_path / "abc-json.log"
    wrapped = '{{"log":{},"stream":"stderr","time":"2026-11-22T02:00:0{}.1234567Z"}}\n'
    path.write_text(
        wrapped.format('"{\\"level\\":\\"error\\",\\"msg\\":\\"payment refused\\"}\\n"', 0)
        + wrapped.format('"{\\"level\\":\\"error\\",\\"msg\\":\\"payment refused\\"}\\n"', 1)
        + wrapped.format('"2026-11-22 10:00:02 WARN slow card\\n"', 2)
        + wrapped.format('"plain text without a time\\n"', 3),
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 4 lines read")
    assert "日志 4 行，错误 2，警告 1" in report
    assert "| ERROR | 2 | payment refused |" in report
    assert "| WARNING | 1 | slow card |" in report


async def test_a_docker_line_longer_than_its_16_kib_buffer_is_read_as_the_one_line_written(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Docker's daemon copies a container's output through a 16 KiB buffer: a longer line is
    written as records of one full buffer each, only the last ending in the newline. Each piece
    was read as a line of its own: the JSON line's first piece as an unreadable message, its
    level lost, and the rest as messages (or, starting with a space, as a trace). A piece of
    one stream waits for its end while the other stream's lines are read; a short record with
    no newline (the container stopped mid-line) is a line."""
    written = json.dumps({"level": "error", "msg": "order " + "x" * 30_000 + " rejected"}) + "\n"
    cuts = _docker_records(written)
    assert len(cuts) == 2 and not json.loads(cuts[1])["log"].startswith("{")
    path = tmp_path / "abc-json.log"
    lines = [
        cuts[0],
        _docker_record("2026-11-22 10:00:01 WARN slow card\n", "stdout", 1),
        cuts[1],
        _docker_record("stopped mid-line", "stdout", 3),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 3 lines read")
    assert "日志 3 行，错误 1，警告 1" in report
    assert "| WARNING | 1 | slow card |" in report
    assert "| ERROR | 1 | order " in report


def _docker_record(log: str, stream: str, second: int) -> str:
    """One record of Docker's json-file, as its daemon writes it (keys in its order, compact)."""
    at = f"2026-11-22T02:00:{second:02}.1234567Z"
    record = {"log": log, "stream": stream, "time": at}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _docker_records(written: str, stream: str = "stderr") -> list[str]:
    """``written`` as Docker's json-file keeps it: records of the daemon's 16 KiB buffer, each
    byte that is no whole UTF-8 character (a character cut between two) as U+FFFD, as Go's
    encoder writes it."""
    data = written.encode()
    cuts = [data[i : i + DOCKER_PIECE] for i in range(0, len(data), DOCKER_PIECE)]
    invalid = re.compile("[\udc80-\udcff]")
    return [
        _docker_record(invalid.sub("\ufffd", cut.decode("utf-8", "surrogateescape")), stream, n)
        for n, cut in enumerate(cuts)
    ]


def test_a_line_still_in_parts_at_a_files_end_is_cited_at_its_last_part(tmp_path: Path) -> None:
    """A container still writing a long error line when the file is read: the line, read as far
    as written, is cited where its last part is in the file, not past the file's end."""
    path = tmp_path / "abc-json.log"
    head = _docker_records('{"level": "error", "msg": "' + "y" * 20_000 + '"}\n')[0]
    lines = [
        _docker_record('{"level": "info", "msg": "started"}\n', "stdout", 0),
        head,
        _docker_record('{"level": "info", "msg": "ready"}\n', "stdout", 2),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = FileLogSource(path)
    day = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
    records = list(source.records(*day))
    assert [r.source for r in records] == ["abc-json.log:1", "abc-json.log:3", "abc-json.log:2"]
    assert '"level": "error", "msg": "yyy' in str(records[2].content)


def test_docker_pieces_are_joined_only_as_the_daemon_cuts_them() -> None:
    """Three pieces of a Chinese line, cut inside characters, are one line, a character lost at
    each cut; a shipper's records of its own shape (a long "log" without its newline) are lines
    as they are; a line still in pieces at the end is read as far as written, or, for
    ``--per-line``, left out (one line out for each line in)."""
    message = "支付失败 " * 4_000  # 52,000 bytes: pieces end and begin inside a character
    records = _docker_records(
        json.dumps({"level": "error", "msg": message}, ensure_ascii=False) + "\n"
    )
    assert len(records) == 4 and any("\ufffd" in r for r in records[:3])
    out = [line for _, line in whole_lines(records)]
    assert out[:3] == ["", "", ""]
    joined = json.loads(json.loads(out[3])["log"].replace("\ufffd", ""))
    assert joined["level"] == "error" and joined["msg"].count("支付失败") >= 3_996
    assert json.loads(out[3])["time"] == "2026-11-22T02:00:00.1234567Z"

    # A JSON line whose first piece ends inside its own escaped newline (a backslash, an n):
    # the record reads `\\n","stream":` there, which is not the line's end.
    prefix = '{"level": "error", "msg": "'
    trace = json.dumps({"level": "error", "msg": "x" * (16_382 - len(prefix)) + "\n at y"})
    first, last = _docker_records(trace + "\n")
    assert first.endswith('\\\\n","stream":"stderr","time":"2026-11-22T02:00:00.1234567Z"}')
    (_, piece), (_, whole) = whole_lines([first, last])
    assert piece == "" and json.loads(json.loads(whole)["log"]) == json.loads(trace)

    shipped = [_docker_record("x" * 20_000, "stdout", 0), _docker_record("next", "stdout", 1)]
    assert list(whole_lines(shipped)) == [(1, shipped[0]), (2, shipped[1])]

    head = _docker_records('{"level": "error", "msg": "' + "y" * 20_000 + '"}\n')[0]
    cri = "2026-11-22T02:00:00.000000001Z stdout P a long line"
    assert list(whole_lines([head, cri], ends=False)) == [(1, ""), (2, "")]
    *_, (cri_at, cri_end), (docker_at, docker_end) = whole_lines([head, cri, "a line after"])
    assert (cri_at, cri_end) == (2, "2026-11-22T02:00:00.000000001Z stdout F a long line")
    assert docker_at == 1 and json.loads(docker_end)["log"] == json.loads(head)["log"]


async def test_json_times_in_epoch_micro_and_nanoseconds_are_read(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """zerolog's TimeFormatUnixMicro and UnixNano, Vector and OpenTelemetry exports write the
    epoch in micro- or nanoseconds: read as milliseconds they overflowed, and every line was
    unreadable."""
    at = int(datetime(2026, 11, 22, 2, tzinfo=UTC).timestamp())  # 10:00 in Shanghai
    path = tmp_path / "app.log"
    path.write_text(
        f'{{"time": {at}123456, "level": "error", "message": "payment refused"}}\n'
        f'{{"time": "{at}123456789", "level": "error", "message": "payment refused"}}\n'
        f'{{"time": {at + 86400}000000, "level": "error", "message": "the next day"}}\n',
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 2 lines read")
    assert "| ERROR | 2 | payment refused |" in report


async def test_syslog_lines_with_a_priority_are_read_and_leveled_by_it(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Lines kept as a syslog receiver got them start with the priority (`<11>`, RFC 5424
    adds a version: `<11>1 2026-...`): all were unreadable. The priority's severity (its
    value mod 8: 3 err, 4 warning, 6 info) is the level of a line that names none."""
    path = tmp_path / "remote.log"
    path.write_text(
        "<11>1 2026-11-22T10:00:00.000+08:00 web-1 pay 12 - - payment refused\n"
        "<11>Nov 22 10:00:01 web-1 pay[12]: payment refused\n"
        "<12>Nov 22 10:00:02 web-1 pay[12]: slow card\n"
        "<14>1 2026-11-22T10:00:03+08:00 web-1 pay 12 - - ERROR written level wins\n"
        "<14>Nov 22 10:00:04 web-1 pay[12]: started\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 5 lines read")
    assert "日志 5 行，错误 3，警告 1" in report


def journal_entry(at: datetime, message: str | list[int], priority: int, **fields: str) -> str:
    """One line of `journalctl -o json`: every value a string (microseconds for the times)."""
    micros = str(int(at.timestamp() * 1_000_000))
    entry: dict[str, object] = {
        "__CURSOR": f"s=0a1b;i={micros}",
        "__REALTIME_TIMESTAMP": micros,
        "__MONOTONIC_TIMESTAMP": "81234567",
        "_BOOT_ID": "4c3e9b1f0d2a4e5f8a7b6c5d4e3f2a1b",
        "_HOSTNAME": "web-1",
        "PRIORITY": str(priority),
        "SYSLOG_FACILITY": "3",
        "_PID": "812",
        "_SYSTEMD_UNIT": "pay.service",
        "MESSAGE": message,
    }
    return json.dumps(entry | fields)


async def test_journald_json_entries_are_read_with_their_time_level_and_program(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """`journalctl -o json` (and `-o json-seq`, each line after a record separator): every
    line was unreadable (no time field known, then the whole entry's fields as its message).
    The time is the program's (_SOURCE_REALTIME_TIMESTAMP) else the journal's, in
    microseconds; the level the one the message writes, else the priority's severity; the
    program named before the message; a message that is not UTF-8 comes as its bytes."""
    at = datetime(2026, 11, 22, 2, tzinfo=UTC)  # 10:00 in Shanghai
    later = datetime(2026, 11, 22, 2, 0, 1, tzinfo=UTC)
    lines = [
        journal_entry(at, "payment refused: card expired", 3, SYSLOG_IDENTIFIER="pay"),
        journal_entry(
            later,
            "payment refused: card expired",
            3,
            SYSLOG_IDENTIFIER="pay",
            _SOURCE_REALTIME_TIMESTAMP=str(int(at.timestamp() * 1_000_000)),
        ),
        # A service's stdout: priority 6, the level in its text.
        journal_entry(at, "ERROR upstream timed out", 6, SYSLOG_IDENTIFIER="gateway"),
        journal_entry(at, "slow card reader", 4),
        "\x1e" + journal_entry(at, [0x63, 0x61, 0x72, 0x64, 0xFF, 0x21], 2),
        journal_entry(at, "Started pay.service.", 6, SYSLOG_IDENTIFIER="systemd"),
        journal_entry(datetime(2026, 11, 23, 2, tzinfo=UTC), "the next day", 3),
    ]
    path = tmp_path / "journal.json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    prepared, report = await prepare(settings, db, path)

    assert log_note(prepared).endswith(": 6 lines read")
    assert "日志 6 行，错误 4，警告 1" in report
    assert "| ERROR | 2 | pay: payment refused: card expired |" in report
    assert "gateway: upstream timed out" in report
    records = [parse_line(line, "journal") for line in lines]
    assert all(r is not None and r.time.date() == at.date() for r in records[:6])
    assert [level_and_message(r.content) for r in records[3:5] if r is not None] == [
        ("WARNING", "pay.service: slow card reader"),
        ("CRITICAL", "pay.service: card\ufffd!"),
    ]
    # `ambient logs` (the reduction's own reader) reads them alike.
    read = read_line(lines[2], at.date())
    assert read is not None and read[1:] == ("ERROR", "gateway: upstream timed out")


@pytest.mark.parametrize(
    ("name", "lines", "levels"),
    [
        (
            "redis",
            [
                "1:M 22 Nov 2026 10:00:00.123 # WARNING overcommit_memory is set to 0!",
                "1:M 22 Nov 2026 10:00:01.456 * Ready to accept connections tcp",
                "1:M 22 Nov 2026 10:00:02.001 - Accepted 10.0.0.9:51712",
                "[1] 22 Nov 10:00:03.789 * DB loaded from disk: 0.002 seconds",  # before 3.0
            ],
            ["WARNING", "INFO", "DEBUG", "INFO"],
        ),
        (
            "tomcat",
            [
                "22-Nov-2026 10:00:00.123 SEVERE [main] org.apache.catalina.core."
                "StandardService.startInternal Failed to start connector",
                "22-Nov-2026 10:00:01.456 WARNING [http-nio-8080-exec-1] org.apache.catalina."
                "loader.WebappClassLoaderBase.clearReferencesThreads The web application left a "
                "thread",
                "22-Nov-2026 10:00:02.789 INFO [main] org.apache.catalina.startup.Catalina.<init> "
                "Server startup",
                "22-Nov-2026 10:00:03.000 FINE [main] org.apache.jasper.servlet.TldScanner.scan "
                "Scanning",
            ],
            ["ERROR", "WARNING", "INFO", "DEBUG"],
        ),
        (
            "mongodb",
            [
                '{"t":{"$date":"2026-11-22T10:00:00.123+08:00"},"s":"E","c":"NETWORK",'
                '"id":23256,"ctx":"conn12","msg":"Unable to acquire connection"}',
                '{"t":{"$date":"2026-11-22T10:00:01.000+08:00"},"s":"W","c":"CONTROL",'
                '"id":22120,"ctx":"initandlisten","msg":"Access control is not enabled"}',
                '{"t":{"$date":"2026-11-22T10:00:02.000+08:00"},"s":"I","c":"NETWORK",'
                '"id":22943,"ctx":"listener","msg":"Connection accepted"}',
                '{"t":{"$date":{"$numberLong":"1795312803000"}},"s":"D2","c":"QUERY",'
                '"id":20967,"ctx":"conn12","msg":"Beginning planning"}',
            ],
            ["ERROR", "WARNING", "INFO", "DEBUG"],
        ),
        (
            "gelf",
            [
                '{"version":"1.1","host":"web-1","short_message":"payment refused",'
                '"timestamp":1795312800.123,"level":3,"_container_name":"pay"}',
                '{"version":"1.1","host":"web-1","short_message":"slow card reader",'
                '"timestamp":1795312801,"level":4}',
                # Docker's gelf driver sends a whole stderr at 3: the written level wins.
                '{"version":"1.1","host":"web-1","short_message":"INFO listening on :8080",'
                '"timestamp":1795312802,"level":3}',
                '{"version":"1.1","host":"web-1","short_message":"cache warm",'
                '"timestamp":1795312803,"level":7}',
            ],
            ["ERROR", "WARNING", "INFO", "DEBUG"],
        ),
        (
            "php",
            [
                "[22-Nov-2026 02:00:00 UTC] PHP Fatal error:  Uncaught Exception: card refused "
                "in /var/www/pay.php:42",
                "[22-Nov-2026 10:00:01 Asia/Shanghai] PHP Warning:  Undefined variable $card in "
                "/var/www/pay.php on line 7",
                "[22-Nov-2026 10:00:02] WARNING: [pool www] server reached pm.max_children",
                "[22-Nov-2026 10:00:03] NOTICE: fpm is running, pid 1",
            ],
            ["CRITICAL", "WARNING", "WARNING", "INFO"],
        ),
        (
            "kubernetes events and JSON access logs",
            [
                '{"involvedObject":{"kind":"Pod","name":"checkout-1"},"reason":"BackOff",'
                '"message":"Back-off restarting failed container","type":"Warning",'
                '"eventTime":null,"firstTimestamp":"2026-11-22T01:00:00Z",'
                '"lastTimestamp":"2026-11-22T02:00:00Z","count":5}',
                '{"time_iso8601":"2026-11-22T10:00:00+08:00","remote_addr":"10.0.0.1",'
                '"request":"GET /pay HTTP/1.1","status":"502"}',
                '{"start_time":"2026-11-22T02:00:00.123Z","path":"/pay","response_code":404}',
                '{"involvedObject":{"kind":"Pod","name":"checkout-1"},"reason":"Pulled",'
                '"message":"Container image already present","type":"Normal",'
                '"lastTimestamp":"2026-11-22T02:00:00Z"}',
            ],
            ["WARNING", "ERROR", "WARNING", "INFO"],
        ),
        (
            "journald short-unix",
            ["1795312800.123456 web-1 pay[812]: ERROR payment refused"],
            ["ERROR"],
        ),
        (
            "python: loguru and structlog",
            [
                "2026-11-22 10:00:00.123 | ERROR    | pay.handler:charge:42 - payment refused",
                "2026-11-22 10:00:01.456 | SUCCESS  | pay.handler:charge:48 - charged",
                # loguru's serialize=True: the fields in "record"
                '{"text": "2026-11-22 10:00:02.000 | WARNING  | pay:retry:9 - slow card\\n", '
                '"record": {"function": "retry", "level": {"icon": "!", "name": "WARNING", '
                '"no": 30}, "line": 9, "message": "slow card", "name": "pay", '
                '"time": {"repr": "2026-11-22 10:00:02.000000+08:00", '
                '"timestamp": 1795312802.0}}}',
                '{"event": "payment refused", "level": "error", '
                '"timestamp": "2026-11-22T02:00:03.123Z"}',
            ],
            ["ERROR", "INFO", "WARNING", "ERROR"],
        ),
    ],
)
def test_more_services_log_formats_are_read_with_their_time_and_level(
    name: str, lines: list[str], levels: list[str]
) -> None:
    """Redis's log, java.util.logging's one-line format (Tomcat's catalina.out), MongoDB's
    structured JSON (4.4 on: its time in {"$date": ...}, its severity in "s"), GELF (a syslog
    severity as its level, its message in short_message), PHP's and PHP-FPM's error logs, a
    Kubernetes Event as an event exporter writes it (its eventTime null), an access log written
    as JSON (its HTTP status the level, as a text access log's), journalctl's short-unix and
    Python's loguru (text and serialized) and structlog: every line was unreadable, or read
    without its level or message."""
    zone = ZoneInfo("Asia/Shanghai")
    records = [parse_line(line, name, zone, date(2026, 11, 23)) for line in lines]
    assert all(r is not None and r.time.date() == date(2026, 11, 22) for r in records), records
    read = [level_and_message(r.content) for r in records if r is not None]
    assert [level for level, _ in read] == levels
    # The message without the line's time, level or the wrapper it came in.
    assert all(message and message[0] not in "{|" and "2026" not in message for _, message in read)
    assert all("=" not in message for _, message in read if name.startswith("python"))
    # `ambient logs` (the reduction's own reader) reads them alike.
    assert [read_line(line, date(2026, 11, 23))[1] for line in lines] == levels  # type: ignore[index]


def test_syslog_with_a_year_apache_error_and_ruby_logger_lines_are_read_with_their_level() -> None:
    """All three were unreadable: syslog with the year after the day (rsyslog's and some
    appliances' template), Apache's error log, Ruby's Logger."""
    zone = ZoneInfo("Asia/Shanghai")
    lines = [
        "Nov 22 2026 10:00:00 web1 pay[12]: ERROR payment refused",
        "[Sun Nov 22 10:00:01.123456 2026] [proxy:error] [pid 1] AH00957: connect failed",
        "[Sun Nov 22 10:00:02 2026] [warn] [client 10.0.0.7] File does not exist",
        "E, [2026-11-22T10:00:03.123456 #1] ERROR -- : card declined",
        "W, [2026-11-22T10:00:04.000001 #77]  WARN -- pay: slow card",
    ]
    records = [parse_line(line, "app.log:1", zone, DAY) for line in lines]
    assert [r and r.time for r in records] == [
        datetime(2026, 11, 22, 10, 0, 0, tzinfo=zone),
        datetime(2026, 11, 22, 10, 0, 1, 123456, tzinfo=zone),
        datetime(2026, 11, 22, 10, 0, 2, tzinfo=zone),
        datetime(2026, 11, 22, 10, 0, 3, 123456, tzinfo=zone),
        datetime(2026, 11, 22, 10, 0, 4, 1, tzinfo=zone),
    ]
    assert [level_and_message(r.content) for r in records if r] == [
        ("ERROR", "pay: payment refused"),  # syslog's host and process id: no words of it
        ("ERROR", "[pid 1] AH00957: connect failed"),
        ("WARNING", "[client 10.0.0.7] File does not exist"),
        ("ERROR", "card declined"),
        ("WARNING", "slow card"),
    ]


def test_pythons_default_logging_format_leaves_the_level_and_logger_out_of_the_message() -> None:
    """`%(asctime)s - %(name)s - %(levelname)s - %(message)s` kept "- app.pay - ERROR -" in
    the message: in the error's template and the spoken top error."""
    line = "2026-11-22 10:00:00,123 - app.pay - ERROR - payment refused"
    record = parse_line(line, "app.log:1", UTC, DAY)
    assert record is not None
    assert level_and_message(record.content) == ("ERROR", "payment refused")
    assert record.content["logger"] == "app.pay"


def test_only_the_unreadable_lines_of_the_window_are_counted(tmp_path: Path) -> None:
    """Every unreadable line of every file was counted, a week-old rotated file's too: an
    untimed line is placed by the timed line before it (the first one after, at a file's top;
    one of a file with no timed line at all is counted wherever the window is)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text(
        "garbage at the top\n"
        "2026-11-22 10:00:00 ERROR payment refused\n"
        "garbage in the day\n"
        "2026-11-23 00:00:01 INFO today\n"
        "garbage of today\n",
        encoding="utf-8",
    )
    (logs / "app.log.1").write_text(
        "garbage before last week\n2026-11-15 10:00:00 INFO last week\ngarbage of last week\n",
        encoding="utf-8",
    )
    written_at(logs / "app.log.1", datetime(2026, 11, 15, 11, tzinfo=UTC))  # rotated then
    (logs / "app.log.2").write_text("no time at all\n", encoding="utf-8")
    source = FileLogSource(logs)
    start, end = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
    assert [r.content["message"] for r in source.records(start, end)] == ["payment refused"]
    assert (source.skipped, source.skipped_examples) == (
        3,
        ["app.log:1", "app.log:3", "app.log.2:1"],
    )


async def test_a_day_whose_lines_are_half_unreadable_says_so_in_the_written_briefing(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Only the sources note said "2 unreadable": the briefing read as if every line counted."""
    path = tmp_path / "app.log"
    path.write_text(
        "2026-11-22 10:00:00 ERROR payment refused\n"
        "22 Nov 2026 10:00:01,000 ERROR payment refused\n"
        "2026-11-22 10:00:02 INFO paid\n"
        "22 Nov 2026 10:00:03,000 ERROR payment refused\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 2 lines read, 2 unreadable")
    assert "日志 2 行，错误 1，警告 0，另有 2 行无法读取（见数据源）" in report
    assert "无法读取" not in prepared.spoken_text


@pytest.mark.timeout(60, method="signal")  # the regression hung: it fails here instead
def test_an_epoch_too_large_for_any_time_is_an_unreadable_line_not_a_hang(tmp_path: Path) -> None:
    """JSON reads 1e400 and Infinity as infinity, and a string of 310 digits or more is too as a
    float: the epoch was divided by 1000 until it was seconds, which never ended, and the
    briefing's worker thread spun forever (no briefing, a core taken)."""
    path = tmp_path / "app.log"
    far = '{{"time": {}, "level": "error", "message": "far"}}\n'
    path.write_text(
        "".join(far.format(t) for t in ("1e400", "Infinity", "-Infinity", '"' + "9" * 400 + '"'))
        + far.format("1" + "0" * 400)
        + '{"time": "2026-11-22T02:00:00Z", "level": "error", "message": "payment refused"}\n',
        encoding="utf-8",
    )
    source = FileLogSource(path)
    day = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
    assert [r.content["message"] for r in source.records(*day)] == ["payment refused"]
    assert source.skipped == 5


def deeply_nested_lines() -> str:
    """Lines that went past Python's recursion limit: JSON 5000 deep behind a time, a CRI
    prefix or as the line itself; a priority and a CRI prefix repeated 2000 times."""
    deep = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    return (
        f"2026-11-22 10:00:00 {deep}\n"
        + "<11>" * 2000 + "2026-11-22T10:00:01+08:00 web-1 pay 12 - - refused\n"
        + "2026-11-22T02:00:02Z stdout F " * 2000 + "payment refused\n"
        + '{"time": "2026-11-22T02:00:03Z", "a": ' + "[" * 5000 + "]" * 5000 + "}\n"
        + f"2026-11-22T02:00:04Z stderr F {deep}\n"
        + "2026-11-22 10:00:05 ERROR payment refused\n"
    )  # fmt: skip


async def test_json_nested_past_the_recursion_limit_and_repeated_wrappers_are_lines_not_a_crash(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """A line like these ended the briefing's preparation with RecursionError at every retry
    (no briefing that day). Now deep JSON is a message or an unreadable line, and a priority,
    CRI prefix or Docker wrapper is unwrapped once."""
    path = tmp_path / "app.log"
    path.write_text(deeply_nested_lines(), encoding="utf-8")
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 4 lines read, 2 unreadable")
    assert "日志 4 行，错误 1" in report


def test_a_long_lines_parts_are_joined_within_their_stream(tmp_path: Path) -> None:
    """The kubelet keeps a container's stdout and stderr in one file: a stderr line between
    the parts of a long stdout line had the parts glued to its front, so the error was read
    as the stdout line's end (level INFO, message lost)."""
    path = tmp_path / "0.log"
    path.write_text(
        '2026-11-22T02:00:00.1Z stdout P {"level":"info","msg":"order ' + "x" * 40 + "\n"
        '2026-11-22T02:00:00.2Z stderr F {"level":"error","msg":"payment refused"}\n'
        '2026-11-22T02:00:00.3Z stdout F  accepted"}\n',
        encoding="utf-8",
    )
    source = FileLogSource(path)
    day = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
    assert [(r.source, r.content) for r in source.records(*day)] == [
        ("0.log:2", {"level": "error", "msg": "payment refused"}),
        ("0.log:3", {"level": "info", "msg": "order " + "x" * 40 + " accepted"}),
    ]
    assert source.skipped == 0


def written_at(path: Path, moment: datetime) -> Path:
    os.utime(path, (moment.timestamp(), moment.timestamp()))
    return path


LOG4J_YESTERDAY = "22 Nov 2026 10:00:00,123 ERROR [main] c.a.Pay - connect failed\n"


async def test_unreadable_lines_after_an_old_timed_line_of_a_file_written_yesterday_count(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """One ISO-timed startup line weeks old, then a day in a format not read: the 30 lines were
    placed at the startup's time, so none counted and the day was briefed as a quiet one."""
    path = tmp_path / "app.log"
    path.write_text("2026-11-01 08:00:00 INFO startup\n" + LOG4J_YESTERDAY * 30, encoding="utf-8")
    written_at(path, datetime(2026, 11, 22, 4, tzinfo=UTC))  # yesterday noon in Shanghai
    prepared, _ = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 0 lines read, 30 unreadable")
    # Not written since the window began: its untimed tail is older than the window.
    written_at(path, datetime(2026, 11, 1, 9, tzinfo=UTC))
    prepared, _ = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 0 lines read")


async def test_a_folder_with_one_timed_file_is_read_though_another_has_no_time(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """app.log had timed lines (none yesterday) and nohup.out two untimed ones: the whole source
    failed as "no line has a time in a format the briefing reads", untrue of app.log."""
    folder = tmp_path / "logs"
    folder.mkdir()
    app = folder / "app.log"
    app.write_text("2026-11-01 08:00:00 INFO startup\n", encoding="utf-8")
    written_at(app, datetime(2026, 11, 1, 9, tzinfo=UTC))
    (folder / "nohup.out").write_text(LOG4J_YESTERDAY * 2, encoding="utf-8")
    prepared, _ = await prepare(settings, db, folder)
    assert log_note(prepared).endswith(": 0 lines read, 2 unreadable")


@pytest.mark.parametrize(
    "line",
    [
        '{"log":"{\\"level\\":\\"error\\",\\"msg\\":\\"refused\\"}\\n","stream":"stderr",'
        '"time":"2026-11-22T02:00:00Z"}',
        '2026-11-22T02:00:00Z stderr F {"level":"error","msg":"refused"}',
    ],
)
def test_a_json_line_a_container_wrote_is_parsed_once(
    line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The line inside a Docker or CRI wrapper was parsed as a line, then again as JSON.
    parsed: list[str] = []
    loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text: parsed.append(text) or loads(text))
    record = parse_line(line, "app.log", UTC, DAY)
    assert record is not None and record.content == {"level": "error", "msg": "refused"}
    assert record.time == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # the wrapper's
    assert parsed.count('{"level":"error","msg":"refused"}') == 1


JAVA_LAYOUTS = {
    "log4j": "2026-11-22 10:00:0{n},123 ERROR [{thread}] c.a.pay.Checkout - {message}",
    "logback": "2026-11-22 10:00:0{n}.123 [{thread}] ERROR c.a.pay.Checkout - {message}",
    "spring-boot-2": "2026-11-22 10:00:0{n}.123 ERROR 4242 --- [{thread:>15}] "
    "c.a.pay.Checkout                         : {message}",
    "spring-boot-3": "2026-11-22T10:00:0{n}.123+08:00 ERROR 4242 --- [shop] [{thread:>15}] "
    "c.a.pay.Checkout                         : {message}",
}


@pytest.mark.parametrize("layout", sorted(JAVA_LAYOUTS))
def test_a_java_layouts_thread_and_logger_are_fields_not_part_of_the_message(layout: str) -> None:
    """The header Java's layouts write between the level and the message (process id, thread,
    logger) stayed in the message: constant words that made every message of one logger alike,
    so unrelated errors shared a template ("<*> --- [ main] c.e.d.PaymentService : <*> <*>")
    and the briefing said that as the day's most frequent error."""
    written = [
        ("main", "card declined for order 7"),
        ("http-nio-8080-exec-3", "inventory service timed out"),
        ("main", "database pool exhausted"),
    ]
    fields = [
        parse_line(JAVA_LAYOUTS[layout].format(n=n, thread=t, message=m), "app.log", UTC)
        for n, (t, m) in enumerate(written)
    ]
    assert [(r.content["thread"], r.content["logger"]) for r in fields if r] == [
        (t, "c.a.pay.Checkout") for t, _ in written
    ]
    assert [level_and_message(r.content) for r in fields if r] == [("ERROR", m) for _, m in written]


@pytest.mark.parametrize(
    "rest",
    ["ERROR [app.payments] Timeout - retrying in 5s", "ERROR [retry 3] db - connection refused"],
)
def test_a_bracketed_word_before_a_dash_is_the_message_not_a_thread_and_logger(rest: str) -> None:
    # Python's "%(levelname)s [%(name)s] %(message)s": no Java logger (no package) follows.
    record = parse_line(f"2026-11-22 10:00:00 {rest}", "app.log", UTC)
    assert record is not None and level_and_message(record.content) == ("ERROR", rest[6:])


@pytest.mark.parametrize(
    "line",
    [
        # a "time" that is a duration beside the line's "@timestamp"
        '{"@timestamp": "2026-11-22T02:00:00Z", "time": 35, "level": "error", "msg": "slow"}',
        # a "time" of day only, before the full "@timestamp"
        '{"time": "10:00:00.123", "@timestamp": "2026-11-22T02:00:00Z", "level": "error"}',
        # log4j2's JsonLayout: an instant, or milliseconds
        '{"instant": {"epochSecond": 1795312800, "nanoOfSecond": 0}, "level": "ERROR"}',
        '{"timeMillis": 1795312800000, "level": "ERROR", "message": "refused"}',
        # python-json-logger, nginx's $time_iso8601
        '{"asctime": "2026-11-22 10:00:00,000", "levelname": "ERROR", "message": "refused"}',
        '{"time_iso8601": "2026-11-22T10:00:00+08:00", "status": "502"}',
        # a duration in nanoseconds (Go's time.Duration) is no time either
        '{"time": 3600000000, "@timestamp": "2026-11-22T02:00:00Z", "level": "error"}',
        '{"instant": {"epochSecond": "x"}, "@timestamp": "2026-11-22T02:00:00Z"}',
    ],
)
def test_a_json_lines_time_is_the_first_field_that_reads_as_one(line: str) -> None:
    """The first time-named key decided: a duration in "time" dated the line 1970 (dropped: the
    day said "no logs"), a time of day made it unreadable; log4j2's JsonLayout, python-json-logger
    and nginx's ISO field were not read at all ("no line has a time...")."""
    record = parse_line(line, "app.log", ZoneInfo("Asia/Shanghai"), DAY)
    assert record is not None and record.time == datetime(2026, 11, 22, 2, 0, tzinfo=UTC), record


async def test_levels_other_sources_write_are_read(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """nginx's [emerg] and [alert] (it could not bind its port), Monolog's numbers (PHP,
    Laravel: "level":400 beside "level_name":"ERROR"), zap's dpanic and log15's eror were
    read as no level: a day of them was briefed as "昨天一切平稳" (and log15's t= as no time)."""
    path = tmp_path / "app.log"
    monolog = {"message": "SQLSTATE[HY000] [2002] Connection refused", "context": {}}
    path.write_text(
        "2026/11/22 10:00:00 [emerg] 1#1: bind() to 0.0.0.0:80 failed (98: Address in use)\n"
        + "2026/11/22 10:00:01 [alert] 1#1: worker process 7 exited on signal 9\n"
        + "2026/11/22 10:00:02 [notice] 1#1: signal process started\n"
        + json.dumps(
            monolog | {"level": 400, "level_name": "ERROR", "datetime": "2026-11-22T10:00:03+08:00"}
        )
        + "\n"
        + json.dumps(monolog | {"level_name": "WARNING", "datetime": "2026-11-22T10:00:04+08:00"})
        + "\n"
        + '{"level":"dpanic","ts":1795312805,"msg":"invariant broken"}\n'
        + 't=2026-11-22T10:00:06+08:00 lvl=eror msg="db down"\n',
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 7 lines read")
    assert "日志 7 行，错误 5，警告 1" in report
    assert "bind() to" in report and "[emerg]" not in report


def test_spring_boots_tomcat_logger_is_a_field_not_part_of_the_message() -> None:
    """The header of every unhandled exception in a Spring MVC application: Tomcat's servlet
    logger, abbreviated with its brackets and slash, stayed in the message (and was spoken)."""
    line = (
        "2026-11-22 10:00:00.123 ERROR 4242 --- [nio-8080-exec-1] "
        "o.a.c.c.C.[.[.[/].[dispatcherServlet]    : Servlet.service() for servlet "
        "[dispatcherServlet] threw exception"
    )
    record = parse_line(line, "app.log", UTC)
    assert record is not None and isinstance(record.content, dict)
    assert record.content["logger"] == "o.a.c.c.C.[.[.[/].[dispatcherServlet]"
    assert level_and_message(record.content) == (
        "ERROR",
        "Servlet.service() for servlet [dispatcherServlet] threw exception",
    )


async def test_an_exceptions_message_over_lines_before_its_frames_belongs_to_it(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """MyBatis's exception message runs over "### ..." lines and Spring's "; bad SQL grammar"
    before the frames: each line of it, and the frames after, were counted unreadable (11 a
    error), the briefing blaming the source for lines of counted errors."""
    error = (
        "2026-11-22 10:00:0{n}.123 ERROR 1 --- [main] c.e.OrderService : query failed\n"
        "org.springframework.jdbc.BadSqlGrammarException: \n"
        "### Error querying database.  Cause: java.sql.SQLSyntaxErrorException: no table\n"
        "### The error may exist in file [OrderMapper.xml]\n"
        "### SQL: select * from orders where id = ?\n"
        "### Cause: java.sql.SQLSyntaxErrorException: no table\n"
        "; bad SQL grammar []; nested exception is java.sql.SQLSyntaxErrorException: no table\n"
        "\tat org.springframework.jdbc.support.Translator.translate(Translator.java:93)\n"
        "Caused by: java.sql.SQLSyntaxErrorException: no table\n"
        "\tat com.mysql.cj.jdbc.ClientPreparedStatement.execute(ClientPreparedStatement.java:1)\n"
    )
    path = tmp_path / "order.log"
    path.write_text(
        error.format(n=1) + error.format(n=2) + "garbage after the frames\n", encoding="utf-8"
    )
    prepared, _ = await prepare(settings, db, path)
    # The one line after the frames that is no part of a trace is still unreadable.
    assert log_note(prepared).endswith(": 2 lines read, 1 unreadable")


def test_a_traceback_cut_before_its_exception_in_a_cls_record_is_no_crash_as_in_a_file() -> None:
    """A CLS multi-line record's traceback with no exception line (cut short) was a CRITICAL
    line "Traceback (most recent call last):"; a file's same lines make none."""
    cut = 'INFO starting\nTraceback (most recent call last):\n  File "app.py", line 3, in <module>'
    assert uncaught_crash(cut, "INFO") is None
    assert uncaught_crash(cut + "\nValueError: bad", "INFO") == "ValueError: bad"


# FastAPI's unhandled error: pydantic's ValidationError writes its message over the lines
# after the exception line, each error's field name not indented.
PYDANTIC = """\
2026-11-22 10:00:00,123 - app.api - ERROR - Exception in ASGI application
Traceback (most recent call last):
  File "/srv/app/api.py", line 10, in create
    order = Order(**payload)
pydantic_core._pydantic_core.ValidationError: 2 validation errors for Order
amount
  Input should be greater than 0 [type=greater_than, input_value=-1, input_type=int]
    For further information visit https://errors.pydantic.dev/2.5/v/greater_than
currency
  Field required [type=missing, input_value={}, input_type=dict]
    For further information visit https://errors.pydantic.dev/2.5/v/missing
"""


async def test_a_python_exception_whose_message_runs_over_lines_is_no_unreadable_line(
    tmp_path: Path,
) -> None:
    """Its message's lines were counted unreadable, so one such error in a day of twenty
    lines made the briefing say lines could not be read and the day not read in full."""
    log = tmp_path / "api.log"
    info = "".join(
        f"2026-11-22 10:00:{n + 10:02d},000 - app.api - INFO - request served\n" for n in range(20)
    )
    log.write_text(PYDANTIC + info)
    reducer = LogReducer()
    said = await read_log_source(
        FileLogSpec(path=str(log)),
        *WINDOW,
        reducer,
        log_dir=None,
        admin=True,
        tencent=TencentCloud(None, region="ap-guangzhou"),
        zone=SHANGHAI,
    )
    report = reducer.report(start=WINDOW[0], end=WINDOW[1])
    inputs = BriefingInputs(date="2026-11-23", language="en", timezone="Asia/Shanghai")
    fill_from_report(inputs, report)
    draft = offline_draft(inputs)
    assert report.by_level == {"ERROR": 1, "INFO": 20}
    assert report.unreadable == 0, said
    assert not any("could not be read" in line for line in draft.what_happened), draft


async def test_nginx_json_access_log_with_time_local_is_read(tmp_path: Path) -> None:
    """The JSON log_format most nginx set-ups copy writes "time_local":"$time_local": every
    line was unreadable and the day said "Yesterday's logs could not be read"."""
    log = tmp_path / "access.json.log"
    log.write_text(
        '{"time_local":"22/Nov/2026:10:00:00 +0800","remote_addr":"10.0.0.1",'
        '"request":"POST /api/pay HTTP/1.1","status":"502","body_bytes_sent":"157"}\n'
        '{"time_local":"22/Nov/2026:10:00:01 +0800","remote_addr":"10.0.0.2",'
        '"request":"GET /api/orders HTTP/1.1","status":"200","body_bytes_sent":"512"}\n'
    )
    source = FileLogSource(log, zone=SHANGHAI)
    assert reduced(source).by_level == {"ERROR": 1, "INFO": 1}
    assert source.skipped == 0
    [first, _] = source.records(*WINDOW)
    assert first.time == datetime(2026, 11, 22, 2, tzinfo=UTC)


def test_the_level_written_where_a_level_goes_wins_over_a_level_word_in_the_message() -> None:
    """nginx's `[error]` was read INFO for a path in its message, zap's `error` DEBUG for a
    word it quoted, `[warn]` ERROR; zap's DPANIC was UNKNOWN; a syslog line's level, past its
    host, tag and the program's own time, was not read at all (UNKNOWN, or INFO from a
    receiver's priority)."""
    lines = {
        '2026/11/22 10:00:00 [error] 7#7: *1 open() "/srv/INFO.txt" failed': "ERROR",
        '2026-11-22T10:00:00.000+0800\terror\tcfg/load.go:42\tinvalid level "TRACE"': "ERROR",
        "2026/11/22 10:00:00 [warn] 7#7: upstream sent ERROR header": "WARNING",
        "2026-11-22 10:00:00 info: upstream said ERROR 502": "INFO",
        "2026-11-22 10:00:00 [main] c.a.Foo - INFO loaded, ERROR count 0": "INFO",
        "2026-11-22T10:00:00.000+0800\tDPANIC\tx.go:1\tnil map written": "CRITICAL",
        "Nov 22 10:00:00 web-01 payment-service-7d9f8b6c4-x2x9z[1234]: 2026-11-22 "
        "10:00:00.123 [http-nio-8080-exec-1] ERROR c.a.Pay - card refused": "ERROR",
        "<30>Nov 22 10:00:00 web-01 payment-service-7d9f8b6c4-x2x9z[1234]: "
        "[http-nio-8080-exec-1] WARN c.a.Pay - card slow": "WARNING",
        "<11>Nov 22 10:00:00 web-01 sshd[99]: Failed password for root": "ERROR",
    }
    zone = ZoneInfo("Asia/Shanghai")
    records = [parse_line(line, "f", zone, date(2026, 11, 23)) for line in lines]
    read = [level_and_message(r.content)[0] if r else None for r in records]
    assert read == list(lines.values())
    # `ambient logs` (the reduction's own reader) reads them alike.
    assert [read_line(line, date(2026, 11, 23))[1] for line in lines] == list(lines.values())  # type: ignore[index]


def test_a_json_line_of_one_field_is_read_by_its_value() -> None:
    """A line whose only field besides its time is its error (zap's and logrus's "error") was
    the template "=db connection refused" (its key read as the level word and cut off); Google
    Cloud's textPayload was "textPayload=db refused"."""
    line = {"time": "2026-11-22T08:00:00Z", "error": "db connection refused"}
    assert level_and_message(line) == ("ERROR", "db connection refused")
    assert level_and_message({**line, "level": "warn"}) == ("WARNING", "db connection refused")
    gcp = {"timestamp": "2026-11-22T08:00:00Z", "severity": "ERROR", "textPayload": "db refused"}
    assert level_and_message(gcp) == ("ERROR", "db refused")
    # A field named by a level is that level's (the name was read as the line's level word).
    for key, level in (("fatal", "CRITICAL"), ("panic", "CRITICAL"), ("warn", "WARNING")):
        assert level_and_message({"time": 1, key: "cannot bind :8080"}) == (
            level,
            "cannot bind :8080",
        ), key
    assert level_and_message({"time": 1, "info": "started"}) == ("INFO", "started")
    # Two fields or more are said by name, as before; so is one that holds no text.
    assert level_and_message({"time": 1, "status": 500})[1] == "status=500"
    assert level_and_message({"time": 1, "user": "a", "n": 3}) == ("UNKNOWN", "user=a n=3")
