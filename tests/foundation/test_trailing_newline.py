"""A name, id or time with a newline after it is refused by name: the formats were checked with
Python's `re.match` and `$`, which also matches before a final "\\n", so "eve\\n" became a
user no path could name, "06:00\\n" a briefing time `time.fromisoformat` cannot read, and
"prod\\n" a namespace sent to the Kubernetes API."""

from __future__ import annotations

from typing import Any

import pytest

from ambient.settings import Settings
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve

ALERT = {"source": "manual", "cluster_id": "cls-7kq2m0ab", "namespace": "shop", "workload": "web"}
WORKLOAD = {"cluster_id": "kind-dev", "namespace": "shop", "name": "web", "replicas": 2}
WEB = {"urls": ["https://example.com/"]}

# (method, path, body, where the newline is)
NEWLINE: list[tuple[str, str, dict[str, Any], list[str | int]]] = [
    ("POST", "/users", {"name": "eve\n"}, ["name"]),
    ("PATCH", "/users/me", {"briefing_window_start": "06:00\n"}, ["briefing_window_start"]),
    ("PUT", "/users/me/push", {"quiet_hours": {"start": "22:00\n", "end": "07:00"}}, []),
    (
        "POST",
        "/remediations/score",
        {"alert": {**ALERT, "cluster_id": "cls-7kq2m0ab\n"}},
        ["alert", "cluster_id"],
    ),
    (
        "POST",
        "/remediations/score",
        {"alert": {**ALERT, "namespace": "prod\n"}},
        ["alert", "namespace"],
    ),
    (
        "POST",
        "/remediations/score",
        {"alert": {**ALERT, "workload": "web\n"}},
        ["alert", "workload"],
    ),
    (
        "POST",
        "/remediations/score",
        {"alert": {**ALERT, "region": "ap-guangzhou\n"}},
        ["alert", "region"],
    ),
    (
        "POST",
        "/cloud/workloads/scale",
        {**WORKLOAD, "cluster_id": "kind-dev\n"},
        ["cluster_id"],
    ),
    ("POST", "/tasks", {"type": "web_monitor", "config": WEB, "name": "news\n"}, ["name"]),
    (
        "POST",
        "/agent/servers",
        {"name": "gh\n", "transport": "http", "url": "https://e.x/"},
        ["name"],
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    NEWLINE,
    ids=[f"{m} {p} {'.'.join(map(str, w))}" for m, p, _, w in NEWLINE],
)
async def test_a_name_id_or_time_with_a_trailing_newline_is_refused_by_name(
    settings: Settings, method: str, path: str, body: dict[str, Any], where: list[str | int]
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        answer = await http.request(method, path, json=body, headers=admin)
        assert answer.status_code == 422, answer.text
        locs = [d["loc"] for d in answer.json()["detail"]]
        assert all(loc[: len(where) + 1] == ["body", *where] for loc in locs), locs
        assert len(locs) == 1, locs
