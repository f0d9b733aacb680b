"""Workflows started with configs accepted before a field was refused still replay.

The recorded histories' inputs are given what an older version stored and ignored (a field
of another notification method, unknown notification fields, which that version kept, and
a misspelled field); the same workflow code must replay them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from ambient.replay import load_workflows, replay_files

HISTORIES = Path(__file__).parent.parent / "histories"
OLD_NOTIFICATION = {"method": "email", "phone_number": "+8613800000000", "priority": "high"}


def with_stored_config(name: str, folder: Path, **fields: Any) -> Path:
    """A copy of a recorded history whose start input's config holds ``fields`` too."""
    history = json.loads((HISTORIES / f"{name}.json").read_text())
    payload = history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][
        0
    ]
    data = json.loads(base64.b64decode(payload["data"]))
    data["config"].update(fields)
    payload["data"] = base64.b64encode(json.dumps(data).encode()).decode()
    path = folder / f"{name}_stored.json"
    path.write_text(json.dumps(history))
    return path


async def test_histories_whose_inputs_carry_fields_refused_now_still_replay(
    tmp_path: Path,
) -> None:
    files = [
        with_stored_config("web_monitor", tmp_path, notification=OLD_NOTIFICATION, keyword=["AI"]),
        with_stored_config("threshold_watch", tmp_path, notification=OLD_NOTIFICATION, note="typo"),
    ]
    workflows = load_workflows(["tests.support.workflows:TEST_WORKFLOWS"])
    outcomes = await replay_files(files, workflows)
    assert [(o.workflow_type, o.error) for o in outcomes] == [
        ("WebMonitorWorkflow", None),
        ("ThresholdWatchWorkflow", None),
    ]


async def test_a_briefing_stored_with_a_log_source_past_todays_bounds_still_replays(
    tmp_path: Path,
) -> None:
    # The path, topic id and query got bounds after briefings were stored with longer ones,
    # which ran every day; their workflows must still decode their input.
    sources = [
        {"type": "cls", "topic_id": "t" * 65, "query": "a" * 20_000},
        {"type": "file", "path": "/var/log/" + "a" * 5_000},
    ]
    files = []
    for index, source in enumerate(sources):
        (folder := tmp_path / str(index)).mkdir()
        files.append(with_stored_config("daily_briefing_greeted", folder, log_source=source))
    outcomes = await replay_files(files, load_workflows(["tests.support.workflows:TEST_WORKFLOWS"]))
    assert [o.error for o in outcomes] == [None, None]
