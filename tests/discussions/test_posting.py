"""What a post must be: a message with words in it, an id the store can keep, a retry of itself."""

from __future__ import annotations

from typing import Any

from mcp import Client
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.discussions.rules import AgentPost, MessageIn, remediation_post_id
from ambient.discussions.service import DiscussionService
from ambient.storage.models import DiscussionMessage
from ambient.storage.repositories import InboxRepository
from api.app import create_app
from tests.conftest import running_worker, unique
from tests.discussions.test_scoping import _server
from tests.discussions.test_tools import _users, call, refused
from tests.support.servers import http_client, serve
from tests.support.waits import eventually


async def _stored(deps: WorkerDeps, from_id: str) -> int:
    async with deps.db.session() as session:
        count = await session.scalar(
            select(func.count()).where(DiscussionMessage.from_id == from_id)
        )
    return int(count or 0)


async def test_a_blank_message_is_refused_by_every_door_and_posts_nothing(
    deps: WorkerDeps,
) -> None:
    ann = unique("ann")
    tokens = await _users(deps, ann)
    topic = f"Disk pressure {ann}"
    async with Client(_server(deps, ann)) as as_ann:
        blank = await refused(as_ann, "send_message", from_id=ann, topic=topic, content=" \n\t ")
        assert "nothing posted" in blank and "content" in blank
        # PostgreSQL's text holds no NUL: refused by name on every database.
        nul = await refused(as_ann, "send_message", from_id=ann, topic=topic, content="a\x00b")
        assert "content" in nul and "NUL" in nul
        nul = await refused(as_ann, "send_message", from_id=ann, topic="disk\x00", content="x")
        assert "topic" in nul and "NUL" in nul
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base) as http,
    ):
        headers = {"Authorization": f"Bearer {tokens[ann]}"}
        answer = await http.post(
            "/discussions",
            json={"topic": topic, "from_id": ann, "content": "   "},
            headers=headers,
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"][-1] == "content"
        answer = await http.post(
            "/discussions",
            json={"topic": topic, "from_id": ann, "content": "disk\u0000full"},
            headers=headers,
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"][-1] == "content"
    assert await _stored(deps, ann) == 0


async def test_a_message_id_the_store_cannot_keep_is_refused_and_posts_nothing(
    deps: WorkerDeps,
) -> None:
    ann = unique("ann")
    tokens = await _users(deps, ann)
    topic = f"Disk pressure {ann}"
    async with Client(_server(deps, ann)) as as_ann:
        # Message ids are kept in 64 characters of letters, digits and _.:- (a longer one is
        # refused by PostgreSQL with a traceback, a blank or spaced one cannot be quoted).
        for bad in ("x" * 65, "my id", " ", "a\nb", "ab\n"):
            answer = await refused(
                as_ann, "send_message", from_id=ann, topic=topic, content="hi", message_id=bad
            )
            assert "nothing posted" in answer and "message_id" in answer, bad
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base) as http,
    ):
        headers = {"Authorization": f"Bearer {tokens[ann]}"}
        answer = await http.post(
            "/discussions",
            json={"topic": topic, "from_id": ann, "content": "hi", "message_id": "y" * 200},
            headers=headers,
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"][-1] == "message_id"
    assert await _stored(deps, ann) == 0
    async with Client(_server(deps, ann)) as as_ann:
        ok = [
            await call(
                as_ann, "send_message", from_id=ann, topic=topic, content="ok", message_id="a-1.a:b"
            )
            for _ in range(2)
        ]
        assert [answer["already_posted"] for answer in ok] == [False, True]
        assert ok[0]["message_id"] == ok[1]["message_id"]


async def test_a_post_retried_after_a_crash_notifies_the_members_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    alice, boss = unique("alice"), unique("boss")
    await _users(deps, alice, admin=boss)
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        opened = await DiscussionService(deps.db, settings).send_message(
            alice, f"Queue backlog {alice}", MessageIn(from_id=alice, content="backlog at 40k")
        )
        reply = MessageIn(from_id=boss, content="draining it now", message_id=unique("boss"))
        # The first try stored the message and died before anyone was told (here: Temporal
        # was not reachable); the client retries with the same message_id.
        first = await DiscussionService(deps.db, settings).reply_message(
            boss, opened.discussion_id, reply
        )
        assert first.notified == [] and first.notify_error is not None
        bus = DiscussionService(deps.db, settings, dev_env.client)
        retried = await bus.reply_message(boss, opened.discussion_id, reply)
        assert retried.already_posted is True and retried.message_id == first.message_id
        assert retried.notified == [alice] and retried.notify_error is None

        async def told() -> bool:
            async with deps.db.session() as session:
                inbox = await InboxRepository(session).list(alice)
            return any("draining it now" in m.body for m in inbox)

        await eventually(told, "alice's inbox has boss's reply")
        again = await bus.reply_message(boss, opened.discussion_id, reply)
        assert again.already_posted is True
        await dev_env.client.get_workflow_handle(f"discussion-notify/{first.message_id}").result()
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(alice)
    assert [m.body for m in inbox if "draining it now" in m.body] == [
        f"**{boss}** in *Queue backlog {alice}*:\n\ndraining it now"
    ]


async def test_a_message_id_reused_for_another_message_is_refused_not_taken_as_a_retry(
    deps: WorkerDeps,
) -> None:
    ann = unique("ann")
    await _users(deps, ann)
    key = unique("ann-msg")
    async with Client(_server(deps, ann)) as as_ann:
        first = await call(
            as_ann, "send_message", from_id=ann, topic=f"CPU {ann}", content="hot", message_id=key
        )
        other = await call(as_ann, "send_message", from_id=ann, topic=f"RAM {ann}", content="ok")
        # The same message again is a retry: nothing new.
        again = await call(
            as_ann, "send_message", from_id=ann, topic=f"CPU {ann}", content="hot", message_id=key
        )
        assert again["already_posted"] is True
        assert again["discussion_id"] == first["discussion_id"]
        # Another message with that id is not: it would be lost behind "already posted".
        for tool, where, content in (
            ("send_message", {"topic": f"CPU {ann}"}, "cooling down"),
            ("send_message", {"topic": f"RAM {ann}"}, "hot"),
            ("reply_message", {"discussion_id": other["discussion_id"]}, "hot"),
            ("reply_message", {"discussion_id": first["discussion_id"]}, "cooling down"),
        ):
            answer = await refused(
                as_ann, tool, from_id=ann, content=content, message_id=key, **where
            )
            assert "message_id" in answer and "new id" in answer, (tool, where, content)
        read = await call(as_ann, "read_discussion", discussion_id=first["discussion_id"])
        assert [m["content"] for m in read["messages"]] == ["hot"]
        read = await call(as_ann, "read_discussion", discussion_id=other["discussion_id"])
        assert [m["content"] for m in read["messages"]] == ["ok"]


async def test_a_topic_or_message_of_only_invisible_characters_is_refused_and_posts_nothing(
    deps: WorkerDeps,
) -> None:
    """A topic of U+200B opened a discussion the list showed as an empty link nobody could
    click, and a message of U+3164 was posted as a blank line: both are refused by name."""
    ann = unique("ann")
    tokens = await _users(deps, ann)
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base, headers={"Authorization": f"Bearer {tokens[ann]}"}) as http,
    ):
        for field, topic, content in [
            ("topic", "\u200b", "disk is full"),
            ("topic", "\u200b\u2060 \ufeff", "disk is full"),
            ("content", f"Disk {ann}", "\u200b"),
            ("content", f"Disk {ann}", "\u3164 \u2800"),
        ]:
            answer = await http.post(
                "/discussions", json={"topic": topic, "from_id": ann, "content": content}
            )
            assert answer.status_code == 422, answer.text
            [problem] = answer.json()["detail"]
            assert problem["loc"][-1] == field and "invisible" in problem["msg"], problem
        # A word with a space made of U+3000 is a word: posted.
        answer = await http.post(
            "/discussions", json={"topic": f"磁盘\u3000{ann}", "from_id": ann, "content": "满了"}
        )
        assert answer.status_code == 201, answer.text
    assert await _stored(deps, ann) == 1


async def test_a_message_id_is_its_senders_own_and_takes_nobody_elses(deps: WorkerDeps) -> None:
    """Message ids were one namespace for everyone: ann's post under the id bob's client would
    post under next refused bob's post ("another sender's message"), and a person could not
    take the ids a remediation posts under only because a rem- id was refused outright. A
    message_id is its sender's own now: each posts under it, a retry is still the same message;
    the message keeps it as its id unless another message has it (then the bus's id)."""
    ann, bob = unique("ann"), unique("bob")
    tokens = await _users(deps, ann, bob)
    run_key = f"remediation/{unique('fp')}@run"
    agents = remediation_post_id(f"{run_key}/finished")
    async with serve(create_app(deps.settings)) as base, http_client(base) as http:

        async def post(user: str, topic: str, message_id: str) -> dict[str, Any]:
            answer = await http.post(
                "/discussions",
                json={"topic": topic, "from_id": user, "content": "hi", "message_id": message_id},
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
            assert answer.status_code in (200, 201), answer.text
            return dict(answer.json())

        nexts = f"{bob}-2"
        anns = await post(ann, f"Disk {ann}", nexts)
        # Free, the sender's id is the message's (the seed spec's shape: a reply_to names it).
        assert anns["message_id"] == nexts
        bobs = await post(bob, f"Disk {bob}", nexts)
        assert bobs["already_posted"] is False and bobs["message_id"] != anns["message_id"]
        assert bobs["message_id"].startswith("msg_")
        assert bobs["discussion_id"] != anns["discussion_id"]
        again = await post(bob, f"Disk {bob}", nexts)
        assert again["already_posted"] is True and again["message_id"] == bobs["message_id"]
        again = await post(ann, f"Disk {ann}", nexts)
        assert again["already_posted"] is True and again["message_id"] == anns["message_id"]
        # The ids a run's agent posts under are the agent's: a person's is their own message.
        taken = await post(ann, f"Outcome {ann}", agents)
        assert taken["message_id"] != agents and taken["message_id"].startswith("msg_")
    assert await _stored(deps, ann) == 2 and await _stored(deps, bob) == 1
    post_ = AgentPost(
        agent_id="remediation",
        topic=f"Remediation of {ann}",
        content="done",
        subject=run_key,
        message_id=agents,
    )
    posted = await DiscussionService(deps.db, deps.settings).post_as_agent(post_)
    assert posted.message_id == agents and posted.already_posted is False
    retried = await DiscussionService(deps.db, deps.settings).post_as_agent(post_)
    assert retried.message_id == agents and retried.already_posted is True


async def test_a_topic_with_invisible_characters_inside_is_the_topic_without_them(
    deps: WorkerDeps,
) -> None:
    """'Check\\u200bout 5xx' reads 'Checkout 5xx' on every page, yet it opened a discussion of
    its own: the people of one incident talked past each other in two threads that looked
    alike. A topic's format characters (U+200B, U+2060, U+FEFF, a soft hyphen) are no part of
    it, for a person's post and for our agents' alike."""
    ann = unique("ann")
    tokens = await _users(deps, ann)
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base, headers={"Authorization": f"Bearer {tokens[ann]}"}) as http,
    ):
        opened = []
        for topic in (
            f"Checkout 5xx {ann}",
            f"Check\u200bout 5xx {ann}",
            f"\ufeffcheck\u00adout\u2060 5XX {ann}",
            f"checkout \u200b 5xx {ann}",
        ):
            answer = await http.post(
                "/discussions", json={"topic": topic, "from_id": ann, "content": "5xx again"}
            )
            assert answer.status_code in (200, 201), answer.text
            opened.append(answer.json()["discussion_id"])
        assert len(set(opened)) == 1, opened
    bus = DiscussionService(deps.db, deps.settings)
    subject = f"remediation/{unique('fp')}@run"
    first, second = [
        await bus.post_as_agent(
            AgentPost(
                agent_id="remediation",
                topic=topic,
                content="plan",
                subject=subject,
                message_id=unique("rem"),
            )
        )
        for topic in (f"Remediation of {ann}", f"Remediation\u200b of {ann}")
    ]
    assert second.discussion_id == first.discussion_id and second.created_discussion is False
