"""Pure remediation policy: budget, score, plan, permission, safety gates, intake, analytics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ambient.clients.tencent.alarms import AlarmRecord
from ambient.domain.checks import MetricReading
from ambient.domain.users import Language
from ambient.refusals import Refusal
from ambient.remediation.alerts import Alert, VerifySpec, alert_from_breach
from ambient.remediation.ladder import RolloutHealth, Rung, WorkloadRef
from ambient.remediation.outcomes import gate_closed, in_chinese, maybe_applied, of_a_dry_run
from ambient.remediation.runs import JoinInput, VerifyInput
from ambient.remediation.safety import (
    BreakerState,
    ChangeWindow,
    Gate,
    breaker_after,
    breaker_gate,
    change_window_gate,
    effective_mode,
    may_approve,
    may_steer,
    named_approver,
    rate_limit_gate,
    scale_target,
    skipped_said,
)
from ambient.remediation.scores import (
    AlertRule,
    DimensionScore,
    ScoreDimensions,
    attempt_budget,
    match_rule,
    offline_score,
    plan,
    total_score,
)
from ambient.remediation.stats import RunOutcome, remediation_stats
from ambient.remediation.triage import alert_from_alarm
from ambient.watches.threshold_config import Condition
from api.i18n import Words
from api.routers.page_words import in_words, what_went_wrong

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def _alert(**fields: object) -> Alert:
    base: dict[str, object] = {
        "source": "manual",
        "cluster_id": "cls-a1b2c3d4",
        "namespace": "default",
        "workload": "web",
    }
    return Alert.model_validate(base | fields)


@pytest.mark.parametrize(
    "cluster_id",
    ["cls-7kq2m0ab", "kind-dev", "admin@dev", "arn:aws:eks:ap-east-1:123:cluster/shop"],
)
def test_alerts_name_tke_cluster_ids_or_kubeconfig_contexts(cluster_id: str) -> None:
    assert _alert(cluster_id=cluster_id).cluster_id == cluster_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cluster_id", "http://evil/"),
        ("cluster_id", "https://10.0.0.1:6443"),
        ("cluster_id", "cls-test"),  # TKE ids have 8 characters after cls-
        ("cluster_id", "cls-ABCD1234"),
        ("cluster_id", "cls-abcd12345"),
        ("cluster_id", "a//b"),
        ("namespace", "Prod"),
        ("namespace", "prod.eu"),
        ("namespace", "x" * 64),
        ("workload", "web..api"),
        ("workload", "web.-api"),
        ("workload", "-web"),
        ("workload", "web/../x"),
    ],
)
def test_alerts_refuse_targets_not_in_their_real_format(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _alert(**{field: value})
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


@pytest.mark.parametrize(
    ("score", "budget"),
    [(100, 6), (90, 6), (89, 4), (70, 4), (69, 3), (50, 3), (49, 2), (30, 2), (29, 1), (0, 1)],
)
def test_attempt_budget_follows_the_bands(score: int, budget: int) -> None:
    assert attempt_budget(score) == budget


def test_out_of_range_scores_are_clamped_before_budgeting() -> None:
    assert attempt_budget(250) == 6
    assert attempt_budget(-40) == 1


def test_total_score_weights_impact_severity_importance_time() -> None:
    def dims(i: int, s: int, b: int, t: int) -> ScoreDimensions:
        return ScoreDimensions(
            impact=DimensionScore(score=i, reason=""),
            severity=DimensionScore(score=s, reason=""),
            importance=DimensionScore(score=b, reason=""),
            time_sensitivity=DimensionScore(score=t, reason=""),
        )

    assert total_score(dims(100, 0, 0, 0)) == 40
    assert total_score(dims(0, 100, 0, 0)) == 30
    assert total_score(dims(0, 0, 100, 0)) == 20
    assert total_score(dims(0, 0, 0, 100)) == 10
    # Sub-scores outside 0-100 (e.g. from an LLM) are clamped on the way in.
    assert total_score(dims(500, -3, 100, 100)) == 70
    # Totals of exactly a half, at a band's edge, are one score and one budget whatever the
    # sub-scores: in floats (86, 96, 100, 63) came to 89 (4 attempts), (75, 99, 100, 98) to 90.
    for edge, pairs in {
        90: [(86, 96, 100, 63), (75, 99, 100, 98)],
        30: [(0, 36, 55, 77), (0, 6, 100, 77)],
        70: [(81, 51, 95, 28), (25, 99, 100, 98)],
    }.items():
        assert {total_score(dims(*p)) for p in pairs} == {edge}, pairs


def test_plan_is_one_rung_per_attempt_with_approval_from_the_configured_rung() -> None:
    steps = plan(95, None, approval_from_rung=3)
    assert [s.rung for s in steps] == list(Rung)
    assert [s.needs_approval for s in steps] == [False, False, True, True, True, False]
    assert [s.rung for s in plan(55)] == [Rung.RESTART, Rung.SCALE_OUT, Rung.ROLLBACK]
    assert not any(s.needs_approval for s in plan(95, None, approval_from_rung=0))


def test_manual_rule_plans_only_a_hand_over() -> None:
    rule = AlertRule(name="payments", workload="pay*", manual=True)
    steps = plan(95, rule)
    assert [s.rung for s in steps] == [Rung.HAND_OVER]


def test_most_specific_rule_pins_importance_with_a_reason() -> None:
    rules = [
        AlertRule(name="all", importance=10),
        AlertRule(name="web-prod", namespace="prod", workload="web", importance=100),
    ]
    subject = _alert(namespace="prod")
    assert match_rule(subject, rules) == rules[1]
    card = offline_score(subject, rules)
    assert card.dimensions.importance.score == 100
    assert "alert rule 'web-prod'" in card.dimensions.importance.reason
    assert card.rule == "web-prod"


def test_offline_score_explains_every_dimension() -> None:
    card = offline_score(
        _alert(namespace="prod", metric="error_rate", value=0.2, threshold=0.05, message="outage"),
        [],
    )
    assert card.generated_by == "offline"
    assert card.dimensions.severity.score == 100
    assert "4.00x the threshold" in card.dimensions.severity.reason
    assert "outage" in card.dimensions.severity.reason
    assert len(card.reasons) == 4 and card.budget == attempt_budget(card.score)


def test_a_floor_crossed_is_the_more_severe_the_further_under_it() -> None:
    """A success rate under its floor of 0.99 (its verify healthy above it): a total outage
    (0.0) scored severity 30, under a value on the line (40), read as a ceiling's "0.00x"."""
    verify = VerifySpec.model_validate(
        {
            "source": {"type": "http_json", "url": "https://m.example.com/x", "json_path": "$.v"},
            "healthy": [{"op": "above", "value": 0.99}],
        }
    )
    severity = {
        value: offline_score(
            _alert(metric="success_rate", value=value, threshold=0.99, message="x", verify=verify),
            [],
        ).dimensions.severity
        for value in (0.99, 0.5, 0.0)
    }
    assert [s.score for s in severity.values()] == [40, 70, 100], severity
    assert severity[0.5].reason == "value 0.5 is 49% under the threshold"
    # A ceiling's alert without a verify is weighed as before.
    ceiling = offline_score(_alert(value=0.01, threshold=0.05, message="x"), [])
    assert ceiling.dimensions.severity.score == 30


def test_severity_says_what_it_weighed_at_a_zero_threshold_and_a_huge_ratio() -> None:
    """A zero threshold ("crash-looping pods > 0") was said to be "no value/threshold given",
    and a ratio past a float (1e308 over 0.05) scored severity 0, below a value under its
    threshold (30)."""
    zero = offline_score(_alert(value=12, threshold=0, message="x"), [])
    assert zero.dimensions.severity.score == 50
    assert zero.dimensions.severity.reason == "value 12 against a threshold of 0: no ratio to weigh"
    huge = offline_score(_alert(value=1e308, threshold=0.05, message="x"), [])
    assert huge.dimensions.severity.score == 100
    # Not "is infx the threshold".
    assert (
        huge.dimensions.severity.reason == "value 1e+308 is more than 1.8e+308 times the threshold"
    )


def test_a_value_on_the_safe_side_of_its_line_is_no_breach_however_far() -> None:
    """-5 against a ceiling of 0.05 was weighed by the size of their ratio: severity 100,
    "value -5 is 100.00x the threshold", 4 attempts. The ratio follows the breach's direction:
    under a ceiling (or over a floor) is no breach, and a negative line is passed by going
    over it (a ceiling) or under it (a floor)."""
    under = offline_score(_alert(value=-5, threshold=0.05, message="x", namespace="prod"), [])
    assert under.dimensions.severity.score == 30
    assert under.dimensions.severity.reason == "value -5 is under the threshold 0.05: no breach"
    # Weighed as a value under its line: 55, 3 attempts (it was 76, 4).
    assert (under.score, under.budget) == (55, 3)
    floor = VerifySpec.model_validate(
        {
            "source": {"type": "http_json", "url": "https://m.example.com/x", "json_path": "$.v"},
            "healthy": [{"op": "above", "value": 0.99}],
        }
    )
    over_floor = offline_score(_alert(value=5, threshold=0.99, verify=floor), [])
    assert over_floor.dimensions.severity.score == 30
    assert over_floor.dimensions.severity.reason == "value 5 is above the threshold 0.99: no breach"
    # A negative ceiling (a temperature above -10) passed by half its size.
    warm = offline_score(_alert(value=-5, threshold=-10), []).dimensions.severity
    assert (warm.score, warm.reason) == (70, "value -5 is 50% above the threshold")
    cold = offline_score(_alert(value=-15, threshold=-10), []).dimensions.severity
    assert (cold.score, cold.reason) == (30, "value -15 is under the threshold -10: no breach")


def test_remediation_texts_say_numbers_as_read() -> None:
    # 6 significant digits: 1234567.8 was "1.23457e+06", and 0.0500001 read as healthy
    # "below 0.05" was said as "metric 0.05 is not healthy (below 0.05)".
    card = offline_score(_alert(value=1234567.8, threshold=0, message="x"), [])
    assert card.dimensions.severity.reason.startswith("value 1234567.8 against"), card
    card = offline_score(_alert(value=1234567.8, threshold=1000, message="x"), [])
    assert card.dimensions.severity.reason.startswith("value 1234567.8 is"), card
    request = _dry_restart(below=0.0500001, value=0.05000015)
    health = RolloutHealth(available=True, ready_replicas=1, desired=1, detail="1/1")
    said = request.judge(health).detail
    assert said.startswith("metric 0.05000015 is not healthy (below 0.0500001)"), said


def test_a_dry_runs_verdict_is_its_metrics_and_without_one_is_not_resolved() -> None:
    """A dry run changed nothing: an available rollout says nothing of the alert. Its verify
    metric read healthy clears it (on its own); with no verify block, nothing tells."""
    request = _dry_restart(below=0.05, value=0.01)
    health = RolloutHealth(
        available=True, observed=True, ready_replicas=2, desired=2, detail="2/2 available"
    )
    assert request.judge(health).resolved
    blind = request.model_copy(update={"verify": None, "reading": None})
    verdict = blind.judge(health)
    assert not verdict.resolved and "no verify metric tells" in verdict.detail, verdict
    executed = blind.model_copy(update={"mode": "execute"})
    assert executed.judge(health).resolved  # a restart that came back: rollout health decides


def _dry_restart(*, below: float, value: float) -> VerifyInput:
    """A dry run's restart of web, verified by a metric healthy below ``below``, read ``value``."""
    verify = VerifySpec.model_validate(
        {
            "source": {"type": "http_json", "url": "https://m.example/x", "json_path": "$.v"},
            "healthy": [{"op": "below", "value": below}],
        }
    )
    return VerifyInput(
        run_key="r",
        key="k",
        mode="dry_run",
        target=WorkloadRef(cluster_id="cls-a1b2c3d4", namespace="default", name="web"),
        service="web",
        rung=Rung.RESTART,
        verify=verify,
        reading=MetricReading(value=value),
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_alert_text_cannot_choose_a_target_outside_kubernetes_names() -> None:
    with pytest.raises(ValidationError) as bad:
        _alert(workload="web; kubectl delete ns prod")
    assert "workload" in str(bad.value)
    with pytest.raises(ValidationError) as bad_ns:
        _alert(namespace="../kube-system")
    assert "namespace" in str(bad_ns.value)


def test_fingerprint_names_the_workload_whatever_the_alert_says_about_it() -> None:
    one = _alert(metric="cpu", value=1, message="a")
    two = _alert(metric="cpu", value=99, message="b")
    assert one.fingerprint() == two.fingerprint()
    # One ladder per workload: another metric or source on it is the same remediation.
    assert one.fingerprint() == _alert(metric="mem", source="monitor").fingerprint()
    assert one.fingerprint() != _alert(workload="cart").fingerprint()
    assert one.fingerprint() != _alert(namespace="staging").fingerprint()


@pytest.mark.parametrize(
    ("asked", "permission", "executor", "mode"),
    [
        ("execute", "execute", "kubernetes", "execute"),
        ("execute", "dry_run", "kubernetes", "dry_run"),
        ("dry_run", "execute", "kubernetes", "dry_run"),
        ("execute", "execute", "dry_run", "dry_run"),
        ("execute", "none", "kubernetes", None),
        ("dry_run", "none", "kubernetes", None),
    ],
)
def test_effective_mode_is_the_lowest_of_asked_permission_and_switch(
    asked: str, permission: str, executor: str, mode: str | None
) -> None:
    decision = effective_mode(asked, permission, executor)  # type: ignore[arg-type]
    assert decision.mode == mode
    if mode is None:
        assert "an admin must grant" in decision.reason


def test_approver_needs_the_permission_the_step_runs_with() -> None:
    assert may_approve("execute", "execute") and may_approve("dry_run", "dry_run")
    assert not may_approve("dry_run", "execute") and not may_approve("none", "dry_run")


def test_named_approvers_are_read_per_cluster_glob_and_name_nobody_by_default() -> None:
    policy = {"cls-shared*": ["bob", "carol"], "cls-pay": ["dana"]}
    assert named_approver("bob", "cls-shared-01", policy)
    assert named_approver("dana", "cls-pay", policy)
    assert not named_approver("dana", "cls-shared-01", policy)
    assert not named_approver("bob", "cls-pay", policy)
    assert not named_approver("bob", "cls-shared-01", {})


def test_a_run_is_seen_by_its_owner_an_admin_and_its_clusters_approvers_only() -> None:
    policy = {"cls-shared*": ["bob"]}
    assert may_steer("ann", False, "cls-pay", policy, owner="ann")
    assert may_steer("root", True, "cls-pay", policy, owner="ann")
    assert may_steer("bob", False, "cls-shared-01", policy, owner="ann")
    assert not may_steer("bob", False, "cls-pay", policy, owner="ann")
    # Without an owner: whether they see every run on the cluster, whoever started it.
    assert may_steer("bob", False, "cls-shared-01", policy)
    assert not may_steer("ann", False, "cls-pay", policy)


def test_change_window_allows_inside_and_waits_for_the_next_opening() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    weekdays = [ChangeWindow(days=[1, 2, 3, 4, 5], start="22:00", end="06:00")]
    monday_23 = datetime(2026, 11, 23, 23, 0, tzinfo=shanghai)
    assert change_window_gate(monday_23, weekdays).allowed
    tuesday_02 = datetime(2026, 11, 24, 2, 0, tzinfo=shanghai)  # inside Monday's window
    assert change_window_gate(tuesday_02, weekdays).allowed
    monday_noon = datetime(2026, 11, 23, 12, 0, tzinfo=shanghai)
    gate = change_window_gate(monday_noon, weekdays)
    assert not gate.allowed and gate.retry_after_seconds == 10 * 3600
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=shanghai)
    assert change_window_gate(saturday, weekdays).retry_after_seconds == (36 + 22) * 3600
    assert change_window_gate(saturday, []).allowed


def test_a_change_window_too_far_is_handed_over_with_its_opening_in_chinese_too() -> None:
    """A run handed over because its window opens past the gate wait: the Chinese hand-over
    said "现在不能改动：现在不在变更窗口内", without when the window opens (the English has it)."""
    shanghai = ZoneInfo("Asia/Shanghai")
    weekdays = [ChangeWindow(days=[1, 2, 3, 4, 5], start="22:00", end="06:00")]
    gate = change_window_gate(datetime(2026, 11, 28, 12, 0, tzinfo=shanghai), weekdays)
    said = gate_closed(gate)
    assert str(said).endswith("next opens 2026-11-30T22:00:00+08:00")
    assert (
        in_chinese(said) == "现在不能改动：不在变更窗口内，下次开放时间 2026-11-30T22:00:00+08:00"
    )


def test_a_change_window_across_a_clock_change_is_waited_for_in_real_seconds() -> None:
    """The wait is slept on a durable timer (real seconds): a wall-clock difference across
    the spring-forward night was an hour too long, and a one-hour window opening after it
    was missed whole (the next one, a day later, is past the gate wait: handed over)."""
    berlin = ZoneInfo("Europe/Berlin")
    window = [ChangeWindow(start="03:00", end="04:00")]
    # 29 March 2026: clocks go from 02:00 CET to 03:00 CEST; 01:30 CET is 30 min before 03:00.
    before = datetime(2026, 3, 29, 1, 30, tzinfo=berlin)
    gate = change_window_gate(before, window)
    assert not gate.allowed and gate.retry_after_seconds == 30 * 60
    # 25 October 2026: 03:00 CEST becomes 02:00 CET; 01:30 CEST is 2 h 30 min before 03:00 CET.
    autumn = change_window_gate(datetime(2026, 10, 25, 1, 30, tzinfo=berlin), window)
    assert autumn.retry_after_seconds == 150 * 60


def test_rate_limit_keeps_cooldown_and_hourly_limit_per_cluster() -> None:
    recent = [NOW - timedelta(seconds=30)]
    cooldown = rate_limit_gate(recent, NOW, per_hour=10, cooldown_seconds=120)
    assert not cooldown.allowed and cooldown.retry_after_seconds == 90
    full = [NOW - timedelta(minutes=m) for m in (50, 40, 30)]
    limited = rate_limit_gate(full, NOW, per_hour=3, cooldown_seconds=0)
    assert not limited.allowed and limited.retry_after_seconds == 10 * 60
    assert rate_limit_gate(full, NOW, per_hour=4, cooldown_seconds=0).allowed
    old = [NOW - timedelta(hours=2)] * 20
    assert rate_limit_gate(old, NOW, per_hour=3, cooldown_seconds=600).allowed


def test_breaker_opens_at_the_threshold_half_opens_later_and_closes_on_success() -> None:
    state = BreakerState()
    state = breaker_after(state, resolved=False, now=NOW, threshold=2)
    assert breaker_gate(state, NOW, 2, 3600).allowed
    state = breaker_after(state, resolved=False, now=NOW, threshold=2)
    assert state.opened_at == NOW
    gate = breaker_gate(state, NOW + timedelta(minutes=10), 2, 3600)
    assert not gate.allowed and "failed 2 times" in gate.reason
    assert breaker_gate(state, NOW + timedelta(hours=1), 2, 3600).allowed
    assert breaker_after(state, resolved=True, now=NOW, threshold=2) == BreakerState()


def test_an_open_breakers_reason_is_said_in_chinese_on_the_page_and_in_a_hand_over() -> None:
    """A Chinese page said "已跳过：breaker open: this rung failed …" (the gate had no Said, a
    hand-over built from it would have been English in its Chinese frame too)."""
    state = BreakerState(failures=3, opened_at=NOW)
    gate = breaker_gate(state, NOW + timedelta(minutes=10), 3, 3600)
    assert gate.reason == (
        "breaker open: this rung failed 3 times in a row on this service; closes in 50 min"
    )
    chinese = "熔断中：这一级在这个服务上已连续失败 3 次；50 分钟后放行一次试探"
    # The page reads the skipped attempt's reason (the gate's English, stored) back.
    assert in_words(skipped_said(gate.reason), Words(Language.ZH)) == chinese
    assert in_words(skipped_said(gate.reason), Words(Language.EN)) == gate.reason
    assert skipped_said("already at 3 replicas") == "already at 3 replicas"
    assert in_chinese(gate_closed(gate)) == f"现在不能改动：{chinese}"


def test_a_cluster_cooldowns_reason_says_its_lengths_as_the_breaker_does() -> None:
    """It said "last change 45s ago (< 300s)", raw seconds, and "45 秒前（…至少间隔 300 秒）"."""
    gate = rate_limit_gate([NOW - timedelta(seconds=45)], NOW, per_hour=10, cooldown_seconds=300)
    assert gate.reason == "cluster cooldown: last change 45 s ago (< 5 min)"
    chinese = "集群冷却中：上次变更在 45 秒前（两次变更至少间隔 5 分钟）"
    # The page says the waiting run's gate (its Said), and a hand-over's push says it.
    assert gate.said is not None
    assert what_went_wrong(gate.said.refusal(), Words(Language.ZH)) == chinese
    assert in_words(gate.said.refusal(), Words(Language.EN)) == gate.reason
    assert in_chinese(gate_closed(gate)) == f"现在不能改动：{chinese}"
    # The time since is the whole units gone by: it read "5 min ago (< 5 min)" at 4 min 50 s.
    for since, cooldown, said in ((290, 300, "4 min"), (59.6, 60, "59 s"), (3590, 3600, "59 min")):
        gate = rate_limit_gate([NOW - timedelta(seconds=since)], NOW, 10, cooldown)
        assert f"last change {said} ago" in gate.reason, gate.reason


def test_a_run_of_the_release_before_says_its_gates_reasons_in_chinese_too() -> None:
    """A run of the release before holds the gates' old wording (raw seconds): its breaker's
    skipped reason, stored, and its cooldown's Said, in the history it replays. A Chinese page
    said them in English once the wording changed."""
    stored = "breaker open: this rung failed 3 times in a row on this service; closes in 3000s"
    assert in_words(skipped_said(stored), Words(Language.ZH)) == (
        "熔断中：这一级在这个服务上已连续失败 3 次；3000 秒后放行一次试探"
    )
    assert in_words(skipped_said(stored), Words(Language.EN)) == stored
    # The gate as that release's activity returned it, read from the run's history.
    reason = "cluster cooldown: last change 45s ago (< 300s)"
    replayed = Gate.model_validate(
        {
            "allowed": False,
            "reason": reason,
            "gate": "rate_limit",
            "retry_after_seconds": 255,
            "said": {
                "msgid": "cluster cooldown: last change %(since)ss ago (< %(cooldown)ss)",
                "values": {"since": "45", "cooldown": "300"},
            },
        }
    )
    assert replayed.said is not None
    chinese = "集群冷却中：上次变更在 45 秒前（两次变更至少间隔 300 秒）"
    assert what_went_wrong(replayed.said.refusal(), Words(Language.ZH)) == chinese
    assert in_words(replayed.said.refusal(), Words(Language.EN)) == reason
    assert in_chinese(gate_closed(replayed)) == f"现在不能改动：{chinese}"


def test_scale_out_doubles_within_the_blast_radius() -> None:
    assert scale_target(2, max_replicas=20, max_step=5) == 4
    assert scale_target(8, max_replicas=20, max_step=5) == 13
    assert scale_target(18, max_replicas=20, max_step=5) == 20
    assert scale_target(None, max_replicas=20, max_step=5) == 2
    assert scale_target(30, max_replicas=20, max_step=5) == 30  # never scales in


def test_alarm_records_naming_a_tke_workload_become_alerts() -> None:
    found = alert_from_alarm(
        AlarmRecord(
            source="monitor",
            name="checkout 5xx",
            status="ALARM",
            time=NOW,
            target="tke_cluster_instance_id:cls-abc12345|namespace:prod|workload_name:checkout",
            detail="5xx > 5%",
            level="serious",
        )
    )
    assert isinstance(found, Alert), found
    assert (found.cluster_id, found.namespace, found.workload) == (
        "cls-abc12345",
        "prod",
        "checkout",
    )
    disk = AlarmRecord(
        source="cls",
        name="disk",
        status="ALARM",
        time=NOW,
        target="topic-1",
        detail="disk full on cvm",
    )
    assert alert_from_alarm(disk) == "names no TKE workload"


@pytest.mark.parametrize(
    ("dimensions", "detail", "why"),
    [
        # A Monitor alarm on a StatefulSet: not a Deployment remediation of its name.
        (
            {
                "tke_cluster_instance_id": "cls-abcd1234",
                "namespace": "prod",
                "workload_kind": "StatefulSet",
                "workload_name": "checkout",
            },
            "pod restarts > 3",
            "is on StatefulSet checkout in cls-abcd1234: remediation changes Deployments only",
        ),
        ({}, "workload_kind=DaemonSet cluster_id=cls-abcd1234 ns=prod workload=agent", "DaemonSet"),
        # No namespace anywhere: not guessed ("default" was, another Deployment of that name).
        (
            {"tke_cluster_instance_id": "cls-abcd1234", "workload_name": "checkout"},
            "pod restarts > 3",
            "names workload checkout in cls-abcd1234 but no namespace",
        ),
        ({}, "cluster_id=cls-abcd1234 workload=checkout errors=120", "but no namespace"),
    ],
)
def test_an_alarm_naming_no_deployment_for_certain_is_skipped_with_why(
    dimensions: dict[str, str], detail: str, why: str
) -> None:
    """The night's triage guessed namespace "default" and took any kind for a Deployment: a
    ladder in execute mode changed another workload of the same name."""
    record = AlarmRecord(
        source="monitor" if dimensions else "cls",
        name="restarts",
        status="ALARM",
        time=NOW,
        dimensions=dimensions,
        detail=detail,
    )
    said = alert_from_alarm(record)
    assert isinstance(said, str) and why in said, said
    kinded = {**dimensions, "namespace": "prod", "workload_kind": "Deployment"}
    if "workload_name" in dimensions:  # named a Deployment, with its namespace: an alert
        assert isinstance(alert_from_alarm(record.model_copy(update={"dimensions": kinded})), Alert)


def test_a_tke2_threshold_breach_becomes_an_alert_verified_by_the_same_source() -> None:
    source = {
        "type": "tencent_monitor",
        "namespace": "QCE/TKE2",
        "metric": "K8sWorkloadRateCpuCoreUsedCluster",
        "dimensions": {
            "tke_cluster_instance_id": "cls-abc12345",
            "namespace": "prod",
            "workload_name": "web",
        },
    }
    found = alert_from_breach(source, 97.0, [Condition(op="above", value=90)], "cpu")
    assert found is not None and found.verify is not None
    assert found.verify.holds(50) and not found.verify.holds(95)
    assert alert_from_breach({"type": "http_json", "url": "http://x/"}, 1, [], "") is None
    # A workload named but not for certain is no alert (the release before guessed "default").
    unsure = {
        **source,
        "dimensions": {"tke_cluster_instance_id": "cls-abc12345", "workload_name": "web"},
    }
    assert alert_from_breach(unsure, 97.0, [Condition(op="above", value=90)], "cpu") is None
    statefulset = {**source["dimensions"], "workload_kind": "StatefulSet"}  # type: ignore[dict-item]
    assert alert_from_breach({**source, "dimensions": statefulset}, 97.0, [], "cpu") is None


def test_stats_give_success_by_rung_service_type_time_and_exhausted_budgets() -> None:
    def run(
        state: str, tried: list[int], rung: int | None, minutes: int, svc: str = "a"
    ) -> RunOutcome:
        return RunOutcome(
            state=state,
            service=svc,
            alert_type="error_rate",
            tried=tried,
            resolved_rung=rung,
            budget_exhausted=state == "budget_exhausted",
            started_at=NOW,
            finished_at=NOW + timedelta(minutes=minutes),
        )

    stats = remediation_stats(
        [
            run("resolved", [1], 1, 4),
            run("resolved", [1, 2], 2, 10),
            run("budget_exhausted", [1, 2], None, 30, svc="b"),
            RunOutcome(state="settling", service="a", alert_type="x", started_at=NOW),
            # A dry run that "resolved": the alert cleared on its own, no rung changed a thing.
            run("resolved", [1], 1, 2).model_copy(update={"dry_run": True}),
        ]
    )
    assert (stats.total, stats.finished, stats.resolved, stats.dry_runs) == (5, 3, 2, 1)
    assert [(r.key, r.runs, r.resolved) for r in stats.by_rung] == [("1", 3, 1), ("2", 2, 1)]
    assert [(r.key, r.rate) for r in stats.by_service] == [("a", 1.0), ("b", 0.0)]
    assert stats.median_seconds_to_resolve == 7 * 60
    assert stats.budgets_exhausted == 1 and stats.budget_exhausted_rate == round(1 / 3, 4)


TKE2_RESTARTS = {
    "type": "tencent_monitor",
    "namespace": "QCE/TKE2",
    "metric": "K8sWorkloadPodRestartTotal",
    "dimensions": {
        "tke_cluster_instance_id": "cls-abc12345",
        "namespace": "prod",
        "workload_name": "web",
    },
}


def test_a_breach_above_a_line_is_verified_healthy_back_on_the_line() -> None:
    """A watch on "restarts above 0" recovers at 0 (it breaches only past the line); the run it
    started must call 0 healthy too, or it climbs the whole ladder on a workload that is fine."""
    found = alert_from_breach(TKE2_RESTARTS, 3.0, [Condition(op="above", value=0)], "restarts")
    assert found is not None and found.verify is not None
    assert found.verify.holds(0) and not found.verify.holds(1)
    below = alert_from_breach(TKE2_RESTARTS, 1.0, [Condition(op="below", value=2)], "replicas")
    assert below is not None and below.verify is not None
    assert below.verify.holds(2) and below.verify.holds(3) and not below.verify.holds(1.5)
    health = RolloutHealth(available=True, ready_replicas=2, desired=2, detail="rolled out")
    verdict = VerifyInput(
        run_key="r",
        key="k",
        mode="execute",
        target=found.target(),
        service=found.service,
        rung=Rung.RESTART,
        verify=found.verify,
        reading=MetricReading(value=0),
        now=datetime(2026, 11, 30, tzinfo=UTC),
    ).judge(health)
    assert verdict.resolved and verdict.detail.startswith("metric 0 is healthy (at or below 0)"), (
        verdict.detail
    )


def test_a_breach_of_every_line_at_once_is_over_when_any_line_is_no_longer_crossed() -> None:
    """A watch that combines its lines with "all" (between 10 and 100) breaches only inside
    both; its alert is over once the value leaves either, not when it is past both at once."""
    lines = [Condition(op="above", value=10), Condition(op="below", value=100)]
    found = alert_from_breach(TKE2_RESTARTS, 50.0, lines, "inside the band", combine="all")
    assert found is not None and found.verify is not None
    assert found.verify.holds(5) and found.verify.holds(150) and found.verify.holds(10)
    assert not found.verify.holds(50)


def test_a_verify_blocks_inclusive_is_a_json_boolean_not_a_word() -> None:
    spec = {"source": TKE2_RESTARTS, "healthy": [{"op": "below", "value": 1}]}
    for value in ("yes", 1, "true"):
        with pytest.raises(ValidationError, match="inclusive"):
            VerifySpec.model_validate({**spec, "inclusive": value})
    assert VerifySpec.model_validate({**spec, "inclusive": True}).inclusive


def test_a_dry_runs_lost_answer_is_said_as_a_preview_not_as_a_change_that_may_be_made() -> None:
    """A dry run whose first try's answer was lost said "a dry run, nothing was changed: rung 1
    (restart) may have been applied (…): check deployment/prod/checkout", both at once."""
    target = WorkloadRef(cluster_id="cls-1", namespace="prod", name="checkout")
    why = "no answer within 10s"
    dry = of_a_dry_run(maybe_applied(Rung.RESTART, why, target, dry_run=True), [], "dry_run")
    assert str(dry) == (
        "a dry run, nothing was changed: rung 1 (restart) was previewed, its answer lost "
        "(no answer within 10s)"
    )
    assert isinstance(dry, Refusal)
    assert in_words(dry, Words(Language.ZH)) == (
        "演练，未做任何改动：第 1 级已预演，但结果没有传回（no answer within 10s）"
    )
    real = maybe_applied(Rung.RESTART, why, target)
    assert str(real).endswith(
        "may have been applied (no answer within 10s): check deployment/prod/checkout"
    )


def test_a_join_sent_by_hand_with_a_long_name_is_cut_as_an_abort_is() -> None:
    # A 100,000-character user in a `joined` signal was kept whole in the run's joined_by.
    assert JoinInput(user="u" * 100_000).user == "u" * 63
