"""Who is told of a new message: the other people of the discussion, members who have not
posted included (the owner of the remediation it is about)."""

from __future__ import annotations

from sqlalchemy import event
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.discussions.rules import AgentPost, MessageIn
from ambient.discussions.service import DiscussionService
from tests.conftest import unique
from tests.discussions.test_scoping import _remediation_owned_by
from tests.discussions.test_tools import _users


async def test_a_reply_in_a_remediations_discussion_is_told_to_the_remediations_owner(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    ann, boss = unique("told-ann"), unique("told-boss")
    await _users(deps, ann, admin=boss)
    service = unique("checkout")
    rid = await _remediation_owned_by(deps, ann, service)
    settings = deps.settings.model_copy(update={"temporal_task_queue": unique("told-queue")})
    bus = DiscussionService(deps.db, settings, dev_env.client)
    # The run posts its plan in the discussion about it (as the workflow does, by run key).
    plan = await bus.post_as_agent(
        AgentPost(
            agent_id="remediation",
            topic=f"Remediation of {service}",
            content="plan: restart checkout",
            subject=f"{rid}@run",
            tags=["plan"],
            message_id=unique("rem"),
        )
    )
    # ann sees the discussion (her remediation's); an admin answers in it.
    assert [d.id for d in (await bus.list_discussions(ann)).discussions] == [plan.discussion_id]
    reply = await bus.reply_message(
        boss,
        plan.discussion_id,
        MessageIn(from_id=boss, content="hold it: a deploy is running"),
    )
    assert reply.notified == [ann] and reply.notify_error is None


async def test_a_workflows_post_with_no_one_to_tell_them_reads_no_recipients(
    deps: WorkerDeps,
) -> None:
    # The worker's posts (three a remediation run) have no Temporal client: nobody is told
    # there (the run pushes its own notices), so reading the discussion's people and the run's
    # owner in the write turn was work for nothing, in an alert storm six reads a run.
    ann = unique("told-ann")
    await _users(deps, ann)
    service = unique("checkout")
    rid = await _remediation_owned_by(deps, ann, service)
    read: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if "discussion_participants" in statement or "remediation_records" in statement:
            read.append(statement)

    post = AgentPost(
        agent_id="remediation",
        topic=f"Remediation of {service}",
        content="plan: restart checkout",
        subject=f"{rid}@run",
        message_id=unique("rem"),
    )
    bus = DiscussionService(deps.db, deps.settings)
    event.listen(deps.db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        posted = await bus.post_as_agent(post)
        retried = await bus.post_as_agent(post)
    finally:
        event.remove(deps.db.engine.sync_engine, "before_cursor_execute", seen)
    assert read == []
    assert (posted.notified, posted.notify_error, posted.already_posted) == ([], None, False)
    assert (retried.message_id, retried.already_posted) == (posted.message_id, True)
    # Still the owner's discussion to read (membership is the run's row, not a recipient list).
    assert [d.id for d in (await bus.list_discussions(ann)).discussions] == [posted.discussion_id]
