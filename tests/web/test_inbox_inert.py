"""An inbox message quotes a watched page as it was written: its markdown links and images
are shown as their text on the dashboard, never fetched or clickable as the product's own."""

from __future__ import annotations

import re

from ambient.domain.notify import Message, NotificationKind
from ambient.domain.users import UserCreate
from ambient.render import markdown_html, markdown_lines
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from tests.support.pages import signed_in
from tests.support.servers import free_port

PAGE_LINE = (
    "[log in again](https://phish.example/login) ![t](https://tracker.example/t.png) **new**"
)


def test_an_inert_text_keeps_its_words_and_loses_every_link_and_image() -> None:
    html = markdown_html(f"{PAGE_LINE} <https://auto.example/>", breaks=True, inert=True)
    assert "href" not in html and "<img" not in html and "src=" not in html, html
    assert "log in again" in html and ">t<" in html and "<strong>new</strong>" in html
    # The product's own pages and emails still link.
    assert 'href="https://phish.example/login"' in markdown_html(PAGE_LINE)


async def test_the_dashboard_inbox_fetches_no_image_and_links_nothing_a_page_wrote(
    settings: Settings, db: Database
) -> None:
    """A keyword-less watch whose page gained a markdown link and image: the inbox card had
    `<a href>` and `<img src>` (the body is stored as the page wrote it), and opening /app
    fetched the page author's image (a review)."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    body = f"**Changed** on the page:\n\n{markdown_lines([PAGE_LINE])}"
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="ivy"))
        message = Message(title="Changed: shop", body=body, kind=NotificationKind.WATCH)
        await InboxRepository(session).add("ivy", message)
        # A briefing's: its full report is the message's own link, which stays one.
        report = "https://ops.example/share/b1"
        briefing = Message(
            title="Daily briefing",
            body=f"**Yesterday was quiet**\n\n[Full report]({report})",
            kind=NotificationKind.BRIEFING,
            link=report,
        )
        await InboxRepository(session).add("ivy", briefing)
        await session.commit()
    async with signed_in(settings, token) as http:
        page = (await http.get("/app")).text
    inbox = page[page.index('id="inbox"') :]
    cards = inbox.split("</li>")
    [card] = [c for c in cards if "log in again" in c]
    assert "<strong>Changed</strong>" in card, card
    assert not re.search(r"<img|href=|src=", card), card
    [briefing_card] = [c for c in cards if "Daily briefing" in c]
    assert f'<a href="{report}" rel="noopener noreferrer">{report}</a>' in briefing_card
