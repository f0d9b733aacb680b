"""The briefing's push through a channel that does not come back: what the user reads of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.deps import WorkerDeps
from ambient.storage.repositories import DeliveryRepository, EventRepository
from tests.briefing.harness import Stack, briefing_stack, make_user
from tests.support.record import save_history
from tests.support.waits import eventually


async def test_a_push_whose_channel_stays_down_ends_in_a_failure_that_says_it_is_final(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A robot answering 500 at every try: the first failure says it will be retried, and
    once the retries are spent the last one says they are over (not "retrying" for good)."""
    from ambient.clients.notify.registry import build_channels
    from tests.notify.standins import WECOM_KEY, PushEndpoints
    from tests.support.servers import serve

    bots = PushEndpoints(failures={"wecom": ["500"] * 20})
    async with serve(bots.app()) as bot_base:
        deps.settings = deps.settings.model_copy(update={"wecom_base_url": bot_base})
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        channels = [{"type": "wecom", "target": WECOM_KEY, "kinds": ["briefing"]}]
        await make_user(deps.db, "dora", {"channels": channels})
        async with briefing_stack(ts_env, deps) as stack:
            config = BriefingConfig(timezone="Asia/Shanghai", language="en")
            day, first_run = await stack.created("dora", config)
            await stack.skip_to(day.window_end + timedelta(minutes=1))
            status = await _push_given_up(stack, "dora")
            view = await eventually(
                lambda: _pushed_row(stack.service, "dora", day.date), "push recorded"
            )
            await save_history(
                ts_env.client.get_workflow_handle("daily-briefing/dora", run_id=first_run),
                "daily_briefing_push_given_up",
            )
    tries = 20 - len(bots.failures["wecom"])
    assert tries == 5 and bots.received == []
    assert status.push_error is not None and "wecom" in status.push_error
    async with deps.db.session() as session:
        failed = await EventRepository(session).list(user="dora", kind="delivery.failed")
    assert [e.payload["retrying"] for e in reversed(failed)] == [True, False]
    assert all(e.payload["channel"] == "wecom" for e in failed)
    # Filed under the briefing, as list_events and list_deliveries filter by task.
    assert all(e.task == "daily-briefing/dora" for e in failed)
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).list(user="dora", task="daily-briefing/dora")
    assert sorted((r.channel, r.status) for r in rows) == [("inbox", "sent"), ("wecom", "failed")]
    # The inbox took it: the day reads pushed (with the dead channel said), not "ready".
    assert view.status == "pushed" and view.given_at is None


async def _push_given_up(stack: Stack, user: str):  # type: ignore[no-untyped-def]
    """The status once the push's retries are spent, moving the clock past each backoff."""
    for _ in range(400):
        # The run's own status, failures as their texts say them (what an admin reads).
        status = await stack.service.read_status(user)
        if status is not None and status.push_error:
            return status
        await stack.env.sleep(timedelta(seconds=5))
    raise AssertionError("the push never gave up")


async def _pushed_row(service, user, date):  # type: ignore[no-untyped-def]
    view = await service.get_briefing(user, date)
    return view if view.pushed_at is not None else None


async def test_a_push_the_database_did_not_record_is_shown_and_the_next_day_still_runs(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody greeted; at the window's end the push went out but its row could not be
    written (the database away past the retries): the workflow failed, and the daily
    briefing was gone from then on (no next day, "no daily briefing" at every door)."""
    from ambient.storage.briefings import BriefingRepository

    await make_user(deps.db, "ezra")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day, first_run = await stack.created("ezra", config)
        with monkeypatch.context() as patched:
            patched.setattr(BriefingRepository, "mark_pushed", _refuse)
            await stack.skip_to(day.window_end + timedelta(minutes=1))
            status = await _push_given_up(stack, "ezra")
        later = await eventually(lambda: _next_day(stack, "ezra", day.date), "the next day")
        await save_history(
            ts_env.client.get_workflow_handle("daily-briefing/ezra", run_id=first_run),
            "daily_briefing_push_not_recorded",
        )
    assert status.push_error == f"{day.date}: database away"
    assert later.push_error == f"{day.date}: database away"


async def _refuse(*_args, **_kwargs):  # type: ignore[no-untyped-def]
    raise ApplicationError("database away", non_retryable=True)


async def _next_day(stack: Stack, user: str, date: str):  # type: ignore[no-untyped-def]
    status = await stack.service.read_status(user)
    return status if status and status.day is not None and status.day.date > date else None


class _FailedHere:
    """A channel the product fails, not its receiver: a bug, or the app's database refusing
    the post's progress."""

    def __init__(self, name: str, error: Exception) -> None:
        self.name, self._error = name, error

    async def send(self, *_args: object, **_kwargs: object) -> None:
        raise self._error


async def test_a_member_reads_a_push_the_product_failed_in_words_not_its_drivers_text(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A channel's failure stays in a member's status as theirs to mend; one the database or
    a bug made ("email: permanent: IntegrityError: …") was shown them too, a driver's text."""
    import sqlite3

    from sqlalchemy.exc import IntegrityError

    from ambient.briefing.unprepared import NOT_PUSHED
    from ambient.clients.notify.base import ChannelRegistry
    from ambient.clients.notify.inbox import InboxChannel

    refused = IntegrityError("UPDATE", {}, sqlite3.IntegrityError("db-1.internal refused"))
    deps.channels = ChannelRegistry(
        [
            InboxChannel(deps.db),
            _FailedHere("email", refused),
            _FailedHere("sms", TypeError("a bug in a channel")),
        ]
    )
    channels = [
        {"type": "email", "target": "fay@example.com", "kinds": ["briefing"]},
        {"type": "sms", "target": "+8613800000000", "kinds": ["briefing"]},
    ]
    await make_user(deps.db, "fay", {"channels": channels})
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day, _ = await stack.created("fay", config)
        await stack.skip_to(day.window_end + timedelta(minutes=1))
        status = await _push_given_up(stack, "fay")
        member = await stack.service.status("fay")
    assert status.push_error is not None
    assert "IntegrityError: db-1.internal refused" in status.push_error, status.push_error
    assert "TypeError: a bug in a channel" in status.push_error, status.push_error
    assert member.push_error == f"{day.date}: {NOT_PUSHED}"
