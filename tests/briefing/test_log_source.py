"""A briefing's log source: a file read inside AMBIENT_LOG_DIR only, symlinks followed; CLS."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ambient.briefing import logs
from ambient.briefing.config import ClsLogSpec, FileLogSpec
from ambient.briefing.logreport import LogBaseline, LogReducer, LogReport
from ambient.briefing.logreport_markdown import render_markdown
from ambient.briefing.logs import LogFileError, fill_from_report, read_log_source
from ambient.briefing.models import BriefingInputs
from ambient.briefing.offline import offline_draft
from ambient.briefing.writer import llm_prompt
from ambient.clients import logs as file_logs
from ambient.clients.tencent.client import TencentCloud
from ambient.settings import Settings
from ambient.speech import cause_kept_clip, spoken_clip
from tests.briefing.harness import heard
from tests.standins.tencent_api import TencentApi
from tests.support.servers import HANG, serve
from tests.support.tencent import standin_tencent
from tests.support.waits import eventually

LINE = '{"time": "2026-11-22T08:00:00Z", "level": "ERROR", "message": "%s"}\n'
START, END = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)


async def _read(path: Path, tencent: TencentCloud, log_dir: Path | None) -> tuple[str, list[str]]:
    """What reading ``path`` as a file source said, and its templates' examples (an admin's
    read when there is no log folder, a member's inside it)."""
    reducer = LogReducer()
    said = await read_log_source(
        FileLogSpec(path=str(path)),
        START,
        END,
        reducer,
        log_dir=log_dir,
        admin=log_dir is None,
        tencent=tencent,
    )
    return said, [t.example for t in reducer.report(start=START, end=END).templates]


async def _read_file(path: Path, **options: Any) -> tuple[str, LogReducer]:
    """What an admin's read of the file source ``path`` over the day said, and its reducer."""
    reducer = LogReducer()
    tencent: Any = None  # a file source asks no cloud
    said = await read_log_source(
        FileLogSpec(path=str(path)),
        START,
        END,
        reducer,
        log_dir=None,
        admin=True,
        tencent=tencent,
        **options,
    )
    return said, reducer


async def test_a_log_folder_is_read_without_the_files_its_symlinks_lead_out_to(
    tmp_path: Path, settings: Settings
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.log").write_text(LINE % "outside secret")
    logs = tmp_path / "logs"
    (logs / "app").mkdir(parents=True)
    (logs / "app" / "app.log").write_text(LINE % "inside line")
    (logs / "app" / "app.log.1").symlink_to(outside / "secret.log")
    tencent = TencentCloud.from_settings(settings)

    async def read(path: Path) -> tuple[str, list[str]]:
        return await _read(path, tencent, log_dir=logs)

    assert await read(logs / "app") == ("1 lines read", ["inside line"])
    # Named on its own, the escaping file is refused, as a path outside the folder is.
    for escaping in (logs / "app" / "app.log.1", outside / "secret.log"):
        with pytest.raises(LogFileError, match="outside AMBIENT_LOG_DIR"):
            await read(escaping)


async def test_a_folder_of_folders_is_read_whole_and_files_last_written_before_the_day_are_not(
    tmp_path: Path, settings: Settings
) -> None:
    """/var/log/pods keeps a folder a pod and one a container in it: read as "0 lines", the day
    was said as one without logs. Rotated files last written before the day hold none of its
    lines: they were read again every morning (a month of retention took the preparation past
    its time), a damaged old one said as a source not read to the end."""
    pods = tmp_path / "pods"
    said = {"shop_api-7d9f_1a2b": "payment refused", "shop_web-5c8e_3c4d": "cache lost its keys"}
    for pod, message in said.items():
        (pods / pod / "app").mkdir(parents=True)
        (pods / pod / "app" / "0.log").write_text(LINE % message)
    (pods / ".hidden").mkdir()
    (pods / ".hidden" / "0.log").write_text(LINE % "hidden")
    old = pods / "shop_api-7d9f_1a2b" / "app" / "0.log.20261101-000000.gz"
    old.write_bytes(b"\x1f\x8b\x08\x00 damaged")
    before = (START - timedelta(days=3)).timestamp()
    os.utime(old, (before, before))
    tencent = TencentCloud.from_settings(settings)

    async def read(path: Path) -> tuple[str, list[str]]:
        found, examples = await _read(path, tencent, log_dir=None)
        return found, sorted(examples)

    assert await read(pods) == ("2 lines read", sorted(said.values()))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no log file in the folder"):
        await read(tmp_path / "empty")


async def test_a_cls_record_at_midnight_belongs_to_one_day_only() -> None:
    # A SearchLog that serves a record at To as well: the briefing's own [start, end) decides.
    api = TencentApi(to_inclusive=True)
    midnight = int(END.timestamp() * 1000)
    api.logs = [
        {"time": midnight + offset, "json": {"level": "ERROR", "message": "disk full"}}
        for offset in (-1, 0, 1)
    ]
    reducers = []
    async with serve(api.app()) as base:
        cloud = standin_tencent(base)
        for start in (START, END):  # two days in a row
            reducer = LogReducer()
            read = await read_log_source(
                ClsLogSpec(topic_id="topic-1"),
                start,
                start + timedelta(days=1),
                reducer,
                log_dir=None,
                admin=False,
                tencent=cloud,
            )
            reducers.append((read, reducer.report().total))
    # The record at 00:00:00.000 is the second day's: [start, end), whatever To includes.
    assert reducers == [("1 lines read", 1), ("2 lines read", 2)]


async def test_a_busy_cls_day_is_read_past_context_paging_and_a_cap_is_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CLS pages a search with Context up to 10,000 logs, newest first: a busier day was briefed
    from its newest 10,000 lines (its first hours' errors never read). The rest is read with
    Offset, which has no such cap; past the briefing's own cap, the day is said to be its
    newest lines only."""
    api = TencentApi()
    first = int(START.timestamp() * 1000)
    api.logs = [
        {"time": first + i * 1000, "json": {"level": "ERROR", "message": f"disk {i} full"}}
        for i in range(10_050)
    ]

    async def read() -> tuple[str, LogReport]:
        said, reducer = await _cls_read(api)
        return said, reducer.report(start=START, end=END)

    said, report = await read()
    assert said == "10050 lines read" and report.total == 10_050 and not report.capped
    searches = [params for _, action, params in api.calls if action == "SearchLog"]
    assert ["Context" in p for p in searches] == [False] + [True] * 9 + [False]
    assert searches[-1]["Offset"] == 10_000

    monkeypatch.setattr(logs, "MAX_SEARCH_LOGS", 10_020)
    said, report = await read()
    assert said == "10020 lines read (capped at 10020, the newest read)"
    assert report.capped and report.total == 10_020
    assert "only the newest 10,020 lines" in render_markdown(report)
    for language, said in (
        ("en", "Only the day's newest 10020 log lines were read"),
        ("zh", "只读取了当天最新的 10020 行日志"),
    ):
        inputs = BriefingInputs(date="2026-11-23", language=language)
        fill_from_report(inputs, report)
        draft = offline_draft(inputs)
        assert said in draft.spoken_text, draft.spoken_text
        assert any(said in line for line in draft.what_happened), draft.what_happened


def test_a_day_of_warnings_and_no_errors_is_not_said_to_be_quiet() -> None:
    reducer = LogReducer()
    for _ in range(3):
        reducer.add(START + timedelta(hours=8), "WARNING", "connection pool 90% used")
    for language, said in (
        ("en", "Yesterday: no errors, 3 warnings"),
        ("zh", "昨天没有错误，有 3 个警告"),
    ):
        inputs = BriefingInputs(date="2026-11-23", language=language)
        fill_from_report(inputs, reducer.report(start=START, end=END))
        draft = offline_draft(inputs)
        assert draft.headline == said and heard(said, draft.spoken_text), draft


def test_the_most_frequent_error_is_said_with_its_cause() -> None:
    """A long error was cut at its last clause that fit: "The most frequent error was request
    something for tenant something failed, 30000 times." left out what failed it, the part a
    person names first. The cause after the message's first ": " is kept whole."""
    reducer = LogReducer()
    when = START + timedelta(hours=8)
    for n in range(30):
        reducer.add(
            when,
            "ERROR",
            f"request a8Xk{n}q for tenant user{n} failed: upstream payment-gateway returned "
            "HTTP 503",
        )
    for n in range(20):
        reducer.add(
            when,
            "ERROR",
            f"failed to process message {n}91 from partition {n} offset {n}77: context deadline "
            "exceeded",
        )
    inputs = BriefingInputs(date="2026-11-23", language="en")
    fill_from_report(inputs, reducer.report(start=START, end=END))
    spoken = offline_draft(inputs).spoken_text
    assert "for…: upstream payment-gateway returned HTTP <*>, 30 times." in spoken, spoken
    assert "The most frequent error was request" in spoken, spoken
    # A cause the voice would not say (a class's package) keeps the clause cut as before.
    assert cause_kept_clip("Exception in thread worker-1 of the pool: java.lang.Boom", 30) == (
        spoken_clip("Exception in thread worker-1 of the pool: java.lang.Boom", 30)
    )
    # Short enough: said whole.
    assert cause_kept_clip("db down: connection refused", 60) == "db down: connection refused"


def test_the_most_frequent_error_said_is_the_most_frequent_not_the_most_severe() -> None:
    reducer = LogReducer()
    when = START + timedelta(hours=8)
    reducer.add(when, "CRITICAL", "disk almost full on node-3")
    for _ in range(4):
        reducer.add(when, "ERROR", "payment gateway refused the card")
    for language, said in (
        ("en", "The most frequent error was payment gateway refused the card, 4 times."),
        ("zh", "最多的错误是：payment gateway refused the card，共 4 次。"),
    ):
        inputs = BriefingInputs(date="2026-11-23", language=language)
        fill_from_report(inputs, reducer.report(start=START, end=END))
        assert said in offline_draft(inputs).spoken_text
    # A template of wildcards alone (a day of messages that share nothing) is not said.
    for _ in range(9):
        reducer.add(when, "ERROR", "<*> <*> <*>")
    inputs = BriefingInputs(date="2026-11-23", language="en")
    fill_from_report(inputs, reducer.report(start=START, end=END))
    assert "most frequent error was payment gateway" in offline_draft(inputs).spoken_text
    # Past 20 templates more severe (one-off CRITICAL lines), the most frequent is still said:
    # the writer was given the 20 most severe only, and said a line of one as the most frequent.
    for n in range(22):
        reducer.add(when, "CRITICAL", " ".join(["subsystem", *["halted"] * (n + 1)]))
    inputs = BriefingInputs(date="2026-11-23", language="en")
    fill_from_report(inputs, reducer.report(start=START, end=END))
    assert len(inputs.top_templates) == 20
    assert "most frequent error was payment gateway" in offline_draft(inputs).spoken_text


@pytest.mark.parametrize("admin", [True, False])
async def test_a_path_with_a_nul_character_is_refused_by_name(
    tmp_path: Path, settings: Settings, admin: bool
) -> None:
    # The file system raised "embedded null byte", which reached the user as a server error.
    for log_dir in (tmp_path, None if admin else tmp_path):
        with pytest.raises(LogFileError, match="a path cannot hold a NUL"):
            await read_log_source(
                FileLogSpec(path="app\x00.log"),
                START,
                END,
                LogReducer(),
                log_dir=log_dir,
                admin=admin,
                tencent=TencentCloud.from_settings(settings),
            )


async def test_a_cls_search_stopped_at_its_limit_keeps_what_was_read_and_says_so() -> None:
    """CLS answers FailedOperation.GetlogReachLimit when a search hits its maximum count: the
    day's read failed whole and the pages already read were lost. Now they are briefed, the
    report is the newest lines only, and the read says CLS stopped the search."""
    api = TencentApi(search_pages=2)
    first = int(START.timestamp() * 1000)
    api.logs = [
        {"time": first + i * 1000, "json": {"level": "ERROR", "message": f"disk {i} full"}}
        for i in range(2_500)
    ]
    said, reducer = await _cls_read(api)
    assert said == (
        "2000 lines read (CLS stopped the search at its maximum count of logs "
        "(FailedOperation.GetlogReachLimit), the newest read)"
    )
    report = reducer.report(start=START, end=END)
    assert report.capped and report.total == 2_000


@pytest.mark.parametrize("cut", ["capped", "stopped"])
async def test_a_day_of_which_only_the_newest_lines_were_read_is_not_said_quiet(
    monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    """A busy CLS topic past the briefing's cap (or a search CLS stopped): only the last hours
    of the day were read, none of them an error. The headline (the page's title, the History
    list, the push card, the spoken briefing) said "Yesterday was quiet" / "昨天一切平稳" of a
    day most of whose logs were never read, where a rotated file broken off, the same partial
    read, is "not all logs could be read"."""
    api = TencentApi(search_pages=2 if cut == "stopped" else None)
    if cut == "capped":
        monkeypatch.setattr(logs, "MAX_SEARCH_LOGS", 1_500)
    first = int(START.timestamp() * 1000)
    api.logs = [
        {"time": first + i * 1000, "json": {"level": "INFO", "message": f"GET /health {i} ms"}}
        for i in range(2_500)
    ]
    _, reducer = await _cls_read(api)
    report = reducer.report(start=START, end=END)
    assert report.capped and report.total < 2_500 and not report.by_level.keys() - {"INFO"}
    for language, headline in (
        ("en", "Yesterday: no errors in the logs read, but not all logs could be read"),
        ("zh", "昨天读到的日志里没有错误，但日志没能全部读取"),
    ):
        inputs = BriefingInputs(date="2026-11-23", language=language)
        fill_from_report(inputs, report)
        draft = offline_draft(inputs)
        assert draft.headline == headline and heard(headline, draft.spoken_text), draft
    # The model is told too, which could otherwise still call the day quiet.
    said = f"Logs read in full: no, only the newest {report.total} lines were read: "
    assert said in llm_prompt(inputs), llm_prompt(inputs)


@pytest.mark.parametrize(
    ("usual", "en", "zh", "report"),
    [
        # 2,500 errors, as the days before: the 1,500 read "fell 40%".
        (
            2_500,
            "At least 1500 errors: not compared with the previous 3 days' average, as not all "
            "logs could be read",
            "错误至少 1500 个：日志没能全部读取，没有与前 3 天平均比较",
            "errors at least 1500, not compared (not all lines read).",
        ),
        # 1,000 a day before: more than 1,500 rose at least 50%.
        (
            1_000,
            "Errors rose at least 50% against the previous 3 days' average",
            "错误数比前 3 天平均至少增加 50%",
            "errors at least +50%.",
        ),
    ],
)
async def test_a_day_of_which_only_the_newest_lines_were_read_claims_no_fall(
    monkeypatch: pytest.MonkeyPatch, usual: int, en: str, zh: str, report: str
) -> None:
    """A day of 2,500 errors, as usual, past the briefing's cap of 1,500 lines: its count of
    the lines read was compared with the 7-day baseline, "Errors fell 40%", on the page, in the
    spoken briefing and to the model, of a day no better than the others. A capped count is a
    floor: only a rise is said (at least), else the count is said as one."""
    monkeypatch.setattr(logs, "MAX_SEARCH_LOGS", 1_500)
    api = TencentApi()
    first = int(START.timestamp() * 1000)
    api.logs = [
        {"time": first + i * 1000, "json": {"level": "ERROR", "message": f"disk {i} full"}}
        for i in range(2_500)
    ]
    _, reducer = await _cls_read(api)
    days = [{"__total__": 3_000, "__errors__": usual, "__day__": n} for n in range(3)]
    read = reducer.report(start=START, end=END, baseline=LogBaseline(days=days))
    assert read.capped and read.total == 1_500
    for language, trend in (("en", en), ("zh", zh)):
        inputs = BriefingInputs(date="2026-11-23", language=language)
        fill_from_report(inputs, read)
        assert inputs.trend == trend
        draft = offline_draft(inputs)
        # Spoken once: the headline says the floor and why; a rise is said besides.
        assert (trend in draft.spoken_text) == ("%" in trend), draft.spoken_text
        assert "fell" not in draft.spoken_text and "减少" not in draft.spoken_text, draft
    markdown = render_markdown(read)
    assert report in markdown and "-40" not in markdown, markdown


async def _cls_read(api: TencentApi) -> tuple[str, LogReducer]:
    """A day of topic-1 read as the stand-in ``api`` serves it: what the read said, its reducer."""
    reducer = LogReducer()
    async with serve(api.app()) as base:
        said = await read_log_source(
            ClsLogSpec(topic_id="topic-1"),
            START,
            END,
            reducer,
            log_dir=None,
            admin=False,
            tencent=standin_tencent(base),
        )
    return said, reducer


async def _cls_report(api: TencentApi) -> LogReport:
    """The report of a day of topic-1 as the stand-in ``api`` serves it."""
    return (await _cls_read(api))[1].report()


async def test_a_cls_full_text_record_holding_a_json_line_keeps_its_level() -> None:
    """CLS's full-text collection (单行全文, as for a container's stdout) puts the whole line
    in __CONTENT__: a service's JSON line there was a message with no level, its errors
    UNKNOWN, and the day briefed as quiet."""
    api = TencentApi()
    at = int(START.timestamp() * 1000) + 3_600_000
    line = '{"level":"error","msg":"payment refused","order":%d}'
    api.logs = [{"time": at + i, "json": {"__CONTENT__": line % i}} for i in range(3)]
    report = await _cls_report(api)
    assert report.by_level == {"ERROR": 3}
    assert [(t.level, t.count, t.template) for t in report.templates] == [
        ("ERROR", 3, "payment refused")
    ]


async def test_a_cls_full_text_records_line_is_read_as_a_files_line_is() -> None:
    """A text line in __CONTENT__ kept its time and Java's header in the message: the level
    was found, but the spoken error began "2026-11-22 10:00:00,123 ERROR [main] c.a.Pay", and
    one logger's unrelated messages were alike enough to share a template. Its first line is
    now read as a file's line is (a multi-line record's trace kept below it)."""
    api = TencentApi()
    at = int(START.timestamp() * 1000) + 3_600_000
    lines = [
        "2026-11-22 10:00:0%d,123 ERROR [main] c.a.Pay - payment refused for order %d",
        "2026-11-22 10:00:0%d,456 ERROR [main] c.a.Pay - ledger down after %d tries\n"
        "\tat c.a.Ledger.post(Ledger.java:42)",
    ]
    api.logs = [
        {"time": at + i, "json": {"__CONTENT__": line % (i, i), "__TAG__.pod": "pay-1"}}
        for i in range(3)
        for line in lines
    ]
    report = await _cls_report(api)
    assert report.by_level == {"ERROR": 6}
    assert sorted((t.count, t.template) for t in report.templates) == [
        (3, "ledger down after <*> tries"),
        (3, "payment refused for order <*>"),
    ]


async def test_an_uncaught_crash_in_a_cls_multi_line_record_is_a_critical_event() -> None:
    """CLS's multi-line collection (多行全文) starts a record at each timed line: a crash
    printed with no time of its own (Python's uncaught traceback, Go's panic, the JVM's
    "Exception in thread") joined the line above it, an INFO one, and the day was briefed
    as quiet; read from the same file, the crash was a CRITICAL event. It is one here too,
    beside the line it followed; an error's own trace is no second event."""
    api = TencentApi()
    at = int(START.timestamp() * 1000) + 3_600_000
    api.logs = [
        {"time": at + i, "json": {"__CONTENT__": text}}
        for i, text in enumerate(
            [
                "2026-11-22 10:00:00,123 - app - INFO - starting worker\n"
                "Traceback (most recent call last):\n"
                '  File "w.py", line 3, in <module>\n'
                "KeyError: 'x'\n\n"
                "During handling of the above exception, another exception occurred:\n\n"
                "Traceback (most recent call last):\n"
                '  File "w.py", line 5, in <module>\n'
                "RuntimeError: no worker",
                "2026-11-22 10:00:01 INFO serving on :8080\n"
                "panic: runtime error: invalid memory address or nil pointer dereference\n"
                "[signal SIGSEGV: segmentation violation]\n\ngoroutine 1 [running]:\nmain.main()",
                "2026-11-22 10:00:02.123 INFO [main] c.a.App - started\n"
                'Exception in thread "worker" java.lang.OutOfMemoryError: Java heap space\n'
                "\tat c.a.W.run(W.java:1)",
                "2026-11-22 10:00:03,123 - app - ERROR - charge failed\n"
                "Traceback (most recent call last):\n"
                '  File "c.py", line 1, in <module>\n'
                "ValueError: bad card",
            ]
        )
    ]
    report = await _cls_report(api)
    assert report.by_level == {"INFO": 3, "CRITICAL": 3, "ERROR": 1}
    assert sorted(t.example.split("\n")[0] for t in report.templates if t.level == "CRITICAL") == [
        'Exception in thread "worker" java.lang.OutOfMemoryError: Java heap space',
        "RuntimeError: no worker",
        "panic: runtime error: invalid memory address or nil pointer dereference",
    ]


async def test_lines_whose_level_a_terminal_colours_count_at_their_level(tmp_path: Path) -> None:
    # zap's colour level encoder and Spring Boot's ANSI output: the level was UNKNOWN, and the
    # briefing said no errors.
    day = datetime(2026, 12, 3, tzinfo=UTC)
    (tmp_path / "app.log").write_text(
        "2026-12-03T10:00:00.123Z\t\x1b[31mERROR\x1b[0m\tpay/handler.go:42\tpayment failed\n"
        "2026-12-03 10:00:01.123 \x1b[31mERROR\x1b[0;39m 1 --- [main] c.a.Pay : payment failed\n"
        "2026-12-03 10:00:02.123 \x1b[1;33mWARN\x1b[m disk nearly full\n"
    )
    reducer = LogReducer()
    await read_log_source(
        FileLogSpec(path=str(tmp_path / "app.log")),
        day,
        day + timedelta(days=1),
        reducer,
        log_dir=tmp_path,
        admin=True,
        tencent=None,
    )
    report = reducer.report(start=day, end=day + timedelta(days=1))
    assert report.by_level == {"ERROR": 2, "WARNING": 1}
    said = render_markdown(report)
    assert "\x1b" not in said and "payment failed" in said


async def test_a_cls_full_text_syslog_line_with_its_priority_is_read_as_a_files_line() -> None:
    """rsyslog's files (RSYSLOG_SyslogProtocol23Format, or a receiver keeping `<PRI>`)
    collected by CLS as full text: the same line in a file is an ERROR with its time and host
    taken off; in __CONTENT__ it was UNKNOWN, its priority and time mined as the message."""
    lines = [
        "<11>1 2026-11-22T10:00:00.003+08:00 web1 pay 1234 - - charge failed for order 7",
        "<11>Nov 22 10:00:01 web1 pay[5]: charge failed for order 8",
    ]
    api = TencentApi()
    at = int(START.timestamp() * 1000) + 3_600_000
    api.logs = [{"time": at + i, "json": {"__CONTENT__": line}} for i, line in enumerate(lines)]
    report = await _cls_report(api)
    assert report.by_level == {"ERROR": 2}
    # Its priority, time, host and process id are no part of the message, as in a file: the
    # two forms are one template (with the host left in, RFC 5424's split per host).
    assert [(t.template, t.count) for t in report.templates] == [
        ("pay: charge failed for order <*>", 2)
    ], report.templates


async def test_a_file_read_stops_at_its_bound_and_at_its_callers_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file source had no bound: a day of 11 million lines outlasted its preparation (three
    attempts, each beside the last one's read), and a read cancelled by Temporal went on in its
    thread, reading the whole day for nobody. It stops at ``within`` (the rest said unread, as
    a CLS search's cap is) and at its caller's cancel, whatever day the lines read are of (a
    month's file read for one day)."""
    path = tmp_path / "app.log"
    day = LINE.replace("%s", "payment failed")
    later = day.replace("2026-11-22", "2026-11-25")  # none of the day asked
    for lines in (day, later):
        path.write_text(lines * 200_000)
        said, reducer = await _read_file(path, within=0)
        assert said == (
            "0 lines read; not read to the end: the read stopped after 0 s (more lines than a "
            "briefing reads in time): the rest unread"
        ), said
        assert reducer.broken, said
    seen = []
    parse = file_logs.parse_line
    cancelled = threading.Event()

    def counted(*args: Any) -> Any:
        seen.append(1)
        if len(seen) == 1001:  # held until its caller has cancelled it (a loaded host's loop
            cancelled.wait(HANG)  # could else see the cancel after the whole file was read)
        return parse(*args)

    monkeypatch.setattr(file_logs, "parse_line", counted)
    reading = asyncio.create_task(_read_file(path))

    async def reading_lines() -> bool:
        return len(seen) > 1000

    await eventually(reading_lines)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    cancelled.set()
    last = -1

    async def stopped() -> bool:  # no line read in a quarter of a second
        nonlocal last
        now, last = last, len(seen)
        await asyncio.sleep(0.25)
        return now == last == len(seen)

    await eventually(stopped, "the thread's read stops")
    assert len(seen) <= 1001 + file_logs.LOOK_EVERY  # stopped at its next look, not the end


async def test_a_json_line_past_its_first_mib_and_a_line_after_a_crashs_padding_are_read(
    tmp_path: Path,
) -> None:
    """A JSON error line longer than a MiB (a request dump in a field) no longer parsed once
    cut: an unreadable line, not an error. The line after a run of NUL bytes (the padding ext4
    and xfs leave after a crash, often 2 MiB of it) was unreadable too: the first one the
    service logged after its restart."""
    path = tmp_path / "app.log"
    big = '{"time": "2026-11-22T09:00:00Z", "level": "ERROR", "message": "request dump", '
    with path.open("wb") as out:
        out.write((LINE % "payment failed").encode() * 3)
        out.write(big.encode() + b'"body": "' + b"x" * (3 << 20) + b'"}\n')
        out.write(b"\0" * 4096 + (LINE % "after the crash").encode())
        # From a block's start, inside the line being written when it crashed.
        out.write((LINE % "cut by the crash").encode()[:30])
        out.write(b"\0" * 40)
        out.write(b"\0" * (3 << 20) + (LINE % "after a long padding").encode())
        # A cut string's escapes read: Python's json.dumps writes Chinese as \uXXXX.
        dump = json.dumps({"time": "2026-11-22T10:00:00Z", "level": "ERROR"})[:-1]
        dump += ', "message": "' + json.dumps("订单支付失败\n" + "at Pay.charge\n" * 99_999)[1:]
        out.write(dump.encode() + b"\n")
        # A NUL written in a value (an injection logged as is) is the line's own, not padding.
        out.write(b"2026-11-22 08:00:00 ERROR login failed for user a\0b\n")
    said, reducer = await _read_file(path)
    report = reducer.report(start=START, end=END)
    assert said == "8 lines read", said
    assert report.by_level == {"ERROR": 8}, report.by_level
    examples = {t.example for t in report.templates}
    assert {"request dump", "after the crash", "after a long padding"} <= examples, examples
    assert any(e.startswith("订单支付失败") for e in examples), examples


async def test_a_line_with_half_a_utf16_pair_is_read_not_the_end_of_the_briefing(
    tmp_path: Path,
) -> None:
    """A JSON line holding "\\ud83d" without its other half (an emoji cut in two: Python's
    json.dumps writes emoji so, and a line cut at its first MiB cuts one) failed the day's
    report ("surrogates not allowed"), and with it the whole briefing, at every retry."""
    path = tmp_path / "app.log"
    head = '{"time": "2026-11-22T08:00:00Z", "level": "ERROR", "message": '
    with path.open("w") as out:
        out.write(head + '"pay \\ud83d failed"}\n')
        out.write(head + json.dumps("支付失败 " + "😀" * 400_000) + "}\n")
    said, reducer = await _read_file(path)
    report = reducer.report(start=START, end=END)
    assert said == "2 lines read" and report.by_level == {"ERROR": 2}, (said, report.by_level)
    assert "pay \ufffd failed" in {t.example for t in report.templates}
    render_markdown(report).encode()  # every line of it can be written out


def test_a_missing_file_under_the_log_folder_is_named_relative_to_it(tmp_path: Path) -> None:
    """search_logs' `file:missing.log` answered "no log file or directory at" the server's
    absolute path: where it keeps its logs is an admin's to know, not a member's."""
    root = tmp_path / "server-logs"
    (root / "empty").mkdir(parents=True)
    for name, said in (
        ("missing.log", "no log file or directory at missing.log"),
        ("empty", "no log file in the folder empty or below it"),
    ):
        with pytest.raises(FileNotFoundError) as refused:
            file_logs.FileLogSource.inside(root, name).files()
        assert str(refused.value) == said


async def test_a_day_of_lines_without_a_level_is_not_said_quiet(tmp_path: Path) -> None:
    """A CVM's /var/log/messages writes no level: five OOM kills of java and three segfaults
    were "Yesterday was quiet" / "昨天一切平稳", and the model was told "errors: 0" (a
    review). Most lines carrying no level, no error counted is said as not told apart."""
    from ambient.briefing.offline import offline_draft
    from ambient.briefing.writer import llm_prompt

    lines = []
    for i in range(100):
        at = START + timedelta(minutes=14 * i)
        what = (
            f"kernel: Out of memory: Killed process {1000 + i} (java)"
            if i % 20 == 0
            else f"systemd[1]: Started Session {i} of user deploy."
        )
        lines.append(f"{at:%b %e %H:%M:%S} web-01 {what}")
    (tmp_path / "messages").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, reducer = await _read_file(tmp_path / "messages")
    for language, quiet, said in (
        ("en", "quiet", "most of the 100 log lines carry no level"),
        ("zh", "平稳", "昨天的 100 行日志大多没有写级别"),
    ):
        inputs = BriefingInputs(date="2026-11-23", language=language)
        fill_from_report(inputs, reducer.report(start=START, end=END))
        assert (inputs.errors, inputs.logs_unleveled) == (0, 100)
        draft = offline_draft(inputs)
        assert quiet not in draft.headline and said in draft.headline, draft.headline
        assert quiet not in draft.spoken_text, draft.spoken_text
        assert "100 lines of 100 carry no level" in llm_prompt(inputs)
    # A day whose lines carry their levels is quiet as before.
    leveled = BriefingInputs(date="2026-11-23", language="en", log_lines=100, logs_unleveled=10)
    assert offline_draft(leveled).headline.startswith("Yesterday was quiet")
