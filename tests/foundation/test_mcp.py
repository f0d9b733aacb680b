import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.auth import OAuthClientProvider, OAuthRegistrationError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.types import CallToolResult
from pydantic import AnyUrl
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.domain.notify import Message
from ambient.domain.users import Role, UserCreate
from ambient.remediation.alerts import Alert
from ambient.remediation.storage import RemediationRepository
from ambient.settings import Settings
from ambient.status import DATABASE_DOWN
from ambient.storage import Database
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from api.deps import INVALID_TOKEN, MISSING_TOKEN
from api.security import NO_OAUTH
from mcp_server.server import build_server
from tests.conftest import running_worker, unique
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve
from tests.support.waits import eventually


@pytest_asyncio.fixture
async def state(
    settings: Settings, deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> AsyncIterator[AppState]:
    yield AppState(
        settings=settings.model_copy(update={"temporal_task_queue": unique("tq")}),
        db=deps.db,
        temporal=dev_env.client,
        channels=deps.channels,
        stdio_user="alice",
    )


async def test_get_status_in_memory_sees_temporal_worker_and_database(
    state: AppState, deps: WorkerDeps
) -> None:
    server = build_server(state.settings, holder=StateHolder(state))
    worker = running_worker(state.temporal, deps)
    async with worker as w:
        state.settings = state.settings.model_copy(update={"temporal_task_queue": w.task_queue})
        async with Client(server, raise_exceptions=True) as client:
            # A new worker's pollers reach DescribeTaskQueue a moment after it starts.
            async def polled() -> CallToolResult | None:
                result = await client.call_tool("get_status", {})
                content = result.structured_content
                return result if content and content["workers_polling"] else None

            result = await eventually(polled, "a worker polling")

    assert result.is_error is False
    status = result.structured_content
    assert status is not None
    assert status["temporal_reachable"] is True
    assert status["workers_polling"] >= 1
    assert status["database_reachable"] is True
    assert status["database"] == "sqlite"
    assert status["llm_mode"] == "offline"
    assert status["problems"] == []


async def test_get_status_tells_a_member_what_works_and_only_an_admin_where_it_runs(
    settings: Settings, deps: WorkerDeps
) -> None:
    """Where Temporal runs (its address, namespace, task queue) and its errors verbatim are
    operator detail: a member hears whether things work, not hosts and ports."""
    member, admin = unique("mem"), unique("adm")
    async with deps.db.session() as session:
        users = UserRepository(session)
        await users.create(UserCreate(name=member))
        await users.create(UserCreate(name=admin, role=Role.ADMIN))
        await session.commit()
    address = f"127.0.0.1:{free_port()}"  # nothing answers there
    down = settings.model_copy(update={"temporal_address": address})
    client = await temporal.connect(down, lazy=True)
    said: dict[str, dict[str, Any]] = {}
    for user in (member, admin):
        state = AppState(
            settings=down, db=deps.db, temporal=client, channels=deps.channels, stdio_user=user
        )
        async with Client(build_server(down, holder=StateHolder(state))) as mcp:
            result = await mcp.call_tool("get_status", {})
        assert not result.is_error and result.structured_content is not None, result.content
        said[user] = result.structured_content
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert (address in text) == (user == admin), (user, text)
    mine = said[member]
    assert (mine["temporal_reachable"], mine["database_reachable"]) == (False, True)
    assert address not in json.dumps(mine) and down.temporal_task_queue not in json.dumps(mine)
    assert any("Temporal" in p and "7233" not in p for p in mine["problems"]), mine
    assert said[admin]["temporal_address"] == address and said[admin]["errors"], said[admin]


async def test_every_tool_carries_all_four_annotations(state: AppState) -> None:
    for read_only in (False, True):
        server = build_server(state.settings, holder=StateHolder(state), read_only=read_only)
        async with Client(server, raise_exceptions=True) as client:
            tools = (await client.list_tools()).tools
        assert tools, "no tools registered"
        for tool in tools:
            notes = tool.annotations
            assert notes is not None, tool.name
            hints = (
                notes.read_only_hint,
                notes.destructive_hint,
                notes.idempotent_hint,
                notes.open_world_hint,
            )
            assert None not in hints, f"{tool.name} lacks an annotation: {hints}"
            if read_only:
                assert notes.read_only_hint is True, f"{tool.name} is served in read-only mode"


async def test_each_area_serves_its_group_of_design_and_cloud_reads_only(
    state: AppState, caplog: pytest.LogCaptureFixture
) -> None:
    """`--area` serves DESIGN.md §4's groups: create_daily_briefing with the tasks,
    set_push_config with the briefing (also its own area, push), and a node pool's scaling
    with the cloud's writes: `--area cloud` served that write among the reads."""

    def served(*areas: str) -> dict[str, Any]:
        server = build_server(state.settings, holder=StateHolder(state), areas=areas)
        return {tool.name: tool for tool in server._tool_manager.list_tools()}

    assert "create_daily_briefing" in served("tasks")
    assert {"greet", "get_briefing", "set_push_config"} <= served("briefing").keys()
    assert "create_daily_briefing" not in served("briefing")
    reads = served("cloud")
    assert "list_node_pools" in reads and "scale_node_pool" not in reads
    assert all(tool.annotations.read_only_hint for tool in reads.values()), reads
    assert "scale_node_pool" in served("cloud_write")
    assert served("push").keys() == {"get_push_config", "set_push_config"}
    with caplog.at_level(logging.WARNING):
        both = served("push", "briefing", "push")
    assert served("briefing").keys() == both.keys()
    assert "already exists" not in caplog.text


async def test_a_permission_change_is_a_destructive_tool(state: AppState) -> None:
    # The chat agent runs a destructive tool only once the person says yes (agent/chat.py); a
    # model answered "do I have rollback permission?" with grant_permission (the benchmark).
    server = build_server(state.settings, holder=StateHolder(state))
    async with Client(server, raise_exceptions=True) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    notes = tools["grant_permission"].annotations
    assert notes is not None and notes.destructive_hint is True


async def test_a_second_server_reuses_each_built_tool_and_lists_and_refuses_the_same(
    state: AppState,
) -> None:
    """Tools are built from their functions once a process (the API app and every MCP server
    build them; the suite builds hundreds), except find_tools, which reads its own server."""
    first = build_server(state.settings, holder=StateHolder(state))
    second = build_server(state.settings, holder=StateHolder(state))
    firsts = {tool.name: tool for tool in first._tool_manager.list_tools()}
    seconds = {tool.name: tool for tool in second._tool_manager.list_tools()}
    assert firsts.keys() == seconds.keys() and len(firsts) > 50
    rebuilt = sorted(name for name in firsts if firsts[name] is not seconds[name])
    assert rebuilt == ["find_tools"]
    assert seconds["find_tools"].fn.__self__._mcp is second

    # A read-only server shares the read tools and leaves the others out, as before.
    read_only = build_server(state.settings, holder=StateHolder(state), read_only=True)
    readers = {tool.name: tool for tool in read_only._tool_manager.list_tools()}
    assert "create_web_monitor" in firsts and "create_web_monitor" not in readers
    assert all(readers[name] is firsts[name] for name in readers if name != "find_tools")

    async with Client(first) as a, Client(second) as b:
        assert (await a.list_tools()).tools == (await b.list_tools()).tools
        refused = await b.call_tool("list_events", {"limit": "many"})
    assert refused.is_error
    assert "limit:" in refused.content[0].text and "invalid arguments" in refused.content[0].text


async def test_mcp_over_http_needs_a_user_token(
    settings: Settings, dev_env: WorkflowEnvironment
) -> None:
    address = dev_env.client.service_client.config.target_host
    settings = settings.model_copy(update={"temporal_address": address})
    async with serve(create_app(settings)) as base:
        async with http_client(base) as http:
            token = (
                await http.post(
                    "/users", json={"name": "alice"}, headers=await admin_headers(settings)
                )
            ).json()["token"]
            anonymous = await http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
            assert anonymous.status_code == 401
            wrong = await http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={
                    "Authorization": "Bearer amb_nope",
                    "Accept": "application/json, text/event-stream",
                },
            )
            assert wrong.status_code == 401
            # Each says which it is, as the API's routes do: a wrong token was "Authentication
            # required", as if none had been sent (an operator then hunts for a lost header).
            assert anonymous.json()["error_description"] == MISSING_TOKEN
            assert wrong.json()["error_description"] == INVALID_TOKEN
            listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            voice = await http.post("/mcp/voice", json=listing, headers=wrong.request.headers)
            assert (voice.status_code, voice.json()["error"]) == (401, "invalid_token")
            assert voice.json()["error_description"] == INVALID_TOKEN
            # So does the header a client reads first (RFC 6750 §3): it said "Authentication
            # required" for a wrong token too. A request without a token gets the challenge
            # alone, no error code (RFC 6750 §3.1: it said error="invalid_token"). It names no
            # OAuth metadata: the tokens are ours (test_an_oauth_client_without_the_token_...).
            assert anonymous.headers["www-authenticate"] == 'Bearer realm="ambient-ops"'
            assert "error" not in anonymous.json() and "invalid_token" not in anonymous.text
            assert wrong.headers["www-authenticate"] == (
                f'Bearer realm="ambient-ops", error="invalid_token", '
                f'error_description="{INVALID_TOKEN}"'
            )
            routes = await http.get("/users/me", headers={"Authorization": "Bearer amb_nope"})
            assert routes.json()["detail"] == INVALID_TOKEN
            # A page on IPv6's loopback (whose Host [::1]:* is allowed) was refused its Origin.
            started = await http.post(
                "/mcp",
                json={
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "page", "version": "1"},
                    },
                },
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json, text/event-stream",
                    "Origin": "http://[::1]:8000",
                },
            )
            assert started.status_code == 200, started.text

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, trust_env=False, timeout=30) as http2:
            transport = streamable_http_client(f"{base}/mcp", http_client=http2)
            async with Client(transport, raise_exceptions=True) as client:
                result = await client.call_tool("get_status", {})
    assert result.structured_content is not None
    assert result.structured_content["temporal_reachable"] is True
    assert result.structured_content["database_reachable"] is True


class _Nothing:
    """An OAuth client's storage with nothing in it yet."""

    async def get_tokens(self) -> OAuthToken | None:
        return None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        raise AssertionError("no token is issued")

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        raise AssertionError("no client is registered")


async def test_an_oauth_client_without_the_token_is_told_to_send_it(settings: Settings) -> None:
    # An OAuth-capable MCP client configured without the token header runs OAuth discovery on
    # /mcp's 401 and registers itself at /register, the sign-up form: it ended in "Registration
    # failed: 403 form post refused: it carries neither Origin nor Referer".
    # The configured public URL (AMBIENT_PUBLIC_URL's default, port 8000) is not where this
    # client is: no metadata names it, where "does not match" had ended the flow.
    async with serve(create_app(settings)) as base:
        oauth = OAuthClientProvider(
            f"{base}/mcp",
            OAuthClientMetadata(redirect_uris=[AnyUrl("http://127.0.0.1:1/callback")]),
            _Nothing(),
        )
        async with httpx2.AsyncClient(auth=oauth, trust_env=False, timeout=30) as http:
            transport = streamable_http_client(f"{base}/mcp", http_client=http)
            with pytest.raises(Exception) as refused:
                async with Client(transport, raise_exceptions=True):
                    pass
        async with http_client(base) as plain:
            signup = await plain.post("/register", data={"name": "x"}, headers={"Origin": base})
    said = [str(e) for e in _causes(refused.value) if isinstance(e, OAuthRegistrationError)]
    assert len(said) == 1 and NO_OAUTH in said[0], said
    # The sign-up form's own posts still reach it (closed by default: its 404 page).
    assert signup.status_code == 404 and "text/html" in signup.headers["content-type"]


def _causes(error: BaseException) -> list[BaseException]:
    nested = getattr(error, "exceptions", ())
    seen = [*nested, *(e for e in (error.__cause__, error.__context__) if e is not None)]
    return [*seen, *(c for e in seen for c in _causes(e))]


async def test_stdio_identity_comes_from_user_option(state: AppState) -> None:
    async with state.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    from mcp.server.mcpserver import Context

    from mcp_server.auth import current_user

    server = build_server(state.settings, holder=StateHolder(state))

    async def caller_name(ctx: Context) -> str:  # type: ignore[type-arg]
        """test-only tool"""
        return current_user(ctx)

    server.add_tool(caller_name)
    async with Client(server, raise_exceptions=True) as client:
        result = await client.call_tool("caller_name", {})
    assert result.structured_content == {"result": "alice"}


async def test_a_database_that_is_down_is_named_by_every_tool_that_reads_it(
    settings: Settings, deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    port = free_port()
    url = f"postgresql+asyncpg://ambient:s3cret-pw@127.0.0.1:{port}/ambient"
    down = settings.model_copy(update={"database_url": url})
    db = Database(url)
    state = AppState(
        settings=down, db=db, temporal=dev_env.client, channels=deps.channels, stdio_user="alice"
    )
    try:
        async with Client(build_server(down, holder=StateHolder(state))) as client:
            for tool in ("whoami", "list_events", "read_inbox", "list_remediations"):
                result = await client.call_tool(tool, {})
                assert result.is_error, tool
                text = getattr(result.content[0], "text", "")
                # Nobody is known with the database down: a user's terms, no host or port.
                assert text == f"Error executing tool {tool}: {DATABASE_DOWN}", text
    finally:
        await db.close()


async def test_a_whole_number_is_digits_only_or_the_tool_refuses_it(state: AppState) -> None:
    # pydantic's lax int read each of these as 15 (the API and the CLI refuse them too).
    async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
        for typed in ["1_5", " 15 ", "+15", "15.0"]:
            refused = await client.call_tool("list_events", {"limit": typed})
            assert refused.is_error, typed
            assert "limit:" in refused.content[0].text, refused.content
        for given in ["15", 15]:  # read (alice is no user here: refused as such)
            read = await client.call_tool("list_events", {"limit": given})
            assert "limit" not in read.content[0].text, read.content


async def test_an_argument_a_tool_does_not_take_is_refused_by_name_and_nothing_runs(
    state: AppState,
) -> None:
    # mcp's argument models ignore extras: approve_remediation's misspelt "runkey" approved
    # whichever run was current (its run_key guard skipped), "limt" listed the default page.
    async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
        refused = await client.call_tool(
            "approve_remediation",
            {"remediation_id": "remediation/x", "approve": True, "runkey": "r1"},
        )
        misspelt = await client.call_tool("list_events", {"limt": 5})
    assert refused.is_error and misspelt.is_error
    said = refused.content[0].text  # type: ignore[union-attr]
    assert said.startswith("Error executing tool approve_remediation: invalid arguments — "), said
    assert "runkey: not an argument of approve_remediation" in said and "run_key" in said, said
    assert "limt: not an argument of list_events" in misspelt.content[0].text  # type: ignore[union-attr]


async def test_a_100_kb_time_zone_is_refused_by_name_without_being_said_back_whole(
    state: AppState,
) -> None:
    # The refusal quoted the whole value: 100 KB of it in the model's context, per call.
    zone = "Asia/" + "x" * 100_000
    async with state.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
        reminder = await client.call_tool(
            "create_reminder", {"config": {"message": "stand-up", "timezone": zone}}
        )
        briefing = await client.call_tool("create_daily_briefing", {"timezone": zone})
    for refused in (reminder, briefing):
        said = refused.content[0].text  # type: ignore[union-attr]
        assert refused.is_error and "timezone: unknown IANA time zone 'Asia/xxx" in said, said[:300]
        assert len(said) < 300, said[:300]


async def test_an_admin_naming_a_user_that_does_not_exist_is_told_so_not_shown_nothing(
    state: AppState,
) -> None:
    # "Show bbo's deliveries" answered an empty list: read as "bob has none".
    async with state.db.session() as session:
        users = UserRepository(session)
        await users.create(UserCreate(name="alice", role=Role.ADMIN))
        await users.create(UserCreate(name="bob"))
        await session.commit()
    async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
        for tool in ("list_events", "read_inbox", "list_deliveries"):
            refused = await client.call_tool(tool, {"user": "bbo"})
            said = refused.content[0].text  # type: ignore[union-attr]
            assert refused.is_error and "no user 'bbo'" in said, (tool, said)
            read = await client.call_tool(tool, {"user": "bob"})
            assert not read.is_error, (tool, read.content)


async def test_list_remediations_says_where_its_next_page_starts_and_when_it_ends(
    state: AppState,
) -> None:
    # Its page had no next: a full page of 50 could be all there was or the first of many.
    async with state.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        for n in range(3):
            alert = Alert(
                source="manual", cluster_id="cls-7kq2m0ab", namespace="default", workload=f"web-{n}"
            )
            await RemediationRepository(session).save_run(
                f"remediation/r{n}@1",
                alert,
                {},
                remediation_id=f"remediation/r{n}",
                user="alice",
                mode="dry_run",
                state="resolved",
                finished_at=datetime.now(UTC),
            )
        await session.commit()
    async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
        first = (await client.call_tool("list_remediations", {"limit": 2})).structured_content
        assert first is not None and len(first["remediations"]) == 2
        assert first["next_offset"] == 2
        last = await client.call_tool("list_remediations", {"limit": 2, "offset": 2})
    assert last.structured_content is not None
    assert [r["remediation_id"] for r in last.structured_content["remediations"]] == [
        "remediation/r0"
    ]
    assert last.structured_content["next_offset"] is None


async def test_list_events_pages_back_past_its_newest_events(state: AppState) -> None:
    # Only the newest `limit` (at most 500) could be read: anything older was out of reach.
    # A last page that filled its limit pointed at an empty one.
    async with state.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        for n in range(4):
            await EventRepository(session).add("watch.hit", user="alice", payload={"n": n})
        await session.commit()
    async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
        first = (await client.call_tool("list_events", {"limit": 2})).structured_content
        assert first is not None and [e["payload"]["n"] for e in first["events"]] == [3, 2]
        assert first["next_before_id"] == first["events"][-1]["id"]
        args = {"limit": 2, "before_id": first["next_before_id"]}
        last = (await client.call_tool("list_events", args)).structured_content
    assert last is not None and [e["payload"]["n"] for e in last["events"]] == [1, 0]
    assert last["next_before_id"] is None


async def test_read_inbox_pages_back_past_its_newest_messages(state: AppState) -> None:
    # Only the newest `limit` (at most 500) could be read: older notifications were out of reach.
    async with state.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        for n in range(4):
            await InboxRepository(session).add("alice", Message(title=f"m{n}", body="-"))
        await session.commit()
    async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
        first = (await client.call_tool("read_inbox", {"limit": 2})).structured_content
        assert first is not None and [m["title"] for m in first["messages"]] == ["m3", "m2"]
        assert first["next_before_id"] == first["messages"][-1]["id"]
        args = {"limit": 2, "before_id": first["next_before_id"]}
        last = (await client.call_tool("read_inbox", args)).structured_content
    assert last is not None and [m["title"] for m in last["messages"]] == ["m1", "m0"]
    assert last["next_before_id"] is None


async def test_a_write_tool_on_a_read_only_server_is_refused_saying_why(state: AppState) -> None:
    # It answered "Unknown tool: pause_task": read as a misspelt name, retried, or given up.
    server = build_server(state.settings, holder=StateHolder(state), read_only=True)
    async with Client(server) as client:
        refused = await client.call_tool("pause_task", {"task_id": "web-monitor/alice/x"})
        # A name served nowhere is a tool error too, with the nearest names.
        unknown = await client.call_tool("pause_tasks", {})
    said = refused.content[0].text  # type: ignore[union-attr]
    assert refused.is_error and "pause_task changes things" in said and "read-only" in said, said
    assert unknown.is_error and "Unknown tool: pause_tasks; " in unknown.content[0].text  # type: ignore[union-attr]


async def test_the_voice_approval_is_hinted_as_destructive_as_the_full_servers(
    deps: WorkerDeps,
) -> None:
    """The voice profile's approve_remediation runs the same rollback or isolation as the
    full server's, yet said it was neither destructive nor of the world outside: a client
    that asks before such a tool let a voice approval of a rollback through."""
    from tests.briefing.harness import make_user
    from tests.support.mcp_as import mcp_as

    await make_user(deps.db, "ops")
    async with mcp_as(deps, "ops") as full:
        full_hints = {t.name: t.annotations for t in (await full.list_tools()).tools}
    async with mcp_as(deps, "ops", voice=True) as voice:
        voice_hints = {t.name: t.annotations for t in (await voice.list_tools()).tools}
    approve = voice_hints["approve_remediation"]
    assert approve is not None and full_hints["approve_remediation"] is not None
    assert (approve.destructive_hint, approve.open_world_hint) == (True, True)
    assert approve == full_hints["approve_remediation"]


async def test_analyze_logs_is_hinted_open_world_as_search_logs_is(state: AppState) -> None:
    """analyze_logs with a CLS source reads Tencent CLS as search_logs does, yet was hinted
    as a read of the product's own records (open_world_hint false)."""
    server = build_server(state.settings, holder=StateHolder(state))
    async with Client(server, raise_exceptions=True) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["search_logs"].annotations == tools["analyze_logs"].annotations
    notes = tools["analyze_logs"].annotations
    assert notes is not None and (notes.read_only_hint, notes.open_world_hint) == (True, True)
