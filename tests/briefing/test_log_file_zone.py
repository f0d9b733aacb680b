"""A log file whose times carry no offset, written by a clock in another zone than the
briefing's (a container's UTC beside a briefing in Asia/Shanghai): its config names the zone."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mcp import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.briefing.config import BriefingConfig, DayPlan, FileLogSpec
from ambient.cli import app
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from tests.briefing.harness import briefing_stack, make_user
from tests.support.mcp_as import mcp_as
from tests.support.waits import eventually

SHANGHAI = "Asia/Shanghai"


def _utc_wall_logs(path: Path, day_start: datetime) -> Path:
    """Error lines stamped with a UTC clock's wall time and no offset, around the Shanghai day
    starting at ``day_start``: 3 at 20:00 UTC the evening before it (04:00 of the day in
    Shanghai), 5 at 12:00 UTC on its date, 7 at 18:00 UTC on its date (02:00 of the next day
    in Shanghai). Read in UTC, 8 errors are the day's; read as Shanghai's wall time, 12."""
    date = day_start.date()
    stamps = [
        (date - timedelta(days=1), "20:00", 3),
        (date, "12:00", 5),
        (date, "18:00", 7),
    ]
    lines = [
        f"{when.isoformat()} {hhmm}:{i:02d} ERROR payment-service timeout after 3000 ms"
        for when, hhmm, count in stamps
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_file_source_without_a_zone_dumps_as_it_did() -> None:
    """The log baseline is keyed by the source's JSON and a worker of the release before
    forbids a field it does not know: a source that names no zone dumps as before."""
    assert FileLogSpec(path="/var/log/app").model_dump_json() == (
        '{"type":"file","path":"/var/log/app"}'
    )
    named = FileLogSpec(path="/var/log/app", timezone="UTC")
    assert named.model_dump()["timezone"] == "UTC"


async def _call(client: Client, tool: str, **args: Any) -> tuple[bool, Any]:
    result = await client.call_tool(tool, args)
    if result.is_error:
        return False, " ".join(getattr(part, "text", "") for part in result.content)
    return True, result.structured_content


async def test_analyze_logs_reads_a_files_times_in_the_zone_its_source_names(
    deps: WorkerDeps, tmp_path: Path
) -> None:
    """Through the real MCP client: the day in Shanghai of a UTC-stamped file counts the
    lines of that day's instants (8), not of its wall times read in Shanghai (12); a zone
    that is none, or a zone given to a CLS topic, is refused naming the field."""
    await make_user(deps.db, "zoe")
    day_start = datetime.fromisoformat("2026-11-22T00:00:00+08:00")
    logs = _utc_wall_logs(tmp_path / "app.log", day_start)
    span = {"start": day_start.isoformat(), "end": (day_start + timedelta(days=1)).isoformat()}
    async with mcp_as(deps, "zoe") as client:
        counts = {}
        for zone in (None, "UTC"):
            source = {"type": "file", "path": str(logs)} | ({"timezone": zone} if zone else {})
            ok, analysis = await _call(client, "analyze_logs", log_source=source, **span)
            assert ok, analysis
            counts[zone] = analysis["report"]["by_level"].get("ERROR", 0)
        bad = {"type": "file", "path": str(logs), "timezone": "Mars/Olympus"}
        ok, refused = await _call(client, "analyze_logs", log_source=bad, **span)
        assert not ok and "log_source.file.timezone: unknown IANA" in refused, refused
        cls = {"type": "cls", "topic_id": "t-1", "timezone": "UTC"}
        ok, refused = await _call(client, "analyze_logs", log_source=cls, **span)
        assert not ok and "timezone" in refused, refused
    assert counts == {None: 12, "UTC": 8}, counts


async def test_a_briefing_reads_its_days_lines_in_the_zone_its_file_source_names(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Yuki's briefing speaks in Shanghai; her service runs in a container whose clock is UTC
    and writes its times without an offset. Her briefing read them as Shanghai's wall times:
    eight hours of the evening before were counted as the day's, its last eight hours were
    not. With the file's zone named, the day's errors are the day's."""
    await make_user(deps.db, "yuki")
    config = BriefingConfig(timezone=SHANGHAI, language="en")
    async with briefing_stack(ts_env, deps) as stack:
        day: DayPlan = await stack.plan(config)
        logs = _utc_wall_logs(tmp_path / "app.log", day.logs_from.astimezone(ZoneInfo(SHANGHAI)))
        source = {"type": "file", "path": str(logs), "timezone": "UTC"}
        await stack.service.create("yuki", config.model_dump(mode="json") | {"log_source": source})
        await stack.skip_to(day.window_start + timedelta(minutes=5))

        async def prepared() -> Any:
            status = await stack.service.status("yuki")
            return status if status.prepared is not None else None

        await eventually(prepared, "the day prepared")
        view = await stack.service.get_briefing("yuki")
    assert view.content.errors == 8, view.content


async def test_the_cli_analyzes_a_file_in_the_zone_log_timezone_names(
    dev_env: WorkflowEnvironment, settings: Settings, deps: WorkerDeps, tmp_path: Path
) -> None:
    """`ambient briefing analyze --log-timezone UTC` reads the file's times in UTC; a zone
    that is none is refused naming the field, exit 1."""
    await make_user(deps.db, "yan")
    day_start = datetime.fromisoformat("2026-11-22T00:00:00+08:00")
    logs = _utc_wall_logs(tmp_path / "app.log", day_start)
    env = {
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "AMBIENT_LOG_DIR": str(tmp_path),  # where a member's log files are read
        "COLUMNS": "300",
    }
    end = day_start + timedelta(days=1)
    args = ["briefing", "analyze", "--user", "yan", "--log-file", str(logs)]
    args += ["--start", day_start.isoformat(), "--end", end.isoformat(), "--json"]
    said = {}
    for zone in ("UTC", "Mars/Olympus"):
        done = await asyncio.to_thread(
            CliRunner().invoke, app, [*args, "--log-timezone", zone], env=env
        )
        said[zone] = (done.exit_code, done.output)
    assert said["UTC"][0] == 0, said
    assert json.loads(said["UTC"][1])["by_level"]["ERROR"] == 8, said
    assert said["Mars/Olympus"][0] == 1 and "timezone" in said["Mars/Olympus"][1], said
    # Without a file the zone would be dropped (create set up a briefing with no logs): refused.
    window = ["--start", day_start.isoformat(), "--end", end.isoformat()]
    for command in (["create"], ["analyze", *window, "--cls-topic", "topic-1"]):
        alone = ["briefing", *command, "--user", "yan", "--log-timezone", "UTC"]
        done = await asyncio.to_thread(CliRunner().invoke, app, alone, env=env)
        assert done.exit_code == 2 and "--log-file" in done.output, (command, done.output)
    status = await asyncio.to_thread(
        CliRunner().invoke, app, ["briefing", "status", "--user", "yan"], env=env
    )
    assert status.exit_code == 1, status.output  # nothing was set up
