"""MCP tools, API, voice endpoint and CLI of the briefing on the dev server (real time).

The window is the whole local day, so "now" is inside it whenever the test runs.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mcp import Client
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.briefing.config import BriefingConfig, plan_for
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.speech import said_time
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.briefing.harness import write_day_logs
from tests.conftest import running_worker, unique
from tests.support.mcp_as import mcp_as
from tests.support.servers import http_client, serve
from tests.support.waits import eventually

ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Asia/Tokyo", "Europe/Berlin")

# Greeted at the wall clock's hour: the word is the one of that hour (not the window's).
HELLOS = ("早上好", "下午好", "晚上好", "Good morning", "Good afternoon", "Good evening")


def _zone_away_from_midnight() -> str:
    now = datetime.now(UTC)
    return next(z for z in ZONES if 1 <= now.astimezone(ZoneInfo(z)).hour <= 22)


def _all_day(zone: str, **extra: Any) -> dict[str, Any]:
    return {
        "timezone": zone,
        "prepare_at": "00:00",
        "window_start": "00:00",
        "window_end": "23:59",
        "language": "en",
        **extra,
    }


async def _call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def _error(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_mcp_tools_set_up_greet_once_read_send_and_analyze(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    user, other = unique("bu"), unique("bo")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user))
        await UserRepository(session).create(UserCreate(name=other))
        await session.commit()
    zone = _zone_away_from_midnight()
    today = datetime.now(ZoneInfo(zone)).date()
    logs = write_day_logs(tmp_path / "app.log", plan_for(today, BriefingConfig(timezone=zone)))
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        async with mcp_as(deps, user, temporal=dev_env.client, settings=settings) as client:
            refused = await _error(
                client,
                "create_daily_briefing",
                **_all_day(zone, window_start="10:00", window_end="09:00"),
            )
            assert "window_end" in refused and "before it starts" in refused
            created = await _call(
                client,
                "create_daily_briefing",
                log_source={"type": "file", "path": str(logs)},
                **_all_day(zone),
            )
            assert created["task_id"] == f"daily-briefing/{user}"

            first = await _call(client, "greet", request_id="dev-1")
            assert first["outcome"] == "spoken" and first["text"].startswith(HELLOS)
            # Retried with the same request id: Temporal applies the update once, same answer.
            retried = await _call(client, "greet", request_id="dev-1")
            assert retried == first
            second = await _call(client, "greet", request_id="dev-2")
            assert second["outcome"] == "already_given"
            assert second["given_at_local"] == first["given_at_local"]
            not_admin = await _error(client, "greet", user_id=other)
            assert "admin" in not_admin
            too_long = await _error(client, "greet", request_id="r" * 129)
            # Refused by the tool's schema (1-128, the service's rule), naming the field.
            assert "request_id" in too_long and "128 characters" in too_long, too_long

            view = await _call(client, "get_briefing")
            assert view["date"] == today.isoformat() and view["content"]["errors"] == 40
            assert "payment-service timeout after" in view["report_markdown"]
            listed = await _call(client, "list_briefings")
            assert [b["date"] for b in listed["briefings"]] == [today.isoformat()]
            bad_date = await _error(client, "get_briefing", date="yesterday")
            assert "date" in bad_date and "YYYY-MM-DD" in bad_date

            sent = await _call(client, "send_briefing", request_id="mail-1")
            assert [d["channel"] for d in sent["deliveries"]] == ["inbox"]
            again = await _call(client, "send_briefing", request_id="mail-1")
            assert again == sent
            too_long = await _error(client, "send_briefing", request_id="m" * 129)
            assert "request_id" in too_long and "128 characters" in too_long, too_long
            async with deps.db.session() as session:
                inbox = await InboxRepository(session).list(user)
            assert len(inbox) == 1 and "/share/" in (inbox[0].link or "")

            regenerated = await _call(client, "regenerate_briefing")
            assert regenerated["version"] == 2

            start = datetime.combine(today - timedelta(days=1), datetime.min.time(), ZoneInfo(zone))
            analysis = await _call(
                client,
                "analyze_logs",
                log_source={"type": "file", "path": str(logs)},
                start=start.isoformat(),
                end=(start + timedelta(days=1)).isoformat(),
            )
            assert analysis["report"]["total"] == 166
            assert analysis["report"]["anomalies"][0]["kind"] == "burst"
            backwards = await _error(
                client,
                "analyze_logs",
                log_source={"type": "file", "path": str(logs)},
                start=start.isoformat(),
                end=start.isoformat(),
            )
            assert "end" in backwards

            async def visible() -> bool | None:
                query = (
                    f'{temporal.KIND.name} = "daily_briefing" AND {temporal.USER.name} = "{user}"'
                )
                found = [w async for w in dev_env.client.list_workflows(query)]
                return bool(found) or None

            await eventually(visible, "workflow visible by search attributes")
            await dev_env.client.get_workflow_handle(created["task_id"]).signal("stop")


async def test_voice_endpoint_api_and_cli_greet_by_device_token_and_voiceprint(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    from typer.testing import CliRunner

    from ambient.cli import app as cli
    from tests.support.admins import admin_headers

    zone = _zone_away_from_midnight()
    name = unique("vu")
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
                "voice_device_tokens": {"kitchen": SecretStr("device-secret-1")},
            }
        )
        async with (
            serve(create_app(settings)) as base,
            http_client(base) as http,
        ):
            admin = await admin_headers(settings)
            registered = await http.post(
                "/users", json={"name": name, "voiceprint_id": f"vp-{name}"}, headers=admin
            )
            assert registered.status_code in (200, 201), registered.text
            me = {"Authorization": f"Bearer {registered.json()['token']}"}

            bad = await http.post(
                "/briefings/daily",
                json=_all_day(zone, window_start="11:00", window_end="08:00"),
                headers=me,
            )
            assert bad.status_code == 422
            assert bad.json()["detail"][0]["loc"] == ["body", "window_end"]
            created = await http.post("/briefings/daily", json=_all_day(zone), headers=me)
            assert created.status_code == 201, created.text

            anonymous = await http.post("/voice/greeting", json={"user_id": name})
            assert anonymous.status_code == 401
            wrong = await http.post(
                "/voice/greeting", json={"user_id": name}, headers={"X-Device-Token": "nope"}
            )
            assert wrong.status_code == 401
            # It says the token sent is not known, not to send one.
            assert "AMBIENT_VOICE_DEVICE_TOKENS" in wrong.json()["detail"], wrong.text
            unnamed = await http.post(
                "/voice/greeting", json={}, headers={"X-Device-Token": "device-secret-1"}
            )
            assert (
                unnamed.status_code == 422 and unnamed.json()["detail"][0]["loc"][-1] == "user_id"
            )
            spoken = await http.post(
                "/voice/greeting",
                json={"voiceprint_id": f"vp-{name}"},
                headers={"X-Device-Token": "device-secret-1"},
            )
            assert spoken.status_code == 200, spoken.text
            assert spoken.json()["outcome"] == "spoken"
            assert spoken.json()["audio_mp3_b64"] is None  # Tencent TTS is not configured here
            # A signed-in member greets as themselves only: the service's rule, as over MCP.
            as_other = await http.post("/voice/greeting", json={"user_id": "x"}, headers=me)
            assert as_other.status_code == 403
            assert as_other.json()["detail"].startswith("greeting for 'x' needs the admin role")

            env = {
                "AMBIENT_DATA_DIR": str(settings.data_dir),
                "AMBIENT_TEMPORAL_ADDRESS": settings.temporal_address,
                "AMBIENT_TEMPORAL_TASK_QUEUE": worker.task_queue,
                "AMBIENT_USER": name,
                # The user chose no language: the greeting's words are the server's default's.
                "AMBIENT_DEFAULT_LANGUAGE": settings.default_language.value,
            }
            result = await asyncio.to_thread(
                CliRunner().invoke, cli, ["briefing", "greet"], env=env
            )
            assert result.exit_code == 0, result.output
            # Said as a speaker hears it ("at 7:03", no leading zero), whatever the hour now.
            assert (
                f"at {said_time(spoken.json()['given_at_local'], english=True)};" in result.output
            )
            assert "won't repeat it" in result.output

            listed = (await http.get("/briefings", headers=me)).json()
            assert len(listed) == 1 and listed[0]["status"] in ("ready", "given")
            shared = await http.post(f"/briefings/{listed[0]['date']}/share", headers=me)
            assert shared.status_code == 201
            page = await http.get(
                shared.json()["url"].removeprefix(f"http://{settings.api_host}:{settings.api_port}")
            )
            assert page.status_code == 200 and "<h1>" in page.text
            missing = await http.get("/briefings/1999-01-01", headers=me)
            assert missing.status_code == 404
            assert (await http.post("/briefings/daily/pause", headers=me)).status_code == 200

            async def paused() -> bool | None:
                return (await http.get("/briefings/daily", headers=me)).json()["paused"] or None

            await eventually(paused, "paused")
            assert (await http.post("/briefings/daily/resume", headers=me)).status_code == 200
            await dev_env.client.get_workflow_handle(f"daily-briefing/{name}").signal("stop")
            assert json.loads(created.text)["task_id"] == f"daily-briefing/{name}"


async def test_mcp_briefing_tools_of_a_user_nobody_registered_say_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # list_briefings answered [] and the others "no briefing yet" / "no daily briefing for
    # 'x'; create one with create_daily_briefing", which then refused the name.
    user = unique("ghost")
    async with mcp_as(deps, user, temporal=dev_env.client) as mcp:
        said = {
            tool: await mcp.call_tool(tool, {})
            for tool in ("list_briefings", "get_briefing", "regenerate_briefing", "send_briefing")
        }
    words = f"no user '{user}': an admin registers it (ambient user create {user})"
    assert {tool: (r.is_error, getattr(r.content[0], "text", "")) for tool, r in said.items()} == {
        tool: (True, f"Error executing tool {tool}: {words}") for tool in said
    }
