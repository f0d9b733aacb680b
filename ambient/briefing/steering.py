"""Pausing and resuming a daily briefing (`BriefingService`'s, whose reads it uses): one
signal for requests that read the run alike, and what the run says after it, or what the
server holds when its worker does not answer."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from temporalio.client import Client
from temporalio.service import RPCError

from ambient import controls_in_flight, no_answer
from ambient.briefing import records
from ambient.briefing.errors import BriefingError, BriefingNotFoundError, BriefingUnavailableError
from ambient.briefing.models import BriefingStatus
from ambient.controls_in_flight import ALREADY_SO, DELIVERED_FAILING, DELIVERED_UNCONFIRMED
from ambient.refusals import Refusal
from ambient.status import temporal_down
from ambient.watches.configs import task_id_for

NOT_FOUND = "no daily briefing for %r; create one with create_daily_briefing"
FINISHING = (
    "the daily briefing of %r was deleted (its last step is finishing); "
    "create one with create_daily_briefing"
)


class Steering:
    """The pause and resume of `BriefingService`, whose client and reads it uses."""

    client: Client

    if TYPE_CHECKING:

        async def _live(self, user: str) -> tuple[str, str | None]: ...

        async def read_status(
            self, user: str, *, ended: bool = False, quiet: bool = False
        ) -> BriefingStatus | None: ...

        async def told(
            self, user: str, status: BriefingStatus, *, operator: bool | None = None
        ) -> BriefingStatus: ...

    async def pause(self, user: str) -> BriefingStatus:
        return await self._steer(user, paused=True)

    async def resume(self, user: str) -> BriefingStatus:
        return await self._steer(user, paused=False)

    async def _steer(self, user: str, *, paused: bool) -> BriefingStatus:
        """Pause or resume; one already so once the controls on their way apply (a pause no
        worker took yet is a paused briefing) is sent nothing (a signal more in its history)
        and noted so, as a task's pause is; requests that read the run alike send one signal
        (the server records a request id once)."""
        signal = "pause" if paused else "resume"
        state, basis = await self._live(user)
        if basis is not None and state == controls_in_flight.CONTROL_STATES[signal]:
            return await self._steered(user, paused, ALREADY_SO)
        # Not whole (a worker holds the run's task): sent under an id of its own.
        request_id = f"{signal}/{basis}" if basis else str(uuid.uuid4())
        try:
            await controls_in_flight.signal_once(self.client, task_id_for(user), signal, request_id)
        except RPCError as exc:
            if no_answer.not_found(exc):  # the run ended since the look
                raise BriefingNotFoundError(NOT_FOUND % user) from None
            raise
        return await self._steered(user, paused)

    async def _steered(self, user: str, paused: bool, note: str | None = None) -> BriefingStatus:
        """The status after a pause or resume (``note``: it already was so), or what happened
        since the control. A worker silent or Temporal gone: the run's config as it started,
        said as delivered and not confirmed, as a task's control is (the server holds the
        signal for a worker). A worker that keeps failing the run's workflow task: delivered,
        not applied until that is mended (waiting does not help). The run deleted or ended
        since: said so, as a control sent after that is. Any other refusal: as it came."""
        try:
            status = await self.read_status(user)
        except (BriefingError, RuntimeError) as exc:
            trouble = no_answer.worker_trouble(str(exc))
            if trouble == "failing":
                raise BriefingUnavailableError(Refusal(DELIVERED_FAILING)) from None
            if trouble != "silent" and not temporal_down(exc):
                raise
            return await self._unconfirmed(user, paused, note)
        if status is None:
            raise BriefingNotFoundError(NOT_FOUND % user)  # ended since the control
        if status.stopping:
            raise BriefingNotFoundError(FINISHING % user)  # deleted since: it changes nothing
        told = await self.told(user, status)
        return told if note is None else told.model_copy(update={"note": note, "paused": paused})

    async def _unconfirmed(self, user: str, paused: bool, note: str | None) -> BriefingStatus:
        """A control the run's worker (or Temporal) did not confirm: the run's config as it
        started, read off the server's record (no worker needed), noted delivered and not
        confirmed; not readable either (Temporal gone): a refusal saying so."""
        _, run = await records.running_input(self.client, task_id_for(user))
        if run is None:
            # Delivered all the same, and not wrong of the caller.
            raise BriefingUnavailableError(Refusal(DELIVERED_UNCONFIRMED))
        carry = run.carry
        return BriefingStatus(
            user=user,
            task_id=task_id_for(user),
            config=run.config,
            paused=paused,
            phase="unknown",
            days_completed=carry.days_completed,
            last_date=carry.last_date,
            last_midnight=carry.last_midnight,
            last_given_at=carry.last_given_at,
            note=note or DELIVERED_UNCONFIRMED,
        )
