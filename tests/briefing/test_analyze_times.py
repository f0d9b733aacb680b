"""A log analysis's range: times without an offset are refused by field, through the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambient.settings import Settings
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.servers import http_client, serve


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-11-20T00:00:00", "2026-11-21T00:00:00+00:00", "start"),
        ("2026-11-20T00:00:00+08:00", "2026-11-21T00:00:00", "end"),
        ("2026-11-20T00:00:00", "2026-11-21T00:00:00", "start"),
    ],
)
async def test_a_range_without_an_offset_is_a_422_naming_the_field(
    settings: Settings, tmp_path: Path, start: str, end: str, field: str
) -> None:
    logs = tmp_path / "app.log"
    logs.write_text("2026-11-20T10:00:00Z ERROR db timeout after 30s\n", encoding="utf-8")
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        answer = await http.post(
            "/briefings/analyze",
            json={"log_source": {"type": "file", "path": str(logs)}, "start": start, "end": end},
            headers=await admin_headers(settings),
        )
        with_offsets = await http.post(
            "/briefings/analyze",
            json={
                "log_source": {"type": "file", "path": str(logs)},
                "start": "2026-11-20T00:00:00+00:00",
                "end": "2026-11-21T00:00:00+00:00",
            },
            headers=await admin_headers(settings),
        )

    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", field]
    assert "offset" in error["msg"]
    assert with_offsets.status_code == 200 and with_offsets.json()["report"]["total"] == 1


async def test_log_times_without_an_offset_are_read_in_the_ranges_offset_as_a_briefing_does(
    settings: Settings, tmp_path: Path
) -> None:
    logs = tmp_path / "app.log"
    # A Shanghai service's local wall time: 23:30 on the 20th there, 15:30 UTC.
    logs.write_text("2026-11-20 23:30:00,000 ERROR db timeout after 30s\n", encoding="utf-8")
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        answer = await http.post(
            "/briefings/analyze",
            json={
                "log_source": {"type": "file", "path": str(logs)},
                "start": "2026-11-20T00:00:00+08:00",
                "end": "2026-11-21T00:00:00+08:00",
            },
            headers=await admin_headers(settings),
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["report"]["total"] == 1


async def test_an_analysis_says_its_times_in_the_offset_its_range_was_asked_in(
    settings: Settings, tmp_path: Path
) -> None:
    """A Shanghai user asked for the 20th (+08:00) and read "Logs 2026-11-19 16:00 –
    2026-11-20 16:00", an error burst at "01:00–01:10" and hours in UTC: the report was
    said in UTC, while a briefing says its day in its own zone. Now in the range's offset."""
    logs = tmp_path / "app.log"
    logs.write_text(
        "".join(f"2026-11-20T09:{m:02d}:00+08:00 ERROR db timeout after 30s\n" for m in range(11)),
        encoding="utf-8",
    )
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        answer = await http.post(
            "/briefings/analyze",
            json={
                "log_source": {"type": "file", "path": str(logs)},
                "start": "2026-11-20T00:00:00+08:00",
                "end": "2026-11-21T00:00:00+08:00",
            },
            headers=await admin_headers(settings),
        )
    assert answer.status_code == 200, answer.text
    markdown = answer.json()["markdown"]
    assert markdown.startswith("## Logs 2026-11-20 00:00 – 2026-11-21 00:00\n"), markdown
    assert "- ERROR 11 09:00–09:10: db timeout after <*>" in markdown, markdown
    assert "### Hours (+08:00)" in markdown and "09h 11/11/0" in markdown, markdown


async def test_an_error_burst_is_said_in_the_ranges_offset_like_its_template(
    settings: Settings, tmp_path: Path
) -> None:
    """A Shanghai user's analysis (+08:00) listed "ERROR 110 09:00–09:09" for the template and
    "burst ERROR: 110 lines from 01:00 to 01:10 UTC" for its burst. Now both in +08:00."""
    logs = tmp_path / "app.log"
    day = [f"2026-11-20T{h:02d}:{m:02d}:00+08:00 INFO tick\n" for h in range(24) for m in (0, 30)]
    burst = [
        f"2026-11-20T09:{s // 60:02d}:{s % 60:02d}+08:00 ERROR db timeout after 30s\n"
        for s in range(0, 550, 5)
    ]
    logs.write_text("".join(day + burst), encoding="utf-8")
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        answer = await http.post(
            "/briefings/analyze",
            json={
                "log_source": {"type": "file", "path": str(logs)},
                "start": "2026-11-20T00:00:00+08:00",
                "end": "2026-11-21T00:00:00+08:00",
            },
            headers=await admin_headers(settings),
        )
    assert answer.status_code == 200, answer.text
    markdown = answer.json()["markdown"]
    assert "- ERROR 110 09:00–09:09: db timeout after <*>" in markdown, markdown
    assert "- burst ERROR: 09:00–09:10, 110 lines, peak 60 in 5 min" in markdown, markdown
    assert "UTC" not in markdown, markdown
    [anomaly] = answer.json()["report"]["anomalies"]
    assert (anomaly["start"], anomaly["end"]) == ("2026-11-20T01:00:00Z", "2026-11-20T01:10:00Z")


async def test_an_analysis_of_a_file_without_a_read_time_reports_its_unreadable_lines(
    settings: Settings, tmp_path: Path
) -> None:
    # The briefing fails such a source (not a quiet day); an analysis, asked of any range,
    # answers what it read: nothing, and how many lines it could not place.
    logs = tmp_path / "app.log"
    logs.write_text("starting\nlistening on :8080\n", encoding="utf-8")
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        answer = await http.post(
            "/briefings/analyze",
            json={
                "log_source": {"type": "file", "path": str(logs)},
                "start": "2026-11-20T00:00:00+08:00",
                "end": "2026-11-21T00:00:00+08:00",
            },
            headers=await admin_headers(settings),
        )
    assert answer.status_code == 200, answer.text
    report = answer.json()["report"]
    assert (report["total"], report["unreadable"]) == (0, 2), report
