"""Who may have the server read a log file: members from AMBIENT_LOG_DIR only, through every
door to the service (analysis and the daily briefing's source); admins anywhere without it;
and a briefing's file or folder must be there when it is set up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from mcp import Client
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.settings import Settings
from api.app import create_app
from mcp_server.server import build_server
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.mcp_as import mcp_as
from tests.support.servers import free_port, http_client, serve

RANGE = {"start": "2026-11-20T00:00:00+00:00", "end": "2026-11-21T00:00:00+00:00"}
SECRET_LINE = "2026-11-20T10:00:00Z ERROR DB_PASSWORD=hunter2\n"


@asynccontextmanager
async def api(
    settings: Settings, log_dir: Path | None
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], dict[str, str]]]:
    """The API with this AMBIENT_LOG_DIR, its client, an admin's and a member's headers."""
    settings = settings.model_copy(
        update={"log_dir": log_dir, "temporal_address": f"127.0.0.1:{free_port()}"}
    )
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        made = await http.post("/users", json={"name": "mel"}, headers=admin)
        yield http, admin, {"Authorization": f"Bearer {made.json()['token']}"}


def analysis(path: Path) -> dict[str, object]:
    return {"log_source": {"type": "file", "path": str(path)}, **RANGE}


async def test_without_a_log_dir_a_member_may_not_name_a_file_and_an_admin_may(
    settings: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "server.env"
    secret.write_text(SECRET_LINE, encoding="utf-8")
    async with api(settings, None) as (http, admin, member):
        analyzed = await http.post("/briefings/analyze", json=analysis(secret), headers=member)
        source = {"type": "file", "path": str(secret)}
        briefing = await http.post("/briefings/daily", json={"log_source": source}, headers=member)
        by_admin = await http.post("/briefings/analyze", json=analysis(secret), headers=admin)
    for refused in (analyzed, briefing):
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
    outside.write_text(SECRET_LINE, encoding="utf-8")
    async with api(settings, logs) as (http, _, member):
        inside = await http.post(
            "/briefings/analyze", json=analysis(logs / "app.log"), headers=member
        )
        escaped = await http.post("/briefings/analyze", json=analysis(outside), headers=member)
    assert inside.status_code == 200 and inside.json()["report"]["total"] == 1
    assert escaped.status_code == 422 and "hunter2" not in escaped.text


async def test_a_path_or_query_past_what_a_source_takes_is_refused_by_field_not_said_back(
    settings: Settings,
) -> None:
    """analyze_logs said a 100 KB path back whole ("log_source could not be read: [Errno 36]
    File name too long: '/tmp/aaaa…'", 100,068 characters), and a daily briefing's 3 MB CLS
    query passed validation to Temporal's 2 MB limit, a 500. A path longer than PATH_MAX and a
    query longer than SearchLog takes (12 KB) are refused by field, in a short answer."""
    huge_path = {"type": "file", "path": "/tmp/" + "a" * 100_000}
    huge_query = {"type": "cls", "topic_id": "t", "query": "a" * 3_000_000}
    async with api(settings, None) as (http, admin, _):
        for source, field, most in ((huge_path, "path", 4096), (huge_query, "query", 12_288)):
            analyzed = await http.post(
                "/briefings/analyze", json={"log_source": source, **RANGE}, headers=admin
            )
            assert analyzed.status_code == 422 and len(analyzed.text) < 1000, analyzed.text[:300]
            [refused] = analyzed.json()["detail"]
            assert refused["loc"][-1] == field and f"at most {most} characters" in refused["msg"]


async def test_a_log_path_with_nothing_there_is_refused_at_create_by_name_and_nothing_starts(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A daily briefing set up on a file or folder that is not there was accepted: the briefing
    said "Yesterday's logs could not be read", first the morning after. Now the create is
    refused by field, through the MCP tool and the API alike, and starts nothing; once the
    file is there, the same config is taken."""
    logs = tmp_path / "logs"
    logs.mkdir()
    address = dev_env.client.service_client.config.target_host
    settings = deps.settings.model_copy(update={"log_dir": logs, "temporal_address": address})
    name = unique("lp")
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        made = await http.post("/users", json={"name": name}, headers=await admin_headers(settings))
        me = {"Authorization": f"Bearer {made.json()['token']}"}
        async with mcp_as(deps, name, temporal=dev_env.client, settings=settings) as mcp:
            file = {"log_source": {"type": "file", "path": "app.log"}}
            by_tool = await mcp.call_tool("create_daily_briefing", file)
        folder = {"log_source": {"path": "rotated/"}}
        by_api = await http.post("/briefings/daily", json=folder, headers=me)
        running = await http.get("/briefings/daily", headers=me)
        (logs / "app.log").write_text("", encoding="utf-8")
        taken = await http.post("/briefings/daily", json=file, headers=me)
        await dev_env.client.get_workflow_handle(f"daily-briefing/{name}").terminate()
    what_to_do = (
        "on this API server (its workers read the same path: docs/deploy.md); give the path of "
        "an existing log file or folder of rotated logs "
        "inside AMBIENT_LOG_DIR (a path relative to it)"  # a member is not told the server's
    )
    assert by_tool.is_error
    assert " ".join(getattr(c, "text", "") for c in by_tool.content) == (
        "Error executing tool create_daily_briefing: log_source.path: no log file or folder "
        f"at 'app.log' {what_to_do}"
    )
    assert by_api.status_code == 422, by_api.text
    [refused] = by_api.json()["detail"]
    assert refused["loc"] == ["body", "log_source", "path"]
    assert refused["msg"] == f"log_source.path: no log file or folder at 'rotated/' {what_to_do}"
    assert refused["input"] == "rotated/"
    assert running.status_code == 404, running.text  # nothing was started
    assert taken.status_code == 201, taken.text


async def test_a_log_path_with_nothing_there_is_refused_by_analysis_as_at_create(
    settings: Settings, tmp_path: Path
) -> None:
    """analyze_logs answered a path with nothing there as the reader's failure (502 "log_source
    could not be read"): it is the caller's input, refused by field in the create's words,
    through the API and the MCP tool alike."""
    logs = tmp_path / "logs"
    logs.mkdir()
    missing = {"log_source": {"type": "file", "path": "app.log"}, **RANGE}
    async with api(settings, logs) as (http, admin, member):
        by_api = await http.post("/briefings/analyze", json=missing, headers=member)
        by_admin = await http.post("/briefings/analyze", json=missing, headers=admin)
    server = build_server(settings.model_copy(update={"log_dir": logs}), stdio_user="mel")
    async with Client(server) as mcp:
        by_tool = await mcp.call_tool("analyze_logs", missing)
    refusal = (
        "log_source.path: no log file or folder at 'app.log' on this API server (its workers "
        "read the same path: docs/deploy.md); give the path of an existing log file or folder "
        "of rotated logs inside AMBIENT_LOG_DIR (a path relative to it)"
    )
    # The server's folder is an admin's to read (a member's refusal named it).
    assert by_admin.status_code == 422, by_admin.text
    assert f"inside AMBIENT_LOG_DIR ({logs.resolve()})" in by_admin.json()["detail"][0]["msg"]
    assert str(logs) not in by_api.text
    assert by_api.status_code == 422, by_api.text
    assert by_api.json()["detail"] == [
        {
            "type": "value_error",
            "loc": ["body", "log_source", "path"],
            "msg": refusal,
            "input": "app.log",
        }
    ]
    assert by_tool.is_error
    assert " ".join(getattr(c, "text", "") for c in by_tool.content) == (
        f"Error executing tool analyze_logs: {refusal}"
    )


async def test_a_start_or_end_that_is_a_number_is_refused_by_field_through_api_and_tool(
    settings: Settings, tmp_path: Path
) -> None:
    """``start: 12`` was read as 00:00:12 UTC on 1 January 1970 (pydantic's lax datetime), so
    the analysis read 56 years of logs. A time is an ISO 8601 text: a number, or a text of
    digits, is refused naming its field, through the API and the MCP tool alike."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("2026-11-20T10:00:00Z ERROR db timeout\n", encoding="utf-8")
    source = {"type": "file", "path": "app.log"}
    asks = [{"start": 12}, {"start": "1700000000"}, {"end": 1763683200}]
    async with api(settings, logs) as (http, _, member):
        for ask in asks:
            answer = await http.post(
                "/briefings/analyze", json={"log_source": source, **RANGE, **ask}, headers=member
            )
            assert answer.status_code == 422, answer.text
            [refused] = answer.json()["detail"]
            assert refused["loc"] == ["body", *ask] and "ISO 8601" in refused["msg"], refused
    server = build_server(settings.model_copy(update={"log_dir": logs}), stdio_user="mel")
    async with Client(server) as mcp:
        for ask in asks:
            by_tool = await mcp.call_tool("analyze_logs", {"log_source": source, **RANGE, **ask})
            said = " ".join(getattr(c, "text", "") for c in by_tool.content)
            assert by_tool.is_error and next(iter(ask)) in said and "ISO 8601" in said, said
        kept = await mcp.call_tool("analyze_logs", {"log_source": source, **RANGE})
    assert not kept.is_error and kept.structured_content is not None
    assert kept.structured_content["report"]["total"] == 1
