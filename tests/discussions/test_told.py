"""Who is told of a new message: the other people of the discussion, members who have not
posted included (the owner of the remediation it is about)."""

from __future__ import annotations

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
