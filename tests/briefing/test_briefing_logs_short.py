"""A day whose logs were not all read is never said as a quiet one: a day of lines mostly
without a time read here, and a rotated file broken off, were both spoken "Yesterday was
quiet" while their errors went unread; with no line read at all, they were "No logs were
recorded yesterday"."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig, DayPlan
from ambient.briefing.greeting_answers import GreetOutcome
from ambient.briefing.models import BriefingView
from ambient.deps import WorkerDeps
from ambient.storage import Database
from ambient.storage.models import LogBaselineRow
from tests.briefing.harness import briefing_stack, heard, make_user


async def briefed(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    user: str,
    language: str,
    logs: Callable[[DayPlan], Path],
) -> tuple[str, BriefingView]:
    """The briefing the user's first greeting gets, over the logs ``logs`` writes for its day:
    what is spoken, and the briefing as its page shows it."""
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
    return result.text, view


async def spoken(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    user: str,
    language: str,
    logs: Callable[[DayPlan], Path],
) -> tuple[str, list[str]]:
    """What is spoken, and what happened as the briefing page lists it."""
    said, view = await briefed(env, deps, user, language, logs)
    return said, view.content.what_happened


async def baseline_days(db: Database, user: str) -> list[dict[str, int]]:
    """The days of the user's stored log baseline."""
    async with db.session() as session:
        row = await session.get(LogBaselineRow, user)
    return list(row.data.get("days", [])) if row is not None else []


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


async def test_a_day_partly_read_is_no_day_of_the_baseline(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A day whose morning file broke off was kept in the 7-day baseline with the counts of
    its afternoon alone: the days after it compared their errors with a day of none, "rose"."""

    def logs(day: DayPlan) -> Path:
        folder = tmp_path / "app"
        folder.mkdir()
        (folder / "app.log").write_text(_lines(day, 14, "ERROR", "payment timeout", 5))
        morning = gzip.compress(_lines(day, 2, "ERROR", "payment timeout", 300).encode())
        (folder / "app.log.1.gz").write_bytes(morning[:20])  # broken off: its errors unread
        return folder

    _, view = await briefed(ts_env, deps, "rv7c", "en", logs)
    happened = view.content.what_happened
    assert view.content.errors == 5 and "could not be read to the end" in happened[0], happened
    assert await baseline_days(deps.db, "rv7c") == []


@pytest.mark.parametrize(
    ("language", "headline"),
    [
        (
            "en",
            "Yesterday: at least 5 errors (not all logs could be read), no problem needs a person",
        ),
        ("zh", "昨天至少有 5 个错误（日志没能全部读取），没有问题需要人工处理"),
    ],
)
async def test_the_errors_of_a_day_partly_read_are_spoken_as_a_floor(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, language: str, headline: str
) -> None:
    """A day whose morning file broke off, with 5 errors in its afternoon: 小智 said
    "Yesterday: 5 errors" / "昨天有 5 个错误" as if those were the day's, the page's list alone
    saying a file was not read to its end. The spoken headline says at least 5, and why."""

    def logs(day: DayPlan) -> Path:
        folder = tmp_path / "app"
        folder.mkdir()
        (folder / "app.log").write_text(_lines(day, 14, "ERROR", "payment timeout", 5))
        morning = gzip.compress(_lines(day, 2, "ERROR", "payment timeout", 300).encode())
        (folder / "app.log.1.gz").write_bytes(morning[:20])  # broken off: its errors unread
        return folder

    said, view = await briefed(ts_env, deps, f"rv8{language}", language, logs)
    assert heard(headline, said) and view.content.headline == headline, said


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


async def test_yesterdays_rotated_file_broken_off_with_no_line_read_is_not_no_logs(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Rotated at midnight: yesterday is all in app.log.1.gz, which breaks off before its
    first line; app.log holds only today's lines. It was said "No logs were recorded
    yesterday" and kept in the baseline as a day of none."""

    def logs(day: DayPlan) -> Path:
        folder = tmp_path / "app"
        folder.mkdir()
        (folder / "app.log").write_text(_lines(day, 24, "INFO", "GET /health 200", 50))
        yesterday = gzip.compress(_lines(day, 2, "ERROR", "payment timeout", 300).encode())
        (folder / "app.log.1.gz").write_bytes(yesterday[:20])  # broken off
        return folder

    said, view = await briefed(ts_env, deps, "rv7a", "en", logs)
    assert "No logs were recorded yesterday" not in said, said
    assert heard("Yesterday: not all logs could be read", said), said
    assert view.content.headline == "Yesterday: not all logs could be read"
    assert view.content.what_happened[0] == (
        "No log lines were read, and 1 log file could not be read to the end (see Sources)"
    )
    assert await baseline_days(deps.db, "rv7a") == []


async def test_a_day_whose_every_line_is_unreadable_is_not_said_to_have_no_logs(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The service changed its log format yesterday: the file's earlier lines have times,
    yesterday's 500 none read here (counted unreadable). Said "No logs were recorded
    yesterday" / 昨天没有日志记录: a day of unread logs spoken as a day without any."""

    def logs(day: DayPlan) -> Path:
        log = tmp_path / "app.log"
        before = _lines(day, -48, "INFO", "started worker", 10)
        untimed = "".join(f"ERROR payment timeout after {i} ms\n" for i in range(500))
        log.write_text(before + untimed)
        return log

    said, view = await briefed(ts_env, deps, "rv7b", "zh", logs)
    sources = {s.source: s.detail for s in view.content.sources}
    assert "500 unreadable" in sources["logs"], sources
    assert "昨天没有日志记录" not in said and "昨天的日志没能全部读取" in said, said
    assert view.content.what_happened[0] == "没有读到日志行，另有 500 行无法读取（见数据源）"
    assert await baseline_days(deps.db, "rv7b") == []
