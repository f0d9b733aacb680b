"""bench.llm_steps without a model: what its labelled event set asks, in what order."""

from __future__ import annotations

import json
from pathlib import Path

from bench.llm_steps import event_cases


def test_a_run_cut_short_has_asked_both_labels_notify_and_hold_take_turns(tmp_path: Path) -> None:
    # The file groups the labels, as the shipped set does (22 notify first, then 14 hold).
    rows = [{"id": f"n{i}", "notify": True} for i in range(3)]
    rows += [{"id": f"h{i}", "notify": False} for i in range(2)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert [c["id"] for c in event_cases(path)] == ["n0", "h0", "n1", "h1", "n2"]


def test_the_shipped_set_labels_holds_as_well_as_notifies() -> None:
    labels = [c["notify"] for c in event_cases()]
    assert labels[:2] == [True, False] and labels.count(False) >= 10
