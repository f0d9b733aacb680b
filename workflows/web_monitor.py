"""WebMonitorWorkflow — `web-monitor/{user}/{task}`: watch pages for changes and keywords."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.polling import PagePoller
    from ambient.domain.notify import INTERNAL_ERROR
    from ambient.remediation.safety import a_while
    from ambient.watches.configs import TaskKind, WebMonitorConfig
    from ambient.watches.models import (
        TaskStatus,
        UrlState,
        WebMonitorInput,
        WebMonitorState,
    )
    from ambient.watches.notification_spec import notification_targets
    from ambient.watches.polling import (
        WEB_MONITOR_TYPE,
        PollEnd,
        PollLost,
        PollRequest,
        PollResult,
    )

from workflows.watch_controls import CHECK_NOW_WAIT, until
from workflows.web_monitor_polls import PollEnds

# How long one poll may run before it hands back: about POLL_CHECKS checks, so the
# hand-back (a few history events and a workflow task) is shared by that many checks, within
# bounds that keep the history and get_task's recorded counts fresh enough.
POLL_CHECKS = 60
POLL_WINDOW_MIN = timedelta(minutes=10)
POLL_WINDOW_MAX = timedelta(hours=1)
POLL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)
# A killed worker's polls are started again when a live worker process finds the dead one's
# leases (signal ``poll_lost``, well under a minute; activities/polling.py); graceful stops
# hand back at once. The heartbeat timeout is the backstop when no process can tell (the
# app database is down): one window. The server hears of a poll every 0.8 x that timeout
# and each time costs it a write, so the backstop is kept long.
POLL_SLACK = timedelta(minutes=2)
# The worker caches few workflows (settings.max_cached_workflows: a cached run costs ~100 KB
# of worker memory and a watch's run waits an hour between hand-backs), so a hand-back
# usually replays its run's history: about six events a hand-back, tens of microseconds of
# worker CPU each, plus the server reading them. A run continues as new once its history is
# this long (≈ 40 hand-backs, ≈ 40 hours), which keeps a replay a few milliseconds instead
# of growing until Temporal suggests continuing (thousands of events).
RUN_EVENTS = 250
HELD_AGAIN = timedelta(minutes=1)
# How long ``pages_checked`` (what update_task answers) waits for an update's new pages.
PAGES_CHECKED_WAIT = timedelta(seconds=30)


@workflow.defn(name=WEB_MONITOR_TYPE)
class WebMonitorWorkflow(PollEnds):
    KIND = TaskKind.WEB_MONITOR
    CONFIG = WebMonitorConfig
    POLLS = True
    CHECK_ON_UPDATE = True
    # The baseline update answers once a poll ended without a check too (failed), or the
    # watch stops, and at most after CHECK_NOW_WAIT: pending, it held the run's
    # continue-as-new (which waits for every handler) and no poll ran again.
    BASELINE_WAIT = CHECK_NOW_WAIT
    request: WebMonitorInput
    config: WebMonitorConfig
    state: WebMonitorState

    @workflow.init
    def __init__(self, request: WebMonitorInput) -> None:
        super().__init__(request, request.state or WebMonitorState())
        self.phased = False  # this run's first poll after the baseline is a part of a window
        self.polls = 0  # polls started in this run; the running one's number
        self.voided = 0  # polls of this run a control ended before their asked check
        self.ended_poll = 0  # the last poll of this run that ended and was not voided
        self.lost: PollLost | None = None  # the running poll's process is dead
        self.held_sent: list[int] = []  # the held events a poll of this pause last sent

    @workflow.run
    async def run(self, request: WebMonitorInput) -> TaskStatus:
        """Poll until stopped; each poll hands back what the history must show (cancelled in
        Temporal, a poll under way is ended as at a stop)."""
        self.show_attributes()
        if self.state.next_due is None:
            self.state.next_due = workflow.now()  # the baseline, at once
        return await self.watch_and_finish()

    async def watch(self) -> None:
        while not self.state.stop_requested:
            self.wake = False
            if self.state.paused and not self.state.check_requested:
                if not await self.send_held():
                    await workflow.wait_condition(lambda: self.wake)
            elif self.state.checks and not self.state.check_requested and (lead := self.lead()):
                # The next check is further off than a poll lasts: wait on a timer.
                await until(lambda: self.wake, lead, "next poll")
            else:
                await self.poll()
            await self.flush_control_events()
            await self.continue_if_suggested()

    async def send_held(self) -> bool:
        """A paused watch sends the events its last poll handed back unsent: a
        poll that checks nothing; sent once and none settled, again after HELD_AGAIN (or a
        control). False when there are none."""
        held = self.state.redeliver
        if not held:
            return False
        if held == self.held_sent:
            self.held_sent = []
            await until(lambda: self.wake, HELD_AGAIN, "paused: its held events sent again")
            return True
        self.held_sent = list(held)
        await self.poll(deliver_only=True)
        return True

    async def finish(self) -> None:
        """A stopped watch sends the events its last poll handed back unsent, then ends."""
        if self.state.redeliver:
            self.wake = False
            await self.poll(deliver_only=True)
        await super().finish()

    @property
    def window(self) -> timedelta:
        if self.request.poll_window_seconds is not None:
            return timedelta(seconds=self.request.poll_window_seconds)
        return min(max(POLL_CHECKS * self.interval, POLL_WINDOW_MIN), POLL_WINDOW_MAX)

    @property
    def poll_retry(self) -> RetryPolicy:
        if (first := self.request.poll_retry_seconds) is None:
            return POLL_RETRY
        return replace(POLL_RETRY, initial_interval=timedelta(seconds=first))

    @property
    def interval(self) -> timedelta:
        if self.request.check_interval_seconds is not None:
            return timedelta(seconds=self.request.check_interval_seconds)
        return self.config.interval

    def lead(self) -> timedelta | None:
        """How long to wait before the next poll, when its check is beyond one window."""
        gap = (self.state.next_due or workflow.now()) - workflow.now()
        return gap - self.window / 2 if gap > self.window else None

    async def poll(self, *, deliver_only: bool = False) -> None:
        """Run one poll (once, at once, when a check was asked for; ``deliver_only``: no
        check, it sends the held events) and record its result."""
        asked = not deliver_only and self.state.check_requested
        first_only = asked or (not deliver_only and self.state.checks == 0)
        if not deliver_only:
            self.state.check_requested = False
        interval = self.interval
        now = workflow.now()
        due = self.state.next_due or now
        window = self.window
        if not first_only and not self.phased and not deliver_only:
            # The first poll of a run lasts a deterministic part of a window, so the polls of
            # watches created (or continued as new) together hand back spread over it.
            self.phased = True
            if self.request.poll_window_seconds is None:
                window = max(interval, window * workflow.random().uniform(0.0, 1.0))
        request = PollRequest(
            user=self.user,
            task=self.task,
            workflow_id=workflow.info().workflow_id,
            life=self.life,
            config=self.config,
            targets=notification_targets(self.config.notification, self.config.targets),
            urls=self.state.urls,
            seq=self.state.poll_seq,
            first_check_in=0.0 if first_only else (due - now).total_seconds(),
            first_check_at=None if first_only else due,
            interval_seconds=interval.total_seconds(),
            window_seconds=window.total_seconds(),
            first_only=first_only,
            poll=self.polls + 1,
            late_failures_seen=self.state.late_failures_seen,
            redeliver=self.state.redeliver,
            deliver_only=deliver_only,
        )
        # The backstop for a dead worker that no live process reports (see POLL_SLACK).
        heartbeat = max(2 * interval, self.window)
        self.polls += 1
        number, self.lost = self.polls, None
        self.checking = True
        ended = end_asked = False
        try:
            handle = workflow.start_activity_method(
                PagePoller.poll_pages,
                request,
                # A backstop only (leases, then heartbeats, notice a dead worker): the window,
                # the wait for the first check, a slow last check and the deliveries a
                # hand-back waits for.
                start_to_close_timeout=(
                    window + max(due - now, timedelta(0)) + 2 * heartbeat + POLL_SLACK
                ),
                heartbeat_timeout=heartbeat,
                retry_policy=self.poll_retry,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=self.poll_said(request),
            )
            # The run's cancel heard here is a stop: the poll is ended as a stop ends it.
            await self.until_heard(lambda: handle.done() or self.wake or self.is_lost(number))
            if not handle.done() and not self.is_lost(number):
                ended = first_only and not deliver_only  # its asked check may not be made
                end_asked = True
                await self.end_poll(handle, number)
                if not handle.done() and not self.is_lost(number):
                    await self.until_heard(lambda: handle.done() or self.is_lost(number))
            if not handle.done() and (lost := self.lost) is not None:
                if not await self.answers(handle, lost):
                    if not first_only and not deliver_only:
                        # The lost poll's grid goes on: the next poll's first check is its
                        # first slot after the dead process's last beat, not at once.
                        self.state.next_due = self.grid_after(
                            due, request.first_check_in, interval, lost
                        )
                    self.ended_poll = number
                    return
            result = await handle
        except ActivityError as error:
            if isinstance(error.cause, CancelledError) or (
                # Asked to end (a pause, check now, an update, a delete) as its worker died:
                # the sweep failed the attempt its cancel waited on; Temporal does not retry
                # an attempt it was asked to cancel. Ended as asked, not a failure to show.
                end_asked
                and isinstance(error.cause, ApplicationError)
                and error.cause.type == "PollLost"
            ):
                # end_poll cancelled it (perhaps before a worker took it): asked for, no
                # failure; the next poll takes over what it stored.
                self.ask_again(ended, number)
                return
            # A poll that failed for good is a failure to show; the watch waits an interval
            # and polls again.
            text = self.note_failure("poll", error)
            self.state.event_failures += 1
            self.state.next_due = now + interval
            self.ended_poll = number
            await self.tell(
                kind="watch.poll_failed",
                key=f"{self.task}/{self.life}/poll-failed/{workflow.uuid4()}",
                # The product's own failure (its database, its worker): an administrator's
                # text wherever a member reads the event (its host and port showed).
                payload={"error": f"{INTERNAL_ERROR}{text[:500]}"},
            )
            return
        finally:
            self.checking = False
        self.absorb(result)
        if result.ended is PollEnd.SHUTDOWN:
            ended = first_only and not deliver_only
        self.ask_again(ended and result.checks == 0, number)
        if deliver_only:
            self.state.next_due = due  # no check was made: the grid stays
        elif asked and (end := self.pause_end()) is not None:
            # Every page's server asked us to wait: the check asked for is made when the
            # first pause ends, not at the grid's next slot after it (checks before it would
            # ask none of them).
            self.state.next_due = end

    @staticmethod
    def poll_said(request: PollRequest) -> str:
        """A poll as the Web UI labels it: what it checks, how often and how long."""
        pages = f"{len(request.config.urls)} page(s)"
        if request.deliver_only:
            return f"poll {request.poll}: send {len(request.redeliver)} held event(s), no check"
        if request.first_only:
            return f"poll {request.poll}: check {pages} once"
        every = a_while(timedelta(seconds=request.interval_seconds))
        window = a_while(timedelta(seconds=request.window_seconds))
        return f"poll {request.poll}: check {pages} every {every} for {window}"

    def ask_again(self, lost: bool, number: int) -> None:
        """A check asked for that a control ended before it was made (``lost``) is asked
        again, paused or not (a paused watch checks when asked), unless the watch stops; its
        poll (``number``) does not count as one that ended (what check now and an update wait
        for)."""
        if lost and not self.state.stop_requested:
            self.state.check_requested = True
            self.voided += 1
        else:
            self.ended_poll = number

    def pause_end(self) -> datetime | None:
        """When the first page may be asked again, if every page's server asked for a pause
        (a 429's or 503's Retry-After) that has not ended; else None."""
        now = workflow.now()
        urls = self.watched(self.state.urls)
        ends = [s.not_before for s in urls.values() if s.not_before and s.not_before > now]
        return min(ends) if ends and len(ends) == len(self.config.urls) else None

    def absorb(self, result: PollResult) -> None:
        """Take the poll's state and count what it reported (the events are in its result)."""
        state = self.state
        baseline = state.checks == 0 and result.checks > 0
        state.checks += result.checks
        self.checks_this_run += result.checks
        state.urls = self.watched(result.urls)
        state.poll_seq = max(state.poll_seq, result.seq)
        # The grid as the poll left it, however long its result took to come here (a poll of
        # a release before it says how long from its hand-back).
        state.next_due = result.next_due or workflow.now() + timedelta(seconds=result.next_check_in)
        if baseline:
            # Watches created together drift apart: the grid starts a deterministic delay
            # (up to half an interval, at most 60 s) after the baseline.
            state.next_due += self.spread(self.interval)
        kinds = [event.kind for event in result.events]
        state.changes_total += kinds.count("watch.change") + kinds.count("watch.hit")
        state.hits_total += kinds.count("watch.hit")
        state.delivery_failures += result.delivery_failures
        state.late_failures_seen = max(state.late_failures_seen, result.late_failures)
        state.redeliver = result.undelivered
        state.event_failures += result.event_failures
        if result.last_failure is not None:
            state.last_failure = result.last_failure

    def checks_started(self) -> int:
        # The polls of this run: a check asked for is made by a poll started after it (one
        # may end with no check made: failed, lost); one a control ended before its asked
        # check, which is asked again, does not count.
        return self.polls - self.voided

    def baseline_taken(self) -> Callable[[], bool]:
        ended = self.checks_ended()  # the polls of this run that ended (not voided)
        return lambda: (
            self.state.checks > 0 or self.state.stop_requested or self.checks_ended() > ended
        )

    def asked_check_ended(self) -> Callable[[], bool]:
        # A poll started after the ask made the check asked for; the running one, which the
        # ask ends, did not. One a control voided asks it again (the next poll's).
        asked = self.polls
        return lambda: self.ended_poll > asked

    def continue_suggested(self) -> bool:
        if super().continue_suggested():
            return True
        run_events = self.request.continue_as_new_after_events or RUN_EVENTS
        return workflow.info().get_current_history_length() >= run_events

    def watched(self, urls: dict[str, UrlState]) -> dict[str, UrlState]:
        """The states of the pages the config watches: a page an update took out is gone
        (its last error was shown as the watch's, for good)."""
        pages = {str(url) for url in self.config.urls}
        return {url: seen for url, seen in urls.items() if url in pages}

    def last_error(self) -> str | None:
        """The error of a URL whose last check failed, else of the last failed delivery."""
        for url, seen in self.watched(self.state.urls).items():
            if seen.last_outcome == "error":
                return f"{url}: {seen.last_error}"
        failure = self.state.last_failure
        return f"{failure.what}: {failure.error}" if failure else None

    @workflow.update
    async def pages_checked(self) -> TaskStatus:
        """The status once every page of the config has been checked (an update's new pages
        get their first check at once), or once a poll has ended without it (a failed
        poll), the watch is paused or stopping: what an update answers, as a create does."""
        # The polls of this run that ended (handed back, failed or were lost): all but one
        # running.
        since = self.checks_ended()

        def checked() -> bool:
            urls = self.state.urls
            return all(
                (seen := urls.get(str(url))) is not None
                and seen.last_checked_at is not None
                and seen.reading in (None, self.config.reading(str(url)))
                for url in self.config.urls
            )

        # Bounded: a continue-as-new waits for every handler, and no poll runs meanwhile.
        await until(
            lambda: (
                checked()
                or self.state.paused
                or self.state.stop_requested
                or (self.checks_ended() > since and not self.state.check_requested)
            ),
            PAGES_CHECKED_WAIT,
            "update: its pages checked",
        )
        return self.status()

    @workflow.query
    def status(self) -> TaskStatus:
        return self.task_status(
            urls={u: s.shown() for u, s in self.watched(self.state.urls).items()},
            hits_total=self.state.hits_total,
            changes_total=self.state.changes_total,
            last_error=self.last_error(),
        )
