"""The same container lines give the same report from a file source and from a CLS topic,
whichever field a shipper or an extraction put the line in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ambient.briefing.config import ClsLogSpec, FileLogSpec
from ambient.briefing.logreport import LogReducer, most_frequent_error
from ambient.briefing.logs import read_log_source
from tests.standins.tencent_api import TencentApi
from tests.support.servers import serve
from tests.support.tencent import standin_tencent

START = datetime(2026, 12, 6, tzinfo=UTC)
END = START + timedelta(days=1)


def _lines(i: int) -> list[str]:
    """A container's stderr: a text line with its time and level, an info line, and every
    other second a klog error."""
    at = START + timedelta(hours=2, seconds=i)
    klog = f"E1206 02:00:{i:02d}.123456       1 controller.go:42] sync failed for pod web-{i}\n"
    return [
        f"{at:%Y-%m-%dT%H:%M:%S}.123Z ERROR payment {i} refused\n",
        f"{at:%Y-%m-%dT%H:%M:%S}.456Z INFO order {i} placed\n",
    ] + [klog] * (i % 2 == 0)


def _docker(i: int, line: str) -> dict[str, Any]:
    """A Docker json-file record of ``line``."""
    at = START + timedelta(hours=2, seconds=i)
    return {"log": line, "stream": "stderr", "time": f"{at:%Y-%m-%dT%H:%M:%S}.000Z"}


async def _report(spec: FileLogSpec | ClsLogSpec, tencent: Any) -> Any:
    reducer = LogReducer()
    await read_log_source(spec, START, END, reducer, log_dir=None, admin=True, tencent=tencent)
    report = reducer.report(start=START, end=END)
    top = most_frequent_error(report.templates)
    templates = sorted((t.level, t.count, t.template) for t in report.templates)
    return report.by_level, templates, top and (top.count, top.template)


@pytest.mark.parametrize("field", ["log", "content", "message", "msg"])
async def test_container_lines_from_cls_give_the_report_a_file_of_them_gives(
    tmp_path: Path, field: str
) -> None:
    """The file source reads a Docker record's line as a log line (its time, level and klog
    header); CLS's records did so only for __CONTENT__: the line in `log` (a shipper of Docker's
    records) or in content/message/msg (an extraction) left klog's errors without a level and a
    text line's time and level word in its template ("<*> ERROR payment <*> refused")."""
    records = [_docker(i, line) for i in range(20) for line in _lines(i)]
    path = tmp_path / "container.log"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    from_file = await _report(FileLogSpec(path=str(path)), None)
    assert from_file == (
        {"ERROR": 30, "INFO": 20},
        [
            ("ERROR", 10, "sync failed for pod <*>"),
            ("ERROR", 20, "payment <*> refused"),
            ("INFO", 20, "order <*> placed"),
        ],
        (20, "payment <*> refused"),
    )
    api = TencentApi()
    # As a shipper keeps Docker's record (its stream, its time) or an extraction names the line.
    shaped = [r if field == "log" else {field: r["log"]} for r in records]
    api.logs = [
        {"time": int(datetime.fromisoformat(r["time"]).timestamp() * 1000), "json": s}
        for r, s in zip(records, shaped, strict=True)
    ]
    async with serve(api.app()) as base:
        from_cls = await _report(ClsLogSpec(topic_id=api.log_topic), standin_tencent(base))
    assert from_cls == from_file
