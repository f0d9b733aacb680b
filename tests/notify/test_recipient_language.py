"""A watch's message is said in its recipient's language on every channel: their choice, else
the server's default (AMBIENT_DEFAULT_LANGUAGE); the workflow that built it knows neither."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps
from ambient.domain.notify import DEADLINE, Message, NotifyRequest, Target, Wording
from ambient.domain.users import Language, UserSettings
from ambient.render import markdown_html, markdown_plain
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from ambient.watches.polling import page_message
from tests.conftest import unique
from tests.support.channels import pushed_everywhere

URL = "https://shop.example/gpu"
EXCERPT = "+ RTX 5090 ¥16499"
ZH_TITLE = f"页面有变化：{URL}"
EN_TITLE = f"Changed: {URL}"


async def titles_received(deps: WorkerDeps, chosen: Language | None) -> dict[str, list[str]]:
    """The titles each channel of a user who chose ``chosen`` was given for a page's change."""
    message = page_message("watch.change", {"url": URL, "excerpt": EXCERPT}, keywords=False)
    assert isinstance(message, Message)
    async with pushed_everywhere(deps, unique("lang")) as pushed:
        async with deps.db.session() as session:
            users = UserRepository(session)
            user = await users.get(pushed.user)
            assert user is not None
            await users.update(user, UserSettings(language=chosen))
            await session.commit()
        notify = NotifyActivities(deps.db, deps.channels)
        result = await ActivityEnvironment().run(
            notify.notify,
            NotifyRequest(
                user=pushed.user,
                message=message,
                targets=[Target(type="inbox")],
                idempotency_key=unique("change"),
            ),
        )
        assert {d.status for d in result.deliveries} == {"sent"}, result.deliveries
        async with deps.db.session() as session:
            inbox = await InboxRepository(session).list(pushed.user)
        received = pushed.bots.received
        mails = pushed.mailbox.messages
        titles = {
            "wecom": [
                body["markdown"]["content"].splitlines()[0] for n, body in received if n == "wecom"
            ],
            "webhook": [body["title"] for n, body in received if n == "webhook"],
            # The subject as the mail reader decodes it (RFC 2047 in the raw mail).
            "email": [str(mail["Subject"]) for mail in mails],
            "inbox": [m.title for m in inbox],
        }
        # The mail is valid UTF-8, its headers ASCII on the wire (a Chinese subject encoded as
        # RFC 2047 says); the excerpt (the page's words) is in every body.
        for raw in pushed.mailbox.raw:
            assert raw.split(b"\r\n\r\n", 1)[0].isascii() and raw.decode("utf-8")
        assert all(EXCERPT in text for texts in (await pushed.shown()).values() for text in texts)
        return titles


def said(title: str) -> dict[str, list[str]]:
    # The robot's markdown starts with the title as its heading.
    return {"wecom": [f"### {title}"], "webhook": [title], "email": [title], "inbox": [title]}


@pytest.mark.parametrize(
    ("chosen", "default", "title"),
    [
        (Language.ZH, Language.EN, ZH_TITLE),
        (Language.EN, Language.ZH, EN_TITLE),
        (None, Language.ZH, ZH_TITLE),
        (None, Language.EN, EN_TITLE),
    ],
    ids=["chose-zh", "chose-en", "no-choice-default-zh", "no-choice-default-en"],
)
async def test_a_pages_change_reaches_every_channel_in_the_recipients_language(
    deps: WorkerDeps, chosen: Language | None, default: Language, title: str
) -> None:
    deps.settings = deps.settings.model_copy(update={"default_language": default})
    assert await titles_received(deps, chosen) == said(title)


def test_every_web_monitor_message_has_its_chinese_and_keeps_its_english() -> None:
    url = "https://a.example/"
    cases = {
        "watch.failing": ({"failures": 3, "error": "HTTP 503"}, "访问失败", "Failing"),
        "watch.recovered": ({}, "已恢复", "Recovered"),
        "watch.hit": ({"hits": {"gpu": ["RTX in stock"]}}, "关键词命中", "Keyword hit on"),
        "watch.change": ({"excerpt": "+ new"}, "页面有变化", "Changed"),
    }
    for kind, (payload, zh, en) in cases.items():
        message = page_message(kind, {"url": url, **payload}, keywords=kind == "watch.hit")
        assert message is not None
        assert message.said_in("en") == message
        chinese = message.said_in("zh")
        assert chinese.title == f"{zh}：{url}", kind
        assert message.title.startswith(en), kind
        assert chinese.zh is None and chinese.link == url
    failing = page_message(
        "watch.failing", {"url": url, "failures": 3, "error": "HTTP 503"}, keywords=False
    )
    assert failing is not None
    assert failing.said_in("zh").body == "连续 3 次检查失败。最近一次错误：HTTP 503"


def test_a_message_without_chinese_is_sent_as_written_to_a_chinese_reader() -> None:
    message = Message(title="Daily briefing 2026-12-01", body="All quiet.")
    assert message.said_in("zh") == message


def test_a_deadline_is_said_in_the_readers_zone_and_an_older_message_as_written() -> None:
    """The time to act by in the reader's zone with its offset; a zone no longer known here is
    said as UTC (not a failed send); a message recorded without a deadline is sent as written."""
    when = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    asked = Message(
        title="t",
        body=f"before {DEADLINE}.",
        zh=Wording(title="t", body=f"请在 {DEADLINE}前。"),
        deadline=when,
    )
    assert (
        asked.said_in("zh", "Asia/Shanghai").body
        == "请在 2026-12-01 16:30（Asia/Shanghai，UTC+08:00）前。"
    )
    assert (
        asked.said_in("en", "America/New_York").body
        == "before 2026-12-01 03:30 (America/New_York, UTC-05:00)."
    )
    assert asked.said_in("en", "Mars/Olympus").body == "before 2026-12-01 08:30 UTC."
    older = Message(title="t", body="before 2026-12-01 08:30 UTC.")
    assert older.said_in("en", "Asia/Shanghai") == older


def test_a_pages_diff_notices_are_said_in_chinese_and_its_own_lines_as_written() -> None:
    """A Chinese reader's alert said "… 3 more lines", "… 48 more changed lines" and "(the
    same lines as before, in another order)" in English among the page's lines."""
    hits = {"GPU": ["RTX 5090 ¥16499", "… 3 more lines"]}
    hit = page_message("watch.hit", {"url": URL, "hits": hits}, keywords=True)
    assert hit is not None and hit.zh is not None
    assert hit.zh.body == "- **GPU**: RTX 5090 ¥16499\n- **GPU**: ……另有 3 行"
    assert hit.body == "- **GPU**: RTX 5090 ¥16499\n- **GPU**: … 3 more lines"
    excerpt = "+ RTX 5090 ¥16499\n… 48 more changed lines"
    change = page_message("watch.change", {"url": URL, "excerpt": excerpt}, keywords=False)
    assert change is not None and change.zh is not None
    assert change.zh.body == "- + RTX 5090 ¥16499\n- ……另有 48 行有变化"
    assert change.body == "- + RTX 5090 ¥16499\n- … 48 more changed lines"
    moved = "(the same lines as before, in another order)"
    only_moved = page_message("watch.change", {"url": URL, "excerpt": moved}, keywords=False)
    assert only_moved is not None and only_moved.zh is not None
    assert only_moved.zh.body == "- （与之前相同的行，只是顺序变了）"


def test_a_pages_changed_lines_are_shown_as_written_not_as_markup() -> None:
    """A page's new lines went out in a fence, which WeCom's and DingTalk's markdown do not
    have: a link, an image and a <font> colour written on a watched page rendered live in the
    alert (a clickable phishing link, a tracking pixel). Each line is escaped, and a plain
    channel (email's text, a webhook, the inbox) shows it as written."""
    lines = [
        "+## 【紧急】账号已冻结",
        "+[点此解冻](https://phish.example/login) **立即处理**",
        "+![](https://tracker.example/pixel.png)",
        '+<font color="warning">伪造告警</font>',
        "-旧的一行",
    ]
    excerpt = "\n".join(lines)
    change = page_message("watch.change", {"url": URL, "excerpt": excerpt}, keywords=False)
    assert change is not None
    rendered = markdown_html(change.body)
    assert "<a " not in rendered and "<img" not in rendered and "<font" not in rendered
    assert "<strong>" not in rendered and "<h2" not in rendered
    assert markdown_plain(change.body) == "\n".join(f"- {line}" for line in lines)
