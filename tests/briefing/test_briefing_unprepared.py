"""A morning whose briefing could not be prepared: what its user hears and is pushed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from temporalio.exceptions import ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.models import GreetOutcome, greeting_text
from ambient.briefing.unprepared import (
    DATABASE_FAILED,
    Unprepared,
    unprepared_because,
    unprepared_push,
)
from ambient.deps import WorkerDeps
from ambient.storage.repositories import DeliveryRepository, InboxRepository
from tests.briefing.harness import Stack, briefing_stack, make_user
from tests.support.record import save_history
from tests.support.waits import eventually


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
        async with deps.db.session() as session:
            await session.execute(text("ALTER TABLE briefings RENAME TO briefings_away"))
            await session.commit()
        await stack.skip_to(day.prepare_at + timedelta(minutes=1))
        failed = await eventually(lambda: _failed(stack, "nina"), "preparation failed")
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        heard = await stack.service.greet("nina", request_id="morning")
        await stack.skip_to(day.window_end + timedelta(minutes=1))
        await eventually(lambda: _next_day(stack, "nina", day.date), "the next day")
        async with deps.db.session() as session:
            await session.execute(text("ALTER TABLE briefings_away RENAME TO briefings"))
            await session.commit()
        await save_history(
            ts_env.client.get_workflow_handle("daily-briefing/nina", run_id=first_run),
            "daily_briefing_unprepared_pushed",
        )
    # The operator's detail stays in the status: the driver's own words.
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
    assert inbox[0].body == (
        f"This morning's briefing ({day.date}) could not be prepared: the database that keeps"
        " the briefings did not answer.\n\nYesterday's logs can still be read: ask the"
        " assistant to analyze them (analyze_logs). Tomorrow's briefing is prepared as usual;"
        " if it fails again, tell your administrator."
    )
    assert [(d.channel, d.status) for d in deliveries] == [("inbox", "sent")]


async def _failed(stack: Stack, user: str):  # type: ignore[no-untyped-def]
    status = await stack.service.status(user)
    return status if status.preparation_error is not None else None


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
