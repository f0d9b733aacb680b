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
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows.daily_briefing_prepare_push import PrepareAndPush, cancelled

with workflow.unsafe.imports_passed_through():
    from activities.briefing import BriefingActivities
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.briefing.config import DayPlan
    from ambient.briefing.greeting_answers import (
        GreetOutcome,
        GreetRequest,
        GreetResult,
        greeting_text,
    )
    from ambient.briefing.models import (
        BriefingRun,
        BriefingStatus,
        CarriedGreeting,
        GreetingRecord,
        PlanRequest,
        ReplacedRun,
    )
    from ambient.briefing.unprepared import Unprepared
    from ambient.temporal import STATE

from workflows.sends import NOTIFY_RETRY, SHORT, failure_text, given_up
from workflows.watch_controls import until

# A greeting is refused when the workflow takes it up this long after GreetRequest.answer_by:
# room for the service's clock running behind the server's (the service sets answer_by this
# much earlier than its caller's end, so that a greeting taken up in time is heard).
GREETING_CLOCK_SKEW = timedelta(seconds=5)
GREETING_TOO_LATE = "GreetingTooLate"  # the refusal's error type
# A greeting waiting (for the day's plan or its preparation) when a new config began replacing
# the run, answered then: the replacement would end the run under it.
GREETING_HANDED_OVER = "GreetingHandedOver"
# A hand-over refused: another request's new config is replacing the run (one at a time).
HANDED_OVER = "HandedOver"
# How long a hand-over holds the run for its request, refusing another: the service replaces
# the run within half of it or not at all (its create failed, or it died). Greetings are
# answered meanwhile: one spoken here is read from the history by the run replacing this one.
HAND_OVER_HOLD = timedelta(seconds=30)
# The read of that greeting: tried again when the history is not read in time, then given up
# (the run goes on; its preparation reads a greeting stored on the day's briefing).
HISTORY_READ_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
# A greeting that arrives before preparation finished waits this long, then says "preparing".
GREETING_WAIT = timedelta(seconds=20)
# A run that starts paused waits this long for a resume, then goes on as a new run (one run
# for the whole pause would grow its history with every greeting).
PAUSED_RUN_LENGTH = timedelta(days=1)


@workflow.defn
class DailyBriefingWorkflow(PrepareAndPush):
    @workflow.init
    def __init__(self, run: BriefingRun) -> None:
        self.run_input = run
        self.carry = run.carry.model_copy()
        self.paused = run.carry.paused
        self.stopping = False
        self.day = None
        self.phase = "planning"
        self.prepared = None
        self.prepared_at = None
        self.preparation_error = None
        self.preparation_failure = None
        self.prepare_wanted = False
        self.given_at: datetime | None = None
        self.given_via: str | None = None
        self.given_request: str | None = None
        self.pushed_at = None
        # A new config is replacing this run: no greeting speaks here meanwhile (hand_over).
        self.handed_over_at: datetime | None = None
        # Cancelled in Temporal: ending once what it took is answered (`run`).
        self.cancelling = False
        self._prepare_lock = asyncio.Lock()
        self._preparing_again: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, run: BriefingRun) -> str:
        try:
            return await self._days(run)
        except BaseException as exc:
            # Cancelled in Temporal (the Web UI's "Request Cancellation"): a greeting, regenerate
            # or send under way has its preparation or push cancelled and settled, and is
            # answered, before the run ends, as at a delete (it ended under them: a send's push
            # abandoned unrecorded, the day "ready", its caller told by the server). Heard as
            # asyncio's, or, while the run itself waited on an activity (the greeting's write,
            # the day's plan), as that activity's cancellation.
            if is_cancelled_exception(exc):
                self.cancelling = True
                await self._stopped()
            raise

    async def _days(self, run: BriefingRun) -> str:
        """The run's day (or its pause), then the next run."""
        self._details(None)
        if (replaced := self.carry.replaced_run) is not None:
            self.carry.replaced_run = None  # read once, not by the next day's run
            await self._carry_greeting_of(replaced)
        if self.paused:
            self.phase = "paused"
            # A day at most, then a new run with the same carry: every greeting answered
            # "paused" is history, and a pause of months would near Temporal's limit.
            await until(
                lambda: not self.paused or self.stopping,
                PAUSED_RUN_LENGTH,
                "paused: a resume, else a new run",
            )
            if self.paused and not self.stopping:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self.paused and not self.stopping:
                    workflow.continue_as_new(run.model_copy(update={"carry": self.carry}))
            await workflow.wait_condition(lambda: not self.paused or self.stopping)
        if self.stopping:
            return await self._stopped()
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
            summary=f"plan the next day to brief ({config.timezone})",
        )
        self._details(day)
        unheard, self.carry.unheard_date = self.carry.unheard_date, None
        if (
            unheard is not None
            and unheard != day.date
            and config.push_if_not_greeted
            and not (self.paused or self.stopping)  # paused or stopped meanwhile: nothing pushed
        ):
            # The replaced run's morning, nobody greeted, not pushed: this config plans another
            # date, so that morning's window is over here; pushed now, not lost between two.
            self.phase = "pushing"
            await self._step(self._push_unheard(unheard))
        self.phase = "waiting to prepare"
        await until(
            lambda: self.prepare_wanted or self.stopping,
            day.prepare_at - workflow.now(),
            f"{day.date}: its preparation at {config.prepare_at} ({config.timezone})",
        )
        held = False
        if self.paused:
            # Paused: no source is read and no queued problem is spent on a briefing nobody
            # hears, unless it is resumed before the window ends.
            self.phase = "paused"
            await until(
                lambda: not self.paused or self.stopping,
                day.window_end - workflow.now(),
                f"{day.date}: paused, a resume before the window ends at {config.window_end}",
            )
            held = self.paused
        if self.stopping:
            return await self._stopped()
        if not held:
            await self._step(self._prepare("scheduled"))
            if self.prepared is not None and not self.stopping:  # failed or deleted: not so
                self.phase = "in window" if workflow.now() >= day.window_start else "prepared"
        # The run stays on its day until the window ends (regenerate and send act on it).
        # The greeting is written to the database then, not while the greeting waits: the
        # update's answer leaves with the workflow task, which would otherwise also carry
        # the write (the service overlays the live state on the stored row meanwhile).
        await until(
            lambda: self.stopping,
            day.window_end - workflow.now(),
            f"{day.date}: the greeting window's end at {config.window_end} ({config.timezone})",
        )
        if self.given_at is not None:
            await self._record_greeting(day, self.given_at)
        elif config.push_if_not_greeted and not self.stopping and not self.paused:
            await self._step(self._push_not_greeted(day))
        if self.stopping:
            return await self._stopped()
        # Greetings after the window on the same date still answer "already given at HH:MM".
        self.carry.last_date, self.carry.last_midnight = day.date, day.logs_to
        self.carry.days_completed += 1
        self.carry.replaced_date = None
        if self.given_at is not None:
            self.carry.last_given_at = self.given_at
        self.phase = "done"
        # A preparation a greeting started again ends in this run, not cut off by the next.
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._prepare_lock.locked()
        )
        # A pause or resume taken during that wait is carried (the next run forgot it), and a
        # delete ends the run (a deleted briefing went on to a new run: listed "stopped", its
        # status not, it prepared and pushed).
        if self.stopping:
            return await self._stopped()
        self.carry.paused = self.paused
        workflow.continue_as_new(
            BriefingRun(user=run.user, task_id=run.task_id, config=config, carry=self.carry)
        )

    async def _carry_greeting_of(self, replaced: str) -> None:
        """A greeting the run this one replaced spoke after the status this run carries was
        read (a held run answers greetings), carried as that run's: read before the day is
        planned, which greetings wait for, so the day is not spoken again. Not read (Temporal
        away): the run goes on, its preparation reading the greeting stored on the day."""
        run = self.run_input
        request = ReplacedRun(
            user=run.user,
            task_id=run.task_id,
            run_id=replaced,
            given_after=self.carry.last_given_at,
        )
        try:
            greeting: CarriedGreeting | None = await workflow.execute_local_activity_method(
                BriefingActivities.greeting_after_hand_over,
                request,
                start_to_close_timeout=SHORT,
                retry_policy=HISTORY_READ_RETRY,
                summary="read a greeting the replaced run spoke after its hand-over",
            )
        except ACTIVITY_FAILED as exc:
            if is_cancelled_exception(exc):
                raise
            workflow.logger.warning(
                "the replaced run's greeting was not read: %s", exc.cause or exc
            )
            return
        if greeting is None:
            return
        carry = self.carry
        carry.last_date, carry.last_midnight = greeting.date, greeting.midnight
        carry.last_given_at = greeting.given_at
        if carry.unheard_date == greeting.date:
            carry.unheard_date = None  # heard there: not pushed

    async def _push_unheard(self, date: str) -> None:
        """The morning of ``date`` a replaced run held, nobody greeted, pushed."""
        try:
            await self._push(date, "not greeted", f"{self.run_input.task_id}/{date}/push")
        except ActivityError as exc:
            self.carry.last_push_error = f"{date}: {given_up(exc)}"

    async def _push_not_greeted(self, day: DayPlan) -> None:
        """The window's end of a day nobody greeted: its briefing pushed, or, when it could not
        be prepared, why (once: the day's push key either way)."""
        key = f"{self.run_input.task_id}/{day.date}/push"
        if self.prepared is None:
            # Its preparation failed: its user is pushed why. A greeting's preparation still
            # under way ends first: it may yet succeed.
            await workflow.wait_condition(lambda: not self._prepare_lock.locked())
            if self.prepared is None:
                if self.preparation_failure is not None:
                    self.phase = "pushing"
                    await self._push_unprepared(day.date, self.preparation_failure, key)
                return
        self.phase = "pushing"
        await self._push_unheard(day.date)

    # --- greeting ---------------------------------------------------------------------

    @workflow.update
    async def greet(self, request: GreetRequest) -> GreetResult:
        """The voice trigger: the briefing at the first greeting inside today's window."""
        if self.paused:
            # At once, with or without a day: a paused run may not even have planned one.
            return self._short_answer(GreetOutcome.PAUSED)
        held = self.handed_over_at  # a hand-over before this greeting does not refuse it
        if self.day is None:
            await until(
                lambda: self.day is not None or self._handed_over(since=held),
                SHORT,
                "greeting: the day planned",
            )
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
            if self.preparation_error is not None and not self._prepare_lock.locked():
                # What failed (a database away at preparation time) may be back: this
                # greeting tries again, and the next one hears it if it takes longer.
                self.preparation_error = self.preparation_failure = None
                self._preparing_again = asyncio.create_task(self._prepare("greeting"))
            wait = GREETING_WAIT
            if request.wait_seconds is not None:  # no longer than the caller listens
                wait = min(wait, timedelta(seconds=request.wait_seconds))
            await until(
                lambda: (
                    self.prepared is not None
                    or self.preparation_error is not None
                    or self._handed_over(since=held)
                    or self._ending()  # deleted, or cancelled in Temporal
                ),
                wait,
                f"greeting: the briefing of {day.date} prepared",
            )
            if self._handed_over(since=held):  # a new config is replacing the run meanwhile
                raise _handed_over_refusal()
            self._refuse_if_deleted()
            if self.prepared is None:
                if (why := self.preparation_failure) is not None:
                    # What failed in the user's terms, and that the next greeting tries again.
                    return self._short_answer(GreetOutcome.UNAVAILABLE, day, unprepared=why)
                return self._short_answer(GreetOutcome.PREPARING, day)
        # No await between these checks and the assignment: exactly one greeting speaks.
        if self.given_at is not None:
            return self._already(day, self.given_at)
        if _past_answer_by(request):
            # Taken up in time, it waited for its preparation past that moment: "not ready"
            # (its caller has stopped listening), and the day is kept for the next greeting.
            return self._short_answer(GreetOutcome.PREPARING, day)
        prepared = self.prepared
        spoken = GreetResult(
            outcome=GreetOutcome.SPOKEN,
            text=prepared.spoken_text,
            segments=prepared.spoken_segments,
            date=prepared.date,
            generated_by=prepared.generated_by,
            language=self.run_input.config.language,
        )
        if request.answer_by is None:
            # Sent by hand (an operator trying the greeting from the Web UI): what the user
            # would hear, with no given_at; the day stays theirs to greet, or to be pushed.
            return spoken
        self.given_at, self.given_via, self.given_request = now, request.via, request.request_id
        self.phase = "given"
        return spoken.model_copy(update={"given_at": now, "given_at_local": day.local_hhmm(now)})

    @greet.validator
    def _validate_greet(self, request: GreetRequest) -> None:
        self._refuse_if_deleted()  # it speaks to nobody
        # Not refused while a hand-over holds the run: its request may never replace the run
        # (it died, or its client went away), and a voice user heard "did not answer in time"
        # for the whole hold; one spoken is carried by the new run (`_carry_greeting_of`).
        # A refused update leaves no event in the history, so runs recorded before it replay.
        if _past_answer_by(request):
            raise ApplicationError(
                "the caller stopped waiting for this greeting; the day is not used up",
                type=GREETING_TOO_LATE,
                non_retryable=True,
            )

    def _already(self, day: DayPlan, given: datetime) -> GreetResult:
        hhmm = day.local_hhmm(given)
        answer = self._short_answer(GreetOutcome.ALREADY_GIVEN, day, hhmm=hhmm)
        # The date it was given on: between a window's end and midnight the run has planned
        # the next day already, and the answer named that day as the one given.
        update = {"given_at": given, "given_at_local": hhmm, "date": day.date_of(given)}
        return answer.model_copy(update=update)

    def _short_answer(
        self,
        outcome: GreetOutcome,
        day: DayPlan | None = None,
        *,
        unprepared: Unprepared | None = None,
        **words: str,
    ) -> GreetResult:
        """A short answer that is not the briefing itself (about ``day``, once there is one)."""
        language = self.run_input.config.language
        text = greeting_text(outcome, language, unprepared=unprepared, **words)
        return GreetResult(
            outcome=outcome,
            text=text,
            date=day.date if day else None,
            window=words.get("window"),
            unprepared=unprepared,
        )

    @workflow.update
    def hand_over(self, by_hand: None = None) -> BriefingStatus:
        """The run's status as a new config replaces it, held for HAND_OVER_HOLD: another
        hand-over is refused meanwhile, and a greeting waiting for the day's plan or its
        preparation is answered ("greet again"). A greeting after it is answered as ever: the
        new run reads one this run spoke from its history (``BriefingCarry.replaced_run``), so
        none is lost or spoken twice. The service sends no argument: one sent by hand (Web UI)
        is refused before it is recorded (it does not decode as ``by_hand``; without the
        parameter the SDK dropped it and the hold began)."""
        self.handed_over_at = workflow.now()
        return self.status()

    @hand_over.validator
    def _validate_hand_over(self, by_hand: None = None) -> None:
        # One hand-over at a time: two of the same run each started their new run, and the
        # later start terminated the earlier's (its config lost, both callers told it applied).
        # A refused update leaves no event in the history, so runs recorded before it replay.
        if self._handed_over():
            raise ApplicationError(
                "another request is replacing the daily briefing's config; try again in a moment",
                type=HANDED_OVER,
                non_retryable=True,
            )

    def _handed_over(self, *, since: datetime | None = None) -> bool:
        """Whether a hand-over holds the run (``since``: one other than that one)."""
        at = self.handed_over_at
        return at is not None and at != since and workflow.now() < at + HAND_OVER_HOLD

    # --- controls ------------------------------------------------------------------------

    @workflow.signal
    def pause(self) -> None:
        self._steer("pause", paused=True)

    @workflow.signal
    def resume(self) -> None:
        self._steer("resume", paused=False)

    def _steer(self, control: str, *, paused: bool) -> None:
        """A pause or resume: taken and changing nothing once the run is deleted or cancelled,
        still finishing (stopping, the briefing stays listed "stopped")."""
        if self._ending():
            workflow.logger.info(
                "%s of a deleted or cancelled daily briefing: nothing to do", control
            )
            return
        self.paused = paused
        workflow.upsert_search_attributes([STATE.value_set("paused" if paused else "active")])

    @workflow.signal
    def stop(self) -> None:
        if not self.stopping:
            workflow.upsert_search_attributes([STATE.value_set("stopped")])
        self.stopping = True

    async def _stopped(self) -> str:
        """The end of a deleted (or cancelled) run, once the greetings and requests it took
        are answered (a regenerate or send at once: `_unless_deleted`)."""
        again = self._preparing_again
        if again is not None and not again.done():
            # A greeting's preparation, nobody's to hear now.
            await cancelled(again)
        await workflow.wait_condition(workflow.all_handlers_finished)
        # Its status read as ended (a query reads an ended run): not the step it cut short
        # ("preparing", "pushing") nor the one it would have waited in. State alone, no command.
        self.phase = "stopped"
        return "stopped"

    @workflow.query
    def already_given(self, request_id: str) -> GreetResult | None:
        """The "already given" answer when this day's briefing was spoken to another request.

        Lets callers skip the update (and its history writes) for the common repeat greeting;
        the update stays the only path that can speak, so exactly-once is unaffected.
        None once deleted (a query reads an ended run too): the update says so.
        """
        if self.stopping:
            return None
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
            preparation_failure=self.preparation_failure,
            given_at=self.given_at,
            given_via=self.given_via,
            pushed_at=self.pushed_at,
            push_error=self.carry.last_push_error,
            record_error=self.carry.last_record_error,
            days_completed=self.carry.days_completed,
            last_date=self.carry.last_date,
            last_midnight=self.carry.last_midnight,
            last_given_at=self.carry.last_given_at,
            replaced_date=self.carry.replaced_date,
            stopping=self.stopping,
        )

    # --- steps ---------------------------------------------------------------------------

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
                summary=f"record the greeting of {day.date}",
            )
            self.carry.last_record_error = None
        except ACTIVITY_FAILED as exc:
            if is_cancelled_exception(exc):
                raise  # cancelled in Temporal: the run ends Canceled (it went on to a new run)
            # The day goes on; the status says so, and the run's state keeps the greeting (a
            # briefing created again reads it from the ended run).
            workflow.logger.warning("recording the greeting failed: %s", exc.cause or exc)
            self.carry.last_record_error = f"{day.date}: {failure_text(exc)}"


def _handed_over_refusal() -> ApplicationError:
    return ApplicationError(
        "a new config is replacing the daily briefing; greet again",
        type=GREETING_HANDED_OVER,
        non_retryable=True,
    )


def _past_answer_by(request: GreetRequest) -> bool:
    """Whether the greeting's caller has stopped listening, as far as this clock can tell."""
    return request.answer_by is not None and (
        workflow.now() > request.answer_by + GREETING_CLOCK_SKEW
    )
