"""The append-only audit log that permission changes, cloud writes and remediation write to."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command

from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.migrate import alembic_config, upgrade


async def test_audit_log_lists_appended_records_oldest_first_by_filter(db: Database) -> None:
    async with db.session() as session:
        audit = AuditRepository(session)
        await audit.append(
            actor="ada", action="grant", subject="user:bob", detail={"old": "a", "new": "b"}
        )
        await audit.append(actor="ada", action="scale_node_pool", subject="cluster:cls-1/np-1")
        await audit.append(actor="bob", action="grant", subject="user:bob_x")
        await session.commit()
    async with db.session() as session:
        audit = AuditRepository(session)
        assert [(r.actor, r.subject, r.detail) for r in await audit.list(subject="user:bob")] == [
            ("ada", "user:bob", {"old": "a", "new": "b"})
        ]
        assert [r.subject for r in await audit.list(subject_prefix="user:")] == [
            "user:bob",
            "user:bob_x",
        ]
        # "_" is a LIKE wildcard; the prefix filter matches it literally.
        assert [r.subject for r in await audit.list(subject_prefix="user:bob_")] == ["user:bob_x"]
        assert [r.action for r in await audit.list(actor="ada")] == ["grant", "scale_node_pool"]
        assert len(await audit.list(action="grant", limit=1)) == 1
        records = await audit.list()
        assert [r.id for r in records] == sorted(r.id for r in records)
        assert all(r.created_at is not None for r in records)


def test_audit_repository_has_no_way_to_change_or_remove_records() -> None:
    public = {name for name in dir(AuditRepository) if not name.startswith("_")}
    assert public == {"append", "list"}


def test_roles_migration_makes_existing_users_members_and_downgrades(
    tmp_path: Path, settings: Settings
) -> None:
    path = tmp_path / "roles.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url, "0003")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO users (name, push_config, rollback_permission, wake_words, "
            "assistant_name, timezone, briefing_prepare_at, briefing_window_start, "
            "briefing_window_end, created_at, updated_at) VALUES ('old', '{}', 'dry_run', '[]', "
            "'x', 'UTC', '05:00', '06:00', '10:00', '2026-01-01', '2026-01-01')"
        )
    upgrade(url)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT role FROM users WHERE name='old'").fetchone() == ("member",)
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
    command.downgrade(alembic_config(url), "0003")
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "role" not in columns and "audit_log" not in tables
