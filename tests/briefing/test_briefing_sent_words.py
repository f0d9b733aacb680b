"""A briefing send's answer in words, and which send keys its rows can be read back under."""

from __future__ import annotations

from types import SimpleNamespace

from activities.deliveries import delivery_key
from ambient.briefing.sent import READABLE_KEY, delivery_of, none_took, sent_words
from ambient.domain.notify import CHANNEL_TYPES, Delivery, DeliveryStatus


def test_a_send_key_up_to_the_bound_keeps_every_rows_key_whole_and_a_longer_one_does_not() -> None:
    """Rows are read back by the range under their send's key: a key cut to fit the column
    (and hashed) is another send's too, so a longer key answers what the workflow said."""
    key = "k" * READABLE_KEY
    for channel in CHANNEL_TYPES:
        assert delivery_key(key, channel, "x" * 512).startswith(f"{key}:"), channel
    longest = max(CHANNEL_TYPES, key=len)
    assert not delivery_key(key + "k", longest, "x" * 512).startswith(f"{key}k:")


def _row(channel: str, status: str, error: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        channel=channel, target="t", status=status, provider_id=None, error=error
    )


def test_the_products_own_failure_is_an_admins_text_and_a_row_in_flight_failed_for_now() -> None:
    broken = _row("email", "failed", "permanent: internal error: OperationalError: db at 10.0.0.5")
    member = delivery_of(broken, operator=False)
    assert member is not None
    assert member.error == "permanent: internal error: its text is an administrator's"
    assert _said(member).endswith("Tell your administrator, who sees why in the deliveries.")
    admin = delivery_of(broken, operator=True)
    assert admin is not None and admin.error == broken.error
    cut = delivery_of(_row("email", "pending"), operator=True)
    assert (cut.status, cut.error) == (
        "failed",
        "transient: no try finished this send (the last ended in flight)",
    )


def _said(*deliveries: Delivery) -> str:
    return " ".join(map(str, sent_words(deliveries)))


def test_what_to_do_follows_how_each_channel_missed_it_said_once_each() -> None:
    inbox = Delivery(channel="inbox", target="", status=DeliveryStatus.SENT)
    refused = Delivery(
        channel="wecom", target="abcd…", status="failed", error="permanent: HTTP 404"
    )
    wrong = Delivery(channel="email", target="a@b", status="failed", error="permanent: no mailbox")
    later = Delivery(channel="webhook", target="h", status="deferred", error="transient: HTTP 429")
    quiet = Delivery(channel="dingtalk", target="k…", status="suppressed")
    assert _said(inbox, refused, wrong, later, quiet) == (
        "Not sent to any of your push channels. Your inbox has it. "
        "Not sent to wecom abcd…: permanent: HTTP 404. Not sent to email a@b: permanent: no "
        "mailbox. Not sent to webhook h: transient: HTTP 429. Not sent to dingtalk k…: "
        "suppressed. Correct it in your push config, then send again. Its receiver asked to "
        "wait: it is tried again by itself. Your quiet hours held it back: "
        "send again after them."
    )
    assert none_took([inbox, refused])
    assert _said(inbox) == "No push channel of yours takes briefings: add one. Your inbox has it."
    assert not none_took([inbox])
    assert _said() == "What each channel did could not be read back: your deliveries show it."
