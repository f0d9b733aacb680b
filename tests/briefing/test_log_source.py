"""A briefing's file log source: read inside AMBIENT_LOG_DIR only, symlinks followed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ambient.briefing.logreport import LogReducer
from ambient.briefing.logs import LogFileError, read_log_source
from ambient.briefing.models import FileLogSpec
from ambient.clients.tencent.client import TencentCloud
from ambient.settings import Settings

LINE = '{"time": "2026-11-22T08:00:00Z", "level": "ERROR", "message": "%s"}\n'
START, END = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)


async def test_a_log_folder_is_read_without_the_files_its_symlinks_lead_out_to(
    tmp_path: Path, settings: Settings
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.log").write_text(LINE % "outside secret")
    logs = tmp_path / "logs"
    (logs / "app").mkdir(parents=True)
    (logs / "app" / "app.log").write_text(LINE % "inside line")
    (logs / "app" / "app.log.1").symlink_to(outside / "secret.log")
    tencent = TencentCloud.from_settings(settings)

    async def read(path: Path) -> tuple[str, list[str]]:
        reducer = LogReducer()
        read = await read_log_source(
            FileLogSpec(path=str(path)),
            START,
            END,
            reducer,
            log_dir=logs,
            admin=False,
            tencent=tencent,
        )
        return read, [t.example for t in reducer.report(start=START, end=END).templates]

    assert await read(logs / "app") == ("1 lines read", ["inside line"])
    # Named on its own, the escaping file is refused, as a path outside the folder is.
    for escaping in (logs / "app" / "app.log.1", outside / "secret.log"):
        with pytest.raises(LogFileError, match="outside AMBIENT_LOG_DIR"):
            await read(escaping)
