"""A discussion notice told person by person: one whose delivery fails is not the others'."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from activities.deliveries import delivery_key
from ambient.deps import WorkerDeps
from ambient.discussions.rules import DiscussionNotice
from ambient.domain.users import Language, UserSettings
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.storage.users import UserRepository
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


async def test_a_notice_names_the_discussion_as_stored_on_one_line(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Someone who joins by typing the topic their own way (case, spaces, a line break): the
    notice's title named the discussion in their spelling, line break and all."""
    from ambient.discussions.rules import MessageIn
    from ambient.discussions.service import DiscussionService

    ann, ben = unique("notice-ann"), unique("notice-ben")
    await _users(deps, ann, admin=ben)  # an admin sees (and joins) every discussion
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        bus = DiscussionService(deps.db, settings, dev_env.client)
        await bus.send_message(ann, "Disk pressure", MessageIn(from_id=ann, content="node-3 full"))
        joined = await bus.send_message(
            ben, "  disk\n  PRESSURE ", MessageIn(from_id=ben, content="on it")
        )
        assert joined.notify_error is None and not joined.created_discussion, joined
        handle = dev_env.client.get_workflow_handle(f"discussion-notify/{joined.message_id}")
        assert await handle.result() == [ann]
    async with deps.db.session() as session:
        titles = [m.title for m in await InboxRepository(session).list(ann)]
    assert titles == [f"{ben} in Disk pressure"]


async def test_a_notice_is_said_in_each_recipients_language(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A Chinese reader was told "ann in Disk pressure" in English."""
    ann, bob, cid = unique("notice-ann"), unique("notice-bob"), unique("notice-cid")
    await _users(deps, ann, bob, cid)
    async with deps.db.session() as session:
        users = UserRepository(session)
        for name, language in ((bob, Language.ZH), (cid, Language.EN)):
            user = await users.get(name)
            assert user is not None
            await users.update(user, UserSettings(language=language))
        await session.commit()
    notice = DiscussionNotice(
        message_id=unique("msg"),
        discussion_id=unique("disc"),
        topic="磁盘压力",
        from_id=ann,
        content="node-3 到 91% 了",
        recipients=[bob, cid],
    )
    async with running_worker(ts_env.client, deps) as worker:
        await ts_env.client.execute_workflow(
            DiscussionNotifyWorkflow.run,
            notice,
            id=f"discussion-notify/{notice.message_id}",
            task_queue=worker.task_queue,
        )
    async with deps.db.session() as session:
        inbox = InboxRepository(session)
        said = {name: [(m.title, m.body) for m in await inbox.list(name)] for name in (bob, cid)}
    assert said == {
        bob: [
            (f"{ann} 在「磁盘压力」中留言", f"**{ann}** 在「磁盘压力」中留言：\n\nnode-3 到 91% 了")
        ],
        cid: [(f"{ann} in 磁盘压力", f"**{ann}** in *磁盘压力*:\n\nnode-3 到 91% 了")],
    }
