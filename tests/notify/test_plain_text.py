"""The plain channels undo only the escapes of text shown as written: a backslash a changed
page's excerpt holds is the page's own, and stays."""

from __future__ import annotations

from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps
from ambient.domain.notify import Message, NotifyRequest, Target
from ambient.render import markdown_lines, markdown_literal
from ambient.watches.polling import page_message
from tests.conftest import unique
from tests.support.channels import pushed_everywhere

EXCERPT = r"copy C:\_data\[1\] to \*backup\*"


async def shown_everywhere(deps: WorkerDeps, message: Message | None) -> dict[str, list[str]]:
    """What each channel of a user pushed to everywhere shows of ``message``."""
    assert message is not None
    async with pushed_everywhere(deps, unique("plain")) as pushed:
        notify = NotifyActivities(deps.db, deps.channels)
        await ActivityEnvironment().run(
            notify.notify,
            NotifyRequest(
                user=pushed.user,
                message=message,
                targets=[Target(type="inbox")],
                idempotency_key=unique("message"),
            ),
        )
        return await pushed.shown()


async def test_a_changed_pages_excerpt_keeps_its_backslashes_on_every_channel(
    deps: WorkerDeps,
) -> None:
    message = page_message(
        "watch.change", {"url": "https://a.example/", "excerpt": EXCERPT}, keywords=False
    )
    shown = await shown_everywhere(deps, message)
    # The robot renders markdown: the page's line escaped, shown as the page wrote it.
    [card] = shown.pop("wecom")
    assert markdown_lines([EXCERPT]) in card.splitlines()
    for channel, [text] in shown.items():
        assert f"- {EXCERPT}" in text.splitlines(), channel


HIT_LINE = "Price *dropped* to [¥99](https://shop.example) for `gpu_x`"


async def test_a_keyword_hits_line_is_markdown_once_and_plain_as_the_page_wrote_it(
    deps: WorkerDeps,
) -> None:
    message = page_message(
        "watch.hit",
        {"url": "https://a.example/", "hits": {"gpu_x": [HIT_LINE]}},
        keywords=True,
    )
    shown = await shown_everywhere(deps, message)
    # The robot renders markdown: the page's words must not turn into emphasis or a link.
    [card] = shown.pop("wecom")
    assert f"- **{markdown_literal('gpu_x')}**: {markdown_literal(HIT_LINE)}" in card.splitlines()
    for channel, [text] in shown.items():
        assert f"- **gpu_x**: {HIT_LINE}" in text.splitlines(), channel
