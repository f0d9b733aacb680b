import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from ambient.agent.conversations import ConversationStore
from ambient.storage import Database
from ambient.storage.migrate import (
    HEAD,
    alembic_config,
    current_revisions,
    head_revision,
    upgrade,
    upgrade_async,
)
from ambient.storage.repositories import DeliveryRepository, EventRepository
from tests.support.postgres import new_database

# alembic_version of a database the branched chain (every area off 0003) brought to its heads:
# one row per branch, 0011 under 0012.
BRANCHED_HEADS = (
    "0004_roles",
    "0005_delivery",
    "0006_briefing",
    "0007_remediation",
    "0008_agent",
    "0009_discussions",
    "0010_watch_polls",
    "0012_poll_leases",
    "0013_xiaozhi_endpoints",
    "0014_xiaozhi_devices",
    "0016_user_language",
)


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        # Not SQLite's own (sqlite_sequence, made by AUTOINCREMENT, is never dropped).
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return {row[0] for row in conn.execute(query) if not row[0].startswith("sqlite_")}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind (a fresh PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
        return
    yield new_database(request.getfixturevalue("postgres_server"))


def _schema(url: str) -> dict[str, object]:
    """Tables, their columns (any order: the branched chain added some elsewhere), indexes."""

    def read(connection: Connection) -> dict[str, object]:
        found = inspect(connection)
        return {
            table: (
                {(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)},
                {i["name"] for i in found.get_indexes(table)},
            )
            for table in found.get_table_names()
        }

    async def run() -> dict[str, object]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            schema = await conn.run_sync(read)
        await engine.dispose()
        return schema

    return asyncio.run(run())


def _as_branched(url: str, revision: str, rows: tuple[str, ...]) -> None:
    """A database the branched chain made: the same migrations run, one row per branch."""
    upgrade(url, revision)

    async def write() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM alembic_version"))
            for row in rows:
                await conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": row})
        await engine.dispose()

    asyncio.run(write())


def test_the_migrations_form_one_chain_with_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config(""))
    assert script.get_heads() == [head_revision()]
    assert script.get_bases() == ["0001"]
    # A new migration moves HEAD too: starts compare the database with it, not the scripts.
    assert head_revision() == HEAD


def test_upgrade_creates_tables_and_is_repeatable(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    assert upgrade(url) == ((), head_revision())
    assert upgrade(url) == ((head_revision(),), head_revision())  # nothing left to do
    assert {"users", "events", "deliveries", "inbox", "alembic_version"} <= _tables(path)


def test_downgrade_to_base_removes_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert _tables(path) == {"alembic_version"}


def test_a_database_at_the_branched_heads_reaches_the_one_head_without_running_anything(
    url: str, tmp_path: Path
) -> None:
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    upgrade(fresh)
    # The last revision of the branched chain; later ones run as on any database.
    _as_branched(url, BRANCHED_HEADS[-1], BRANCHED_HEADS)
    assert asyncio.run(current_revisions(url)) == BRANCHED_HEADS
    before = _schema(url)
    # Any branched migration run again would fail (its tables and columns exist already).
    assert upgrade(url) == (BRANCHED_HEADS, head_revision())
    assert asyncio.run(current_revisions(url)) == (head_revision(),)
    # The tables it had, and those of the migrations after the branched chain (0025 on).
    assert set(_schema(url)) == set(before) | {
        "chat_conversations",
        "robot_windows",
        "xiaozhi_withdrawals",
    }
    if url.startswith("sqlite"):
        assert _schema(url) == _schema(fresh)


def test_a_database_from_before_later_branches_runs_only_the_missing_migrations(url: str) -> None:
    # As made when 0004_roles and 0006_briefing had landed, before 0005_delivery.
    _as_branched(url, "0006_briefing", ("0004_roles", "0006_briefing"))
    upgrade(url)
    assert asyncio.run(current_revisions(url)) == (head_revision(),)
    columns = {c[0] for c in _schema(url)["deliveries"][0]}  # type: ignore[index]
    assert {"lease_until", "task", "kind"} <= columns  # 0005_delivery ran


def test_branch_rows_with_a_gap_are_refused_rather_than_stamped(tmp_path: Path) -> None:
    # 0006..0008 landed before 0005: rows without them are no released database.
    url = f"sqlite+aiosqlite:///{tmp_path / 'gap.db'}"
    _as_branched(url, "0004_roles", ("0004_roles", "0005_delivery"))
    with pytest.raises(RuntimeError, match="not the branches of a released database"):
        upgrade(url)


async def test_upgrade_async_reports_from_and_to(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    assert await upgrade_async(url) == ((), head_revision())


def test_a_voiceprint_two_users_share_stops_the_upgrade_naming_them(url: str) -> None:
    """0021 makes a voiceprint id one user's: a database where two already share one (any
    case) is told which users to change, not an IntegrityError from deep in the index."""
    upgrade(url, "0020_endpoint_broker_key")

    async def seed() -> None:
        from sqlalchemy import insert

        from ambient.storage import Database
        from ambient.storage.models import User

        db = Database(url)
        async with db.session() as session:
            # The columns of 0020 only (the model's later ones are not in that table).
            for name in ("ann", "bo", "cy", "di"):
                await session.execute(insert(User).values(name=name, api_token_hash=name * 2))
            await session.commit()
            # As a database before 0021 could hold them: two users, one voiceprint in two cases.
            for name, voiceprint in (("ann", "VP-1"), ("bo", "vp-1")):
                await session.execute(
                    text("UPDATE users SET voiceprint_id = :v WHERE name = :n"),
                    {"n": name, "v": voiceprint},
                )
            await session.commit()
        await db.close()

    asyncio.run(seed())
    from typer.testing import CliRunner

    from ambient.cli import app

    result = CliRunner().invoke(app, ["migrate"], env={"AMBIENT_DATABASE_URL": url})
    said = result.output
    assert result.exit_code == 1 and "Traceback" not in said, said
    assert "'ann'" in said and "'bo'" in said and "vp-1" in said.lower(), said
    assert asyncio.run(current_revisions(url)) == ("0020_endpoint_broker_key",)


def test_0022_keeps_endpoints_and_devices_and_an_id_removed_before_stays_unused(
    tmp_path: Path,
) -> None:
    """A SQLite database from before 0022 keeps its rows; its next endpoint and device take
    ids past any removed before (an endpoint's from the audit log), not the newest removed."""
    path = tmp_path / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url, "0021_voiceprint_unique")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO users (name, push_config, rollback_permission, role, wake_words, "
            "assistant_name, timezone, briefing_prepare_at, briefing_window_start, "
            "briefing_window_end, updated_at, created_at) VALUES ('ann', '{}', 'dry_run', "
            "'member', '[]', '小智', 'UTC', '05:00', '06:00', '10:00', '2026-11-26', '2026-11-26')"
        )
        conn.execute(
            "INSERT INTO xiaozhi_devices (id, device_id, user, token_hash, speakers, created_at) "
            "VALUES (4, 'aa:bb', 'ann', 'h4', '[]', '2026-11-26')"
        )
        conn.execute(
            "INSERT INTO xiaozhi_endpoints (id, user, url_sealed, url_masked, since, created_at) "
            "VALUES (2, 'ann', 's', 'wss://x/mcp/?token=***', '2026-11-26', '2026-11-26')"
        )
        # Endpoint 3 was added, then removed: only the audit log remembers it.
        for action in ("xiaozhi.endpoint.add", "xiaozhi.endpoint.remove"):
            conn.execute(
                "INSERT INTO audit_log (actor, action, subject, detail, created_at) "
                "VALUES ('ann', ?, 'user:ann', '{\"id\": 3}', '2026-11-26')",
                (action,),
            )
    upgrade(url)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        assert conn.execute("SELECT id, device_id FROM xiaozhi_devices").fetchall() == [
            (4, "aa:bb")
        ]
        conn.execute("DELETE FROM xiaozhi_devices WHERE id = 4")
        conn.execute(
            "INSERT INTO xiaozhi_devices (device_id, user, token_hash, speakers, created_at) "
            "VALUES ('cc:dd', 'ann', 'h5', '[]', '2026-11-27')"
        )
        conn.execute(
            "INSERT INTO xiaozhi_endpoints (user, url_sealed, url_masked, since, created_at) "
            "VALUES ('ann', 's', 'wss://y/mcp/?token=***', '2026-11-27', '2026-11-27')"
        )
        assert conn.execute("SELECT id FROM xiaozhi_devices").fetchall() == [(5,)]
        assert conn.execute("SELECT id FROM xiaozhi_endpoints ORDER BY id").fetchall() == [
            (2,),
            (4,),
        ]
        # The rest of the table came along: its unique key and its owner's cascade.
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO xiaozhi_devices (device_id, user, token_hash, speakers, created_at) "
                "VALUES ('cc:dd', 'ann', 'h6', '[]', '2026-11-27')"
            )
        conn.execute("DELETE FROM users WHERE name = 'ann'")
        assert conn.execute("SELECT count(*) FROM xiaozhi_devices").fetchone() == (0,)


def test_0024_keeps_deliveries_and_their_status_filters_hold_on_the_upgraded_rows(url: str) -> None:
    """A database with deliveries from before 0024 upgrades (its rows kept, no give-up) and its
    deferred and failed filters read them; the downgrade keeps them too, on each kind."""
    upgrade(url, "0023_delivery_keys_bytewise")
    insert = text(
        'INSERT INTO deliveries (key, "user", channel, target, status, attempts, error, '
        "created_at, updated_at) VALUES (:key, 'ann', 'email', 'a@x', :status, 1, :error, "
        ":at, :at)"
    ).bindparams(at=datetime(2026, 11, 1, tzinfo=UTC))

    async def write(statement: Any, rows: list[dict[str, object]]) -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            for row in rows:
                await conn.execute(statement, row)
        await engine.dispose()

    asyncio.run(
        write(
            insert,
            [
                {"key": "k:email:a", "status": "failed", "error": "transient: 451 Greylisted"},
                {"key": "k:email:b", "status": "sent", "error": None},
            ],
        )
    )
    upgrade(url)
    ended = datetime(2026, 11, 20, tzinfo=UTC)

    async def listed(status: str) -> list[tuple[str, str, datetime | None]]:
        db = Database(url)
        try:
            async with db.session() as session:
                rows = await DeliveryRepository(session).list(
                    user="ann", status=status, ended_before=ended
                )
                return [(r.key, r.status, r.retry_until) for r in rows]
        finally:
            await db.close()

    async def defer(key: str, until: datetime) -> None:
        db = Database(url)
        try:
            async with db.writing() as session:
                await DeliveryRepository(session).defer("ann", key, until)
        finally:
            await db.close()

    assert asyncio.run(listed("failed")) == [("k:email:a", "failed", None)]
    assert asyncio.run(listed("deferred")) == []
    asyncio.run(defer("k", datetime(2026, 11, 10, tzinfo=UTC)))  # its give-up passed: failed
    assert asyncio.run(listed("deferred")) == []
    assert [r[0] for r in asyncio.run(listed("failed"))] == ["k:email:a"]
    command.downgrade(alembic_config(url), "0023_delivery_keys_bytewise")
    columns = {c[0] for c in _schema(url)["deliveries"][0]}  # type: ignore[index]
    assert "retry_until" not in columns

    async def keys() -> list[tuple[str, str]]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT key, status FROM deliveries ORDER BY key"))
            rows = [(r[0], r[1]) for r in found]
        await engine.dispose()
        return rows

    assert asyncio.run(keys()) == [("k:email:a", "deferred"), ("k:email:b", "sent")]


def test_0025_adds_the_chat_conversations_and_its_downgrade_removes_them(url: str) -> None:
    """0025 adds the table the chat keeps its conversations in (one stored and read back on
    the upgraded database, each kind); the downgrade removes it, and the upgrade runs again."""
    upgrade(url, "0024_delivery_retry_until")
    assert "chat_conversations" not in _schema(url)
    upgrade(url)
    columns, indexes = cast(
        tuple[set[tuple[str, ...]], set[str]], _schema(url)["chat_conversations"]
    )
    assert {c[0] for c in columns} == {
        "id",
        "user",
        "messages",
        "pending",
        "confirm_id",
        "confirm_lives",  # 0033
        "holder",
        "lease_until",
        "updated_at",
        "created_at",
    }
    assert indexes == {"ix_chat_conversations_user_updated", "ix_chat_conversations_updated_at"}

    async def stored_and_read() -> list[dict[str, Any]]:
        db = Database(url)
        try:
            store = ConversationStore(db)
            conversation = await store.open("ann", None)
            async with store.turn(conversation):
                conversation.messages.append({"role": "user", "content": "你好"})
            kept = await store.open("ann", conversation.id)
            async with store.turn(kept):
                return kept.messages
        finally:
            await db.close()

    assert asyncio.run(stored_and_read()) == [{"role": "user", "content": "你好"}]
    command.downgrade(alembic_config(url), "0024_delivery_retry_until")
    assert "chat_conversations" not in _schema(url)
    assert asyncio.run(current_revisions(url)) == ("0024_delivery_retry_until",)
    upgrade(url)
    assert "chat_conversations" in _schema(url)


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467 down"  # man ZWJ woman ZWJ girl


def test_0027_keeps_message_ids_as_their_senders_keys_and_rekeys_topics(url: str) -> None:
    """Messages stored before 0027 keep their ids, which become their senders' own keys (a
    retry after the upgrade finds its message), except our agents' posts; a discussion whose
    topic key held a U+200B is keyed without it, so a post on the topic joins it."""
    upgrade(url, "0026_robot_windows")
    at = datetime(2026, 11, 1, tzinfo=UTC)

    async def write() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            # A ZWJ joins an emoji sequence: it is part of the topic, kept in its key.
            for disc, topic in (("disc_1", "check\u200bout 5xx"), ("disc_2", FAMILY)):
                await conn.execute(
                    text(
                        "INSERT INTO discussions (id, topic, topic_key, project, initiator, "
                        "status, created_at, updated_at) VALUES (:disc, :topic, :topic, "
                        "'ambient-ops', 'ann', 'open', :at, :at)"
                    ),
                    {"disc": disc, "topic": topic, "at": at},
                )
            for mid, sender in (("ann-1", "ann"), ("rem-abc", "remediation")):
                await conn.execute(
                    text(
                        "INSERT INTO discussion_messages (id, discussion_id, from_id, content, "
                        "tags, source_type, created_at) VALUES (:id, 'disc_1', :sender, 'hi', "
                        "'[]', 'real', :at)"
                    ),
                    {"id": mid, "sender": sender, "at": at},
                )
        await engine.dispose()

    asyncio.run(write())
    upgrade(url)

    async def rows() -> tuple[list[tuple[str, str | None]], list[str]]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT id, client_id FROM discussion_messages ORDER BY id")
            )
            messages = [(r[0], r[1]) for r in found]
            ordered = text("SELECT topic_key FROM discussions ORDER BY id")
            keys = [r[0] for r in await conn.execute(ordered)]
        await engine.dispose()
        return messages, keys

    keyed = ["checkout 5xx", FAMILY]
    assert asyncio.run(rows()) == ([("ann-1", "ann-1"), ("rem-abc", None)], keyed)
    command.downgrade(alembic_config(url), "0026_robot_windows")
    assert "client_id" not in {c[0] for c in _schema(url)["discussion_messages"][0]}  # type: ignore[index]
    upgrade(url)


def _users_with_voiceprints(url: str, voiceprints: dict[str, str | None]) -> None:
    """Users ``voiceprints`` names, with those ids stored as written (no rule of today's)."""

    async def write() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            for name, voiceprint in voiceprints.items():
                await conn.execute(
                    text(
                        "INSERT INTO users (name, push_config, rollback_permission, role, "
                        "wake_words, assistant_name, timezone, briefing_prepare_at, "
                        "briefing_window_start, briefing_window_end, voiceprint_id, updated_at, "
                        "created_at) VALUES (:n, '{}', 'dry_run', 'member', '[]', '小智', 'UTC', "
                        "'05:00', '06:00', '10:00', :v, :at, :at)"
                    ),
                    {"n": name, "v": voiceprint, "at": datetime(2026, 11, 1, tzinfo=UTC)},
                )
        await engine.dispose()

    asyncio.run(write())


def test_0028_keeps_a_voiceprint_with_capitals_beyond_ascii_in_lower_case(url: str) -> None:
    """A voiceprint id stored as 'JOSÉ' was no voice of its user's (SQLite's lower() folds
    ASCII alone) and 'josé' free for another: kept as new ones are, one of ASCII capitals as
    written."""
    upgrade(url, "0027_discussion_keys")
    _users_with_voiceprints(url, {"ann": "JOSÉ", "bo": "VP-Bo", "cy": "Иван", "di": None})
    upgrade(url)

    async def stored() -> list[tuple[str, str | None]]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT name, voiceprint_id FROM users ORDER BY name"))
            rows = [(r[0], r[1]) for r in found]
        await engine.dispose()
        return rows

    assert asyncio.run(stored()) == [("ann", "josé"), ("bo", "VP-Bo"), ("cy", "иван"), ("di", None)]


def test_0028_names_the_users_whose_voiceprints_are_one_in_any_case(tmp_path: Path) -> None:
    """Where lower() folds ASCII alone, 'JOSÉ' and 'josé' could both be stored: the upgrade
    names both users for the operator to choose, as 0021 does, and changes nothing."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    upgrade(url, "0027_discussion_keys")
    _users_with_voiceprints(url, {"ann": "JOSÉ", "bo": "josé"})
    from typer.testing import CliRunner

    from ambient.cli import app

    result = CliRunner().invoke(app, ["migrate"], env={"AMBIENT_DATABASE_URL": url})
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in said, said
    assert "'josé': 'ann', 'bo'" in said and "then migrate again" in said, said
    assert asyncio.run(current_revisions(url)) == ("0027_discussion_keys",)


def test_0030_keeps_the_rows_and_ids_go_on_past_32_bits(url: str) -> None:
    """A database from before 0030 whose events reached 2**31 - 1 keeps them, and its next
    event is 2**31: PostgreSQL's INTEGER ids refused it, SQLite's rowids never did."""
    upgrade(url, "0029_device_withdrawn")

    async def write() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO events (id, kind, payload, created_at)"
                    " VALUES (2147483647, 'watch.breach', '{}', :at)"
                ),
                {"at": datetime(2026, 12, 1, tzinfo=UTC)},
            )
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT setval('events_id_seq', 2147483647)"))
        await engine.dispose()

    async def add() -> list[int]:
        db = Database(url)
        try:
            async with db.writing() as session:
                await EventRepository(session).add("watch.breach")
            async with db.session() as session:
                return list(await session.scalars(text("SELECT id FROM events ORDER BY id")))
        finally:
            await db.close()

    asyncio.run(write())
    upgrade(url)
    assert asyncio.run(add()) == [2**31 - 1, 2**31]


async def test_two_migrations_at_once_on_postgresql_both_end_at_the_head(
    postgres_server: str, tmp_path: Path
) -> None:
    """Any CLI command migrates first: two processes at once on an empty database (a deploy's
    migrate beside an operator's command) both ran every migration, and one failed on a table
    the other had made. The second waits for the first and runs nothing."""
    url = new_database(postgres_server)
    env = {**os.environ, "AMBIENT_DATABASE_URL": url, "AMBIENT_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "ambient.cli", "migrate"]
    both = [
        await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        for _ in range(2)
    ]
    said = [(await process.communicate())[0].decode() for process in both]
    assert [process.returncode for process in both] == [0, 0], said
    assert await current_revisions(url) == (HEAD,)


async def test_0031_open_runs_and_their_clusters_are_read_by_index(tmp_path: Path) -> None:
    """What waits for a user's approval reads the open runs and an approver's clusters: with
    runs kept for good, both read the whole table (a second of a voice call at 100,000 runs)."""
    from sqlalchemy import event

    from ambient.remediation.storage import RemediationRepository
    from ambient.storage.models import User

    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    await upgrade_async(url)
    db = Database(url)
    said: list[tuple[str, Any]] = []

    def heard(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        said.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", heard)
    try:
        approver = User(name="ann", role="member")
        async with db.session() as session:
            repository = RemediationRepository(session)
            seen = await repository.seen_by(approver, {"cls-a": ["ann"]})
            await repository.list(open_only=True, seen=seen, limit=None)
        plans = []
        with sqlite3.connect(tmp_path / "app.db") as conn:
            for statement, parameters in said:
                rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plans.append(" ".join(row[-1] for row in rows))
    finally:
        await db.close()
    assert len(plans) == 2, said
    assert "USING COVERING INDEX ix_remediations_cluster_id" in plans[0], plans
    assert "USING INDEX ix_remediations_state" in plans[1], plans


def test_two_migrators_at_once_say_where_each_found_the_database(postgres_server: str) -> None:
    # The second waited for the first's lock and ran nothing, but said it migrated "from
    # empty": it read the revision before it took the lock. One says empty, the other the head.
    url = new_database(postgres_server)
    script = "import sys; from ambient.storage.migrate import upgrade; print(upgrade(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, url], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    said = {run.communicate(timeout=120)[0].strip() for run in runs}
    assert said == {f"((), '{HEAD}')", f"(('{HEAD}',), '{HEAD}')"}, said
