"""The /tasks API on the dev server: same operations as the MCP tools, 422 naming the field."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from api.app import create_app
from tests.conftest import running_worker
from tests.support.admins import admin_headers
from tests.support.api_worker import api_over_worker
from tests.support.servers import http_client, serve
from tests.support.users import register
from tests.support.waits import eventually
from tests.watches.site import Site


async def test_tasks_api_creates_lists_steers_and_rejects_bad_input(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The named metric is read from a stand-in on loopback: the catalogue's public host needs a
    # DNS look-up, whose 5 s retries where there is no network made the steering below flaky.
    site = Site(values=[60000.0])
    async with serve(site.app()) as site_base:
        source = {"type": "http_json", "url": f"{site_base}/value", "json_path": "$.data.amount"}
        deps.settings = deps.settings.model_copy(
            update={
                "fetch_allow_cidrs": ["127.0.0.1/32"],
                "metric_catalogue": {"bitcoin_price": source},
            }
        )
        async with api_over_worker(dev_env, deps) as (settings, http):
            admin = await admin_headers(settings)
            registered = await http.post("/users", json={"name": "api-alice"}, headers=admin)
            token = registered.json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            body = {
                "type": "threshold_watch",
                "name": "btc",
                "config": {
                    "metric": "bitcoin_price",
                    "threshold": 50000,
                    "check_interval_minutes": 15,
                },
            }
            created = await http.post("/tasks", json=body)
            assert created.status_code == 201, created.text
            task_id = created.json()["task_id"]
            assert task_id == "threshold-watch/api-alice/btc"

            async def listed() -> bool:
                return [t["task_id"] for t in (await http.get("/tasks")).json()] == [task_id]

            await eventually(listed)
            assert (await http.post(f"/tasks/{task_id}/pause")).json()["state"] == "paused"
            assert (await http.get(f"/tasks/{task_id}/status")).json()["state"] == "paused"
            assert (await http.post(f"/tasks/{task_id}/resume")).json()["state"] == "active"

            bad = await http.put(
                f"/tasks/{task_id}/config",
                json={"metric": "bitcoin_price", "threshold": 1, "check_interval_minutes": 0},
            )
            assert bad.status_code == 422
            # The body is the config: the field is named from the body, as FastAPI names it.
            assert bad.json()["detail"][0]["loc"] == ["body", "check_interval_minutes"]
            assert "greater than or equal to 1" in bad.json()["detail"][0]["msg"]

            unknown = await http.post(
                "/tasks", json={"type": "web_monitor", "config": {"urls": ["ftp://x"]}}
            )
            assert unknown.status_code == 422
            wrong_type = await http.post("/tasks", json={"type": "pigeon", "config": {}})
            assert wrong_type.status_code == 422 and wrong_type.json()["detail"][0]["loc"] == [
                "body",
                "type",
            ]
            assert (await http.get("/tasks/web-monitor/someone-else/x/status")).status_code == 404
            assert (await http.delete(f"/tasks/{task_id}")).json()["state"] == "stopped"
            # A stopped task poked: a conflict with its state (no body field is wrong).
            for _ in range(200):
                if (await http.get(f"/tasks/{task_id}/status")).json()["state"] == "stopped":
                    break
                await asyncio.sleep(0.05)
            for action in ("pause", "resume", "trigger"):
                poked = await http.post(f"/tasks/{task_id}/{action}")
                assert poked.status_code == 409, (action, poked.text)
                assert "is stopped; create it again" in poked.json()["detail"]
        # The watch read its metric from the stand-in, not from the public host.
        assert site.value_reads >= 1


async def test_tasks_api_answers_a_bounded_page_with_the_next_token_in_a_header(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default page is 50; three tasks over a default of two show the same bound.
    monkeypatch.setattr("api.routers.tasks.DEFAULT_PAGE_SIZE", 2)
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        registered = await http.post("/users", json={"name": "api-pager"}, headers=admin)
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        ids = []
        for i in range(3):
            body = {"type": "schedule", "name": f"p{i}", "config": {"message": f"p{i}"}}
            ids.append((await http.post("/tasks", json=body)).json()["task_id"])

        async def paged() -> bool:
            first = await http.get("/tasks")
            token = first.headers.get("X-Next-Page-Token")
            if len(first.json()) != 2 or token is None:
                return False
            rest = await http.get("/tasks", params={"page_token": token})
            seen = [t["task_id"] for t in first.json() + rest.json()]
            return sorted(seen) == sorted(ids) and "X-Next-Page-Token" not in rest.headers

        await eventually(paged)
        bad = await http.get("/tasks", params={"page_token": "not-a-token"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "page_token"]
        assert "not a token from a previous list" in bad.json()["detail"][0]["msg"]
        for task_id in ids:
            await http.delete(f"/tasks/{task_id}")


async def test_task_cli_creates_lists_and_reports_errors(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    async with running_worker(dev_env.client, deps) as worker:
        await _cli_session(dev_env, deps, worker.task_queue)


async def _cli_session(dev_env: WorkflowEnvironment, deps: WorkerDeps, queue: str) -> None:
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    env = {
        "AMBIENT_DATA_DIR": str(deps.settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": queue,
        "AMBIENT_USER": "cli-bob",
    }
    runner = CliRunner()
    await register(deps.db, "cli-bob")

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["task", *args], env=env)
        return result.exit_code, result.output

    config = '{"urls": ["https://example.com"], "check_interval_minutes": 10}'
    code, out = await asyncio.to_thread(
        run, "create", "web_monitor", "--config", config, "--name", "ex"
    )
    assert code == 0, out
    assert "web-monitor/cli-bob/ex" in out

    async def listed() -> bool:
        _, out = await asyncio.to_thread(run, "list")
        return "web-monitor/cli-bob/ex" in out

    await eventually(listed)
    code, out = await asyncio.to_thread(run, "list", "--json")
    assert code == 0 and "web-monitor/cli-bob/ex" in [t["task_id"] for t in json.loads(out)]
    code, out = await asyncio.to_thread(run, "create", "web_monitor", "--config", '{"urls": []}')
    assert code == 1 and "urls" in out
    code, out = await asyncio.to_thread(run, "create", "web_monitor", "--config", "{nope")
    assert code == 2 and "not JSON" in out
    # An update changes the fields given; --replace takes the whole config.
    task, part = "web-monitor/cli-bob/ex", '{"keywords": ["AI"]}'
    code, out = await asyncio.to_thread(run, "update", task, "--config", part)
    assert code == 0, out
    told = json.loads(out)
    assert (told["config"]["check_interval_minutes"], told["changed"]) == (10, ["keywords"])
    code, out = await asyncio.to_thread(run, "update", task, "--config", config, "--replace")
    assert code == 0 and json.loads(out)["config"]["keywords"] == [], out
    code, out = await asyncio.to_thread(run, "delete", "web-monitor/cli-bob/ex")
    assert code == 0 and "stopped" in out


@pytest.mark.parametrize("which", ["missing", "directory", "not text", "brackets"])
@pytest.mark.parametrize("command", ["create", "update"])
def test_task_cli_config_file_that_cannot_be_read_is_one_line_and_exit_2(
    tmp_path: Path, which: str, command: str
) -> None:
    from typer.testing import CliRunner

    from ambient.cli import app

    path = {
        "missing": tmp_path / "nope.json",
        "directory": tmp_path,
        "not text": tmp_path / "binary.json",
        "brackets": tmp_path / "[red]" / "nope.json",
    }[which]
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00{")
    args = {"create": ["web_monitor"], "update": ["web-monitor/dev/x"]}[command]
    env = {"AMBIENT_DATA_DIR": str(tmp_path), "AMBIENT_TEMPORAL_ADDRESS": "127.0.0.1:1"}
    result = CliRunner().invoke(app, ["task", command, *args, "--config", f"@{path}"], env=env)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"--config: cannot read {path}"), lines


async def test_creating_a_task_again_answers_200_with_the_one_that_exists_not_201(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The same task again (an idempotent repeat, a client retrying) creates nothing: 201
    # Created is for the first create alone, the repeat is 200 with `created: false`. The
    # daily briefing's create answers alike.
    async with api_over_worker(dev_env, deps) as (settings, http):
        admin = await admin_headers(settings)
        registered = await http.post("/users", json={"name": "api-again"}, headers=admin)
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        body = {"type": "schedule", "name": "tea", "config": {"message": "tea"}}
        first, again = [await http.post("/tasks", json=body) for _ in range(2)]
        daily = {"timezone": "UTC", "language": "en"}
        briefing, briefing_again = [await http.post("/briefings/daily", json=daily) for _ in "12"]
    assert (first.status_code, first.json()["created"]) == (201, True), first.text
    assert (again.status_code, again.json()["created"]) == (200, False), again.text
    assert again.json()["task_id"] == first.json()["task_id"] == "reminder/api-again/tea"
    assert (briefing.status_code, briefing.json()["created"]) == (201, True), briefing.text
    assert (briefing_again.status_code, briefing_again.json()["created"]) == (200, False)
