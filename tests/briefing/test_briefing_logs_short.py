"""A day whose logs were not all read is never said as a quiet one: a day of lines mostly
without a time read here, and a rotated file broken off, were both spoken "Yesterday was
quiet" while their errors went unread."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.models import GreetOutcome
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, make_user


async def test_a_rotated_file_that_breaks_off_is_not_said_quiet(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    await make_user(deps.db, "rita")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        folder = tmp_path / "app"
        folder.mkdir()
        live = [
            {
                "time": (day.logs_from + timedelta(hours=14, minutes=i)).isoformat(),
                "level": "INFO",
                "message": f"GET /health 200 in {i} ms",
            }
            for i in range(50)
        ]
        (folder / "app.log").write_text("\n".join(json.dumps(x) for x in live) + "\n")
        morning = [
            {
                "time": (day.logs_from + timedelta(hours=2, seconds=i)).isoformat(),
                "level": "ERROR",
                "message": f"payment timeout after {i} ms",
            }
            for i in range(300)
        ]
        whole = gzip.compress(("\n".join(json.dumps(x) for x in morning) + "\n").encode())
        (folder / "app.log.1.gz").write_bytes(whole[:20])  # broken off: its errors unread
        log_source = {"type": "file", "path": str(folder)}
        await stack.service.create(
            "rita", config.model_dump(mode="json") | {"log_source": log_source}
        )
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        result = await stack.service.greet("rita", request_id="one", via="voice")
        view = await stack.service.get_briefing("rita", day.date)
    assert result.outcome is GreetOutcome.SPOKEN
    assert "quiet" not in result.text, result.text
    assert "not all logs could be read" in result.text, result.text
    assert any("could not be read to the end" in h for h in view.content.what_happened)


async def test_a_day_mostly_unreadable_is_not_said_quiet(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    await make_user(deps.db, "ugo")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="zh")
        day = await stack.plan(config)
        log = tmp_path / "app.log"
        timed = [
            json.dumps(
                {
                    "time": (day.logs_from + timedelta(hours=1, minutes=i)).isoformat(),
                    "level": "INFO",
                    "message": f"started worker {i}",
                }
            )
            for i in range(10)
        ]
        untimed = [f"ERROR payment timeout after {i} ms" for i in range(500)]  # no time read
        log.write_text("\n".join(timed + untimed) + "\n")
        log_source = {"type": "file", "path": str(log)}
        await stack.service.create(
            "ugo", config.model_dump(mode="json") | {"log_source": log_source}
        )
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        result = await stack.service.greet("ugo", request_id="one", via="voice")
    assert result.outcome is GreetOutcome.SPOKEN
    assert "一切平稳" not in result.text, result.text
    assert "日志没能全部读取" in result.text, result.text
