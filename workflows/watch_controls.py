"""Controls every watch shares: pause, resume, check now, stop — as workflow state.

Failures are data: an activity that finally fails (a check, an event, a delivery) is
counted, recorded when possible and shown in status, and the loop goes on. Only a stop
(or delete) ends a watch, or its run's cancel in Temporal (the Web UI's "Request
Cancellation"): taken as a stop, and the run then ends Canceled (`WatchControls.heard`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from ambient.domain.configs import STORED
    from ambient.domain.notify import Message, Target
    from ambient.remediation.safety import a_while
    from ambient.temporal import KIND, STATE, USER
    from ambient.watches.configs import TaskKind, TaskState
    from ambient.watches.models import (
        Failure,
        TaskStatus,
        ThresholdWatchInput,
        WatchLife,
        WebMonitorInput,
    )
    from ambient.watches.summaries import watch_summary

from workflows.sends import delivery_errors, failure_text, record_event

# The second check comes up to this much (at most half an interval) after the baseline.
FIRST_CHECK_JITTER = timedelta(seconds=60)
# How long ``checked_now`` (what check now answers) waits for the check it asked for.
CHECK_NOW_WAIT = timedelta(seconds=30)
# The passes a run's continue-as-new waits at most for checks asked (check now waits for them).
HELD_PASSES = 3
# What an update of a stopping watch is refused with (the service's refusal says it too).
STOPPED = "the task is stopped; create it again to restart it"
# The error type of an update refused because its config was merged over another than the one
# in force (the service reads it again and merges again).
OVERTAKEN = "ConfigOvertaken"


async def until(condition: Callable[[], bool], limit: timedelta | None, summary: str) -> None:
    """Wait for ``condition`` at most ``limit`` (None: for good; not at all if not positive);
    ``summary``: what its timer waits for, as the Web UI labels it (``limit`` is added)."""
    if limit is None or limit > timedelta(0):
        said = f"{summary}, {a_while(limit)}" if limit is not None else summary
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(condition, timeout=limit, timeout_summary=said)


class WatchControls:
    """The signals that steer a watch, and what every watch's loop shares.

    Signals only change state; the loop acts on them (native pause is pre-release).
    Subclasses set KIND and CONFIG, pass their input and state (a `WatchLife`) to `__init__`
    (a config with `interval`), implement `status()` and run their loop (a web monitor's
    polls, a threshold watch's checks).
    """

    KIND: TaskKind
    CONFIG: type[Any]
    # A web monitor's state is whole between polls; a threshold watch's only between checks.
    POLLS = False
    # A web monitor checks a new configuration at once (new pages get their baseline).
    CHECK_ON_UPDATE = False
    # How long the baseline update waits for the first check (None: for good).
    BASELINE_WAIT: timedelta | None = None
    config: Any
    state: WatchLife

    def __init__(self, request: WebMonitorInput | ThresholdWatchInput, state: WatchLife) -> None:
        self.request = request
        self.user, self.task = request.user, request.task
        self.config = request.config
        self.state = state
        self.wake = False
        # A check is under way: a threshold watch's until its reading is taken (its alerts
        # are told after), a web monitor's poll until it hands back.
        self.checking = False
        self.checks_this_run = 0
        self.cancel: BaseException | None = None  # the run's cancel, heard: raised at its end
        # A check's alerts or the watch's end under way: a cancel heard lets it go on (`whole`).
        self.going_on = False
        self.held = 0  # the passes a continue-as-new of this run waited (`holds_for_check`)

    @property
    def life(self) -> str:
        """One life of the task: the first run of its continue-as-new chain.

        Keys carry it, so a task created again under the same id gets fresh keys and its
        first alerts are not taken for duplicates of the previous life's.
        """
        return workflow.info().first_execution_run_id

    @workflow.signal
    def pause(self) -> None:
        if not self.state.paused and not self.state.stop_requested:
            self.state.paused, self.wake = True, True
            self.state.control_events.append("paused")
            workflow.upsert_search_attributes([STATE.value_set(TaskState.PAUSED.value)])

    @workflow.signal
    def resume(self) -> None:
        if self.state.paused and not self.state.stop_requested:
            # Resuming checks at once: the next check is due anyway.
            self.state.paused, self.wake, self.state.check_requested = False, True, True
            self.state.control_events.append("resumed")
            workflow.upsert_search_attributes([STATE.value_set(TaskState.ACTIVE.value)])

    @workflow.signal
    def check_now(self) -> None:
        if self.state.stop_requested:
            # Its end under way: no check comes, and a wake would cut its last sends short.
            workflow.logger.info("check now of a stopped watch: nothing to do")
            return
        self.ask_check()

    def ask_check(self) -> None:
        # A trigger during a check stays set and runs another check right after it.
        self.state.check_requested, self.wake = True, True

    def checks_started(self) -> int:
        """The checks this watch started (a web monitor: its polls of this run)."""
        return self.state.checks

    def checks_ended(self) -> int:
        """The checks started that ended: all but one under way (a threshold watch's once its
        reading is taken, a web monitor's poll once handed back)."""
        return self.checks_started() - self.checking

    @workflow.update
    async def checked_now(self) -> TaskStatus:
        """Check now, and answer the status once the check asked for ended (its reading
        taken, a web monitor's poll handed back or ended without it), or the watch is
        stopping: a web page whose server asked for a pause shows it (``not_before``), since
        that check did not ask it; a threshold watch shows what it read. What check now
        answers; the ``check_now`` signal alone does not wait."""
        self.ask_check()
        ended = self.asked_check_ended()
        # Bounded: a continue-as-new waits for every handler, and no check runs meanwhile.
        await until(
            lambda: self.state.stop_requested or ended(), CHECK_NOW_WAIT, "check now: its check"
        )
        return self.status()

    def asked_check_ended(self) -> Callable[[], bool]:
        """Whether the check asked for now has ended (each watch says when)."""
        raise NotImplementedError

    @checked_now.validator
    def validate_check(self) -> None:
        if self.state.stop_requested:
            # Its end under way: no check comes, and a wake would cut its last sends short.
            raise ValueError(STOPPED)

    @workflow.signal
    def stop(self) -> None:
        if self.state.stop_requested:
            # Asked again (a repeated delete, a retried stop; the run's cancel heard as its
            # end goes on): that end is under way, and a wake would cut its last sends short.
            workflow.logger.info("stop of a stopped watch: nothing to do")
            return
        workflow.upsert_search_attributes([STATE.value_set(TaskState.STOPPED.value)])
        self.state.stop_requested, self.wake = True, True

    @workflow.update
    async def baseline(self) -> TaskStatus:
        """Wait for the first check of this task and return its status (the baseline): its
        reading taken, not its alerts delivered (a slow channel would hold the answer)."""
        await until(self.baseline_taken(), self.BASELINE_WAIT, "baseline: the first check")
        return self.status()

    def baseline_taken(self) -> Callable[[], bool]:
        """Whether the baseline update answers: the first check made (a threshold watch's
        first read counts though it failed)."""
        # A poll's state is whole between polls: no need to wait for the one running now.
        return lambda: self.state.checks > 0 and (self.POLLS or not self.checking)

    @workflow.update
    async def update_config(
        self, config: dict[str, Any], based_on: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Replace the configuration (a threshold watch's breach state carries over to new
        lines, not to a new source); the next check uses it. ``based_on``: the config in force
        the caller merged ``config`` over (the validator refuses it when another is in force
        now); None (a replace, or an update recorded before it was sent) replaces whatever is."""
        # Read as recorded: the validator refused what is refused now before it was recorded.
        old, self.config = self.config, self.parse_config(config, context=STORED)
        self.config_replaced(old)
        summary = watch_summary(self.config, self.user)
        if summary != watch_summary(old, self.user):
            workflow.upsert_memo({"summary": summary})
            workflow.set_current_details(summary)
        self.wake = True
        if self.CHECK_ON_UPDATE and not self.state.paused:
            self.state.check_requested = True
        return self.config.model_dump(mode="json")

    @update_config.validator
    def validate_config(
        self, config: dict[str, Any], based_on: dict[str, Any] | None = None
    ) -> None:
        # Raising here rejects the update before it enters history: nothing changes.
        if self.state.stop_requested:
            # The watch ends once its last event is recorded: a new config would never run.
            raise ValueError(STOPPED)
        # Compare-and-set: a merge over a config another update replaced since would put back
        # the fields that update changed. Handlers of updates taken together run one by one,
        # each to its end (no await in it), so this sees the config the one before set.
        if based_on is not None and based_on != self.config.model_dump(mode="json"):
            raise ApplicationError(
                "another update changed the config since it was read; read it and merge again",
                type=OVERTAKEN,
                non_retryable=True,
            )
        self.parse_config(config)

    def config_replaced(self, old: Any) -> None:
        """What a watch forgets when its ``old`` config is replaced (nothing unless it says)."""

    def parse_config(self, config: dict[str, Any], context: dict[str, Any] | None = None) -> Any:
        """The watch's config from an update (``context``: read as recorded)."""
        return self.CONFIG.model_validate(config, context=context)

    def current_state(self) -> TaskState:
        if self.state.stop_requested:
            return TaskState.STOPPED
        return TaskState.PAUSED if self.state.paused else TaskState.ACTIVE

    def status(self) -> TaskStatus:
        raise NotImplementedError

    def task_status(self, **detail: Any) -> TaskStatus:
        """The status query's answer: the watch's own ``detail``, then the fields every watch
        shows (its life and what failed outside checks)."""
        failure = self.state.last_failure
        return TaskStatus(
            task_id=workflow.info().workflow_id,
            kind=self.KIND,
            user=self.user,
            state=self.current_state(),
            checks=self.state.checks,
            config=self.config.model_dump(mode="json"),
            detail={
                **detail,
                "life": self.life,
                "delivery_failures": self.state.delivery_failures,
                "event_failures": self.state.event_failures,
                "last_failure": failure.model_dump(mode="json") if failure else None,
            },
        )

    def continue_suggested(self) -> bool:
        if workflow.info().is_continue_as_new_suggested():
            return True
        after = self.request.continue_as_new_after_checks
        return after is not None and self.checks_this_run >= after

    def show_attributes(self) -> None:
        workflow.upsert_search_attributes(
            [
                KIND.value_set(self.KIND.value),
                USER.value_set(self.user),
                STATE.value_set(self.current_state().value),
            ]
        )

    def heard(self, error: BaseException) -> bool:
        """Whether ``error`` is the run's cancel in Temporal (the Web UI's "Request
        Cancellation"), heard at a wait (asyncio's) or as the cancellation of the activity the
        run awaited: kept (raised at the end: the run ends Canceled) and taken as a stop, so
        the watch ends as a delete ends it."""
        if not is_cancelled_exception(error):
            return False
        self.cancel = self.cancel or error
        self.stop()
        return True

    @contextlib.contextmanager
    def whole(self) -> Iterator[None]:
        """What runs inside goes on to its end though the run's cancel is heard meanwhile, as
        a stop (a delete) at that instant lets it: a check's alerts, each recorded and told (a
        delivery the cancel cut given up), or the watch's end. The cancel, a stop, ends the
        watch after it, and the run then ends Canceled."""
        going_on, self.going_on = self.going_on, True
        try:
            yield
        finally:
            self.going_on = going_on

    async def until_heard(self, condition: Callable[[], bool]) -> None:
        """Wait for ``condition``; the run's cancel heard meanwhile (a stop) does not end the
        wait unless ``condition`` says so."""
        while True:
            try:
                return await workflow.wait_condition(condition)
            except asyncio.CancelledError as cancel:
                if not self.heard(cancel):
                    raise

    async def watch(self) -> None:
        """The watch's loop, until stopped."""
        raise NotImplementedError

    async def watch_and_finish(self) -> TaskStatus:
        """The watch until stopped, then its end. Cancelled in Temporal, whatever it was
        doing, it ends as stopped, then Canceled (its cancel heard, raised)."""
        # The Web UI's "Current Details": the summary as the config is now. Its Summary is the
        # first run's start's, which an update does not change; a run continued as new has
        # none (Temporal does not carry it over, and continue_as_new cannot give one).
        workflow.set_current_details(watch_summary(self.config, self.user))
        try:
            await self.watch()
        except BaseException as exc:
            if not self.heard(exc):
                raise
        with self.whole():
            await self.finish()
        if self.cancel is not None:
            raise self.cancel
        return self.status()

    async def continue_if_suggested(self) -> None:
        """Continue-as-new between checks when Temporal (or a test) suggests it, with this
        run's input, the config and the state (which carries the controls) as they are now."""
        if self.continue_suggested():
            if self.holds_for_check():
                return  # the next pass makes the check asked
            # A check asked meanwhile (check now waits for it, this for check now) goes back
            # to the loop to be made.
            await workflow.wait_condition(
                lambda: workflow.all_handlers_finished() or self.holds_for_check(count=False)
            )
            if self.holds_for_check():
                return
            if not self.state.stop_requested:
                next_run = {"config": self.config, "state": self.state}
                # The next run's memo is the run's start's unless given: an update's summary
                # would be lost. It has no Summary: its Current Details say the summary.
                workflow.continue_as_new(
                    self.request.model_copy(update=next_run), memo=workflow.memo()
                )

    def holds_for_check(self, count: bool = True) -> bool:
        """Whether a continue-as-new waits a pass for a check asked: it waits for check now
        (every handler), and check now for a check only the next run would make. At most
        HELD_PASSES passes a run (``count``: take one), so checks asked every pass still let
        it continue."""
        if not (self.state.check_requested and self.held < HELD_PASSES):
            return False
        self.held += count
        return True

    async def finish(self) -> None:
        """The watch stopped: show it and say so, once."""
        await self.flush_control_events()
        workflow.upsert_search_attributes([STATE.value_set(TaskState.STOPPED.value)])
        await self.tell(
            kind="watch.stopped",
            key=f"{self.task}/{self.life}/stopped",
            payload={"checks": self.state.checks},
        )

    @staticmethod
    def spread(interval: timedelta) -> timedelta:
        """A deterministic delay for the second check, so watches created together drift apart."""
        limit = min(FIRST_CHECK_JITTER.total_seconds(), interval.total_seconds() / 2)
        return timedelta(seconds=workflow.random().uniform(0, limit))

    def note_failure(self, what: str, error: BaseException) -> str:
        text = failure_text(error)
        self.state.last_failure = Failure(what=what, error=text[:500], at=workflow.now())
        return text

    async def tell(
        self,
        *,
        kind: str,
        key: str,
        payload: dict[str, Any],
        message: Message | None = None,
        targets: list[Target] | None = None,
    ) -> None:
        """Record an event and, with a message, notify the targets, both once per key; a
        failure is counted and shown instead of ending the watch."""
        await self.record(kind, key, payload)
        if message is not None and targets:
            await self.notify(kind=kind, key=key, message=message, targets=targets)

    async def notify(self, *, kind: str, key: str, message: Message, targets: list[Target]) -> None:
        """Notify the targets of the event ``kind`` recorded under ``key``, once per key; a
        failure is counted and shown instead of ending the watch."""
        try:
            errors = await delivery_errors(
                user=self.user,
                key=key,
                message=message,
                targets=targets,
                about=kind,
                task=self.task,
            )
        except ActivityError as error:
            if self.going_on and self.heard(error):
                return  # given up; what is under way goes on, the cancel raised after the end
            raise
        if not errors:
            return
        self.note_failure(f"delivery of {kind}", RuntimeError("; ".join(errors)))
        self.state.delivery_failures += 1
        await self.record(
            "watch.delivery_failed",
            f"{key}/delivery-failed",
            {"event": kind, "title": message.title, "errors": errors[:10]},
        )

    async def record(
        self, kind: str, key: str, payload: dict[str, Any], *, again: bool = False
    ) -> None:
        """Record an event once per key; a failure is counted and shown. ``again``: the
        record of ``key`` the run's cancel cut (made again once, not more)."""
        try:
            await record_event(user=self.user, task=self.task, kind=kind, key=key, payload=payload)
        except ActivityError as error:
            if self.heard(error):
                if not self.going_on:
                    raise
                if not again:
                    # Cut (TRY_CANCEL): one not started yet never runs. The cancel is heard
                    # once: this one is made; one that ran as well is the same (once per key).
                    await self.record(kind, key, payload, again=True)
                return  # what is under way goes on (its other events said), the cancel after
            self.state.event_failures += 1
            self.note_failure(f"event {kind}", error)

    async def flush_control_events(self) -> None:
        # Each is taken from the state before it is recorded: a cancel heard at its record goes
        # on to record it (and the rest), as at a check's alerts.
        with self.whole():
            while self.state.control_events:
                # Taken one at a time: one that arrives during a recording is flushed too.
                name = self.state.control_events.pop(0)
                self.state.control_count += 1
                await self.tell(
                    kind=f"watch.{name}",
                    key=f"{self.task}/{self.life}/control/{self.state.control_count}",
                    payload={},
                )
