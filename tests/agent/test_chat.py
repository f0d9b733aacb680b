"""The chat loop through the API: a scripted OpenAI-compatible stand-in calls our real tools."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.server.transport_security import TransportSecuritySettings
from openai import AsyncOpenAI
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from ambient.agent.chat import ChatAgent, ChatEvent
from ambient.agent.conversations import ConversationStore
from ambient.agent.facade import AgentFacade
from ambient.agent.hub import MAX_SERVERS
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.models import AgentServer
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.agent.test_event_agent import NO_COMPLETION
from tests.agent.test_facade import toy_server
from tests.conftest import running_worker, unique
from tests.standins.llm_api import API_KEY, Content, LLMApi, ToolCalls
from tests.support.api_worker import signed_in_api
from tests.support.servers import free_port, http_client, serve
from tests.watches.site import Site, article


async def _turn(http: httpx.AsyncClient, **body: Any) -> list[dict[str, Any]]:
    response = await http.post("/chat", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


async def _user(deps: WorkerDeps, name: str, role: str = "member") -> str:
    async with deps.db.session() as session:
        user, token = await UserRepository(session).create(UserCreate(name=name))
        user.role = role
        await session.commit()
    return token


async def test_chat_creates_a_monitor_and_asks_before_deleting_it(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    llm, site = LLMApi(), Site(pages={"/news": article("Nothing yet.")})
    name = unique("chat")
    async with (
        running_worker(dev_env.client, deps) as worker,
        serve(llm.app()) as llm_url,
        serve(site.app()) as site_url,
    ):
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
                "fetch_allow_cidrs": ["127.0.0.0/8"],
                "openai_api_key": SecretStr(API_KEY),
                "openai_base_url": f"{llm_url}/v1",
            }
        )
        token = await _user(deps, name)
        task_id = f"web-monitor/{name}/news"
        async with signed_in_api(settings, token) as http:
            create = {
                "config": {
                    "urls": [f"{site_url}/news"],
                    "keywords": ["AI"],
                    "check_interval_minutes": 30,
                },
                "name": "news",
            }
            llm.script(ToolCalls([("create_web_monitor", create)]), Content("Monitor created."))
            asked = await _turn(http, message="monitor my news page for AI every 30 minutes")
            # A write waits for the person's yes (AMBIENT_CHAT_CONFIRM=writes, the default).
            assert [e["type"] for e in asked] == ["confirm"], asked
            assert asked[0]["calls"] == [{"function": "create_web_monitor", "arguments": create}]
            conversation = asked[0]["conversation_id"]
            # A yes names the confirm it answers: one without is refused, the field named.
            unnamed = await http.post(
                "/chat", json={"conversation_id": conversation, "approve": True}
            )
            assert unnamed.status_code == 422, unnamed.text
            assert unnamed.json()["detail"][0]["loc"] == ["body", "confirm_id"], unnamed.text
            assert (await http.get(f"/tasks/{task_id}/status")).status_code == 404
            yes = {"approve": True, "confirm_id": asked[0]["confirm_id"]}
            events = await _turn(http, conversation_id=conversation, **yes)
            kinds = [e["type"] for e in events]
            assert kinds == ["tool_call", "tool_result", "message", "done"], events
            assert events[1]["ok"] is True and task_id in events[1]["text"]
            assert events[2]["text"] == "Monitor created."
            # The model saw the tools the search found for the request, as functions with
            # their JSON schemas: the few it needs, not the full list (AMBIENT_CHAT_TOOLS).
            offered = [t["function"]["name"] for t in llm.requests[0]["tools"]]
            assert offered[0] == "create_web_monitor"
            assert len(offered) == settings.chat_tools and "delete_task" not in offered
            assert "parameters" in llm.requests[0]["tools"][0]["function"]
            # ...at the temperature the tool-call benchmark measures, not the server's default.
            assert llm.requests[0]["temperature"] == 0
            # ...and the tool result came back to it as a tool message.
            assert llm.requests[1]["messages"][-1]["role"] == "tool"
            assert (await http.get(f"/tasks/{task_id}/status")).json()["state"] == "active"

            llm.script(ToolCalls([("delete_task", {"task_id": task_id})]))
            held = await _turn(http, message="delete it", conversation_id=conversation)
            assert [e["type"] for e in held] == ["confirm"]
            assert held[0]["calls"] == [
                {"function": "delete_task", "arguments": {"task_id": task_id}}
            ]
            assert (await http.get(f"/tasks/{task_id}/status")).json()["state"] == "active"

            llm.script(Content("Kept it."))
            declined = await _turn(http, conversation_id=conversation, approve=False)
            assert [e["type"] for e in declined] == ["tool_result", "message", "done"]
            # Declined, not failed: a page says so in its own words.
            assert (declined[0]["text"], declined[0]["declined"]) == ("declined", True)
            assert (await http.get(f"/tasks/{task_id}/status")).json()["state"] == "active"

            llm.script(ToolCalls([("delete_task", {"task_id": task_id})]), Content("Deleted."))
            again = await _turn(http, message="really delete it", conversation_id=conversation)
            assert [e["type"] for e in again] == ["confirm"]
            yes = {"approve": True, "confirm_id": again[0]["confirm_id"]}
            done = await _turn(http, conversation_id=conversation, **yes)
            assert [e["type"] for e in done] == ["tool_call", "tool_result", "message", "done"]
            assert done[1]["ok"] is True

            stats = (await http.get("/agent/tools")).json()
            by_tool = {s["tool"]: s for s in stats["stats"]}
            assert by_tool["create_web_monitor"]["calls"] == 1
            assert by_tool["delete_task"]["successes"] == 1
            assert stats["health"]["ambient"] == "active"


async def test_chat_without_a_model_says_so_and_servers_are_guarded(deps: WorkerDeps) -> None:
    token = await _user(deps, unique("solo"))
    async with signed_in_api(deps.settings, token) as http:
        events = await _turn(http, message="你好，小智")
        assert events[0]["type"] == "message" and "OPENAI_API_KEY" in events[0]["text"]
        assert "ambient dev --local-llm" in events[0]["text"]  # the model that needs no key
        silent = await http.post("/chat", json={})
        assert silent.status_code == 422
        # FastAPI's own shape, as every other 422: the field, the message, its type.
        (problem,) = silent.json()["detail"]
        assert (problem["loc"], problem["type"]) == (["body", "message"], "value_error")

        private = await http.post(
            "/agent/servers",
            json={"name": "intranet", "transport": "http", "url": "http://10.0.0.1/mcp"},
        )
        assert private.status_code == 422 and "url" in private.text
        assert [e["loc"] for e in private.json()["detail"]] == [["body", "url"]], private.text
        # A name that does not resolve is said about the field, not a server error.
        unknown = await http.post(
            "/agent/servers",
            json={"name": "typo", "transport": "http", "url": "http://no-such-host.invalid/mcp"},
        )
        assert unknown.status_code == 422, unknown.text
        assert "url: cannot resolve no-such-host.invalid" in unknown.text
        stdio = await http.post(
            "/agent/servers", json={"name": "shell", "transport": "stdio", "command": "/bin/sh"}
        )
        assert stdio.status_code == 403 and "admin" in stdio.text  # a role refused, as elsewhere
        bad = await http.post("/agent/servers", json={"name": "x", "transport": "http"})
        assert bad.status_code == 422
        servers = (await http.get("/agent/servers")).json()
        assert [s["name"] for s in servers] == ["ambient"]
        assert (await http.delete("/agent/servers/nothing")).status_code == 404


STDIO_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("host-tools")


@server.tool()
def run_on_host(command: str) -> str:
    \"\"\"Runs a program on the API's host.\"\"\"
    return command


server.run("stdio")
"""


async def test_an_admin_demoted_to_member_no_longer_runs_the_stdio_servers_they_added(
    deps: WorkerDeps, tmp_path: Path
) -> None:
    """A stdio server runs a program on the API's host, so only an admin adds one; the admin
    role taken away, the agent no longer starts it (the grant is read at every use)."""
    root, ops = unique("root"), unique("ops")
    root_token, ops_token = await _user(deps, root, "admin"), await _user(deps, ops, "admin")
    script = tmp_path / "host_tools.py"
    script.write_text(STDIO_SERVER)
    as_root = {"Authorization": f"Bearer {root_token}"}
    async with signed_in_api(deps.settings, ops_token) as http:
        spec = {"name": "host", "transport": "stdio", "command": sys.executable}
        added = await http.post("/agent/servers", json={**spec, "args": [str(script)]})
        assert added.status_code == 201, added.text

        async def tools() -> set[str]:
            listed = await http.get("/agent/tools", params={"refresh": "true"})
            return {tool["tool"] for tool in listed.json()["tools"]}

        assert "run_on_host" in await tools()
        demoted = await http.patch(
            f"/users/{ops}/permissions", json={"role": "member"}, headers=as_root
        )
        assert demoted.status_code == 200, demoted.text
        assert "run_on_host" not in await tools()
        # The list says the server is not run, as its owner is no admin now.
        servers = {s["name"]: s["health"] for s in (await http.get("/agent/servers")).json()}
        assert servers == {"ambient": "active", "host": "off"}, servers


async def test_the_same_server_added_twice_at_once_is_added_once_and_the_other_told_why(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A form sent twice (a double click): both requests passed the check for the name before
    either stored it, and the second was answered 500 (the database's unique constraint)."""
    host = "mcp.twice.example"
    real_getaddrinfo = socket.getaddrinfo
    # Both requests' destination checks answer together: each then looks for the name at once.
    both = threading.Barrier(2, timeout=10)

    def dns(node: Any, *args: Any, **kwargs: Any) -> Any:
        name = node.decode() if isinstance(node, bytes) else node
        if name != host:
            return real_getaddrinfo(node, *args, **kwargs)
        both.wait()
        return real_getaddrinfo("93.184.216.34", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    token = await _user(deps, unique("twice"))
    async with signed_in_api(deps.settings, token) as http:
        names = [f"tools-{n}" for n in range(5)]
        for name in names:
            spec = {"name": name, "transport": "http", "url": f"http://{host}/mcp"}
            answers = await asyncio.gather(*(http.post("/agent/servers", json=spec) for _ in "ab"))
            codes = sorted(a.status_code for a in answers)
            assert codes == [201, 422], [a.text for a in answers]
            refused = next(a for a in answers if a.status_code == 422)
            assert f"already have an MCP server named {name!r}" in refused.text
            # Named as the spec's field, as the docs promise (its 422 named only "body").
            assert refused.json()["detail"][0]["loc"] == ["body", "name"], refused.text
        servers = (await http.get("/agent/servers")).json()
        assert [s["name"] for s in servers] == ["ambient", *names]


async def test_two_servers_added_at_once_past_the_limit_leave_the_user_at_the_limit(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two forms sent at once with one place left: both passed the count before either was
    stored, and the user had 11 servers where the limit is 10."""
    real_getaddrinfo = socket.getaddrinfo
    # The last two servers' destination checks answer together: each then counts at once.
    both = threading.Barrier(2, timeout=10)

    def dns(node: Any, *args: Any, **kwargs: Any) -> Any:
        name = node.decode() if isinstance(node, bytes) else node
        if not name.endswith(".limit.example"):
            return real_getaddrinfo(node, *args, **kwargs)
        if name.startswith("last-"):
            both.wait()
        return real_getaddrinfo("93.184.216.34", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    token = await _user(deps, unique("limit"))
    async with signed_in_api(deps.settings, token) as http:

        def spec(name: str, host: str = "mcp.limit.example") -> dict[str, Any]:
            return {"name": name, "transport": "http", "url": f"http://{host}/mcp"}

        for n in range(MAX_SERVERS - 1):
            assert (await http.post("/agent/servers", json=spec(f"s{n}"))).status_code == 201
        answers = await asyncio.gather(
            *(http.post("/agent/servers", json=spec(n, f"last-{n}.limit.example")) for n in "ab")
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 422], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 422)
        assert f"at most {MAX_SERVERS} MCP servers" in refused.text
        servers = (await http.get("/agent/servers")).json()
        assert len(servers) == 1 + MAX_SERVERS, [s["name"] for s in servers]


async def _turns(
    conversations: ConversationStore, llm: LLMApi, *said: str
) -> list[list[ChatEvent]]:
    """The events of each turn of one conversation with the scripted model ``llm``, no tools."""
    facade = AgentFacade(timeout_seconds=5)
    try:
        async with serve(llm.app()) as base:
            model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
            agent = ChatAgent(model, "standin", facade, system="be brief")
            conversation = await conversations.open("dev", None)
            return [[e async for e in agent.turn(conversation, text)] for text in said]
    finally:
        await facade.close()


async def test_a_model_endpoint_answering_no_chat_completion_ends_the_turn_with_an_error(
    conversations: ConversationStore,
) -> None:
    # A proxy's page, a completion without choices, an error sent with status 200: the person
    # reads an error event (the door's stream ends normally), not a cut-off stream.
    for answer in NO_COMPLETION:
        llm = LLMApi()
        llm.script(answer)
        [events] = await _turns(conversations, llm, "hello")
        assert [e.type for e in events] == ["error"], answer
        assert "answered no chat completion" in (events[0].text or ""), events


async def test_a_reply_cut_at_its_token_limit_says_so_and_a_cut_call_is_not_run(
    conversations: ConversationStore,
) -> None:
    # finish_reason "length" was never read: a reply cut off was shown as whole, and a call
    # whose arguments were cut was answered "not valid JSON", the model cut there again, for
    # all 8 rounds. Each request now asks for a bounded reply.
    llm = LLMApi()
    llm.script(
        Content("The checks failed because", finish="length"),
        ToolCalls([("echo", {"text": "a"})], finish="length"),
    )
    cut, call = await _turns(conversations, llm, "why?", "echo a")
    assert [e.type for e in cut] == ["message", "done"]
    assert cut[0].text == (
        "The checks failed because\n\n(the model's reply was cut off at its 2048-token limit)"
    )
    assert [e.type for e in call] == ["error"] and "cut off" in (call[0].text or ""), call
    assert len(llm.requests) == 2 and all(r["max_tokens"] == 2048 for r in llm.requests)


def _recording(app: Any, hits: list[str]) -> Any:
    """``app``, noting the path of every HTTP request that reaches it."""

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hits.append(scope["path"])
        await app(scope, receive, send)

    return recorded


async def test_an_agent_server_whose_name_now_resolves_to_loopback_is_not_dialed(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server's URL passed the guard when it was added; the name's owner then points it at
    this host's loopback (or the metadata address). Every dial passes the guard again, so the
    agent does not call into the API host's own ports."""
    name, host = unique("rebind"), "mcp.rebinding.example"
    # The DNS answers the test chooses for one name (the guard's rules are under test, not DNS):
    # a public address when the server is added, this host's loopback afterwards.
    answers = {host: "93.184.216.34"}
    real_getaddrinfo = socket.getaddrinfo

    def dns(node: Any, *args: Any, **kwargs: Any) -> Any:
        name = node.decode() if isinstance(node, bytes) else node  # anyio asks in bytes
        return real_getaddrinfo(answers.get(name, node), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    token = await _user(deps, name)
    hits: list[str] = []
    port = free_port()
    url = f"http://{host}:{port}/mcp"

    def api() -> Any:
        return http_client(headers={"Authorization": f"Bearer {token}"})

    # It answers whatever Host it is asked as, as a server on the API's host might.
    anyone = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    standin = toy_server().streamable_http_app(transport_security=anyone)
    async with serve(_recording(standin, hits), port=port):
        async with serve(create_app(deps.settings)) as base, api() as http:
            added = await http.post(
                f"{base}/agent/servers", json={"name": "tools", "transport": "http", "url": url}
            )
            assert added.status_code == 201, added.text
        answers[host] = "127.0.0.1"
        # Another API process (or this one after a restart): nothing of the first answer kept.
        async with serve(create_app(deps.settings)) as base, api() as http:
            listed = (await http.get(f"{base}/agent/tools", params={"refresh": "true"})).json()
            servers = (await http.get(f"{base}/agent/servers")).json()
    assert [t["tool"] for t in listed["tools"] if t["server"] == "tools"] == []
    assert listed["health"]["tools"] == "error", listed["health"]
    # ...and says why, where the person looks at their servers.
    problem = next(s["problem"] for s in servers if s["name"] == "tools")
    assert "'tools' is unavailable" in problem, servers
    assert hits == [], hits


def public_host(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """``host`` resolves to a public address (93.184.216.34) for the rest of the test."""
    real_getaddrinfo = socket.getaddrinfo

    def dns(node: Any, *args: Any, **kwargs: Any) -> Any:
        name = node.decode() if isinstance(node, bytes) else node
        return real_getaddrinfo("93.184.216.34" if name == host else node, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)


async def test_a_stored_servers_read_only_tools_change_without_retyping_its_secrets(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_only_tools could be set only when adding a server: changing it meant deleting and
    adding it again, retyping the header values every page shows as ***."""
    host = "mcp.allow.example"
    public_host(monkeypatch, host)
    user = unique("allow")
    token = await _user(deps, user)
    spec = {
        "name": "issues",
        "transport": "http",
        "url": f"http://{host}/mcp",
        "headers": {"Authorization": "Bearer s3cret"},
    }
    async with signed_in_api(deps.settings, token) as http:
        assert (await http.post("/agent/servers", json=spec)).status_code == 201
        changed = await http.patch("/agent/servers/issues", json={"read_only_tools": ["search"]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["spec"]["read_only_tools"] == ["search"]
        assert changed.json()["spec"]["headers"] == {"Authorization": "***"}
        # Nothing else is changed this way: a URL sent along is refused, not ignored.
        moved = await http.patch(
            "/agent/servers/issues", json={"read_only_tools": [], "url": "http://x.example/"}
        )
        assert moved.status_code == 422
        missing = await http.patch("/agent/servers/nothing", json={"read_only_tools": []})
        assert missing.status_code == 404
        servers = (await http.get("/agent/servers")).json()
    assert [s["spec"]["read_only_tools"] for s in servers[1:]] == [["search"]]
    async with deps.db.session() as session:
        stored = await session.scalar(select(AgentServer).where(AgentServer.user == user))
    assert stored is not None and stored.spec["headers"] == {"Authorization": "Bearer s3cret"}


async def test_read_only_tools_naming_a_tool_the_server_does_not_list_is_its_problem() -> None:
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server(
        "toy", lambda: Client(toy_server(), cache=None), read_only_tools=["echo", "ecoh"]
    )
    try:
        await facade.tools()
        assert (
            "read_only_tools names ecoh, which this server does not list"
            in (facade.problems()["toy"])
        )
        facade.allow_unasked("toy", ["echo"])
        await facade.tools()
        assert "toy" not in facade.problems()
    finally:
        await facade.close()


async def test_a_server_spec_with_a_field_it_does_not_take_or_past_its_length_is_refused(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo `header` dropped the token silently (the server then answered 401 at every
    use), a `command` on an http server was stored unused, and a 200,000-character URL was
    stored and sent with every connection. Each is refused naming its field; a spec stored
    before these rules still loads."""
    host = "mcp.strict.example"
    public_host(monkeypatch, host)
    user = unique("strict")
    token = await _user(deps, user, "admin")
    http_spec = {"name": "issues", "transport": "http", "url": f"http://{host}/mcp"}
    stdio_spec = {"name": "local", "transport": "stdio", "command": sys.executable}
    refused = [
        ({**http_spec, "header": {"Authorization": "Bearer s3cret"}}, "header"),
        ({**http_spec, "command": "/bin/sh"}, "command"),
        ({**http_spec, "env": {"A": "b"}}, "env"),
        ({**stdio_spec, "url": f"http://{host}/mcp"}, "url"),
        ({**stdio_spec, "headers": {"Authorization": "x"}}, "headers"),
        ({**http_spec, "url": f"http://{host}/" + "a" * 200_000}, "url"),
        ({**http_spec, "headers": {"Authorization": "x" * 8193}}, "headers"),
        ({**stdio_spec, "args": ["a" * 2049]}, "args"),
    ]
    async with signed_in_api(deps.settings, token) as http:
        for spec, field in refused:
            answer = await http.post("/agent/servers", json=spec)
            assert answer.status_code == 422, (field, answer.text[:300])
            assert len(answer.text) < 2000, answer.text[:300]
            assert [e["loc"][:2] for e in answer.json()["detail"]] == [["body", field]], field
        async with deps.db.session() as session:
            # Stored before today's rules: a field of the other transport, one unknown.
            stored = {**http_spec, "name": "old", "env": {"A": "b"}, "retired": 1}
            session.add(AgentServer(user=user, name="old", spec=stored))
            await session.commit()
        servers = (await http.get("/agent/servers")).json()
    assert [s["name"] for s in servers] == ["ambient", "old"]
