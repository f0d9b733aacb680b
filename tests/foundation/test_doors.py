"""One table of bad task inputs through all four doors: MCP (the real client), the REST API,
the web form (web monitors alone) and the CLI. Each door refuses in its own shape — a tool
error, a 422 naming the field, the form's message with its field label, exit 1 with the
message — and nothing is created, because every rule is the service's (TaskService), not a
door's."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from mcp import Client
from pydantic import SecretStr
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.briefing.service import BriefingService
from ambient.cli import app as cli
from ambient.deps import WorkerDeps
from ambient.domain.users import NAME_RULE, UserCreate
from ambient.storage.users import UserRepository
from ambient.watches.inputs import ConfigError, InvalidTaskError
from ambient.watches.service import TaskService
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from tests.conftest import unique
from tests.support.api_worker import api_client
from tests.support.servers import serve
from tests.support.users import register

PAGE = "https://example.com/"
PROM = {"type": "prometheus", "url": "https://prom.example.com", "query": "sum(up)"}
SECRETS = {"ops": "admins-only"}
NAME = "doors"  # every refused create asks for this name: its task id must not exist after


@dataclass(frozen=True)
class Bad:
    """A bad create: the config (and name), where the service says it is wrong, and what."""

    case: str
    config: dict[str, Any]
    where: tuple[str | int, ...]
    says: str
    name: str = NAME
    # The web form's fields for it (None: a form cannot say it) and the label it shows.
    form: dict[str, str] | None = None
    label: str = ""
    kind: str = "web_monitor"  # the form creates web monitors alone


BAD = [
    Bad(
        "bad URL",
        {"urls": ["not a url"]},
        ("config", "urls", 0),
        "Input should be a valid URL",
        form={"urls": "not a url"},
        label="Pages, line 1",
    ),
    Bad(
        "private-network destination",
        {"urls": ["http://10.1.2.3/status"]},
        ("config", "urls", 0),
        "refused destination 10.1.2.3",
        form={"urls": "http://10.1.2.3/status"},
        label="Pages, line 1",
    ),
    Bad(
        "unknown field",
        {"urls": [PAGE], "keyword": ["AI"]},
        ("config", "keyword"),
        "not a field here: did you mean keywords? (fields: check_interval_minutes, ",
    ),
    Bad(
        "bad schedule",
        {"urls": [PAGE], "check_interval_minutes": 0},
        ("config", "check_interval_minutes"),
        "Input should be greater than or equal to 1",
        form={"urls": PAGE, "interval": "0"},
        label="Every (minutes)",
    ),
    # A name's refusal says it is the name, and what a name may be (MCP said "invalid config";
    # the API a too long one in pydantic's words, "String should have at most 63 characters").
    *(
        Bad(
            case,
            {"urls": [PAGE]},
            ("name",),
            NAME_RULE,
            name=name,
            form={"urls": PAGE} if name else None,  # the form's empty name is no name
            label="Name (optional)",
        )
        for case, name in (
            ("bad name", "Not A Name!"),
            ("empty name", ""),
            ("too long a name", "n" * 64),
            ("name with a control character", "bad\x07name"),
        )
    ),
    Bad(
        # " " matched every new line of every page with a space in it: a hit at each change.
        "blank keyword",
        {"urls": [PAGE], "keywords": [" "]},
        ("config", "keywords", 0),
        "a keyword of only spaces",
    ),
    Bad(
        # U+200B and U+FEFF are no whitespace to str.strip(): the keyword was kept and matched
        # no line a person reads, so the watch never told of a change.
        "keyword of invisible characters",
        {"urls": [PAGE], "keywords": ["\u200b\ufeff"]},
        ("config", "keywords", 0),
        "a keyword of only invisible characters (U+200B U+FEFF) matches nothing",
    ),
    # Letters and symbols drawn blank, and a combining mark with nothing to sit on, were taken
    # as keywords (they are no format characters, and strip() keeps them): a watch that never
    # told of a change. The form's strip() keeps them too, so it says so with its label.
    *(
        Bad(
            f"keyword of {name}",
            {"urls": [PAGE], "keywords": [keyword]},
            ("config", "keywords", 0),
            f"a keyword of only invisible characters ({codes}) matches nothing",
            form={"urls": PAGE, "keywords": keyword},
            label="Keywords, line 1",
        )
        for name, keyword, codes in (
            ("a Hangul filler", "\u3164", "U+3164"),
            ("the braille blank", "\u2800", "U+2800"),
            ("a lone combining grapheme joiner", "\u034f", "U+034F"),
            ("the Hangul jamo and halfwidth fillers", "\u115f\u1160\uffa0", "U+115F U+1160 U+FFA0"),
            ("joiners and marks", "\u180e\u200d\u2060\u2064", "U+180E U+200D U+2060 U+2064"),
        )
    ),
    # One invisible character inside a word ("err" U+200B "or", pasted from a page or a chat)
    # was kept: the keyword matched no line a person reads, and the watch never told of one.
    *(
        Bad(
            f"keyword with {name} inside a word",
            {"urls": [PAGE], "keywords": ["AI", keyword]},
            ("config", "keywords", 1),
            f"a keyword with an invisible character inside it ({code} at character {at}) "
            "matches nothing a person reads on a page",
            form={"urls": PAGE, "keywords": f"AI\n{keyword}"},
            label="Keywords, line 2",
        )
        for name, keyword, code, at in (
            ("a zero width space", "err\u200bor", "U+200B", 4),
            ("a soft hyphen", "time\u00adout", "U+00AD", 5),
            ("a word joiner", "disk full\u2060ed", "U+2060", 10),
            ("a byte order mark", "d\ufeffown", "U+FEFF", 2),
        )
    ),
    Bad(
        # A trailing "|" matched the empty text, so every new line of every page was a hit.
        "keyword pattern that matches empty text",
        {"urls": [PAGE], "keywords": ["re:error|warning|"]},
        ("config", "keywords", 0),
        "'error|warning|' matches empty text, so every line",
    ),
    Bad(
        "another user's inbox as a target",
        {"urls": [PAGE], "targets": [{"type": "inbox", "target": "someone-else"}]},
        ("config", "targets", 0),
        "an inbox target is your own inbox",
    ),
    # A metric source's credentials name a server secret the caller may use: an admin's, or
    # a name nobody defined (said alike: which names exist is not told), or a token written
    # in place of secret:NAME (it would be kept in history and status), each refused.
    *(
        Bad(
            case,
            {"source": PROM | {"auth": {"type": "bearer", "secret": secret}}, "threshold": 1},
            where,
            says,
            kind="threshold_watch",
        )
        for case, secret, where, says in (
            (
                "a secret not the caller's as a source's auth",
                "secret:ops",
                ("config", "source", "auth", "secret"),
                "secret 'ops' is not available to",
            ),
            (
                "an unknown secret as a source's auth",
                "secret:nobody-defined",
                ("config", "source", "auth", "secret"),
                "secret 'nobody-defined' is not available to",
            ),
            (
                "a literal token as a source's auth",
                "tok-123",
                ("config", "source", "prometheus", "auth", "secret"),
                "give the credentials as secret:NAME",
            ),
        )
    ),
]


@dataclass
class Doors:
    """The four doors, all acting as ``me``, over one database and one Temporal server."""

    me: str
    other_task: str  # a task of another user, which no door may touch
    service: TaskService  # to look behind the doors
    state: AppState  # MCP's
    http: httpx.AsyncClient  # bearer token: the REST API
    page: httpx.AsyncClient  # session cookie: the web form
    cli_env: dict[str, str]
    base: str

    def mcp(self) -> Client:
        """The MCP door; a test enters it itself (a fixture cannot own its cancel scope)."""
        return Client(build_server(self.state.settings, holder=StateHolder(self.state)))

    async def cli(self, *args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=self.cli_env)
        assert "Traceback" not in result.output
        return result.exit_code, result.output

    async def form(self, path: str, data: dict[str, str]) -> str:
        """The message the form's redirect shows, or the notice of the form shown again (a
        refused form keeps what was typed: 422)."""
        answer = await self.page.post(path, data=data, headers={"referer": f"{self.base}/app"})
        if answer.status_code == 422:
            notice = re.search(r'<p class="notice" role="status">(.*?)</p>', answer.text)
            assert notice is not None, answer.text
            return html.unescape(notice.group(1))
        assert answer.status_code == 303, answer.text
        return parse_qs(urlsplit(answer.headers["location"]).query)["msg"][0]


@pytest_asyncio.fixture
async def doors(dev_env: WorkflowEnvironment, deps: WorkerDeps) -> AsyncIterator[Doors]:
    me, other = unique("door"), unique("other")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=me))
        await UserRepository(session).create(UserCreate(name=other))
        await session.commit()
    settings = deps.settings.model_copy(
        update={
            "temporal_address": dev_env.client.service_client.config.target_host,
            "secrets": {name: SecretStr(value) for name, value in SECRETS.items()},
        }
    )
    service = TaskService(
        dev_env.client,
        settings,
        deps.db,
        briefings=BriefingService(dev_env.client, settings, deps.db),
    )
    # A schedule needs no worker: the other user's task is there for the whole test.
    other_task = (await service.create(other, "schedule", {"hour": 9, "message": "x"})).task_id
    state = AppState(
        settings=settings,
        db=deps.db,
        temporal=dev_env.client,
        channels=deps.channels,
        stdio_user=me,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env |= {
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": settings.temporal_address,
        "AMBIENT_SECRETS": json.dumps(SECRETS),
    }
    async with (
        serve(create_app(settings)) as base,
        api_client(base, headers={"Authorization": f"Bearer {token}"}) as http,
        api_client(base, cookies={"ambient_token": token}) as page,
    ):
        yield Doors(me, other_task, service, state, http, page, env, base)


def _named(where: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in where)


@pytest.mark.parametrize("bad", BAD, ids=[bad.case for bad in BAD])
async def test_every_door_refuses_a_bad_task_naming_the_field_and_creates_nothing(
    doors: Doors, bad: Bad
) -> None:
    async with doors.mcp() as mcp:
        arguments = {"config": bad.config, "name": bad.name}
        result = await mcp.call_tool(f"create_{bad.kind}", arguments)  # the tool of its kind
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error and f"{_named(bad.where)}: {bad.says}" in text, text
    head = "invalid task name" if bad.where == ("name",) else "invalid config"
    assert text.startswith(f"Error executing tool create_{bad.kind}: {head} — "), text

    answer = await doors.http.post(
        "/tasks", json={"type": bad.kind, "config": bad.config, "name": bad.name}
    )
    assert answer.status_code == 422, answer.text
    (detail,) = answer.json()["detail"]
    assert detail["loc"] == ["body", *bad.where] and bad.says in detail["msg"], detail
    # The refused value is echoed, as FastAPI's own 422s do (it was "input": null).
    sent: Any = {"config": bad.config, "name": bad.name}
    for key in bad.where:
        # (a source's type, which pydantic names in the location of its union's member)
        sent = sent[key] if not isinstance(sent, dict) or key in sent else sent
    assert detail["input"] == sent, detail

    code, output = await doors.cli(
        "task", "create", bad.kind, "--config", json.dumps(bad.config),
        "--name", bad.name, "--user", doors.me,
    )  # fmt: skip
    assert code == 1 and f"{_named(bad.where)}: {bad.says}" in output, output
    assert f"{head} — " in output, output

    if bad.form is not None:
        message = await doors.form("/app/tasks", {**bad.form, "name": bad.name})
        assert message.startswith(f"Not created: {bad.label}: {bad.says}"), message

    # Nothing was created: no task of that name, none at all.
    with pytest.raises(RPCError) as missing:
        kind = bad.kind.replace("_", "-")
        await doors.service.client.get_workflow_handle(f"{kind}/{doors.me}/{NAME}").describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND
    assert list(await doors.service.list(doors.me)) == []


# Every way each door reads or steers a task: (MCP tool, its arguments), (API method, path
# after the task id, body), CLI command and arguments, the web page's action (None: none).
NEW_CONFIG = {"hour": 10, "message": "mine now"}
STEERS = {
    "read": (("get_task", {}), ("GET", "/status", None), ("show",), "read"),
    "pause": (("pause_task", {}), ("POST", "/pause", None), ("pause",), "pause"),
    "resume": (("resume_task", {}), ("POST", "/resume", None), ("resume",), "resume"),
    "trigger": (("trigger_task", {}), ("POST", "/trigger", None), ("trigger",), "trigger"),
    "update": (
        ("update_task", {"config": NEW_CONFIG}),
        ("PUT", "/config", NEW_CONFIG),
        ("update", "--config", json.dumps(NEW_CONFIG)),
        None,
    ),
    "delete": (("delete_task", {}), ("DELETE", "", None), ("delete",), "delete"),
}


@pytest.mark.parametrize("steer", list(STEERS))
async def test_no_door_reads_or_steers_a_task_of_another_user(doors: Doors, steer: str) -> None:
    (tool, args), (method, path, body), command, action = STEERS[steer]
    task = doors.other_task
    async with doors.mcp() as mcp:
        result = await mcp.call_tool(tool, {"task_id": task, **args})
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error and f"no task {task!r} for user {doors.me!r}" in text, text

    answer = await doors.http.request(method, f"/tasks/{task}{path}", json=body)
    assert answer.status_code == 404 and f"no task {task!r}" in answer.json()["detail"]

    code, output = await doors.cli("task", command[0], task, *command[1:], "--user", doors.me)
    assert code == 1 and f"no task {task!r} for user {doors.me!r}" in output, output

    if action == "read":  # the task's page sends whoever is not its owner back to theirs
        shown = await doors.page.get("/app/task", params={"id": task})
        assert shown.status_code == 303, shown.text
        message = parse_qs(urlsplit(shown.headers["location"]).query)["msg"][0]
    elif action is not None:
        message = await doors.form("/app/tasks/action", {"task_id": task, "action": action})
    if action is not None:
        assert message == "That task is not one of yours; it may have been deleted."

    other = task.split("/")[1]
    status = await doors.service.get(other, task)
    assert (status.state, status.config["message"], status.checks) == ("active", "x", 0)


async def test_every_door_says_an_update_of_a_missing_task_finds_no_task_before_its_config(
    doors: Doors,
) -> None:
    # A config refused for a task that does not exist was answered about the config: the user
    # fixed it, and was then told there is no such task.
    for task, bad in (
        (f"web-monitor/{doors.me}/never-made", {"urls": ["not a url"]}),
        (f"reminder/{doors.me}/never-made", {"hour": 99, "message": "x"}),
    ):
        missing = f"no task {task!r}; call list_tasks to see your task ids"
        async with doors.mcp() as mcp:
            result = await mcp.call_tool("update_task", {"task_id": task, "config": bad})
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert result.is_error and text == f"Error executing tool update_task: {missing}", text

        answer = await doors.http.put(f"/tasks/{task}/config", json=bad)
        assert (answer.status_code, answer.json()) == (404, {"detail": missing}), answer.text

        code, output = await doors.cli(
            "task", "update", task, "--config", json.dumps(bad), "--user", doors.me
        )
        assert code == 1 and f"no task {task!r}" in output, output


async def test_the_service_refuses_another_users_inbox_whoever_calls_it(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # A door that calls the service directly (the web form, voice, a bench) gets every rule.
    service = TaskService(
        dev_env.client,
        deps.settings,
        deps.db,
        briefings=BriefingService(dev_env.client, deps.settings, deps.db),
    )
    config = {"urls": [PAGE], "targets": [{"type": "inbox", "target": "someone-else"}]}
    user = unique("direct")
    await register(deps.db, user)
    with pytest.raises(ConfigError) as refused:
        await service.create(user, "web_monitor", config, NAME)
    assert refused.value.errors[0][0] == ("config", "targets", 0)


async def test_every_door_refuses_an_overlong_task_id_by_name_without_quoting_it(
    doors: Doors,
) -> None:
    # A 100 KB task id went to Temporal and came back whole in "no task '...'" (a 100 KB tool
    # error, API 404, CLI line); a remediation id and a briefing date the same way.
    huge = f"web-monitor/{doors.me}/" + "d" * 100_000
    async with doors.mcp() as mcp:
        said = {}
        for tool, args in (
            ("get_task", {"task_id": huge}),
            ("pause_task", {"task_id": huge}),
            ("get_remediation", {"remediation_id": "remediation/" + "r" * 100_000}),
            ("approve_remediation", {"remediation_id": "r" * 100_000, "approve": True}),
            ("get_briefing", {"date": "2" * 100_000}),
        ):
            result = await mcp.call_tool(tool, args)
            said[tool] = " ".join(getattr(c, "text", "") for c in result.content)
            assert result.is_error and len(said[tool]) < 300, said[tool][:300]
    assert "task_id: at most 255 characters" in said["get_task"], said
    assert "task_id: at most 255 characters" in said["pause_task"], said
    assert "remediation_id: at most 255 characters" in said["get_remediation"], said
    assert "remediation_id: at most 255 characters" in said["approve_remediation"], said
    assert said["get_briefing"].endswith("… is not a date as YYYY-MM-DD"), said

    answer = await doors.http.get(f"/tasks/{huge[:30_000]}/status")
    assert answer.status_code == 422 and len(answer.text) < 500, answer.text[:300]
    assert answer.json()["detail"][0]["loc"] == ["path", "task_id"], answer.text[:300]

    code, output = await doors.cli("task", "delete", huge[:30_000], "--user", doors.me)
    assert code != 0 and "task_id: at most 255 characters" in output and len(output) < 300


async def test_every_door_refuses_a_news_category_that_shows_nothing_and_creates_nothing(
    doors: Doors,
) -> None:
    # A category is a keyword of a digest's pages: one of a Hangul filler or the braille blank
    # kept no news, and the digest (or the briefing's news) was sent empty every morning.
    digest = {"news_urls": [PAGE], "categories": ["AI", "\u3164"]}
    says = "config.categories.1: a keyword of only invisible characters (U+3164) matches nothing"
    async with doors.mcp() as mcp:
        result = await mcp.call_tool(
            "create_background_task", {"type": "news_digest", "config": digest}
        )
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert result.is_error and says in text, text
        result = await mcp.call_tool("create_daily_briefing", {"categories": ["\u2800"]})
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert (
            result.is_error
            and "categories.0: a keyword of only invisible characters (U+2800)" in text
        ), text

    answer = await doors.http.post("/tasks", json={"type": "news_digest", "config": digest})
    assert answer.status_code == 422, answer.text
    (detail,) = answer.json()["detail"]
    assert detail["loc"] == ["body", "config", "categories", 1], detail
    assert detail["input"] == "\u3164" and "(U+3164) matches nothing" in detail["msg"], detail
    answer = await doors.http.post("/briefings/daily", json={"categories": ["\u2800"]})
    assert answer.status_code == 422, answer.text
    (detail,) = answer.json()["detail"]
    assert detail["loc"] == ["body", "categories", 0], detail
    assert detail["input"] == "\u2800" and "(U+2800) matches nothing" in detail["msg"], detail

    code, output = await doors.cli(
        "task", "create", "news_digest", "--config", json.dumps(digest), "--user", doors.me
    )
    assert code == 1 and says in " ".join(output.split()), output

    assert list(await doors.service.list(doors.me)) == []
    with pytest.raises(RPCError) as missing:
        await doors.service.client.get_workflow_handle(f"daily-briefing/{doors.me}").describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("message", "what"),
    [("   ", "only spaces"), ("\u2800\u034f", "only invisible characters (U+2800 U+034F)")],
)
async def test_every_door_refuses_a_reminder_of_only_spaces(
    doors: Doors, message: str, what: str
) -> None:
    # A reminder "   " was created (a Schedule that says nothing each morning); one of a
    # braille blank was refused as "only spaces", which is not what its user typed.
    config = {"hour": 9, "message": message}
    says = f"config.message: {what}: a reminder says its text, so write one"
    async with doors.mcp() as mcp:
        result = await mcp.call_tool(
            "create_background_task", {"type": "schedule", "config": config}
        )
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error and says in text, text
    answer = await doors.http.post("/tasks", json={"type": "schedule", "config": config})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "config", "message"], answer.text
    code, output = await doors.cli(
        "task", "create", "schedule", "--config", json.dumps(config), "--user", doors.me
    )
    assert code == 1 and says in output, output
    assert list(await doors.service.list(doors.me)) == []


async def test_a_refused_new_config_names_its_field_where_each_door_takes_the_config(
    doors: Doors,
) -> None:
    # PUT /tasks/{id}/config takes the config as its body: a 422 named body.config.message, a
    # field the body does not have. MCP's update_task takes it as its `config` argument.
    created = await doors.http.post(
        "/tasks", json={"type": "schedule", "config": {"hour": 9, "message": "stand-up"}}
    )
    assert created.status_code == 201, created.text
    task = created.json()["task_id"]
    bad = {"hour": 9, "message": "   "}
    answer = await doors.http.put(f"/tasks/{task}/config", json=bad)
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", "message"]], answer.text
    async with doors.mcp() as mcp:
        result = await mcp.call_tool("update_task", {"task_id": task, "config": bad})
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error and "config.message: only spaces" in text, text


# A task or briefing for a user nobody registered (`--user ghost`, a mistyped `ambient mcp
# --user`) was created: nobody saw it and nothing was delivered. Each door, each kind, refused.
GHOST = [
    ("web monitor", "create_web_monitor", {"config": {"urls": [PAGE]}}, "task",
     ("create", "web_monitor", "--config", json.dumps({"urls": [PAGE]}))),
    ("reminder", "create_reminder", {"config": {"hour": 9, "message": "stand-up"}}, "task",
     ("create", "schedule", "--config", json.dumps({"hour": 9, "message": "stand-up"}))),
    ("daily briefing", "create_daily_briefing", {}, "briefing", ("create",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tool", "args", "group", "command"), [g[1:] for g in GHOST], ids=[g[0] for g in GHOST]
)
async def test_every_door_refuses_a_task_for_an_unregistered_user_and_creates_nothing(
    doors: Doors, tool: str, args: dict[str, Any], group: str, command: tuple[str, ...]
) -> None:
    ghost = unique("ghost")
    says = f"no user {ghost!r}: an admin registers it (ambient user create {ghost})"
    state = dataclasses.replace(doors.state, stdio_user=ghost)
    async with Client(build_server(state.settings, holder=StateHolder(state))) as mcp:
        result = await mcp.call_tool(tool, args)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error and says in text, text

    code, output = await doors.cli(group, *command, "--user", ghost)
    assert code == 1 and says in " ".join(output.split()), output

    with pytest.raises(InvalidTaskError) as listed:  # nothing there: the name is refused
        await doors.service.list(ghost)
    assert str(listed.value) == says
    with pytest.raises(RPCError) as missing:
        await doors.service.client.get_workflow_handle(f"daily-briefing/{ghost}").describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND


async def test_a_refused_task_name_is_echoed_in_the_422(doors: Doors) -> None:
    # A Chinese task name got a 422 naming body.name with "input": null: the value was lost.
    body = {"type": "schedule", "config": {"hour": 9, "message": "stand-up"}, "name": "站会"}
    answer = await doors.http.post("/tasks", json=body)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "name"] and error["input"] == "站会", answer.text
    assert list(await doors.service.list(doors.me)) == []
