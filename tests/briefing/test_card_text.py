"""The briefing's push shows log lines as written: escaped once in the robot's markdown card,
as they are in the plain channels (email's text, a webhook, the inbox)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.testing import ActivityEnvironment

from activities.briefing import BriefingActivities
from activities.notify import NotifyActivities
from ambient.briefing.models import BriefingContent, PushRequest
from ambient.deps import WorkerDeps
from ambient.domain.notify import NotifyRequest, Target
from ambient.render import markdown_literal
from ambient.storage.briefings import BriefingRepository
from tests.conftest import unique
from tests.support.channels import pushed_everywhere

# A log template and an alarm's text: neither is ours, and both look like markdown.
LINE = "payment_svc timeout after <*> ms *retrying* see [runbook](https://evil.example)"
ALARM = "disk_usage > 90% on `node-3`"


async def test_a_log_line_in_the_briefing_push_is_escaped_once_for_the_robot_and_plain_elsewhere(
    deps: WorkerDeps,
) -> None:
    date = "2026-11-24"
    async with pushed_everywhere(deps, unique("card")) as pushed:
        content = BriefingContent(
            headline="One problem needs a person.",
            spoken_text="One problem needs a person.",
            date=date,
            language="en",
            generated_by="offline",
            needs_attention=[ALARM],
            needs_a_person=[LINE],
            spoken_segments=["One problem needs a person."],
        )
        async with deps.db.session() as session:
            await BriefingRepository(session).save(
                pushed.user,
                date,
                content=content.model_dump(mode="json"),
                report_markdown="# Daily briefing",
                generated_by="offline",
                prepared_at=datetime.now(UTC),
            )
            await session.commit()
        activities = BriefingActivities(deps.db, None, None, deps.settings)  # type: ignore[arg-type]
        message = await activities.compose_briefing_push(
            PushRequest(user=pushed.user, date=date, key=f"push/{pushed.user}/{date}")
        )
        notify = NotifyActivities(deps.db, deps.channels)
        await ActivityEnvironment().run(
            notify.notify,
            NotifyRequest(
                user=pushed.user,
                message=message,
                targets=[Target(type="inbox")],
                idempotency_key=f"push/{pushed.user}/{date}",
            ),
        )
        shown = await pushed.shown()
    [card] = shown.pop("wecom")
    # What the group reads once WeCom renders it: each character as the log wrote it.
    escaped = [f"- {markdown_literal(LINE)}", f"- {markdown_literal(ALARM)}"]
    assert set(escaped) <= set(card.splitlines())
    for channel, [text] in shown.items():
        assert {f"- {LINE}", f"- {ALARM}"} <= set(text.splitlines()), channel
        assert "\\" not in text, channel
