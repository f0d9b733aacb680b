import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ambient.clients.logs import FileLogSource

DAY = datetime(2026, 11, 21, tzinfo=UTC)


def _write_rotated(folder: Path) -> None:
    (folder / "app.log").write_text(
        json.dumps({"time": "2026-11-21T09:00:00Z", "level": "ERROR", "msg": "payment timeout"})
        + "\n"
        + "2026-11-21 10:15:00,123 WARNING disk almost full on node-3\n"
        + "this line has no timestamp\n"
        + '{"msg": "json without time"}\n'
        + "{broken json\n"
        + json.dumps(
            {
                "ts": int((DAY + timedelta(hours=11)).timestamp() * 1000),
                "level": "INFO",
                "msg": "deploy ok",
            }
        )
        + "\n"
    )
    (folder / "app.log.1").write_text("[2026-11-21T13:00:00+08:00] ERROR night batch failed\n")
    with gzip.open(folder / "app.log.2.gz", "wt") as handle:
        handle.write(
            json.dumps(
                {"@timestamp": "2026-11-20T23:59:59Z", "level": "ERROR", "msg": "day before"}
            )
            + "\n"
        )
        handle.write(
            json.dumps({"timestamp": int(DAY.timestamp()), "level": "ERROR", "msg": "midnight"})
            + "\n"
        )


async def test_rotated_mixed_files_are_read_and_bad_lines_reported(tmp_path: Path) -> None:
    _write_rotated(tmp_path)
    source = FileLogSource(tmp_path)
    result = await source.search("*", DAY, DAY + timedelta(days=1))
    messages = [r.content.get("msg") or r.content.get("message") for r in result.logs]  # type: ignore[union-attr]
    assert messages == [
        "deploy ok",
        "disk almost full on node-3",
        "payment timeout",
        "night batch failed",
        "midnight",
    ]
    assert result.logs[1].content == {"message": "disk almost full on node-3", "level": "WARNING"}
    assert result.logs[3].time == datetime(2026, 11, 21, 5, 0, tzinfo=UTC)  # +08:00 normalised
    assert source.skipped == 3 and source.skipped_examples == [
        "app.log:3",
        "app.log:4",
        "app.log:5",
    ]


async def test_query_filters_and_limit_marks_incomplete(tmp_path: Path) -> None:
    _write_rotated(tmp_path)
    source = FileLogSource(tmp_path)
    errors = await source.search("error", DAY, DAY + timedelta(days=1))
    assert len(errors.logs) == 3 and errors.complete
    first = await source.search("*", DAY, DAY + timedelta(days=1), limit=2)
    assert len(first.logs) == 2 and not first.complete


async def test_a_single_file_and_a_missing_path(tmp_path: Path) -> None:
    _write_rotated(tmp_path)
    one = await FileLogSource(tmp_path / "app.log.1").search(
        "*", DAY - timedelta(days=1), DAY + timedelta(days=1)
    )
    assert len(one.logs) == 1
    with pytest.raises(FileNotFoundError, match="no log file"):
        await FileLogSource(tmp_path / "nope").search("*", DAY, DAY)
