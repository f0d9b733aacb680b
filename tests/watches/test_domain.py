import unicodedata
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ambient.clients.extract import main_text
from ambient.settings import Settings
from ambient.watches import page_changes
from ambient.watches.configs import TaskKind, WebMonitorConfig, task_kind
from ambient.watches.notification_spec import notification_targets
from ambient.watches.page_changes import MAX_SHOWN_LINE, diff_pages, normalise
from ambient.watches.reminders import ReminderConfig, ReminderRun
from ambient.watches.threshold_config import (
    DEFAULT_CATALOGUE,
    ThresholdWatchConfig,
    UnknownMetricError,
    resolve_metric,
)
from ambient.watches.threshold_rule import ThresholdState, alert_life, evaluate, told_already

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _run(
    config: ThresholdWatchConfig, values: list[float], step: timedelta = timedelta(minutes=1)
) -> list[tuple[str, float]]:
    state, fired = ThresholdState(), []
    for i, value in enumerate(values):
        state, transition = evaluate(config, state, value, T0 + i * step)
        if transition:
            fired.append((transition.kind.value, value))
    return fired


def _watch(**fields: object) -> ThresholdWatchConfig:
    """A watch above 100, unless ``fields`` give their own conditions."""
    rule: dict[str, object] = {} if "conditions" in fields else {"threshold": 100}
    return ThresholdWatchConfig.model_validate({"metric": "m", **rule, **fields})


def test_a_task_id_names_its_kind_only_for_the_user_it_belongs_to() -> None:
    assert task_kind("ann", "daily-briefing/ann") is TaskKind.DAILY_BRIEFING
    assert task_kind("ann", "web-monitor/ann/prices") is TaskKind.WEB_MONITOR
    assert task_kind("ann", "threshold-watch/ann/cpu") is TaskKind.THRESHOLD_WATCH
    assert task_kind("ann", "reminder/ann/standup") is TaskKind.SCHEDULE  # a news digest's too
    for other in ("daily-briefing/bob", "web-monitor/bob/prices", "web-monitor/anna/x"):
        assert task_kind("ann", other) is None
    assert task_kind("ann", "daily-briefing/ann/x") is None
    assert task_kind("ann", "web-monitor/ann") is None


def test_original_configs_are_accepted_as_they_are() -> None:
    web = WebMonitorConfig.model_validate(
        {
            "urls": ["https://techcrunch.com", "https://news.ycombinator.com"],
            "keywords": ["artificial intelligence", "AI", "machine learning"],
            "check_interval_minutes": 30,
            "notification": {"method": "send_sms", "phone_number": "+1234567890"},
        }
    )
    assert web.interval == timedelta(minutes=30)
    watch = ThresholdWatchConfig.model_validate(
        {
            "metric": "bitcoin_price",
            "threshold": 50000,
            "check_interval_minutes": 15,
            "notification": {"method": "send_sms", "phone_number": "+1234567890"},
        }
    )
    assert [(c.op, c.value) for c in watch.conditions] == [("above", 50000)]
    targets = notification_targets(watch.notification, [])
    assert [(t.type, t.target) for t in targets] == [("inbox", ""), ("sms", "+1234567890")]


def test_interval_under_a_minute_and_bad_regex_are_rejected() -> None:
    with pytest.raises(ValidationError, match="check_interval_minutes"):
        WebMonitorConfig.model_validate(
            {"urls": ["https://a.example"], "check_interval_minutes": 0.5}
        )
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        WebMonitorConfig.model_validate(
            {"urls": ["https://a.example"], "keywords": ["re:(unclosed"]}
        )
    with pytest.raises(ValidationError, match="at most 50"):
        WebMonitorConfig.model_validate({"urls": [f"https://a.example/{i}" for i in range(51)]})
    with pytest.raises(ValidationError, match="unknown method"):
        WebMonitorConfig.model_validate(
            {"urls": ["https://a.example"], "notification": {"method": "pigeon"}}
        )


def test_breach_fires_once_and_recovery_once() -> None:
    assert _run(_watch(), [90, 120, 130, 140, 80, 70, 150]) == [
        ("breach", 120),
        ("recovery", 80),
        ("breach", 150),
    ]


def test_a_breach_or_recovery_its_life_told_last_is_told_already() -> None:
    # A run reset to its first workflow task starts its rule again: its first breach of a
    # metric still over the line is the last one the life told.
    assert told_already("watch.breach", "watch.breach")
    assert told_already("watch.recovery", "watch.recovery")
    assert not told_already("watch.breach", "watch.recovery")
    assert not told_already("watch.breach", "watch.breach_unwatched")  # a new source's
    assert not told_already("watch.breach", None)
    assert not told_already("watch.recovery", None)  # its breach's event may be pruned
    assert not told_already("watch.hit", "watch.hit")
    key = "threshold-watch/alice/cpu/0195-run/12/breach"
    assert alert_life(key) == "threshold-watch/alice/cpu/0195-run/"
    # A check with its run (since a reset run counts its checks again).
    assert alert_life("threshold-watch/alice/cpu/0195-run/12@0196-b2/breach") == (
        "threshold-watch/alice/cpu/0195-run/"
    )
    assert alert_life("threshold-watch/alice/cpu/0195-run/12/remediate/x") is None
    assert alert_life("briefing/alice/2026-01-02") is None


def test_for_n_consecutive_checks() -> None:
    assert _run(_watch(for_checks=3), [120, 130, 90, 120, 125, 130, 140]) == [("breach", 130)]


def test_a_value_on_the_line_is_not_past_it() -> None:
    """above 100 (and below 10) are strict: 100 does not breach, and a breach recovers at 100;
    with a margin of 5 it recovers at 95, not 95.5."""
    assert _run(_watch(), [100, 100.5, 100]) == [("breach", 100.5), ("recovery", 100)]
    below = {"conditions": [{"op": "below", "value": 10}]}
    assert _run(_watch(**below), [10, 9.5, 10]) == [("breach", 9.5), ("recovery", 10)]
    assert _run(_watch(hysteresis=5), [101, 95.5, 95]) == [("breach", 101), ("recovery", 95)]


def test_hysteresis_delays_recovery_until_past_the_margin() -> None:
    assert _run(_watch(hysteresis=10), [120, 95, 92, 89]) == [("breach", 120), ("recovery", 89)]


def test_cooldown_suppresses_a_second_breach_and_its_recovery() -> None:
    fired = _run(_watch(cooldown_minutes=10), [120, 80, 130, 70, 90, 90, 90, 90, 90, 90, 90, 200])
    assert fired == [("breach", 120), ("recovery", 80), ("breach", 200)]


def test_all_and_any_combinations() -> None:
    both = {"conditions": [{"op": "above", "value": 10}, {"op": "below", "value": 20}]}
    assert _run(_watch(**both, combine="all"), [5, 15, 25]) == [("breach", 15), ("recovery", 25)]
    band = {"conditions": [{"op": "above", "value": 20}, {"op": "below", "value": 10}]}
    assert _run(_watch(**band, combine="any"), [15, 25, 15, 5]) == [
        ("breach", 25),
        ("recovery", 15),
        ("breach", 5),
    ]


def test_last_hundred_values_are_kept() -> None:
    state = ThresholdState()
    config = _watch()
    for i in range(150):
        state, _ = evaluate(config, state, float(i), T0 + timedelta(minutes=i))
    assert len(state.values) == 100 and state.values[0][1] == 50.0


def test_unknown_named_metric_lists_the_known_ones() -> None:
    with pytest.raises(UnknownMetricError, match="known metrics: bitcoin_price, ethereum_price"):
        resolve_metric("gold_price", DEFAULT_CATALOGUE)


def test_keyword_hits_count_only_on_new_text() -> None:
    old = normalise("AI is old news\nweather: sunny", [])
    new = normalise("AI is old news\nweather: rain\nNew machine learning chip", [])
    diff = diff_pages(old, new, ["AI", "machine learning", "re:chip(s)?"])
    assert diff.changed
    assert diff.added == ["weather: rain", "New machine learning chip"]
    assert diff.hits == {
        "machine learning": ["New machine learning chip"],
        "re:chip(s)?": ["New machine learning chip"],
    }
    assert "+weather: rain" in diff.excerpt


def test_a_keyword_in_many_new_lines_says_how_many_more_it_found() -> None:
    new = [f"AI story {n}" for n in range(8)]
    diff = diff_pages([], new, ["AI"])
    assert diff.hits == {"AI": [*new[:5], "… 3 more lines"]}


def test_a_huge_line_is_matched_whole_and_shown_clipped() -> None:
    long_line = "Status: " + "all systems nominal " * 5000 + "outage in Frankfurt"
    diff = diff_pages(["Status: fine"], [long_line], ["outage"])
    assert diff.added == [long_line]  # compared and matched on the whole line
    (hit,) = diff.hits["outage"]
    assert len(hit) == MAX_SHOWN_LINE and hit.startswith("Status: all systems") and hit[-1] == "…"
    assert diff.excerpt.split("\n") == [
        "-Status: fine",
        "+" + long_line[: MAX_SHOWN_LINE - 2] + "…",
    ]


def test_a_new_line_written_like_one_already_on_the_page_is_new_text_for_keywords() -> None:
    """A status page's new incident repeats its template line ("Status: Investigating ...")
    of one already there: the diff showed it added, the keyword "investigating" found nothing
    (a line already on the page was no new text), and no message went out."""
    status = "Status: Investigating - We are currently investigating this issue."
    old = ["Mar 8: Slow API", status, "Resolved"]
    new = ["Mar 9: Login failures", status, "Mar 8: Slow API", status, "Resolved"]
    diff = diff_pages(old, new, ["investigating"])
    assert diff.added == ["Mar 9: Login failures", status]
    assert diff.hits == {"investigating": [status]}
    assert f"+{status}" in diff.excerpt.split("\n")
    # Past the size where the excerpt is the lines each side lacks, the same.
    page = [f"row {n}" for n in range(2100)]
    big = diff_pages([*page, status], [*page[1:], status, status, "row new"], ["investigating"])
    assert big.hits == {"investigating": [status]}
    assert big.excerpt.split("\n")[:2] == [f"+{status}", "+row new"]


def test_a_diff_shows_lines_that_begin_like_its_headers() -> None:
    # A signature "-- the editors" removed is "--- the editors" in the diff, not a header.
    diff = diff_pages(["-- the editors", "++ sale ++", "@@ home"], ["news"], [])
    assert diff.excerpt.split("\n") == ["--- the editors", "-++ sale ++", "-@@ home", "+news"]


def test_plain_short_keywords_match_whole_words_only() -> None:
    diff = diff_pages([], ["She said hello", "AI wins"], ["AI"])
    assert diff.hits == {"AI": ["AI wins"]}


def test_chinese_keywords_match_inside_a_sentence_and_latin_words_beside_chinese() -> None:
    # Chinese is written without spaces: a keyword is inside a run of characters, and an
    # English word stands right beside Chinese ones.
    lines = ["下午发生数据库故障，已恢复", "我们使用AI技术", "She said hello"]
    diff = diff_pages([], lines, ["数据库故障", "AI", "故障"])
    assert diff.hits == {
        "数据库故障": ["下午发生数据库故障，已恢复"],
        "AI": ["我们使用AI技术"],
        "故障": ["下午发生数据库故障，已恢复"],
    }


def test_a_keyword_pasted_with_runs_of_spaces_matches_the_page_read_with_single_ones() -> None:
    # A page's whitespace is collapsed before matching; a keyword's was not, so "database
    # outage" pasted with two spaces, or a tab, never matched anything.
    lines = normalise("Database   outage in zone 3\n数据库  故障 已恢复", [])
    diff = diff_pages([], lines, ["database  outage", "数据库\t故障"])
    assert diff.hits == {
        "database  outage": ["Database outage in zone 3"],
        "数据库\t故障": ["数据库 故障 已恢复"],
    }


def test_keywords_match_letters_and_digits_of_either_width() -> None:
    # Chinese text often writes Latin letters and digits full-width (ＡＩ, ５Ｇ); a keyword is
    # typed in either width. The line is shown as the page wrote it.
    lines = ["发布ＡＩ大模型", "５Ｇ基站故障", "ｓａｉｄ nothing", "使用AI技术"]
    diff = diff_pages([], lines, ["AI", "5G", "ＡＩ"])
    assert diff.hits == {
        "AI": ["发布ＡＩ大模型", "使用AI技术"],
        "5G": ["５Ｇ基站故障"],
        "ＡＩ": ["发布ＡＩ大模型", "使用AI技术"],
    }


def test_a_soft_hyphen_or_zero_width_space_inside_a_word_does_not_hide_it() -> None:
    """&shy; (CMS hyphenation) and &#8203; (editors, anti-copy) are not shown: the reader sees
    "Database outage" / "数据库故障", a keyword did not. A regular expression reads the line
    so too; the line is shown as the page wrote it."""
    for html, keyword in (
        ("<html><body><p>Data&shy;base outage</p></body></html>", "database outage"),
        ("<html><body><p>下午发生数据&#8203;库故障</p></body></html>", "数据库故障"),
        ("<html><body><p>Pay&#8203;ments\u2060 down</p></body></html>", r"re:payments\s+down"),
        ("<html><body><p>\ufeffAPI\u200d错误</p></body></html>", "api错误"),
    ):
        lines = normalise(main_text(html), [])
        assert diff_pages(["before"], lines, [keyword]).hits == {keyword: lines}, (lines, keyword)
    # Every format character (Unicode's Cf) is one a keyword passes over.
    unshown = {chr(c) for c in range(0x110000) if page_changes.UNSHOWN.fullmatch(chr(c))}
    assert unshown == {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"}


def test_ignore_patterns_hide_noise_and_first_sight_is_a_baseline() -> None:
    old = normalise("Price 10\nUpdated 08:00", [r"Updated \d\d:\d\d"])
    new = normalise("Price 10\nUpdated 09:00", [r"Updated \d\d:\d\d"])
    assert not diff_pages(old, new, []).changed
    assert diff_pages(None, new, ["Price"]).hits == {}


def test_a_watchs_ignore_patterns_are_compiled_once_and_applied_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Compiled at every check (a watch's hot path); each pattern reads what the ones before it
    # left, whitespace collapsed: "^bar$" hides what "foo " leaves of "foo bar".
    compiled: list[str] = []
    compile_once = page_changes.compile_user_regex
    monkeypatch.setattr(
        page_changes,
        "compile_user_regex",
        lambda pattern: compiled.append(pattern) or compile_once(pattern),
    )
    patterns = [f"foo|{uuid.uuid4().hex}", r"^bar$", "nothing here"]
    for _ in range(3):
        assert normalise("foo bar\n  baz  qux\n\nfoo", patterns) == ["baz qux"]
    assert len(compiled) <= len(patterns)


def test_an_ignore_pattern_anchored_to_a_line_hides_that_line() -> None:
    # "^...$" matched only the start and end of the whole text: the line stayed, so the
    # time in it was a change at every check.
    patterns = [r"^Last updated: .*$", r"^\d+ readers$"]
    old = normalise("Breaking news\nLast updated: 08:00\n12 readers\nWeather fine", patterns)
    new = normalise("Breaking news\nLast updated: 09:00\n15 readers\nWeather fine", patterns)
    assert old == new == ["Breaking news", "Weather fine"]


def test_an_ignore_pattern_hides_part_of_a_line_never_past_its_end() -> None:
    """Patterns ran over the page's lines joined with line breaks: "Generated at [^|]+" took
    every line after its own away (a change below it never told), and "build \\d+\\s*" joined
    two lines into one."""
    page = "Status: fine\nGenerated at 09:00 by node-7\nDatabase outage\nv2 build 41\nnext line"
    patterns = [r"Generated at [^|]+", r"build \d+\s*"]
    assert normalise(page, patterns) == ["Status: fine", "Database outage", "v2", "next line"]
    # A pattern that names a line break matches nothing: no line holds one.
    assert normalise("a\nb", [r"a\nb", r"a[\s\S]b", r"(?s)a.b"]) == ["a", "b"]


def test_ignore_patterns_read_lines_as_the_diff_shows_them() -> None:
    # The patterns ran on the raw text: a JSON answer's line and a CRLF line ("\r" before
    # "$") stayed, though the user wrote the pattern from the stripped line the diff showed.
    json_page = '{\n "price": 10,\n "updated_at": "09:00"\n}'
    json_text = main_text(json_page, media_type="application/json")
    assert normalise(json_text, [r"^updated_at: .*$"]) == ["price: 10"]
    plain_page = "status: fine\r\nupdated 09:00\r\n"
    plain_text = main_text(plain_page, media_type="text/plain")
    assert normalise(plain_text, [r"^updated \d\d:\d\d$"]) == ["status: fine"]


WEB = {"urls": ["https://a.example"]}


@pytest.mark.parametrize(
    ("model", "config", "field"),
    [
        (WebMonitorConfig, {**WEB, "selectors": {"https://a.example": "<<<>>>"}}, "selectors"),
        (WebMonitorConfig, {"urls": ["file:///etc/passwd"]}, "urls.0"),
        (WebMonitorConfig, {"urls": ["gopher://a.example/"]}, "urls.0"),
        (WebMonitorConfig, {"urls": ["javascript:alert(1)"]}, "urls.0"),
        (WebMonitorConfig, {"urls": ["http://"]}, "urls.0"),
        # The URL standard would read these as host "path" / "x": no host was written.
        (WebMonitorConfig, {"urls": ["http:///path"]}, "urls.0"),
        (WebMonitorConfig, {"urls": ["https:x"]}, "urls.0"),
        (
            ThresholdWatchConfig,
            {"source": {"type": "http_json", "url": "http:///metrics", "json_path": "$.v"}},
            "source.http_json.url",
        ),
        (WebMonitorConfig, {**WEB, "check_interval_minutes": True}, "check_interval_minutes"),
        (WebMonitorConfig, {**WEB, "check_interval_minutes": "5"}, "check_interval_minutes"),
        (WebMonitorConfig, {**WEB, "failure_threshold": 2.5}, "failure_threshold"),
        (WebMonitorConfig, {**WEB, "keywords": ["re:(a)\\1"]}, "keywords.0"),
        (WebMonitorConfig, {**WEB, "ignore_patterns": ["(?<=x)y"]}, "ignore_patterns.0"),
        (WebMonitorConfig, {**WEB, "keywords": ["k"] * 101}, "keywords"),
        (WebMonitorConfig, {**WEB, "targets": [{"channel": "inbox"}] * 10_000}, "targets"),
        (
            ThresholdWatchConfig,
            {"source": {"type": "http_json", "url": "https://a.example", "json_path": "$[[[?"}},
            "source.http_json.json_path",
        ),
        (
            ThresholdWatchConfig,
            {
                "source": {
                    "type": "tencent_monitor",
                    "namespace": "N",
                    "metric": "C",
                    "period": -1,
                },
                "threshold": 1,
            },
            "source.tencent_monitor.period",
        ),
        (ThresholdWatchConfig, {"metric": "m", "threshold": float("nan")}, "threshold"),
    ],
)
def test_bad_config_values_are_refused_naming_the_field(
    model: type[WebMonitorConfig | ThresholdWatchConfig], config: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(config)
    locations = [".".join(str(p) for p in error["loc"]) for error in caught.value.errors()]
    assert any(loc.startswith(field) for loc in locations), locations


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("99 99 99 99 99", "not a valid cron expression"),
        ("a b c d e", "not a valid cron expression"),
        ("0 0 31 2 *", "not a valid cron expression"),
        ("* * * * * *", "not a five-field cron expression"),
        # Temporal's schedules refuse these (a raw RPCError: "DayOfMonth is not in range") or,
        # for '#', read '1#2' (the second Monday) as every Monday.
        ("0 8 L * *", "'L' is not supported"),
        ("0 8 1W * *", "'1W' is not supported"),
        ("0 8 ? * *", "'?' is not supported"),
        ("0 8 * * 1#2", "'1#2' is not supported"),
        ("0 8 * * mon#2", "'mon#2' is not supported"),
        # A range that wraps around passed croniter; the schedule's create was a raw RPCError
        # ("DayOfWeek End is before Start").
        ("0 9 * * sat-sun", "'sat-sun' runs backwards"),
        ("0 9 * * fri-mon", "'fri-mon' runs backwards"),
        ("0 22-2 * * *", "'22-2' runs backwards"),
        ("0 9 * nov-feb *", "'nov-feb' runs backwards"),
    ],
)
def test_bad_cron_is_refused_naming_the_field(cron: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ReminderConfig.model_validate({"type": "cron", "cron": cron, "message": "hi"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("cron",) and reason in error["msg"]
    ok = ReminderConfig.model_validate({"type": "cron", "cron": "0 9  * * 1-5", "message": "hi"})
    assert ok.cron == "0 9 * * 1-5"
    for fine in ("*/15 8-18 1,15 jan-jun mon-fri", "0 8 * * 7", "0 8 1-31/2 * SUN", "0 8 * * 6-7"):
        assert ReminderConfig.model_validate({"cron": fine, "message": "hi"}).cron == fine
    # A schedule stored with one still reads as it runs.
    stored = {"type": "cron", "cron": "0 8 * * 1#2", "message": "hi"}
    assert ReminderRun.model_validate({"user": "u", "task": "t", "config": stored}).config.cron


def test_catastrophic_keyword_regex_completes_on_a_long_line() -> None:
    # (a+)+$ backtracks exponentially in Python's engine; RE2 answers in linear time.
    config = WebMonitorConfig.model_validate({**WEB, "keywords": ["re:(a+)+$"]})
    line = "a" * 50_000 + "!"
    diff = diff_pages(["old"], ["old", line, "xaaa"], config.keywords)
    assert diff.hits == {"re:(a+)+$": ["xaaa"]}
    assert normalise(line + "\nkeep", ["(a+)+!"]) == ["keep"]


def test_a_reminder_given_a_cron_and_no_type_runs_on_that_cron() -> None:
    from ambient.watches.inputs import parse_config

    parsed = parse_config("schedule", {"message": "站会", "cron": "30 9 * * 1-5"})
    assert isinstance(parsed, ReminderConfig)
    assert parsed.type == "cron" and parsed.cron == "30 9 * * 1-5"
    weekly = parse_config("schedule", {"message": "周报", "days": ["fri"], "hour": 16})
    assert isinstance(weekly, ReminderConfig) and weekly.type == "weekly"
    digest = parse_config("schedule", {"news_urls": ["https://example.com/news"]})
    assert isinstance(digest, ReminderConfig) and digest.action == "news_digest"
    # What was stored reads back the same (defaults of other types are not contradictions).
    assert ReminderConfig.model_validate(parsed.model_dump(mode="json")) == parsed


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"type": "daily", "message": "x", "cron": "30 9 * * 1-5"}, "cron"),
        ({"type": "weekly", "days": ["mon"], "message": "x", "cron": "30 9 * * 1-5"}, "cron"),
        ({"type": "cron", "cron": "30 9 * * 1-5", "hour": 7, "message": "x"}, "hour"),
        ({"type": "cron", "cron": "30 9 * * 1-5", "minute": 15, "message": "x"}, "minute"),
        ({"type": "daily", "days": ["mon"], "message": "x"}, "days"),
        ({"cron": "30 9 * * 1-5", "days": ["mon"], "message": "x"}, "days"),
        ({"message": "x", "news_urls": ["https://example.com/"]}, "news_urls"),
        ({"action": "reminder", "message": "x", "categories": ["AI"]}, "categories"),
        ({"action": "news_digest", "message": "x", "news_urls": ["https://e.com/"]}, "message"),
    ],
)
def test_a_reminder_field_that_contradicts_its_type_is_refused_by_name(
    config: dict[str, object], field: str
) -> None:
    from ambient.watches.inputs import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config("schedule", config)
    assert [loc for loc, _ in refused.value.errors] == [("config", field)]


def test_a_reminder_stored_before_the_type_rules_reads_back_as_it_ran() -> None:
    # Schedules created before contradictions were refused hold e.g. a daily type with a
    # cron that never applied: their runs must still start, doing what they did.
    from ambient.watches.reminders import ReminderRun

    stored = {
        "user": "alice",
        "task": "reminder/alice/standup",
        "config": {"type": "daily", "hour": 8, "cron": "30 9 * * 1-5", "message": "站会"},
    }
    run = ReminderRun.model_validate(stored)
    assert run.config.type == "daily" and run.config.cron is None and run.config.hour == 8


def test_a_bad_catalogue_entry_is_refused_by_field_like_any_other_source(
    settings: Settings,
) -> None:
    from ambient.watches.inputs import ConfigError, resolved_metric

    broken = {"type": "http_json", "url": "not a url", "json_path": "$.v"}
    no_base = "relative URL without a base"
    settings = settings.model_copy(update={"metric_catalogue": {"gold_price": broken}})
    given = {"type": "http_json", "url": "https://example.com/v", "json_path": "$.v"}
    for source in (None, given):
        config = ThresholdWatchConfig.model_validate(
            {"metric": "gold_price", "source": source, "threshold": 1}
        )
        with pytest.raises(ConfigError) as refused:
            resolved_metric(config, settings)
        assert [(loc, str(message)) for loc, message in refused.value.errors] == [
            (("config", "source", "http_json", "url"), f"Input should be a valid URL, {no_base}")
        ]


def test_a_weekly_reminder_takes_days_by_name_and_refuses_other_words() -> None:
    # "month", "Saturnalia" and "wedding" begin like mon/sat/wed: they are not days.
    from ambient.watches.inputs import ConfigError, parse_config

    weekly = parse_config("schedule", {"message": "x", "days": ["Monday", "tues", "SUN"]})
    assert isinstance(weekly, ReminderConfig) and weekly.days == ["mon", "tue", "sun"]
    for word in ("month", "Saturnalia", "wedding", "mo"):
        with pytest.raises(ConfigError) as refused:
            parse_config("schedule", {"message": "x", "days": ["fri", word]})
        [(loc, text)] = refused.value.errors
        assert loc == ("config", "days") and repr(word) in str(text)


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ("   ", "only spaces"),
        ("\u3000", "only spaces"),
        ("\u200b", "only invisible characters (U+200B)"),
        ("\u200b\u200d\ufeff", "only invisible characters (U+200B U+200D U+FEFF)"),
        (" \u2060 ", "only invisible characters (U+2060)"),
    ],
)
def test_a_reminder_of_only_invisible_characters_is_refused_as_blank(
    message: str, said: str
) -> None:
    # A zero-width space (Cf, not whitespace to str.strip) passed: a reminder that says nothing.
    with pytest.raises(ValidationError) as caught:
        ReminderConfig.model_validate({"hour": 9, "message": message})
    (error,) = caught.value.errors()
    assert error["loc"] == ("message",) and said in error["msg"], error["msg"]
    assert ReminderConfig.model_validate({"hour": 9, "message": "\u200b站会"}).message


def test_a_large_page_changed_throughout_is_diffed_by_the_lines_each_side_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """difflib's matcher is quadratic: a page of 10,000 lines, every third changed, held the
    worker's loop and the database's write lock 11 s. Past MAX_DIFF_CELLS the excerpt is the
    lines each side lacks, in order, counted as difflib's was."""
    old = [f"row {i} value {i * 7}" for i in range(30)]
    new = [f"row {i} value {i * 7 + 1}" if i % 3 == 0 else line for i, line in enumerate(old)]
    small = diff_pages(old, new, ["value 1"])
    monkeypatch.setattr(page_changes, "MAX_DIFF_CELLS", 10)
    large = diff_pages(old, new, ["value 1"])
    assert large.changed and large.added == small.added and large.hits == small.hits
    shown = large.excerpt.splitlines()
    assert shown[0] == "+row 0 value 1" and shown[-1] == small.excerpt.splitlines()[-1]
    assert sorted(shown[:-1]) == sorted(small.excerpt.splitlines()[:-1])


def test_a_large_page_whose_lines_only_moved_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_DIFF_CELLS no line is missing on either side when lines only moved: the
    change was notified with an empty excerpt."""
    monkeypatch.setattr(page_changes, "MAX_DIFF_CELLS", 10)
    old = [f"item {i}" for i in range(30)]
    moved = diff_pages(old, old[::-1], [])
    assert moved.changed and moved.excerpt == "(the same lines as before, in another order)"


def test_a_page_whose_lines_only_moved_says_so_at_any_size() -> None:
    """Stories reordered on a news page were told as "+Story C / -Story C": the same line
    added and removed. Lines that only moved are said so; a line that also changed is
    shown as before."""
    old = ["Story A", "Story B", "Story C", "Footer"]
    moved = diff_pages(old, ["Story C", "Story A", "Story B", "Footer"], ["Story"])
    assert moved.changed and moved.excerpt == "(the same lines as before, in another order)"
    assert moved.added == [] and moved.hits == {}
    edited = diff_pages(old, ["Story C", "Story A", "Story B2", "Footer"], [])
    assert sorted(edited.excerpt.splitlines()) == ["+Story B2", "+Story C", "-Story B", "-Story C"]
