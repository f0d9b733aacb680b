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
import functools
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deliver_later import (
    HandOver,
    defer_rows,
    end_for_deleted_task,
    give_up_time,
    past_give_up,
)
from activities.deliveries import (
    GIVE_UP_TRIES,
    HANDED_TIMED_OUT,
    HANDING,
    HELD_LATER,
    LEASE_MARGIN,
    MAX_SHOWN,
    POSTS,
    Recipient,
    RowPosts,
    delivery_key,
    failure,
    give_up,
    give_up_unwanted,
    internal_error,
    posts_sent,
    record_failure,
    targets_for,
)
from ambient import activity_attempts
from ambient.activity_attempts import heartbeating
from ambient.clients.notify import inbox
from ambient.clients.notify.base import SEND_CLOCK, ChannelRegistry, SendClock
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
)
from ambient.domain.notify import (
    HANDED_UNANSWERED,
    INTERNAL_ERROR,
    Delivery,
    DeliveryStatus,
    NotifyRequest,
    NotifyResult,
    Target,
    redact_target,
)
from ambient.domain.push import stored_push_config
from ambient.log_redaction import redact
from ambient.storage import Database
from ambient.storage.db import database_busy
from ambient.storage.models import Delivery as Row
from ambient.storage.repositories import DeliveryRepository
from ambient.storage.users import not_registered, user_named

IN_FLIGHT = "transient: a send to this target is in flight; retrying after its lease"


def _cancelled_for_good() -> bool:
    """Whether this activity's cancel ends it for good: its caller asked. Not a worker shutting
    down, a pause or a timeout (the worker's own timer says "not found" too, as does a server
    that timed the try out: a run gone cannot be told from them), where Temporal tries it again
    and that try takes its rows over."""
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested


class NotifyActivities:
    def __init__(self, db: Database, channels: ChannelRegistry, *, model: bool = True) -> None:
        self._db = db
        self._channels = channels
        # Whether a language model answers the assistant a message may send its reader to
        # (settings.llm_mode): else its ``no_model`` words are sent.
        self._model = model
        self._policy = channels.policy
        self.secrets = channels.policy.secrets  # the server secrets targets may name
        self._timeout = channels.target_timeout
        self.retry_seconds = channels.retry_seconds
        self._hand_over = HandOver(channels.give_up_seconds, channels.later_seconds)

    @property
    def lease(self) -> timedelta:
        """How long a send holds its delivery row: another try meets "in flight" until then
        (a robot's wait for its turn holds it longer: `RowPosts.hold`)."""
        return timedelta(seconds=self._timeout) + LEASE_MARGIN

    @activity.defn
    async def notify(self, request: NotifyRequest) -> NotifyResult:
        """Deliver to every target once; see the module docstring for the rules."""
        try:
            return await self.send(
                request, last_try=activity_attempts.last_attempt(request.attempts)
            )
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

    @activity.defn
    async def notify_later(self, request: NotifyRequest) -> NotifyResult:
        """A deliver-later run's try: as `notify`, but what is transient is left to Temporal's
        retries (after the delay the receiver asked for) and never handed over again. A try
        due after the give-up sends nothing: it fails for good with the last answers; so does
        a try whose task was deleted since (a watch, a daily briefing), its rows saying so."""
        async with self._db.session() as session:
            rows = await DeliveryRepository(session).under(request.user, request.idempotency_key)
        # Its first try: a task created since then is another life, not the one that sent.
        sent_at = min((row.created_at for row in rows), default=None)
        if await self._hand_over.task_deleted(request, sent_at):
            await end_for_deleted_task(self._db, request)
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
        return await self.send(request, later=True)

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
            said = request.message.said_in(
                recipient.language, recipient.timezone, model=self._model
            )
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
                raise ApplicationError(
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
        # on), else by its retry policy.
        asked = [max(d.later, 1.0) for d in waiting if d.later]
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

    async def _deliver(
        self,
        request: NotifyRequest,
        recipient: Recipient,
        target: Target,
        known: dict[str, Row],
        *,
        held: bool = False,
        last_try: bool = False,
        unsaid: list[tuple[str, Delivery]] | None = None,
        retry_until: datetime | None = None,
    ) -> Delivery:
        """Send to one target under its row's lease; ``held`` (quiet hours): suppressed instead.
        ``unsaid`` (a try that may hand its failures to a deliver-later run): where a last
        try's transient failure goes, said final only if the try does not hand it over.
        ``retry_until`` (a deliver-later run's try): a transient failure's row is deferred,
        tried again until then."""
        channel_name, address = target.type, target.target
        shown = redact_target(channel_name, address)[:MAX_SHOWN]
        key = delivery_key(request.idempotency_key, channel_name, address)
        now = datetime.now(UTC)
        # Most rows met again are settled (a retry, a replay): the rows read for this try
        # answer those without queueing for the write lock (sent, suppressed or failed for good
        # stays so); the rest (none yet, pending, to retry) take the write turn.
        seen = known.get(key)
        settled = seen is not None and seen.status != "pending" and not seen.takeable(now)
        # A transient failure of an earlier try was said "retrying" (record_failure).
        retried = (
            seen is not None
            and seen.status in ("failed", "deferred")
            and (seen.error or "").startswith("transient:")
        )
        # The inbox's send is a write of this database: made in the claim's own transaction,
        # not in a second write turn after it (``stored``: the message's id, once claimed).
        inline = not settled and not held and self._stored_with_claim(recipient, target)
        stored = None
        # Read-then-write transactions take the write lock first (see Database.write_session).
        async with self._db.session() if settled else self._db.write_session() as session:
            # From the claim, not from before the wait for the write turn (a loaded database's
            # wait would cut the lease short of the send: another try could take the row).
            now = datetime.now(UTC)
            row, mine = await DeliveryRepository(session).acquire(
                key,
                user=request.user,
                channel=channel_name,
                target=shown,
                now=now,
                lease_until=now + self.lease,
                task=request.task,
                kind=request.message.kind.value,
            )
            if mine and inline and row.provider_id is None:
                stored = await inbox.store(
                    session, request.user, request.message, key, row.attempts
                )
            await session.commit()
            status, error, provider_id = row.status, row.error, row.provider_id
            attempt = row.attempts
        delivery = functools.partial(Delivery, channel=channel_name, target=shown)
        if stored is not None:
            return delivery(status=DeliveryStatus.SENT, provider_id=stored)
        if not mine:
            if status == DeliveryStatus.SENT:
                return delivery(status=DeliveryStatus.DUPLICATE, provider_id=provider_id)
            if status == DeliveryStatus.SUPPRESSED:
                return delivery(status=DeliveryStatus.SUPPRESSED, error=error)
            if status == "pending":
                error = IN_FLIGHT
            # Else failed for good earlier: a retry must not retry what can never succeed.
            return delivery(status=DeliveryStatus.FAILED, error=error)
        if provider_id == HANDING:  # taken over from a try whose worker died handing it over
            outcome = failure(channel_name, shown, HANDED_UNANSWERED)
        elif held:
            outcome = delivery(status=DeliveryStatus.SUPPRESSED, error="quiet hours")
        else:
            # The posts an earlier try sent (``posts:N``, written below): it goes on after them.
            posts = RowPosts(self._db, key, posts_sent(provider_id), attempt)
            try:
                outcome = await self._send(request, recipient, target, key, posts)
            except asyncio.CancelledError:
                await self._let_go(key, attempt)
                raise
            if outcome.status is not DeliveryStatus.SENT:  # the next try goes on after them
                outcome.provider_id = f"{POSTS}{posts.done}" if posts.done else None
            outcome.target = shown
            if outcome.status is DeliveryStatus.SENT and channel_name == "inbox":
                # The inbox's send wrote its row sent with the message, in one transaction
                # (InboxChannel.send): written again here, it would take a write turn for nothing.
                return outcome
        # On the last try, a failure is not final yet if the try may still hand it over:
        # whether it does depends on every target's answer (a 500 goes along with a 503).
        deciding = last_try and unsaid is not None
        transient = (outcome.error or "").startswith("transient:")
        deferred = retry_until is not None and outcome.status is DeliveryStatus.FAILED and transient
        async with self._db.writing() as session:
            ours = await DeliveryRepository(session).finish(
                key,
                attempt,
                status=DeliveryStatus.DEFERRED.value if deferred else outcome.status.value,
                error=outcome.error,
                provider_id=outcome.provider_id,
                retry_until=retry_until if deferred else None,
            )
            if not ours:
                # This try's lease ran out and another took the row over: the row, and what is
                # said of its failure, are that try's. What this one sent went out; a failure
                # is in flight there, and a retry of this notification finds how it ended.
                sent = outcome.status is not DeliveryStatus.FAILED
                return outcome if sent else delivery(status=DeliveryStatus.FAILED, error=IN_FLIGHT)
            if outcome.status is DeliveryStatus.FAILED:
                await record_failure(session, request, outcome, key, last_try and not deciding)
            elif outcome.status is DeliveryStatus.SUPPRESSED and retried:
                # Suppressed, as any push in quiet hours (the inbox took its copy at the first
                # try): the "retrying" said before must not stay the last word.
                said = failure(channel_name, shown, HELD_LATER)
                await record_failure(session, request, said, key, True)
        if unsaid is not None and deciding and transient:
            unsaid.append((key, outcome))
        return outcome

    async def _let_go(self, key: str, attempt: int) -> None:
        """This try, cancelled (its caller's cancel: a briefing deleted), ends here: its row's
        lease with it, so the give-up after it finds the row nobody's, while a row a live try
        holds (a worker Temporal took for lost, still sending) stays that try's."""
        with contextlib.suppress(SQLAlchemyError, OSError):
            async with self._db.writing() as session:
                await DeliveryRepository(session).hold(key, attempt, datetime.now(UTC))

    async def _send(
        self,
        request: NotifyRequest,
        recipient: Recipient,
        target: Target,
        key: str,
        posts: RowPosts,
    ) -> Delivery:
        channel_name, address = target.type, target.target
        try:
            channel = self._channels.get(channel_name)
            self._check(recipient, target)
            async with asyncio.timeout(self._timeout) as clock:
                token = SEND_CLOCK.set(SendClock(clock, posts.hold))
                try:
                    provider_id = await channel.send(
                        request.user, request.message, address, idempotency_key=key, posts=posts
                    )
                finally:
                    SEND_CLOCK.reset(token)
        except PermanentNotifyError as exc:
            return failure(channel_name, address, f"permanent: {exc}")
        except TimeoutError:
            if posts.handed:  # as a connection lost there: another try would be a second copy
                return failure(
                    channel_name, address, HANDED_TIMED_OUT.format(seconds=self._timeout)
                )
            return failure(channel_name, address, f"transient: no answer within {self._timeout:g}s")
        except DeferredNotifyError as exc:
            activity.logger.info("delivery on %s to try again later: %s", channel_name, exc)
            failed = failure(channel_name, address, f"transient: {exc}")
            failed.later = exc.retry_after or 0.0
            return failed
        except (TransientNotifyError, OSError) as exc:
            activity.logger.warning("delivery on %s failed: %s", channel_name, exc)
            return failure(channel_name, address, f"transient: {exc}")
        except Exception as exc:  # a bug (retrying would fail the same way), or the database
            # (a post's progress is recorded as it goes): locked, no connection, dropped
            if database_busy(exc):
                error = f"transient: {INTERNAL_ERROR}{type(exc).__name__}"
                return failure(channel_name, address, error)
            if isinstance(exc, DBAPIError):
                error = f"permanent: {INTERNAL_ERROR}{type(exc).__name__}: {exc.orig}"
                return failure(channel_name, address, error)
            return internal_error(channel_name, address, exc, "with an internal error")
        return Delivery(
            channel=channel_name,
            target=address,
            status=DeliveryStatus.SENT,
            provider_id=provider_id,
        )

    def _stored_with_claim(self, recipient: Recipient, target: Target) -> bool:
        """Whether ``target`` is the inbox, sendable now: stored in its claim's transaction."""
        if target.type != "inbox":
            return False
        try:
            sendable = isinstance(self._channels.get("inbox"), inbox.InboxChannel)
            self._check(recipient, target)
        except PermanentNotifyError:  # said by the send, as every refusal is
            return False
        return sendable

    def _check(self, recipient: Recipient, target: Target) -> None:
        """The entry rules again at send time (older configs, legacy workflow inputs)."""
        if not recipient.exists:
            raise PermanentNotifyError(not_registered(recipient.name))
        if not target.target and target.type != "inbox":
            raise PermanentNotifyError(
                f"no {target.type} target for {recipient.name}: give one in the task or "
                "in the push config (set_push_config)"
            )
        problem = self._policy.problem(target, user=recipient.name, is_admin=recipient.is_admin)
        if problem is not None:
            raise PermanentNotifyError(str(problem))
