"""The faithfulness check: what a summary states (numbers, services, errors) its input does not."""

from __future__ import annotations

import pytest

from ambient.briefing.faithfulness import chinese_number, unsupported_claims
from ambient.briefing.models import BriefingInputs, SourceNote
from ambient.briefing.writer import llm_prompt

FACTS = """Date: 2026-11-22. Log lines: 12,044, errors: 40, warnings: 6. Alarms: 3 (1 not resolved).
<<<DATA reduced log report>>>
- ERROR 40 09:00–09:03: payment-service timeout after <*> ms to db-<*>
- ERROR 2: Unhandled exception in handler <*>: NullPointerException
- WARNING 6 13:00–13:05: [订单服务] 重试 第 <*> 次
- error rate 0.25 on checkout
<<<END DATA reduced log report>>>"""


def claims(summary: str) -> list[tuple[str, str]]:
    return [(c.kind, c.text) for c in unsupported_claims(summary, FACTS)]


def test_a_summary_that_restates_its_input_has_no_unsupported_claims() -> None:
    summary = (
        "Good morning. 12044 log lines (12,044), 40 errors from 09:00 to 09:03: payment-service "
        "timeouts and 2 NullPointerException in a handler; 订单服务重试了六次; error rate 0.250 "
        "on checkout. 3 alarms, 1 still firing."
    )
    assert claims(summary) == []


def test_made_up_numbers_services_error_codes_and_quotes_are_each_listed() -> None:
    summary = (
        'checkout-api failed 300 times with ERR_DB_DOWN and OOMKilled; the log said "disk full '
        'on node 7"; payment-service is fine.'
    )
    assert claims(summary) == [
        ("error", "disk full on node 7"),
        ("error", "ERR_DB_DOWN"),
        ("error", "OOMKilled"),
        ("service", "checkout-api"),
        ("number", "300"),
    ]


def test_chinese_numerals_before_a_measure_word_are_numbers_to_check() -> None:
    assert claims("支付超时四十次，告警三条") == []
    assert claims("支付超时四十五次") == [("number", "四十五")]
    assert claims("一切正常，一下就好了") == []  # 一 without a measure word is not a count
    assert [chinese_number(t) for t in ("四十", "一百零五", "三千二", "十五", "两万三千")] == [
        40,
        105,
        3200,
        15,
        23000,
    ]


def test_a_chinese_service_name_is_found_inside_the_sentence_around_it() -> None:
    assert claims("昨天订单服务重试，所有服务都恢复了") == []
    assert claims("昨天支付服务超时") == [("service", "支付服务")]


def test_digits_of_a_name_are_not_counted_again_as_numbers() -> None:
    # db-7 is a claim about a name (not in the facts), not about the number 7 besides.
    assert claims("timeouts to db-7") == [("service", "db-7")]


@pytest.mark.parametrize(
    "log_file",
    ["/tmp/pytest-of-ci/pytest-777/logs/app-8086.log", "pytest-777/logs/app-8086.log"],
    ids=["absolute", "under-log-dir"],
)
def test_numbers_in_the_sources_paths_links_and_ids_are_not_facts_the_briefing_states(
    log_file: str,
) -> None:
    """A pytest-777 folder in the log file's path made a made-up 777 pass as stated: only the
    facts (log lines, alarms, counts) state numbers, not where they were read from."""
    inputs = BriefingInputs(
        date="2026-11-22",
        log_lines=120,
        errors=4,
        notes=[
            SourceNote(
                source="logs",
                ok=True,
                detail=f"log file {log_file}: 120 lines read",
            ),
            SourceNote(
                source="cls",
                ok=False,
                detail="CLS topic 6a1b2c3d-4242-4e5f-8a9b-0c1d2e3f4a5b: 2 regions answered 503",
            ),
        ],
        report_markdown="- ERROR 4 09:00–09:03: upstream timeout after 30 s",
        news=["Release 3.2 of the gateway is out (https://example.com/news/31337)"],
        discussions=["db failover — 5 message(s), open (/app/discussion?id=9001)"],
    )
    prompt = llm_prompt(inputs)
    made_up = "Good morning: 777 retries, 8086 timeouts, 4242 alarms, 31337 and 9001 calls."
    assert [(c.kind, c.text) for c in unsupported_claims(made_up, prompt)] == [
        ("number", number) for number in ("777", "8086", "4242", "31337", "9001")
    ]
    # The facts' numbers still count; a path or link the input holds, quoted whole, is a name.
    stated = (
        f"120 lines read from {log_file}, 4 errors from "
        "09:00 (timeouts after 30 s); CLS: 2 regions answered 503; release 3.2; 5 messages "
        "in /app/discussion?id=9001."
    )
    assert unsupported_claims(stated, prompt) == []


@pytest.mark.parametrize(
    ("summary", "wrong"),
    [
        ("Yesterday was quiet: 0 errors and 0 open alarms.", ["quiet", "0 open alarms"]),
        ("Errors fell 300% against the previous day; 0 alarms are open.", ["fell", "0 alarms"]),
        ("No alarms yesterday, and all alarms were resolved.", ["all alarms were", "No alarms"]),
        (
            "昨天一切平稳，没有错误，错误数比前 1 天减少 300%，也没有未恢复的告警。",
            ["平稳", "减少", "没有未恢复"],
        ),
        ("昨天没有任何告警。", ["没有任何告警"]),
    ],
)
def test_words_the_days_counts_contradict_are_claims_of_their_own(
    summary: str, wrong: list[str]
) -> None:
    """A model's "quiet day, no errors, errors fell, no open alarm" of a day of 40 errors, up
    300%, one alarm open: its "0" was in a time and its "300%" in the trend, so it passed and
    was spoken (a review)."""
    from ambient.briefing.faithfulness import contradicted

    trend = "错误数比前 1 天增加 300%" if "昨天" in summary else "Errors rose 300% against the day"
    found = contradicted(summary, errors=40, alarms=3, open_alarms=1, trend=trend)
    assert {c.kind for c in found} == {"fact"}
    assert all(any(w in c.text for c in found) for w in wrong), found
    # The same words of a day they are true of are not claims.
    assert contradicted(summary, errors=0, alarms=0, open_alarms=0, trend=None) == []


def test_a_day_said_as_it_was_has_no_contradiction() -> None:
    from ambient.briefing.faithfulness import contradicted

    said = (
        "Yesterday: 40 errors, 1 open alarm (disk-full). Errors rose 300% against the previous "
        "day; latency fell after the 10:00 release. "
        "昨天有 40 个错误、1 条未恢复告警，错误数增加 300%。"
    )
    trend = "Errors rose 300% against the previous day"
    assert contradicted(said, errors=40, alarms=3, open_alarms=1, trend=trend) == []


EN_UP, ZH_UP = "Errors rose 300% against the previous day", "错误数比前 7 天平均增加 300%"


@pytest.mark.parametrize(
    ("said", "errors", "alarms", "open_alarms", "trend"),
    [
        ("Errors rose 300% as checkout went down at 02:10.", 40, 0, 0, EN_UP),
        ("Errors rose 300% while the success rate dropped to 97%.", 40, 0, 0, EN_UP),
        ("错误数比前 7 天平均增加 300%，订单接口成功率下降到 97%。", 40, 0, 0, ZH_UP),
        ("Errors fell 40%, though warnings went up.", 12, 0, 0, "Errors fell 40% against it"),
        ("Payments logged no errors; all 40 errors came from checkout.", 40, 0, 0, None),
        ("No error-rate alarm fired; 40 errors were logged by checkout.", 40, 0, 0, None),
        ("CPU and memory stayed quiet; checkout logged 40 errors.", 40, 0, 0, None),
        ("内存使用平稳，但 checkout 有 40 个错误。", 40, 0, 0, None),
        ("支付服务没有报错，40 个错误都来自 checkout。", 40, 0, 0, None),
        ("All alarms were resolved except disk-full on db-1, open since 02:00.", 5, 3, 1, None),
        ("除了 db-1 的磁盘告警，其他告警都已恢复。", 5, 3, 1, None),
        ("No alarms are open on checkout; disk-full on db-1 is still firing.", 5, 3, 1, None),
        ("No alarms fired yesterday; disk-full has been firing since 02:00 today.", 5, 0, 1, None),
        ("昨天没有告警；今天 02:00 起 db-1 磁盘告警一直未恢复。", 5, 0, 1, None),
    ],
)
def test_an_honest_sentence_about_part_of_the_day_is_no_contradiction(
    said: str, errors: int, alarms: int, open_alarms: int, trend: str | None
) -> None:
    """Each true of the counts given, each refused by the first version of the check (a
    review): the user heard the rules' briefing and "the model's did not match the data"."""
    from ambient.briefing.faithfulness import contradicted

    found = contradicted(said, errors=errors, alarms=alarms, open_alarms=open_alarms, trend=trend)
    assert found == [], found


def test_a_day_of_lines_without_a_level_is_not_called_free_of_errors_by_the_model() -> None:
    from ambient.briefing.faithfulness import contradicted

    found = contradicted(
        "昨天一切平稳，没有错误。",
        errors=0,
        alarms=0,
        open_alarms=0,
        trend=None,
        errors_unknown=True,
    )
    assert [c.text for c in found] == ["一切平稳 (levels not read)"], found
