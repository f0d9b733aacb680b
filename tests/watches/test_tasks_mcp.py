"""Task tools end to end on the dev server: visibility queries, search attributes, schedules."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from jsonschema import Draft202012Validator
from mcp import Client
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from ambient.watches.inputs import InvalidTaskError
from ambient.wiring import AppState, StateHolder
from mcp_server.server import build_server
from tests.conftest import running_worker, unique
from tests.support.waits import eventually

ORIGINAL = [
    {
        "type": "web_monitor",
        "config": {
            "urls": ["https://techcrunch.com", "https://news.ycombinator.com"],
            "keywords": ["artificial intelligence", "AI", "machine learning"],
            "check_interval_minutes": 30,
            "notification": {"method": "send_sms", "phone_number": "+1234567890"},
        },
    },
    {
        "type": "schedule",
        "config": {
            "type": "daily",
            "hour": 8,
            "minute": 0,
            "action": "news_digest",
            "news_urls": ["https://techcrunch.com"],
            "notification": {"method": "send_sms", "phone_number": "+1234567890"},
        },
    },
    {
        "type": "news_digest",
        "config": {
            "news_urls": ["https://techcrunch.com", "https://bbc.com/news"],
            "hour": 8,
            "categories": ["technology", "business"],
            "notification": {"method": "send_sms", "phone_number": "+1234567890"},
        },
    },
    {
        "type": "threshold_watch",
        "config": {
            "metric": "bitcoin_price",
            "threshold": 50000,
            "check_interval_minutes": 15,
            "notification": {"method": "send_sms", "phone_number": "+1234567890"},
        },
    },
]


@pytest_asyncio.fixture
async def app(dev_env: WorkflowEnvironment, deps: WorkerDeps) -> AsyncIterator[AppState]:
    user = unique("u")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user))
        await session.commit()
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        # Tests enter the MCP client themselves: a fixture cannot own its cancel scope.
        yield AppState(
            settings=settings,
            db=deps.db,
            temporal=dev_env.client,
            channels=deps.channels,
            stdio_user=user,
        )


def mcp(state: AppState, read_only: bool = False) -> Client:
    return Client(build_server(state.settings, holder=StateHolder(state), read_only=read_only))


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_of(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_original_task_configs_are_accepted_and_listed(
    app: AppState,
) -> None:
    state = app
    async with mcp(state) as client:
        user = state.stdio_user
        ids = []
        for example in ORIGINAL:
            created = await call(client, "create_background_task", **example)
            ids.append(created["task_id"])
        assert ids[0].startswith(f"web-monitor/{user}/")
        assert ids[1].startswith(f"reminder/{user}/") and ids[2].startswith(f"reminder/{user}/")
        assert ids[3].startswith(f"threshold-watch/{user}/")

        again = await call(client, "create_background_task", **ORIGINAL[0])
        assert again == {**again, "task_id": ids[0], "created": False}

        async def all_listed() -> bool:
            listed = (await call(client, "list_tasks"))["tasks"]
            return {t["task_id"] for t in listed} == set(ids)

        await eventually(all_listed)
        listed = (await call(client, "list_tasks"))["tasks"]
        assert {(t["kind"], t["state"]) for t in listed} == {
            ("web_monitor", "active"),
            ("news_digest", "active"),
            ("threshold_watch", "active"),
        }
        watch = await call(client, "get_task", task_id=ids[3])
        assert watch["config"]["source"]["json_path"] == "$.data.amount"  # bitcoin_price resolved
        for task_id in ids:
            await call(client, "delete_task", task_id=task_id)


async def test_pause_resume_update_and_delete_through_search_attributes(
    app: AppState,
) -> None:
    async with mcp(app) as client:
        config = {"urls": ["https://example.com/a"], "check_interval_minutes": 60}
        task_id = (await call(client, "create_web_monitor", config=config, name="docs"))["task_id"]
        assert (await call(client, "pause_task", task_id=task_id))["state"] == "paused"

        async def listed_as(state: str) -> bool:
            tasks = (await call(client, "list_tasks", state=state))["tasks"]
            return task_id in [t["task_id"] for t in tasks]

        await eventually(lambda: listed_as("paused"))
        await call(client, "resume_task", task_id=task_id)
        await eventually(lambda: listed_as("active"))

        message = await error_of(
            client, "update_task", task_id=task_id, config={**config, "check_interval_minutes": 0.2}
        )
        assert "check_interval_minutes" in message and "greater than or equal to 1" in message
        assert (await call(client, "get_task", task_id=task_id))["config"][
            "check_interval_minutes"
        ] == 60
        updated = await call(
            client, "update_task", task_id=task_id, config={**config, "check_interval_minutes": 5}
        )
        assert updated["config"]["check_interval_minutes"] == 5

        await call(client, "delete_task", task_id=task_id)
        await eventually(lambda: listed_as("stopped"))
        assert "is stopped" in await error_of(client, "pause_task", task_id=task_id)
        # Its config wrong too, it is said stopped first: a config fixed was then told so.
        bad = {**config, "check_interval_minutes": 0.2}
        said = await error_of(client, "update_task", task_id=task_id, config=bad)
        assert "is stopped" in said and "check_interval_minutes" not in said, said


async def test_bad_input_gets_a_clear_tool_error(app: AppState) -> None:
    async with mcp(app) as client:
        assert "urls" in await error_of(client, "create_web_monitor", config={"urls": []})
        assert "known metrics: bitcoin_price" in await error_of(
            client, "create_threshold_watch", config={"metric": "gold", "threshold": 1}
        )
        assert "list_tasks" in await error_of(
            client, "get_task", task_id="web-monitor/someone-else/x"
        )
        assert "unknown IANA time zone" in await error_of(
            client, "create_reminder", config={"message": "hi", "timezone": "Mars/Base"}
        )


async def test_reminder_schedule_pauses_triggers_and_notifies(
    app: AppState,
) -> None:
    state = app
    async with mcp(state) as client:
        config = {
            "type": "weekly",
            "days": ["mon", "fri"],
            "hour": 9,
            "minute": 30,
            "timezone": "Asia/Shanghai",
            "message": "Weekly ops review",
        }
        task_id = (await call(client, "create_reminder", config=config, name="review"))["task_id"]
        status = await call(client, "get_task", task_id=task_id)
        assert status["kind"] == "schedule" and status["detail"]["next_runs"]
        assert (await call(client, "pause_task", task_id=task_id))["state"] == "paused"
        await call(client, "resume_task", task_id=task_id)
        await call(client, "trigger_task", task_id=task_id)

        async def delivered() -> bool:
            async with state.db.session() as session:
                inbox = await InboxRepository(session).list(state.stdio_user or "")
            return [m.body for m in inbox] == ["Weekly ops review"]

        await eventually(delivered)
        await call(client, "delete_task", task_id=task_id)
        assert "no task" in await error_of(client, "get_task", task_id=task_id)


async def test_a_paused_reminder_triggered_is_sent_and_stays_paused(app: AppState) -> None:
    """README: trigger runs a paused task's check once (a reminder: sends it), the task stays
    paused and the answer says so (the service's answer, the same through every door)."""
    config = {"type": "daily", "hour": 7, "timezone": "Asia/Shanghai", "message": "held"}
    async with mcp(app) as client:
        task_id = (await call(client, "create_reminder", config=config))["task_id"]
        await call(client, "pause_task", task_id=task_id)
        answer = await call(client, "trigger_task", task_id=task_id)

        async def delivered() -> bool:
            async with app.db.session() as session:
                inbox = await InboxRepository(session).list(app.stdio_user or "")
            return "held" in [m.body for m in inbox]

        await eventually(delivered)
        status = await call(client, "get_task", task_id=task_id)
        await call(client, "delete_task", task_id=task_id)
    assert answer["state"] == "paused" and status["state"] == "paused"


async def test_read_only_server_keeps_only_read_task_tools(app: AppState) -> None:
    async with mcp(app, read_only=True) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"get_status", "list_tasks", "get_task"} <= names
    assert not names & {"create_web_monitor", "update_task", "delete_task", "pause_task"}


async def test_creating_the_same_reminder_twice_returns_the_first(app: AppState) -> None:
    config = {"type": "daily", "hour": 7, "message": "coffee"}
    async with mcp(app) as client:
        first = await call(client, "create_reminder", config=config)
        again = await call(client, "create_reminder", config=config)
        await call(client, "delete_task", task_id=first["task_id"])
    assert first["created"] is True
    assert again == {**first, "created": False}


async def test_list_tasks_pages_through_every_task_once(app: AppState) -> None:
    async with mcp(app) as client:
        ids = [
            (await call(client, "create_reminder", config={"message": f"m{i}"}, name=f"p{i}"))[
                "task_id"
            ]
            for i in range(3)
        ]

        async def paged() -> list[str]:
            seen: list[str] = []
            token = None
            while True:
                args: dict[str, Any] = {"page_size": 1}
                if token:
                    args["page_token"] = token
                page = await call(client, "list_tasks", **args)
                assert len(page["tasks"]) <= 1
                seen += [t["task_id"] for t in page["tasks"]]
                token = page["next_page_token"]
                if token is None:
                    return seen

        async def all_paged() -> bool:
            return sorted(await paged()) == sorted(ids)

        await eventually(all_paged)
        for task_id in ids:
            await call(client, "delete_task", task_id=task_id)


async def test_the_daily_briefing_id_works_with_the_generic_task_tools(app: AppState) -> None:
    async with mcp(app) as client:
        created = await call(client, "create_daily_briefing", timezone="Asia/Shanghai")
        task_id = created["task_id"]
        assert task_id == f"daily-briefing/{app.stdio_user}"

        async def listed_as(state: str) -> bool:
            tasks = (await call(client, "list_tasks", kind="daily_briefing"))["tasks"]
            return [(t["task_id"], t["state"]) for t in tasks] == [(task_id, state)]

        await eventually(lambda: listed_as("active"))
        got = await call(client, "get_task", task_id=task_id)
        assert (got["kind"], got["state"]) == ("daily_briefing", "active")
        assert (await call(client, "pause_task", task_id=task_id))["state"] == "paused"
        await eventually(lambda: listed_as("paused"))
        message = await error_of(
            client, "update_task", task_id=task_id, config={"window_end": "05:00"}
        )
        assert "window_end" in message
        moved = {"timezone": "Europe/Berlin", "window_end": "11:00"}
        updated = await call(client, "update_task", task_id=task_id, config=moved)
        assert updated["config"] == {**updated["config"], **moved}
        assert updated["state"] == "paused"
        # What the tool took, its published schema takes too (it was a watch's or a reminder's).
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        check = Draft202012Validator(tools["update_task"].input_schema)
        assert list(check.iter_errors({"task_id": task_id, "config": moved})) == []
        assert (await call(client, "resume_task", task_id=task_id))["state"] == "active"
        assert (await call(client, "delete_task", task_id=task_id))["state"] == "stopped"


async def test_list_tasks_without_a_page_size_answers_a_bounded_page_and_its_cursor(
    app: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default page is 50; three tasks over a default of two show the same bound.
    monkeypatch.setattr("mcp_server.tools.tasks.DEFAULT_PAGE_SIZE", 2)
    async with mcp(app) as client:
        ids = [
            (await call(client, "create_reminder", config={"message": f"b{i}"}, name=f"b{i}"))[
                "task_id"
            ]
            for i in range(3)
        ]

        async def all_listed() -> bool:
            first = await call(client, "list_tasks")
            if len(first["tasks"]) != 2 or first["next_page_token"] is None:
                return False
            rest = await call(client, "list_tasks", page_token=first["next_page_token"])
            seen = [t["task_id"] for t in first["tasks"] + rest["tasks"]]
            return sorted(seen) == sorted(ids) and rest["next_page_token"] is None

        await eventually(all_listed)
        for task_id in ids:
            await call(client, "delete_task", task_id=task_id)


async def test_a_page_token_not_from_a_list_is_a_readable_tool_error(app: AppState) -> None:
    async with mcp(app) as client:
        text = await error_of(client, "list_tasks", page_token="not-a-token")
    assert "page_token: not a token from a previous list; omit it to start again" in text


async def test_creating_the_daily_briefing_again_with_another_config_is_refused(
    app: AppState,
) -> None:
    """A second create_daily_briefing with other (or omitted) arguments put its config in
    place of the running one and answered created: true: an assistant that "set up the
    briefing" again with defaults reset the user's news categories, time zone and push
    setting unasked. It is refused now, as the other create_* tools refuse another config
    under a name in use; update_task changes it."""
    mine = {
        "categories": ["kubernetes", "postgres"],
        "timezone": "Europe/Berlin",
        "push_if_not_greeted": False,
    }
    async with mcp(app) as client:
        first = await call(client, "create_daily_briefing", **mine)
        assert first["created"] is True
        refused = await error_of(client, "create_daily_briefing")
        # The generic create (POST /tasks, `ambient task create`) refuses it too.
        with pytest.raises(InvalidTaskError, match="already runs with another config"):
            await app.tasks.create(app.stdio_user or "", "daily_briefing", {})
        same = await call(client, "create_daily_briefing", **mine)
        config = (await call(client, "get_task", task_id=first["task_id"]))["config"]
        await call(client, "delete_task", task_id=first["task_id"])
    assert "already runs with another config" in refused and "update_task" in refused, refused
    assert same["created"] is False
    assert (config["categories"], config["timezone"], config["push_if_not_greeted"]) == (
        ["kubernetes", "postgres"],
        "Europe/Berlin",
        False,
    ), config


def _token(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode()


async def test_a_page_token_with_a_changed_temporal_token_is_refused_as_stale(
    app: AppState,
) -> None:
    """A page token whose wrapper decodes but whose Temporal token was changed (a character
    copied wrong by a model, or a token of another deployment) failed the tool after some 10 s
    of retries ("Error executing tool list_tasks"); a cursor whose moment is out of range,
    with an OverflowError. Both are the stale token's refusal now."""
    async with mcp(app) as client:
        for hour in (7, 8, 9):
            config = {"type": "daily", "hour": hour, "message": f"m{hour}"}
            await call(client, "create_reminder", config=config)
        token = None

        async def paged() -> bool:
            nonlocal token
            token = (await call(client, "list_tasks", page_size=1, kind="schedule"))[
                "next_page_token"
            ]
            return token is not None

        await eventually(paged, "a page of schedules with a token after it")
        assert token is not None
        raw = json.loads(base64.urlsafe_b64decode(token))
        assert raw["p"] == "schedules" and raw["t"], raw
        inner = bytearray(base64.b64decode(raw["t"]))
        inner[len(inner) // 2] ^= 0x55
        changed = base64.b64encode(bytes(inner)).decode()
        unfiltered = json.dumps([None, None, False])  # an ended-phase token is a watch list's
        cursors = [
            {**raw, "t": changed},
            {**raw, "p": "ended", "t": changed, "a": unfiltered},
            {**raw, "t0": 10**20},
            {**raw, "p": "running", "t0": -(10**20)},
            {**raw, "p": "running", "s": 10**20, "r": "abc"},
        ]
        said = [
            await error_of(
                client,
                "list_tasks",
                page_size=1,
                page_token=_token(cursor),
                **({} if cursor["a"] == unfiltered else {"kind": "schedule"}),
            )
            for cursor in cursors
        ]
    for text in said:
        assert "page_token: not a token from a previous list; omit it to start again" in text, said
