"""A delivery a deliver-later run has (its receiver said "try again later") reads as waiting at
every door: `deferred`, the receiver's answer, and until when it is tried again; never
`failed` like one given up. Once its run's last try is over without saying so (a run
terminated), it reads failed."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp import Client
from typer.testing import CliRunner

from ambient import history
from ambient.cli import app
from ambient.clients.notify.registry import build_channels
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Delivery
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve

GREYLISTED = "transient: recipient refused for now: (451, '4.7.1 Greylisted, try again in 300 s')"


async def _rows(settings: Settings, user: str, **retries: datetime) -> None:
    """``user``'s email deliveries: one sent, one refused for good, and one deferred per
    ``retries`` (key: its task), tried again until the time given."""
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:

            def row(task: str, status: str, error: str | None, until: datetime | None) -> Delivery:
                return Delivery(
                    key=f"{user}/{task}:email:{user}@example.com",
                    user=user,
                    channel="email",
                    target=f"{user}@example.com",
                    status=status,
                    attempts=2,
                    error=error,
                    task=task,
                    kind="watch",
                    retry_until=until,
                )

            session.add(row("sent", "sent", None, None))
            session.add(row("refused", "failed", "permanent: recipient refused: 550", None))
            for task, until in retries.items():
                session.add(row(task, "deferred", GREYLISTED, until))
            await session.commit()
    finally:
        await db.close()


async def test_a_deferred_delivery_reads_as_waiting_with_its_retry_until_at_every_door(
    settings: Settings,
) -> None:
    until = datetime.now(UTC) + timedelta(minutes=50)
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(create_app(settings)) as base, http_client(base) as http:
        admin = await admin_headers(settings)
        answer = await http.post("/users", json={"name": "wendy"}, headers=admin)
        wendy = {"Authorization": f"Bearer {answer.json()['token']}"}
        await _rows(settings, "wendy", waiting=until)

        listed = (await http.get("/deliveries", headers=wendy)).json()
        assert {d["task"]: d["status"] for d in listed} == {
            "sent": "sent",
            "refused": "failed",
            "waiting": "deferred",
        }
        (waiting,) = (await http.get("/deliveries?status=deferred", headers=wendy)).json()
        assert waiting["error"] == GREYLISTED
        assert datetime.fromisoformat(waiting["retry_until"]) == until
        failed = (await http.get("/deliveries?status=failed", headers=wendy)).json()
        assert [d["task"] for d in failed] == ["refused"]  # not the one that waits

    db = Database(settings.resolved_database_url)
    try:
        async with http_client() as client_http:
            state = AppState(
                settings=settings,
                db=db,
                temporal=None,  # type: ignore[arg-type]
                channels=build_channels(settings, db, client_http),
                stdio_user="wendy",
            )
            async with Client(build_server(settings, holder=StateHolder(state))) as mcp:
                tools = {t.name: t for t in (await mcp.list_tools()).tools}
                status = tools["list_deliveries"].input_schema["properties"]["status"]
                assert "deferred" in status["anyOf"][0]["enum"]
                found = await mcp.call_tool("list_deliveries", {"status": "deferred"})
                shown: list[dict[str, Any]] = found.structured_content["deliveries"]  # type: ignore[index]
                assert [(d["task"], d["error"]) for d in shown] == [("waiting", GREYLISTED)]
                assert datetime.fromisoformat(shown[0]["retry_until"]) == until
    finally:
        await db.close()

    runner = CliRunner()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
    args = ["deliveries", "--user", "wendy", "--status", "deferred", "--json"]
    done = await asyncio.to_thread(lambda: runner.invoke(app, args, env=env))
    assert done.exit_code == 0, done.output
    printed = json.loads(done.output)
    assert [(d["task"], d["status"]) for d in printed] == [("waiting", "deferred")]
    assert datetime.fromisoformat(printed[0]["retry_until"]) == until


async def test_a_deferred_delivery_whose_run_ended_unsaid_reads_failed_once_its_last_try_is_over(
    settings: Settings,
) -> None:
    # A deliver-later run terminated in the Web UI runs no code: its rows stay deferred. Read
    # after the give-up plus one try's time (a try started by the give-up has ended), they
    # are shown failed, their retries ended; within it, still waiting.
    now = datetime.now(UTC)
    await _rows(
        settings,
        "xena",
        waiting=now + timedelta(minutes=30),
        last_try=now - timedelta(minutes=1),  # a try begun at the give-up may still send
        ended=now - timedelta(minutes=3),
    )
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            shown = {d.task: d for d in await history.deliveries(session, "xena", operator=True)}
            deferred = await history.deliveries(session, "xena", status="deferred", operator=True)
            failed = await history.deliveries(session, "xena", status="failed", operator=True)
    finally:
        await db.close()
    assert {task: d.status for task, d in shown.items()} == {
        "sent": "sent",
        "refused": "failed",
        "waiting": "deferred",
        "last_try": "deferred",
        "ended": "failed",
    }
    assert shown["ended"].error == f"{GREYLISTED}; its retries ended"
    assert sorted(d.task or "" for d in deferred) == ["last_try", "waiting"]
    assert sorted(d.task or "" for d in failed) == ["ended", "refused"]

    runner = CliRunner()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
    args = ["deliveries", "--user", "xena", "--status", "failed", "--json"]
    done = await asyncio.to_thread(lambda: runner.invoke(app, args, env=env))
    assert done.exit_code == 0, done.output
    printed = {d["task"]: d for d in json.loads(done.output)}
    assert sorted(printed) == ["ended", "refused"]
    assert printed["ended"]["error"].endswith("; its retries ended")
