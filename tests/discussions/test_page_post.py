"""The discussion page's forms: a reply sent twice (a resubmit, a retry) is posted once."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from ambient.deps import WorkerDeps
from ambient.discussions.rules import MessageIn
from ambient.discussions.service import DiscussionService
from ambient.storage.models import DiscussionMessage
from api.app import create_app
from tests.conftest import unique
from tests.discussions.test_tools import _users
from tests.support.servers import http_client, serve

HIDDEN_ID = re.compile(r'<input type="hidden" name="message_id" value="([^"]+)">')


async def _count(deps: WorkerDeps, discussion_id: str) -> int:
    async with deps.db.session() as session:
        count = await session.scalar(
            select(func.count()).where(DiscussionMessage.discussion_id == discussion_id)
        )
    return int(count or 0)


async def test_a_reply_or_a_new_topic_submitted_twice_from_the_page_is_posted_once(
    deps: WorkerDeps,
) -> None:
    ann = unique("ann")
    tokens = await _users(deps, ann)
    opened = await DiscussionService(deps.db, deps.settings).send_message(
        ann, f"Slow disk {ann}", MessageIn(from_id=ann, content="iowait 60%")
    )
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base, cookies={"ambient_token": tokens[ann]}, headers={"origin": base}) as http,
    ):
        page = await http.get(f"/app/discussion?id={opened.discussion_id}")
        assert page.status_code == 200, page.text
        [key] = HIDDEN_ID.findall(page.text)
        form = {"discussion_id": opened.discussion_id, "content": "moved it", "message_id": key}
        for _ in range(2):  # the browser resubmits after a dropped answer
            answer = await http.post("/app/discussions/post", data=form)
            assert answer.status_code == 303, answer.text
            assert "msg=Posted" in answer.headers["location"]
        assert await _count(deps, opened.discussion_id) == 2
        # Each showing of the page is another message.
        again = HIDDEN_ID.findall(
            (await http.get(f"/app/discussion?id={opened.discussion_id}")).text
        )
        assert again and again != [key]

        listing = await http.get("/app/discussions")
        [key] = HIDDEN_ID.findall(listing.text)
        form = {"topic": f"Fans {ann}", "content": "loud", "message_id": key}
        for _ in range(2):
            answer = await http.post("/app/discussions/post", data=form)
            assert answer.status_code == 303, answer.text
        async with deps.db.session() as session:
            count = await session.scalar(
                select(func.count()).where(
                    DiscussionMessage.content == "loud", DiscussionMessage.from_id == ann
                )
            )
        assert count == 1
