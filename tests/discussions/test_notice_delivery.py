"""A discussion notice told person by person: one whose delivery fails is not the others'."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from activities.notify import delivery_key
from ambient.deps import WorkerDeps
from ambient.discussions.rules import DiscussionNotice
from ambient.storage.repositories import EventRepository, InboxRepository
from tests.conftest import running_worker, unique
from tests.discussions.test_tools import _users
from tests.support.deliveries import left_in_flight
from tests.support.record import save_history
from workflows.discussions import DiscussionNotifyWorkflow


async def test_a_notice_that_fails_for_one_person_is_still_told_to_the_next(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    ann, bob, cid = unique("notice-ann"), unique("notice-bob"), unique("notice-cid")
    await _users(deps, ann, bob, cid)
    message_id = unique("msg")
    # An earlier try's worker died sending bob's copy: the activity fails for good.
    await left_in_flight(deps.db, delivery_key(f"discussion/{message_id}/{bob}", "inbox", ""), bob)
    notice = DiscussionNotice(
        message_id=message_id,
        discussion_id=unique("disc"),
        topic="Disk pressure",
        from_id=ann,
        content="node-3 at 91%",
        recipients=[bob, cid],
    )
    async with running_worker(ts_env.client, deps) as worker:
        handle = await ts_env.client.start_workflow(
            DiscussionNotifyWorkflow.run,
            notice,
            id=f"discussion-notify/{message_id}",
            task_queue=worker.task_queue,
        )
        told = await handle.result()
    await save_history(handle, "discussion_notice_one_failed")
    assert told == [bob, cid]
    async with deps.db.session() as session:
        cid_inbox = await InboxRepository(session).list(cid)
        bob_failed = await EventRepository(session).list(user=bob, kind="delivery.failed")
    assert [m.body for m in cid_inbox] == [f"**{ann}** in *Disk pressure*:\n\nnode-3 at 91%"]
    # bob's failure is his to see, said once as final.
    assert [(e.payload["channel"], e.payload["retrying"]) for e in bob_failed] == [("inbox", False)]
