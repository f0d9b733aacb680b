"""Who may have the server read a log file: members from AMBIENT_LOG_DIR only, through every
door to the service (analysis and the daily briefing's source); admins anywhere without it."""

from __future__ import annotations

from pathlib import Path

import httpx

from ambient.settings import Settings
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.servers import HANG, free_port, serve

RANGE = {"start": "2026-11-20T00:00:00+00:00", "end": "2026-11-21T00:00:00+00:00"}


async def test_without_a_log_dir_a_member_may_not_name_a_file_and_an_admin_may(
    settings: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "server.env"
    secret.write_text("2026-11-20T10:00:00Z ERROR DB_PASSWORD=hunter2\n", encoding="utf-8")
    source = {"type": "file", "path": str(secret)}
    no_dir = settings.model_copy(
        update={"log_dir": None, "temporal_address": f"127.0.0.1:{free_port()}"}
    )
    async with (
        serve(create_app(no_dir)) as base,
        httpx.AsyncClient(timeout=HANG, base_url=base, trust_env=False) as http,
    ):
        admin = await admin_headers(no_dir)
        made = await http.post("/users", json={"name": "mel"}, headers=admin)
        member = {"Authorization": f"Bearer {made.json()['token']}"}
        analysis = await http.post(
            "/briefings/analyze", json={"log_source": source, **RANGE}, headers=member
        )
        briefing = await http.post("/briefings/daily", json={"log_source": source}, headers=member)
        by_admin = await http.post(
            "/briefings/analyze", json={"log_source": source, **RANGE}, headers=admin
        )
    for refused in (analysis, briefing):
        assert refused.status_code == 422, refused.text
        assert "AMBIENT_LOG_DIR" in refused.text and "hunter2" not in refused.text
    assert by_admin.status_code == 200 and by_admin.json()["report"]["total"] == 1


async def test_with_a_log_dir_a_member_reads_inside_it_only(
    settings: Settings, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("2026-11-20T10:00:00Z ERROR db timeout\n", encoding="utf-8")
    outside = tmp_path / "server.env"
    outside.write_text("2026-11-20T10:00:00Z ERROR DB_PASSWORD=hunter2\n", encoding="utf-8")
    confined = settings.model_copy(
        update={"log_dir": logs, "temporal_address": f"127.0.0.1:{free_port()}"}
    )
    async with (
        serve(create_app(confined)) as base,
        httpx.AsyncClient(timeout=HANG, base_url=base, trust_env=False) as http,
    ):
        admin = await admin_headers(confined)
        made = await http.post("/users", json={"name": "mel"}, headers=admin)
        member = {"Authorization": f"Bearer {made.json()['token']}"}

        async def analyze(path: Path) -> httpx.Response:
            source = {"type": "file", "path": str(path)}
            return await http.post(
                "/briefings/analyze", json={"log_source": source, **RANGE}, headers=member
            )

        inside, escaped = await analyze(logs / "app.log"), await analyze(outside)
    assert inside.status_code == 200 and inside.json()["report"]["total"] == 1
    assert escaped.status_code == 422 and "hunter2" not in escaped.text
