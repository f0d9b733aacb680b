"""The polls' group commit: many checks in one transaction, each check all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import TextClause
from temporalio.testing import ActivityEnvironment

from activities import polling
from activities.deliveries import Recipient
from activities.notify import NotifyActivities
from activities.polling import PagePoller
from ambient.clients.web import WebFetcher
from ambient.deps import WorkerDeps
from ambient.domain.notify import Message, NotificationKind
from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.models import Delivery, Event, InboxMessage
from ambient.storage.polls import WatchPoll, WatchSnapshot
from ambient.storage.users import UserRepository
from ambient.watches import poll_store
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.poll_store import InboxCopy, NewEvent, PageText, PollWrite, PollWriter
from ambient.watches.polling import PollEnd, PollRequest
from tests.support.servers import serve
from tests.watches.site import Site, article


async def _user(db: Database, name: str = "ann") -> None:
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name=name))
        await session.commit()


def _check(
    i: int,
    *,
    key: str | None = None,
    last: str | None = None,
    new: str = "h1",
    text: str = "one",
    seen: list[str | None] | None = None,
) -> PollWrite:
    """Check i of watch i: its page has text `text` (hash `new`), compared with `last`."""

    def events(old: str | None) -> list[NewEvent]:
        if seen is not None:
            seen.append(old)
        event_key = key or f"w{i}/life/poll/1"
        message = Message(title=f"page {i} changed", body=old or "", kind=NotificationKind.WATCH)
        copy = InboxCopy(message=message, delivery_key=f"{event_key}/inbox", shown_target="inbox")
        return [NewEvent(seq=1, kind="watch.change", key=event_key, payload={"i": i}, inbox=copy)]

    return PollWrite(
        poll=f"w{i}",
        life="life",
        user="ann",
        task=f"w{i}",
        seq=0,
        urls={"https://example.com/": {"hash": new}},
        events=events,
        page=PageText("https://example.com/", last, new, text),
    )


async def _all(db: Database, model: Any) -> list[Any]:
    async with db.session() as session:
        return list((await session.execute(select(model))).scalars())


async def test_checks_of_many_polls_are_committed_in_one_transaction(db: Database) -> None:
    await _user(db)
    writer = PollWriter(db, linger=0.05)
    committed: list[int] = []  # the checks of each transaction committed
    commit = writer._commit

    async def counted(batch: list[PollWrite]) -> list[list[NewEvent]]:
        results = await commit(batch)
        committed.append(len(batch))
        return results

    writer._commit = counted  # type: ignore[method-assign]
    results = await asyncio.gather(*(writer.write(_check(i)) for i in range(40)))
    assert [r[0].key for r in results] == [f"w{i}/life/poll/1" for i in range(40)]
    assert committed == [40]
    events = {e.idempotency_key: e for e in await _all(db, Event)}
    assert set(events) == {f"w{i}/life/poll/1" for i in range(40)}
    inbox = {m.id: m for m in await _all(db, InboxMessage)}
    deliveries = await _all(db, Delivery)
    assert len(inbox) == len(deliveries) == 40
    for delivery in deliveries:  # each delivery row names its own message
        i = int(delivery.key.split("/")[0][1:])
        assert inbox[int(delivery.provider_id)].title == f"page {i} changed"
        assert (delivery.status, delivery.channel, delivery.task) == ("sent", "inbox", f"w{i}")
    marks = {m.task: (m.life, m.seq) for m in await _all(db, WatchPoll)}
    assert marks == {f"w{i}": ("life", 1) for i in range(40)}


async def test_a_check_from_an_older_mark_never_sets_the_watchs_last_event_back(
    db: Database,
) -> None:
    # Two polls of one watch overlapping a moment (a slow attempt a sweep failed): one stored
    # event 1; the other, which read the mark before it, stored a check without one. The mark
    # went back to 0: every later event of the watch took number 1 again (refused as taken),
    # and a resumed poll never took event 1.
    await _user(db)
    writer = PollWriter(db, linger=0.01)
    await writer.write(_check(0))
    quiet = PollWrite(
        poll="w0", life="life", user="ann", task="w0", seq=0, urls={}, events=lambda _: []
    )
    await writer.write(quiet)
    assert {m.task: m.seq for m in await _all(db, WatchPoll)} == {"w0": 1}


async def test_a_page_keeps_its_last_and_new_text_and_a_text_seen_again_is_newest(
    db: Database,
) -> None:
    await _user(db)
    writer = PollWriter(db, linger=0.01)
    seen: list[str | None] = []
    await writer.write(_check(1, key="a", new="A", text="text A", seen=seen))
    await writer.write(_check(1, key="b", last="A", new="B", text="text B", seen=seen))
    await writer.write(_check(1, key="c", last="B", new="C", text="text C", seen=seen))
    snapshots = {s.hash: s for s in await _all(db, WatchSnapshot)}
    assert set(snapshots) == {"B", "C"}  # A was dropped with the third text
    await writer.write(_check(1, key="d", last="C", new="B", text="text B", seen=seen))
    snapshots = {s.hash: s for s in await _all(db, WatchSnapshot)}
    assert set(snapshots) == {"B", "C"}
    assert snapshots["B"].created_at >= snapshots["C"].created_at  # B is the newest again
    await writer.write(_check(1, key="e", last="gone", new="D", text="text D", seen=seen))
    assert seen == [None, "text A", "text B", "text C", ""]  # "": the old text is gone


def _write_beside(db: Database, sql: str, *args: Any) -> None:
    """A write by another connection that waits for no lock (SQLite: fails if one is held)."""
    path = db.engine.url.database
    assert path is not None
    with contextlib.closing(sqlite3.connect(path, timeout=0)) as other, other:
        other.execute(sql, args)


# A page big enough to be compared outside the transaction.
BIG = "a line of a long page\n" * (poll_store.OFF_LOOP_CHARS // 20)


async def test_a_big_changed_page_is_compared_outside_the_write_transaction(
    db: Database,
) -> None:
    # A diff and its keywords ran inside the writer's transaction: on SQLite under the
    # write lock, so a 100,000-line page held every writer of every process for seconds.
    await _user(db)
    writer = PollWriter(db, linger=0.01)
    await writer.write(_check(1, key="a", new="A", text="text A"))
    check = _check(1, key="b", last="A", new="B", text=BIG)
    compare = check.events

    def events(old: str | None) -> list[NewEvent]:
        # Another process's write goes through while the check is compared.
        _write_beside(db, "UPDATE users SET language = language WHERE name = ?", "ann")
        return compare(old)

    check.events = events
    stored = await writer.write(check)
    assert stored[0].key == "b" and stored[0].inbox is not None
    assert stored[0].inbox.message.body == "text A"


async def test_a_big_page_stored_again_while_its_check_was_compared_is_compared_again(
    db: Database,
) -> None:
    await _user(db)
    writer = PollWriter(db, linger=0.01)
    await writer.write(_check(1, key="a", new="A", text="text A"))
    seen: list[str | None] = []
    check = _check(1, key="b", last="A", new="B", text=BIG, seen=seen)
    compare = check.events

    def events(old: str | None) -> list[NewEvent]:
        if not seen:  # the first comparison: the page's text A is stored again meanwhile
            _write_beside(db, "UPDATE watch_snapshots SET id = id + 100, text = ?", "text A2")
        return compare(old)

    check.events = events
    stored = await writer.write(check)
    assert seen == ["text A", "text A2"]
    assert stored[0].inbox is not None and stored[0].inbox.message.body == "text A2"
    assert {s.hash for s in await _all(db, WatchSnapshot)} == {"A", "B"}


async def test_a_check_that_cannot_be_stored_fails_alone(db: Database) -> None:
    await _user(db)
    writer = PollWriter(db, linger=0.01)
    await writer.write(_check(0, key="taken"))
    outcomes = await asyncio.gather(
        *(writer.write(_check(i, key="taken" if i == 3 else None)) for i in range(1, 8)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], IntegrityError)  # watch 3's key is another event's
    assert all(isinstance(o, list) for i, o in enumerate(outcomes) if i != 2)
    keys = {e.idempotency_key for e in await _all(db, Event)}
    assert keys == {"taken"} | {f"w{i}/life/poll/1" for i in (1, 2, 4, 5, 6, 7)}
    marks = {m.task for m in await _all(db, WatchPoll)}
    assert "w3" not in marks  # nothing of watch 3's check: no mark, no text, no message
    assert "w3" not in {s.task for s in await _all(db, WatchSnapshot)}
    assert len(await _all(db, InboxMessage)) == 7


async def test_a_check_given_up_before_its_batch_is_not_written(db: Database) -> None:
    await _user(db)
    writer = PollWriter(db, linger=0.2)
    gone = asyncio.create_task(writer.write(_check(1)))
    kept = asyncio.create_task(writer.write(_check(2)))
    await asyncio.sleep(0.05)
    gone.cancel()
    assert (await kept)[0].key == "w2/life/poll/1"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert {e.idempotency_key for e in await _all(db, Event)} == {"w2/life/poll/1"}


class CountingNotify(NotifyActivities):
    """The real notifier, counting how often a user's push settings are read."""

    reads = 0

    async def recipient(self, name: str) -> Recipient:
        self.reads += 1
        return await super().recipient(name)


async def test_polls_of_one_user_share_one_read_of_their_push_settings(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _user(deps.db)
    notify = CountingNotify(deps.db, deps.channels)
    poller = PagePoller(deps.db, WebFetcher(), notify)
    got = await asyncio.gather(*(poller.recipient("ann") for _ in range(20)))
    assert notify.reads == 1 and all(r.exists for r in got)
    await poller.recipient("bob")  # another user: read on its own (and not there)
    assert notify.reads == 2 and not (await poller.recipient("bob")).exists
    monkeypatch.setattr(polling, "RECIPIENT_TTL", 0.0)  # a minute later: read again
    await poller.recipient("ann")
    assert notify.reads == 3


async def test_a_check_of_many_changed_pages_waits_one_linger_not_one_a_page(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll stores its checks one at a time: each waited a linger of its own, so a watch of
    six pages took six lingers to take its baseline (3 s at 0.5 s: the whole heartbeat
    timeout of a test's poll, which Temporal then retried with backoff)."""
    await _user(deps.db)
    site = Site()
    paths = [f"/page-{i}" for i in range(6)]
    for path in paths:
        site.pages[path] = article(f"The page at {path}.")
    notify = NotifyActivities(deps.db, deps.channels)
    poller = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notify)
    poller.writer.linger = 1.5
    lingered = []  # lingers that ran out: their timer woke the writer, no hurry() in a task
    wake = poll_store.wake

    def counted(nap: asyncio.Future[None]) -> None:
        if not nap.done() and asyncio.current_task() is None:
            lingered.append(nap)
        wake(nap)

    monkeypatch.setattr(poll_store, "wake", counted)
    async with serve(site.app()) as base:
        urls = [f"{base}{path}" for path in paths]
        config = WebMonitorConfig.model_validate({"urls": urls, "check_interval_minutes": 1})
        request = PollRequest(
            user="ann",
            task="w-many",
            workflow_id="w-many",
            life="life",
            config=config,
            targets=[],
            interval_seconds=60.0,
            window_seconds=3600.0,
            first_only=True,
        )
        result = await ActivityEnvironment().run(poller.poll_pages, request)
    assert result.ended is PollEnd.FIRST and result.checks == 1
    assert sorted(result.urls) == sorted(urls) and all(s.hash for s in result.urls.values())
    assert sorted(s.url for s in await _all(deps.db, WatchSnapshot)) == sorted(urls)
    # The last page's linger (for other polls' checks to join) and six commits, not six
    # lingers: counted, not timed (a busy machine stretches a linger, not their number).
    assert len(lingered) == 1, len(lingered)


async def test_the_writers_statements_are_built_once_not_per_transaction(db: Database) -> None:
    """Building a statement (and its cache key) cost ~0.2 ms a transaction; a process's
    transactions run the same ones."""
    await _user(db)
    writer = PollWriter(db, linger=0.01)
    statements: list[list[Any]] = []  # the statements themselves: an id can be reused

    def executed(conn: Any, statement: Any, *args: Any) -> None:
        if not isinstance(statement, TextClause):  # the write session's BEGIN IMMEDIATE
            statements[-1].append(statement)

    event.listen(db.engine.sync_engine, "before_execute", executed)
    try:
        for i in range(2):
            statements.append([])
            await writer.write(_check(i, new=f"h{i}", text=f"text {i}"))
    finally:
        event.remove(db.engine.sync_engine, "before_execute", executed)
    assert len(statements[0]) >= 5  # the page's text, its event, inbox copy, delivery, mark
    assert all(a is b for a, b in zip(*statements, strict=True))
