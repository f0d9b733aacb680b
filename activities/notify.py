"""Fan a notification out to its targets, one recorded delivery per target.

Targets are the request's plus the user's push config for the message kind. A delivery
row keyed by (request key, channel, target) is written before sending and marked sent
after: a retry skips what was sent. Permanent failures are recorded and reported;
transient ones make the activity fail *after* every other target had its chance, so
Temporal retries only what is left.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ambient.clients.notify import ChannelRegistry, PermanentNotifyError
from ambient.domain.notify import Delivery, DeliveryStatus, NotifyRequest, NotifyResult, Target
from ambient.domain.push import PushConfig, default_target, route
from ambient.storage import Database
from ambient.storage.models import User
from ambient.storage.repositories import DeliveryRepository, UserRepository

log = logging.getLogger(__name__)


class NotifyActivities:
    def __init__(self, db: Database, channels: ChannelRegistry) -> None:
        self._db = db
        self._channels = channels

    @activity.defn
    async def notify(self, request: NotifyRequest) -> NotifyResult:
        """Deliver to every target once; see the module docstring for the rules."""
        async with self._db.session() as session:
            user = await UserRepository(session).get(request.user)
        targets, quiet = self._targets(request, user)
        deliveries: list[Delivery] = []
        for target in targets:
            if quiet and target.channel != "inbox":
                deliveries.append(
                    Delivery(
                        channel=target.channel,
                        target=target.target,
                        status=DeliveryStatus.SUPPRESSED,
                        error="quiet hours",
                    )
                )
                continue
            deliveries.append(await self._deliver(request, target))
        transient = [d for d in deliveries if d.error and d.error.startswith("transient:")]
        if transient:
            summary = "; ".join(f"{d.channel}: {d.error}" for d in transient)
            raise ApplicationError(
                f"transient delivery failures: {summary}", type="TransientNotifyError"
            )
        return NotifyResult(deliveries=deliveries)

    def _targets(self, request: NotifyRequest, user: User | None) -> tuple[list[Target], bool]:
        config = PushConfig.model_validate(user.push_config) if user else PushConfig()
        targets: list[Target] = []
        for target in [*request.targets, *route(config, request.message.kind)]:
            if not target.target and target.channel not in ("inbox",):
                address = default_target(config, target.channel)
                if address is None and user is not None:
                    address = {"email": user.email, "sms": user.phone}.get(target.channel)
                target = target.model_copy(update={"target": address or ""})
            if target not in targets:
                targets.append(target)
        quiet = False
        if config.quiet_hours is not None and user is not None:
            local = datetime.now(ZoneInfo(user.timezone)).time()
            quiet = config.quiet_hours.covers(local, request.message.kind)
        return targets, quiet

    async def _deliver(self, request: NotifyRequest, target: Target) -> Delivery:
        channel_name, address = target.channel, target.target
        key = f"{request.idempotency_key}:{channel_name}:{address}"
        async with self._db.session() as session:
            repo = DeliveryRepository(session)
            row = await repo.get(key)
            if row is not None and row.status == DeliveryStatus.SENT:
                return Delivery(
                    channel=channel_name,
                    target=address,
                    status=DeliveryStatus.DUPLICATE,
                    provider_id=row.provider_id,
                )
            if row is not None and (row.error or "").startswith("permanent:"):
                # A retry of the activity must not retry what can never succeed.
                return Delivery(
                    channel=channel_name,
                    target=address,
                    status=DeliveryStatus.FAILED,
                    error=row.error,
                )
            row = await repo.start(key, user=request.user, channel=channel_name, target=address)
            await session.commit()
            try:
                if not address and channel_name != "inbox":
                    raise PermanentNotifyError(
                        f"no {channel_name} target for {request.user}: give one in the task or "
                        "in the push config (set_push_config)"
                    )
                channel = self._channels.get(channel_name)
                provider_id = await channel.send(
                    request.user, request.message, address, idempotency_key=key
                )
            except PermanentNotifyError as exc:
                row.status, row.error = DeliveryStatus.FAILED.value, f"permanent: {exc}"
            except Exception as exc:  # transient by default: network, 5xx, timeouts
                log.warning(
                    "delivery on %s failed (attempt %d): %s", channel_name, row.attempts, exc
                )
                row.status, row.error = DeliveryStatus.FAILED.value, f"transient: {exc}"
            else:
                row.status, row.error, row.provider_id = (
                    DeliveryStatus.SENT.value,
                    None,
                    provider_id,
                )
            await session.commit()
            return Delivery(
                channel=channel_name,
                target=address,
                status=DeliveryStatus(row.status),
                provider_id=row.provider_id,
                error=row.error,
            )
