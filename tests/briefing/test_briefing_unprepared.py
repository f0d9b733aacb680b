"""A morning whose briefing could not be prepared: what its user hears and is pushed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx
from mcp import Client
from temporalio.exceptions import ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.greeting_answers import GreetOutcome, greeting_text
from ambient.briefing.models import BriefingStatus
from ambient.briefing.unprepared import (
    DATABASE_FAILED,
    NOT_PREPARED,
    NOT_PUSHED,
    NOT_RECORDED,
    Unprepared,
    not_prepared,
    unprepared_because,
    unprepared_push,
)
from ambient.deps import WorkerDeps
from ambient.domain.users import Role, UserCreate
from ambient.storage.repositories import DeliveryRepository, InboxRepository
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.briefing.harness import Stack, briefing_stack, briefings_away, make_user
from tests.support.api_worker import api_client, signed_in_api
from tests.support.mcp_as import mcp_as
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.waits import eventually

T = TypeVar("T")


async def test_a_briefing_that_could_not_be_prepared_is_said_at_a_greeting_and_pushed_once(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The database loses the briefings' table before the morning: the preparation fails at
    05:00 and again at Nina's greeting. The greeting said "see the briefing page", which shows
    nothing of it, and at the window's end nothing was pushed (no briefing to push): the
    morning went by in silence. Now the greeting says why and to greet again, and the window's
    end pushes once that the briefing could not be prepared, why, and what to do."""
    await make_user(deps.db, "nina")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day, first_run = await stack.created("nina", config)
        await briefings_away(deps.db)
        await stack.skip_to(day.prepare_at + timedelta(minutes=1))
        failed = await eventually(lambda: _failed_raw(stack, "nina"), "preparation failed")
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        heard = await stack.service.greet("nina", request_id="morning")
        await stack.skip_to(day.window_end + timedelta(minutes=1))
        await eventually(lambda: _next_day(stack, "nina", day.date), "the next day")
        await briefings_away(deps.db, away=False)
        await save_history(
            ts_env.client.get_workflow_handle("daily-briefing/nina", run_id=first_run),
            "daily_briefing_unprepared_pushed",
        )
    # The operator's detail stays in the run's status: the driver's own words.
    assert failed.preparation_error is not None and "briefings" in failed.preparation_error
    assert heard.outcome is GreetOutcome.UNAVAILABLE, heard
    assert heard.text == (
        "Hello! Today's briefing could not be prepared: the database that keeps the briefings"
        " did not answer. Greet me again in a few minutes and I'll try once more."
    )
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list("nina")
        deliveries = await DeliveryRepository(session).under(
            "nina", f"daily-briefing/nina/{day.date}/push"
        )
    assert [(m.kind, m.title) for m in inbox] == [
        ("briefing", f"Daily briefing {day.date}: not prepared")
    ]
    # No model in tests: it sent them to the assistant, which answers it cannot chat.
    assert deps.settings.llm_mode == "offline"
    assert inbox[0].body == (
        f"This morning's briefing ({day.date}) could not be prepared: the database that keeps"
        " the briefings did not answer.\n\nYesterday's logs can still be read: call"
        " analyze_logs from an MCP client (it needs no language model). Tomorrow's briefing is"
        " prepared as usual; if it fails again, tell your administrator."
    )
    assert [(d.channel, d.status) for d in deliveries] == [("inbox", "sent")]


async def _next_day(stack: Stack, user: str, date: str):  # type: ignore[no-untyped-def]
    status = await stack.service.status(user)
    return status if status.day is not None and status.day.date > date else None


def test_a_failed_preparation_is_told_in_the_users_terms_without_its_error_text() -> None:
    database = ApplicationError(
        "(psycopg) connection to db.internal:5432 refused", type=DATABASE_FAILED
    )
    timed_out = ActivityTimeout("", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[])
    crashed = ApplicationError("KeyError: 'token=abc'", type="KeyError")
    told = {
        unprepared_because(cause): greeting_text(
            GreetOutcome.UNAVAILABLE, "zh", unprepared=unprepared_because(cause)
        )
        for cause in (database, timed_out, crashed, None)
    }
    assert told == {
        Unprepared.DATABASE: (
            "你好！今天的简报没能准备好：保存简报的数据库没有响应。过几分钟再叫我，我会再试一次。"
        ),
        Unprepared.TOO_LONG: (
            "你好！今天的简报没能准备好：准备的时间超过了上限。过几分钟再叫我，我会再试一次。"
        ),
        Unprepared.OTHER: (
            "你好！今天的简报没能准备好：准备时出了内部错误，管理员可以在任务状态里看到原因。"
            "过几分钟再叫我，我会再试一次。"
        ),
    }
    pushed = unprepared_push(Unprepared.DATABASE, "zh", "2026-12-01")
    assert pushed.title == "每日简报 2026-12-01：没能准备好"
    assert "db.internal" not in pushed.body and "保存简报的数据库没有响应" in pushed.body
    # The assistant with a model; with none (the notify activity's choice), the tool.
    assert "请让助手分析昨天的日志（analyze_logs）" in pushed.said_in("zh").body
    offline = pushed.said_in("zh", model=False)
    assert offline.title == pushed.title and offline.no_model is None
    assert (
        "昨天的日志仍然可以查看：在 MCP 客户端里调用 analyze_logs（不需要语言模型）。"
        in offline.body
    )


async def test_a_failed_preparations_database_text_is_an_admins_a_member_reads_what_to_do(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The status (get_task_status, GET /briefings/daily) and a regenerate's refusal said the
    driver's message to every user (the table, the SQL, a host). An admin still reads it;
    a member reads that the briefing could not be prepared, why as the greeting says it (it
    said "an internal error or the database stopped it", though the run knew which), and what
    to do. A regenerate whose
    preparation failed answered 422, as if the request were wrong: nothing in it was, the
    server could not prepare it now, a 503 as with the database down (the page says it in
    the member's language)."""
    async with deps.db.session() as session:
        tokens = {
            "mel": (await UserRepository(session).create(UserCreate(name="mel")))[1],
            "ada": (await UserRepository(session).create(UserCreate(name="ada", role=Role.ADMIN)))[
                1
            ],
        }
        await session.commit()
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        for user in ("mel", "ada"):
            await stack.service.create(user, config)
        await briefings_away(deps.db)
        await stack.skip_to(day.prepare_at + timedelta(minutes=1))
        for user in ("mel", "ada"):
            await eventually(lambda u=user: _failed_raw(stack, u), "preparation failed")
        told: dict[str, tuple[Any, str, Any]] = {}
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": stack.worker.task_queue,
                "temporal_address": ts_env.client.service_client.config.target_host,
            }
        )
        answered: dict[str, httpx.Response] = {}
        for user in ("mel", "ada"):
            async with signed_in_api(settings, tokens[user]) as http:
                daily = (await http.get("/briefings/daily")).json()
                answered[user] = await _skipping(stack, http.post("/briefings/regenerate"))
            async with _mcp(ts_env, deps, stack, user) as client:
                status = await client.call_tool("get_task", {"task_id": f"daily-briefing/{user}"})
                refused = await _skipping(stack, client.call_tool("regenerate_briefing", {}))
            assert not status.is_error and refused.is_error, (status, refused)
            detail = (status.structured_content or {})["detail"]
            said = refused.content[0].text  # type: ignore[union-attr]
            told[user] = (detail["preparation_error"], said, daily["preparation_error"])
        shown = {}
        async with serve(create_app(settings)) as base:
            for language in ("zh", "en"):
                async with api_client(
                    base,
                    cookies={"ambient_token": tokens["mel"]},
                    headers={"origin": base, "accept-language": language},
                ) as page:
                    action = page.post("/app/briefings/action", data={"action": "regenerate"})
                    shown[language] = unquote((await _skipping(stack, action)).headers["location"])
        # Whoever runs the server (the CLI) reads a member's as an admin does.
        by_operator = await stack.service.status("mel", operator=True)
        await briefings_away(deps.db, away=False)
    assert by_operator.preparation_error and "briefings" in by_operator.preparation_error
    member_status, member_refusal, member_api = told["mel"]
    because = not_prepared(Unprepared.DATABASE)
    assert because.startswith("the briefing could not be prepared: the database that keeps ")
    assert (answered["mel"].status_code, answered["mel"].json()) == (
        503,
        {"detail": f"regenerate failed: {because}"},
    )
    assert member_status == member_api == because
    assert (
        member_refusal == f"Error executing tool regenerate_briefing: regenerate failed: {because}"
    )
    # In English (no catalog) the page cut the words at their first "; ": what to do was lost.
    assert shown["en"].endswith(f"msg=Regenerate failed: {because}"), shown["en"]
    assert shown["zh"].endswith(
        "msg=重新生成失败：简报没能准备好：保存简报的数据库没有响应。"
        "过几分钟再打招呼或重新生成；如果再次失败，请告诉管理员，管理员可以在任务状态里看到原因。"
    )
    admin_status, admin_refusal, admin_api = told["ada"]
    assert "briefings" in admin_status and admin_status == admin_api != NOT_PREPARED
    assert "preparation failed: " in admin_refusal and "briefings" in admin_refusal
    admin_said = answered["ada"].json()["detail"]
    assert answered["ada"].status_code == 503 and "briefings" in admin_said
    assert admin_said == admin_refusal.removeprefix("Error executing tool regenerate_briefing: ")


async def _skipping(stack: Stack, request: Awaitable[T]) -> T:
    """``request``'s answer, time skipped while it waits: waiting on an update skips no time,
    and the preparation's retries wait for it."""
    waiting = asyncio.ensure_future(request)
    while not waiting.done():
        await stack.skip_to(await stack.now() + timedelta(seconds=10))
    return waiting.result()


async def _failed_raw(stack: Stack, user: str):  # type: ignore[no-untyped-def]
    status = await stack.service.read_status(user)
    return status if status is not None and status.preparation_error is not None else None


@asynccontextmanager
async def _mcp(
    env: WorkflowEnvironment, deps: WorkerDeps, stack: Stack, user: str
) -> AsyncIterator[Client]:
    settings = deps.settings.model_copy(update={"temporal_task_queue": stack.worker.task_queue})
    async with mcp_as(deps, user, temporal=env.client, settings=settings) as client:
        yield client


def test_a_members_status_says_a_failed_record_or_push_in_words_and_keeps_their_channels() -> None:
    """What the database or the notify activity said (a driver's text) is an admin's; a member
    reads what failed. A push's failure on the member's own channel stays: theirs to mend."""
    day = "2026-12-01"
    run = BriefingStatus(
        user="mel",
        task_id="daily-briefing/mel",
        config=BriefingConfig(timezone="Asia/Shanghai"),
        preparation_error="BriefingDatabaseFailed: (psycopg.OperationalError) db-1.internal:5432",
        record_error=f"{day}: (psycopg.OperationalError) connection to db-1.internal failed",
        push_error=f"{day}: notify could not reach the database: db-1.internal:5432 refused",
    )
    member = run.told(operator=False)
    assert (member.preparation_error, member.record_error, member.push_error) == (
        NOT_PREPARED,
        f"{day}: {NOT_RECORDED}",
        f"{day}: {NOT_PUSHED}",
    )
    assert run.told(operator=True) == run
    for channels in (f"{day}: wecom: HTTP 500", f"{day}: transient delivery failures: email: 550"):
        pushed = run.model_copy(update={"push_error": channels})
        assert pushed.told(operator=False).push_error == channels


async def test_a_failed_preparation_through_the_task_door_is_a_503_too() -> None:
    """``POST /tasks/daily-briefing/{user}/trigger`` runs the same regenerate: its failed
    preparation was an InvalidTaskError, a 422 naming the body's config."""
    from fastapi import HTTPException

    from ambient.briefing.errors import BriefingUnavailableError
    from ambient.watches.reads import TaskReads
    from api.routers.tasks import http_error

    async def failed() -> None:
        raise BriefingUnavailableError(f"regenerate failed: {NOT_PREPARED}")

    try:
        await TaskReads._briefing(failed())
    except Exception as exc:
        answer = http_error(exc)  # type: ignore[arg-type]
    assert isinstance(answer, HTTPException)
    assert (answer.status_code, answer.detail) == (503, f"regenerate failed: {NOT_PREPARED}")
