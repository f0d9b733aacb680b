"""Preparing the day's briefing and pushing it: part of ``DailyBriefingWorkflow``.

The preparation at ``prepare_at``, at a greeting or on ``regenerate`` (with the news pages),
the push when nobody greeted or on ``send``, and the row each push writes; the workflow
(workflows/daily_briefing.py) plans the day, holds the window and speaks at the greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.briefing import BriefingActivities
    from ambient.briefing.config import DayPlan
    from ambient.briefing.models import (
        PREPARE_ATTEMPTS,
        PREPARE_TIMEOUT,
        BriefingCarry,
        BriefingRun,
        PreparedBriefing,
        PrepareRequest,
        PushRequest,
        news_task,
    )
    from ambient.briefing.unprepared import Unprepared, unprepared_because, unprepared_push
    from ambient.domain.checks import more_new_lines, notice_said
    from ambient.domain.notify import Message, NotifyResult, Target
    from ambient.no_answer import RUN_ENDED_UNDER_UPDATE
    from ambient.watches.summaries import briefing_summary

from workflows.reminder import check_news_pages
from workflows.sends import deliver, failure_text, short_activity

T = TypeVar("T")
WAIT_CANCELLATION_COMPLETED = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
# A briefing push's heartbeat timeout: see `_deliver`.
PUSH_HEARTBEAT = timedelta(seconds=10)
# The news section's lines at most; past them, how many more lines of news there were is said.
NEWS_LINES = 30
PREPARE_RETRY = RetryPolicy(
    maximum_attempts=PREPARE_ATTEMPTS, initial_interval=timedelta(seconds=5)
)


# A request refused because the briefing was deleted (its run only finishes a preparation or
# push under way): a greeting, a regenerate or a send (a validator's refusal is not recorded,
# so runs before it replay as they ran).
BRIEFING_DELETED = "BriefingDeleted"
# A run deleted during its own step (the scheduled preparation, the push of a morning nobody
# greeted) ends at once, the step cancelled with its activity, as a Temporal cancel meeting the
# step cancels it. A push cut short waits for its activity to end, then records the day pushed
# if the inbox took its copy.


class PrepareAndPush:
    """Prepare, regenerate, push and send; the workflow sets these fields and runs the day."""

    run_input: BriefingRun
    carry: BriefingCarry
    paused: bool
    stopping: bool
    day: DayPlan | None
    phase: str
    prepared: PreparedBriefing | None
    prepared_at: datetime | None
    preparation_error: str | None
    # Why, in the user's terms (what a greeting hears and the window's end pushes).
    preparation_failure: Unprepared | None
    given_at: datetime | None
    given_via: str | None
    pushed_at: datetime | None
    cancelling: bool
    _prepare_lock: asyncio.Lock

    @workflow.update
    async def regenerate(self) -> PreparedBriefing:
        """Prepare the current day's briefing again now (a new version; it is not re-spoken)."""
        await self._unless_deleted(self._prepare("regenerate"))
        if self.prepared is None:
            raise ApplicationError(
                f"preparation failed: {self.preparation_error}", type="PreparationFailed"
            )
        return self.prepared

    @regenerate.validator
    def _validate_regenerate(self) -> None:
        self._refuse_if_deleted()
        if self.day is None:
            # A run that starts paused plans no day until resumed: waiting would not help.
            if self.paused:
                raise ValueError("the daily briefing is paused: resume it, then regenerate")
            raise ValueError("the day is still being planned; try again in a moment")

    def _refuse_if_deleted(self) -> None:
        if self.cancelling:
            # As the server answers a request its run ended under: the callers say "replaced
            # or stopped; try again" (a greeting "not in time"), as they did before it waited.
            raise ApplicationError(
                "the daily briefing's run was cancelled",
                type=RUN_ENDED_UNDER_UPDATE,
                non_retryable=True,
            )
        if self.stopping:
            raise ApplicationError(
                "the daily briefing was deleted", type=BRIEFING_DELETED, non_retryable=True
            )

    def _ending(self) -> bool:
        """Deleted, or cancelled in Temporal: what is under way is cancelled and answered."""
        return self.stopping or self.cancelling

    async def _unless_deleted(self, work: Coroutine[Any, Any, T]) -> T:
        """``work``'s answer, or the deleted refusal as soon as the briefing is deleted,
        ``work`` cancelled with its activity: the deleted run ends then, not once a preparation
        or push nobody waits for ends (~30 minutes with retries), and a create of the briefing
        again meanwhile said it was "still finishing".

        In a task of its own, ``work`` and the answer after it run after whatever else the same
        workflow task woke (the preparation time's timer: the window's timer starts before the
        regenerate's answer)."""
        task = asyncio.create_task(work)
        if await self._until_deleted(task):
            self._refuse_if_deleted()
        return task.result()

    async def _step(self, work: Coroutine[Any, Any, None]) -> None:
        """The run's own step (the scheduled preparation, a push of a morning nobody greeted),
        cancelled with its activity when the briefing is deleted: the run goes on to its end
        (``stopping``). Run in a task of its own, as a regenerate's work (`_unless_deleted`)."""
        task = asyncio.create_task(work)
        if not await self._until_deleted(task):
            task.result()

    async def _until_deleted(self, task: asyncio.Task[Any]) -> bool:
        """Wait for ``task``; whether the briefing was deleted (or the run cancelled in
        Temporal) first, ``task`` cancelled then. A Temporal cancel (the Web UI's) reaches the
        run's own coroutine alone (the SDK cancels it, not an update's handler): waiting here
        (`_step`), it cancels ``task`` and ends the run; a regenerate's or send's work
        (`_unless_deleted`) is cancelled as the run sets ``cancelling``."""
        try:
            await workflow.wait_condition(lambda: task.done() or self._ending())
        except asyncio.CancelledError:
            # Only the run's own coroutine hears it: a task of its own would go on.
            await cancelled(task)
            raise
        if task.done():
            return False
        await cancelled(task)
        return True

    @workflow.update
    async def send(self, request: PushRequest) -> NotifyResult:
        """Push a prepared briefing through the user's channels on request."""
        return await self._unless_deleted(self._send(request))

    async def _send(self, request: PushRequest) -> NotifyResult:
        if self.prepared is None and self.day is not None and request.date == self.day.date:
            # The day's briefing a replaced run stored (a new config), prepared again for this
            # config now: the push carries that version (the day ended too: its date carried
            # as last_date while a regenerate ran).
            await workflow.wait_condition(lambda: not self._prepare_lock.locked())
        return await self._push(request.date, request.reason, request.key)

    @send.validator
    def _validate_send(self, request: PushRequest) -> None:
        self._refuse_if_deleted()
        known = {
            self.carry.last_date,
            self.prepared.date if self.prepared else None,
            self.carry.replaced_date,  # stored by the run a new config replaced
        }
        # The run's day too, not prepared here yet: the run a new config replaced stored it.
        if request.date not in known and not (self.day and request.date == self.day.date):
            raise ValueError(
                f"date: no prepared briefing for {request.date}; "
                f"known: {', '.join(sorted(d for d in known if d)) or 'none yet'}"
            )

    async def _prepare(self, reason: str) -> None:
        async with self._prepare_lock:
            if self.day is None or (reason != "regenerate" and self._prepared_in_time()):
                return  # no day planned yet (the regenerate validator refuses that case)
            if self._ending():
                return  # deleted while this waited for another preparation (cancelled)
            self.phase = "preparing"
            run = self.run_input
            news = await self._news(self.day.date) if run.config.news_urls else []
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
                    summary=f"prepare the briefing of {self.day.date} ({reason})",
                )
                self.prepared_at, self.preparation_error = workflow.now(), None
                self.preparation_failure = None
                given = self.prepared.given_at
                if given is not None and self.given_at is None:
                    # The service stored it as it was spoken, before a reset to an earlier
                    # task (the Web UI's): the day stays spoken.
                    self.given_at, self.given_via = given, self.prepared.given_via
            except ActivityError as exc:
                if is_cancelled_exception(exc):
                    raise  # deleted (`_unless_deleted`): no failure of the day's to record
                self.preparation_error = str(exc.cause or exc)
                self.preparation_failure = unprepared_because(exc.cause)
                if not self._prepared_in_time():
                    # Made before yesterday was over: not the day's briefing. A greeting
                    # prepares it again, and says why it cannot if that fails too.
                    self.prepared = None
                workflow.logger.warning("briefing preparation failed: %s", self.preparation_error)
            # Not in a `finally`: one runs as an evicted run's coroutine is closed, outside the
            # workflow's event loop, where workflow calls raise.
            self.phase = "prepared" if self.prepared else "preparation failed"
            self._details(self.day)

    def _prepared_in_time(self) -> bool:
        """Prepared, and not before the preparation time: earlier, yesterday was not over
        (nor the night's remediation sweep), so the scheduled preparation makes it again."""
        if self.prepared is None:
            return False
        day, at = self.day, self.prepared_at
        return not (day is not None and at is not None and at < day.prepare_at)

    async def _news(self, date: str) -> list[str]:
        run, config = self.run_input, self.run_input.config
        # Each day compares with the page as the previous day's run stored it; each
        # preparation of one day (a regenerate, one again after a failure) with the same.
        checks = await check_news_pages(
            news_task(run.task_id), config.news_urls, config.categories, round=date
        )
        zh = config.language == "zh"
        # Each line with how many lines of news it tells (a page's "… and N more new lines": N).
        told: list[tuple[str, int]] = []
        # A page's state in the briefing's language (its error's words are the fetcher's).
        unavailable = "{url}：无法访问（{why}）" if zh else "{url}: unavailable ({why})"
        first_look = (
            "{url}：已记下页面当前内容，明天起报告新闻"
            if zh
            else "{url}: first look taken; news from tomorrow on"
        )
        for url, check in zip(config.news_urls, checks, strict=True):
            if isinstance(check, BaseException):
                told.append((unavailable.format(url=url, why=failure_text(check)), 1))
            elif check.outcome == "error":
                told.append((unavailable.format(url=url, why=check.error), 1))
            elif check.outcome == "baseline":
                told.append((first_look.format(url=url), 1))
            elif check.hits:
                told += [
                    (f"[{k}] {notice_said(line, zh)}", 1)
                    for k, found in check.hits.items()
                    for line in found
                ]
            elif check.excerpt:
                # Every new line the excerpt holds, then how many more, as a news digest says
                # them: tomorrow compares with the page as stored today, so a line left out
                # unsaid is never told.
                added = [ln[1:] for ln in check.excerpt.splitlines() if ln.startswith("+")]
                told += [(f"{url}: {ln}", 1) for ln in added]
                if more := check.more_added:
                    told.append((f"{url}: {more_new_lines(more, zh)}", more))
        lines = [line for line, _ in told[:NEWS_LINES]]
        if left := sum(count for _, count in told[NEWS_LINES:]):
            lines.append(
                f"……另有 {left} 行新闻未列出"
                if zh
                else f"… and {left} more {'line' if left == 1 else 'lines'} of news not listed"
            )
        return lines

    async def _push(self, date: str, reason: str, key: str) -> NotifyResult:
        request = PushRequest(user=self.run_input.user, date=date, reason=reason, key=key)
        said = f"the briefing of {date} ({reason})"
        message = await short_activity(
            BriefingActivities.compose_briefing_push, request, f"compose {said}"
        )
        try:
            result = await self._deliver(message, key, said)
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                # The inbox may have taken its copy before the activity ended, and then the
                # day's row says pushed, not "ready"; it records nothing if none was sent.
                with contextlib.suppress(ActivityError):
                    await self._record_push(request)
                raise
            workflow.logger.warning("briefing push failed: %s", exc.cause or exc)
            self.carry.last_push_error = f"{date}: {failure_text(exc)}"
            # A channel that stayed down (retries spent) after the inbox took the copy;
            # if the database is what failed, this fails too, and the day goes on.
            with contextlib.suppress(ActivityError):
                await self._record_push(request)
            return NotifyResult(deliveries=[])
        # The inbox copy is kept whatever a channel answers: a channel that refused for good
        # (a wrong robot key, a mailbox that does not exist) is said, not counted as pushed.
        failed = "; ".join(result.failure_lines())
        self.carry.last_push_error = f"{date}: {failed}" if failed else None
        await self._record_push(request)
        if self.day is not None and date == self.day.date:
            self.pushed_at = workflow.now()
        return result

    async def _push_unprepared(self, date: str, why: Unprepared, key: str) -> None:
        """Tell the user, once (the day's push key), that the day's briefing could not be
        prepared: there is none to push, and nobody greeted to hear why."""
        message = unprepared_push(why, self.run_input.config.language, date)
        try:
            result = await self._deliver(message, key, f"the briefing of {date}, not prepared")
        except ActivityError as exc:  # the database still away: the status says so
            if is_cancelled_exception(exc):
                raise  # deleted or cancelled in Temporal: no failure of the day's to record
            workflow.logger.warning("briefing failure push failed: %s", exc.cause or exc)
            self.carry.last_push_error = f"{date}: {failure_text(exc)}"
            return
        failed = "; ".join(result.failure_lines())
        self.carry.last_push_error = f"{date}: {failed}" if failed else None

    async def _deliver(self, message: Message, key: str, about: str) -> NotifyResult:
        """``message`` to the user's inbox and push channels, once per ``key`` (``about``:
        what it tells, as the Web UI labels it).

        Cut short (a delete, a Temporal cancel), a push waits for its activity to end: its
        sends went on to its next heartbeat, and a record made at once read no sent row, then
        the inbox took its copy (the day stayed "ready", the message said lost); a delivery
        it left in flight is given up then (`deliver`: it stayed `pending` for good). Its
        shorter heartbeat timeout hears the cancel within ~8 s, where a create waits for a
        deleted run to end (the server hears a heartbeat every 0.8 x that timeout: 24 s at
        30 s)."""
        run = self.run_input
        return await deliver(
            user=run.user,
            key=key,
            message=message,
            targets=[Target.model_validate({"channel": "inbox"})],
            about=about,
            kind=message.kind,
            task=run.task_id,
            cancellation=WAIT_CANCELLATION_COMPLETED,
            heartbeat=PUSH_HEARTBEAT,
        )

    async def _record_push(self, request: PushRequest) -> None:
        """The day's row says pushed once one of the push's deliveries was sent."""
        pushed = request.model_copy(update={"at": workflow.now()})
        said = f"record the briefing of {request.date} pushed"
        await short_activity(BriefingActivities.record_briefing_push, pushed, said)

    def _details(self, day: DayPlan | None) -> None:
        """The Web UI's Current Details: the briefing's summary, then the run's day (None: not
        planned yet). A run continued as new (every day) has no Summary: Temporal does not
        carry it over, and the SDK's continue-as-new cannot give one."""
        if day is None:
            state = "paused" if self.paused else "planning the day"
        else:
            failed = "preparation failed" if self.preparation_error else "not prepared yet"
            state = f"{day.date}: {'prepared' if self.prepared else failed}"
        summary = briefing_summary(self.run_input.config, self.run_input.user)
        workflow.set_current_details(f"{summary}\n\n{state}")


async def cancelled(task: asyncio.Task[Any]) -> None:
    """``task`` cancelled, with the activity it waits for (a cancel asked resolves at once:
    the cancel is sent before whatever follows), and ended. A Temporal cancel meeting this
    wait lets ``task`` end first: a push cut short by a delete then records what its inbox
    took, and gives up what it left in flight."""
    task.cancel()
    try:
        await workflow.wait_condition(task.done)
    except asyncio.CancelledError:
        await workflow.wait_condition(task.done)
        raise
    finally:
        if task.done() and not task.cancelled():
            task.exception()  # read: its activity's cancellation, nobody's to hear
