"""The operator's side of roles: `ambient user` with the database in hand, and `ambient dev`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import SecretStr
from typer.testing import CliRunner

from ambient.cli import app
from ambient.codec import new_key
from ambient.devstack import (
    DevOptions,
    child_env,
    codec_token,
    ensure_dev_user,
    temporal_command,
)
from ambient.domain.users import Role, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository


def test_operator_creates_admins_and_grants_with_the_cli_audited(tmp_path: Path) -> None:
    env = {"AMBIENT_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    admin = runner.invoke(app, ["user", "create", "ada", "--admin"], env=env)
    assert admin.exit_code == 0, admin.output
    member = runner.invoke(app, ["user", "create", "bob"], env=env)
    assert member.exit_code == 0, member.output
    granted = runner.invoke(app, ["user", "grant", "bob", "--rollback", "execute"], env=env)
    assert granted.exit_code == 0, granted.output
    assert "bob: rollback_permission dry_run -> execute" in granted.output
    unchanged = runner.invoke(app, ["user", "grant", "bob", "--rollback", "execute"], env=env)
    assert "bob: unchanged" in unchanged.output
    nothing = runner.invoke(app, ["user", "grant", "bob"], env=env)
    # A refusal goes to stderr, as every other refusal of the CLI (a script reads stdout).
    assert nothing.exit_code == 2 and "give --rollback and/or --role" in nothing.stderr
    assert nothing.stdout == ""
    for config in ("not json", '{"channels": [{"type": "fax", "target": "1"}]}'):
        refused = runner.invoke(app, ["user", "push", "bob", "--config", config], env=env)
        assert refused.exit_code == 2 and "push config not changed" in refused.stderr
        assert refused.stdout == ""
    bad = runner.invoke(app, ["user", "grant", "bob", "--rollback", "all"], env=env)
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["user", "grant", "nobody", "--role", "admin"], env=env)
    assert missing.exit_code == 1 and "no user 'nobody'" in missing.output

    listed = runner.invoke(app, ["user", "list", "--json"], env=env)
    assert [
        (u["name"], u["role"], u["rollback_permission"]) for u in json.loads(listed.output)
    ] == [
        ("ada", "admin", "dry_run"),
        ("bob", "member", "execute"),
    ]
    audit = runner.invoke(app, ["user", "audit", "bob", "--json"], env=env)
    assert [(r["actor"], r["action"], r["detail"]) for r in json.loads(audit.output)] == [
        ("operator", "user.register", {"role": "member", "rollback_permission": "dry_run"}),
        ("operator", "user.grant", {"rollback_permission": {"old": "dry_run", "new": "execute"}}),
    ]
    table = runner.invoke(app, ["user", "list"], env=env)
    assert table.exit_code == 0 and "ada" in table.output and "admin" in table.output


async def test_dev_user_is_the_admin_even_in_a_data_dir_from_before_roles(
    settings: Settings, tmp_path: Path
) -> None:
    await upgrade_async(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="dev"))  # a member, as migrated
            await session.commit()
        token = await ensure_dev_user(settings, tmp_path / "dev-token")
        async with db.session() as session:
            users = UserRepository(session)
            dev = await users.by_token(token)
            grants = await AuditRepository(session).list(subject="user:dev", action="user.grant")
        assert dev is not None and dev.role == Role.ADMIN
        assert [(r.actor, r.detail) for r in grants] == [
            ("ambient dev", {"role": {"old": "member", "new": "admin"}})
        ]
    finally:
        await db.close()


async def test_fresh_dev_user_is_created_admin(settings: Settings, tmp_path: Path) -> None:
    await upgrade_async(settings.resolved_database_url)
    token = await ensure_dev_user(settings, tmp_path / "dev-token")
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            dev = await UserRepository(session).by_token(token)
        assert dev is not None and (dev.name, dev.role) == ("dev", Role.ADMIN)
    finally:
        await db.close()


def test_dev_stack_points_the_web_ui_at_the_codec_with_a_codec_token(tmp_path: Path) -> None:
    opts = DevOptions(
        data_dir=tmp_path,
        api_port=8123,
        temporal_port=7299,
        ui_port=8299,
        temporal_address=None,
        metrics_port=None,
    )
    plain = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert "--ui-codec-endpoint" not in temporal_command(opts, plain)
    assert "AMBIENT_CODEC_TOKEN" not in child_env(plain, opts)

    encrypted = plain.model_copy(update={"payload_key": SecretStr(new_key())})
    command = temporal_command(opts, encrypted)
    endpoint = command[command.index("--ui-codec-endpoint") + 1]
    token = child_env(encrypted, opts)["AMBIENT_CODEC_TOKEN"]
    assert endpoint == f"http://127.0.0.1:8123/codec/ui/{token}"
    assert len(token) >= 32
    assert (tmp_path / "codec-token").stat().st_mode & 0o077 == 0
    # Kept across restarts, so an open Web UI tab keeps working.
    again = temporal_command(opts, encrypted)
    assert again[again.index("--ui-codec-endpoint") + 1] == endpoint

    chosen = encrypted.model_copy(update={"codec_token": SecretStr("chosen-token-value")})
    assert child_env(chosen, opts)["AMBIENT_CODEC_TOKEN"] == "chosen-token-value"
    chosen_command = temporal_command(opts, chosen)
    assert chosen_command[chosen_command.index("--ui-codec-endpoint") + 1].endswith(
        "/codec/ui/chosen-token-value"
    )


async def test_token_files_are_private_even_when_they_were_not(
    settings: Settings, tmp_path: Path
) -> None:
    """A token file left readable by others (a copied data dir, a loose umask) is made
    private, and a new one is never readable by others, not even before a chmod."""
    await upgrade_async(settings.resolved_database_url)
    old_mask = os.umask(0)
    try:
        loose = tmp_path / "codec-token"
        loose.write_text("copied-codec-token-0123456789\n")
        loose.chmod(0o644)
        encrypted = Settings(
            data_dir=tmp_path,
            payload_key=SecretStr(new_key()),
            _env_file=None,  # type: ignore[call-arg]
        )
        assert codec_token(encrypted, tmp_path) == "copied-codec-token-0123456789"
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        codec_token(encrypted, fresh)
        await ensure_dev_user(settings, tmp_path / "dev-token")
    finally:
        os.umask(old_mask)
    for path in (loose, fresh / "codec-token", tmp_path / "dev-token"):
        assert path.stat().st_mode & 0o077 == 0, path.name
