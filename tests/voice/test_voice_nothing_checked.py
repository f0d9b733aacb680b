""" "Nothing needs you, all is well" and "no errors" are said only when something is checking:
with no worker running, nothing was checked, sent or fixed (the answers were "一切正常" and
"没有错误" while greet and task_status said the worker was not running); and a briefing that
could not read yesterday's logs is no "no errors"."""

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
from tests.voice.support import say, voice_client, worker_state


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
