"""A web monitor's running poll asked to end, or reported lost with its worker process: ended,
cancelled, waited for or abandoned, so no check is lost and no event handed back twice."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.polling import PagePoller
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.remediation.safety import a_while
    from ambient.watches.models import Failure
    from ambient.watches.polling import (
        EndPoll,
        LostPollCheck,
        PollLost,
        PollResult,
        slot_after_beat,
    )

from workflows.watch_controls import WatchControls

# After asking a poll to hand back, how long to wait before cancelling it through Temporal
# (a poll in another worker process hears of a cancellation only at its next heartbeat).
END_POLL_WAIT = timedelta(seconds=10)
# A poll reported lost may be alive after all: Temporal retried it in a live process (its
# heartbeat timeout passed) before the sweep found the dead process's lease. The sweep's end
# request ends such a poll within END_POLL_READ; the workflow cancels the poll and waits this
# long for its result, so the events it hands back are taken from it, not handed back again
# by the next poll (that would put them in history twice). A poll that does not answer is
# dead: its result is dropped and the next poll takes over what it stored. The wait is only
# for a poll that may answer (its process beat again, or another process's attempt of it
# holds the watch: ``may_answer``); the others are abandoned at once.
LOST_POLL_WAIT = timedelta(seconds=15)


class PollEnds(WatchControls):
    """A poll's end asked for, and a lost poll's handling (the web monitor's base)."""

    polls: int  # polls started in this run; the running one's number
    lost: PollLost | None  # the running poll's process is dead

    async def answers(self, handle: workflow.ActivityHandle[PollResult], lost: PollLost) -> bool:
        """Cancel a poll reported lost and wait ``LOST_POLL_WAIT`` for it; True if it handed
        back a result to take (Temporal had retried it in a live process)."""
        handle.cancel()
        waits = await self.may_answer(lost) or handle.done()
        try:
            if waits:
                await workflow.wait_condition(
                    handle.done,
                    timeout=LOST_POLL_WAIT,
                    timeout_summary=f"poll {lost.poll}, reported lost: its answer, "
                    f"{a_while(LOST_POLL_WAIT)}",
                )
        except TimeoutError:
            waits = False
        if waits and not handle.cancelled() and handle.exception() is None:
            return True
        if not waits:
            # Its worker process is dead: the server cancels the poll (a cancelled poll is not
            # tried again) and the next poll starts now, taking over what the dead one stored
            # (its events, by the poll's mark). What the dead attempt returns is dropped.
            handle.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Else cancelled before any attempt ran again: nothing was handed back, the next poll
        # takes over what the dead attempt stored.
        self.note_lost(lost)
        return False

    async def may_answer(self, lost: PollLost) -> bool:
        """Whether the poll reported lost may still hand back; not known
        (the read failed): it may."""
        try:
            return await workflow.execute_local_activity_method(
                PagePoller.lost_poll_alive,
                LostPollCheck(workflow_id=workflow.info().workflow_id, lost=lost),
                start_to_close_timeout=timedelta(seconds=5),
                # A local activity retries without end by default: a read that fails twice
                # is "not known", and the workflow waits for the poll as before.
                retry_policy=RetryPolicy(maximum_attempts=2),
                summary=f"poll {lost.poll}, reported lost: may it still answer?",
            )
        except ACTIVITY_FAILED as error:
            self.heard(error)  # the run's cancel: a stop, the lost poll waited for as it was
            return True

    @staticmethod
    def grid_after(
        due: datetime, first_check_in: float, interval: timedelta, lost: PollLost
    ) -> datetime:
        """The lost poll's first slot after its process's last beat: slots before it were
        checked by that process, this one maybe not. Its grid is its first check (its start,
        as its lease says, plus ``first_check_in``, by the beat's clock; ``due`` if not known)
        plus whole intervals: reckoned from ``due`` it would be early by the poll's start
        latency, and a slot missed then taken for checked."""
        if lost.silent_since is None:
            return due
        first = due
        if lost.started_at is not None:
            first = lost.started_at + timedelta(seconds=first_check_in)
        return slot_after_beat(first, interval, lost.silent_since)

    def is_lost(self, number: int) -> bool:
        return self.lost is not None and self.lost.poll == number

    def note_lost(self, lost: PollLost) -> None:
        self.state.last_failure = Failure(
            what="poll",
            error=f"the worker process of the poll ({lost.process[:12]}) stopped; polling again",
            at=workflow.now(),
        )

    @workflow.signal
    def poll_lost(self, lost: PollLost) -> None:
        """A live worker process found the one running this poll dead (activities/polling.py)."""
        running = (self.polls, self.life, workflow.info().run_id)
        if self.checking and (lost.poll, lost.life, lost.run_id) == running:
            self.lost = lost

    async def end_poll(self, handle: workflow.ActivityHandle[PollResult], number: int) -> None:
        """Ask the poll to hand back now; cancel it if it runs where we cannot reach it (or
        the run's cancel is heard meanwhile: its poll is ending)."""
        try:
            await workflow.execute_local_activity_method(
                PagePoller.end_poll,
                EndPoll(
                    workflow_id=workflow.info().workflow_id,
                    life=self.life,
                    run_id=workflow.info().run_id,
                    poll=number,
                ),
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=RetryPolicy(maximum_attempts=2),
                summary=f"poll {number}: asked to hand back now",
            )
        except ACTIVITY_FAILED as error:
            self.heard(error)  # the run's cancel: a stop, as this poll's end is under way
        try:
            await workflow.wait_condition(
                lambda: handle.done() or self.is_lost(number),
                timeout=END_POLL_WAIT,
                timeout_summary=f"poll {number} hands back, {a_while(END_POLL_WAIT)}, "
                "or it is cancelled",
            )
        except TimeoutError:
            handle.cancel()
        except asyncio.CancelledError as cancel:
            if not self.heard(cancel):
                raise
            handle.cancel()
