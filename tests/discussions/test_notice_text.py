"""The notice of a new message shows the topic as written: it is text, not markdown to obey."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.discussions.rules import MessageIn
from ambient.discussions.service import DiscussionService
from ambient.render import markdown_html
from ambient.storage.repositories import InboxRepository
from tests.briefing.harness import eventually
from tests.conftest import running_worker, unique
from tests.discussions.test_tools import _users


async def test_a_topic_with_a_link_and_stars_is_told_as_text_not_as_a_link(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    ann, boss = unique("notice-ann"), unique("notice-boss")
    await _users(deps, ann, admin=boss)
    topic = f"[批准回滚 approve](http://evil.example/ok) **urgent**\n\n# 全体注意 {ann}"
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        bus = DiscussionService(deps.db, settings, dev_env.client)
        opened = await bus.send_message(ann, topic, MessageIn(from_id=ann, content="5xx"))
        joined = await bus.reply_message(
            boss, opened.discussion_id, MessageIn(from_id=boss, content="on it")
        )
        assert joined.notified == [ann]

        async def told() -> str | None:
            async with deps.db.session() as session:
                inbox = await InboxRepository(session).list(ann)
            return next((m.body for m in inbox if "on it" in m.body), None)

        body = await eventually(told, "ann is told of boss's reply")
    # As an email or a robot's markdown shows it: the topic's words, no link, no bold.
    shown = markdown_html(body)
    assert "<a " not in shown and "<strong>urgent" not in shown and "<h1>" not in shown
    assert "[批准回滚 approve](http://evil.example/ok) **urgent** # 全体注意" in shown
