"""The morning briefing links the discussions the team held the day before."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.deps import WorkerDeps
from ambient.discussions.rules import MessageIn
from ambient.discussions.service import DiscussionService
from ambient.render import markdown_html, markdown_literal
from ambient.storage.models import DiscussionMessage
from tests.briefing.harness import briefing_stack, make_user


async def test_yesterdays_discussions_are_linked_in_the_briefing_report(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    await make_user(deps.db, "ines")
    await make_user(deps.db, "otto")
    empty = tmp_path / "empty.log"
    empty.write_text("")
    bus = DiscussionService(deps.db, deps.settings)
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        night = await bus.send_message(
            "ines", "Payment timeouts at 02:00", MessageIn(from_id="ines", content="p99 3 s")
        )
        older = await bus.send_message(
            "ines", "Last week's cleanup", MessageIn(from_id="ines", content="done")
        )
        # Someone else's discussion the same night: not ines's to see, nor to be linked.
        others = await bus.send_message(
            "otto", "Otto's salary review", MessageIn(from_id="otto", content="private")
        )
        async with deps.db.session() as session:
            for posted, at in (
                (night, day.logs_from + timedelta(hours=2)),
                (older, day.logs_from - timedelta(days=3)),
                (others, day.logs_from + timedelta(hours=3)),
            ):
                await session.execute(
                    update(DiscussionMessage)
                    .where(DiscussionMessage.id == posted.message_id)
                    .values(created_at=at)
                )
            await session.commit()
        await stack.service.create(
            "ines",
            config.model_dump(mode="json") | {"log_source": {"type": "file", "path": str(empty)}},
        )
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        await stack.service.greet("ines", request_id="one")
        view = await stack.service.get_briefing("ines", day.date)
    assert "## Discussions" in view.report_markdown
    link = f"/app/discussion?id={night.discussion_id}"
    line = f"Payment timeouts at 02:00 — 1 message(s), open ({link})"
    # The report is markdown with its texts taken literally (ids have underscores).
    assert markdown_literal(line) in view.report_markdown
    assert line in markdown_html(view.report_markdown)
    assert "Last week's cleanup" not in view.report_markdown
    assert "salary" not in view.report_markdown and others.discussion_id not in view.report_markdown
    assert any(s.source == "discussions" and s.ok for s in view.content.sources)
