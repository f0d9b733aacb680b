"""A day whose logs were not all read is never said as a quiet one: a day of lines mostly
without a time read here, and a rotated file broken off, were both spoken "Yesterday was
quiet" while their errors went unread."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig, DayPlan
from ambient.briefing.models import GreetOutcome
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, make_user


async def spoken(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    user: str,
    language: str,
    logs: Callable[[DayPlan], Path],
) -> tuple[str, list[str]]:
    """The briefing the user's first greeting gets, over the logs ``logs`` writes for its day:
    what is spoken, and what happened as the briefing page lists it."""
    await make_user(deps.db, user)
    async with briefing_stack(env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language=language)
        day = await stack.plan(config)
        source = {"type": "file", "path": str(logs(day))}
        await stack.service.create(user, config.model_dump(mode="json") | {"log_source": source})
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        result = await stack.service.greet(user, request_id="one", via="voice")
        view = await stack.service.get_briefing(user, day.date)
    assert result.outcome is GreetOutcome.SPOKEN
    return result.text, view.content.what_happened


def _lines(day: DayPlan, hours: int, level: str, message: str, count: int) -> str:
    start = day.logs_from + timedelta(hours=hours)
    return "".join(
        json.dumps(
            {
                "time": (start + timedelta(seconds=i)).isoformat(),
                "level": level,
                "message": f"{message} {i}",
            }
        )
        + "\n"
        for i in range(count)
    )


async def test_a_rotated_file_that_breaks_off_is_not_said_quiet(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    def logs(day: DayPlan) -> Path:
        folder = tmp_path / "app"
        folder.mkdir()
        (folder / "app.log").write_text(_lines(day, 14, "INFO", "GET /health 200", 50))
        morning = gzip.compress(_lines(day, 2, "ERROR", "payment timeout", 300).encode())
        (folder / "app.log.1.gz").write_bytes(morning[:20])  # broken off: its errors unread
        return folder

    said, happened = await spoken(ts_env, deps, "rita", "en", logs)
    assert "quiet" not in said and "not all logs could be read" in said, said
    assert any("could not be read to the end" in line for line in happened), happened


async def test_a_day_mostly_unreadable_is_not_said_quiet(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    def logs(day: DayPlan) -> Path:
        log = tmp_path / "app.log"
        untimed = "".join(f"ERROR payment timeout after {i} ms\n" for i in range(500))
        log.write_text(_lines(day, 1, "INFO", "started worker", 10) + untimed)  # no time read
        return log

    said, _ = await spoken(ts_env, deps, "ugo", "zh", logs)
    assert "一切平稳" not in said and "日志没能全部读取" in said, said
