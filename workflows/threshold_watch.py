"""ThresholdWatchWorkflow — `threshold-watch/{user}/{task}`: one alert per breach and recovery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Config validation parses JSONPath inside the sandbox; PLY finds its parser tables
    # through sys.modules, so the parser module must be the host's.
    import jsonpath_ng.ext.parser  # noqa: F401

    from activities.remediation import RemediationActivities
    from activities.watches import WatchActivities
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.domain.checks import MetricReading, ReadMetricInput
    from ambient.domain.notify import REASON, RULES, Message, Wording
    from ambient.log_redaction import hide_in_urls
    from ambient.refusals import Refusal
    from ambient.remediation.alerts import breach_alert, remediation_id
    from ambient.remediation.runs import RemediationInput, StartPermissionInput
    from ambient.remediation.safety import REASONS_ZH, PermissionDecision
    from ambient.watches.configs import TaskKind
    from ambient.watches.models import TaskStatus, ThresholdWatchInput, ThresholdWatchState
    from ambient.watches.notification_spec import notification_targets
    from ambient.watches.summaries import rules_in, rules_of
    from ambient.watches.threshold_config import (
        HttpJsonSource,
        MetricSource,
        PrometheusSource,
        ThresholdWatchConfig,
    )
    from ambient.watches.threshold_rule import (
        ALREADY_TOLD,
        Breach,
        ThresholdState,
        Transition,
        evaluate,
    )

from workflows.remediation_start import start_remediation
from workflows.sends import failure_text, recorded_kinds
from workflows.watch_controls import WatchControls, until

READ_TIMEOUT = timedelta(seconds=30)
READ_RETRY = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=5))
LOCAL_READ_LIMIT = timedelta(seconds=2)
# A breach's remediation is started after its events are recorded and before its messages are
# delivered (before 2026-12-07: after their delivery, every try of it).
REMEDIATE_BEFORE_DELIVERY = "remediate-before-delivery"
# The owner's permission is read before a breach's remediation is started: refused, the breach
# tells so (before 2026-12-08: started all the same, said "started", and the run refused at once).
PERMISSION_BEFORE_REMEDIATION = "permission-before-remediation"
PERMISSION_RETRY = RetryPolicy(
    maximum_attempts=3,
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
)


def _payload(transition: Transition) -> dict[str, Any]:
    """What an alert of ``transition`` records (and its remediation is started with)."""
    return {
        "value": transition.value,
        "conditions": [c.model_dump() for c in transition.conditions],
    }


def _describe(transition: Transition, combine: str) -> str:
    """A breach or a recovery: the value and its lines, joined as they combine ("above 100 or
    below 10"; a recovery's read "value 50 (above 100, below 10)")."""
    rules = rules_in(rules_of(transition.conditions, combine), str)
    return f"value {transition.value:.15g} (rule: {rules})"


def _described_zh(transition: Transition, combine: str, title: str, source: str) -> Wording:
    """A breach or a recovery in Chinese, of ``source``: its lines said as the task page says
    them (高于 100 或 低于 10), by the notify activity (``Wording.rules``)."""
    body = f"{source}：当前值 {transition.value:.15g}（规则：{RULES}）"
    return Wording(title=title, body=body, rules=rules_of(transition.conditions, combine))


def _lines(config: ThresholdWatchConfig) -> tuple[Any, ...]:
    """What decides whether a value breaches: its conditions, how they combine, the margin."""
    return (config.conditions, config.combine, config.hysteresis)


def _source_said(source: MetricSource | None, *, zh: bool = False) -> str:
    """A metric source as its owner knows it: the Cloud Monitor metric and instance, the
    JSON document's URL and path, the Prometheus query."""
    if source is None:
        return "无数据源" if zh else "no source"
    if isinstance(source, HttpJsonSource):
        return (
            f"{source.url} 的 {source.json_path}" if zh else f"{source.json_path} of {source.url}"
        )
    if isinstance(source, PrometheusSource):
        return f"{source.url} 上的 {source.query}" if zh else f"{source.query} at {source.url}"
    named = ", ".join(f"{k}={v}" for k, v in source.dimensions.items())
    return f"{source.namespace}/{source.metric} ({named})"


@workflow.defn
class ThresholdWatchWorkflow(WatchControls):
    KIND = TaskKind.THRESHOLD_WATCH
    CONFIG = ThresholdWatchConfig
    config: ThresholdWatchConfig
    state: ThresholdWatchState

    @workflow.init
    def __init__(self, request: ThresholdWatchInput) -> None:
        super().__init__(request, request.state or ThresholdWatchState())
        self.sources_given = 0  # the sources updates gave this run (`config_replaced`)
        self.taken = 0  # the number of this run's last check whose reading was taken
        self.remediate_first = workflow.patched(REMEDIATE_BEFORE_DELIVERY)
        self.permission_first = workflow.patched(PERMISSION_BEFORE_REMEDIATION)

    @workflow.run
    async def run(self, request: ThresholdWatchInput) -> TaskStatus:
        """Check every interval until stopped; continue-as-new when Temporal suggests it."""
        self.show_attributes()
        return await self.watch_and_finish()

    async def watch(self) -> None:
        # The first check of a life is the baseline, taken now, and the second is spread;
        # a continued run waits the interval first (a check just ran).
        spread_next = self.state.checks == 0
        if not spread_next:
            await self.sleep_until_next(self.config.interval)
        while not self.state.stop_requested:
            await self.say_left_breach()
            if self.state.check_requested or not self.state.paused:
                self.state.check_requested = False
                self.checking = True
                try:
                    await self.check()
                finally:
                    self.checking = False
                self.checks_this_run += 1
            await self.flush_control_events()
            await self.continue_if_suggested()
            if not self.state.stop_requested:
                interval = self.config.interval
                if spread_next:
                    spread_next = False
                    interval += self.spread(interval)
                await self.sleep_until_next(interval)

    async def finish(self) -> None:
        """A stopped watch tells a breach it no longer watches, then ends."""
        await self.say_left_breach()
        await super().finish()

    async def sleep_until_next(self, interval: timedelta) -> None:
        """Wait out the interval (forever while paused) unless a signal or update wakes us."""
        self.wake = False
        # A stop ends the loop; a trigger that came during the check runs the next one now.
        if self.state.stop_requested or self.state.check_requested:
            return
        paused = self.state.paused
        await until(lambda: self.wake, None if paused else interval, "next check")

    async def check(self) -> None:
        self.state.checks += 1
        source = self.sources_given
        try:
            reading = await self.read()
        except ACTIVITY_FAILED as error:
            if self.heard(error):
                raise
            # A read that failed for good is a failed reading, not the end of the watch.
            reading = MetricReading(error=failure_text(error))
        if self.sources_given != source:
            # An update replaced the source while it was read: the rule is the new source's,
            # started fresh, and the old source's value (or failure) says nothing of it. Not
            # taken; the new source is read at once.
            self.state.check_requested = True
            return
        await self.apply(reading)

    async def read(self) -> MetricReading:
        if self.config.source is None:
            # The service resolves a named metric at creation; a run started around it has
            # none. A failed reading says so, and update_config can give the source.
            return MetricReading(
                error="source: no metric source (named metrics resolve at the API)"
            )
        # A short read with no side effect: a local activity, about half the history cost. It
        # holds the workflow task open, and every query waits for it: a read not done in
        # LOCAL_READ_LIMIT, or that failed, is finished as a regular activity.
        request = ReadMetricInput(
            source=self.config.source.model_dump(mode="json"), owner=self.user
        )
        # A URL's user info and query (where credentials go) are not shown.
        said = f"read {hide_in_urls(_source_said(self.config.source))}"
        try:
            return await workflow.execute_local_activity_method(
                WatchActivities.read_metric,
                request,
                start_to_close_timeout=LOCAL_READ_LIMIT,
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary=said,
            )
        except ACTIVITY_FAILED as error:
            if (isinstance(error, ApplicationError) and error.non_retryable) or self.heard(error):
                raise
        return await workflow.execute_activity_method(
            WatchActivities.read_metric,
            request,
            start_to_close_timeout=READ_TIMEOUT,
            retry_policy=READ_RETRY,
            summary=f"{said} again, off the workflow task",
        )

    async def apply(self, reading: MetricReading) -> None:
        """Take the reading into the state, then tell what it changed (its alerts, a
        remediation): the check's state is whole before its deliveries and their retries, so
        ``checking`` ends there and a baseline waiting for it answers at once."""
        now = workflow.now()
        self.state.last_checked_at = now
        key = f"{self.task}/{self.life}/{self._check}"
        targets = notification_targets(self.config.notification, self.config.targets)
        alerts: list[tuple[str, str, str, Wording, dict[str, Any]]] = []  # told once taken

        async def notify(what: str, title: str, body: str, zh: Wording) -> None:
            """Tell ``watch.{what}`` of this check as "{title}: {task}" (in Chinese as ``zh``,
            to whoever reads Chinese)."""
            if targets:
                zh = zh.model_copy(update={"title": f"{zh.title}：{self.task}"})
                message = Message(title=f"{title}: {self.task}", body=body, zh=zh)
                await self.notify(
                    kind=f"watch.{what}", key=f"{key}/{what}", message=message, targets=targets
                )

        def alert(what: str, title: str, body: str, zh: Wording, **payload: Any) -> None:
            alerts.append((what, title, body, zh, payload))

        transition = self.take(reading, now, alert)
        self.checking = False  # the state is whole: a baseline waiting answers now
        self.taken = self.state.checks
        remediate = (
            transition is not None
            and transition.kind is Breach.BREACH
            and self.config.on_breach == "remediate"
        )
        # The fix waits for no message: a receiver that hangs held the remediation for its
        # deliveries' every try (3 minutes at the default timeout). A run of before told each
        # alert whole (recorded, delivered) first.
        first = remediate and self.remediate_first
        # The state says they happened: a cancel heard meanwhile lets them all be told.
        with self.whole():
            for what, title, body, zh, payload in alerts:
                await self.record(f"watch.{what}", f"{key}/{what}", payload)
                if not first:
                    await notify(what, title, body, zh)
            if remediate and transition is not None and not await self._told_before(key):
                await self._remediate(transition, _payload(transition), key)
            if first:
                for what, title, body, zh, _ in alerts:
                    await notify(what, title, body, zh)

    def take(
        self,
        reading: MetricReading,
        now: datetime,
        alert: Callable[..., None],
    ) -> Transition | None:
        """Take the reading into the state, with ``alert`` for what it changed; the rule's
        transition, if any."""
        state = self.state
        if reading.value is None:
            # After failure_threshold failed reads in a row the watch is failing: said once.
            state.failures, state.last_error = state.failures + 1, reading.error
            if state.failures >= self.config.failure_threshold and not state.failing:
                state.failing = True
                body = f"{state.failures} reads in a row failed: {reading.error}"
                # Its reason in the reader's words, as the task page says it (Wording.reason).
                zh = Wording(
                    title="读取失败",
                    body=f"连续 {state.failures} 次读取失败：{REASON}",
                    reason=reading.error,
                )
                alert("failing", "Failing", body, zh, error=reading.error, failures=state.failures)
            return None
        if state.failing:
            # Not "Recovered": that is the metric's, back within its lines (a breach goes on).
            value = f"{reading.value:.15g}"
            zh = Wording(title="读取恢复", body=f"指标读取已恢复，当前值 {value}。")
            said = ("Reading again", f"The metric reads again: value {value}.", zh)
            alert("recovered", *said, after_failures=state.failures)
        state.failures, state.failing, state.last_error = 0, False, None
        taken = state.last_point_at
        if reading.at is not None and taken is not None and reading.at <= taken:
            # The newest datapoint is the one the rule took (a metric kept at a longer period
            # than the interval), or older: reading it is no new check; `for_checks` counts data.
            # Nor is its value the one shown: an older point's had replaced the rule's own.
            return None
        self.state.last_value = reading.value
        state.last_point_at = reading.at
        # A breach kept silent by the cooldown and still over the line when it ends is told then.
        self.state.rule, transition = evaluate(self.config, self.state.rule, reading.value, now)
        if transition is None:
            return None
        breach = transition.kind is Breach.BREACH
        if breach:
            self.state.breaches_total += 1
        title = "Breach" if breach else "Recovered"
        # What crossed said first: several watches of one kind read alike by their values.
        combine, source = self.config.combine, self.config.source
        zh = _described_zh(
            transition, combine, "越限告警" if breach else "已恢复", _source_said(source, zh=True)
        )
        state.alerts_told += 1
        told = _payload(transition) | {"told": state.alerts_told}
        body = f"{_source_said(source)}: {_describe(transition, combine)}"
        alert(transition.kind, title, body, zh, **told)
        return transition

    @property
    def _check(self) -> str:
        """This check in its life's keys: its number and its run (a run reset to its first task
        counts its checks again, and its check 1 was keyed as the replaced run's: a breach
        after a recovery told was taken for that run's breach and told to nobody). The run is
        its id's last 6 hex digits (random in any run id): a key of long names stays whole in
        its deliveries' keys, which they are found by. Not patched: a run started before keys
        its next checks so too, and a watch reset as docs/deploy.md says is one of them."""
        return f"{self.state.checks}@{workflow.info().run_id[-6:]}"

    async def _told_before(self, key: str) -> bool:
        """Whether this check's breach was one its watch's life told (and remediated) before
        a reset: recorded as told already (`record_event`, by the life's last alert), or this
        very check's remediation asked for by the run the reset replaced, when a check's key
        was its number alone (before 2026-12-06; a run's keys are its own now). The answer is
        read by its keys' ends, not the keys asked: a run of before replays its answer, given
        for its keys of then."""
        try:
            kinds = await recorded_kinds([f"{key}/breach", f"{key}/remediate"])
            told = [kind for asked, kind in kinds.items() if asked.endswith("/breach")]
            return told == [ALREADY_TOLD] or any(k.endswith("/remediate") for k in kinds)
        except ActivityError as error:  # not known: remediated, as before (a join at worst)
            if self.heard(error) and not self.going_on:
                raise
            self.note_failure("event watch.breach", error)
            return False

    async def _remediate(self, transition: Transition, payload: dict[str, Any], key: str) -> None:
        """Start the graded remediation of a breached TKE workload metric (or join it)."""
        source = self.config.source.model_dump(mode="json") if self.config.source else {}
        alert = breach_alert(
            source,
            transition.value,
            transition.conditions,
            f"threshold watch {self.task}: {_describe(transition, self.config.combine)}",
            self.config.combine,
        )

        async def said(what: str, **more: Any) -> None:  # the breach's one remediation event
            await self.tell(
                kind=f"watch.remediation_{what}",
                key=f"{key}/remediate",
                payload={**payload, **more},
            )

        if isinstance(alert, Refusal):
            # A watch stored before its create or update refused this (the same reason).
            await said("requested", reason=str(alert))
            return
        child = remediation_id(alert)
        # Asks for execute; the user's rollback_permission and the global executor switch
        # decide what actually runs.
        request = RemediationInput(
            alert=alert, user=self.user, mode="execute", requested_by=self.task
        )
        summary = f"Remediation of {alert.service} (threshold watch)"
        # The breach's check's key, asked again or not: one join of it is one audit row. Its
        # life (a run id), not its task: a watch's id is a name its owner chose.
        join_key = f"{self.life}/{self._check}/remediate"
        if self.permission_first:
            decision = await self._may_remediate(child, join_key)
            if decision is not None and decision.mode is None:
                refused = payload | {"remediation_id": child, "reason": decision.reason}
                await self._refused(alert.service, decision.reason, f"{key}/remediate", refused)
                return
        try:
            try:
                child, joined = await start_remediation(child, request, summary, join_key)
            except BaseException as cut:
                # Inside the check's `whole()` (its only caller): a cancel heard goes on.
                if not self.heard(cut):
                    raise
                # Its start (or join) cut by the run's cancel, heard: asked again, once. The
                # child's id is the alert's: a start that went through is joined.
                child, joined = await start_remediation(child, request, summary, join_key)
        except ACTIVITY_FAILED as error:
            if self.heard(error):
                raise
            reason = f"{child} was neither started nor joined: {failure_text(error)}"
            await said("requested", reason=reason)
            return
        await said("started", remediation_id=child, joined=joined)

    async def _may_remediate(self, child: str, key: str) -> PermissionDecision | None:
        """The owner's permission to start ``child`` now (its refusal audited under ``key``);
        None: not read (the run reads it itself, and tells its own refusal)."""
        asked = StartPermissionInput(
            run_key=child,
            key=f"{key}/permission",
            user=self.user,
            asked="execute",
            requested_by=self.task,
        )

        async def ask() -> PermissionDecision:
            return await workflow.execute_activity_method(
                RemediationActivities.check_start_permission,
                asked,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=PERMISSION_RETRY,
                summary=f"may {self.user} start remediation {child}",
            )

        try:
            try:
                return await ask()
            except BaseException as cut:
                # Inside the check's `whole()`: cut by the run's cancel, heard, it is asked again.
                if not self.heard(cut):
                    raise
                return await ask()
        except ACTIVITY_FAILED as error:
            if self.heard(error):
                raise
            self.note_failure("remediation permission", error)
            return None

    async def _refused(self, service: str, reason: str, key: str, payload: dict[str, Any]) -> None:
        """Tell the owner that the breach's remediation was refused, and why: its one
        remediation event (``key``), ``watch.remediation_refused``, not "started"."""
        body = f"The breach's remediation of {service} was not started: {reason}."
        said = REASONS_ZH.get(reason, reason)
        zh = Wording(
            title=f"修复被拒绝：{self.task}", body=f"越限后没有启动 {service} 的修复：{said}。"
        )
        await self.tell(
            kind="watch.remediation_refused",
            key=key,
            payload=payload,
            message=Message(title=f"Remediation refused: {self.task}", body=body, zh=zh),
            targets=notification_targets(self.config.notification, self.config.targets),
        )

    def config_replaced(self, old: ThresholdWatchConfig) -> None:
        if old.source == self.config.source:
            if _lines(old) == _lines(self.config):
                # The datapoint the rule took stays taken: read again at the check the update
                # wakes, it was a second breaching check of one spike (a cooldown changed).
                return
            # New lines: the breaching checks counted against the old ones say nothing of
            # these, and the datapoint read last is taken again, as one check of them.
            if not self.state.rule.breaching:
                self.state.rule.consecutive = 0
            self.state.last_point_at = None
            return
        # A new source: the datapoint read last is another series'.
        self.state.last_point_at = None
        self.sources_given += 1
        # Another metric or instance is a new series: its breach, its count of breaching
        # checks and its cooldown start fresh (carried over, a new metric over the line was
        # never told and the old breach's recovery could never come).
        rule = self.state.rule
        if rule.breaching and not rule.silent and self.state.last_value is not None:
            self.state.left_breach = {
                "source": old.source.model_dump(mode="json") if old.source else None,
                "said": _source_said(old.source),
                "value": self.state.last_value,
                "conditions": [c.model_dump() for c in old.conditions],
            }
        self.state.rule, self.state.last_value = ThresholdState(), None

    async def say_left_breach(self) -> None:
        """Tell the owner, once, that the breach they were told of is no longer watched: its
        source was replaced, so no recovery will come for it."""
        left = self.state.left_breach
        if left is None:
            return
        self.state.left_breach = None
        self.state.alerts_told += 1
        body = (
            f"The watch now reads {_source_said(self.config.source)}. The breach of "
            f"{left['said']} (last value {left['value']:.15g}) is no longer watched: "
            "no recovery will be told for it."
        )
        now_read = _source_said(self.config.source, zh=True)
        zh = Wording(
            title=f"不再监控：{self.task}",
            body=f"监控已改为读取 {now_read}。之前 {left['said']} 的越限"
            f"（最后一次的值 {left['value']:.15g}）不再监控，也不会再通知它的恢复。",
        )
        await self.tell(
            kind="watch.breach_unwatched",
            key=f"{self.task}/{self.life}/{self._check}/unwatched",
            payload={k: v for k, v in left.items() if k != "said"}
            | {"told": self.state.alerts_told},
            message=Message(title=f"No longer watched: {self.task}", body=body, zh=zh),
            targets=notification_targets(self.config.notification, self.config.targets),
        )

    def asked_check_ended(self) -> Callable[[], bool]:
        # A check whose source an update replaced during its read took nothing: the check
        # asked for is the next one whose reading is taken (it comes at once).
        asked = self.checks_started()
        return lambda: self.taken > asked

    def parse_config(
        self, config: dict[str, Any], context: dict[str, Any] | None = None
    ) -> ThresholdWatchConfig:
        parsed = ThresholdWatchConfig.model_validate(config, context=context)
        if parsed.source is None:
            raise ValueError(
                "source: give a resolved metric source (named metrics resolve at the API)"
            )
        return parsed

    @workflow.query
    def status(self) -> TaskStatus:
        checked = self.state.last_checked_at
        return self.task_status(
            last_value=self.state.last_value,
            last_checked_at=checked.isoformat() if checked else None,
            last_datapoint_at=point.isoformat() if (point := self.state.last_point_at) else None,
            breaching=self.state.rule.breaching,
            failing=self.state.failing,
            # Failed reads in a row: "failing" says the threshold was passed, this how far.
            failures=self.state.failures,
            last_error=self.state.last_error,
            breaches_total=self.state.breaches_total,
            values=[[t.isoformat(), v] for t, v in self.state.rule.values],
        )
