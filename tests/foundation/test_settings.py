from pathlib import Path

import pytest
from pydantic import ValidationError

from ambient.settings import Environment, Settings
from ambient.storage import Database


def test_env_prefix_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AMBIENT_TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("AMBIENT_TEMPORAL_NAMESPACE", "ops")
    monkeypatch.setenv("AMBIENT_DATA_DIR", str(tmp_path))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.temporal_address == "temporal.example:7233"
    assert settings.temporal_namespace == "ops"
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'ambient.db'}"
    assert settings.llm_mode == "offline"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "AMBIENT_DATABASE_URL=postgresql+asyncpg://u@db/ambient\nOPENAI_API_KEY=sk-x\n"
    )
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.resolved_database_url == "postgresql+asyncpg://u@db/ambient"
    assert settings.llm_mode == "remote"


def test_production_refuses_placeholder_secret_key() -> None:
    with pytest.raises(ValidationError, match="AMBIENT_SECRET_KEY is a placeholder"):
        Settings(environment=Environment.PRODUCTION, _env_file=None)  # type: ignore[call-arg]
    ok = Settings(
        environment=Environment.PRODUCTION,
        secret_key="a-real-random-value-8c1f0e",  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    assert ok.environment is Environment.PRODUCTION


def test_development_accepts_embedded_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.temporal_task_queue == "ambient-ops"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.0/8", ["127.0.0.0/8"]),
        ("127.0.0.0/8, 10.20.0.0/16", ["127.0.0.0/8", "10.20.0.0/16"]),
        ('["127.0.0.0/8", "10.20.0.0/16"]', ["127.0.0.0/8", "10.20.0.0/16"]),
        ("", []),
    ],
)
def test_list_settings_take_comma_separated_or_json_lists(
    value: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMBIENT_FETCH_ALLOW_CIDRS", value)
    monkeypatch.setenv("AMBIENT_MCP_ALLOWED_HOSTS", "ops.example.com:*,api.example.com:*")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.fetch_allow_cidrs == expected
    assert settings.mcp_allowed_hosts == ["ops.example.com:*", "api.example.com:*"]


def test_a_bad_network_in_allow_cidrs_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_FETCH_ALLOW_CIDRS", "10.0.0.0/8,intranet")
    with pytest.raises(ValidationError, match="fetch_allow_cidrs") as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "'intranet' is not a network" in str(caught.value)


def test_a_kubeconfig_written_from_home_in_a_dotenv_file_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AMBIENT_KUBECONFIG=~/.kube/config in a .env file: no shell expands it, and the
    # kubeconfig was "not found" (lightkube had expanded it before the file was checked).
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("AMBIENT_KUBECONFIG=~/.kube/config\n")
    assert Settings().kubeconfig == tmp_path / ".kube" / "config"


def test_every_path_setting_written_from_home_in_a_dotenv_file_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AMBIENT_TEMPORAL_TLS_CERT=~/certs/c.pem from .env failed at connect (FileNotFoundError).
    names = ["data_dir", "temporal_tls_cert", "temporal_tls_key", "temporal_tls_ca"]
    names += ["llm_cache_dir", "kubeconfig", "log_dir"]
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("".join(f"AMBIENT_{n.upper()}=~/{n}\n" for n in names))
    for tls in names[1:4]:
        (tmp_path / tls).touch()  # a TLS file must be there
    settings = Settings()
    assert {n: getattr(settings, n) for n in names} == {n: tmp_path / n for n in names}


def test_a_delivery_retry_wait_too_short_to_spare_a_target_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A failing target is tried again until its lease ends, the waits doubling from this one:
    # 0.001 s sent to a dead webhook every few milliseconds for the whole lease.
    monkeypatch.setenv("AMBIENT_NOTIFY_RETRY_SECONDS", "0.001")
    with pytest.raises(ValidationError, match="notify_retry_seconds"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("AMBIENT_NOTIFY_RETRY_SECONDS", "0.5")
    assert Settings(_env_file=None).notify_retry_seconds == 0.5  # type: ignore[call-arg]


async def test_a_data_dir_with_url_characters_in_its_path_holds_the_database(
    tmp_path: Path,
) -> None:
    # Written into the URL as it is, "/srv/a?b" opened "/srv/a" (the rest a query) and
    # "/srv/a%20b" opened "/srv/a b".
    for name in ("a?b", "a%20b", "a#b"):
        data = tmp_path / name
        settings = Settings(data_dir=data, _env_file=None)  # type: ignore[call-arg]
        async with Database(settings.resolved_database_url) as db:
            assert await db.ping()
        assert (data / "ambient.db").is_file(), sorted(p.name for p in tmp_path.rglob("*"))


def test_a_target_timeout_past_what_the_notify_activity_holds_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """150 s was taken: the notify activity (two minutes) was cut mid-post by Temporal, its row
    freed, and every try posted the message again, none recording an outcome."""
    monkeypatch.setenv("AMBIENT_NOTIFY_TARGET_TIMEOUT", "150")
    with pytest.raises(ValidationError, match="notify_target_timeout") as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "less than or equal to 60" in str(caught.value)
    monkeypatch.setenv("AMBIENT_NOTIFY_TARGET_TIMEOUT", "60")
    assert Settings(_env_file=None).notify_target_timeout == 60  # type: ignore[call-arg]
