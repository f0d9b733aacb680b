"""The eleven discussion tools through real MCP client sessions, in memory and over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import func, select, update
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import DiscussionMessage
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_discussion_server, build_server
from tests.conftest import running_worker, unique
from tests.support.servers import HANG, http_client, serve
from tests.support.waits import eventually


async def _users(deps: WorkerDeps, *names: str, admin: str | None = None) -> dict[str, str]:
    tokens: dict[str, str] = {}
    async with deps.db.session() as session:
        for name in (*names, *([admin] if admin else [])):
            user, token = await UserRepository(session).create(UserCreate(name=name))
            if name == admin:
                user.role = "admin"
            tokens[name] = token
        await session.commit()
    return tokens


def _server(settings: Settings, deps: WorkerDeps, env: WorkflowEnvironment, user: str) -> Any:
    state = AppState(
        settings=settings, db=deps.db, temporal=env.client, channels=deps.channels, stdio_user=user
    )
    return build_server(settings, holder=StateHolder(state))


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_signing_annotate_and_bus_tools_in_memory(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    alice, bob, boss = unique("alice"), unique("bob"), unique("boss")
    await _users(deps, alice, bob, admin=boss)
    topic = f"Checkout 5xx {alice}"
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        async with (
            Client(_server(settings, deps, dev_env, alice)) as as_alice,
            Client(_server(settings, deps, dev_env, bob)) as as_bob,
            Client(_server(settings, deps, dev_env, boss)) as as_boss,
        ):
            opened = await call(
                as_alice, "send_message", from_id=alice, topic=topic, content="5xx on checkout"
            )
            assert opened["created_discussion"] is True and opened["notified"] == []
            disc = opened["discussion_id"]
            assert disc.startswith("disc_")

            # Same topic in another case and spacing joins (for whoever sees the discussion:
            # here an admin); alice is told (inbox, via Temporal).
            joined = await call(
                as_boss,
                "send_message",
                from_id=boss,
                topic=f"  checkout 5XX {alice}",
                content="Looking at it",
                message_id=f"{boss}-1",
                reply_to=opened["message_id"],
            )
            assert joined["discussion_id"] == disc and joined["notified"] == [alice]
            again = await call(
                as_boss,
                "send_message",
                from_id=boss,
                topic=topic,
                content="Looking at it",
                message_id=f"{boss}-1",
                reply_to=opened["message_id"],
            )
            assert again["already_posted"] is True
            assert again["message_id"] == joined["message_id"]

            async def told() -> bool:
                async with deps.db.session() as session:
                    inbox = await InboxRepository(session).list(alice)
                return any("Looking at it" in m.body for m in inbox)

            await eventually(told, "alice's inbox has boss's message")
            # A discussion message is a system message, not a watch's (push routes by kind).
            async with deps.db.session() as session:
                inbox = await InboxRepository(session).list(alice)
            assert [m.kind for m in inbox if "Looking at it" in m.body] == ["system"]

            forged = await refused(as_bob, "send_message", from_id=alice, topic=topic, content="x")
            assert "sign only as yourself" in forged
            not_admin = await refused(
                as_bob, "send_message", from_id="xiaozhi", topic=topic, content="x"
            )
            assert "sign only as yourself" in not_admin
            product = await call(
                as_boss,
                "reply_message",
                discussion_id=disc,
                from_id="xiaozhi",
                content="I can restart it.",
                tags=["auto_reply"],
                reply_to=joined["message_id"],
            )
            assert product["discussion_id"] == disc
            bad_tag = await refused(
                as_bob, "reply_message", discussion_id=disc, from_id=bob, content="x", tags=["a b"]
            )
            assert "tags" in bad_tag

            found = await call(as_alice, "search_messages", keyword="LOOKING AT")
            assert found["query"] == "LOOKING AT" and found["total_matches"] == 1
            assert found["results"][0]["from_id"] == boss
            # Posted moments after what they answer: the analysis flags them. It reads the
            # posting times, so they are pinned: how long a busy machine took between the calls
            # above must not decide what the analysis sees.
            posted = datetime.now(UTC) - timedelta(minutes=1)
            async with deps.db.session() as session:
                for offset, sender in ((0.0, alice), (1.0, boss), (2.5, "xiaozhi")):
                    await session.execute(
                        update(DiscussionMessage)
                        .where(
                            DiscussionMessage.discussion_id == disc,
                            DiscussionMessage.from_id == sender,
                        )
                        .values(created_at=posted + timedelta(seconds=offset))
                    )
                await session.commit()
            anomalies = await call(as_alice, "detect_anomalies", discussion_id=disc)
            assert {a["from_id"] for a in anomalies["anomalies"]} >= {boss, "xiaozhi"}
            notes = await call(as_alice, "annotate_discussion", discussion_id=disc)
            assert notes["count"] == len(notes["changed"]) >= 2
            assert {c["source_type"] for c in notes["changed"]} == {"inferred"}
            assert (await call(as_alice, "annotate_discussion", discussion_id=disc))["count"] == 0

            listing = await call(as_alice, "list_discussions", status="open")
            mine = next(d for d in listing["discussions"] if d["id"] == disc)
            assert mine["messages"] == 3 and listing["open"] >= 1
            read = await call(as_alice, "read_discussion", discussion_id=disc)
            assert [m["from_id"] for m in read["messages"]] == [alice, boss, "xiaozhi"]
            assert read["messages"][1]["source_type"] == "inferred"

            # bob takes no part in alice's discussion: for him it does not exist.
            assert "no discussion" in await refused(as_bob, "close_discussion", discussion_id=disc)
            closed = await call(as_alice, "close_discussion", discussion_id=disc)
            assert closed == {"discussion_id": disc, "status": "closed", "already_closed": False}
            assert (await call(as_alice, "close_discussion", discussion_id=disc))["already_closed"]
            late = await refused(
                as_boss, "reply_message", discussion_id=disc, from_id=boss, content="one more"
            )
            assert "closed" in late
            reopened = await call(
                as_boss, "send_message", from_id=boss, topic=topic, content="again"
            )
            assert reopened["created_discussion"] is True and reopened["discussion_id"] != disc

            store = await call(as_boss, "init_store")
            assert store["seeded"] == [] and store["participants"] >= 4
            projects = await call(as_alice, "list_projects")
            assert any(p["project"] == "ambient-ops" for p in projects["projects"])
            stats = await call(as_alice, "get_stats")
            assert stats["messages_per_participant"] == {alice: 1, boss: 1, "xiaozhi": 1}
            assert stats["store_bytes"] > 0 and stats["latest_activity"] is not None
            missing = await refused(as_alice, "read_discussion", discussion_id="disc_nope")
            assert "list_discussions" in missing


async def test_three_servers_and_http(deps: WorkerDeps) -> None:
    names = {
        "signing": {"send_message", "reply_message", "close_discussion"},
        "annotate": {"search_messages", "detect_anomalies", "annotate_discussion"},
        "bus": {"list_discussions", "read_discussion", "init_store", "list_projects", "get_stats"},
    }
    for which, expected in names.items():
        server = build_discussion_server(deps.settings, which, stdio_user="nobody")
        async with Client(server) as client:
            tools = (await client.list_tools()).tools
            assert client.server_info is not None
            assert client.server_info.name == f"ambient-{which}"
        assert {t.name for t in tools} == expected
        for tool in tools:
            assert tool.annotations is not None
            reads = tool.name in {
                "search_messages",
                "detect_anomalies",
                "list_discussions",
                "read_discussion",
                "list_projects",
                "get_stats",
            }
            assert tool.annotations.read_only_hint is reads
    user = unique("http")
    tokens = await _users(deps, user)
    async with serve(create_app(deps.settings)) as base:
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        async with (
            httpx2.AsyncClient(timeout=HANG, headers=headers, trust_env=False) as http,
            Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
        ):
            posted = await call(
                client, "send_message", from_id=user, topic=f"http {user}", content="over HTTP"
            )
            read = await call(client, "read_discussion", discussion_id=posted["discussion_id"])
            assert read["messages"][0]["content"] == "over HTTP"
            assert posted["created_discussion"] is True and posted["notified"] == []


def test_server_options_that_would_be_ignored_or_serve_nothing_are_refused() -> None:
    """`--server bus --area tasks` served the bus alone (the area silently dropped), and
    `--server signing --read-only` a server with no tool at all, which a client shows as
    enabled and empty: both are refused by name before anything starts."""
    from typer.testing import CliRunner

    from ambient.cli import app as cli

    mixed = CliRunner().invoke(cli, ["mcp", "--user", "mei", "--server", "bus", "--area", "tasks"])
    assert mixed.exit_code == 2 and "--area" in mixed.output, mixed.output
    assert "do not apply" in mixed.output, mixed.output
    for chosen in (["--server", "signing"], ["--area", "signing"]):
        empty = CliRunner().invoke(cli, ["mcp", "--user", "mei", *chosen, "--read-only"])
        assert empty.exit_code == 2 and "--read-only" in empty.output, (chosen, empty.output)
        assert "no tool" in empty.output, empty.output


async def test_a_reply_that_can_approve_waits_for_the_persons_yes_like_approving(
    db: Database,
) -> None:
    """With AMBIENT_CHAT_CONFIRM=destructive the chat model's approve_remediation waits for
    the person, but reply_message tagged approve or abort (which acts on the remediation as
    that person) ran at once: the model approved by reply what it could not approve directly."""
    from openai import AsyncOpenAI

    from ambient.agent.chat import ChatAgent, ToolOffer
    from ambient.agent.conversations import ConversationStore
    from bench.toolcalls.run import tool_server
    from tests.standins.llm_api import API_KEY, LLMApi, ToolCalls

    llm = LLMApi()
    reply = {
        "discussion_id": "disc_20261122081500_ab12",
        "from_id": "dev",
        "content": "ok",
        "tags": ["approve"],
    }
    approve = {"remediation_id": "remediation/abc", "approve": True}
    async with tool_server("full") as facade, serve(llm.app()) as base:
        model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
        agent = ChatAgent(
            model, "standin", facade, system="be brief", offer=ToolOffer(0), confirm="destructive"
        )
        for function, arguments in (("approve_remediation", approve), ("reply_message", reply)):
            llm.script(ToolCalls([(function, arguments)]))
            conversation = await ConversationStore(db).open("dev", None)
            held = [e async for e in agent.turn(conversation, "好的")]
            assert [e.type for e in held] == ["confirm"], (function, held)
            assert held[0].calls == [{"function": function, "arguments": arguments}]


async def test_a_real_reply_approves_a_remediation_and_an_inferred_one_is_refused(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    from ambient.discussions.rules import MessageIn
    from ambient.discussions.service import DiscussionService
    from tests.remediation.support import (
        add_user,
        alert,
        remediation_settings,
        remediations_with_worker,
    )

    remediation_settings(deps, remediation_approval_from_rung=1)
    owner, admin = unique("disc-ops"), unique("disc-admin")
    await add_user(deps, owner, permission="dry_run")
    await _users(deps, admin=admin)
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (
        url,
        settings,
        remediations,
    ):
        rid = (
            await remediations.start(owner, alert(url, workload=owner, settle_seconds=0), "dry_run")
        ).remediation_id

        async def waiting() -> bool:
            return (await remediations.get(owner, rid)).state == "waiting_approval"

        await eventually(waiting, "the remediation waits for approval")
        bus = DiscussionService(deps.db, settings, dev_env.client, remediations)

        # The remediation posts its plan and the approval request in a discussion about it;
        # both go out after the state says it waits (the plan is held for the run's next post).
        async def discussed() -> bool:
            listing = await bus.list_discussions(owner, status="open")
            return any(d.subject == rid for d in listing.discussions)

        await eventually(discussed, "the remediation opens a discussion about it")
        listing = await bus.list_discussions(owner, status="open")
        opened = next(d for d in listing.discussions if d.subject == rid)

        async def asked() -> bool:
            return len((await bus.read_discussion(owner, opened.id)).messages) == 2

        await eventually(asked, "the approval request is posted")
        thread = await bus.read_discussion(owner, opened.id)
        assert [m.from_id for m in thread.messages] == ["remediation", "remediation"]
        assert [m.tags for m in thread.messages] == [["plan"], ["approval"]]
        assert "reply here tagged approve" in thread.messages[1].content.lower()
        async with deps.db.session() as session:
            await session.execute(
                update(DiscussionMessage)
                .where(DiscussionMessage.discussion_id == opened.id)
                .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
            )
            await session.commit()

        inferred = await bus.reply_message(
            owner,
            opened.id,
            MessageIn(from_id=owner, content="ok", tags=["approve"], source_type="inferred"),
        )
        assert inferred.action is not None and inferred.action["done"] is False
        assert "machine-inferred" in inferred.action["reason"]
        assert (await remediations.get(owner, rid)).state == "waiting_approval"

        # Typed by the person, minutes after the question: it acts.
        async with deps.db.session() as session:
            await session.execute(
                update(DiscussionMessage)
                .where(DiscussionMessage.id == inferred.message_id)
                .values(created_at=datetime.now(UTC) - timedelta(minutes=2))
            )
            await session.commit()
        reply = MessageIn(
            from_id=owner,
            content="小智，回滚 — approved",
            tags=["approve"],
            message_id=unique("ok"),
        )
        # The first try stored the reply and died before acting (here: no remediation service
        # to act through); the client retries it with the same message_id, and it acts.
        died = await DiscussionService(deps.db, settings, dev_env.client).reply_message(
            owner, opened.id, reply
        )
        assert died.action is not None and died.action["done"] is False
        real = await bus.reply_message(owner, opened.id, reply)
        assert real.already_posted is True
        assert real.action is not None and real.action["rung"] == 1, real.action
        assert (
            real.action.items() >= {"remediation_id": rid, "verb": "approve", "done": True}.items()
        )

        async def approved() -> bool:
            view = await remediations.get(owner, rid)
            return any(d.approve and d.approver == owner for d in view.approvals)

        await eventually(approved, "the approval reached the remediation")
        sent = [a for a in (await remediations.get(owner, rid)).audit if a.action == "approve"]
        # The audit says the approval came by a reply in the discussion.
        assert [(a.actor, a.detail["via"]) for a in sent] == [(owner, "discussion")]

        async def outcome_posted() -> bool:
            thread = await bus.read_discussion(owner, opened.id)
            return any("outcome" in m.tags for m in thread.messages)

        await eventually(outcome_posted, "the remediation posted its outcome")


async def test_a_retried_reply_acts_as_the_message_stored_not_as_the_retry_claims(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A retry with the same message_id is the stored message again: one stored without the
    approve tag, or marked inferred, does not approve a run when "retried" tagged approve or
    claiming real (the thread would show a plain or inferred message that approved)."""
    from ambient.discussions.rules import MessageIn
    from ambient.discussions.service import DiscussionService
    from ambient.discussions.views import InvalidDiscussionError
    from tests.remediation.support import (
        add_user,
        alert,
        remediation_settings,
        remediations_with_worker,
    )

    remediation_settings(deps, remediation_approval_from_rung=1)
    owner = unique("retry-ops")
    await add_user(deps, owner, permission="dry_run")
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (
        url,
        settings,
        remediations,
    ):
        rid = (
            await remediations.start(owner, alert(url, workload=owner, settle_seconds=0), "dry_run")
        ).remediation_id
        bus = DiscussionService(deps.db, settings, dev_env.client, remediations)

        async def asked() -> bool:
            listing = await bus.list_discussions(owner, status="open")
            about = [d for d in listing.discussions if d.subject and d.subject.startswith(rid)]
            return bool(about) and about[0].messages == 2

        await eventually(asked, "the remediation asks for approval in its discussion")
        listing = await bus.list_discussions(owner, status="open")
        opened = next(d for d in listing.discussions if d.subject and d.subject.startswith(rid))
        async with deps.db.session() as session:  # the question was asked minutes ago
            await session.execute(
                update(DiscussionMessage)
                .where(DiscussionMessage.discussion_id == opened.id)
                .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
            )
            await session.commit()

        plain = MessageIn(from_id=owner, content="looking at it", message_id=unique("plain"))
        assert (await bus.reply_message(owner, opened.id, plain)).action is None
        tagged = plain.model_copy(update={"tags": ["approve"]})
        try:
            await bus.reply_message(owner, opened.id, tagged)
        except InvalidDiscussionError as exc:
            assert "message_id" in str(exc) and "new id" in str(exc)
        else:
            raise AssertionError("a retry tagged approve was taken for the untagged message")

        said = MessageIn(
            from_id=owner,
            content="approve",
            tags=["approve"],
            source_type="inferred",
            message_id=unique("said"),
        )
        first = await bus.reply_message(owner, opened.id, said)
        assert first.action is not None and first.action["done"] is False
        claimed = await bus.reply_message(
            owner, opened.id, said.model_copy(update={"source_type": "real"})
        )
        assert claimed.already_posted is True
        assert claimed.action is not None and claimed.action["done"] is False
        assert "machine-inferred" in claimed.action["reason"]

        view = await remediations.get(owner, rid)
        assert view.state == "waiting_approval" and view.approvals == []
        thread = await bus.read_discussion(owner, opened.id)
        assert [(m.content, m.tags, m.source_type) for m in thread.messages[2:]] == [
            ("looking at it", [], "real"),
            ("approve", ["approve"], "inferred"),
        ]


async def test_only_a_person_replying_as_themselves_steers_a_remediation_in_its_discussion(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    from ambient.discussions.rules import MessageIn, ParticipantRole
    from ambient.discussions.service import DiscussionService
    from ambient.discussions.views import DiscussionNotFoundError
    from ambient.storage.models import Discussion, DiscussionParticipant
    from tests.remediation.support import (
        add_user,
        alert,
        remediation_settings,
        remediations_with_worker,
    )

    remediation_settings(deps, remediation_approval_from_rung=1)
    owner, admin, stranger = unique("rem-owner"), unique("rem-admin"), unique("rem-stranger")
    bot = unique("rem-bot")
    await add_user(deps, owner, permission="execute")
    await add_user(deps, admin, permission="execute", role="admin")
    await add_user(deps, stranger, permission="execute")
    async with deps.db.session() as session:
        # An agent the owner runs: it signs as itself, never as the owner.
        session.add(
            DiscussionParticipant(
                id=bot, display_name=bot, role=ParticipantRole.AGENT.value, owner=owner
            )
        )
        await session.commit()
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (
        url,
        settings,
        remediations,
    ):
        subject = alert(url, workload=owner, settle_seconds=0)
        rid = (await remediations.start(owner, subject, "dry_run")).remediation_id

        async def waiting() -> bool:
            return (await remediations.get(owner, rid)).state == "waiting_approval"

        await eventually(waiting, "the remediation waits for approval")
        bus = DiscussionService(deps.db, settings, dev_env.client, remediations)
        await bus.init_store(owner)

        # Read straight from the store: who may read the bus is not what this test is about.
        async def asked() -> str | None:
            async with deps.db.session() as session:
                found = (
                    await session.execute(
                        select(Discussion.id, func.count(DiscussionMessage.id))
                        .join(DiscussionMessage, DiscussionMessage.discussion_id == Discussion.id)
                        .where(Discussion.subject.startswith(f"{rid}@", autoescape=True))
                        .group_by(Discussion.id)
                    )
                ).first()
            return found[0] if found is not None and found[1] == 2 else None

        disc = await eventually(asked, "the approval request is posted")

        async def reply(user: str, from_id: str, tag: str) -> dict[str, Any]:
            # Minutes after the thread's last message: not flagged as machine-fast.
            async with deps.db.session() as session:
                await session.execute(
                    update(DiscussionMessage)
                    .where(DiscussionMessage.discussion_id == disc)
                    .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
                )
                await session.commit()
            posted = await bus.reply_message(
                user, disc, MessageIn(from_id=from_id, content="go", tags=[tag])
            )
            assert posted.action is not None
            return posted.action

        # An agent's message claims to be real; whoever sent it, it is not a person's answer.
        as_product_agent = await reply(admin, "xiaozhi", "approve")
        as_own_agent = await reply(owner, bot, "approve")
        own_agent_aborts = await reply(owner, bot, "abort")
        for action in (as_product_agent, as_own_agent, own_agent_aborts):
            assert action["done"] is False, action
            assert "a person replying as themselves" in action["reason"]
        # Sending the alert again, then replying as themselves, gives a stranger nothing (the
        # reply is refused, or — where the bus hides others' discussions — cannot be posted).
        await remediations.start(stranger, subject, "execute")

        async def stranger_replies(tag: str) -> str:
            try:
                action = await reply(stranger, stranger, tag)
            except DiscussionNotFoundError as exc:
                return str(exc)
            assert action["done"] is False
            return str(action["reason"])

        stranger_approves = await stranger_replies("approve")
        stranger_refuses = await stranger_replies("refuse")
        untouched = await remediations.get(owner, rid)
        by_the_owner = await reply(owner, owner, "approve")

        async def approved() -> bool:
            view = await remediations.get(owner, rid)
            return any(d.approve and d.approver == owner for d in view.approvals)

        await eventually(approved, "the owner's approval reached the remediation")

    for reason in (stranger_approves, stranger_refuses):
        assert "no such remediation" in reason or "no discussion" in reason
    assert untouched.state == "waiting_approval" and untouched.approvals == []
    assert by_the_owner.items() >= {"remediation_id": rid, "verb": "approve", "done": True}.items()


async def test_discussions_api_posts_replies_and_answers_with_the_right_status(
    deps: WorkerDeps,
) -> None:
    # ben is an admin (admins see every discussion); cid takes part in none of them.
    ann, ben, cid = unique("api-ann"), unique("api-ben"), unique("api-cid")
    tokens = await _users(deps, ann, cid, admin=ben)
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base) as http,
    ):
        as_ann = {"Authorization": f"Bearer {tokens[ann]}"}
        as_ben = {"Authorization": f"Bearer {tokens[ben]}"}
        posted = await http.post(
            "/discussions",
            json={"topic": f"db latency {ann}", "from_id": ann, "content": "p99 up"},
            headers=as_ann,
        )
        assert posted.status_code == 201, posted.text
        disc = posted.json()["discussion_id"]
        forged = await http.post(
            f"/discussions/{disc}/messages", json={"from_id": ann, "content": "x"}, headers=as_ben
        )
        assert forged.status_code == 403
        reply = await http.post(
            f"/discussions/{disc}/messages",
            json={"from_id": ben, "content": "on it"},
            headers=as_ben,
        )
        assert reply.status_code == 201
        assert (await http.post(f"/discussions/{disc}/close", headers=as_ann)).status_code == 200
        late = await http.post(
            f"/discussions/{disc}/messages", json={"from_id": ben, "content": "x"}, headers=as_ben
        )
        assert late.status_code == 409
        read = (await http.get(f"/discussions/{disc}", headers=as_ben)).json()
        assert [m["from_id"] for m in read["messages"]] == [ann, ben]
        assert (await http.get("/discussions/disc_none", headers=as_ben)).status_code == 404
        as_cid = {"Authorization": f"Bearer {tokens[cid]}"}
        assert (await http.get(f"/discussions/{disc}", headers=as_cid)).status_code == 404
        unseen = await http.post(f"/discussions/{disc}/annotate", headers=as_cid)
        assert unseen.status_code == 404
        found = (await http.get("/discussions/search?keyword=P99", headers=as_ben)).json()
        assert found["total_matches"] == 1 and found["results"][0]["content"] == "p99 up"
        bad = await http.post(
            "/discussions", json={"topic": "t", "from_id": ben, "content": ""}, headers=as_ben
        )
        assert bad.status_code == 422
