"""A Temporal namespace without our search attributes is no healthy deployment: `ambient status`,
/health and get_status said all was well while every task's start and list failed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient import temporal
from ambient.cli import app as cli
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.status import TEMPORAL_NOT_SET_UP, system_status
from ambient.storage import Database
from api.app import create_app
from mcp_server import voice_sentences as sentences
from tests.briefing.harness import make_user
from tests.conftest import unique
from tests.foundation.test_fuzz_front_doors import WEB
from tests.foundation.test_temporal_gone import _member_and_admin
from tests.support.mcp_as import mcp_as
from tests.support.servers import http_client, serve
from tests.support.waits import eventually
from tests.voice.support import say
from worker import NamespaceMissingError, run_worker

ALL = ["AmbientKind", "AmbientUser", "AmbientCluster", "AmbientState"]


async def _bare_namespace(env: WorkflowEnvironment) -> str:
    """A new namespace on ``env``'s server, without our search attributes."""
    namespace = unique("bare")
    await env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    return namespace


def _in(settings: Settings, env: WorkflowEnvironment, namespace: str) -> Settings:
    """``settings`` that reach ``env``'s server, in ``namespace``."""
    target = env.client.service_client.config.target_host
    return settings.model_copy(update={"temporal_namespace": namespace, "temporal_address": target})


async def test_a_namespace_without_our_search_attributes_is_said_unhealthy_and_how_to_mend(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    client = dev_env.client
    namespace = await _bare_namespace(dev_env)
    bare = settings.model_copy(update={"temporal_namespace": namespace})

    async def said() -> object:
        report = await system_status(bare, client, db)
        return report if report.search_attributes_missing else None

    report = await eventually(said, "the new namespace read")
    assert report.search_attributes_missing == [
        "AmbientKind",
        "AmbientUser",
        "AmbientCluster",
        "AmbientState",
    ]
    assert not report.healthy
    assert any("--type Keyword" in error for error in report.errors), report.errors
    assert any("not set up" in p for p in report.told(operator=False).problems)
    ours = await system_status(settings, client, db)  # the test server's: all registered
    assert ours.search_attributes_missing == [] and ours.healthy


async def test_a_task_started_or_listed_without_our_search_attributes_is_a_503_saying_so(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    """Temporal refuses a start or a list naming a search attribute it has not registered
    (INVALID_ARGUMENT): the API said 500 "internal error", the page a server error. It is a
    503 like any part not ready: an admin is told which attribute and how to register it."""
    namespace = await _bare_namespace(dev_env)
    bare = _in(settings, dev_env, namespace)
    _, token, admin_token = await _member_and_admin(db, "bare")
    async with (
        serve(create_app(bare)) as base,
        http_client(base, headers={"Authorization": f"Bearer {token}"}) as http,
        http_client(base, cookies={"ambient_token": token}) as browser,
    ):
        created = await http.post("/tasks", json={"type": "web_monitor", "config": WEB})
        listed = await http.get("/tasks")
        # A new time zone moves the user's reminders: said so too, not "save again later".
        await http.patch("/users/me", json={"timezone": "Asia/Shanghai"})
        moved = await http.patch("/users/me", json={"timezone": "Europe/Berlin"})
        as_admin = {"Authorization": f"Bearer {admin_token}"}
        told_admin = await http.post(
            "/tasks", json={"type": "web_monitor", "config": WEB}, headers=as_admin
        )
        page = await browser.get("/app")
        form = await browser.post(
            "/app/tasks", data={"urls": "https://example.com/"}, headers={"Origin": base}
        )
    for answer in (created, listed, moved):
        assert (answer.status_code, answer.json()) == (503, {"detail": TEMPORAL_NOT_SET_UP}), (
            answer.text
        )
    assert told_admin.status_code == 503, told_admin.text
    detail = told_admin.json()["detail"]
    assert f"namespace {namespace!r} has not registered Ambient" in detail, detail
    assert "--type Keyword" in detail and "ambient status" in detail
    # The dashboard still shows what works, and says why tasks do not.
    assert page.status_code == 200 and TEMPORAL_NOT_SET_UP in page.text
    assert form.status_code == 503 and TEMPORAL_NOT_SET_UP in form.text, form.text


async def test_mcp_and_voice_say_temporal_is_not_set_up(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The MCP tools said "Error executing tool", the voice "something went wrong"."""
    settings = _in(deps.settings, dev_env, await _bare_namespace(dev_env))
    client = await temporal.connect(settings)
    user = unique("bare-mcp")
    await make_user(deps.db, user)
    async with mcp_as(deps, user, temporal=client, settings=settings) as mcp:
        created = await mcp.call_tool("create_web_monitor", {"config": WEB})
        listed = await mcp.call_tool("list_tasks", {})
    for result in (created, listed):
        assert result.is_error
        assert TEMPORAL_NOT_SET_UP in getattr(result.content[0], "text", ""), result.content
    async with mcp_as(deps, user, temporal=client, settings=settings, voice=True) as voice:
        for tool in ("pause_task", "task_status", "what_needs_me"):
            answer = await say(voice, tool, name="backup")
            assert answer in (sentences.TEMPORAL_NOT_SET_UP, sentences.TEMPORAL_NOT_SET_UP_EN)


async def test_a_namespace_the_server_lacks_is_said_at_every_door_and_the_worker_refuses(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    """A mistyped AMBIENT_TEMPORAL_NAMESPACE: the API said 500 "internal error" (a task's
    status 404 "no task"), /health and `ambient status` that all was well, and the worker
    left with a 200-line traceback."""
    absent = unique("nosuch")
    wrong = _in(settings, dev_env, absent)
    name, token, admin_token = await _member_and_admin(db, "nons")
    async with (
        serve(create_app(wrong)) as base,
        http_client(base, headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        answers = [
            await http.post("/tasks", json={"type": "web_monitor", "config": WEB}),
            await http.get("/tasks"),
            await http.get(f"/tasks/reminder/{name}/standup/status"),
        ]
        told_admin = await http.get("/tasks", headers={"Authorization": f"Bearer {admin_token}"})
        health = await http.get("/health")
    for answer in answers:
        assert (answer.status_code, answer.json()) == (503, {"detail": TEMPORAL_NOT_SET_UP})
    assert told_admin.status_code == 503
    assert f"has no namespace {absent!r}" in told_admin.json()["detail"]
    assert health.status_code == 503, health.text
    report = await system_status(wrong, await temporal.connect(wrong), db)
    assert report.namespace_missing and not report.healthy
    assert report.told(operator=False).problems == [
        "Temporal has no namespace for ambient-ops: no task can be created or listed until an "
        "operator sets it up"
    ]
    with pytest.raises(NamespaceMissingError, match=f"has no namespace {absent!r}"):
        await run_worker(wrong)


async def test_an_attribute_registered_as_text_is_as_good_as_missing(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    """AmbientKind registered as Text: status said all was well, and `task list` showed a
    briefing as a web monitor (a list by kind finds nothing)."""
    namespace = await _bare_namespace(dev_env)
    await dev_env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                "AmbientKind": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
                "AmbientUser": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
                "AmbientCluster": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
                "AmbientState": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
            },
        )
    )
    bare = settings.model_copy(update={"temporal_namespace": namespace})

    async def said() -> object:
        report = await system_status(bare, dev_env.client, db)
        return report if report.search_attributes_missing != list(ALL) else None

    report = await eventually(said, "the namespace's attributes read")
    assert report.search_attributes_missing == ["AmbientKind"] and not report.healthy
    assert any("as Keyword" in error for error in report.errors), report.errors


async def test_a_database_never_migrated_is_said_unhealthy_with_what_to_run(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database, tmp_path: Path
) -> None:
    """It answered, so `ambient status` exited 0 on a database that no worker, API or
    `migrate --check` would start on."""
    empty = tmp_path / "empty.db"
    bare = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{empty}"})
    async with Database(bare.resolved_database_url) as unmigrated:
        report = await system_status(bare, dev_env.client, unmigrated)
    assert report.database_reachable and report.database_current is False
    # /health serves on (a replica of the release before, through a rolling upgrade)...
    assert report.healthy
    assert any("run `ambient migrate` first" in e for e in report.errors), report.errors
    assert any("ambient migrate" in p for p in report.told(operator=False).problems)
    assert (await system_status(settings, dev_env.client, db)).database_current is True
    # ...`ambient status` says it is no database to start on.
    env = {
        "AMBIENT_DATA_DIR": str(tmp_path),
        "AMBIENT_DATABASE_URL": bare.resolved_database_url,
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
    }
    done = await asyncio.to_thread(CliRunner().invoke, cli, ["status", "--json"], env=env)
    assert done.exit_code == 1, done.output
    assert '"database_current": false' in done.output, done.output
