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


def test_a_reply_to_another_sender_within_the_threshold_is_an_anomaly() -> None:
    messages = [
        message("m1", "alice", 0),
        message("m2", "bot", 1.5, reply_to="m1"),  # 1.5 s after alice: too fast for a person
        message("m3", "bot", 2.0, reply_to="m2"),  # its own message: not an anomaly
        message("m4", "alice", 30),
        message("m5", "bob", 32.5, reply_to="m4"),  # 2.5 s: slow enough
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
        message("m2", "bot", 0.4, reply_to="m1"),
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
        message("rem-plan", "remediation", 0),
        *(message(f"spam{n}", "mel", 60 + n) for n in range(10)),
        message("fay-1", "fay", 69.5),  # 0.5 s after mel's latest: typed by fay all the same
        message("fay-2", "fay", 69.8, reply_to="spam9"),  # 0.8 s after what it answers
        message("rem-ask", "remediation", 100),
        message("fay-3", "fay", 101),  # 1 s after the run's request: an auto-reply
        message("fay-4", "fay", 130),
    ]
    fast = [m.id for m in thread if m.from_id == "fay" and answered_fast(thread, m.id)]
    assert fast == ["fay-2", "fay-3"]


def test_annotation_and_anomalies_read_fast_as_acting_does() -> None:
    """Acting took a reply as fast only within 2 s after what it answers, annotating and the
    anomaly list after any other sender's message: annotate_discussion marked an approval
    typed a moment after a member's chatter inferred (tagged auto_reply), and its retry then
    did not act. One rule now, with the message answered as the anomaly's previous one."""
    thread = [
        message("rem-ask", "remediation", 0),
        message("spam", "mel", 299.5),
        message("go", "fay", 300, reply_to="rem-ask", tags=["approve"]),  # typed: 5 min after
        message("bot", "kit", 300.8, reply_to="spam"),  # 1.3 s after what it answers
        message("rem-plan", "remediation", 400),
        message("auto", "fay", 401),  # 1 s after the run's post
    ]
    found = detect_anomalies(thread)
    assert [(a.message_id, a.previous_id, a.gap_seconds) for a in found] == [
        ("bot", "spam", 1.3),
        ("auto", "rem-plan", 1.0),
    ]
    assert [m.id for m in thread if answered_fast(thread, m.id)] == ["bot", "auto"]
    changes = annotate(thread, {"remediation", "mel", "fay", "kit"})
    assert [(c.message_id, c.source_type) for c in changes] == [
        ("bot", "inferred"),
        ("auto", "inferred"),
    ]


def test_an_admins_post_signed_as_a_product_agent_is_not_what_a_reply_answers() -> None:
    """An admin may sign as "remediation": what they type there is no post of the run (its
    posts' ids are rem-…), and an approval typed a moment after it is not fast."""
    thread = [
        message("rem-ask", "remediation", 0),
        message("msg_admin", "remediation", 299.5),  # an admin's note, signed as the agent
        message("go", "fay", 300, reply_to="rem-ask", tags=["approve"]),
    ]
    assert detect_anomalies(thread) == []
    assert annotate(thread, {"remediation", "fay"}) == []


def test_only_invisible_characters_leave_a_topic_joiners_and_tags_stay() -> None:
    """Every format character was dropped from a topic's key: a ZWJ emoji sequence became its
    emoji side by side, a Persian word lost its ZWNJ and every flag's tag characters left 🏴
    alone, so different topics met in one discussion. Only the invisible ones go (U+200B)."""
    family, apart = "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f468\U0001f469\U0001f467"
    england = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    persian, joined = (
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0645",
        "\u0645\u06cc\u062e\u0648\u0627\u0645",
    )
    for one, other in ((family, apart), (england, scotland), (persian, joined)):
        assert normalise_topic(f"{one} down") != normalise_topic(f"{other} down")
    assert normalise_topic("Check\u200bout\u00ad 5xx\u2060\ufeff") == "checkout 5xx"
    assert normalise_topic("Check\u0007out\u2062 5xx") == "checkout 5xx"
