"""DailyBriefingWorkflow — `daily-briefing/{user}`: one long-running workflow per user.

One run is one local day (continue-as-new between days keeps each history small):
plan the day (local activity: time zone and DST), prepare at ``prepare_at`` (or earlier
when a greeting or a regenerate asks), hold the briefing through the greeting window,
speak it at the first greeting inside the window (an update: the answer is the text),
push it through the user's channels when nobody greeted by the window's end.

Exactly once per day holds because the greeting handler checks and sets ``given_at``
with no await in between: Temporal runs a workflow's handlers one at a time between
awaits, so of any number of concurrent greetings exactly one finds it unset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.briefing import BriefingActivities
    from ambient.briefing.config import DayPlan
    from ambient.briefing.models import (
        PREPARE_ATTEMPTS,
        PREPARE_TIMEOUT,
        BriefingRun,
        BriefingStatus,
        GreetingRecord,
        GreetOutcome,
        GreetRequest,
        GreetResult,
        PlanRequest,
        PreparedBriefing,
        PrepareRequest,
        PushRequest,
        greeting_text,
    )
    from ambient.domain.notify import NotifyResult, Target
    from ambient.temporal import ACTIVITY_FAILED, STATE

from workflows.reminder import check_news_pages
from workflows.watch_controls import NOTIFY_RETRY, SHORT, deliver, failure_text

# A greeting while paused is answered "paused" (the day is not used up). Deprecated: runs
# recorded with its marker replay; runs from before it (they spoke the briefing) do not.
PAUSED_GREETING = "paused-greeting"
# A briefing paused at its preparation time is prepared only once resumed (runs recorded
# before it prepared while paused).
PAUSED_PREPARES_NOTHING = "paused-prepares-nothing"
# A greeting after a failed preparation starts it again (runs recorded before it answered
# "could not be prepared" for the rest of the day, until a regenerate).
GREETING_PREPARES_AGAIN = "greeting-prepares-again"
# A stop shows in list_tasks at once, and a late pause or resume does not hide it (runs
# recorded before it showed "active" until they ended).
STOP_SHOWN = "stop-shown-at-once"
# A briefing prepared before its preparation time (regenerated the evening before) is
# prepared again at that time (runs recorded before it kept the early one for the day).
EARLY_PREPARED_AGAIN = "early-prepared-again"
# A push whose notify failed for good is recorded too: the channels that took it before (the
# inbox) make it pushed (runs recorded before it left the day "ready").
FAILED_PUSH_RECORDED = "failed-push-recorded"
# A greeting is refused when the workflow takes it up this long after its caller stopped
# waiting (GreetRequest.answer_by): room for the service's clock running behind the server's.
GREETING_CLOCK_SKEW = timedelta(seconds=5)
GREETING_TOO_LATE = "GreetingTooLate"  # the refusal's error type
# A greeting refused because a new config is replacing the run (the new run speaks it).
GREETING_HANDED_OVER = "GreetingHandedOver"
# How long a hand-over refuses greetings: the service replaces the run within half of it or
# not at all (its create failed, or it died), and then the run speaks again.
HAND_OVER_HOLD = timedelta(seconds=30)
# A greeting that arrives before preparation finished waits this long, then says "preparing".
GREETING_WAIT = timedelta(seconds=20)
PREPARE_RETRY = RetryPolicy(
    maximum_attempts=PREPARE_ATTEMPTS, initial_interval=timedelta(seconds=5)
)


@workflow.defn
class DailyBriefingWorkflow:
    @workflow.init
    def __init__(self, run: BriefingRun) -> None:
        self.run_input = run
        self.carry = run.carry.model_copy()
        self.paused = run.carry.paused
        self.stopping = False
        self.day: DayPlan | None = None
        self.phase = "planning"
        self.prepared: PreparedBriefing | None = None
        self.prepared_at: datetime | None = None
        self.preparation_error: str | None = None
        self.prepare_wanted = False
        self.given_at: datetime | None = None
        self.given_via: str | None = None
        self.given_request: str | None = None
        self.pushed_at: datetime | None = None
        # A new config is replacing this run: no greeting speaks here meanwhile (hand_over).
        self.handed_over_at: datetime | None = None
        self._prepare_lock = asyncio.Lock()
        self._preparing_again: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, run: BriefingRun) -> str:
        if self.paused:
            self.phase = "paused"
            await workflow.wait_condition(lambda: not self.paused or self.stopping)
        if self.stopping:
            return "stopped"
        config = run.config
        self.day = day = await workflow.execute_local_activity_method(
            BriefingActivities.plan_briefing_day,
            PlanRequest(
                now=workflow.now(),
                config=config,
                after=self.carry.last_date,
                after_midnight=self.carry.last_midnight,
            ),
            start_to_close_timeout=SHORT,
        )
        self._details(day)
        self.phase = "waiting to prepare"
        await self._wait_until(day.prepare_at, lambda: self.prepare_wanted or self.stopping)
        held = False
        if self.paused and workflow.patched(PAUSED_PREPARES_NOTHING):
            # Paused: no source is read and no queued problem is spent on a briefing nobody
            # hears, unless it is resumed before the window ends.
            self.phase = "paused"
            await self._wait_until(day.window_end, lambda: not self.paused or self.stopping)
            held = self.paused
        if self.stopping:
            return "stopped"
        if not held:
            await self._prepare("scheduled")
            self.phase = "in window" if workflow.now() >= day.window_start else "prepared"
        # The run stays on its day until the window ends (regenerate and send act on it).
        # The greeting is written to the database then, not while the greeting waits: the
        # update's answer leaves with the workflow task, which would otherwise also carry
        # the write (the service overlays the live state on the stored row meanwhile).
        await self._wait_until(day.window_end, lambda: self.stopping)
        if self.given_at is not None:
            await self._record_greeting(day, self.given_at)
        elif config.push_if_not_greeted and self.prepared and not self.stopping and not self.paused:
            self.phase = "pushing"
            await self._push(day.date, "not greeted", f"{run.task_id}/{day.date}/push")
        if self.stopping:
            return "stopped"
        # Greetings after the window on the same date still answer "already given at HH:MM".
        self.carry.last_date, self.carry.last_midnight = day.date, day.logs_to
        self.carry.days_completed += 1
        if self.given_at is not None:
            self.carry.last_given_at = self.given_at
        self.carry.paused = self.paused
        self.phase = "done"
        # A preparation a greeting started again ends in this run, not cut off by the next.
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._prepare_lock.locked()
        )
        workflow.continue_as_new(
            BriefingRun(user=run.user, task_id=run.task_id, config=config, carry=self.carry)
        )

    # --- greeting ---------------------------------------------------------------------

    @workflow.update
    async def greet(self, request: GreetRequest) -> GreetResult:
        """The voice trigger: the briefing at the first greeting inside today's window."""
        if self.paused:
            workflow.deprecate_patch(PAUSED_GREETING)
            # At once, with or without a day: a paused run may not even have planned one.
            return self._short_answer(GreetOutcome.PAUSED)
        if self.day is None:
            await _wait(lambda: self.day is not None or self._handed_over(), SHORT)
        day = self.day
        if day is None:
            # Still planning (or paused meanwhile): an answer, never a failed workflow task.
            outcome = GreetOutcome.PAUSED if self.paused else GreetOutcome.PREPARING
            return self._short_answer(outcome)
        now = workflow.now()
        given = day.given_on(now, self.given_at, self.carry.last_given_at)
        if given is not None:
            return self._already(day, given)
        if not day.open_at(now):
            window = f"{day.local_hhmm(day.window_start)}–{day.local_hhmm(day.window_end)}"
            return self._short_answer(GreetOutcome.OUTSIDE_WINDOW, day, window=window)
        if self.prepared is None:
            # Start (or join) preparation, waiting a bounded time for it.
            self.prepare_wanted = True
            if (
                self.preparation_error is not None
                and not self._prepare_lock.locked()
                and workflow.patched(GREETING_PREPARES_AGAIN)
            ):
                # What failed (a database away at preparation time) may be back: this
                # greeting tries again, and the next one hears it if it takes longer.
                self.preparation_error = None
                self._preparing_again = asyncio.create_task(self._prepare("greeting"))
            wait = GREETING_WAIT
            if request.wait_seconds is not None:  # no longer than the caller listens
                wait = min(wait, timedelta(seconds=request.wait_seconds))
            if wait > timedelta(0):
                await _wait(
                    lambda: (
                        self.prepared is not None
                        or self.preparation_error is not None
                        or self._handed_over()
                    ),
                    wait,
                )
            if self._handed_over():  # a new config is replacing the run while this greeting waited
                raise _handed_over_refusal()
            if self.prepared is None:
                failed = self.preparation_error is not None
                outcome = GreetOutcome.UNAVAILABLE if failed else GreetOutcome.PREPARING
                return self._short_answer(outcome, day)
        # No await between this check and the assignment: exactly one greeting speaks.
        if self.given_at is not None:
            return self._already(day, self.given_at)
        self.given_at, self.given_via, self.given_request = now, request.via, request.request_id
        self.phase = "given"
        prepared = self.prepared
        return GreetResult(
            outcome=GreetOutcome.SPOKEN,
            text=prepared.spoken_text,
            segments=prepared.spoken_segments,
            date=prepared.date,
            given_at=now,
            given_at_local=day.local_hhmm(now),
            generated_by=prepared.generated_by,
        )

    @greet.validator
    def _validate_greet(self, request: GreetRequest) -> None:
        if self._handed_over():
            raise _handed_over_refusal()
        # A refused update leaves no event in the history, so runs recorded before it replay.
        late = request.answer_by is not None and (
            workflow.now() > request.answer_by + GREETING_CLOCK_SKEW
        )
        if late:
            raise ApplicationError(
                "the caller stopped waiting for this greeting; the day is not used up",
                type=GREETING_TOO_LATE,
                non_retryable=True,
            )

    def _already(self, day: DayPlan, given: datetime) -> GreetResult:
        hhmm = day.local_hhmm(given)
        answer = self._short_answer(GreetOutcome.ALREADY_GIVEN, day, hhmm=hhmm)
        return answer.model_copy(update={"given_at": given, "given_at_local": hhmm})

    def _short_answer(
        self, outcome: GreetOutcome, day: DayPlan | None = None, **words: str
    ) -> GreetResult:
        """A short answer that is not the briefing itself (about ``day``, once there is one)."""
        text = greeting_text(outcome, self.run_input.config.language, **words)
        return GreetResult(
            outcome=outcome, text=text, date=day.date if day else None, window=words.get("window")
        )

    @workflow.update
    def hand_over(self) -> BriefingStatus:
        """The run's last status before a new config replaces it: greetings are refused for
        HAND_OVER_HOLD (one waiting for the preparation too), so one given here is in what
        the new run carries, and none is lost."""
        self.handed_over_at = workflow.now()
        return self.status()

    def _handed_over(self) -> bool:
        at = self.handed_over_at
        return at is not None and workflow.now() < at + HAND_OVER_HOLD

    # --- regenerate, send --------------------------------------------------------------

    @workflow.update
    async def regenerate(self) -> PreparedBriefing:
        """Prepare the current day's briefing again now (a new version; it is not re-spoken)."""
        await self._prepare("regenerate")
        if self.prepared is None:
            raise ApplicationError(
                f"preparation failed: {self.preparation_error}", type="PreparationFailed"
            )
        return self.prepared

    @regenerate.validator
    def _validate_regenerate(self) -> None:
        if self.day is None:
            # A run that starts paused plans no day until resumed: waiting would not help.
            if self.paused:
                raise ValueError("the daily briefing is paused: resume it, then regenerate")
            raise ValueError("the day is still being planned; try again in a moment")

    @workflow.update
    async def send(self, request: PushRequest) -> NotifyResult:
        """Push a prepared briefing through the user's channels on request."""
        return await self._push(request.date, request.reason, request.key)

    @send.validator
    def _validate_send(self, request: PushRequest) -> None:
        known = {self.carry.last_date, self.prepared.date if self.prepared else None}
        if request.date not in known:
            raise ValueError(
                f"date: no prepared briefing for {request.date}; "
                f"known: {', '.join(sorted(d for d in known if d)) or 'none yet'}"
            )

    # --- controls ------------------------------------------------------------------------

    @workflow.signal
    def pause(self) -> None:
        self.paused = True
        self._show_state("paused")

    @workflow.signal
    def resume(self) -> None:
        self.paused = False
        self._show_state("active")

    @workflow.signal
    def stop(self) -> None:
        if not self.stopping and workflow.patched(STOP_SHOWN):
            workflow.upsert_search_attributes([STATE.value_set("stopped")])
        self.stopping = True

    def _show_state(self, state: str) -> None:
        # Stopping, the briefing stays listed "stopped" (a door that looked before the delete).
        if not (self.stopping and workflow.patched(STOP_SHOWN)):
            workflow.upsert_search_attributes([STATE.value_set(state)])

    @workflow.query
    def already_given(self, request_id: str) -> GreetResult | None:
        """The "already given" answer when this day's briefing was spoken to another request.

        Lets callers skip the update (and its history writes) for the common repeat greeting;
        the update stays the only path that can speak, so exactly-once is unaffected.
        """
        if self.day is None or self.given_at is None or request_id == self.given_request:
            return None
        return self._already(self.day, self.given_at)

    @workflow.query
    def status(self) -> BriefingStatus:
        return BriefingStatus(
            user=self.run_input.user,
            task_id=self.run_input.task_id,
            config=self.run_input.config,
            paused=self.paused,
            day=self.day,
            phase=self.phase,
            prepared=self.prepared,
            prepared_at=self.prepared_at,
            preparation_error=self.preparation_error,
            given_at=self.given_at,
            given_via=self.given_via,
            pushed_at=self.pushed_at,
            push_error=self.carry.last_push_error,
            record_error=self.carry.last_record_error,
            days_completed=self.carry.days_completed,
            last_date=self.carry.last_date,
            last_midnight=self.carry.last_midnight,
            last_given_at=self.carry.last_given_at,
            stopping=self.stopping,
        )

    # --- steps ---------------------------------------------------------------------------

    async def _wait_until(self, instant: datetime, done: Callable[[], bool]) -> None:
        remaining = instant - workflow.now()
        if remaining > timedelta(0):
            await _wait(done, remaining)

    async def _prepare(self, reason: str) -> None:
        async with self._prepare_lock:
            if self.day is None or (reason != "regenerate" and self._prepared_in_time()):
                return  # no day planned yet (the regenerate validator refuses that case)
            self.phase = "preparing"
            run = self.run_input
            news = await self._news() if run.config.news_urls else []
            try:
                self.prepared = await workflow.execute_activity_method(
                    BriefingActivities.prepare_briefing,
                    PrepareRequest(
                        user=run.user,
                        task_id=run.task_id,
                        config=run.config,
                        day=self.day,
                        news=news,
                        reason=reason,
                    ),
                    start_to_close_timeout=PREPARE_TIMEOUT,
                    heartbeat_timeout=timedelta(minutes=1),
                    retry_policy=PREPARE_RETRY,
                )
                self.prepared_at, self.preparation_error = workflow.now(), None
            except ActivityError as exc:
                self.preparation_error = str(exc.cause or exc)
                workflow.logger.warning("briefing preparation failed: %s", self.preparation_error)
            finally:
                self.phase = "prepared" if self.prepared else "preparation failed"
                self._details(self.day)

    def _prepared_in_time(self) -> bool:
        """Prepared, and not before the preparation time: earlier, yesterday was not over
        (nor the night's remediation sweep), so the scheduled preparation makes it again."""
        if self.prepared is None:
            return False
        day, at = self.day, self.prepared_at
        early = day is not None and at is not None and at < day.prepare_at
        return not (early and workflow.patched(EARLY_PREPARED_AGAIN))

    async def _news(self) -> list[str]:
        run, config = self.run_input, self.run_input.config
        # Each day compares with the page as the previous day's run stored it.
        checks = await check_news_pages(f"{run.task_id}/news", config.news_urls, config.categories)
        lines: list[str] = []
        for url, check in zip(config.news_urls, checks, strict=True):
            if isinstance(check, BaseException):
                lines.append(f"{url}: unavailable ({failure_text(check)})")
            elif check.outcome == "error":
                lines.append(f"{url}: unavailable ({check.error})")
            elif check.outcome == "baseline":
                lines.append(f"{url}: first look taken; news from tomorrow on")
            elif check.hits:
                lines += [f"[{k}] {line}" for k, found in check.hits.items() for line in found]
            elif check.excerpt:
                added = [ln[1:] for ln in check.excerpt.splitlines() if ln.startswith("+")][:5]
                lines += [f"{url}: {ln}" for ln in added]
        return lines[:30]

    async def _record_greeting(self, day: DayPlan, given_at: datetime) -> None:
        try:
            # A local activity: one short database write, no task round trip via the server.
            await workflow.execute_local_activity_method(
                BriefingActivities.record_greeting,
                GreetingRecord(
                    user=self.run_input.user,
                    date=day.date,
                    given_at=given_at,
                    via=self.given_via or "unknown",
                ),
                start_to_close_timeout=SHORT,
                retry_policy=NOTIFY_RETRY,
            )
            self.carry.last_record_error = None
        except ACTIVITY_FAILED as exc:
            # The day goes on; the status says so, and the run's state keeps the greeting (a
            # briefing created again reads it from the ended run).
            workflow.logger.warning("recording the greeting failed: %s", exc.cause or exc)
            self.carry.last_record_error = f"{day.date}: {failure_text(exc)}"

    async def _push(self, date: str, reason: str, key: str) -> NotifyResult:
        request = PushRequest(user=self.run_input.user, date=date, reason=reason, key=key)
        message = await workflow.execute_activity_method(
            BriefingActivities.compose_briefing_push,
            request,
            start_to_close_timeout=SHORT,
            retry_policy=NOTIFY_RETRY,
        )
        try:
            result = await deliver(
                user=self.run_input.user,
                key=key,
                message=message,
                targets=[Target.model_validate({"channel": "inbox"})],
                kind=message.kind,
                task=self.run_input.task_id,
            )
        except ActivityError as exc:
            workflow.logger.warning("briefing push failed: %s", exc.cause or exc)
            self.carry.last_push_error = f"{date}: {failure_text(exc)}"
            if workflow.patched(FAILED_PUSH_RECORDED):
                # A channel that stayed down (retries spent) after the inbox took the copy;
                # if the database is what failed, this fails too, and the day goes on.
                with contextlib.suppress(ActivityError):
                    await self._record_push(request)
            return NotifyResult(deliveries=[])
        # The inbox copy is kept whatever a channel answers: a channel that refused for good
        # (a wrong robot key, a mailbox that does not exist) is said, not counted as pushed.
        failed = "; ".join(f"{d.channel}: {d.error}" for d in result.failures)
        self.carry.last_push_error = f"{date}: {failed}" if failed else None
        await self._record_push(request)
        if self.day is not None and date == self.day.date:
            self.pushed_at = workflow.now()
        return result

    async def _record_push(self, request: PushRequest) -> None:
        """The day's row says pushed once one of the push's deliveries was sent."""
        await workflow.execute_activity_method(
            BriefingActivities.record_briefing_push,
            request.model_copy(update={"at": workflow.now()}),
            start_to_close_timeout=SHORT,
            retry_policy=NOTIFY_RETRY,
        )

    def _details(self, day: DayPlan) -> None:
        config = self.run_input.config
        state = "prepared" if self.prepared else "not prepared yet"
        workflow.set_current_details(
            f"{day.date}: {state}; prepare {config.prepare_at}, window "
            f"{config.window_start}–{config.window_end} {config.timezone}"
        )


def _handed_over_refusal() -> ApplicationError:
    return ApplicationError(
        "a new config is replacing the daily briefing; greet again",
        type=GREETING_HANDED_OVER,
        non_retryable=True,
    )


async def _wait(condition: Callable[[], bool], limit: timedelta) -> None:
    """Wait for ``condition`` at most ``limit``."""
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(condition, timeout=limit)
