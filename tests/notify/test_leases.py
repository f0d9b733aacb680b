"""Delivery as leases, bounded concurrency, per-target timeouts, failure classification."""

import asyncio
import contextlib
import dataclasses
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.deliveries import GIVE_UP_TRIES, GIVEN_UP, LEASE_MARGIN, RowPosts
from activities.notify import NotifyActivities
from activities.notify_target import IN_FLIGHT
from ambient.clients.notify.base import RENEW_EVERY, SEND_CLOCK, ChannelRegistry, SendClock
from ambient.clients.notify.errors import TransientNotifyError
from ambient.clients.notify.inbox import InboxChannel
from ambient.clients.notify.registry import build_channels
from ambient.clients.notify.robots import RateLimiter
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.wecom import WeComChannel
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target, redact_target
from ambient.domain.users import UserCreate
from ambient.setting_types import ServerSecret
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.db import SQLITE_POOL_SIZE, database_busy
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import Delivery, Event, InboxMessage
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.storage.users import UserRepository
from tests.conftest import running_worker, unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.notify.standins import WEBHOOK_SECRET, Mailbox, PushEndpoints
from tests.support.deliveries import left_in_flight
from tests.support.servers import serve
from tests.support.waits import eventually
from workflows.sends import NOTIFY_HEARTBEAT, NOTIFY_RETRY


def _settings(settings: Settings, base: str, **extra: object) -> Settings:
    return settings.model_copy(
        update={
            "webhook_signing_secret": SecretStr(WEBHOOK_SECRET),
            "fetch_allow_cidrs": ["127.0.0.1/32"],
            "secrets": {
                "hook": ServerSecret(value=SecretStr(f"{base}/hook"), users=["alice"]),
                "admin-hook": SecretStr(f"{base}/hook"),
            },
            **extra,
        }
    )


def _notify(deps: WorkerDeps, base: str, **extra: object) -> NotifyActivities:
    """The notify activities on deps, their channels built with _settings(deps.settings, base)."""
    settings = _settings(deps.settings, base, **extra)
    return NotifyActivities(deps.db, build_channels(settings, deps.db, deps.http))


async def _user(db: Database, name: str, **fields: object) -> None:
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name=name, **fields))  # type: ignore[arg-type]
        await session.commit()


def _request(key: str, *targets: Target, user: str = "alice") -> NotifyRequest:
    return NotifyRequest(
        user=user,
        message=Message(title="Disk 91%", body="node-3"),
        targets=list(targets),
        idempotency_key=key,
        task="disk-watch",
    )


async def _rows(db: Database, key: str) -> dict[str, Delivery]:
    async with db.session() as session:
        query = select(Delivery).where(Delivery.key.startswith(key))
        return {row.channel: row for row in (await session.execute(query)).scalars()}


def _last_retry_after_take() -> timedelta:
    """How long after a send took its row the last retry by NOTIFY_RETRY starts."""
    interval, last = NOTIFY_RETRY.initial_interval, NOTIFY_HEARTBEAT
    for _ in range((NOTIFY_RETRY.maximum_attempts or 1) - 1):
        last += interval
        interval *= NOTIFY_RETRY.backoff_coefficient
    return last


@contextlib.asynccontextmanager
async def _robot_after_its_minutes_message(
    deps: WorkerDeps, since: float, answers_after: float = 0
) -> AsyncIterator[tuple[WeComChannel, list[object], list[float]]]:
    """A WeCom robot (1 message a minute) that had this minute's message ``since`` seconds
    ago, user alice, and a channel to it: the channel, the robot's posts and the clock."""
    posts: list[object] = []

    async def robot(request: Request) -> Response:
        posts.append(await request.json())
        if answers_after:
            await asyncio.sleep(answers_after)  # the robot answers slowly
        return Response('{"errcode": 0}', media_type="application/json")

    now = [1000.0]
    limiter = RateLimiter(per_minute=1, clock=lambda: now[0])
    await limiter.acquire("wecom-key")  # this minute's message to the robot
    now[0] += since
    await _user(deps.db, "alice")
    async with serve(
        Starlette(routes=[Route("/cgi-bin/webhook/send", robot, methods=["POST"])])
    ) as base:
        yield WeComChannel(deps.http, SecretResolver({}), base, limiter=limiter), posts, now


async def test_a_pending_delivery_is_in_flight_until_its_lease_expires(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _user(deps.db, "alice")
    notify = _notify(deps, base)
    key = unique("lease")
    # Another attempt holds the lease: it may be sending right now.
    async with deps.db.session() as session:
        session.add(
            Delivery(
                key=f"{key}:webhook:secret:hook",
                user="alice",
                channel="webhook",
                target="secret:hook",
                status="pending",
                attempts=1,
                lease_until=datetime.now(UTC) + timedelta(minutes=5),
            )
        )
        await session.commit()
    with pytest.raises(ApplicationError, match="in flight") as raised:
        await ActivityEnvironment().run(
            notify.notify, _request(key, Target(type="webhook", target="secret:hook"))
        )
    assert raised.value.type == "TransientNotifyError" and not raised.value.non_retryable
    assert state.received == []
    # The holder died: once its lease expires, a retry takes the row over and sends once.
    async with deps.db.session() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.key.startswith(key))
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    result = await ActivityEnvironment().run(
        notify.notify, _request(key, Target(type="webhook", target="secret:hook"))
    )
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert [name for name, _ in state.received] == ["webhook"]
    row = (await _rows(deps.db, key))["webhook"]
    assert (row.status, row.attempts, row.lease_until) == ("sent", 2, None)


async def test_targets_are_sent_at_the_same_time(deps: WorkerDeps) -> None:
    """Both requests must be open at once for either to be answered."""
    arrived: list[str] = []
    both = asyncio.Event()

    async def hook(request: Request) -> Response:
        arrived.append(request.url.path)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)
        return Response("ok")

    app = Starlette(
        routes=[Route("/a", hook, methods=["POST"]), Route("/b", hook, methods=["POST"])]
    )
    await _user(deps.db, "alice")
    async with serve(app) as base:
        notify = _notify(deps, base, notify_target_timeout=5.0)
        result = await ActivityEnvironment().run(
            notify.notify,
            _request(
                unique("both"),
                Target(type="webhook", target=f"{base}/a"),
                Target(type="webhook", target=f"{base}/b"),
            ),
        )
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT, DeliveryStatus.SENT]
    assert sorted(arrived) == ["/a", "/b"]


async def test_a_slow_target_is_cut_off_and_retried_while_the_others_are_sent(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _user(deps.db, "alice")
    # Not 0.5 s: the inbox's write must fit it too, and a loaded host's took longer.
    notify = _notify(deps, base, notify_target_timeout=3.0)
    state.failures["webhook"] = ["timeout"]  # answers once the client left
    key = unique("slow")
    heartbeats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    with pytest.raises(ApplicationError, match=r"webhook: transient: no answer within 3s"):
        await env.run(
            notify.notify,
            _request(key, Target(type="webhook", target="secret:hook"), Target(type="inbox")),
        )
    assert heartbeats  # the activity heartbeats while it sends
    rows = await _rows(deps.db, key)
    assert rows["inbox"].status == "sent" and rows["webhook"].status == "failed"
    again = await ActivityEnvironment().run(
        notify.notify,
        _request(key, Target(type="webhook", target="secret:hook"), Target(type="inbox")),
    )
    assert {d.channel: d.status for d in again.deliveries} == {
        "webhook": DeliveryStatus.SENT,
        "inbox": DeliveryStatus.DUPLICATE,
    }


async def test_permanent_failures_are_returned_and_visible_as_events(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _user(deps.db, "alice", email="alice@example.com")
    await _user(deps.db, "bob")
    notify = _notify(deps, base)
    key = unique("perm")
    result = await ActivityEnvironment().run(
        notify.notify,
        _request(
            key,
            Target(type="email"),
            Target(type="webhook", target="http://127.0.0.2:9/hook?token=s3cret"),
            Target(type="inbox", target="bob"),
            Target(type="webhook", target="secret:admin-hook"),
            Target(type="webhook", target="secret:hook"),
        ),
    )
    by_target = {(d.channel, d.target): d for d in result.deliveries}
    assert by_target[("email", "alice@example.com")].error == (
        "permanent: email is not configured: set AMBIENT_SMTP_HOST"
    )
    refused = by_target[
        ("webhook", redact_target("webhook", "http://127.0.0.2:9/hook?token=s3cret"))
    ]
    assert refused.status == DeliveryStatus.FAILED and "loopback" in (refused.error or "")
    assert "not 'bob'" in (by_target[("inbox", "bob")].error or "")
    assert "not available to alice" in (by_target[("webhook", "secret:admin-hook")].error or "")
    assert by_target[("webhook", "secret:hook")].status == DeliveryStatus.SENT
    assert [name for name, _ in state.received] == ["webhook"]
    async with deps.db.session() as session:
        events = list(
            (await session.execute(select(Event).where(Event.kind == "delivery.failed"))).scalars()
        )
        bob_inbox = list(
            (
                await session.execute(select(InboxMessage).where(InboxMessage.user == "bob"))
            ).scalars()
        )
    assert bob_inbox == []
    errors = {e.payload["error"] for e in events}
    assert "email is not configured: set AMBIENT_SMTP_HOST" in errors
    assert all(e.user == "alice" and e.task == "disk-watch" for e in events) and len(events) == 4
    assert not any("s3cret" in str(e.payload) for e in events)


async def test_an_admin_may_use_an_admin_only_secret(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    _, base = endpoints
    await _user(deps.db, "root", role="admin")
    notify = _notify(deps, base)
    result = await ActivityEnvironment().run(
        notify.notify,
        _request(unique("adm"), Target(type="webhook", target="secret:admin-hook"), user="root"),
    )
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]


async def test_an_email_target_is_an_address_never_a_secret(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    # Email resolves no secrets: `secret:admin-hook` went out as `RCPT TO:<admin-hook>` (a
    # relay may deliver that to a local mailbox) and its row said sent.
    _, base = endpoints
    await _user(deps.db, "root", role="admin")
    with Mailbox() as box:
        notify = _notify(deps, base, smtp_host="127.0.0.1", smtp_port=box.port, smtp_tls="none")
        email = Target(type="email", target="secret:admin-hook")
        result = await ActivityEnvironment().run(
            notify.notify, _request(unique("mail"), email, user="root")
        )
    assert [d.status for d in result.deliveries] == [DeliveryStatus.FAILED]
    assert (result.deliveries[0].error or "").startswith("permanent:") and box.messages == []


class BrokenChannel:
    name = "webhook"

    async def send(
        self, user: str, message: Message, target: str, *, idempotency_key: str, posts: object
    ) -> None:
        raise TypeError("a bug in a channel")


async def test_a_programming_error_is_permanent_and_not_retried(deps: WorkerDeps) -> None:
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, ChannelRegistry([InboxChannel(deps.db), BrokenChannel()]))
    key = unique("bug")
    request = _request(key, Target(type="webhook", target="https://hooks.example.com/x"))
    first = await ActivityEnvironment().run(notify.notify, request)
    again = await ActivityEnvironment().run(notify.notify, request)
    for result in (first, again):
        (delivery,) = result.deliveries
        assert delivery.error == "permanent: internal error: TypeError: a bug in a channel"
    assert (await _rows(deps.db, key))["webhook"].attempts == 1


async def test_a_notification_for_an_unknown_user_fails_each_target_without_raising(
    deps: WorkerDeps,
) -> None:
    notify = NotifyActivities(deps.db, deps.channels)
    result = await ActivityEnvironment().run(
        notify.notify, _request(unique("ghost"), Target(type="inbox"), user="ghost")
    )
    (delivery,) = result.deliveries
    assert delivery.status == DeliveryStatus.FAILED
    assert (
        delivery.error
        == "permanent: no user 'ghost': an admin registers it (ambient user create ghost)"
    )


async def test_a_long_target_gets_a_stable_key_that_fits_its_column(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _user(deps.db, "alice")
    notify = _notify(deps, base)
    key = unique("long")
    target = Target(type="webhook", target=f"{base}/hook?pad={'a' * 1900}")
    first = await ActivityEnvironment().run(notify.notify, _request(key, target))
    again = await ActivityEnvironment().run(notify.notify, _request(key, target))
    assert [d.status for d in first.deliveries] == [DeliveryStatus.SENT]
    assert [d.status for d in again.deliveries] == [DeliveryStatus.DUPLICATE]
    row = (await _rows(deps.db, key))["webhook"]
    assert len(row.key) <= 255 and len(row.target) <= 512 and "aaaa" not in row.target
    assert [name for name, _ in state.received] == ["webhook"]


async def test_a_slow_send_heartbeats_through_a_short_heartbeat_timeout(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The endpoint answers after twice the heartbeat timeout; only heartbeats keep it alive."""
    from tests.notify.workflows import SendWithHeartbeatWorkflow

    async def slow(request: Request) -> Response:
        # Twice its 7 s (a webhook's own timeout is 15 s at most): the SDK sends a heartbeat
        # every 0.8 of it, so 1.4 s is the slack a loaded machine's heartbeat has (0.8 s at 4 s).
        await asyncio.sleep(14)
        return Response("ok")

    await _user(deps.db, "alice")
    async with serve(Starlette(routes=[Route("/slow", slow, methods=["POST"])])) as base:
        deps.settings = _settings(deps.settings, base, notify_target_timeout=40.0)
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        async with running_worker(
            ts_env.client, deps, workflows=[SendWithHeartbeatWorkflow]
        ) as worker:
            result = await ts_env.client.execute_workflow(
                SendWithHeartbeatWorkflow.run,
                _request(unique("beat"), Target(type="webhook", target=f"{base}/slow")),
                id=unique("beat"),
                task_queue=worker.task_queue,
            )
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]


async def test_a_database_with_no_connection_free_in_time_is_a_failure_to_retry(
    tmp_path: Path,
) -> None:
    """A burst (a dead worker's polls taken over at once) can use every pooled connection: a
    notification that waits past the pool's timeout is retried later, not failed for good as
    a bug (its change was once recorded as a delivery lost)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}")
    db.engine.sync_engine.pool._timeout = 0.2  # type: ignore[attr-defined]  # the wait, shortened
    notify = NotifyActivities(db, ChannelRegistry([InboxChannel(db)]))
    held = [db.session() for _ in range(SQLITE_POOL_SIZE)]
    try:
        for session in held:
            await session.connection()  # every pooled connection taken
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(notify.notify, _request(unique("busy")))
    finally:
        for session in held:
            await session.close()
        await db.close()
    assert raised.value.type == "TransientNotifyError" and not raised.value.non_retryable


async def test_a_database_connection_dropped_under_a_notification_is_a_failure_to_retry(
    postgres_url: str,  # noqa: F811  (the fixture)
) -> None:
    """PostgreSQL restarted (or failed over) between two notifications: the pooled connection
    the next one took was closed by the server, and the notification failed for good as a
    bug (non-retryable NotifyInternalError): its message was never sent. It is retried, and
    the retry sends it."""
    await upgrade_async(postgres_url)
    db = Database(postgres_url)
    # The pool replaces a closed connection at checkout (pre-ping): without it, this stands in
    # for one dropped after its check, under the notification's statements.
    db.engine.sync_engine.pool._pre_ping = False  # type: ignore[attr-defined]
    try:
        user = unique("pg")
        await _user(db, user)
        notify = NotifyActivities(db, ChannelRegistry([InboxChannel(db)]))
        inbox = Target(type="inbox")
        await ActivityEnvironment().run(notify.notify, _request(unique("n"), inbox, user=user))
        # The server ends every connection to the database (what a restart does to a pool).
        admin = Database(postgres_url)
        async with admin.session() as session:
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        await admin.close()
        key = unique("after-restart")
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(notify.notify, _request(key, inbox, user=user))
        assert raised.value.type == "TransientNotifyError" and not raised.value.non_retryable
        retried = await ActivityEnvironment().run(notify.notify, _request(key, inbox, user=user))
    finally:
        await db.close()
    assert [d.status for d in retried.deliveries] == [DeliveryStatus.SENT]


async def test_a_wait_for_the_robots_rate_limit_never_cuts_its_post_short(
    deps: WorkerDeps,
) -> None:
    # A WeCom robot had its minute's messages: the next send waits for a slot, then posts. The
    # wait is not the send's time: counted in it, the post was cut off after the robot got it,
    # so the retry posted the message to the group a second time.
    # The robot's next slot is 3 s away; it answers in 2 s, within its own timeout (4 s: room
    # for a loopback post on a loaded host).
    async with _robot_after_its_minutes_message(deps, 57.0, answers_after=2.0) as (
        wecom,
        posts,
        now,
    ):
        notify = NotifyActivities(deps.db, ChannelRegistry([wecom], target_timeout=4.0))
        request = _request(unique("robot-wait"), Target(type="wecom", target="wecom-key"))
        for _ in range(2):  # a try, and the retry Temporal makes of a transient failure
            with contextlib.suppress(ApplicationError):
                await notify.send(request, heartbeat=False)
            now[0] += 120
    assert len(posts) == 1


async def test_a_notifications_rows_are_read_by_their_key_not_all_the_users_rows(
    database_url: str,
) -> None:
    # Every try of every notification reads its rows: by the user's index, then the key's
    # prefix, it read all the user's deliveries (never purged: 74 ms at 200k rows in SQLite,
    # 55 ms in PostgreSQL, where LIKE cannot use the key's index under a linguistic collation).
    await upgrade_async(database_url)
    db = Database(database_url)
    statements: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, params: object, *rest: object) -> None:
        if "FROM deliveries" in statement:
            statements.append((statement, params))

    row = {"user": "alice", "channel": "inbox", "target": "", "status": "sent", "attempts": 1}
    try:
        async with db.session() as session:  # the user's history, known to the planner
            history = [{**row, "key": f"watch/disk/{n}:inbox:"} for n in range(3000)]
            await session.execute(insert(Delivery), history)
            await session.commit()
            await session.execute(text("ANALYZE"))
            await session.commit()
        event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        async with db.session() as session:
            await DeliveryRepository(session).under("alice", "watch/disk_%")
            statement, params = statements[-1]
            sqlite = db.engine.dialect.name == "sqlite"
            explain = "EXPLAIN QUERY PLAN" if sqlite else "EXPLAIN"
            connection = await session.connection()
            plan = await connection.exec_driver_sql(f"{explain} {statement}", params)  # type: ignore[arg-type]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        await db.close()
    steps = " ".join(str(row[-1]) for row in plan)
    assert "ix_deliveries_user" not in steps and "key" in steps, steps


async def test_an_inbox_delivery_is_written_sent_once_with_its_message(db: Database) -> None:
    """The inbox's message and its row sent are written in the claim's own transaction; the
    activity does not write the row again: each took a write turn of its own (a commit each in
    every remediation run's notice), and in a fan-out every write waits for its turn."""
    await _user(db, "alice")
    notify = NotifyActivities(db, ChannelRegistry([InboxChannel(db)]))
    key = unique("inbox-once")
    writes: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if statement.startswith(("BEGIN IMMEDIATE", "UPDATE deliveries")):
            writes.append(" ".join(statement.split()[:2]))

    def committed(conn: object) -> None:
        writes.append("COMMIT")

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    event.listen(db.engine.sync_engine, "commit", committed)
    try:
        result = await ActivityEnvironment().run(notify.notify, _request(key, Target(type="inbox")))
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        event.remove(db.engine.sync_engine, "commit", committed)
    rows = await _rows(db, key)
    async with db.session() as session:
        [message] = (await session.execute(select(InboxMessage))).scalars()
    assert [(d.status, d.provider_id) for d in result.deliveries] == [
        (DeliveryStatus.SENT, str(message.id))
    ]
    row = rows["inbox"]
    assert (row.status, row.provider_id, row.error, row.lease_until) == (
        "sent",
        str(message.id),
        None,
        None,
    )
    # One write turn: the claim, the message and its row sent.
    assert writes == ["BEGIN IMMEDIATE", "UPDATE deliveries", "COMMIT"], writes


class Accepting:
    name = "webhook"

    async def send(self, user: str, message: Message, target: str, **unused: object) -> None:
        return None


async def test_a_sends_clock_is_put_back_when_the_send_ends(deps: WorkerDeps) -> None:
    # The send's clock was left set after the send, an expired deadline for whatever that
    # context ran next.
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, ChannelRegistry([Accepting()]))
    target = Target(type="webhook", target="https://hooks.example.com/a")
    request, recipient = _request(unique("clock"), target), await notify.recipient("alice")
    posts = RowPosts(deps.db, "no-row", 0, attempt=1)
    sent = await notify._send(request, recipient, target, "no-row", posts)
    assert sent.status is DeliveryStatus.SENT and SEND_CLOCK.get() is None


async def test_a_send_whose_worker_died_is_taken_over_before_the_retries_run_out(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    # A worker died just after a send took its row; Temporal notices after the heartbeat
    # timeout and retries by NOTIFY_RETRY. The lease counted a robot's wait for its turn on
    # every channel (65 s): each retry met "in flight", the last too, and the webhook was
    # never delivered (given up).
    state, base = endpoints
    await _user(deps.db, "alice")
    notify = _notify(deps, base)
    request = _request(unique("died"), Target(type="webhook", target="secret:hook"))
    state.failures["webhook"] = ["timeout"]  # the send is under way when its worker dies
    dying = asyncio.create_task(notify.send(request, heartbeat=False))
    for _ in range(400):  # until the row is taken (the stand-in holds the post 2 s)
        if rows := await _rows(deps.db, request.idempotency_key):
            break
        await asyncio.sleep(0.005)
    dying.cancel()  # nothing of the try runs after: the row stays as taken
    with contextlib.suppress(asyncio.CancelledError):
        await dying
    # The last retry starts this long after the take (the worker died just after it).
    last = _last_retry_after_take()
    async with deps.db.session() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.key.startswith(request.idempotency_key))
            .values(lease_until=rows["webhook"].lease_until - last)  # type: ignore[operator]
        )
        await session.commit()
    result = await ActivityEnvironment().run(notify.notify, request)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]


async def waiting_for_a_turn() -> bool:
    """Whether a send of this loop waits for its robot's turn (its row taken before)."""
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        while coro is not None:
            if getattr(coro, "__qualname__", None) == SendClock.waits.__qualname__:
                return True
            coro = getattr(coro, "cr_await", None)
    return False


async def test_a_send_whose_worker_died_waiting_for_its_robots_turn_is_taken_over(
    deps: WorkerDeps,
) -> None:
    # A WeCom robot had its minute's messages; the next send waited 29 s for its slot and its
    # worker died at the start of the wait. The wait had moved the row's lease 29 s on at
    # once, past the last retry: each met "in flight", and the message was never sent.
    # The robot's next slot is 29 s away.
    async with _robot_after_its_minutes_message(deps, 31) as (wecom, posts, now):
        notify = NotifyActivities(deps.db, ChannelRegistry([wecom]))
        request = _request(unique("died-waiting"), Target(type="wecom", target="wecom-key"))
        dying = asyncio.create_task(notify.send(request, heartbeat=False))
        await eventually(waiting_for_a_turn, "the send took its row and waits for the robot")
        dying.cancel()  # the worker dies: nothing of the try runs after
        with contextlib.suppress(asyncio.CancelledError):
            await dying
        # The last retry runs this long after the take (as in the test above).
        last = _last_retry_after_take()
        row = (await _rows(deps.db, request.idempotency_key))["wecom"]
        async with deps.db.session() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id == row.id)
                .values(lease_until=row.lease_until - last)  # type: ignore[operator]
            )
            await session.commit()
        now[0] += 120
        result = await ActivityEnvironment().run(notify.notify, request)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert len(posts) == 1


async def test_a_send_waiting_for_its_robots_turn_past_its_lease_keeps_its_row(
    deps: WorkerDeps,
) -> None:
    # The wait renews the row's lease (f58c47f): a try meanwhile, after the lease first taken
    # (the target timeout plus LEASE_MARGIN) ended, meets "in flight" and never posts a second time.
    timeout = 3.0  # the post and the row's writes after the wait fit it on a loaded host
    # The robot's turn comes two renewals after the first lease ends; the second try waits for
    # that end itself (a fixed sleep 0.7 s short of the turn overslept it on a loaded machine).
    turn = timeout + LEASE_MARGIN.total_seconds() + 2 * RENEW_EVERY
    async with _robot_after_its_minutes_message(deps, 60 - turn) as (wecom, posts, _):
        notify = NotifyActivities(deps.db, ChannelRegistry([wecom], target_timeout=timeout))
        request = _request(unique("waiting"), Target(type="wecom", target="wecom-key"))
        waiting = asyncio.create_task(notify.send(request, heartbeat=False))

        async def first_lease() -> datetime | None:
            row = (await _rows(deps.db, request.idempotency_key)).get("wecom")
            return None if row is None else row.lease_until

        ends = await eventually(first_lease, "the send took its row")

        async def ended() -> bool:
            return datetime.now(UTC) > ends

        await eventually(ended, "the first lease ended")
        assert posts == [], "the robot's turn came before the first lease ended"
        with pytest.raises(ApplicationError, match="in flight"):
            await notify.send(request, heartbeat=False)
        result = await waiting
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert len(posts) == 1


async def test_a_webhook_answering_429_is_posted_again_after_its_retry_after(
    deps: WorkerDeps,
) -> None:
    # A receiver over its rate limit answers 429 "Retry-After: N" and refuses every post until
    # then. The send failed at once and Temporal's retries (2+4+8+16 s) took no notice: with
    # N past them, each met the 429 and the message was given up. Now the send waits it out
    # (as a robot's turn: not counted in its timeout) and posts once more.
    first_post: float | None = None
    answered: list[int] = []
    after = 6  # the Retry-After, seconds

    async def hook(request: Request) -> Response:
        # Refused until Retry-After has passed since the first post: a post sent sooner meets
        # the 429 again, so the receiver's answers say whether the send waited it out.
        nonlocal first_post
        now = time.monotonic()
        first_post = now if first_post is None else first_post
        answered.append(429 if now - first_post < after else 200)
        if answered[-1] == 429:
            return Response("slow down", status_code=429, headers={"Retry-After": str(after)})
        return Response("ok")

    await _user(deps.db, "alice")
    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        # The wait longer than the target's timeout (it is not counted in it), which leaves
        # each post 5 s: a post of a loaded host (CI's) took over 1 s, and a stall of 3 s
        # outran the 3 s a 4 s Retry-After left.
        notify = _notify(deps, base, notify_target_timeout=after - 1.0)
        target = Target(type="webhook", target=f"{base}/hook")
        result = await notify.send(_request(unique("429"), target), heartbeat=False)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert answered == [429, 200]


async def test_a_sends_waits_for_its_robots_turns_are_bounded_in_all(deps: WorkerDeps) -> None:
    # A WeCom message goes out in several posts, each may wait for the robot's turn: each
    # wait was bounded, their sum not, so a send could run past the activity's timeout and
    # be cut off mid-post (its retry posting that part again). Now the waits of one send are
    # the limiter's max_wait in all; the rest goes out in a retry, after the posts sent.
    posts: list[dict[str, object]] = []

    async def robot(request: Request) -> Response:
        posts.append(await request.json())
        return Response('{"errcode": 0}', media_type="application/json")

    offset = [0.0]
    # The limiter's clock is the test's alone: with the machine's added, a setup slower than
    # 1.4 s (a loaded machine) freed both slots before the send and nothing waited.
    limiter = RateLimiter(per_minute=2, max_wait=1.0, clock=lambda: offset[0])
    await limiter.acquire("wecom-key")  # this minute's two messages, 0.7 s apart
    offset[0] += 0.7
    await limiter.acquire("wecom-key")
    offset[0] += 58.6  # the next slots are 0.7 s and 1.4 s away
    await _user(deps.db, "alice")
    async with serve(
        Starlette(routes=[Route("/cgi-bin/webhook/send", robot, methods=["POST"])])
    ) as base:
        wecom = WeComChannel(deps.http, SecretResolver({}), base, limiter=limiter)
        notify = NotifyActivities(deps.db, ChannelRegistry([wecom], target_timeout=5.0))
        target = Target(type="wecom", target="wecom-key?mentioned=@all")  # markdown, then text
        request = _request(unique("robot-waits"), target)
        with pytest.raises(ApplicationError, match="over 2/min"):
            await notify.send(request, heartbeat=False)
        assert [p["msgtype"] for p in posts] == ["markdown"]
        offset[0] += 120
        await notify.send(request, heartbeat=False)
    assert [p["msgtype"] for p in posts] == ["markdown", "text"]


async def test_a_429_whose_retry_after_is_no_ascii_number_stays_transient(
    deps: WorkerDeps,
) -> None:
    # httpx decodes headers as latin-1, where '²' is a digit to str.isdigit() but not to
    # int(): the ValueError made a 429 a permanent failure (never retried). Now it is a 429.
    async def hook(request: Request) -> Response:
        return Response("slow down", status_code=429, headers={"Retry-After": "\u00b2"})

    await _user(deps.db, "alice")
    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        notify = _notify(deps, base, notify_target_timeout=10.0)  # nothing waits: a hang guard
        target = Target(type="webhook", target=f"{base}/hook")
        with pytest.raises(ApplicationError, match="HTTP 429") as raised:
            await notify.send(_request(unique("429-sup"), target), heartbeat=False)
    assert not raised.value.non_retryable


async def test_a_notification_failing_as_a_bug_shows_no_targets_key(deps: WorkerDeps) -> None:
    """The write giving up a removed webhook's delivery failed (a constraint, a driver bug):
    the workflow failure the Web UI shows quoted the statement's parameters, the delivery's
    key with the webhook's URL and its key."""
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, ChannelRegistry([InboxChannel(deps.db)]))
    key = unique("bug")
    async with deps.db.session() as session:  # an earlier try's, to a webhook since removed
        hook = "https://hooks.example.com/send?key=SECRET-KEY"
        session.add(
            Delivery(
                key=f"{key}:webhook:{hook}",
                user="alice",
                channel="webhook",
                target="https://hooks.example.com/send",
                status="pending",
                attempts=1,
                lease_until=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
        await session.commit()

    def refused(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if statement.startswith("UPDATE") and "SECRET-KEY" in str(params):
            raise sqlite3.IntegrityError("constraint failed")

    event.listen(deps.db.engine.sync_engine, "before_cursor_execute", refused)
    try:
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(notify.notify, _request(key, Target(type="inbox")))
    finally:
        event.remove(deps.db.engine.sync_engine, "before_cursor_execute", refused)
    assert raised.value.type == "NotifyInternalError"
    # Nor its cause, which Temporal sends along with it.
    assert "SECRET-KEY" not in f"{raised.value} {raised.value.__cause__}", raised.value


async def test_a_sends_lease_counts_from_its_claim_not_from_its_wait_for_the_write_turn(
    deps: WorkerDeps,
) -> None:
    """A send's row was leased from the moment it began waiting for the database's write
    turn: a wait longer than the lease's margin (a loaded SQLite) left the send running past
    its lease, where another try could take the row and send the message again. The lease
    counts from the claim now."""
    await _user(deps.db, "alice")
    arrived, answer = asyncio.Event(), asyncio.Event()

    async def hook(request: Request) -> Response:
        arrived.set()
        await answer.wait()
        return Response("ok")

    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        notify = _notify(deps, base)
        request = _request(unique("late-turn"), Target(type="webhook", target="secret:hook"))
        async with deps.db.write_session():  # another writer of this process has the turn
            sending = asyncio.create_task(ActivityEnvironment().run(notify.notify, request))
            turn = deps.db._write_turn
            await eventually(lambda: _true(bool(turn._waiters)), "the send waits for the turn")
            await asyncio.sleep(1.5)  # the scenario: its turn comes 1.5 s later
            released = datetime.now(UTC)
        await arrived.wait()
        lease_until = (await _rows(deps.db, request.idempotency_key))["webhook"].lease_until
        answer.set()
        assert [d.status for d in (await sending).deliveries] == [DeliveryStatus.SENT]
    assert lease_until is not None
    assert lease_until.replace(tzinfo=UTC) >= released + notify.lease, (lease_until, released)


async def _true(value: bool) -> bool:
    return value


async def test_a_deadlock_postgresql_broke_is_a_send_tried_again_not_failed_for_good(
    postgres_url: str,  # noqa: F811  (the fixture)
) -> None:
    """Two transactions that lock two rows in opposite orders: PostgreSQL breaks the deadlock
    by failing one (SQLSTATE 40P01), whose statement was right and whose moment was not. A
    send that met it was failed for good ("permanent: DBAPIError: … deadlock detected"): the
    message never went out."""
    db = Database(postgres_url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS pair (id int PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO pair VALUES (1), (2) ON CONFLICT DO NOTHING"))
        both_hold = asyncio.Barrier(2)

        async def lock(first: int, then: int) -> None:
            async with db.engine.begin() as conn:
                await conn.execute(text(f"SELECT 1 FROM pair WHERE id = {first} FOR UPDATE"))
                await both_hold.wait()
                await conn.execute(text(f"SELECT 1 FROM pair WHERE id = {then} FOR UPDATE"))

        ended = await asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True)
        (broken,) = [e for e in ended if isinstance(e, BaseException)]
        assert isinstance(broken, DBAPIError), broken
        assert getattr(broken.orig, "sqlstate", None) == "40P01", broken
        assert database_busy(broken)
    finally:
        await db.close()


async def test_a_delivery_another_live_worker_holds_is_not_given_up_under_it(
    deps: WorkerDeps,
) -> None:
    """Worker A's try holds the webhook row's lease and is sending (its receiver slow to
    answer); the notify activity had failed for good meanwhile (its last try met that send in
    flight), and worker B's give-up marked the row failed ("no try finished this send") and told
    alice so, while A's message reached the receiver. The give-up now leaves a row under a live
    lease to its holder and is tried again after the lease; then it finds the holder's outcome."""
    arrived, answer = asyncio.Event(), asyncio.Event()
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        arrived.set()
        await answer.wait()
        return Response("ok")

    await _user(deps.db, "alice")
    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        holder, other = _notify(deps, base), _notify(deps, base)  # two workers, one database
        key = unique("held")
        request = _request(key, Target(type="webhook", target="secret:hook"))
        sending = asyncio.create_task(ActivityEnvironment().run(holder.notify, request))
        try:
            await arrived.wait()  # A holds the row's lease, its message at the receiver
            with pytest.raises(ApplicationError, match="in flight") as waits:
                await ActivityEnvironment().run(other.notify_given_up, request)
            assert not waits.value.non_retryable and waits.value.next_retry_delay is not None
            (row,) = (await _rows(deps.db, key)).values()
            assert row.status == "pending", (row.status, row.error)
        finally:
            answer.set()
        result = await sending
        # B's retry, after the lease: the holder's outcome stands, nothing is said.
        await ActivityEnvironment().run(other.notify_given_up, request)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert len(received) == 1
    (row,) = (await _rows(deps.db, key)).values()
    assert (row.status, row.error) == ("sent", None)
    async with deps.db.session() as session:
        said = await session.scalars(select(Event).where(Event.kind == "delivery.failed"))
        assert [e.payload for e in said if e.user == "alice" and e.task == "disk-watch"] == []


async def test_a_delivery_still_held_at_the_give_ups_last_try_is_given_up(
    deps: WorkerDeps,
) -> None:
    """A lease that outlasts every try of the give-up (each waits for its end) is a dead
    holder's: a live one finishes within it. The last try gives the row up, as before."""
    await _user(deps.db, "alice")
    notify = _notify(deps, "http://127.0.0.1:9")
    key = unique("dead-holder")
    request = _request(key, Target(type="webhook", target="secret:hook"))
    await left_in_flight(deps.db, f"{key}:webhook:secret:hook", "alice", "webhook", "secret:hook")
    with pytest.raises(ApplicationError, match="in flight"):
        await ActivityEnvironment().run(notify.notify_given_up, request)
    last = ActivityEnvironment()
    last.info = dataclasses.replace(last.info, attempt=GIVE_UP_TRIES)
    await last.run(notify.notify_given_up, request)
    (row,) = (await _rows(deps.db, key)).values()
    assert (row.status, row.error) == ("failed", GIVEN_UP)


async def test_a_try_whose_lease_ran_out_does_not_write_over_the_try_that_took_its_row(
    database_url: str,
) -> None:
    """The first taker's lease ran out mid-send and a second try took the row over: the first
    one's outcome, finished late, overwrote the row the second one holds (and later settles)."""
    await upgrade_async(database_url)
    db = Database(database_url)
    key = f"{unique('taken-over')}:webhook:secret:hook"
    taker = {"user": "alice", "channel": "webhook", "target": "secret:hook"}
    now = datetime.now(UTC)
    try:
        async with db.write_session() as session:
            first, mine = await DeliveryRepository(session).acquire(
                key, **taker, now=now, lease_until=now
            )
            await session.commit()
        assert mine and first.attempts == 1
        later = now + timedelta(seconds=1)  # the first lease has run out: a retry takes it
        async with db.write_session() as session:
            second, mine = await DeliveryRepository(session).acquire(
                key, **taker, now=later, lease_until=later + timedelta(minutes=5)
            )
            await session.commit()
        assert mine and second.attempts == 2
        async with db.writing() as session:
            late = await DeliveryRepository(session).finish(
                key, 1, status="failed", error="transient: HTTP 503"
            )
        async with db.session() as session:
            row = await DeliveryRepository(session).get(key)
        assert late is False
        assert row is not None and (row.status, row.error, row.attempts) == ("pending", None, 2)
        assert row.lease_until is not None  # still the second try's
        held = row.lease_until
        # Nor does its progress or its lease: the second try's posts and lease are its own.
        async with db.writing() as session:
            await DeliveryRepository(session).posted(key, 1, "posts:3")
            await DeliveryRepository(session).hold(key, 1, later + timedelta(hours=1))
        async with db.session() as session:
            row = await DeliveryRepository(session).get(key)
        assert row is not None and (row.provider_id, row.lease_until) == (None, held)
        async with db.writing() as session:
            settled = await DeliveryRepository(session).finish(
                key, 2, status="sent", provider_id="m-2"
            )
        async with db.session() as session:
            row = await DeliveryRepository(session).get(key)
        assert settled is True
        assert row is not None
        assert (row.status, row.provider_id, row.lease_until) == ("sent", "m-2", None)
    finally:
        await db.close()


@dataclasses.dataclass
class TakenOverMidSend:
    """A webhook whose send outlives its try's lease: another try takes the row over while it
    is under way; then it answers ``fails`` (a 503) or sent."""

    db: Database
    fails: bool
    name = "webhook"

    async def send(
        self, user: str, message: Message, target: str, *, idempotency_key: str, **unused: object
    ) -> str:
        async with self.db.session() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.key == idempotency_key)
                .values(
                    attempts=Delivery.attempts + 1,
                    lease_until=datetime.now(UTC) + timedelta(minutes=5),
                )
            )
            await session.commit()
        if self.fails:
            raise TransientNotifyError("HTTP 503")
        return "m-1"


@pytest.mark.parametrize("fails", [True, False])
async def test_a_send_taken_over_mid_send_leaves_the_row_and_its_word_to_the_try_holding_it(
    deps: WorkerDeps, fails: bool
) -> None:
    """Its 503 was written over the row the other try holds and said to the user as a failure
    ("retrying"), or its sent was, while the other try still sends."""
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, ChannelRegistry([TakenOverMidSend(deps.db, fails)]))
    key = unique("mid-send")
    target = Target(type="webhook", target="https://hooks.example.com/a")
    if fails:  # in flight at the other try: a retry finds how it ended
        with pytest.raises(ApplicationError, match="in flight") as raised:
            await notify.send(_request(key, target), heartbeat=False)
        assert f"webhook: {IN_FLIGHT}" in str(raised.value) and not raised.value.non_retryable
        assert "503" not in str(raised.value)
    else:  # what this try did: it went out
        result = await notify.send(_request(key, target), heartbeat=False)
        [delivery] = result.deliveries
        assert (delivery.status, delivery.provider_id) == (DeliveryStatus.SENT, "m-1")
    row = (await _rows(deps.db, key))["webhook"]
    assert (row.status, row.attempts, row.error, row.provider_id) == ("pending", 2, None, None)
    assert row.lease_until is not None
    hashed = hashlib.sha256(f"{key}:webhook:https://hooks.example.com/a".encode()).hexdigest()
    async with deps.db.session() as session:
        said = await EventRepository(session).list(user="alice", kind="delivery.failed")
    assert [e.payload for e in said if (e.idempotency_key or "").endswith(hashed)] == []


async def test_a_late_finish_does_not_write_over_a_row_ended_without_a_take(
    database_url: str,
) -> None:
    """A row given up (or ended) after its lease ran out keeps its attempts: the late holder's
    finish matched them and wrote its outcome over the ended row (a failure said twice)."""
    await upgrade_async(database_url)
    db = Database(database_url)
    key = f"{unique('ended')}:webhook:secret:hook"
    taker = {"user": "alice", "channel": "webhook", "target": "secret:hook"}
    now = datetime.now(UTC)
    try:
        async with db.write_session() as session:
            _, mine = await DeliveryRepository(session).acquire(
                key, **taker, now=now, lease_until=now
            )
            await session.commit()
        assert mine
        async with db.writing() as session:
            ended = await DeliveryRepository(session).give_up(
                key, GIVEN_UP, now + timedelta(seconds=1)
            )
        assert ended
        async with db.writing() as session:
            late = await DeliveryRepository(session).finish(
                key, 1, status="failed", error="transient: HTTP 503"
            )
        async with db.session() as session:
            row = await DeliveryRepository(session).get(key)
        assert late is False
        assert row is not None and (row.status, row.error) == ("failed", GIVEN_UP)
    finally:
        await db.close()


@dataclasses.dataclass
class PostsInParts:
    """A robot's message in three posts (as WeCom's, counted on the row after each); another
    try takes the row over while the first post is under way."""

    db: Database
    posted: list[int] = dataclasses.field(default_factory=list)
    name = "webhook"

    async def send(
        self, user: str, message: Message, target: str, *, idempotency_key: str, posts: RowPosts
    ) -> None:
        for index in range(posts.done, 3):
            self.posted.append(index)
            if index == 0:
                async with self.db.session() as session:
                    await session.execute(
                        update(Delivery)
                        .where(Delivery.key == idempotency_key)
                        .values(attempts=Delivery.attempts + 1)
                    )
                    await session.commit()
            await posts.sent()


async def test_a_send_in_parts_taken_over_mid_send_posts_no_further_part(
    deps: WorkerDeps,
) -> None:
    """The late try's progress was no longer written, but nothing told it: it posted every
    part the try holding the row posts again (the group saw them twice)."""
    await _user(deps.db, "alice")
    channel = PostsInParts(deps.db)
    notify = NotifyActivities(deps.db, ChannelRegistry([channel]))
    key = unique("parts")
    target = Target(type="webhook", target="https://hooks.example.com/a")
    with pytest.raises(ApplicationError, match="in flight") as raised:
        await notify.send(_request(key, target), heartbeat=False)
    assert not raised.value.non_retryable
    assert channel.posted == [0]
    row = (await _rows(deps.db, key))["webhook"]
    assert (row.status, row.attempts, row.provider_id) == ("pending", 2, None)
    # Its lease and its handing over stop there too.
    posts = RowPosts(deps.db, row.key, 0, 1)
    for step in (posts.handing(), posts.hold(30), posts.sent()):
        with pytest.raises(TransientNotifyError, match="another try took this delivery over"):
            await step


async def test_an_inbox_send_whose_row_was_taken_over_stores_no_message(db: Database) -> None:
    """The taken-over branch of the inbox: the try holding the row stores the message."""
    await _user(db, "alice")
    key = f"{unique('inbox-taken')}:inbox:"
    now = datetime.now(UTC)
    async with db.write_session() as session:
        _, mine = await DeliveryRepository(session).acquire(
            key, user="alice", channel="inbox", target="", now=now, lease_until=now
        )
        await session.commit()
    assert mine
    late = RowPosts(db, key, 0, 0)  # not the try holding the row (attempts 1)
    message = Message(title="Disk 91%", body="on node-3")
    with pytest.raises(TransientNotifyError, match="not stored"):
        await InboxChannel(db).send("alice", message, "", idempotency_key=key, posts=late)
    async with db.session() as session:
        stored = (await session.execute(select(InboxMessage))).scalars().all()
    assert [m.title for m in stored] == []
    row = await _rows(db, key.rsplit(":", 2)[0])
    assert row["inbox"].status == "pending"
