"""Concurrent posts on PostgreSQL, where writers do not queue as on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from sqlalchemy import select, text

from ambient.discussions.rules import MessageIn
from ambient.discussions.service import DiscussionService
from ambient.discussions.views import (
    DiscussionClosedError,
    DiscussionNotFoundError,
    InvalidDiscussionError,
)
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import DiscussionMessage
from ambient.storage.users import UserRepository
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture

T = TypeVar("T")


async def test_the_same_message_sent_at_once_twice_is_posted_once_both_answered(
    pg: Database, settings: Settings
) -> None:
    async with pg.session() as session:
        await UserRepository(session).create(UserCreate(name="pg-ann"))
        await session.commit()
    service = DiscussionService(pg, settings)
    for n in range(8):
        # A client that timed out and retried, both tries in flight: one message, one answer
        # each, no 500. The first post of a person (their participant row) is raced too.
        message = MessageIn(from_id="pg-ann", content=f"disk {n} full", message_id=f"m-{n}")
        answers = await asyncio.gather(
            *(service.send_message("pg-ann", f"disk {n}", message) for _ in range(3))
        )
        assert len({a.message_id for a in answers}) == 1
        assert len({a.discussion_id for a in answers}) == 1
        assert sorted(a.already_posted for a in answers) == [False, True, True]
    reply = MessageIn(from_id="pg-ann", content="freed", message_id="m-reply")
    answers = await asyncio.gather(
        *(service.reply_message("pg-ann", answers[0].discussion_id, reply) for _ in range(3))
    )
    assert sorted(a.already_posted for a in answers) == [False, True, True]
    async with pg.session() as session:
        stored = list(await session.scalars(select(DiscussionMessage.client_id)))
    assert sorted(stored) == [f"m-{n}" for n in range(8)] + ["m-reply"]


async def test_store_bytes_counts_utf8_bytes_on_postgresql(
    pg: Database, settings: Settings
) -> None:
    async with pg.session() as session:
        await UserRepository(session).create(UserCreate(name="pg-bytes"))
        await session.commit()
    service = DiscussionService(pg, settings)
    content = "磁盘满了 C:\\data"  # a backslash is a character, not a bytea escape
    await service.send_message("pg-bytes", "磁盘", MessageIn(from_id="pg-bytes", content=content))
    assert (await service.get_stats("pg-bytes")).store_bytes == len(content.encode())


async def test_different_messages_at_once_on_a_new_topic_open_one_discussion(
    pg: Database, settings: Settings
) -> None:
    async with pg.session() as session:
        await UserRepository(session).create(UserCreate(name="pg-topic"))
        await session.commit()
    service = DiscussionService(pg, settings)
    for n in range(5):
        # The voice and a chat window posting on the same new topic at once: one thread.
        answers = await asyncio.gather(
            *(
                service.send_message(
                    "pg-topic", f"node {n} down", MessageIn(from_id="pg-topic", content=said)
                )
                for said in ("it is down", "since 9:00", "paging ops")
            )
        )
        assert len({a.discussion_id for a in answers}) == 1, answers
        assert sum(a.created_discussion for a in answers) == 1


async def test_a_nul_in_what_is_looked_up_is_refused_by_name_on_postgresql(
    pg: Database, settings: Settings
) -> None:
    async with pg.session() as session:
        await UserRepository(session).create(UserCreate(name="pg-nul"))
        await session.commit()
    service = DiscussionService(pg, settings)
    with pytest.raises(InvalidDiscussionError, match=r"^keyword: .*NUL"):
        await service.search_messages("pg-nul", "disk\x00full")
    for look_up in (
        service.read_discussion("pg-nul", "disc_\x00"),
        service.detect_anomalies("pg-nul", "disc_\x00"),
        service.close_discussion("pg-nul", "disc_\x00"),
        service.reply_message("pg-nul", "disc_\x00", MessageIn(from_id="pg-nul", content="hi")),
    ):
        with pytest.raises(DiscussionNotFoundError):
            await look_up


async def test_a_topic_whose_plain_form_outgrows_its_column_is_refused_by_name(
    pg: Database, settings: Settings
) -> None:
    """A topic is joined by its plain form (NFKC, case folded), which can be longer than what
    was typed: 20 characters of 'ﷺ' are 360 of its key, and PostgreSQL refused the row
    (value too long for character varying(300)), an HTTP 500 and a tool crash."""
    async with pg.session() as session:
        await UserRepository(session).create(UserCreate(name="pg-ivy"))
        await session.commit()
    service = DiscussionService(pg, settings)
    message = MessageIn(from_id="pg-ivy", content="hello")
    with pytest.raises(InvalidDiscussionError) as refused:
        await service.send_message("pg-ivy", "\ufdfa" * 20, message)
    assert str(refused.value).startswith("topic: ")
    async with pg.session() as session:
        ivy = select(DiscussionMessage.id).where(DiscussionMessage.from_id == "pg-ivy")
        assert list(await session.scalars(ivy)) == []
    # ß folds to ss: the key may be longer than the topic, and still fit.
    posted = await service.send_message("pg-ivy", "ß" * 150, message)
    assert posted.created_discussion is True


async def _waiting_on_a_lock(pg: Database) -> None:
    """Until some other statement waits for a row lock (the close holds it)."""
    while True:
        async with pg.session() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.01)  # polled: the wait condition is the other statement's lock


async def _behind_a_close(
    pg: Database, discussion_id: str, call: Awaitable[T]
) -> asyncio.Future[T]:
    """``call`` started while a close of the discussion is in flight (its row lock held until
    it commits, once ``call`` waits on that lock): ``call``, still running."""
    async with pg.session() as closing:
        await closing.execute(
            text("UPDATE discussions SET status = 'closed' WHERE id = :id"), {"id": discussion_id}
        )
        running = asyncio.ensure_future(call)
        await _waiting_on_a_lock(pg)
        await closing.commit()
    return running


async def test_a_reply_or_post_racing_a_close_is_not_stored_in_the_closed_discussion(
    pg: Database, settings: Settings
) -> None:
    """A reply read the discussion open while someone was closing it: it was stored after the
    close (the closed thread shows it; its sender was told 'posted'), and a post on the topic
    joined the closed discussion instead of opening a new one."""
    async with pg.session() as session:
        await UserRepository(session).create(UserCreate(name="pg-cleo"))
        await session.commit()
    service = DiscussionService(pg, settings)
    opened = await service.send_message(
        "pg-cleo", "db failover", MessageIn(from_id="pg-cleo", content="failing over")
    )
    for late in (
        lambda: service.reply_message(
            "pg-cleo", opened.discussion_id, MessageIn(from_id="pg-cleo", content="late reply")
        ),
        lambda: service.send_message(
            "pg-cleo", "db failover", MessageIn(from_id="pg-cleo", content="late post")
        ),
    ):
        posting = await _behind_a_close(pg, opened.discussion_id, late())
        try:
            posted = await posting
        except DiscussionClosedError:  # the reply: as after the close
            pass
        else:  # the post: on a discussion of its own
            assert posted.discussion_id != opened.discussion_id
            assert posted.created_discussion is True
        async with pg.session() as session:  # opened again for the next try
            await session.execute(
                text("UPDATE discussions SET status = 'open' WHERE id = :id"),
                {"id": opened.discussion_id},
            )
            await session.commit()
    async with pg.session() as session:
        in_closed = select(DiscussionMessage.content).where(
            DiscussionMessage.discussion_id == opened.discussion_id
        )
        assert list(await session.scalars(in_closed)) == ["failing over"]


async def test_two_closes_at_once_answer_one_closed_one_already_closed(
    pg: Database, settings: Settings
) -> None:
    """A close read the discussion open while another close was committing: both answered
    already_closed=false, as if each had closed it."""
    async with pg.session() as session:
        await UserRepository(session).create(UserCreate(name="pg-dora"))
        await session.commit()
    service = DiscussionService(pg, settings)
    opened = await service.send_message(
        "pg-dora", "cert expiry", MessageIn(from_id="pg-dora", content="renewed")
    )
    second = await _behind_a_close(
        pg, opened.discussion_id, service.close_discussion("pg-dora", opened.discussion_id)
    )
    assert (await second).already_closed is True
