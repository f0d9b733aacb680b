"""Log reduction: masking, template mining, the report, the baseline, the markdown."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ambient.briefing.logreport import LogBaseline, LogReducer, LogReport, update_baseline
from ambient.briefing.logreport_markdown import render_markdown
from ambient.briefing.logtemplates import (
    Masker,
    TemplateMiner,
    mask_line,
    template_id,
    tokens,
)
from ambient.clients.tencent.logs import LogRecord
from ambient.domain.loglevels import level_and_message
from bench.loggen import generate

DAY = datetime(2026, 11, 21, tzinfo=UTC)


def mask(message: str) -> str:
    return Masker()(message)


def reduce_logs(records: Iterable[LogRecord], *, baseline: LogBaseline | None = None) -> LogReport:
    reducer = LogReducer()
    reducer.add_many((r.time, *level_and_message(r.content)) for r in records)
    return reducer.report(baseline=baseline)


def record(when: datetime, level: str, message: str) -> LogRecord:
    return LogRecord(time=when, topic_id="test", content={"level": level, "message": message})


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        ("retry 3 of 5 after 250ms", "retry <*> of <*> after <*>"),
        ("took 3.5s, 10MB, 42%", "took <*>, <*>, <*>"),
        ("request 550e8400-e29b-41d4-a716-446655440000 done", "request <*> done"),
        ("trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7", "trace <*> span <*>"),
        ("commit da39a3ee5e6b4b0d3255bfef95601890afd80709", "commit <*>"),
        ("pointer 0x7ffee4b8 freed", "pointer <*> freed"),
        ("from 10.0.0.12:8080 to 192.168.1.1", "from <*> to <*>"),
        ("bind [fe80::1ff:fe23:4567:890a]:443 and ::1", "bind [<*>]:<*> and <*>"),
        ("GET https://api.example.com/v1/items?id=9 ok", "GET <*> ok"),
        ("open /var/log/app/current.log failed", "open <*> failed"),
        ("mail to ops.team+alerts@example.com sent", "mail to <*> sent"),
        ("user 'bob smith' can't log in", "user <*> can't log in"),
        ('key "a b c" missing', "key <*> missing"),
        ('"POST /v1/items HTTP/1.1" 201', "POST <*> <*>"),
        ("run 'SELECT * FROM t' slow, state 'OK'", "run SELECT <*> slow, state <*>"),
        ('empty "" value', "empty <*> value"),
        ("via SOCKS5 on eth0, (IPv6)", "via SOCKS5 on eth0, (IPv6)"),
        ("key decfeaa1 evicted", "key <*> evicted"),
        ("rhost=5.36.59.76.dsl.example.net  user=root", "rhost=<*> user=root"),
        ("num=20,flags=62,total=46 by (uid=0)", "num=<*>,flags=<*>,total=<*> by (uid=<*>)"),
        ("at 2026-11-21T03:04:05.123Z on node-12", "at <*> on <*>"),
        ("connect to 10.0.0.1:5432: refused (111)", "connect to <*>: refused (<*>)"),
        ("连接数据库失败，重试3次", "连接数据库失败，重试<*>次"),
        # a key=value's value ends at Chinese punctuation as at ASCII's
        ("商品ID=3，库存扣减失败", "商品ID=<*>，库存扣减失败"),
        ("订单号=9000；已被取消（原因=超时5秒）", "订单号=<*>；已被取消（原因=<*>）"),
        ("用户“张三”登录失败", "用户<*>登录失败"),
        ("Starting  service   worker", "Starting service worker"),
        (
            "connection from 1.2.3.4 () at Sun Jul  3 04:02:15 2005",
            "connection from <*> () at <*> <*> <*> <*> <*>",
        ),
        ("key fdbacbef evicted, accepted", "key <*> evicted, accepted"),
        ("peers 10.0.0.1,10.0.0.2 up", "peers <*> up"),
    ],
)
def test_mask_replaces_variable_parts_and_keeps_constants(message: str, masked: str) -> None:
    assert mask(message) == masked


def test_chinese_messages_that_differ_in_a_number_share_one_template() -> None:
    lines = ["连接数据库失败，重试3次", "连接数据库失败，重试5次", "连接Redis失败，重试3次"]
    report = reduce_logs(record(DAY, "ERROR", m) for m in lines)
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("连接 Redis 失败，重试<*>次", 1),
        ("连接数据库失败，重试<*>次", 2),
    ]


def test_word_variables_merge_but_one_word_near_duplicates_stay_apart() -> None:
    users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    lines = [f"User {u} logged in from 10.0.0.{i}" for i, u in enumerate(users)]
    lines += [f"Cache hit for key k{i}" for i in range(5)]
    lines += [f"Cache miss for key k{i}" for i in range(7)]
    report = reduce_logs(record(DAY, "INFO", m) for m in lines)
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("Cache hit for key <*>", 5),
        ("Cache miss for key <*>", 7),
        ("User <*> logged in from <*>", 8),
    ]


def test_messages_of_one_length_that_start_alike_keep_their_words() -> None:
    """Four errors of the same length, all "failed to ...": Drain made one template of them
    all wildcards, said as the top error with their summed count ("failed to <*> <*> for <*>
    <*>"): at each wildcard four words, past the three a split took back."""
    shapes = [
        "failed to connect to redis at 10.0.0.{i}:6379",
        "failed to decode response body from 10.0.1.{i}:443",
        "failed to acquire lock for order {i}",
        "failed to refresh token for client {i}",
    ]
    lines = [shape.format(i=i) for shape in shapes for i in range(40)]
    report = reduce_logs(record(DAY, "ERROR", m) for m in lines)
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("failed to acquire lock for order <*>", 40),
        ("failed to connect to redis at <*>", 40),
        ("failed to decode response body from <*>", 40),
        ("failed to refresh token for client <*>", 40),
    ]


def test_word_variables_that_vary_apart_stay_wildcards() -> None:
    """Two word variables (a user, a job) seen in every combination are values, not words of
    different messages: one template."""
    users = ["alice", "bob", "carol", "dave", "erin"]
    jobs = ["backup", "report", "sync", "index", "purge"]
    lines = [f"user {u} ran job {j} in {i} ms" for i, u in enumerate(users) for j in jobs]
    report = reduce_logs(record(DAY, "INFO", m) for m in lines * 3)
    assert [(t.template, t.count) for t in report.templates] == [
        ("user <*> ran job <*> in <*>", 75)
    ]


def test_values_that_go_together_apart_in_a_message_stay_wildcards() -> None:
    """A deployment and its own namespace (each app its own) go one-to-one, but apart in the
    message: values that go together, not a phrase of different messages. Split, the top
    error was eight templates of three lines."""
    apps = ["payments", "orders", "users", "search", "cart", "auth", "mail", "media"]
    lines = [
        f"deployment {app} in namespace {app}-prod has no available replicas"
        for app in apps
        for _ in range(3)
    ]
    report = reduce_logs(record(DAY, "ERROR", m) for m in lines)
    assert [(t.template, t.count) for t in report.templates] == [
        ("deployment <*> in namespace <*> has no available replicas", 24)
    ]


def test_an_access_log_keeps_each_failing_route_however_many() -> None:
    """Past three routes failing alike, the route was a wildcard: "GET <*> Bad Gateway" (an
    access log's line as its reader makes its message)."""
    routes = ["/api/orders/{i}", "/api/users/{i}/profile", "/health", "/api/pay", "/login"]
    lines = [f"GET {r.format(i=i)} Bad Gateway" for r in routes for i in range(5)]
    report = reduce_logs(record(DAY, "ERROR", m) for m in lines)
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("GET /api/orders/<*> Bad Gateway", 5),
        ("GET /api/pay Bad Gateway", 5),
        ("GET /api/users/<*>/profile Bad Gateway", 5),
        ("GET /health Bad Gateway", 5),
        ("GET /login Bad Gateway", 5),
    ]


def test_quoted_requests_keep_their_method_and_mask_the_rest() -> None:
    lines = [
        f'10.0.0.{i} "{method} /v2/{i:08x}/servers/{i} HTTP/1.1" status: 200 len: {i * 7}'
        for method in ("GET", "POST", "DELETE")
        for i in range(1, 5)
    ]
    lines += [f"user 'bob {i}' not found" for i in range(3)]
    report = reduce_logs(record(DAY, "INFO", m) for m in lines)
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("<*> DELETE <*> status: <*> len: <*>", 4),
        ("<*> GET <*> status: <*> len: <*>", 4),
        ("<*> POST <*> status: <*> len: <*>", 4),
        ("user <*> not found", 3),
    ]


def test_a_name_ending_in_one_digit_is_a_constant_unless_it_takes_many_values() -> None:
    lines = [f"10.0.0.{i}:80 open through proxy 10.0.1.1:5070 HTTPS" for i in range(6)]
    lines += [f"10.0.0.{i}:22 open through proxy 10.0.1.1:5070 SOCKS5" for i in range(2)]
    lines += [f"link up on {nic}" for nic in ("eth0", "eth0", "eth0", "wl0", "wl0")]
    lines += [f"task {i} failed on worker{i}" for i in range(1, 10)]
    report = reduce_logs(record(DAY, "INFO", m) for m in lines)
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("<*> open through proxy <*> HTTPS", 6),
        ("<*> open through proxy <*> SOCKS5", 2),
        ("link up on eth0", 3),
        ("link up on wl0", 2),
        ("task <*> failed on <*>", 9),
    ]


@pytest.mark.parametrize(
    ("message", "joined"),
    [
        ("stored 5.2 KB, free 93.0 B", "stored <*>, free <*>"),
        ("sent 1190 bytes (1.16 KB), lifetime <1 sec", "sent <*>, lifetime <*>"),
        ("from 10.0.0.1 (host-1.example.com) at 03:40:59", "from <*> at <*>"),
        ("from 10.0.0.2 () at 03:40:59", "from <*> at <*>"),
        ("connect refused (111)", "connect refused (<*>)"),
        ("step 3 Bob", "step <*> Bob"),
    ],
)
def test_a_value_written_in_several_words_is_one_token(message: str, joined: str) -> None:
    assert tokens(mask(message)) == joined.split()


def test_lines_that_write_a_value_with_or_without_unit_or_restatement_share_a_template() -> None:
    lines = [
        "10.0.0.1:80 close, 1190 bytes (1.16 KB) sent, 1671 bytes (1.63 KB) received, "
        "lifetime 00:02",
        "10.0.0.2:80 close, 0 bytes sent, 0 bytes received, lifetime 00:01",
        "10.0.0.3:80 close, 850 bytes sent, 10547 bytes (10.2 KB) received, lifetime 01:02",
        "10.0.0.4:80 close, 403 bytes sent, 426 bytes received, lifetime <1 sec",
        "connection from 10.0.0.5 () at 03:40:59",
        "connection from 10.0.0.6 (host-6.example.com) at 07:07:00",
        "connection from 10.0.0.7 () at 07:07:01",
    ]
    report = reduce_logs(record(DAY, "INFO", m) for m in lines)
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("<*> close, <*> sent, <*> received, lifetime <*>", 4),
        ("connection from <*> at <*>", 3),
    ]


def test_key_value_words_with_different_keys_are_constants_one_key_is_a_variable() -> None:
    lines = [f"session opened for user u{i} by (uid={i})" for i in range(10, 14)]
    lines += [f"session opened for user u{i} by LOGIN(uid={i})" for i in range(10, 12)]
    lines += [f"scan stopped mRequestCount={i}" for i in range(3)]
    lines += ["scan stopped record.mRequested=false"] * 2
    lines += [f"auth failure; tty=ssh rhost=10.0.{i}.9 user=root" for i in range(5)]
    lines += [
        f"auth failure; tty=ssh rhost=ec2-52-80-3-{i}.compute.example.cn user=root"
        for i in range(3)
    ]
    lines += ["auth failure; tty=ssh rhost=db.example.org user=root"] * 2
    report = reduce_logs(record(DAY, "INFO", m) for m in lines)
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("auth failure; tty=ssh <*> user=root", 10),
        ("scan stopped mRequestCount=<*>", 3),
        ("scan stopped record.mRequested=false", 2),
        ("session opened for user <*> by (uid=<*>)", 4),
        ("session opened for user <*> by LOGIN(uid=<*>)", 2),
    ]


def test_same_message_at_two_levels_is_two_templates() -> None:
    lines = [
        record(DAY, "WARNING", "Cache miss rate is 80%"),
        record(DAY, "ERROR", "Cache miss rate is 95%"),
    ]
    report = reduce_logs(lines)
    assert sorted((t.level, t.template, t.count) for t in report.templates) == [
        ("ERROR", "Cache miss rate is <*>", 1),
        ("WARNING", "Cache miss rate is <*>", 1),
    ]
    assert len({t.template_id for t in report.templates}) == 2


def test_level_and_message_come_from_common_field_names_or_the_text() -> None:
    assert level_and_message({"severity": "warn", "msg": "disk 91%"}) == ("WARNING", "disk 91%")
    assert level_and_message({"levelname": "FATAL", "message": "boom"}) == ("CRITICAL", "boom")
    assert level_and_message("ERROR: disk full") == ("ERROR", "disk full")
    assert level_and_message("[main] WARN c.e.Pool - low") == (
        "WARNING",
        "[main] WARN c.e.Pool - low",
    )
    assert level_and_message("just a message") == ("UNKNOWN", "just a message")
    # An HTTP status is an access log's level when none is written; other statuses are not.
    assert level_and_message({"service": "api", "status": 500}) == (
        "ERROR",
        "service=api status=500",
    )
    assert level_and_message({"service": "api", "status": "ok"}) == (
        "UNKNOWN",
        "service=api status=ok",
    )
    assert level_and_message({"job": "sync", "status": 3}) == ("UNKNOWN", "job=sync status=3")


def _truth_and_report(lines: int, seed: int, max_templates: int = 60):  # type: ignore[no-untyped-def]
    logs = generate(lines, seed=seed, bursts=3)
    reducer = LogReducer()
    groups = [reducer.add(when, level, message) for when, level, message, _ in logs.lines]
    report = reducer.report(max_templates=max_templates)
    predicted = [reducer.group_template_id(g) for g in groups]
    return logs, report, predicted


def test_generated_day_keeps_every_error_template_with_its_exact_count() -> None:
    logs, report, predicted = _truth_and_report(30_000, seed=11, max_templates=20)
    truth = [line[3] for line in logs.lines]
    true_count = Counter(truth)
    ids_per_truth: dict[int, set[str]] = defaultdict(set)
    for true, pred in zip(truth, predicted, strict=True):
        ids_per_truth[true].add(pred)
    kept = {t.template_id: t for t in report.templates}
    error_templates = [t for t in logs.templates if t.level in ("ERROR", "CRITICAL")]
    assert len(error_templates) > 20  # more errors than the bound: all must still be kept
    for template in error_templates:
        (tid,) = ids_per_truth[template.index]  # one predicted template per true one
        assert kept[tid].count == true_count[template.index]
        assert kept[tid].level == template.level
    non_errors = [t for t in report.templates if t.level not in ("ERROR", "CRITICAL")]
    assert non_errors == []  # the bound of 20 was used up by errors
    assert report.total == 30_000
    assert sum(report.counts.values()) == 30_000
    assert report.template_count == len(logs.templates)


def test_generated_day_groups_every_line_with_its_true_template() -> None:
    logs, _, predicted = _truth_and_report(20_000, seed=5)
    pairs = Counter(zip(predicted, (line[3] for line in logs.lines), strict=True))
    assert len(pairs) == len(set(predicted)) == len(logs.templates)


def test_injected_error_bursts_are_reported_as_anomalies() -> None:
    logs, report, _ = _truth_and_report(40_000, seed=3)
    bursts = {a.template_id: a for a in report.anomalies if a.kind == "burst"}
    for burst in logs.bursts:
        template = logs.templates[burst.template]
        found = [
            a
            for a in bursts.values()
            if a.level == template.level
            and a.at is not None
            and burst.start - timedelta(minutes=5) <= a.at <= burst.end
        ]
        assert len(found) == 1, (template.text, burst)
    assert len(bursts) == len(logs.bursts)  # nothing else in a uniform day looks like a burst


def test_hourly_rates_add_up_and_count_errors_and_warnings() -> None:
    lines = [record(DAY + timedelta(minutes=m), "INFO", f"tick {m}") for m in range(0, 180, 2)]
    lines += [record(DAY + timedelta(hours=1, minutes=m), "ERROR", "disk full") for m in range(6)]
    lines += [record(DAY + timedelta(hours=2, minutes=1), "WARNING", "slow 3s")]
    report = reduce_logs(lines)
    assert [(h.hour, h.total, h.errors, h.warnings) for h in report.hours] == [
        (DAY, 30, 0, 0),
        (DAY + timedelta(hours=1), 36, 6, 0),
        (DAY + timedelta(hours=2), 31, 0, 1),
    ]
    assert report.start == DAY
    assert report.by_level == {"ERROR": 6, "WARNING": 1, "INFO": 90}


def test_a_report_over_more_than_one_day_says_the_day_of_each_hour_and_time() -> None:
    """Files over two days: "02h ... 23h ... 05h" read as out of order, and "08:01–05:00"
    as backwards; an hour and a time then carry their date. One day keeps them short."""
    lines = [
        record(DAY + timedelta(hours=2), "ERROR", "disk full"),
        record(DAY + timedelta(hours=23), "INFO", "tick"),
        record(DAY + timedelta(days=1, hours=1), "ERROR", "disk full"),
        record(DAY + timedelta(days=1, hours=5), "INFO", "tick"),
    ]
    text = render_markdown(reduce_logs(lines))
    assert "11-21 02h 1/1/0 11-21 23h 1/0/0 11-22 01h 1/1/0 11-22 05h 1/0/0" in text
    assert "- ERROR 2 2026-11-21 02:00–2026-11-22 01:00: disk full" in text
    one_day = render_markdown(reduce_logs(lines[:2]))
    assert "02h 1/1/0 23h 1/0/0" in one_day and "- ERROR 1 02:00–02:00: disk full" in one_day


@pytest.mark.parametrize(
    "zone", ["Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "America/St_Johns"]
)
def test_hours_are_said_as_the_readers_hours_in_a_zone_off_the_hour(zone: str) -> None:
    """India (UTC+5:30), Nepal (+5:45), Adelaide, Newfoundland: the hours line of the report
    (markdown, e-mail, the LLM's prompt) names the local hour a line was written in. Binned by
    UTC hour, it said 25 hours, each half an hour off."""
    tz = ZoneInfo(zone)
    start, end = datetime(2026, 11, 22, tzinfo=tz), datetime(2026, 11, 23, tzinfo=tz)
    reducer = LogReducer()
    for hour in range(24):
        reducer.add(datetime(2026, 11, 22, hour, 10, tzinfo=tz), "INFO", "tick")
    reducer.add(datetime(2026, 11, 22, 0, 10, tzinfo=tz), "ERROR", "db down")
    reducer.add(datetime(2026, 11, 22, 23, 59, tzinfo=tz), "WARNING", "disk almost full")
    report = reducer.report(start=start, end=end)
    assert [h.hour.astimezone(tz).hour for h in report.hours] == list(range(24))
    markdown = render_markdown(report, tz=tz)
    hours = markdown.split("lines/errors/warnings\n")[1].splitlines()[0]
    assert hours == " ".join(
        f"{h:02d}h {1 + (h in (0, 23))}/{int(h == 0)}/{int(h == 23)}" for h in range(24)
    )


def _day(offset: int, disk_errors: int, infos: int = 100) -> list[LogRecord]:
    start = DAY + timedelta(days=offset)
    lines = [record(start + timedelta(seconds=60 * i), "INFO", f"served {i}") for i in range(infos)]
    lines += [
        record(start + timedelta(seconds=30 + 600 * i), "ERROR", f"disk full on /data/{i}/x")
        for i in range(disk_errors)
    ]
    return lines


def test_baseline_reveals_spikes_new_errors_and_the_trend() -> None:
    baseline: LogBaseline | None = None
    for offset, errors in zip(range(-5, 0), [10, 12, 9, 11, 10], strict=True):
        baseline = update_baseline(baseline, reduce_logs(_day(offset, errors)))
    assert baseline is not None
    today = [*_day(0, 60), record(DAY + timedelta(hours=5), "ERROR", "certificate expired")]
    report = reduce_logs(today, baseline=baseline)
    kinds = {(a.kind, a.template) for a in report.anomalies}
    assert ("spike", "disk full on <*>") in kinds
    assert ("new_error", "certificate expired") in kinds
    new = [t for t in report.templates if t.new]
    assert [t.template for t in new] == ["certificate expired"]
    assert report.new_templates == [t.template_id for t in new]
    assert report.trend["baseline_days"] == 5
    assert report.trend["errors"] == 61
    assert report.trend["errors_mean_7d"] == pytest.approx(10.4)
    assert report.trend["errors_change_pct"] == pytest.approx(486.5)
    assert report.trend["error_rate"] == pytest.approx(61 / 161, abs=1e-6)


def test_baseline_keeps_seven_days_and_replaces_a_day_folded_in_twice() -> None:
    baseline: LogBaseline | None = None
    for offset in range(-9, 0):
        baseline = update_baseline(baseline, reduce_logs(_day(offset, 1)))
    assert baseline is not None
    days = [date.fromordinal(d["__day__"]) for d in baseline.days]
    assert days == [(DAY + timedelta(days=d)).date() for d in range(-7, 0)]
    again = update_baseline(baseline, reduce_logs(_day(-1, 5)))
    assert [d["__day__"] for d in again.days] == [d["__day__"] for d in baseline.days]
    assert again.days[-1]["__errors__"] == 5
    assert LogBaseline.model_validate_json(again.model_dump_json()) == again


def test_empty_input_gives_an_empty_report() -> None:
    report = reduce_logs([])
    assert (report.total, report.templates, report.hours, report.anomalies) == (0, [], [], [])
    assert report.start is None and report.end is None
    assert "No log lines" in render_markdown(report)
    assert update_baseline(None, report).days[0]["__total__"] == 0


def test_markdown_lists_every_error_template_and_bounds_the_rest() -> None:
    errors = ["disk full on /data", "certificate expired", "payment declined by bank"]
    lines = [record(DAY, "ERROR", m) for m in errors]
    lines += [record(DAY, "INFO", f"event{c} done") for c in "ABCDEFGHIJ" for _ in range(2)]
    report = reduce_logs(lines)
    text = render_markdown(report, max_rows=4)
    assert report.template_count == 13
    for message in errors:
        assert f"- ERROR 1 00:00–00:00: {message}" in text
    info_rows = [row for row in text.splitlines() if row.startswith("- INFO")]
    assert len(info_rows) == 4
    assert "(6 rarer templates not listed)" in text


def test_template_id_is_the_same_on_every_run_and_depends_on_level() -> None:
    # A fixed value: baselines stored yesterday must match ids computed today.
    assert template_id("ERROR", "disk full") == "t047d5284bc"
    assert template_id("WARNING", "disk full") != "t047d5284bc"


def test_past_the_cluster_bound_new_shapes_group_by_their_first_words_and_counts_hold() -> None:
    """Messages that share no template (search terms, chat) made each new one compare with
    every cluster: a day of them never finished. Past the bound, a new shape is grouped by
    its length and first two words; lines of a shape seen before still count under it."""
    reducer = LogReducer(TemplateMiner(max_clusters=3))
    reducer.add_many((DAY, "ERROR", "payment gateway refused the card") for _ in range(3))
    reducer.add_many((DAY, "WARNING", f"login failed for {user}") for user in ("alice", "bob"))
    searches = ["red shoes size", "blue coat for winter", "green hat", "tea pot gift"]
    reducer.add_many((DAY, "INFO", f"user searched {words}") for words in searches)
    reducer.add_many((DAY, "ERROR", "payment gateway refused the card") for _ in range(2))
    # A new value of a template Drain made before the bound joins it, whenever it comes.
    reducer.add_many([(DAY, "WARNING", "login failed for carol")])
    report = reducer.report()
    assert sorted((t.template, t.count) for t in report.templates) == [
        ("login failed for <*>", 3),
        ("payment gateway refused the card", 5),
        ("user searched <*> <*>", 1),
        ("user searched <*> <*> <*>", 1),
        ("user searched <*> <*> <*> <*>", 1),
        ("user searched red shoes size", 1),  # Drain's third cluster, before the bound
    ]


def test_past_the_shape_bound_lines_still_count_under_their_cluster() -> None:
    miner = TemplateMiner(max_shapes=2)
    reducer = LogReducer(miner)
    users = ["alice", "bob", "carol", "dave", "erin", "frank"]
    groups = reducer.add_many(
        (DAY, "INFO", f"User {u} logged in from 10.0.0.{i}") for i, u in enumerate(users)
    )
    report = reducer.report()
    assert [(t.template, t.count) for t in report.templates] == [("User <*> logged in from <*>", 6)]
    assert {reducer.group_template_id(g) for g in groups} == {report.templates[0].template_id}


def test_a_stack_trace_joins_the_template_of_its_first_line() -> None:
    trace = "Unhandled error in worker 3\nTraceback (most recent call last):\n  File x.py line 9"
    lines = [record(DAY, "ERROR", trace), record(DAY, "ERROR", "Unhandled error in worker 7")]
    report = reduce_logs(lines)
    assert [(t.template, t.count) for t in report.templates] == [
        ("Unhandled error in worker <*>", 2)
    ]
    assert report.templates[0].example.startswith("Unhandled error in worker 3\nTraceback")


def test_a_long_lines_template_does_not_depend_on_the_width_of_its_values() -> None:
    """A message past the bound was cut at a fixed number of characters before masking: an
    order id one digit longer moved the cut, and one error of 5,000-character lines (a
    payload, a flattened trace) was two templates, the briefing's "most frequent error, 40
    times" one of 50."""
    reducer = LogReducer()
    for i in range(50):
        reducer.add(DAY, "ERROR", f"order {i} failed, payload " + "ab " * 2000)
        reducer.add(DAY, "ERROR", f"订单 {i} 支付失败：" + "x" * 5000)
    report = reducer.report()
    assert sorted(t.count for t in report.templates) == [50, 50]


def test_lines_masked_elsewhere_reduce_exactly_like_lines_masked_here() -> None:
    logs = generate(5_000, seed=9, bursts=1)
    lines = [(when, level, message) for when, level, message, _ in logs.lines]
    here = LogReducer()
    here_groups = here.add_many(lines)
    masker = Masker()
    elsewhere = LogReducer()
    elsewhere_groups = elsewhere.add_many(lines, [mask_line(m, masker) for _, _, m in lines])
    assert [here.group_template_id(g) for g in here_groups] == [
        elsewhere.group_template_id(g) for g in elsewhere_groups
    ]
    assert here.report() == elsewhere.report()


def test_a_briefings_anomalies_say_a_burst_in_its_time_zone() -> None:
    """A Shanghai briefing's anomalies read "burst [ERROR] db timeout: 60 lines from 01:00 to
    01:05 UTC" (spoken offline, and what the model read) for a burst at 09:00 there."""
    from ambient.briefing.logs import fill_from_report
    from ambient.briefing.models import BriefingInputs

    ticks = [record(DAY + timedelta(minutes=30 * i), "INFO", "tick") for i in range(48)]
    burst = [
        record(DAY + timedelta(hours=1, seconds=5 * i), "ERROR", "db timeout") for i in range(60)
    ]
    inputs = BriefingInputs(date="2026-11-21", language="en", timezone="Asia/Shanghai")
    fill_from_report(inputs, reduce_logs(ticks + burst))
    assert inputs.anomalies == [
        "burst [ERROR] db timeout: 09:00–09:05, 60 lines, peak 60 in 5 min (usual 0.2 per 5 min)"
    ]


def test_a_chinese_briefings_anomalies_are_said_in_chinese() -> None:
    """A Chinese briefing spoke "发现 3 个异常，例如burst [ERROR] db timeout: 09:00–09:05, 60 lines,
    peak 60 in 5 min ...": each anomaly's kind, level and numbers in English (the log's own
    template stays as it was logged)."""
    from ambient.briefing.logs import fill_from_report
    from ambient.briefing.models import BriefingInputs

    baseline: LogBaseline | None = None
    for offset, errors in zip(range(-5, 0), [10, 12, 9, 11, 10], strict=True):
        baseline = update_baseline(baseline, reduce_logs(_day(offset, errors)))
    burst = [
        record(DAY + timedelta(hours=1, seconds=5 * i), "ERROR", "db timeout") for i in range(60)
    ]
    today = [*_day(0, 60), record(DAY + timedelta(hours=5), "ERROR", "certificate expired")]
    inputs = BriefingInputs(date="2026-11-21", language="zh", timezone="Asia/Shanghai")
    fill_from_report(inputs, reduce_logs(today + burst, baseline=baseline))
    said = {a.split("：")[0]: a for a in inputs.anomalies}
    assert said["短时突增（错误）db timeout"] == (
        "短时突增（错误）db timeout：09:00–09:05，60 行，5 分钟最多 60 行（平时 0.5 行）"
    ), inputs.anomalies
    assert said["新出现的错误（错误）certificate expired"] == (
        "新出现的错误（错误）certificate expired：1 行，前 5 天没有出现"
    ), inputs.anomalies
    assert said["比平时多（错误）disk full on <*>"] == (
        "比平时多（错误）disk full on <*>：60 行，前 5 天平均每天 10 行"
    ), inputs.anomalies


def test_an_english_briefings_anomalies_name_their_kind_in_words() -> None:
    """An English briefing listed and spoke "new_error [ERROR] certificate expired: 1 line;
    ...": the anomaly's kind as the code names it, where a Chinese one says "新出现的错误"."""
    from ambient.briefing.logs import fill_from_report
    from ambient.briefing.models import BriefingInputs

    baseline: LogBaseline | None = None
    for offset in range(-5, 0):
        baseline = update_baseline(baseline, reduce_logs(_day(offset, 10)))
    today = [*_day(0, 10), record(DAY + timedelta(hours=5), "ERROR", "certificate expired")]
    inputs = BriefingInputs(date="2026-11-21", language="en", timezone="Asia/Shanghai")
    fill_from_report(inputs, reduce_logs(today, baseline=baseline))
    assert inputs.anomalies == [
        "new error [ERROR] certificate expired: 1 line; not seen in the previous 5 days"
    ]


def test_a_secret_in_a_log_line_is_in_no_template_example_or_keyword() -> None:
    # The report is spoken, pushed and opened by share link: a password or token in a line,
    # the same all day (so no wildcard takes its place), must not be in it.
    secrets = ["hunter", "SuperSecretToken", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.abc"]
    secrets += ["abcdefghijklmnop", "opensesame", "letmein", "zhimakaimen", "693a91f6"]
    messages = [
        "login to db failed password=hunter user=bob",
        f"upstream call failed Authorization: Bearer {secrets[2]}",
        "calling https://api.example.com/v1/send?access_token=SuperSecretToken failed",
        "key rotated secret_key=abcdefghijklmnop",
        "db_password: opensesame refused",
        '{"event": "login", "password":"letmein"}',
        "登录失败，密码：zhimakaimen 用户 bob",
        "robot https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-0000 answered 93000",
    ]
    report = reduce_logs(
        record(DAY + timedelta(minutes=i), "ERROR", m) for i in range(20) for m in messages
    )
    said = report.model_dump_json() + render_markdown(report)
    assert [s for s in secrets if s in said] == []
    templates = {t.template for t in report.templates}
    assert "login to db failed password=<*> user=bob" in templates
    assert "upstream call failed Authorization: Bearer <*>" in templates
    assert "db_password: <*> refused" in templates
    assert "calling <*> failed" in templates
    assert "登录失败，密码：<*>用户 bob" in templates
    examples = {t.example for t in report.templates}
    assert "login to db failed password=<*> user=bob" in examples


@pytest.mark.parametrize(
    "message",
    [
        "db login failed: password = opensesame",  # three words: no word masked it
        'auth failed params={"user"=>"bob", "password"=>"opensesame"}',  # Ruby's hash
        # JSON in a string:
        'bad request body="{\\"user\\":\\"bob\\",\\"password\\":\\"opensesame\\"}"',
    ],
)
def test_a_secret_written_spaced_in_a_ruby_hash_or_as_escaped_json_is_hidden(
    message: str,
) -> None:
    # Each showed the password in the template, the example or both.
    report = reduce_logs(record(DAY + timedelta(minutes=i), "ERROR", message) for i in range(3))
    said = report.model_dump_json() + render_markdown(report)
    assert "opensesame" not in said
    assert [t.template for t in report.templates] != []


@pytest.mark.parametrize(
    ("days", "change", "english", "chinese"),
    [
        (1, 0.3, "Errors were level with the previous day", "错误数与前 1 天持平"),
        (7, -0.4, "Errors were level with the previous 7 days' average", "错误数与前 7 天平均持平"),
        (1, 50.0, "Errors rose 50% against the previous day", "错误数比前 1 天增加 50%"),
        (
            7,
            -25.0,
            "Errors fell 25% against the previous 7 days' average",
            "错误数比前 7 天平均减少 25%",
        ),
    ],
)
def test_the_error_trend_is_said_right_for_one_day_and_for_no_change(
    days: int, change: float, english: str, chinese: str
) -> None:
    """It was said "errors +0% against the previous 1 days", "-0%", "错误数比前 1 天平均增加 0%";
    the English trend, a spoken sentence, began in lower case with a sign ("errors +50% ...")."""
    from ambient.briefing.logs import fill_from_report
    from ambient.briefing.models import BriefingInputs

    report = LogReport(total=10, trend={"baseline_days": days, "errors_change_pct": change})
    for language, said in (("en", english), ("zh", chinese)):
        inputs = BriefingInputs(date="2026-11-21", language=language)  # type: ignore[arg-type]
        fill_from_report(inputs, report)
        assert inputs.trend == said


def test_a_new_error_seen_once_after_one_baseline_day_is_said_in_the_singular() -> None:
    """The English briefing spoke "new_error [ERROR] certificate expired: 1 lines; not seen
    in the previous 1 days"."""
    baseline = update_baseline(None, reduce_logs(_day(-1, 3)))
    today = [*_day(0, 3), record(DAY + timedelta(hours=5), "ERROR", "certificate expired")]
    report = reduce_logs(today, baseline=baseline)
    (new,) = [a for a in report.anomalies if a.kind == "new_error"]
    assert new.detail == "1 line; not seen in the previous day"


def test_a_urls_user_and_password_are_in_no_template_example() -> None:
    # The example line kept "postgres://app:S3cretPw@db.internal:5432/orders": hide_secrets
    # hid URL queries only. It now hides what log_redaction hides in a URL (user info too).
    message = "connection to postgres://app:S3cretPw@db.internal:5432/orders failed"
    report = reduce_logs(record(DAY + timedelta(minutes=i), "ERROR", message) for i in range(5))
    said = report.model_dump_json() + render_markdown(report)
    assert "S3cretPw" not in said and "app:" not in said
    assert "connection to postgres://db.internal:5432/orders failed" in {
        t.example for t in report.templates
    }


def test_two_days_of_a_zone_at_utc_0_keep_their_own_baseline_days_over_springs_clock_change() -> (
    None
):
    """A London briefing's day was keyed by the UTC date its logs start: 29 March 2027 starts
    at 23:00 UTC on the 28th (summer time), so its day replaced the 28th's in the baseline.
    Keyed by the local date, each day stays."""
    from activities.briefing import log_day
    from ambient.briefing.config import BriefingConfig, plan_for
    from ambient.briefing.models import PrepareRequest

    config = BriefingConfig(timezone="Europe/London")
    baseline: LogBaseline | None = None
    for briefed in (date(2027, 3, 28), date(2027, 3, 29), date(2027, 3, 30)):
        plan = plan_for(briefed, config)
        request = PrepareRequest(user="ann", task_id="daily-briefing/ann", config=config, day=plan)
        reducer = LogReducer()
        reducer.add(plan.logs_from + timedelta(hours=3), "ERROR", "disk full")
        report = reducer.report(start=plan.logs_from, end=plan.logs_to)
        baseline = update_baseline(baseline, report, log_day(request))
    assert baseline is not None
    assert [date.fromordinal(d["__day__"]) for d in baseline.days] == [
        date(2027, 3, 27),
        date(2027, 3, 28),
        date(2027, 3, 29),
    ]
