"""Fan a notification out to its targets, one recorded delivery per target."""

from __future__ import annotations

import logging

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ambient.clients.notify import ChannelRegistry, PermanentNotifyError
from ambient.domain.notify import Delivery, DeliveryStatus, NotifyRequest, NotifyResult
from ambient.storage import Database
from ambient.storage.repositories import DeliveryRepository

log = logging.getLogger(__name__)


class NotifyActivities:
    def __init__(self, db: Database, channels: ChannelRegistry) -> None:
        self._db = db
        self._channels = channels

    @activity.defn
    async def notify(self, request: NotifyRequest) -> NotifyResult:
        """Deliver to every target; a sent delivery is never repeated on retry.

        Permanent failures are recorded and reported; transient ones are retried by
        Temporal once every other target has had its chance.
        """
        deliveries: list[Delivery] = []
        transient: list[str] = []
        for target in request.targets:
            delivery = await self._deliver(request, target.channel, target.target)
            deliveries.append(delivery)
            if (
                delivery.status is DeliveryStatus.FAILED
                and delivery.error
                and (delivery.error.startswith("transient:"))
            ):
                transient.append(f"{target.channel}: {delivery.error}")
        if transient:
            raise ApplicationError(
                "transient delivery failures: " + "; ".join(transient), type="TransientNotifyError"
            )
        return NotifyResult(deliveries=deliveries)

    async def _deliver(self, request: NotifyRequest, channel_name: str, target: str) -> Delivery:
        key = f"{request.idempotency_key}:{channel_name}:{target}"
        async with self._db.session() as session:
            repo = DeliveryRepository(session)
            row = await repo.get(key)
            if row is not None and row.status == DeliveryStatus.SENT:
                return Delivery(
                    channel=channel_name,
                    target=target,
                    status=DeliveryStatus.DUPLICATE,
                    provider_id=row.provider_id,
                )
            row = await repo.start(key, user=request.user, channel=channel_name, target=target)
            await session.commit()
            try:
                channel = self._channels.get(channel_name)
                provider_id = await channel.send(
                    request.user, request.message, target, idempotency_key=key
                )
            except PermanentNotifyError as exc:
                row.status, row.error = DeliveryStatus.FAILED.value, f"permanent: {exc}"
            except Exception as exc:  # transient by default: network, 5xx, timeouts
                log.warning("delivery %s on %s failed: %s", key, channel_name, exc)
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
                target=target,
                status=DeliveryStatus(row.status),
                provider_id=row.provider_id,
                error=row.error,
            )
