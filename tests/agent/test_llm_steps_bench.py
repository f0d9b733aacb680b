"""bench.llm_steps without a model: what its labelled event set asks, in what order."""

from __future__ import annotations

import json
from pathlib import Path

from ambient.clients.llm import LLMClient
from ambient.domain.event_digest import DigestDecision, offline_verdict, written_in
from ambient.settings import Settings
from bench.llm_steps import Deadline, briefs, event_cases, run_events


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


def test_every_shipped_label_is_the_documented_policy_the_offline_rules_apply() -> None:
    # Page text that gives orders (ignore…, 不要通知) and routine events that shout included.
    for case in event_cases():
        assert offline_verdict(briefs(case)).decision.notify == case["notify"], case["id"]


def test_a_message_counts_as_written_in_the_events_language_only_when_it_is() -> None:
    zh = DigestDecision(notify=True, title="支付接口超时", body="- watch.hit — web-monitor/bob")
    en = DigestDecision(notify=True, title="Checkout latency", body="p95 2.4 s over 1.0 s")
    assert written_in(zh, "zh") and written_in(en, "en")
    assert not written_in(en, "zh") and not written_in(zh, "en")


async def test_batches_the_rules_decided_for_want_of_a_model_are_fallbacks_not_its_answers() -> (
    None
):
    offline = LLMClient(Settings(openai_api_key=None, local_llm=False))
    report = await run_events(offline, 1, Deadline(None))
    notable = sum(1 for c in event_cases() if c["notify"])
    assert (report["fallback"], report["answered_by_model"], report["model_messages"]) == (
        notable,
        0,
        0,
    )
    assert report["accuracy"] == 1.0 and report["overruled"] == 0
