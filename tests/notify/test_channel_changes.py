"""A user's channel changed while a delivery to it waits: edited (another address) while the
message is deferred, or removed while it is retried."""

from __future__ import annotations

from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.deliveries import UNWANTED
from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps
from ambient.domain.deliver_later import later_workflow_id
from ambient.domain.notify import DeliveryStatus, Message, NotificationKind, NotifyRequest
from ambient.storage.repositories import DeliveryRepository
from tests.conftest import unique
from tests.notify.standins import Mailbox
from tests.notify.test_deliver_later import ADDRESS, _events, alice
from tests.notify.test_delivery import _set_push

__all__ = ["alice"]  # the fixture, used by name

OTHER = "alice.ops@example.com"


async def _deferred(
    ts_env: WorkflowEnvironment, alice: WorkerDeps
) -> tuple[NotifyActivities, NotifyRequest]:
    """Alice's push config mails ADDRESS; a change's mail greylisted at once is handed over (the
    run started, no worker for it: its tries are run here)."""
    await _set_push(alice.db, "alice", {"channels": [{"type": "email", "target": ADDRESS}]})
    notify = NotifyActivities(alice.db, alice.channels)
    key = unique("web-monitor/alice/news/change")
    request = NotifyRequest(
        user="alice",
        message=Message(title="Changed: news", body="Storm warning.", kind=NotificationKind.WATCH),
        targets=[],
        idempotency_key=key,
        attempts=1,
    )
    first = await ActivityEnvironment(client=ts_env.client).run(notify.notify, request)
    assert [(d.channel, d.status) for d in first.deliveries] == [("email", DeliveryStatus.DEFERRED)]
    await ts_env.client.get_workflow_handle(later_workflow_id("alice", key)).terminate()
    return notify, request


async def _rows(alice: WorkerDeps, key: str) -> list[tuple[str, str, str | None]]:
    async with alice.db.session() as session:
        rows = await DeliveryRepository(session).under("alice", key)
    return sorted((row.target, row.status, row.error) for row in rows)


async def test_a_channel_edited_while_its_message_is_deferred_goes_to_the_new_address(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    """The address edited while the old one's server greylists the message: the later try
    mails the channel as it is now, and the old address's delivery ends saying why. It ended
    with the old server's "try again later" as its last word (`retrying: false`), as if the
    greylisting had stopped it."""
    mailbox.greylist = {ADDRESS}
    notify, request = await _deferred(ts_env, alice)
    await _set_push(alice.db, "alice", {"channels": [{"type": "email", "target": OTHER}]})
    later = await ActivityEnvironment(client=ts_env.client).run(notify.notify_later, request)
    assert [(d.target, d.status) for d in later.deliveries] == [(OTHER, DeliveryStatus.SENT)]
    assert [mail["To"] for mail in mailbox.messages] == [OTHER]
    assert await _rows(alice, request.idempotency_key) == [
        (OTHER, "sent", None),
        (ADDRESS, "failed", UNWANTED),
    ]
    retrying, ended = await _said(alice)
    assert retrying["target"] == ADDRESS and "greylisted" in retrying["error"]
    assert ended["target"] == ADDRESS and ended["error"] == UNWANTED.removeprefix("permanent: ")


async def test_a_channel_removed_while_its_message_is_retried_ends_saying_so(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    mailbox.greylist = {ADDRESS}
    notify, request = await _deferred(ts_env, alice)
    await _set_push(alice.db, "alice", {"channels": []})
    later = await ActivityEnvironment(client=ts_env.client).run(notify.notify_later, request)
    assert later.deliveries == [] and mailbox.messages == []
    assert await _rows(alice, request.idempotency_key) == [(ADDRESS, "failed", UNWANTED)]
    _, ended = await _said(alice)
    assert ended["error"] == UNWANTED.removeprefix("permanent: ") and not ended["retrying"]
    # Asked again (a retry whose result was lost): nothing more is said, nothing sent.
    await ActivityEnvironment(client=ts_env.client).run(notify.notify_later, request)
    assert len(await _events(alice, "delivery.failed")) == 2 and mailbox.messages == []


async def _said(alice: WorkerDeps) -> list[dict[str, object]]:
    """The delivery.failed events' payloads: the "retrying" one, then the last word."""
    events = await _events(alice, "delivery.failed")
    return sorted((e.payload for e in events), key=lambda p: not p["retrying"])
