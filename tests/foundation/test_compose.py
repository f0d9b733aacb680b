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
