"""A user's settings are their daily briefing's schedule: changing the time zone or briefing
times (PATCH /users/me, the settings page) moves the running briefing to them, its pause and
today kept; a change it cannot take (Temporal away) stores nothing, and saving again retries."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from tests.briefing.test_briefing_task_door import zone_at_midday
from tests.conftest import unique
from tests.support.api_worker import api_over_worker, signed_in_api
from tests.support.pages import signed_in
from tests.support.servers import free_port
from tests.support.waits import eventually


async def _registered(deps: WorkerDeps, name: str) -> str:
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, timezone="UTC"))
        await session.commit()
    return token


def _schedule(config: Any) -> tuple[str, ...]:
    """A config's (or its JSON's) time zone, preparation and window."""
    fields = ("timezone", "prepare_at", "window_start", "window_end")
    read = config.get if isinstance(config, dict) else lambda field: getattr(config, field)
    return tuple(read(field) for field in fields)


async def test_the_running_briefing_follows_the_schedule_saved_in_settings_at_every_door(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Created with its own zone and window, then: a PATCH of other settings leaves the run
    alone; a PATCH of the window moves it to the settings' whole schedule (paused, it stays
    paused); the settings page's save does the same; a user with no briefing starts none."""
    name, idle = unique("follow"), unique("idle")
    token, idle_token = await _registered(deps, name), await _registered(deps, idle)
    async with api_over_worker(dev_env, deps) as (settings, _):
        briefings = BriefingService(dev_env.client, settings, deps.db, deps.tencent)
        zone = zone_at_midday()
        created = await briefings.create(
            name, {"timezone": zone, "window_start": "06:30", "language": "en"}
        )
        assert _schedule(created.config) == (zone, "05:00", "06:30", "10:00")
        handle = dev_env.client.get_workflow_handle(f"daily-briefing/{name}")
        first_run = (await handle.describe()).run_id
        await briefings.pause(name)
        async with signed_in_api(settings, token) as http:
            other = await http.patch("/users/me", json={"phone": "+86 10 5555"})
            assert other.status_code == 200, other.text
            assert (await handle.describe()).run_id == first_run
            moved = await http.patch(
                "/users/me", json={"briefing_window_start": "07:00", "briefing_window_end": "11:00"}
            )
            assert moved.status_code == 200, moved.text
            status = (await http.get("/briefings/daily")).json()
        assert _schedule(status["config"]) == (
            "UTC",
            "05:00",
            "07:00",
            "11:00",
        ), status
        assert status["paused"] is True and status["config"]["language"] == "en"
        assert (await handle.describe()).run_id != first_run
        # The settings page: the form as a browser posts it, every field.
        form = {
            "timezone": "Asia/Tokyo",
            "briefing_prepare_at": "06:00",
            "briefing_window_start": "07:00",
            "briefing_window_end": "11:00",
            "language": "en",
        }
        async with signed_in(settings, token, referer="/app/settings") as page:
            saved = await page.post("/app/settings", data=form)
            assert saved.status_code == 303, saved.text
            shown = await page.get("/app/settings")
            assert "moves your running daily briefing to all four at once" in shown.text
        status = (await briefings.status(name)).config
        assert _schedule(status) == ("Asia/Tokyo", "06:00", "07:00", "11:00")
        assert (await briefings.status(name)).paused
        # No briefing: the settings are stored, none is started.
        async with signed_in_api(settings, idle_token) as http:
            alone = await http.patch("/users/me", json={"timezone": "Europe/Paris"})
            assert alone.status_code == 200 and alone.json()["timezone"] == "Europe/Paris"
            assert (await http.get("/briefings/daily")).status_code == 404
        await handle.signal("stop")
        await eventually(lambda: _ended(dev_env, handle.id), "the briefing ended")


async def test_a_schedule_the_briefing_cannot_take_stores_nothing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Temporal away: the new window is refused with a 503 saying the settings were not saved
    (and on the page, in the user's language), the row keeps its times; other settings save."""
    name = unique("away")
    token = await _registered(deps, name)
    away = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with signed_in_api(away, token) as http:
        refused = await http.patch("/users/me", json={"briefing_window_end": "11:00"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["detail"].startswith("your settings were not saved"), refused.text
        me = (await http.get("/users/me")).json()
        assert me["briefing_window_end"] == "10:00"
        other = await http.patch("/users/me", json={"phone": "+86 10 5555"})
        assert other.status_code == 200, other.text
    async with signed_in(away, token, referer="/app/settings") as page:
        form = {"timezone": "UTC", "briefing_window_end": "11:00", "language": "zh"}
        shown = await page.post("/app/settings", data=form)
        assert shown.status_code == 422 and "your settings were not saved" in shown.text
        chinese = {"accept-language": "zh-CN,zh;q=0.9"}
        shown = await page.post("/app/settings", data=form, headers=chinese)
        assert shown.status_code == 422 and "设置未保存" in shown.text, shown.text
    async with deps.db.session() as session:
        row = await UserRepository(session).get(name)
    assert row is not None and row.briefing_window_end == "10:00" and row.language is None


async def _ended(env: WorkflowEnvironment, workflow_id: str) -> bool:
    return (await env.client.get_workflow_handle(workflow_id).describe()).close_time is not None


async def test_a_schedule_temporal_refuses_to_move_stores_nothing_and_says_why(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal answering but refusing a call of the move (not unreachable): its error was no
    briefing error and escaped the save, a 500 "internal error" from the API."""
    name = unique("refused")
    token = await _registered(deps, name)

    async def refused(self: BriefingService, user: str, schedule: dict[str, str]) -> None:
        raise RPCError("namespace is not allowed", RPCStatusCode.PERMISSION_DENIED, b"")

    monkeypatch.setattr(BriefingService, "follow_schedule", refused)
    async with signed_in_api(deps.settings, token) as http:
        answer = await http.patch("/users/me", json={"briefing_window_end": "11:00"})
        assert answer.status_code == 503, answer.text
        assert answer.json()["detail"] == (
            "your settings were not saved: your daily briefing could not take the new schedule "
            "(Temporal refused the change); save them again in a minute"
        )
    async with signed_in(deps.settings, token, referer="/app/settings") as page:
        form = {"timezone": "UTC", "briefing_window_end": "11:00"}
        chinese = {"accept-language": "zh-CN,zh;q=0.9"}
        shown = await page.post("/app/settings", data=form, headers=chinese)
        assert shown.status_code == 422 and "Temporal 拒绝了这次更改" in shown.text, shown.text
    async with deps.db.session() as session:
        row = await UserRepository(session).get(name)
    assert row is not None and row.briefing_window_end == "10:00"


async def test_reminders_in_the_profiles_zone_follow_it_and_those_given_another_stay(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A reminder made without a zone runs in the profile's ("08:00" where the user lives);
    the profile moved from UTC to Berlin, it kept firing at 08:00 UTC (10:00 in Berlin), while
    the briefing moved. It follows now; one given its own zone keeps it."""
    name = unique("zone")
    token = await _registered(deps, name)
    async with api_over_worker(dev_env, deps) as (settings, _):
        async with signed_in_api(settings, token) as http:
            made = {}
            for label, zone in (("home", None), ("tokyo", "Asia/Tokyo")):
                config = {"type": "daily", "hour": 8, "message": label}
                config |= {"timezone": zone} if zone else {}
                answer = await http.post(
                    "/tasks", json={"type": "schedule", "config": config, "name": label}
                )
                assert answer.status_code in (200, 201), answer.text
                made[label] = answer.json()["task_id"]
            moved = await http.patch("/users/me", json={"timezone": "Europe/Berlin"})
            assert moved.status_code == 200, moved.text
            zones = {
                label: (await http.get(f"/tasks/{task}/status")).json()["config"]["timezone"]
                for label, task in made.items()
            }
    assert zones == {"home": "Europe/Berlin", "tokyo": "Asia/Tokyo"}
    spec = (await dev_env.client.get_schedule_handle(made["home"]).describe()).schedule.spec
    assert spec.time_zone_name == "Europe/Berlin"
