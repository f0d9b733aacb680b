import sqlite3
from pathlib import Path

from alembic import command

from ambient.storage.migrate import alembic_config, upgrade


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_upgrade_creates_tables_and_is_repeatable(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    upgrade(url)  # a second start finds nothing to do
    assert {"users", "events", "deliveries", "inbox", "alembic_version"} <= _tables(path)


def test_downgrade_to_base_removes_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert _tables(path) == {"alembic_version"}
