"""The notice of a new message shows the topic as written: it is text, not markdown to obey,
escaped in a robot's markdown and as it is in the plain channels."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.discussions.rules import MessageIn
from ambient.discussions.service import DiscussionService
from ambient.render import markdown_html
from tests.conftest import running_worker, unique
from tests.discussions.test_tools import _users
from tests.support.channels import pushed_everywhere
from tests.support.waits import eventually


async def test_a_topic_with_a_link_and_stars_is_told_as_text_not_as_a_link(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    ann, boss = unique("notice-ann"), unique("notice-boss")
    topic = f"[批准回滚 approve](http://evil.example/ok) **urgent**\n\n# 全体注意 {ann}"
    async with (
        pushed_everywhere(deps, ann) as pushed,
        running_worker(dev_env.client, deps) as worker,
    ):
        await _users(deps, admin=boss)
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        bus = DiscussionService(deps.db, settings, dev_env.client)
        opened = await bus.send_message(ann, topic, MessageIn(from_id=ann, content="5xx"))
        joined = await bus.reply_message(
            boss, opened.discussion_id, MessageIn(from_id=boss, content="on it")
        )
        assert joined.notified == [ann]

        async def told() -> dict[str, list[str]] | None:
            shown = await pushed.shown()
            return (
                shown if all(any("on it" in t for t in texts) for texts in shown.values()) else None
            )

        shown = await eventually(told, "ann is told of boss's reply on every channel")
    written = f"[批准回滚 approve](http://evil.example/ok) **urgent** # 全体注意 {ann}"
    # As the robot's markdown shows it: the topic's words, no link, no bold.
    [card] = [markdown_html(text) for text in shown.pop("wecom") if "on it" in text]
    assert "<a " not in card and "<strong>urgent" not in card and "<h1>" not in card
    assert written in card
    # As the plain channels show it (email's text, a webhook, the inbox): as written.
    for channel, texts in shown.items():
        [text] = [t for t in texts if "on it" in t]
        assert written in text and "\\" not in text, channel
