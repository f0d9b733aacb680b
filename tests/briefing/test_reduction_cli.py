"""`ambient logs templates` on files: mixed formats, --json, --per-line, --since/--until."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ambient.briefing.logreport import LogReport
from ambient.cli import app
from bench.loggen import file_lines, generate
from tests.briefing.test_log_formats import deeply_nested_lines

MIXED = """\
{"time": "2026-11-21T01:00:00Z", "level": "ERROR", "message": "disk full on /data/a/b"}
2026-11-21 01:05:00 ERROR disk full on /data/c/d
[2026-11-21T01:10:00+08:00] WARN slow query took 3000ms

plain message without a time 42
plain message without a time 43
{"level": "info", "msg": "json without a time, id 7"}
2026-11-21T02:00:00Z 连接数据库失败，重试3次
2026-11-21T02:01:00Z 连接数据库失败，重试5次
"""


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["logs", "templates", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_mixed_formats_are_all_read_and_lines_without_time_are_messages(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_text(MIXED, encoding="utf-8")
    report = LogReport.model_validate_json(run(str(path), "--json"))
    rows = sorted((t.level, t.template, t.count) for t in report.templates)
    assert rows == sorted(
        [
            ("ERROR", "disk full on <*>", 2),
            ("UNKNOWN", "连接数据库失败，重试<*>次", 2),
            ("INFO", "json without a time, id <*>", 1),
            ("UNKNOWN", "plain message without a time <*>", 2),
            ("WARNING", "slow query took <*>", 1),
        ]
    )
    assert report.total == 8 and report.unreadable == 0
    # The +08:00 line is 17:10 UTC the day before: the report spans from it.
    assert report.start is not None and report.start.isoformat() == "2026-11-20T17:10:00+00:00"


def test_per_line_prints_one_object_per_input_line_in_order(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_text(MIXED, encoding="utf-8")
    rows = [json.loads(line) for line in run(str(path), "--per-line").splitlines()]
    assert [r["line"] for r in rows] == list(range(1, 10))
    ids = [r["template_id"] for r in rows]
    assert ids[3] is None  # the blank line
    assert ids[0] == ids[1]  # disk full, JSON and text
    assert ids[4] == ids[5]  # plain lines without a time
    assert ids[7] == ids[8]  # Chinese, different retry counts
    assert len({i for i in ids if i is not None}) == 5
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert {t.template_id for t in report.templates} == {i for i in ids if i is not None}


def test_per_line_groups_a_generated_file_like_its_ground_truth(tmp_path: Path) -> None:
    logs = generate(5_000, seed=21, bursts=2)
    path = tmp_path / "day.log.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for line in file_lines(logs, text_every=3):
            handle.write(line + "\n")
    rows = [json.loads(line) for line in run(str(path), "--per-line").splitlines()]
    assert len(rows) == len(logs.lines)
    pairs = Counter((r["template_id"], line[3]) for r, line in zip(rows, logs.lines, strict=True))
    predicted = {p for p, _ in pairs}
    assert len(pairs) == len(predicted) == len({line[3] for line in logs.lines})


def test_since_and_until_select_timed_lines_and_keep_untimed_ones(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_text(MIXED, encoding="utf-8")
    out = run(
        str(path), "--json", "--since", "2026-11-21T01:01:00Z", "--until", "2026-11-21T02:00:30Z"
    )
    report = LogReport.model_validate_json(out)
    rows = sorted((t.template, t.count) for t in report.templates)
    assert rows == [
        ("disk full on <*>", 1),
        ("json without a time, id <*>", 1),
        ("plain message without a time <*>", 2),
        ("连接数据库失败，重试<*>次", 1),
    ]
    assert report.start is not None and report.start.isoformat() == "2026-11-21T01:01:00+00:00"


def test_default_output_is_the_markdown_report(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_text(MIXED, encoding="utf-8")
    out = run(str(path))
    assert out.startswith("## Logs ")
    assert "- ERROR 2 " in out and "disk full on <*>" in out


def test_empty_file_gives_an_empty_report(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_text("\n\n", encoding="utf-8")
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert (report.total, report.templates) == (0, [])
    assert run(str(path), "--per-line").splitlines() == [
        '{"line": 1, "template_id": null}',
        '{"line": 2, "template_id": null}',
    ]


def test_bad_arguments_are_refused_naming_the_option(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("hello\n", encoding="utf-8")
    runner = CliRunner()
    bad_time = runner.invoke(app, ["logs", "templates", str(path), "--since", "yesterday"])
    assert bad_time.exit_code == 2 and "--since" in bad_time.output
    edge = ["--until", "0001-01-01T00:00:00+08:00"]
    out_of_years = runner.invoke(app, ["logs", "templates", str(path), *edge])
    said = " ".join(out_of_years.output.replace("│", " ").split())  # the usage box wraps it
    assert out_of_years.exit_code == 2 and "--until" in said, out_of_years.output
    assert "must be a time from 0001-01-02 to 9999-12-30" in said, out_of_years.output
    missing = runner.invoke(app, ["logs", "templates", str(tmp_path / "nope.log")])
    assert missing.exit_code == 2 and "nope.log" in missing.output
    both = runner.invoke(app, ["logs", "templates", str(path), "--json", "--per-line"])
    assert both.exit_code == 2 and "--per-line" in both.output
    # Swapped, they read as "No log lines in this period" for a period that holds lines.
    swapped = ["--since", "2026-11-22T00:00:00Z", "--until", "2026-11-21T00:00:00Z"]
    reversed_window = runner.invoke(app, ["logs", "templates", str(path), *swapped])
    assert reversed_window.exit_code == 2 and "--until" in reversed_window.output


def test_a_damaged_gz_is_named_on_stderr_and_the_other_files_are_reduced(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("2026-11-21T01:00:00Z ERROR disk full\n", encoding="utf-8")
    whole = gzip.compress(b"2026-11-20T01:00:00Z ERROR disk full\n" * 2000)
    (tmp_path / "app.log.1.gz").write_bytes(whole[: len(whole) // 2])
    result = CliRunner().invoke(app, ["logs", "templates", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = LogReport.model_validate_json(result.stdout)
    assert 1 < report.total < 2001
    assert "app.log.1.gz: Compressed file ended" in result.stderr


def test_level_fields_in_short_numeric_and_chinese_names_are_read(tmp_path: Path) -> None:
    path = tmp_path / "levels.log"
    levels = ["W", "E", "e", 50, 60, 40, 30, "错误", "警告", "信息", "严重", "I", "D", "F"]
    path.write_text(
        "".join(
            json.dumps({"time": "2026-11-21T01:00:00Z", "level": level, "msg": f"job {i} done"})
            + "\n"
            for i, level in enumerate(levels)
        ),
        encoding="utf-8",
    )
    report = LogReport.model_validate_json(run(str(path), "--json"))
    # pino and bunyan write numbers (30 info ... 60 fatal), glog and logcat one letter,
    # java.util.logging in a Chinese locale 严重 (SEVERE), 警告 and 信息.
    assert report.by_level == {"CRITICAL": 2, "ERROR": 5, "WARNING": 3, "INFO": 3, "DEBUG": 1}


def test_lower_case_bracketed_key_value_and_chinese_levels_in_text_are_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "levels.log"
    path.write_text(
        "2026-11-21T01:00:00Z [error] upstream timed out while reading response header\n"
        "2026-11-21T01:00:01Z error: connection refused\n"
        '2026-11-21T01:00:02Z level=warn msg="slow query" took=3s\n'
        "2026-11-21T01:00:03Z [ERR] agent: failed to sync remote state\n"
        "2026-11-21T01:00:04Z 警告 磁盘空间不足\n"
        "2026-11-21T01:00:05Z 错误：连接数据库失败\n"
        "2026-11-21T01:00:06Z GET /error-page 200\n"
        "2026-11-21T01:00:07Z a user searched for error\n",
        encoding="utf-8",
    )
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert report.by_level == {"ERROR": 4, "WARNING": 2, "UNKNOWN": 2}
    templates = {t.template for t in report.templates}
    assert {"connection refused", "连接数据库失败", "磁盘空间不足"} <= templates


def test_chinese_fatal_and_severe_errors_written_whole_are_read(tmp_path: Path) -> None:
    """Lines written "致命错误：" and "严重错误：" (a fatal and a severe error in Chinese) read as
    no level: a day of them was said calm."""
    path = tmp_path / "zh.log"
    path.write_text(
        "2026-11-21T01:00:00Z 致命错误：支付进程崩溃，退出码 3\n"
        "2026-11-21T01:00:01Z [致命错误] 支付进程崩溃，退出码 4\n"
        "2026-11-21T01:00:02Z 严重错误：数据库主库不可用\n"
        "2026-11-21T01:00:03Z 错误日志已轮转\n",  # a level word inside a word is none
        encoding="utf-8",
    )
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert report.by_level == {"CRITICAL": 2, "ERROR": 1, "UNKNOWN": 1}
    templates = {t.template for t in report.templates}
    assert {"支付进程崩溃，退出码<*>", "数据库主库不可用"} <= templates, templates


def test_an_access_log_written_as_json_is_read_as_its_requests(tmp_path: Path) -> None:
    """nginx's JSON log_format (or CLS's parsed nginx fields, Envoy's JSON) has no message
    field: its fields joined were the message, a template a user agent, 502 and 504 as one."""
    agents = ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)", "okhttp/4.9.0"]
    lines = [
        {
            "time_local": f"21/Nov/2026:01:00:{i:02d} +0000",
            "remote_addr": f"10.0.0.{i}",
            "request": f"GET /api/orders/{i}?x={i} HTTP/1.1",
            "status": 502 if i % 2 else 504,
            "body_bytes_sent": i * 10,
            "http_user_agent": agents[i % 2],
        }
        for i in range(8)
    ]
    lines += [  # Envoy's (Istio's): method and path apart, the status as response_code
        {
            "start_time": f"2026-11-21T01:00:{i:02d}Z",
            "method": "POST",
            "path": "/api/pay",
            "response_code": 503,
            "user_agent": agents[i % 2],
        }
        for i in range(3)
    ]
    lines += [  # Echo's request log: why it failed in its error, kept
        {
            "time": f"2026-11-21T01:01:{i:02d}Z",
            "method": "GET",
            "uri": f"/api/users/{i}",
            "status": 500,
            "error": error,
        }
        for i, error in enumerate(["dial tcp: connection refused"] * 2 + ["redis: nil"] * 2)
    ]
    path = tmp_path / "access.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    report = LogReport.model_validate_json(run(str(path), "--json"))
    rows = sorted((t.level, t.template, t.count) for t in report.templates)
    assert rows == [
        ("ERROR", "GET /api/orders/<*> Bad Gateway", 4),
        ("ERROR", "GET /api/orders/<*> Gateway Timeout", 4),
        ("ERROR", "GET /api/users/<*> Internal Server Error: dial tcp: connection refused", 2),
        ("ERROR", "GET /api/users/<*> Internal Server Error: redis: nil", 2),
        ("ERROR", "POST /api/pay Service Unavailable", 3),
    ]


def test_gbk_encoded_chinese_logs_are_read_as_chinese(tmp_path: Path) -> None:
    # A Chinese Windows server (or a zh_CN.GBK locale) writes its logs in GBK, rotated ones too.
    text = "2026-11-21T01:00:0{}Z ERROR 连接数据库失败，重试{}次\n"
    (tmp_path / "app.log").write_bytes(text.format(1, 3).encode("gbk"))
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(text.format(0, 5).encode("gb18030")))
    (tmp_path / "other.log").write_text(text.format(2, 7), encoding="utf-8")
    report = LogReport.model_validate_json(run(str(tmp_path), "--json"))
    rows = [(t.level, t.template, t.count) for t in report.templates]
    assert rows == [("ERROR", "连接数据库失败，重试<*>次", 3)]


def test_serilog_lines_without_a_level_are_information_and_ecs_nests_its_level(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    path.write_text(
        '{"@t": "2026-11-22T02:03:00Z", "@mt": "Order {Id} placed", "Id": 7}\n'
        '{"@timestamp": "2026-11-22T02:04:00Z", "log": {"level": "warn"}, "message": "slow"}\n',
        encoding="utf-8",
    )
    report = LogReport.model_validate_json(run(str(path), "--json"))
    rows = sorted((t.level, t.template) for t in report.templates)
    assert rows == [("INFO", "Order {Id} placed"), ("WARNING", "slow")]


def test_access_syslog_and_logfmt_lines_are_timed_and_leveled(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text(
        '10.0.0.7 - - [22/Nov/2026:10:00:00 +0800] "GET /pay HTTP/1.1" 502 12 "-" "curl/8"\n'
        '10.0.0.8 - - [22/Nov/2026:10:00:01 +0800] "GET /pay HTTP/1.1" 404 12 "-" "curl/8"\n'
        "Nov 22 02:00:02 web1 pay[123]: payment accepted\n"
        'time=2026-11-22T02:00:03Z level=error msg="db down"\n',
        encoding="utf-8",
    )
    out = run(str(path), "--json", "--until", "2026-11-23T00:00:00Z")
    report = LogReport.model_validate_json(out)
    rows = sorted((t.level, t.template) for t in report.templates)
    # A request's route and status name its event (it read "GET <*> <*> <*> <*> <*>" for
    # both); syslog's host and process id are no words of the program's message.
    assert rows == [
        ("ERROR", "GET /pay Bad Gateway"),
        ("ERROR", "db down"),
        ("UNKNOWN", "pay: payment accepted"),
        ("WARNING", "GET /pay Not Found"),
    ]
    assert report.start is not None and report.start.isoformat() == "2026-11-22T02:00:00+00:00"


def test_untimed_stack_trace_lines_follow_the_event_they_continue(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(
        "2026-11-21T01:00:00Z ERROR payment refused\n"
        "java.lang.IllegalStateException: card declined\n"
        "\tat com.acme.pay.Card.charge(Card.java:42)\n"
        "2026-11-21T03:00:00Z ERROR job failed\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/job.py", line 3, in <module>\n'
        "KeyError: 'order_id'\n"
        "plain message without a time\n",
        encoding="utf-8",
    )
    out = run(str(path), "--per-line", "--since", "2026-11-21T02:00:00Z")
    kept = [json.loads(line)["template_id"] is not None for line in out.splitlines()]
    # The 01:00 event is out, its trace with it; the 03:00 one is in with its trace.
    assert kept == [False, False, False, True, True, True, True, True]


def test_kubernetes_container_lines_are_read_through_their_cri_prefix(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(
        '2026-11-21T01:00:00.123456789Z stderr F {"level":"error","msg":"payment refused"}\n'
        "2026-11-21T01:00:01.123456789Z stdout F 2026-11-21 09:00:01 WARN slow card\n"
        '2026-11-21T01:00:02.000000001Z stdout P {"level":"error","msg":"order ' + "x" * 40 + "\n"
        '2026-11-21T01:00:02.000000002Z stdout F  rejected"}\n',
        encoding="utf-8",
    )
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert (report.total, report.by_level) == (3, {"ERROR": 2, "WARNING": 1})
    assert {t.template for t in report.templates} == {
        "payment refused",
        "slow card",
        "order " + "x" * 40 + " rejected",
    }
    lines = [json.loads(line)["template_id"] for line in run(str(path), "--per-line").splitlines()]
    assert [tid is not None for tid in lines] == [True, True, False, True]


def test_docker_json_file_lines_are_read_as_the_lines_the_container_wrote(
    tmp_path: Path,
) -> None:
    path = tmp_path / "abc-json.log"
    path.write_text(
        '{"log":"{\\"level\\":\\"error\\",\\"msg\\":\\"payment refused\\"}\\n",'
        '"stream":"stderr","time":"2026-11-21T01:00:00.1234567Z"}\n'
        '{"log":"2026-11-21 09:00:01 WARN slow card\\n","stream":"stdout",'
        '"time":"2026-11-21T01:00:01.1234567Z"}\n',
        encoding="utf-8",
    )
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert (report.total, report.by_level) == (2, {"ERROR": 1, "WARNING": 1})
    assert {t.template for t in report.templates} == {"payment refused", "slow card"}


def test_syslog_lines_with_a_priority_are_timed_and_leveled_by_it(tmp_path: Path) -> None:
    path = tmp_path / "remote.log"
    path.write_text(
        "<11>1 2026-11-21T10:00:00.000+08:00 web-1 pay 12 - - payment refused\n"
        "<12>Nov 21 10:00:02 web-1 pay[12]: slow card\n",
        encoding="utf-8",
    )
    # --until gives the syslog line its year (not the day the test runs).
    out = run(
        str(path), "--json", "--since", "2026-11-21T00:00:00Z", "--until", "2026-11-22T00:00:00Z"
    )
    report = LogReport.model_validate_json(out)
    assert (report.total, report.by_level) == (2, {"ERROR": 1, "WARNING": 1})


@pytest.mark.timeout(60, method="signal")  # the regression hung: it fails here instead
def test_an_epoch_too_large_for_any_time_is_refused_or_untimed_not_a_hang(tmp_path: Path) -> None:
    """`--since` of 400 digits, or a line's JSON epoch of 1e400, is infinity as a float: it was
    divided by 1000 until it was seconds, which never ended."""
    path = tmp_path / "app.log"
    path.write_text(
        '{"time": 1e400, "level": "error", "message": "far"}\n'
        '{"time": "2026-11-21T01:00:00Z", "level": "error", "message": "near"}\n',
        encoding="utf-8",
    )
    refused = CliRunner().invoke(app, ["logs", "templates", str(path), "--since", "9" * 400])
    assert refused.exit_code == 2 and "is not an ISO time" in refused.output
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert sorted((t.level, t.template, t.count) for t in report.templates) == [
        ("ERROR", "far", 1),
        ("ERROR", "near", 1),
    ]


def test_json_nested_past_the_recursion_limit_and_repeated_wrappers_are_read(
    tmp_path: Path,
) -> None:
    """Such a line ended the command with RecursionError; now each is a line of the report."""
    path = tmp_path / "app.log"
    path.write_text(deeply_nested_lines(), encoding="utf-8")
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert report.total == 6 and report.by_level == {"ERROR": 2, "UNKNOWN": 4}  # <11>: err


def test_pythons_default_format_is_leveled_and_its_message_stripped(tmp_path: Path) -> None:
    """`ambient logs templates` kept "- app.pay - ERROR - " in the message of Python's default
    format, so its templates were not the briefing's ("payment refused")."""
    path = tmp_path / "app.log"
    path.write_text(
        "2026-11-25 10:00:00,123 - app.pay - ERROR - payment refused\n"
        "2026-11-25 10:00:01,456 - app.pay - ERROR - payment refused\n",
        encoding="utf-8",
    )
    report = LogReport.model_validate_json(run(str(path), "--json"))
    assert (report.total, report.by_level) == (2, {"ERROR": 2})
    assert [t.template for t in report.templates] == ["payment refused"]
