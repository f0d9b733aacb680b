"""No Docker engine runs here: check the production compose file's shape instead."""

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.temporal.yml").read_text())
    return data


def test_compose_has_the_production_shape() -> None:
    services = _compose()["services"]
    assert {
        "temporal",
        "temporal-db",
        "temporal-ui",
        "temporal-setup",
        "temporal-schema",
        "app-db",
        "worker",
        "api",
    } <= set(services)
    assert services["worker"]["command"] == ["ambient", "worker"]
    assert services["api"]["command"][:2] == ["ambient", "api"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for target in depends if isinstance(depends, list) else depends.keys():
            assert target in services, f"{name} depends on unknown service {target}"


def test_worker_and_api_point_at_the_cluster_and_postgres() -> None:
    services = _compose()["services"]
    for name in ("worker", "api"):
        env = services[name]["environment"]
        assert env["AMBIENT_TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["AMBIENT_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["AMBIENT_ENVIRONMENT"] == "production"


def test_the_app_containers_read_the_env_file_and_link_to_a_public_url() -> None:
    """Only a fixed list of variables reached the containers: a payload key, a codec token,
    secrets or SMTP set for a deployment were dropped (the stack ran unencrypted), and the
    worker's links pointed at http://0.0.0.0:8000 (its metrics' bind address)."""
    services = _compose()["services"]
    for name in ("migrate", "worker", "api"):
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name
        env = services[name]["environment"]
        assert env["AMBIENT_PUBLIC_URL"] == "${AMBIENT_PUBLIC_URL:-http://localhost:8000}", name


def test_temporal_runs_on_the_server_image_after_its_schema_step() -> None:
    # Temporal's current self-hosting shape: the server image, the schema set up by the
    # admin-tools image as a one-shot step of its own (auto-setup is deprecated).
    services = _compose()["services"]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal"]["depends_on"]["temporal-schema"] == {
        "condition": "service_completed_successfully"
    }
    schema = services["temporal-schema"]["command"][0]
    for step in ("create", "setup-schema", "update-schema"):
        assert f"$$sql {step}" in schema
    assert not any("auto-setup" in service.get("image", "") for service in services.values())


def test_no_step_hides_its_failure() -> None:
    # A one-shot step that fails stops what depends on it, with its error in its log.
    services = _compose()["services"]
    for name in ("temporal-schema", "temporal-setup"):
        assert services[name]["entrypoint"] == ["sh", "-euc"]
        assert services[name]["restart"] == "no"
    assert "|| true" not in (ROOT / "docker-compose.temporal.yml").read_text()


def test_search_attributes_are_registered_by_setup() -> None:
    command = " ".join(_compose()["services"]["temporal-setup"]["command"])
    for name in ("AmbientKind", "AmbientUser", "AmbientCluster", "AmbientState"):
        assert name in command


def test_no_secret_literals_in_compose() -> None:
    text = (ROOT / "docker-compose.temporal.yml").read_text()
    for key in ("POSTGRES_PASSWORD", "POSTGRES_PWD", "AMBIENT_SECRET_KEY"):
        for value in re.findall(rf"^\s*{key}:\s*(\S+)", text, flags=re.MULTILINE):
            assert value.startswith("${"), f"{key} has a literal value {value}"


def test_dockerfile_copies_every_package_the_compose_services_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("ambient", "workflows", "activities", "mcp_server", "api", "worker.py"):
        assert package in dockerfile


def test_the_image_installs_from_the_lock_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv.lock" in dockerfile and "uv sync --frozen" in dockerfile
    assert "pip install ." not in dockerfile


def test_only_the_api_is_published_beyond_the_host() -> None:
    # Temporal's frontend and Web UI have no authentication of their own: published on every
    # interface, anyone reaching the host read every workflow's history (task configs, inline
    # webhook URLs and robot keys in clear without AMBIENT_PAYLOAD_KEY) and could end runs.
    services = _compose()["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            if name != "api":
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
