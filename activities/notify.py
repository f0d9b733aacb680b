"""Fan a notification out to its targets, one leased delivery row per target.

Targets are the request's plus the user's push config for the message kind; they are sent at
the same time (bounded), each cut off after `AMBIENT_NOTIFY_TARGET_TIMEOUT`, with heartbeats
meanwhile. Only transient failures (network, timeouts, 5xx, 429) raise a retryable
`TransientNotifyError`; a permanent one is recorded on its row, as a `delivery.failed` event
and in the result, never raised, so one bad target never costs a watch its other deliveries.
Leases, outcomes and what is retried: docs/notifications.md, "Delivery". A delivery whose
receiver said "try again later" (greylisting, HTTP 429/503) is handed to a deliver-later run
instead (``DeliverLaterWorkflow``, started by activities/deliver_later.py), which retries it
through ``notify_later`` after the delay the receiver asked for, until delivered or given up
("Deliver later"). Targets, rows and failure events: activities/deliveries.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deliver_later import (
    defer_rows,
    end_for_deleted_task,
    end_for_removed_targets,
    give_up_time,
    past_give_up,
)
from activities.deliveries import (
    GIVE_UP_TRIES,
    LEASE_MARGIN,
    MAX_SHOWN,
    Recipient,
    delivery_key,
    failure,
    give_up,
    give_up_unwanted,
    internal_error,
    record_failure,
    targets_for,
)
from activities.notify_target import IN_FLIGHT, TargetSender
from ambient import activity_attempts
from ambient.activity_attempts import heartbeating
from ambient.domain.notify import (
    Delivery,
    DeliveryStatus,
    NotificationKind,
    NotifyRequest,
    NotifyResult,
    Target,
    redact_target,
)
from ambient.domain.push import stored_push_config
from ambient.log_redaction import redact
from ambient.status import database_down
from ambient.storage.db import database_busy
from ambient.storage.models import Delivery as Row
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.storage.users import user_named
from ambient.watches.threshold_rule import ALREADY_TOLD, alert_life
from ambient.words import in_reader_words
from ambient.xiaozhi import speaks_to_us


class DatabaseAwayError(ApplicationError):
    """A send that met its database not answering before it recorded anything (the user's
    settings not read): `notify` waits for it and sends again."""


# How long a try waits before it asks a database that did not answer again.
DATABASE_WAIT = timedelta(seconds=5)


def _time_left() -> float:
    """Seconds this try has before its start-to-close timeout (none: as if 0)."""
    info = activity.info()
    if info.start_to_close_timeout is None:
        return 0.0
    ends = info.started_time + info.start_to_close_timeout
    return (ends - datetime.now(UTC)).total_seconds()


def _cancelled_for_good() -> bool:
    """Whether this activity's cancel ends it for good: its caller asked. Not a worker shutting
    down, a pause or a timeout (the worker's own timer says "not found" too, as does a server
    that timed the try out: a run gone cannot be told from them), where Temporal tries it again
    and that try takes its rows over."""
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested


class NotifyActivities(TargetSender):
    """The notify activities: a notification fanned out, tried later, or given up."""

    @activity.defn
    async def notify(self, request: NotifyRequest) -> NotifyResult:
        """Deliver to every target once; see the module docstring for the rules."""
        if await self._told_already(request):
            activity.logger.info(
                "%s not delivered: its watch told that alert already", request.idempotency_key
            )
            return NotifyResult(deliveries=[])
        try:
            return await self._when_the_database_answers(request)
        except asyncio.CancelledError:
            if _cancelled_for_good():
                # No try comes after this one, and a caller that does not wait for its cancel
                # (a watch's, TRY_CANCEL) gives nothing up: what it left in flight (its leases
                # let go as its sends ended) is given up here, or it stayed `pending` for good.
                # A row a live try holds stays that try's; a caller's give-up after this one
                # finds the rest settled.
                ended = request.model_copy(update={"cancelled": True})
                try:
                    await self._give_up(ended, forced=False)
                except Exception:  # rows held by live tries, a database away: left as they are
                    activity.logger.warning("a cancelled notify's give-up failed", exc_info=True)
            raise

    async def _when_the_database_answers(self, request: NotifyRequest) -> NotifyResult:
        """`send`, waited for while this database does not answer (a restart, a failover) as
        long as the try's time allows: its tries' backoff (~30 s in all) was shorter than a
        database's restart, and a recovery not told for it was given up for good."""
        while True:
            try:
                return await self.send(
                    request, last_try=activity_attempts.last_attempt(request.attempts)
                )
            except DatabaseAwayError:
                if _time_left() < 2 * DATABASE_WAIT.total_seconds():
                    raise
                activity.logger.warning("%s waits for the database", request.idempotency_key)
                activity.heartbeat()
                await asyncio.sleep(DATABASE_WAIT.total_seconds())

    async def _told_already(self, request: NotifyRequest) -> bool:
        """Whether ``request`` tells a threshold watch's breach or recovery its life told
        already: `record_event` recorded it so under the same key just before; sent to nobody."""
        if request.message.kind is not NotificationKind.WATCH or request.task is None:
            return False
        if alert_life(request.idempotency_key) is None:
            return False
        try:
            async with self._db.session() as session:
                event = await EventRepository(session).keyed(request.idempotency_key)
        except SQLAlchemyError:
            # The event store away (its record failed too): told, as a failed record is.
            activity.logger.warning("events not read: %s delivered", request.idempotency_key)
            return False
        return event is not None and event.kind == ALREADY_TOLD

    @activity.defn
    async def notify_later(self, request: NotifyRequest) -> NotifyResult:
        """A deliver-later run's try: as `notify`, but what is transient is left to Temporal's
        retries (after the delay the receiver asked for) and never handed over again. A try
        due after the give-up sends nothing: it fails for good with the last answers; so does
        a try whose task was deleted since (a watch, a daily briefing, a reminder), its rows
        saying so."""
        async with self._db.session() as session:
            rows = await DeliveryRepository(session).under(request.user, request.idempotency_key)
        # Its first try: a task created since then is another life, not the one that sent.
        sent_at = min((row.created_at for row in rows), default=None)
        if await self._hand_over.task_deleted(request, sent_at):
            await end_for_deleted_task(self._db, request)
        request, removed = await self._in_task_now(request)
        if past_give_up(activity.info()):
            lines = [
                f"{row.channel}: {row.error}"
                for row in rows
                if row.status in ("failed", "deferred")
                and (row.error or "").startswith("transient:")
            ]
            raise ApplicationError(
                "given up: no try after the give-up",
                *lines,
                type="TransientNotifyError",
                non_retryable=True,
            )
        result = await self.send(request, later=True)
        return NotifyResult(deliveries=[*result.deliveries, *removed])

    async def _in_task_now(self, request: NotifyRequest) -> tuple[NotifyRequest, list[Delivery]]:
        """``request`` with the targets its task still names, and the deliveries to those taken
        out of it since (the task updated while they waited), ended."""
        named = await self._hand_over.task_targets(request)
        if named is None:
            return request, []
        recipient = await self.recipient(request.user)
        resolve = partial(self.secrets.usable, user=recipient.name, is_admin=recipient.is_admin)
        kind = request.message.kind

        def still(target: Target) -> bool:
            # Named still, however written, for this kind (an address in other capitals, the
            # target's kinds narrowed but still this one's): not taken out.
            return any(t.wants(kind) and target.same_destination(t, resolve) for t in named)

        if all(still(target) for target in request.targets):
            return request, []
        kept = request.model_copy(update={"targets": [t for t in request.targets if still(t)]})

        def keys(asked: NotifyRequest) -> set[str]:
            targets, _ = targets_for(asked.message.kind, asked.targets, recipient, self.secrets)
            return {delivery_key(asked.idempotency_key, t.type, t.target) for t in targets}

        # A place the push config names too is still wanted: only the task's own ends.
        return kept, await end_for_removed_targets(self._db, request, keys(request) - keys(kept))

    @activity.defn
    async def notify_given_up(self, request: NotifyRequest) -> None:
        """`notify` failed for good: each delivery it left unsettled failed for good, said once
        (no code of `notify` runs after a last try that timed out or lost its worker), those
        of targets no longer wanted too. Not while a deliver-later run of it goes on (a try
        that handed it over, then lost its result): that run says so when it gives up."""
        # A row a live lease holds is another try's, maybe sending now (a worker Temporal took
        # for lost, still at work): given up under it, the message it sends would be said not
        # sent. It is left to its holder, and this give-up tried again once the lease ends.
        # Still held at the last try, its holder is taken for dead (a live one finishes within
        # its lease) and it is given up.
        await self._give_up(request, forced=activity_attempts.last_attempt(GIVE_UP_TRIES))

    async def _give_up(self, request: NotifyRequest, *, forced: bool) -> None:
        """`notify_given_up`'s work; ``forced``: rows a live lease holds are given up too
        (else a retryable error says they are left to their holders)."""
        if await self._hand_over.handed_over(request):
            return
        recipient = await self.recipient(request.user)
        targets, _ = targets_for(request.message.kind, request.targets, recipient, self.secrets)
        held: list[Row] = []
        async with self._db.writing() as session:
            deliveries = DeliveryRepository(session)
            rows = await deliveries.under(request.user, request.idempotency_key)
            unwanted = {row.key: row for row in rows}
            now = datetime.now(UTC)
            lease = None if forced else now
            for target in targets:
                key = delivery_key(request.idempotency_key, target.type, target.target)
                shown = redact_target(target.type, target.target)[:MAX_SHOWN]
                row = unwanted.pop(key, None) or await deliveries.get(key)  # a hashed long key
                given = await give_up(session, request, key, target.type, shown, row, lease)
                if not given and row is not None:
                    held.append(row)
            for row in unwanted.values():
                if not await give_up_unwanted(session, request, row, now, forced):
                    held.append(row)
        if held:
            ends = max(row.lease_until or now for row in held)
            raise ApplicationError(
                "deliveries still in flight under a live lease: given up after it ends",
                *(f"{row.channel}: {IN_FLIGHT}" for row in held),
                type="TransientNotifyError",
                next_retry_delay=max(ends - now, timedelta(0)) + LEASE_MARGIN,
            )

    async def send(
        self,
        request: NotifyRequest,
        *,
        heartbeat: bool = True,
        last_try: bool = False,
        later: bool = False,
    ) -> NotifyResult:
        """The notify activity's work; a poll sends with it too (``heartbeat=False``).
        ``last_try``: nobody tries again after this one, so a transient failure is final (but
        one the receiver asked to try later, handed over); ``later``: a deliver-later run's."""
        temporal_client = None if later else self._hand_over.client()
        # A deliver-later run's try leaves what may pass deferred until the run's give-up.
        retry_until = give_up_time(activity.info()) if later else None
        try:
            recipient = await self.recipient(request.user)
            targets, quiet = targets_for(
                request.message.kind, request.targets, recipient, self.secrets
            )
            # Said in the recipient's language (its deadline in their time zone, its words with
            # no model) here, where they are known (not in the workflow); a deliver-later run
            # is handed the request as asked, and picks again.
            message = request.message
            if message.no_voice is not None and not await speaks_to_us(self._db, request.user):
                message = message.no_voice  # "by voice" told only to one who can speak to us
            said = in_reader_words(message, recipient.language).said_in(
                recipient.language, recipient.timezone, model=self._model
            )
            said = said.linked_under(self._channels.pages)
            told = request.model_copy(update={"message": said})
            in_flight, known = await self._give_up_unwanted(request, targets)
            gate = asyncio.Semaphore(self._channels.concurrency)
            # A last try's transient failures, final unless this try hands them over (known
            # once every target answered): said as given up then.
            unsaid: list[tuple[str, Delivery]] = []

            async def one(target: Target) -> Delivery:
                shown = redact_target(target.type, target.target)
                held = quiet and target.type != "inbox"
                async with gate:
                    try:
                        return await self._deliver(
                            told,
                            recipient,
                            target,
                            known,
                            held=held,
                            last_try=last_try,
                            unsaid=unsaid if temporal_client is not None else None,
                            retry_until=retry_until,
                        )
                    except Exception as exc:  # this target's bug or refused row: its failure
                        if database_busy(exc):
                            # The row could not be read or written now: this target waits
                            # for a retry; the others go on meanwhile.
                            error = "transient: recording the delivery failed"
                            return failure(target.type, shown, f"{error}: {type(exc).__name__}")
                        # One target's failure is that target's failed delivery: raising here
                        # would make the task group cancel every other target's send.
                        return internal_error(target.type, shown, exc, "outside the send")

            # A task group: sends are never orphaned (a cancelled activity cancels them all);
            # each target's failure is returned as data by `one`, so none cancels the others.
            beating = heartbeating() if heartbeat else contextlib.nullcontext()
            async with beating, asyncio.TaskGroup() as group:
                sends = [group.create_task(one(t)) for t in targets]
            deliveries = [send.result() for send in sends] + in_flight
        except Exception as exc:  # a bug here would fail the same way on every retry
            if database_busy(exc) or isinstance(exc, TimeoutError):
                away = DatabaseAwayError if database_down(exc) else ApplicationError
                raise away(
                    redact(f"notify could not reach the database: {exc}"),
                    type="TransientNotifyError",
                ) from None  # its cause would be sent along, unredacted
            activity.logger.exception("notify failed before any delivery was recorded")
            raise ApplicationError(
                redact(f"notify failed: {type(exc).__name__}: {exc}"),  # a key's URL: no query
                type="NotifyInternalError",
                non_retryable=True,
            ) from None
        deliveries += [
            Delivery(channel="push_config", target="", status=DeliveryStatus.FAILED, error=p)
            for p in recipient.config_problems
        ]
        waiting = [d for d in deliveries if d.error and d.error.startswith("transient:")]
        if not waiting:
            return NotifyResult(deliveries=deliveries)
        if temporal_client is not None and await self._hand_over.start(
            temporal_client, request, waiting, last_try
        ):
            # Settled for this caller: the deliver-later run goes on with them, and their rows
            # say so until its give-up.
            until = datetime.now(UTC) + self._hand_over.give_up_after
            await defer_rows(self._db, request, until)
            handed = {id(d) for d in waiting}
            deferred = {"status": DeliveryStatus.DEFERRED}
            kept = [d.model_copy(update=deferred) if id(d) in handed else d for d in deliveries]
            return NotifyResult(deliveries=kept)
        if unsaid:
            # Not handed over: this last try's transient failures are final, said once (else
            # the caller's notify_given_up says them; a poll has none).
            with contextlib.suppress(SQLAlchemyError):
                async with self._db.writing() as session:
                    for key, delivery in unsaid:
                        await record_failure(session, request, delivery, key, True)
        summary = "; ".join(f"{d.channel}: {d.error}" for d in waiting)
        # A deliver-later run's next try comes when the receiver asked (at least a second
        # on), else by its retry policy; not later than the run's give-up for a target that
        # asked to wait past it (a daily quota's Retry-After), while another may pass before:
        # that wait gave the whole run up at its first try, a greylisting mail server's too.
        asked = [max(d.later, 1.0) for d in waiting if d.later]
        if retry_until is not None:
            left = (retry_until - datetime.now(UTC)).total_seconds()
            asked = [wait for wait in asked if wait < left] or asked
        # Every failure of this try as details: a last try's raise is all its caller gets.
        raise ApplicationError(
            f"transient delivery failures: {summary}",
            *NotifyResult(deliveries=deliveries).failure_lines(),
            type="TransientNotifyError",
            next_retry_delay=timedelta(seconds=max(asked)) if later and asked else None,
        )

    async def _give_up_unwanted(
        self, request: NotifyRequest, targets: list[Target]
    ) -> tuple[list[Delivery], dict[str, Row]]:
        """An earlier try's delivery to a target no longer wanted (its channel removed from the
        push config since) failed for good, said once: else "retrying" for ever, never tried.
        Those still in flight, as failures to retry after their lease; and the rows read, by
        key (a wanted target's row settled then is settled now)."""
        wanted = {delivery_key(request.idempotency_key, t.type, t.target) for t in targets}
        now = datetime.now(UTC)
        async with self._db.session() as session:
            rows = await DeliveryRepository(session).under(request.user, request.idempotency_key)
        if any(r.key not in wanted and r.takeable(now) for r in rows):
            async with self._db.writing() as session:  # read again in the write turn
                rows = await DeliveryRepository(session).under(
                    request.user, request.idempotency_key
                )
                for row in rows:
                    if row.key not in wanted and row.takeable(now):
                        await give_up_unwanted(session, request, row, now)
        unwanted = (r for r in rows if r.key not in wanted and r.status == "pending")
        in_flight = [
            failure(r.channel, r.target, IN_FLIGHT) for r in unwanted if not r.takeable(now)
        ]
        return in_flight, {r.key: r for r in rows}

    async def recipient(self, name: str) -> Recipient:
        user = await user_named(self._db, name)
        if user is None:
            return Recipient(
                name, False, False, None, None, "UTC", [], None, [], self._channels.language
            )
        problems: list[str] = []
        config = stored_push_config(user.push_config, problems)
        return Recipient(
            name=name,
            exists=True,
            is_admin=user.is_admin,
            email=user.email,
            phone=user.phone,
            timezone=user.timezone,
            channels=config.channels,
            quiet_hours=config.quiet_hours,
            config_problems=[f"permanent: push config {p}" for p in problems],
            language=user.language or self._channels.language,
        )
