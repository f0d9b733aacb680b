"""What the bus's reads measure and how much they answer: bytes as bytes, long threads in pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mcp import Client
from sqlalchemy import select

from ambient.deps import WorkerDeps
from ambient.discussions import reading
from ambient.discussions.rules import MessageIn
from ambient.discussions.service import DiscussionService
from ambient.storage.models import DiscussionMessage
from api.app import create_app
from tests.conftest import unique
from tests.discussions.test_scoping import _server
from tests.discussions.test_tools import _users, call, refused
from tests.support.servers import http_client, serve


async def test_store_bytes_counts_the_utf8_bytes_of_chinese_messages(deps: WorkerDeps) -> None:
    ann = unique("bytes-ann")
    await _users(deps, ann)
    content = "磁盘快满了 disk"  # five characters of three bytes each, a space and four ASCII
    async with Client(_server(deps, ann)) as as_ann:
        await call(as_ann, "send_message", from_id=ann, topic=f"磁盘 {ann}", content=content)
        stats = await call(as_ann, "get_stats")
    assert stats["store_bytes"] == len(content.encode()) == 20


async def test_a_long_discussion_is_read_in_pages_with_the_next_offset(deps: WorkerDeps) -> None:
    ann = unique("page-ann")
    await _users(deps, ann)
    bus = DiscussionService(deps.db, deps.settings)
    topic = f"long {ann}"
    first = await bus.send_message(ann, topic, MessageIn(from_id=ann, content="0"))
    for n in range(1, 130):
        await bus.send_message(ann, topic, MessageIn(from_id=ann, content=str(n)))
    async with Client(_server(deps, ann)) as as_ann:
        page = await call(as_ann, "read_discussion", discussion_id=first.discussion_id)
        rest = await call(
            as_ann, "read_discussion", discussion_id=first.discussion_id, offset=page["next_offset"]
        )
        refusals = [
            await refused(as_ann, "read_discussion", discussion_id=first.discussion_id, offset=n)
            for n in (-1, 2**63)
        ]
    assert page["discussion"]["messages"] == 130
    assert [m["content"] for m in page["messages"]] == [str(n) for n in range(100)]
    assert page["next_offset"] == 100
    assert [m["content"] for m in rest["messages"]] == [str(n) for n in range(100, 130)]
    assert rest["next_offset"] is None
    assert all(": offset: 0 to 9223372036854775807" in r for r in refusals), refusals


async def test_more_discussions_than_a_page_are_listed_with_the_next_offset(
    deps: WorkerDeps,
) -> None:
    bob = unique("page-bob")
    await _users(deps, bob)
    bus = DiscussionService(deps.db, deps.settings)
    for n in range(105):
        await bus.send_message(bob, f"topic {n} {bob}", MessageIn(from_id=bob, content="hi"))
    async with Client(_server(deps, bob)) as as_bob:
        page = await call(as_bob, "list_discussions")
        # Opened between the pages: newer than the first page, never on the next (counted from
        # the front, they pushed the first page's last three onto it again).
        for n in range(105, 108):
            await bus.send_message(bob, f"topic {n} {bob}", MessageIn(from_id=bob, content="hi"))
        rest = await call(as_bob, "list_discussions", offset=page["next_offset"])
    assert page["open"] == 105 and len(page["discussions"]) == 100
    assert page["next_offset"] == 5  # the older discussions still to list
    listed = [d["topic"] for d in page["discussions"] + rest["discussions"]]
    assert listed == [f"topic {n} {bob}" for n in range(104, -1, -1)]
    assert rest["next_offset"] is None


async def test_more_matches_than_a_page_are_searched_with_the_next_offset(
    deps: WorkerDeps,
) -> None:
    """search_messages said total_matches 105 and answered the newest 100, with no way to
    reach the other five (list_discussions and read_discussion page by next_offset)."""
    dee = unique("page-dee")
    await _users(deps, dee)
    bus = DiscussionService(deps.db, deps.settings)
    for n in range(105):
        await bus.send_message(dee, f"search {dee}", MessageIn(from_id=dee, content=f"hit {n}"))
    async with Client(_server(deps, dee)) as as_dee:
        page = await call(as_dee, "search_messages", keyword="hit")
        # Posted between the pages: newer than the first page, never on the next.
        for n in range(105, 108):
            await bus.send_message(dee, f"search {dee}", MessageIn(from_id=dee, content=f"hit {n}"))
        rest = await call(as_dee, "search_messages", keyword="hit", offset=page["next_offset"])
        wrong = await refused(as_dee, "search_messages", keyword="hit", offset=2**63)
    assert (page["total_matches"], rest["total_matches"]) == (105, 108)
    assert [m["content"] for m in page["results"]] == [f"hit {n}" for n in range(104, 4, -1)]
    assert page["next_offset"] == 5  # the older matches still to show
    assert [m["content"] for m in rest["results"]] == [f"hit {n}" for n in range(4, -1, -1)]
    assert rest["next_offset"] is None
    assert ": offset: 0 to 9223372036854775807" in wrong


async def test_the_api_pages_the_same_way_and_names_a_bad_offset(deps: WorkerDeps) -> None:
    cy = unique("page-cy")
    tokens = await _users(deps, cy)
    bus = DiscussionService(deps.db, deps.settings)
    posted = await bus.send_message(cy, f"api {cy}", MessageIn(from_id=cy, content="one"))
    await bus.send_message(cy, f"api {cy}", MessageIn(from_id=cy, content="two"))
    as_cy = {"Authorization": f"Bearer {tokens[cy]}"}
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base) as http,
    ):
        read = await http.get(f"/discussions/{posted.discussion_id}?offset=1", headers=as_cy)
        bad = await http.get(f"/discussions/{posted.discussion_id}?offset=-1", headers=as_cy)
        listed = await http.get("/discussions?offset=-1", headers=as_cy)
    assert [m["content"] for m in read.json()["messages"]] == ["two"]
    assert read.json()["next_offset"] is None
    for refused_offset in (bad, listed):
        assert refused_offset.status_code == 422, refused_offset.text
        assert refused_offset.json()["detail"][0]["loc"] == ["query", "offset"]


async def test_anomalies_and_annotations_answer_at_most_a_page_with_the_whole_count(
    deps: WorkerDeps,
) -> None:
    ann, bob = unique("burst-ann"), unique("burst-bob")
    await _users(deps, ann, admin=bob)
    bus = DiscussionService(deps.db, deps.settings)
    topic = f"burst {ann}"
    first = last = await bus.send_message(ann, topic, MessageIn(from_id=ann, content="0"))
    for n in range(1, 130):  # two senders in turn, each answering the other
        sender = bob if n % 2 else ann
        said = MessageIn(from_id=sender, content=str(n), reply_to=last.message_id)
        last = await bus.send_message(sender, topic, said)
    # 10 ms apart, well within 2 s of each other however long the sends took on a busy machine.
    async with deps.db.session() as session:
        rows = await session.scalars(
            select(DiscussionMessage)
            .where(DiscussionMessage.discussion_id == first.discussion_id)
            .order_by(DiscussionMessage.created_at, DiscussionMessage.id)
        )
        start = datetime.now(UTC)
        for n, row in enumerate(rows.all()):
            row.created_at = start + timedelta(milliseconds=10 * n)
        await session.commit()
    async with Client(_server(deps, ann)) as as_ann:
        found = await call(as_ann, "detect_anomalies", discussion_id=first.discussion_id)
        changed = await call(as_ann, "annotate_discussion", discussion_id=first.discussion_id)
    assert found["count"] == 129 and len(found["anomalies"]) == 100
    assert changed["count"] >= 129 and len(changed["changed"]) == 100


async def test_an_id_longer_than_any_discussion_id_is_refused_by_name_not_echoed(
    deps: WorkerDeps,
) -> None:
    """A 100 KB discussion id went to the database and came back whole: the API's 404 and the
    tool error quoted all of it, and the reply form redirected to a link holding it."""
    di = unique("long-di")
    tokens = await _users(deps, di)
    huge = "d" * 100_000
    async with Client(_server(deps, di)) as as_di:
        said = await refused(as_di, "read_discussion", discussion_id=huge)
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base) as http,
    ):
        # httpx refuses to send a URL over 64 KB: the API and the page get 1,000 characters.
        api = await http.get(f"/discussions/{'d' * 1000}", headers=as_bearer(tokens[di]))
        page = await http.post(
            "/app/discussions/post",
            data={"discussion_id": huge, "content": "hi", "message_id": "m1"},
            cookies={"ambient_token": tokens[di]},
            headers={"referer": f"{base}/app/discussions"},
        )
    assert "discussion_id: at most 64 characters" in said and len(said) < 300, said[:300]
    assert api.status_code == 422, api.text[:300]
    assert api.json()["detail"][0]["loc"] == ["path", "discussion_id"], api.text[:300]
    assert len(api.text) < 500, api.text[:300]
    assert page.status_code == 303 and len(page.headers["location"]) < 300, page.headers
    assert page.headers["location"].startswith("/app/discussions?"), page.headers


def as_bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_overlong_reply_to_or_device_reference_is_not_quoted_back_whole(
    deps: WorkerDeps,
) -> None:
    """A 100 KB reply_to came back whole in "reply_to: no message '...'"; a 30 KB device
    reference in the API's "no device '...'"."""
    ed = unique("long-ed")
    tokens = await _users(deps, ed)
    async with Client(_server(deps, ed)) as as_ed:
        said = await refused(
            as_ed, "send_message", from_id=ed, topic=f"t {ed}", content="c", reply_to="m" * 100_000
        )
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base) as http,
    ):
        gone = await http.delete(f"/xiaozhi/devices/{'z' * 30_000}", headers=as_bearer(tokens[ed]))
        allowed = await http.post(
            f"/xiaozhi/devices/{'z' * 30_000}/allow", headers=as_bearer(tokens[ed])
        )
    assert "reply_to: String should have at most 64 characters" in said, said[:300]
    assert len(said) < 300, said[:300]
    for answer in (gone, allowed):
        assert answer.status_code == 404 and len(answer.text) < 300, answer.text[:300]


async def test_an_overlong_topic_is_refused_before_its_plain_form_is_made(
    deps: WorkerDeps,
) -> None:
    """The topic's key (NFKC, case folded) was made before its length was checked: 'ﷺ' is 18
    characters of it, so a 1,000,000-character topic built an 18-million-character key (some
    seconds of the API's event loop and 373 MB at its peak, for a 3 MB body) only to refuse it."""
    import tracemalloc

    from ambient.discussions.views import InvalidDiscussionError

    ann = unique("long-topic")
    await _users(deps, ann)
    bus = DiscussionService(deps.db, deps.settings)
    topic = "\ufdfa" * 1_000_000
    tracemalloc.start()
    try:
        await bus.send_message(ann, topic, MessageIn(from_id=ann, content="hi"))
    except InvalidDiscussionError as exc:
        refusal = str(exc)
    else:
        raise AssertionError("an overlong topic was posted")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert refusal == "topic: 1-300 characters"
    assert peak < 10_000_000, peak  # the topic itself is 2 MB in memory; its key was 36+


async def test_a_plain_reply_in_a_long_thread_does_not_read_the_whole_thread(
    deps: WorkerDeps,
) -> None:
    """Every reply loaded every message of its discussion (to look for a fast answer, which
    matters only for an approve, refuse or abort in a remediation's discussion): a reply in a
    thread of 1,000 long messages read all 20 MB of them."""
    import tracemalloc
    from datetime import UTC, datetime, timedelta

    from ambient.storage.models import DiscussionMessage

    ann = unique("thread-ann")
    await _users(deps, ann)
    bus = DiscussionService(deps.db, deps.settings)
    opened = await bus.send_message(ann, f"bot log {ann}", MessageIn(from_id=ann, content="start"))
    start = datetime.now(UTC) - timedelta(days=1)
    async with deps.db.session() as session:
        session.add_all(
            DiscussionMessage(
                id=f"{ann}-{n}",
                discussion_id=opened.discussion_id,
                from_id=ann,
                content="x" * 20_000,
                tags=[],
                source_type="real",
                created_at=start + timedelta(seconds=n),
            )
            for n in range(1_000)
        )
        await session.commit()
    tracemalloc.start()
    try:
        reply = MessageIn(from_id=ann, content="still going")
        posted = await bus.reply_message(ann, opened.discussion_id, reply)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert posted.action is None
    assert peak < 5_000_000, peak  # the thread is 20 MB of text


async def test_a_page_of_long_messages_is_cut_by_size_and_paging_on_reads_each_once(
    deps: WorkerDeps,
) -> None:
    """120 messages of 3,000 characters were one page of 100: 313 KB of text, past what an
    agent keeps (our own chat cuts a tool's text at 20,000), next_offset at its very end."""
    eve = unique("big-eve")
    await _users(deps, eve)
    bus = DiscussionService(deps.db, deps.settings)
    body = "The checkout service returned 5xx after the deploy. " * 60
    sent = [f"#{n} {body}"[:3000] for n in range(120)]
    first = await bus.send_message(eve, f"pm {eve}", MessageIn(from_id=eve, content=sent[0]))
    for content in sent[1:]:
        await bus.send_message(eve, f"pm {eve}", MessageIn(from_id=eve, content=content))
    read, pages, offset = [], 0, 0
    async with Client(_server(deps, eve)) as as_eve:
        while offset is not None:
            args = {"discussion_id": first.discussion_id, "offset": offset}
            answer = await as_eve.call_tool("read_discussion", args)
            assert not answer.is_error and answer.structured_content, answer.content
            page, text = answer.structured_content, answer.content[0].text  # type: ignore[union-attr]
            size = sum(len(m["content"]) for m in page["messages"])
            assert 0 < size <= reading.PAGE_CHARS and page["messages"], size
            # Where the next page starts is said before the messages (a cut text keeps it).
            assert re.search(r'"next_offset".*"messages": ?\[', text, re.S), text[:400]
            read += [m["content"] for m in page["messages"]]
            offset, pages = page["next_offset"], pages + 1
        found, at = [], 0
        while at is not None:
            hits = await call(as_eve, "search_messages", keyword="checkout", offset=at)
            assert sum(len(m["content"]) for m in hits["results"]) <= reading.PAGE_CHARS
            found += [m["content"] for m in hits["results"]]
            at = hits["next_offset"]
    assert read == sent and pages > 2
    assert found == sent[::-1]


async def test_a_limit_sizes_the_pages_of_read_discussion_and_search_messages(
    deps: WorkerDeps,
) -> None:
    fay = unique("limit-fay")
    await _users(deps, fay)
    bus = DiscussionService(deps.db, deps.settings)
    first = await bus.send_message(fay, f"lim {fay}", MessageIn(from_id=fay, content="hit 0"))
    for n in range(1, 12):
        await bus.send_message(fay, f"lim {fay}", MessageIn(from_id=fay, content=f"hit {n}"))
    did = first.discussion_id
    async with Client(_server(deps, fay)) as as_fay:
        page = await call(as_fay, "read_discussion", discussion_id=did, limit=5)
        rest = await call(as_fay, "read_discussion", discussion_id=did, offset=10, limit=5)
        hits = await call(as_fay, "search_messages", keyword="hit", limit=3)
        wrong = [
            await refused(as_fay, "read_discussion", discussion_id=did, limit=n) for n in (0, 101)
        ]
    assert [m["content"] for m in page["messages"]] == [f"hit {n}" for n in range(5)]
    assert page["next_offset"] == 5
    assert [m["content"] for m in rest["messages"]] == ["hit 10", "hit 11"]
    assert rest["next_offset"] is None
    assert [m["content"] for m in hits["results"]] == ["hit 11", "hit 10", "hit 9"]
    assert hits["next_offset"] == 9
    assert all("limit" in said for said in wrong), wrong
