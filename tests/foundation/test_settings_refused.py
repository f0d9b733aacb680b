"""A command refused by its settings says why in one line, and never what a secret holds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ambient.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "mailpassword9876-do-not-print"


def _ambient(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    clean |= {"PYTHONPATH": str(ROOT), "AMBIENT_DATA_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-m", "ambient.cli", *args],
        cwd=tmp_path,  # no .env of the checkout's
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"AMBIENT_ENVIRONMENT": "production", "AMBIENT_SECRET_KEY": "changeme"},
            "AMBIENT_SECRET_KEY is a placeholder",
        ),
        ({"AMBIENT_API_PORT": "abc"}, "AMBIENT_API_PORT: Input should be a valid integer"),
        # Taken at start, it failed every remediation gate and night's triage after it.
        (
            {"AMBIENT_REMEDIATION_TIMEZONE": "Asia/Beijing"},
            "AMBIENT_REMEDIATION_TIMEZONE: unknown IANA time zone 'Asia/Beijing'",
        ),
        # A payload key was read when a client was built: a 100-line traceback, exit 1.
        (
            {"AMBIENT_PAYLOAD_KEY": "notbase64key"},
            "AMBIENT_PAYLOAD_KEY: payload key must be 32 bytes (base64 of 32 bytes), got 9",
        ),
        (
            {"AMBIENT_PAYLOAD_OLD_KEYS": '{"k0": "abc"}'},
            "AMBIENT_PAYLOAD_OLD_KEYS: 'k0': payload key must be 32 bytes",
        ),
        ({"AMBIENT_PAYLOAD_OLD_KEYS": "k0=abc"}, "AMBIENT_PAYLOAD_OLD_KEYS: not JSON"),
        # A place inside a JSON setting: pydantic's union names were its words
        # ("AMBIENT_SECRETS_WECOM_LAX-OR-STRICT[LAX=JSON-OR-PYTHON[...": a string asked of it).
        (
            {"AMBIENT_SECRETS": '{"wecom": {"value": "x", "users": "alice"}}'},
            "settings refused: AMBIENT_SECRETS: wecom.users: Input should be a valid list",
        ),
        # Neither member's shape: each says it at the place (once said nothing at all).
        (
            {"AMBIENT_SECRETS": '{"wecom": 5}'},
            "settings refused: AMBIENT_SECRETS: wecom: Input should be a valid string; "
            "AMBIENT_SECRETS: wecom: Input should be a valid dictionary",
        ),
        # A URL SQLAlchemy cannot parse, or a driver that is not async: a traceback, exit 1.
        ({"AMBIENT_DATABASE_URL": "garbage"}, "AMBIENT_DATABASE_URL: not a database URL"),
        (
            {"AMBIENT_DATABASE_URL": f"postgresql://ops:{SECRET}@db.internal/ambient"},
            "AMBIENT_DATABASE_URL: 'postgresql' is not a database the product runs on: use "
            "postgresql+asyncpg://",
        ),
        # Read by the worker alone: a 115-line traceback, while `status` said all was well.
        (
            {
                "AMBIENT_REMEDIATION_CHANGE_WINDOWS": (
                    '[{"days": [1, 2], "start": "09:00"}, {"start": "25:00", "end": "06:00"}]'
                )
            },
            "AMBIENT_REMEDIATION_CHANGE_WINDOWS: window 2: start: String should match pattern",
        ),
        (
            {"AMBIENT_REMEDIATION_CHANGE_WINDOWS": '[{"days": [8]}]'},
            "AMBIENT_REMEDIATION_CHANGE_WINDOWS: window 1: days: days are ISO weekdays 1",
        ),
        # A URL, or a host without its port: "unreachable at localhost", or the SDK's warning
        # about a scheme on the terminal.
        (
            {"AMBIENT_TEMPORAL_ADDRESS": "grpc://localhost:7233"},
            "AMBIENT_TEMPORAL_ADDRESS: 'grpc://localhost:7233': host:port of the Temporal frontend",
        ),
        (
            {"AMBIENT_TEMPORAL_ADDRESS": "localhost"},
            "AMBIENT_TEMPORAL_ADDRESS: 'localhost': host:port",
        ),
        # Read at each connect: a FileNotFoundError traceback there, from every command.
        (
            {"AMBIENT_TEMPORAL_TLS_CA": "/nowhere/ca.pem"},
            "AMBIENT_TEMPORAL_TLS_CA: '/nowhere/ca.pem' is not a file",
        ),
        (
            {"AMBIENT_TEMPORAL_TLS_CERT": str(ROOT / "README.md")},
            "AMBIENT_TEMPORAL_TLS_CERT and AMBIENT_TEMPORAL_TLS_KEY are set together",
        ),
        # libpq's and many hosts' spelling: SQLAlchemy has no dialect of that name to load.
        (
            {"AMBIENT_DATABASE_URL": f"postgres://ops:{SECRET}@db.internal/ambient"},
            "AMBIENT_DATABASE_URL: 'postgres' is not a database the product runs on: use "
            "postgresql+asyncpg://",
        ),
    ],
)
def test_a_refused_setting_is_one_line_that_names_it_and_no_secret_it_was_given_with(
    tmp_path: Path, env: dict[str, str], said: str
) -> None:
    # A model-level refusal carried the whole input in its error (pydantic cuts it to its
    # ends, the SMTP password at the end whole), and the CLI printed it as a traceback.
    done = _ambient(tmp_path, "status", AMBIENT_SMTP_PASSWORD=SECRET, **env)
    assert done.returncode == 2, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "input_value" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("settings refused: "), done.stderr
    assert said in lines[0], lines[0]


def test_a_second_worker_on_a_taken_metrics_port_says_which_setting_to_change(
    tmp_path: Path,
) -> None:
    """Two workers on one host (docs/deploy.md: one a core): the second died with the SDK's
    traceback ("Failed starting Prometheus exporter: Address already in use")."""
    assert _ambient(tmp_path, "migrate").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _ambient(tmp_path, "worker", AMBIENT_METRICS_PORT=str(port))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in lines[-1] and "AMBIENT_METRICS_PORT" in lines[-1], lines


def test_ports_only_ambient_dev_reads_are_no_setting_other_commands_refuse(tmp_path: Path) -> None:
    """A Kubernetes Service named ambient-temporal puts AMBIENT_TEMPORAL_PORT=tcp://IP:7233 in
    every pod's environment: read as a setting, every command refused to start."""
    done = _ambient(
        tmp_path,
        "status",
        AMBIENT_TEMPORAL_PORT="tcp://10.0.0.1:7233",
        AMBIENT_UI_PORT="",
        # A Service named ambient-api or ambient-metrics: the same, for ports every command
        # reads ("AMBIENT_API_PORT: Input should be a valid integer", exit 2, before).
        AMBIENT_API_PORT="tcp://10.0.0.1:8000",
        AMBIENT_METRICS_PORT="tcp://10.0.0.2:9464",
        AMBIENT_SMTP_PORT="tcp://10.0.0.3:25",
        AMBIENT_LOCAL_LLM_PORT="tcp://10.0.0.4:8091",
    )
    assert "settings refused" not in done.stderr, done.stderr
    linked = Settings(api_port="tcp://10.0.0.1:8000", _env_file=None)  # type: ignore[call-arg,arg-type]
    assert (linked.api_port, linked.metrics_port) == (8000, 9464)


def test_a_temporal_address_written_as_an_http_url_is_read_as_its_host_and_port() -> None:
    """The SDK took "https://NS.ACCOUNT.tmprl.cloud:7233" with a warning: a deployment so
    configured keeps working, without the warning on every command."""
    for written in ("https://ns.acct.tmprl.cloud:7233", "http://localhost:7233/"):
        settings = Settings(temporal_address=written, _env_file=None)  # type: ignore[call-arg]
        assert settings.temporal_address == written.split("://")[1].rstrip("/")


def test_a_temporal_ca_alone_connects_over_tls(tmp_path: Path) -> None:
    """A self-hosted Temporal with a private CA: the CA alone was ignored, and the client
    spoke plain text to a TLS frontend."""
    from ambient.temporal import tls_config

    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    tls = tls_config(Settings(temporal_tls_ca=ca))
    assert not isinstance(tls, bool) and tls.server_root_ca_cert == ca.read_bytes()
    assert tls_config(Settings()) is False
    # AMBIENT_TEMPORAL_TLS=false still turns it off; an empty variable (a template's) is none.
    assert tls_config(Settings(temporal_tls=False, temporal_tls_ca=ca)) is False
    assert Settings(temporal_tls_ca="", temporal_tls_cert=" ").temporal_tls_ca is None
