"""The plain channels undo only the escapes of text shown as written: a backslash inside code
(a changed page's excerpt) is the page's own, and stays."""

from __future__ import annotations

from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps
from ambient.domain.notify import NotifyRequest, Target
from ambient.watches.polling import page_message
from tests.conftest import unique
from tests.support.channels import pushed_everywhere

EXCERPT = r"copy C:\_data\[1\] to \*backup\*"


async def test_a_changed_pages_excerpt_keeps_its_backslashes_on_every_channel(
    deps: WorkerDeps,
) -> None:
    message = page_message(
        "watch.change", {"url": "https://a.example/", "excerpt": EXCERPT}, keywords=False
    )
    assert message is not None
    async with pushed_everywhere(deps, unique("plain")) as pushed:
        notify = NotifyActivities(deps.db, deps.channels)
        await ActivityEnvironment().run(
            notify.notify,
            NotifyRequest(
                user=pushed.user,
                message=message,
                targets=[Target(type="inbox")],
                idempotency_key=unique("change"),
            ),
        )
        shown = await pushed.shown()
    for channel, [text] in shown.items():
        assert EXCERPT in text.splitlines(), channel
