""" "Nothing needs you, all is well" and "no errors" are said only when something is checking:
with no worker running, nothing was checked, sent or fixed (the answers were "一切正常" and
"没有错误" while greet and task_status said the worker was not running), nor while Temporal, which
runs every task, cannot be reached or does not say in time; and a briefing that could not read
yesterday's logs is no "no errors"."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig, plan_for
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from mcp_server import voice_sentences as sentences
from tests.briefing.harness import write_day_logs
from tests.conftest import running_worker, unique
from tests.support.waits import eventually
from tests.voice.support import (
    say,
    voice_client,
    voice_with_silent_temporal,
    voice_without_temporal,
    worker_state,
)


async def _user(deps: WorkerDeps, language: Language = Language.ZH) -> str:
    name = unique("nc")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=name, language=language))
        await session.commit()
    return name


async def test_with_no_worker_nothing_found_is_said_as_nothing_checked(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user, english = await _user(deps), await _user(deps, Language.EN)
    state = worker_state(dev_env.client, deps, unique("tq-none"))
    for who in (user, english):
        await state.tasks.create(who, "schedule", {"hour": 9, "message": "stand-up"}, name="su")
    async with voice_client(state, user) as client:
        assert await say(client, "what_needs_me") == sentences.NO_WORKER_NEEDS
        assert await say(client, "recent_errors") == sentences.NO_WORKER_ERRORS
    async with voice_client(state, english) as client:
        assert await say(client, "what_needs_me") == sentences.NO_WORKER_NEEDS_EN
        assert await say(client, "recent_errors") == sentences.NO_WORKER_ERRORS_EN
    # A worker on that queue: the same questions are answered as before.
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        async with voice_client(state, user) as client:
            assert await say(client, "what_needs_me") == "现在没有需要你处理的事，一切正常。"
            assert await say(client, "recent_errors") == "最近 24 小时没有错误。"


async def test_a_briefing_that_could_not_read_the_logs_is_no_no_errors(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    zone = "Asia/Shanghai"
    day = plan_for(datetime.now(ZoneInfo(zone)).date(), BriefingConfig(timezone=zone))
    gone = write_day_logs(tmp_path / "gone.log", day)
    user = await _user(deps)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        window = {"prepare_at": "00:00", "window_start": "00:00", "window_end": "23:59"}
        source = {"type": "file", "path": str(gone)}
        await state.briefings.create(
            user, {"timezone": zone, **window, "language": "zh", "log_source": source}
        )
        gone.unlink()  # gone before the preparation reads it

        async def prepared() -> object:
            status = await state.briefings.read_status(user)
            return status if status is not None and status.prepared is not None else None

        await eventually(prepared, "the day's briefing prepared")
        async with voice_client(state, user) as client:
            said = await say(client, "recent_errors")
    assert said == "最近 24 小时你的任务没有出错，但最新的简报没能读取日志。", said


async def test_with_temporal_unreachable_no_errors_is_said_as_nothing_checked(
    deps: WorkerDeps,
) -> None:
    """Temporal refusing the connection: no task runs, and recent_errors said "最近 24 小时没有
    错误。" (the probe of its workers took "not known" for a worker polling). Now the errors
    recorded are said to be none and that nothing is being checked, with the span asked."""
    user, english = await _user(deps), await _user(deps, Language.EN)
    async with voice_without_temporal(deps, user) as voice:
        said = await say(voice, "recent_errors")
        two_days = await say(voice, "recent_errors", hours="两天")
    async with voice_without_temporal(deps, english) as voice:
        said_en = await say(voice, "recent_errors", hours=1)
    assert said == sentences.TEMPORAL_DOWN_ERRORS.format(span=" 24 小时"), said
    assert said == (
        "最近 24 小时没有记录到错误，但后台的 Temporal 服务连不上，现在任务没有在检查。"
        "请检查它是否在运行。"
    )
    assert two_days == sentences.TEMPORAL_DOWN_ERRORS.format(span="两天"), two_days
    assert said_en == (
        "No errors recorded in the last hour, but I can't reach the Temporal service, so nothing"
        " is being checked right now. Please check that it is running."
    ), said_en


async def test_with_temporal_not_answering_no_errors_is_said_as_not_confirmed(
    deps: WorkerDeps,
) -> None:
    """A Temporal that does not answer in time is not known to be down (a loaded host is
    slow): "no errors" is said with that it could not be confirmed that tasks are checked."""
    user, english = await _user(deps), await _user(deps, Language.EN)
    async with voice_with_silent_temporal(deps, user) as voice:
        said = await say(voice, "recent_errors", hours=12)
    async with voice_with_silent_temporal(deps, english) as voice:
        said_en = await say(voice, "recent_errors")
    assert said == "最近 12 小时没有记录到错误，不过我这会儿没能确认任务是否在检查。", said
    assert said_en == (
        "No errors recorded in the last 24 hours, but I couldn't confirm right now that your"
        " tasks are being checked."
    ), said_en


async def test_with_temporal_refusing_to_say_who_polls_nothing_found_is_not_all_is_well(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Temporal answering every read but refusing to say which workers poll the task queue
    (here a queue name past its limit): what_needs_me said "一切正常" though nothing was known
    to check the task. Now that is said to be unconfirmed."""
    user, english = await _user(deps), await _user(deps, Language.EN)
    state = worker_state(dev_env.client, deps, unique("tq-none"))
    for who in (user, english):
        await state.tasks.create(who, "schedule", {"hour": 9, "message": "stand-up"}, name="su")
    refused = worker_state(dev_env.client, deps, "q" * 1100)  # "taskQueue length exceeds limit"
    async with voice_client(refused, user) as client:
        needs = await say(client, "what_needs_me")
        errors = await say(client, "recent_errors")
    async with voice_client(refused, english) as client:
        needs_en = await say(client, "what_needs_me")
    assert needs == "没有记录到需要你处理的事，不过我这会儿没能确认任务是否在检查。", needs
    assert errors == sentences.UNCONFIRMED_ERRORS.format(span=" 24 小时"), errors
    assert needs_en == (
        "Nothing needing you is recorded, but I couldn't confirm right now that your tasks are"
        " being checked."
    ), needs_en
