"""Discussions are seen by their members (admins see all): every tool, the API and the page."""

from __future__ import annotations

from typing import Any

from mcp import Client

from ambient.deps import WorkerDeps
from ambient.discussions.rules import PRODUCT_AGENTS, AgentPost
from ambient.discussions.service import DiscussionService
from ambient.storage.audit import AuditRepository
from ambient.storage.models import Discussion, RemediationRecord
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from tests.conftest import unique
from tests.discussions.test_tools import _users, call, refused
from tests.support.servers import http_client, serve


def _server(deps: WorkerDeps, user: str, approvers: dict[str, list[str]] | None = None) -> Any:
    # No Temporal here: a post then says nobody was notified, which these tests do not need.
    settings = deps.settings
    if approvers is not None:
        settings = settings.model_copy(update={"remediation_approvers": approvers})
    state = AppState(
        settings=settings,
        db=deps.db,
        temporal=None,  # type: ignore[arg-type]
        channels=deps.channels,
        stdio_user=user,
    )
    return build_server(settings, holder=StateHolder(state))


async def _remediation_owned_by(
    deps: WorkerDeps, owner: str, service: str, sent_again_by: str | None = None
) -> str:
    """A remediation run of ``owner`` (the row the workflow writes when it starts) on cluster
    cls-1, whose alert ``sent_again_by`` sent again (the audit line RemediationService writes)."""
    rid = f"remediation/{unique('fp')}"
    async with deps.db.session() as session:
        if sent_again_by:
            await AuditRepository(session).append(
                actor=sent_again_by,
                action="deduplicated",
                subject=f"{rid}@run",
                detail={"user": sent_again_by},
            )
        session.add(
            RemediationRecord(
                run_key=f"{rid}@run",
                remediation_id=rid,
                user=owner,
                cluster_id="cls-1",
                service=service,
                alert_type="error_rate",
                source="test",
                mode="dry_run",
                state="waiting_approval",
            )
        )
        await session.commit()
    return rid


async def _plan(deps: WorkerDeps, rid: str, service: str, content: str) -> str:
    """The remediation agent posts its plan, as the workflow does."""
    posted = await DiscussionService(deps.db, deps.settings).post_as_agent(
        AgentPost(
            agent_id="remediation",
            topic=f"Remediation of {service}",
            content=content,
            subject=rid,
            tags=["plan"],
            message_id=unique("rem"),
        )
    )
    return posted.discussion_id


async def test_members_read_search_and_count_only_their_discussions_and_an_admin_sees_all(
    deps: WorkerDeps,
) -> None:
    names = ("alice", "bob", "carol", "dave", "erin", "boss")
    alice, bob, carol, dave, erin, boss = (unique(n) for n in names)
    await _users(deps, alice, bob, carol, dave, erin, admin=boss)
    word = unique("secretword")
    service = unique("checkout")
    rid = await _remediation_owned_by(deps, carol, service, sent_again_by=dave)
    about_rid = await _plan(deps, rid, service, f"plan: roll back ({word}) with token patch")
    async with (
        Client(_server(deps, alice)) as as_alice,
        Client(_server(deps, bob)) as as_bob,
        Client(_server(deps, carol)) as as_carol,
        Client(_server(deps, boss)) as as_boss,
    ):
        alices = (
            await call(
                as_alice, "send_message", from_id=alice, topic=f"db {alice}", content=f"{word} a"
            )
        )["discussion_id"]
        bobs = (
            await call(as_bob, "send_message", from_id=bob, topic=f"dns {bob}", content=f"{word} b")
        )["discussion_id"]

        # Reading someone else's discussion answers as if it did not exist.
        for tool in ("read_discussion", "detect_anomalies", "annotate_discussion"):
            for other in (alices, about_rid):
                assert "no discussion" in await refused(as_bob, tool, discussion_id=other)
        assert "no discussion" in await refused(as_bob, "close_discussion", discussion_id=alices)

        # The remediation's owner is a member of its discussion without having posted.
        read = await call(as_carol, "read_discussion", discussion_id=about_rid)
        assert [m["tags"] for m in read["messages"]] == [["plan"]]
        # So is an approver the policy names for its cluster (they may approve it); whoever
        # sent the same alert again is not.
        policy = {"cls-*": [erin]}
        async with (
            Client(_server(deps, erin, policy)) as as_erin,
            Client(_server(deps, dave, policy)) as as_dave,
        ):
            approver = await call(as_erin, "list_discussions")
            assert [d["id"] for d in approver["discussions"]] == [about_rid]
            assert (await call(as_dave, "list_discussions"))["discussions"] == []
            assert "no discussion" in await refused(
                as_dave, "read_discussion", discussion_id=about_rid
            )

        def found_in(answer: dict[str, Any]) -> set[str]:
            return {m["discussion_id"] for m in answer["results"]}

        seen = {
            who: await call(client, "search_messages", keyword=word)
            for who, client in ((alice, as_alice), (bob, as_bob), (carol, as_carol))
        }
        assert found_in(seen[alice]) == {alices} and seen[alice]["total_matches"] == 1
        assert found_in(seen[bob]) == {bobs} and seen[bob]["total_matches"] == 1
        assert found_in(seen[carol]) == {about_rid} and seen[carol]["total_matches"] == 1
        everything = await call(as_boss, "search_messages", keyword=word)
        assert found_in(everything) == {alices, bobs, about_rid}
        assert everything["total_matches"] == 3

        listing = await call(as_bob, "list_discussions")
        assert [d["id"] for d in listing["discussions"]] == [bobs]
        assert (listing["open"], listing["closed"]) == (1, 0)
        admin_ids = {d["id"] for d in (await call(as_boss, "list_discussions"))["discussions"]}
        assert {alices, bobs, about_rid} <= admin_ids

        stats = await call(as_bob, "get_stats")
        assert stats["messages_per_participant"] == {bob: 1}
        assert (stats["discussions"], stats["messages"]) == (1, 1)
        assert stats["store_bytes"] == len(f"{word} b")
        projects = await call(as_bob, "list_projects")
        assert projects["projects"] == [
            {"project": "ambient-ops", "discussions": 1, "open": 1, "messages": 1}
        ]


async def test_posting_into_a_discussion_you_cannot_see_is_refused_and_makes_no_member(
    deps: WorkerDeps,
) -> None:
    alice, mallory = unique("alice"), unique("mallory")
    await _users(deps, alice, mallory)
    topic = f"Payment timeouts {alice}"
    async with (
        Client(_server(deps, alice)) as as_alice,
        Client(_server(deps, mallory)) as as_mallory,
    ):
        opened = await call(as_alice, "send_message", from_id=alice, topic=topic, content="p99 3s")
        disc = opened["discussion_id"]

        answer = await refused(
            as_mallory, "reply_message", discussion_id=disc, from_id=mallory, content="let me in"
        )
        assert "no discussion" in answer
        # The same topic opens mallory's own discussion rather than joining alice's.
        own = await call(as_mallory, "send_message", from_id=mallory, topic=topic, content="hi")
        assert own["created_discussion"] is True and own["discussion_id"] != disc
        # reply_to may not point into a discussion the sender does not see.
        probe = await refused(
            as_mallory,
            "reply_message",
            discussion_id=own["discussion_id"],
            from_id=mallory,
            content="x",
            reply_to=opened["message_id"],
        )
        assert "reply_to" in probe

        assert "no discussion" in await refused(as_mallory, "read_discussion", discussion_id=disc)
        read = await call(as_alice, "read_discussion", discussion_id=disc)
        assert [m["from_id"] for m in read["messages"]] == [alice]
        alices = {d["id"] for d in (await call(as_alice, "list_discussions"))["discussions"]}
        assert alices == {disc}


async def test_each_remediation_posts_in_its_own_discussion_even_on_the_same_service(
    deps: WorkerDeps,
) -> None:
    first, second = unique("owner1"), unique("owner2")
    await _users(deps, first, second)
    service = unique("payments")
    rid1 = await _remediation_owned_by(deps, first, service)
    rid2 = await _remediation_owned_by(deps, second, service)
    disc1 = await _plan(deps, rid1, service, "plan one")
    disc2 = await _plan(deps, rid2, service, "plan two")
    again = await _plan(deps, rid1, service, "step of one")
    assert disc1 != disc2 and again == disc1
    bus = DiscussionService(deps.db, deps.settings)
    async with deps.db.session() as session:
        subjects = {d: (await session.get(Discussion, d)).subject for d in (disc1, disc2)}
    assert subjects == {disc1: rid1, disc2: rid2}
    second_sees = await bus.list_discussions(second)
    assert [d.id for d in second_sees.discussions] == [disc2]
    read = await bus.read_discussion(second, disc2)
    assert [m.content for m in read.messages] == ["plan two"]


async def test_search_finds_percent_and_underscore_as_characters_not_wildcards(
    deps: WorkerDeps,
) -> None:
    ann, ben = unique("api-ann"), unique("api-ben")
    tokens = await _users(deps, ann, ben)
    bus = DiscussionService(deps.db, deps.settings)
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base) as http,
    ):
        as_ann = {"Authorization": f"Bearer {tokens[ann]}"}
        as_ben = {"Authorization": f"Bearer {tokens[ben]}"}
        for content in ("disk 100% full", "queue_depth high", "queueXdepth fine", "all good"):
            posted = await http.post(
                "/discussions",
                json={"topic": f"storage {ann}", "from_id": ann, "content": content},
                headers=as_ann,
            )
            assert posted.status_code == 201, posted.text

        async def search(keyword: str, headers: dict[str, str]) -> dict[str, Any]:
            answer = await http.get(
                "/discussions/search", params={"keyword": keyword}, headers=headers
            )
            assert answer.status_code == 200, answer.text
            return answer.json()

        percent = await search("%", as_ann)
        assert [m["content"] for m in percent["results"]] == ["disk 100% full"]
        assert percent["query"] == "%" and percent["total_matches"] == 1
        underscore = await search("queue_depth", as_ann)
        assert [m["content"] for m in underscore["results"]] == ["queue_depth high"]
        # Someone who takes part in no discussion finds nothing, wildcard or not.
        assert (await search("%", as_ben))["total_matches"] == 0
        assert (await search("_", as_ben))["results"] == []
        assert (await http.get("/discussions?status=open", headers=as_ben)).json()[
            "discussions"
        ] == []
        too_long = await http.get(
            "/discussions/search", params={"keyword": "x" * 201}, headers=as_ben
        )
        assert too_long.status_code == 422 and "keyword" in too_long.text
        # The 422 names the field, in FastAPI's own shape, as every other 422 of the API.
        (problem,) = too_long.json()["detail"]
        assert problem["loc"] == ["query", "keyword"] and problem["type"] == "value_error"
        discussion = posted.json()["discussion_id"]
        unknown = await http.post(
            f"/discussions/{discussion}/messages",
            json={"from_id": ann, "content": "+1", "reply_to": "msg_nonesuch"},
            headers=as_ann,
        )
        assert unknown.status_code == 422, unknown.text
        assert [p["loc"] for p in unknown.json()["detail"]] == [["body", "reply_to"]]
    assert (await bus.search_messages(ann, "100%")).total_matches == 1


async def test_init_store_counts_only_the_discussions_its_caller_sees(deps: WorkerDeps) -> None:
    alice, bob, boss = unique("alice"), unique("bob"), unique("boss")
    await _users(deps, alice, bob, admin=boss)
    async with (
        Client(_server(deps, alice)) as as_alice,
        Client(_server(deps, bob)) as as_bob,
        Client(_server(deps, boss)) as as_boss,
    ):
        for n in range(3):
            await call(as_alice, "send_message", from_id=alice, topic=f"t{n}", content="secret")
        await call(as_bob, "send_message", from_id=bob, topic="mine", content="one")
        store = await call(as_bob, "init_store")
        assert (store["discussions"], store["messages"]) == (1, 1)
        everything = await call(as_boss, "init_store")
        assert (everything["discussions"], everything["messages"]) >= (4, 4)


async def test_a_members_participant_count_grows_with_its_own_discussions_not_with_strangers(
    deps: WorkerDeps,
) -> None:
    """get_stats and init_store count the participants a member can know of: the product's
    agents and who opened or posted in the discussions they see. Counted over the whole bus, the
    number rose by one at each stranger's first post: who was new on the bus, and when."""
    alice, bob, carol, boss = (unique(n) for n in ("alice", "bob", "carol", "boss"))
    await _users(deps, alice, bob, carol, admin=boss)
    async with (
        Client(_server(deps, alice)) as as_alice,
        Client(_server(deps, bob)) as as_bob,
        Client(_server(deps, carol)) as as_carol,
        Client(_server(deps, boss)) as as_boss,
    ):
        await call(as_bob, "init_store")  # the product's agents, known to everyone
        agents = (await call(as_bob, "get_stats"))["participants"]
        assert agents == len(PRODUCT_AGENTS)
        before = (await call(as_boss, "get_stats"))["participants"]

        await call(as_alice, "send_message", from_id=alice, topic=f"db {alice}", content="a")
        await call(as_carol, "send_message", from_id=carol, topic=f"dns {carol}", content="c")
        for tool in ("get_stats", "init_store"):
            assert (await call(as_bob, tool))["participants"] == agents, tool

        # Nor can a stranger's discussion be joined to be counted in: Carol cannot post in
        # Alice's, and Bob's post on the same topic opens his own.
        alices = (await call(as_alice, "list_discussions"))["discussions"][0]["id"]
        assert "no discussion" in await refused(
            as_carol, "reply_message", discussion_id=alices, from_id=carol, content="x"
        )
        await call(as_bob, "send_message", from_id=bob, topic=f"db {alice}", content="b")
        for who in (as_alice, as_bob):
            assert (await call(who, "get_stats"))["participants"] == agents + 1  # themselves
        # An admin counts everyone on the bus.
        assert (await call(as_boss, "get_stats"))["participants"] == before + 3
