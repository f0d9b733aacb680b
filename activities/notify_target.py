"""One target's delivery under its row's lease: the row claimed (the inbox stored in the same
transaction), the channel's send cut off after `AMBIENT_NOTIFY_TARGET_TIMEOUT`, its answer
sorted into sent, held, permanent or transient, and the row finished. The fan-out over targets,
and what is given up or handed over: activities/notify.py."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from temporalio import activity

from activities.deliver_later import HandOver
from activities.deliveries import (
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
    internal_error,
    posts_sent,
    record_failure,
)
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
    Target,
    redact_target,
)
from ambient.storage import Database
from ambient.storage.db import database_busy
from ambient.storage.models import Delivery as Row
from ambient.storage.repositories import DeliveryRepository
from ambient.storage.users import not_registered

IN_FLIGHT = "transient: a send to this target is in flight; retrying after its lease"


class TargetSender:
    """Sends to one target each; `NotifyActivities` fans a notification out over them."""

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
        elif held and not posts_sent(provider_id):
            # (A message whose first posts went out before quiet hours began is finished:
            # held, the group kept "(1/3)" and the rest was never posted.)
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
            # An email or sms one falls back to the profile too: one whose owner removed that
            # since the task was made (an update that leaves it is not refused) is said so here.
            profile = {"email": "email", "sms": "phone"}.get(target.type)
            also = f", or set the {profile} in the profile (it has none)" if profile else ""
            raise PermanentNotifyError(
                f"no {target.type} target for {recipient.name}: give one in the task or "
                f"in the push config (set_push_config){also}"
            )
        problem = self._policy.problem(target, user=recipient.name, is_admin=recipient.is_admin)
        if problem is not None:
            raise PermanentNotifyError(str(problem))
