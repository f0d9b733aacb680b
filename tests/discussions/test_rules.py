"""The bus's pure rules: topics, anomalies and annotation with known timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ambient.discussions.rules import (
    MessageIn,
    MessageView,
    annotate,
    answered_fast,
    detect_anomalies,
    discussion_id,
    normalise_topic,
)

T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)


def message(mid: str, sender: str, seconds: float, **extra: object) -> MessageView:
    fields: dict[str, object] = {
        "id": mid,
        "discussion_id": "disc_x",
        "from_id": sender,
        "content": mid,
        "reply_to": None,
        "tags": [],
        "source_type": "real",
        "created_at": T0 + timedelta(seconds=seconds),
    }
    return MessageView.model_validate(fields | extra)


def test_same_words_in_any_case_and_spacing_are_one_topic() -> None:
    assert normalise_topic("  Checkout   5XX ") == normalise_topic("checkout 5xx")
    assert normalise_topic("支付 超时") == normalise_topic("支付　超时")  # full-width space
    assert discussion_id(T0, "ab12") == "disc_20261122080000_ab12"


def test_a_different_sender_within_the_threshold_is_an_anomaly() -> None:
    messages = [
        message("m1", "alice", 0),
        message("m2", "bot", 1.5),  # 1.5 s after alice: too fast for a person
        message("m3", "bot", 2.0),  # same sender as before: not an anomaly
        message("m4", "alice", 30),
        message("m5", "bob", 32.5),  # 2.5 s: slow enough
    ]
    found = detect_anomalies(messages, threshold_seconds=2.0)
    assert [(a.message_id, a.previous_id, a.gap_seconds) for a in found] == [("m2", "m1", 1.5)]
    assert [a.message_id for a in detect_anomalies(messages, threshold_seconds=3.0)] == [
        "m2",
        "m5",
    ]


def test_annotation_marks_fast_and_auto_replies_inferred_and_strangers_unverifiable() -> None:
    messages = [
        message("m1", "alice", 0),
        message("m2", "bot", 0.4),
        message("m3", "alice", 60, tags=["auto_reply"]),
        message("m4", "mallory", 120),
        message("m5", "bob", 200, source_type="inferred", tags=["auto_reply"]),
        # Typed by hand in any case, like the action tags a reply's approval reads.
        message("m6", "bob", 300, tags=["Auto_Reply"]),
    ]
    changes = {c.message_id: c for c in annotate(messages, {"alice", "bob", "bot"})}
    assert set(changes) == {"m2", "m3", "m4", "m6"}
    assert (changes["m6"].source_type, changes["m6"].tags_added) == ("inferred", [])
    assert (changes["m2"].source_type, changes["m2"].tags_added) == ("inferred", ["auto_reply"])
    assert (changes["m3"].source_type, changes["m3"].tags_added) == ("inferred", [])
    assert changes["m4"].source_type == "unverifiable"


def test_message_input_is_checked() -> None:
    with pytest.raises(ValidationError, match="tag"):
        MessageIn(from_id="a", content="x", tags=["has space"])
    with pytest.raises(ValidationError, match="content"):
        MessageIn(from_id="a", content="")
    with pytest.raises(ValidationError, match="source_type"):
        MessageIn.model_validate({"from_id": "a", "content": "x", "source_type": "fake"})


def test_a_tag_ending_in_a_newline_is_refused_not_stored_as_another_tag() -> None:
    # 'approve\n' looked like approve on the page but never acted on a remediation.
    for tag in ("approve\n", "abort\n"):
        with pytest.raises(ValidationError, match="tag"):
            MessageIn(from_id="a", content="x", tags=[tag])
    assert MessageIn(from_id="a", content="x", tags=["approve"]).tags == ["approve"]


def test_a_reply_is_fast_after_what_it_answers_not_after_other_members_chatter() -> None:
    """An approval is machine-inferred when it comes within 2 s after what it answers (the
    run's request, the message it replies to); a member posting every second no longer makes
    every reply in the discussion look fast."""
    thread = [
        message("plan", "remediation", 0),
        *(message(f"spam{n}", "mel", 60 + n) for n in range(10)),
        message("fay-1", "fay", 69.5),  # 0.5 s after mel's latest: typed by fay all the same
        message("fay-2", "fay", 69.8, reply_to="spam9"),  # 0.8 s after what it answers
        message("ask", "remediation", 100),
        message("fay-3", "fay", 101),  # 1 s after the run's request: an auto-reply
        message("fay-4", "fay", 130),
    ]
    fast = [m.id for m in thread if m.from_id == "fay" and answered_fast(thread, m.id)]
    assert fast == ["fay-2", "fay-3"]
