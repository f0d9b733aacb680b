"""A briefing send's answer in words, which send keys its rows are read back under, and what
its rows and the workflow's answer are said as (on the real database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.deliveries import delivery_key
from ambient.briefing.errors import InvalidBriefingError, request_id_of
from ambient.briefing.sent import (
    NOT_FINISHED,
    READABLE_KEY,
    STILL_SENDING,
    briefing_sent,
    joined,
    missed_all,
    send_key,
    sent_words,
)
from ambient.domain.notify import (
    CHANNEL_TYPES,
    HANDED_UNANSWERED,
    HANDING,
    Delivery,
    DeliveryStatus,
    NotifyResult,
    redact_target,
)
from ambient.domain.users import MAX_USER_NAME, Language
from ambient.history import RETRIES_ENDED
from ambient.storage import Database
from ambient.storage.models import Delivery as Row
from api.i18n import Words
from api.routers.page_words import in_words
from tests.conftest import unique

NOTHING = NotifyResult(deliveries=[])


def test_a_send_key_under_the_bound_keeps_every_rows_key_whole_and_one_at_it_does_not() -> None:
    """Rows are read back by the range under their send's key: a longer key's rows, cut to fit
    the column (and hashed), begin with the key at the bound, so that key is not read back."""
    key = "k" * (READABLE_KEY - 1)
    for channel in CHANNEL_TYPES:
        assert delivery_key(key, channel, "x" * 512).startswith(f"{key}:"), channel
    longest = max(CHANNEL_TYPES, key=len)
    at = "k" * READABLE_KEY
    assert delivery_key(at + "k", longest, "x" * 512).startswith(f"{at}:")


def test_every_send_key_is_read_back_its_own_and_the_same_for_a_retried_send() -> None:
    """A request id of 1-128 characters made a key past the bound for a long user name (or
    alice's from 115 characters): its rows were not read back. Every key is under it now, one
    send's alone (no ':' in its request id part), and a retried send's the same."""
    task, created = f"daily-briefing/{'u' * MAX_USER_NAME}", datetime.now(UTC)
    for request_id in ("x" * 128, "a:inbox", "x" * 70, "y"):
        key = send_key(task, created, "2026-12-02", request_id)
        assert len(key) < READABLE_KEY, request_id
        assert ":" not in key.rpartition("/send/")[2], request_id
        assert key == send_key(task, created, "2026-12-02", request_id)
    assert send_key(task, created, "2026-12-02", "y").endswith("/send/y")  # as keyed before
    assert send_key(task, None, "2026-12-02", "a:b") != send_key(task, None, "2026-12-02", "a")


async def _rows(db: Database, user: str, *rows: Row) -> None:
    async with db.session() as session:
        for row in rows:
            row.user = user
            session.add(row)
        await session.commit()


def _row(key: str, channel: str, status: str, error: str | None = None, **more: object) -> Row:
    return Row(
        key=delivery_key(key, channel, "t"),
        channel=channel,
        target="t",
        status=status,
        attempts=1,
        error=error,
        **more,
    )


async def test_a_send_at_the_bound_does_not_read_a_longer_sends_rows_cut_to_its_length(
    db: Database,
) -> None:
    user = unique("u")
    key = "k" * READABLE_KEY
    longer = Row(
        key=delivery_key(key + "k", max(CHANNEL_TYPES, key=len), "x" * 512),
        channel="dingtalk",
        target="x…",
        status="sent",
        attempts=1,
    )
    await _rows(db, user, longer)
    sent = await briefing_sent(db, user, key, NOTHING, operator=False)
    assert sent.deliveries == []
    assert sent.said == "What each channel did could not be read back: your deliveries show it."


async def test_an_internal_error_the_workflow_answered_is_an_admins_text_as_a_rows(
    db: Database,
) -> None:
    """Rows unread (the key too long), the workflow's answer is said: a member was shown the
    driver's text (its SQL, its host) there, an admin still is."""
    user = unique("u")
    text = "permanent: internal error: OperationalError: db at 10.0.0.5"
    broken = Delivery(channel="email", target="a@b", status=DeliveryStatus.FAILED, error=text)
    answered = NotifyResult(deliveries=[broken])
    key = "k" * READABLE_KEY
    member = await briefing_sent(db, user, key, answered, operator=False)
    assert [d.error for d in member.deliveries] == [
        "permanent: internal error: its text is an administrator's"
    ]
    assert member.said == (
        "Not sent to any of your push channels. Not sent to email a@b: an internal error "
        "stopped it. Tell your administrator, who sees why in the deliveries."
    )
    admin = await briefing_sent(db, user, key, answered, operator=True)
    assert [d.error for d in admin.deliveries] == [text]
    await _rows(db, user, _row("r", "email", "failed", text))
    from_row = await briefing_sent(db, user, "r", NOTHING, operator=False)
    assert [d.error for d in from_row.deliveries] == [d.error for d in member.deliveries]


async def test_a_row_deliver_later_still_tries_is_being_sent_and_one_whose_retries_ended_failed(
    db: Database,
) -> None:
    """A deliver-later try's row whose worker died (pending, its lease expired, its give-up
    ahead) was said failed, send again, though the run's next try sends it: sent again, it
    arrived twice. It is still being sent, as a deferred one still in its run; a deferred row
    past its give-up failed. A pending row with no give-up stamped (the send's own try, lost,
    or one a deliver-later run takes over, or one its live lease's holder still finishes) was
    said 'failed… send again' and failed the CLI: its outcome is not known yet. One whose try
    was handing the message over ends as the give-up ends it: it may have been delivered, not
    sent again (it was said 'send again': sent twice)."""
    user, now = unique("u"), datetime.now(UTC)
    soon, long_ago = now + timedelta(minutes=5), now - timedelta(days=30)
    later = "transient: HTTP 503"
    await _rows(
        db,
        user,
        _row("s", "webhook", "pending", later, lease_until=long_ago, retry_until=soon),
        _row("s", "wecom", "deferred", later, retry_until=soon),
        _row("s", "dingtalk", "deferred", later, retry_until=long_ago),
        _row("s", "email", "pending", None, lease_until=soon),
    )
    sent = await briefing_sent(db, user, "s", NOTHING, operator=False)
    said = [(d.channel, d.status.value, d.error) for d in sent.deliveries]
    assert said == [
        ("webhook", "deferred", later),
        ("wecom", "deferred", later),
        ("dingtalk", "failed", f"{later}; its retries ended"),
        ("email", "deferred", STILL_SENDING),
    ]
    assert sent.said == (
        # Targets as the deliveries show them: a robot key's four characters.
        "Not sent to any of your push channels. "
        "Still being sent to webhook t…: it is tried again by itself. "
        "Still being sent to wecom t…: it is tried again by itself. "
        "Not sent to dingtalk t…: HTTP 503; its retries ended. "
        "Still being sent to email t: your deliveries show how it ends. "
        "Check that it is up and reachable, then send again."
    )
    assert not missed_all(sent.deliveries)  # some are still being sent
    await _rows(
        db,
        user,
        _row("h", "email", "pending", None, lease_until=soon, provider_id=HANDING),
        _row("h", "webhook", "pending", later, retry_until=long_ago, provider_id=HANDING),
        _row("h", "wecom", "pending", later, retry_until=long_ago, provider_id="posts:2"),
        _row("h", "dingtalk", "pending", None, lease_until=long_ago, provider_id="posts:1"),
    )
    handed = await briefing_sent(db, user, "h", NOTHING, operator=False)
    said = [(d.channel, d.status.value, d.error) for d in handed.deliveries]
    assert said == [
        ("email", "failed", HANDED_UNANSWERED),
        ("webhook", "failed", HANDED_UNANSWERED),
        # The give-up says a pending row in several posts not finished, as any in flight.
        ("wecom", "failed", f"{NOT_FINISHED}; its retries ended"),
        ("dingtalk", "deferred", STILL_SENDING),
    ]
    assert "send again" not in handed.said.split("wecom")[0]
    assert handed.said.count("may have it: the worker sending it died") == 2


def _said(*deliveries: Delivery) -> str:
    return " ".join(map(str, sent_words(deliveries)))


def test_what_to_do_follows_how_each_channel_missed_it_said_once_each() -> None:
    inbox = Delivery(channel="inbox", target="", status=DeliveryStatus.SENT)
    refused = Delivery(
        channel="wecom", target="abcd…", status="failed", error="permanent: HTTP 404"
    )
    wrong = Delivery(
        channel="email",
        target="a@b",
        status="failed",
        error="permanent: recipient a@b refused (550 no mailbox)",
    )
    later = Delivery(channel="webhook", target="h", status="deferred", error="transient: HTTP 429")
    quiet = Delivery(channel="dingtalk", target="k…", status="suppressed")
    assert _said(inbox, refused, wrong, later, quiet) == (
        "Not sent to any of your push channels. Your inbox has it. "
        "Not sent to wecom abcd…: HTTP 404. "
        "Not sent to email a@b: recipient a@b refused (550 no mailbox). "
        "Still being sent to webhook h: it is tried again by itself. "
        "Held back from dingtalk k… by your quiet hours: send again after them. "
        "Correct it in your push config, then send again."
    )
    assert _said(inbox) == "No push channel of yours takes briefings: add one. Your inbox has it."
    assert _said() == "What each channel did could not be read back: your deliveries show it."


def test_a_mail_servers_refusal_of_the_servers_own_settings_is_for_the_administrator() -> None:
    """A member was told to correct their push config for a login, sender, TLS or blocklist
    refusal: an email's push config is its address, the rest is AMBIENT_SMTP_*."""
    server = [
        "permanent: SMTP login refused (535 bad credentials): check AMBIENT_SMTP_USERNAME",
        "permanent: sender ops@example.com refused (553 not yours): set AMBIENT_SMTP_FROM",
        "permanent: SMTP 554: 5.7.1 Your IP is on a blocklist",
        "permanent: recipient a@c refused (554 Relay access denied): this server does not "
        "relay mail; set AMBIENT_SMTP_USERNAME and AMBIENT_SMTP_PASSWORD",
    ]
    for error in server:
        missed = Delivery(channel="email", target="a@c", status="failed", error=error)
        assert _said(missed).endswith(
            "Tell your administrator: the mail server's settings are theirs to correct."
        ), error
    address = Delivery(
        channel="email",
        target="a@c",
        status="failed",
        error="permanent: recipient a@c refused (550 no such user)",
    )
    assert _said(address).endswith("Correct it in your push config, then send again.")


def test_the_cli_fails_when_every_channel_asked_for_failed_or_nothing_was_read_back() -> None:
    inbox = Delivery(channel="inbox", target="", status=DeliveryStatus.SENT)
    failed = Delivery(channel="wecom", target="k…", status="failed", error="permanent: HTTP 404")
    quiet = Delivery(channel="dingtalk", target="k…", status="suppressed")
    later = Delivery(channel="webhook", target="h", status="deferred", error="transient: 429")
    assert missed_all([inbox, failed]) and missed_all([])
    assert not any(missed_all(d) for d in ([inbox], [inbox, quiet], [failed, later], [inbox]))
    # An email handed over whose answer never came may have arrived: not one to send again.
    handed = Delivery(channel="email", target="a@b", status="failed", error=HANDED_UNANSWERED)
    assert not missed_all([inbox, handed]) and missed_all([inbox, handed, failed]) is False
    assert "may have been delivered" not in _said(inbox, handed)  # the product's English
    assert _said(inbox, handed) == (
        "It may have reached your push channels; none said it did. Your inbox has it. "
        "email a@b may have it: the worker sending it died before its answer; not sent again."
    )
    zh = Words(Language.ZH)
    assert joined(in_words(w, zh) for w in sent_words([handed])) == (
        "可能已送达你的推送渠道；没有渠道确认收到。"
        "email a@b 可能已收到：发送它的进程在收到回应前中断了；没有再发一次。"
    )


def test_the_products_own_words_in_a_channels_sentence_are_the_pages_language() -> None:
    """The zh page said a channel's why in the product's English ("no try finished this send
    …", "; its retries ended", push_config) and joined its sentences with a space."""
    lost = Delivery(channel="email", target="a@b", status="failed", error=NOT_FINISHED)
    ended = Delivery(
        channel="dingtalk", target="k…", status="failed", error=f"{NOT_FINISHED}{RETRIES_ENDED}"
    )
    config = Delivery(
        channel="push_config", target="", status="failed", error="permanent: channel 2: no type"
    )
    zh = Words(Language.ZH)
    assert joined(in_words(w, zh) for w in sent_words([lost, ended, config])) == (
        "没有发到你的任何推送渠道。"
        "未发送到 email a@b：这次发送没有一次尝试完成（最后一次在发送途中中断）。"
        "未发送到 dingtalk k…：这次发送没有一次尝试完成（最后一次在发送途中中断）；重试已结束。"
        "未发送到 推送设置：channel 2: no type。"
        "请确认它在运行且能连通，然后再发送一次。请在推送设置里改正它，然后再发送一次。"
    )
    assert _said(config) == (
        "Not sent to any of your push channels. Not sent to push config: channel 2: no type. "
        "Correct it in your push config, then send again."
    )


async def test_a_channel_the_workflow_answered_with_a_long_target_is_said_once(
    db: Database,
) -> None:
    """A row keeps its target shown and cut to 512 characters: the workflow's answer of the
    same channel, its target redacted whole, was said again beside its row."""
    user = unique("u")
    target = "https://oapi.example/" + "p" * 600 + "?access_token=s3cret"
    await _rows(
        db,
        user,
        Row(
            key=delivery_key("w", "dingtalk", target),
            channel="dingtalk",
            target=redact_target("dingtalk", target)[:512],  # as the notify activity writes it
            status="sent",
            attempts=1,
        ),
    )
    answered = Delivery(channel="dingtalk", target=target, status=DeliveryStatus.SENT)
    sent = await briefing_sent(db, user, "w", NotifyResult(deliveries=[answered]), operator=True)
    assert [d.channel for d in sent.deliveries] == ["dingtalk"]


async def test_two_webhooks_to_one_host_are_both_said_one_from_its_row_one_as_answered(
    db: Database,
) -> None:
    """Two Slack webhooks of one user: one sent (its row), one the workflow answered with no
    row. Both were shown as https://hooks.slack.com/…, so the second was taken for the first
    and dropped from the answer; each is said now, told apart by its URL's fingerprint."""
    user = unique("u")
    slack = "https://hooks.slack.com/services/T0AB12CDE/B0FG34HIJ/"
    first, second = slack + "Xk9sPq2LmN8vRt4WzY6bQ1cD", slack + "Qw3eRt5yUi7oPa9sDf1gHj2k"
    row = Row(
        key=delivery_key("two", "webhook", first),
        channel="webhook",
        target=redact_target("webhook", first),  # as the notify activity writes it
        status="sent",
        attempts=1,
    )
    await _rows(db, user, row)
    answered = [
        Delivery(channel="webhook", target=redact_target("webhook", first), status="sent"),
        Delivery(
            channel="webhook",
            target=redact_target("webhook", second),
            status=DeliveryStatus.FAILED,
            error="permanent: HTTP 404",
        ),
    ]
    sent = await briefing_sent(db, user, "two", NotifyResult(deliveries=answered), operator=False)
    assert [(d.status, d.error) for d in sent.deliveries] == [
        ("sent", None),
        ("failed", "permanent: HTTP 404"),
    ]
    assert len({d.target for d in sent.deliveries}) == 2
    assert "Xk9sPq2" not in str(sent) and "Qw3eRt5" not in str(sent)


def test_a_channel_that_may_have_been_delivered_is_not_said_unsent() -> None:
    handed = Delivery(channel="email", target="a@b", status="failed", error=HANDED_UNANSWERED)
    said = _said(handed)
    assert not said.startswith("Not sent to any of your push channels"), said
    assert said.startswith("It may have reached your push channels")


def test_a_request_id_like_a_hashed_one_is_hashed_too() -> None:
    """A literal request id 'sha256-<32 hex>' was keyed as it came: the same key as the id
    it is the hash of, whose send it then read back (and Temporal took as already sent)."""
    task, created = "daily-briefing/alice", datetime.now(UTC)
    hashed = send_key(task, created, "2026-12-02", "a:inbox")
    literal = hashed.rpartition("/")[2]
    assert literal.startswith("sha256-")
    assert send_key(task, created, "2026-12-02", literal) != hashed


def test_a_request_id_holding_a_nul_is_refused_naming_it() -> None:
    with pytest.raises(InvalidBriefingError) as refused:
        request_id_of("a\x00b")
    assert refused.value.field == "request_id"
    assert "NUL" in str(refused.value)
