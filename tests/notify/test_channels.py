import asyncio
import base64
import errno
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.deliveries import delivery_key
from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.apprise import AppriseChannel, SmsChannel
from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.clients.notify.email import EmailChannel
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
)
from ambient.clients.notify.http_errors import post_json
from ambient.clients.notify.registry import build_channels
from ambient.clients.notify.robots import RateLimiter
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.webhook import WebhookChannel
from ambient.clients.notify.wecom import WeComChannel, split_utf8
from ambient.deps import WorkerDeps
from ambient.domain.notify import Attachment, DeliveryStatus, Message
from ambient.render import markdown_literal
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.repositories import DeliveryRepository, EventRepository
from bench.certs import certificate
from tests.notify.standins import (
    DING_SECRET,
    DING_TOKEN,
    WEBHOOK_SECRET,
    WECOM_KEY,
    Mailbox,
    PushEndpoints,
)
from tests.notify.test_delivery import _user
from tests.notify.test_mail_deadline import _mailing
from tests.support.servers import HANG, free_port

# The stand-ins live on loopback: allow exactly that, as an operator would allow a network.
LOOPBACK = DestinationGuard(["127.0.0.1/32"])
SECRETS = SecretResolver(
    {"ops-bot": SecretStr(WECOM_KEY), "ding": SecretStr(f"{DING_TOKEN}#{DING_SECRET}")}
)
REPORT = Message(
    title="早报 Morning briefing",
    body="**3 alarms** yesterday\n\n| svc | errors |\n|---|---|\n| api | 12 |",
    link="https://ops.example/share/abc",
)


async def test_email_has_html_plain_part_attachment_and_stable_message_id(mailbox: Mailbox) -> None:
    channel = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    message = REPORT.model_copy(
        update={
            "attachments": [
                Attachment(
                    filename="report.csv",
                    content_type="text/csv",
                    content_b64=base64.b64encode(b"svc,errors\napi,12\n").decode(),
                )
            ]
        }
    )
    first = await channel.send("alice", message, "alice@example.com", idempotency_key="wf/1")
    again = await channel.send("alice", message, "alice@example.com", idempotency_key="wf/1")
    assert first == again  # the same delivery keeps its Message-ID
    # Its right side the sender's domain (RFC 5322 3.6.4: a domain; a bare "ambient-ops" is
    # scored as malformed by strict gateways, and two deployments' keys gave the same ids).
    assert first.startswith("<") and first.endswith("@example.com>"), first

    mail = mailbox.messages[0]
    assert mail["Subject"] == "早报 Morning briefing" and mail["To"] == "alice@example.com"
    parts = {part.get_content_type(): part for part in mail.walk()}
    plain, rich = (parts[kind].get_payload(decode=True) for kind in ("text/plain", "text/html"))
    assert isinstance(plain, bytes) and isinstance(rich, bytes)
    assert "**3 alarms**" in plain.decode()
    html = rich.decode()
    assert "<strong>3 alarms</strong>" in html and "<table>" in html
    assert parts["text/csv"].get_filename() == "report.csv"
    assert parts["text/csv"].get_payload(decode=True) == b"svc,errors\napi,12\n"


async def test_email_refused_recipient_is_permanent_and_unreachable_server_transient(
    mailbox: Mailbox,
) -> None:
    mailbox.refuse.add("ghost@example.com")
    channel = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    with pytest.raises(PermanentNotifyError, match=r"recipient ghost@example\.com refused"):
        await channel.send("alice", REPORT, "ghost@example.com", idempotency_key="k")
    closed = EmailChannel("127.0.0.1", 1, "ops@example.com", tls="none", timeout=2)
    with pytest.raises(TransientNotifyError):
        await closed.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    with pytest.raises(PermanentNotifyError, match="AMBIENT_SMTP_HOST"):
        await EmailChannel(None, 25, "x@y").send("alice", REPORT, "a@b.c", idempotency_key="k")


async def test_email_recipient_greylisted_with_4xx_is_transient(mailbox: Mailbox) -> None:
    # 450/451 at RCPT is "try again later" (RFC 5321 4yz): greylisting servers send it to
    # every new sender, so refusing the delivery for good would lose the first mails.
    mailbox.greylist.add("alice@example.com")
    channel = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    with pytest.raises(TransientNotifyError, match="450"):
        await channel.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    mailbox.greylist.clear()
    await channel.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    assert [mail["To"] for mail in mailbox.messages] == ["alice@example.com"]


async def test_email_server_without_starttls_or_auth_is_a_permanent_configuration_error(
    mailbox: Mailbox,
) -> None:
    # The loopback server offers neither STARTTLS nor AUTH: every retry would fail the same way.
    starttls = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="starttls")
    with pytest.raises(PermanentNotifyError, match=r"STARTTLS extension not supported.*SMTP_TLS"):
        await starttls.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    login = EmailChannel(
        "127.0.0.1", mailbox.port, "ops@example.com", tls="none", username="u", password="p"
    )
    with pytest.raises(PermanentNotifyError, match=r"AUTH extension is not supported.*USERNAME"):
        await login.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    # A server that wants TLS or a login before MAIL FROM says 530 there: the setting to
    # change is that, not the sender ("set AMBIENT_SMTP_FROM" was said).
    plain = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    for reply, setting in [
        ("530 5.7.0 Must issue a STARTTLS command first", "AMBIENT_SMTP_TLS=starttls"),
        ("530 5.7.0 Authentication required", "AMBIENT_SMTP_USERNAME"),
    ]:
        mailbox.mail_reply = reply
        with pytest.raises(PermanentNotifyError, match=setting) as refused:
            await plain.send("alice", REPORT, "alice@example.com", idempotency_key="k")
        assert "SMTP_FROM" not in str(refused.value)
    assert mailbox.messages == []


async def test_a_relay_refusal_and_a_full_server_are_said_in_words_with_what_to_do(
    mailbox: Mailbox,
) -> None:
    """Postfix's "554 5.7.1 Relay access denied" at RCPT was said as a Python repr
    ("recipient refused: [SMTPRecipientRefused(554, ...)]") with no word of the login that
    lets a server relay; a 452 at MAIL FROM (the server's storage full, for now) was said as
    the sender refused."""
    plain = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    mailbox.refuse.add("bob@elsewhere.example")
    mailbox.refuse_reply = "554 5.7.1 <bob@elsewhere.example>: Relay access denied"
    with pytest.raises(PermanentNotifyError) as relay:
        await plain.send("alice", REPORT, "bob@elsewhere.example", idempotency_key="k")
    said = str(relay.value)
    assert said.startswith(
        "recipient bob@elsewhere.example refused (554 5.7.1 <bob@elsewhere.example>: Relay "
        "access denied): this server does not relay mail"
    ), said
    assert "AMBIENT_SMTP_USERNAME" in said and "SMTPRecipientRefused" not in said
    mailbox.mail_reply = "452 4.3.1 Insufficient system storage"
    with pytest.raises(DeferredNotifyError) as full:
        await plain.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    assert str(full.value) == (
        "the SMTP server cannot take mail now (452 4.3.1 Insufficient system storage)"
    )
    assert mailbox.messages == []


async def test_an_email_whose_connection_is_lost_after_the_message_is_not_sent_again(
    mailbox: Mailbox,
) -> None:
    """The server took the message and the connection died before its 250: retried as a
    network error, the mailbox got six copies. It may have been delivered (RFC 5321 6.1): said
    so, and not retried."""
    mailbox.drop_after_data = True
    channel = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none", timeout=5)
    with pytest.raises(PermanentNotifyError, match="may have been delivered; not sent again"):
        await channel.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    assert len(mailbox.messages) == 1
    # Lost before the message (a server gone at once): nothing sent, worth another try.
    closed = EmailChannel("127.0.0.1", free_port(), "ops@example.com", tls="none", timeout=2)
    with pytest.raises(TransientNotifyError):
        await closed.send("alice", REPORT, "alice@example.com", idempotency_key="k")

    # Lost at the DATA command, before the server's 354: no byte of the message was sent.
    async def gone_at_data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        while line := await reader.readline():
            if line.upper().startswith(b"DATA"):
                break
            writer.write(b"250 ok\r\n")
        writer.close()

    server = await asyncio.start_server(gone_at_data, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        early = EmailChannel("127.0.0.1", port, "ops@example.com", tls="none", timeout=5)
        with pytest.raises(TransientNotifyError, match="SMTPServerDisconnected"):
            await early.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    finally:
        server.close()


async def test_email_login_refused_for_now_is_transient_and_bad_password_permanent() -> None:
    # RFC 4954: 454 is a temporary failure (Gmail: "too many login attempts, try again later").
    for reply, error in (
        ("454 4.7.0 Temporary authentication failure", TransientNotifyError),
        ("535 5.7.8 Authentication credentials invalid", PermanentNotifyError),
    ):
        with Mailbox(auth_reply=reply) as mailbox:
            channel = EmailChannel(
                "127.0.0.1", mailbox.port, "ops@example.com", tls="none", username="u", password="p"
            )
            with pytest.raises(error, match=reply[:3]):
                await channel.send("alice", REPORT, "alice@example.com", idempotency_key="k")
            assert mailbox.messages == []


def test_smtp_port_465_means_implicit_tls_unless_said_otherwise() -> None:
    # smtp.qq.com, smtp.163.com, smtp.exmail.qq.com: "port 465, SSL" (RFC 8314). With the
    # default STARTTLS the client waits for a greeting the server never sends, then times out.
    def settings(**update: object) -> Settings:
        return Settings(_env_file=None, smtp_host="smtp.qq.com", **update)  # type: ignore[call-arg, arg-type]

    assert settings(smtp_port=465).smtp_tls == "ssl"
    assert settings(smtp_port=465, smtp_tls="none").smtp_tls == "none"
    assert settings().smtp_tls == "starttls" and settings().smtp_port == 587


async def test_wecom_sends_markdown_splits_long_content_and_mentions(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    channel = WeComChannel(http, SECRETS, base, timeout=10)
    long = REPORT.model_copy(
        update={"body": "\n".join(f"第{i}行 log line with details" for i in range(400))}
    )
    await channel.send(
        "alice",
        long,
        "secret:ops-bot?mentioned=zhangsan,@all&mobiles=13800001111",
        idempotency_key="k",
    )
    markdowns = [body for name, body in state.received if body["msgtype"] == "markdown"]
    assert len(markdowns) >= 3
    assert markdowns[0]["markdown"]["content"].startswith("### 早报")
    assert markdowns[-1]["markdown"]["content"].endswith(f"({len(markdowns)}/{len(markdowns)})")
    text = [body for _, body in state.received if body["msgtype"] == "text"]
    assert text[0]["text"]["mentioned_list"] == ["zhangsan", "@all"]
    assert text[0]["text"]["mentioned_mobile_list"] == ["13800001111"]


async def test_wecom_mentions_of_a_long_title_fit_the_text_limit(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    # The mentions go in a text message (at most 2048 bytes, errcode 40058 over it) that
    # carries the title: a long one must not cost the group its @.
    state, base = endpoints
    title = "告警：" + "订单服务延迟升高，" * 100  # about 2,700 bytes
    await WeComChannel(http, SECRETS, base, timeout=10).send(
        "alice",
        REPORT.model_copy(update={"title": title}),
        f"{WECOM_KEY}?mentioned=@all",
        idempotency_key="k",
    )
    (_, markdown), (_, text) = state.received
    assert markdown["markdown"]["content"].startswith(f"### {title}\n")
    assert text["text"]["mentioned_list"] == ["@all"]
    assert title.startswith(text["text"]["content"]) and text["text"]["content"]
    assert len(text["text"]["content"].encode()) <= 2048


async def test_wecom_errors_are_classified(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    # The answers are waited for as long as a hung server takes; only the unanswered post
    # runs out of a short timeout (a loaded machine took over 1 s to answer the others).
    channel = WeComChannel(http, SECRETS, base, timeout=HANG)
    with pytest.raises(PermanentNotifyError, match="93000"):
        await channel.send("alice", REPORT, "wrong-key", idempotency_key="k")
    state.failures["wecom"] = ["errcode:45009", "500", "timeout"]
    with pytest.raises(DeferredNotifyError, match="45009"):
        await channel.send("alice", REPORT, WECOM_KEY, idempotency_key="k")
    # The robot's minute is over within 60 s: until then this worker does not post to it.
    with pytest.raises(DeferredNotifyError, match="over 20/min"):
        await channel.send("alice", REPORT, WECOM_KEY, idempotency_key="k")
    assert state.failures["wecom"] == ["500", "timeout"]
    for impatient in (False, True):  # a worker whose window has room
        with pytest.raises(TransientNotifyError):
            await WeComChannel(http, SECRETS, base, timeout=0.5 if impatient else HANG).send(
                "alice", REPORT, WECOM_KEY, idempotency_key="k"
            )
    assert state.failures["wecom"] == [] and state.received == []
    with pytest.raises(PermanentNotifyError, match="unknown secret 'nope'"):
        await channel.send("alice", REPORT, "secret:nope", idempotency_key="k")


async def test_robot_system_busy_is_transient(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    # errcode -1 is "系统繁忙", which both vendors document as: try again shortly.
    state, base = endpoints
    state.failures = {"wecom": ["errcode:-1"], "dingtalk": ["errcode:-1"]}
    with pytest.raises(TransientNotifyError, match="busy"):
        await WeComChannel(http, SECRETS, base, timeout=10).send(
            "alice", REPORT, WECOM_KEY, idempotency_key="k"
        )
    with pytest.raises(TransientNotifyError, match="busy"):
        await DingTalkChannel(http, SECRETS, base).send(
            "alice", REPORT, "secret:ding", idempotency_key="k"
        )
    assert state.received == []


async def test_robot_gateway_answering_a_web_page_is_a_clear_configuration_error(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    # AMBIENT_WECOM_BASE_URL / _DINGTALK_BASE_URL aimed at a proxy that answers 200 with a
    # page: nothing was delivered, and the error must say where to look, not "internal error".
    _, base = endpoints
    for channel, target in (
        (WeComChannel(http, SECRETS, f"{base}/portal", timeout=10), WECOM_KEY),
        (DingTalkChannel(http, SECRETS, f"{base}/portal"), "secret:ding"),
    ):
        with pytest.raises(PermanentNotifyError, match=r"not the robot's JSON answer.*BASE_URL"):
            await channel.send("alice", REPORT, target, idempotency_key="k")


def test_utf8_split_respects_the_byte_limit() -> None:
    text = "告警" * 5000 + "\nshort\n"
    chunks = split_utf8(text, 1000)
    assert all(len(c.encode()) <= 1000 for c in chunks)
    assert "".join(chunks) == text


def test_a_heading_is_never_a_post_alone_however_blank_lines_follow_it() -> None:
    """A heading followed by a blank line, then a line that filled a post alone, was a post of
    its heading alone."""
    text = "### Title\n\n" + "x" * 95 + "\nmore words\n"
    chunks = split_utf8(text, 100, heading=True)
    assert "".join(chunks) == text and all(len(c.encode()) <= 100 for c in chunks)
    assert chunks[0].startswith("### Title\n\nx"), chunks


async def test_dingtalk_signs_and_sends_action_card_or_markdown_with_mentions(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    channel = DingTalkChannel(http, SECRETS, base)
    await channel.send("alice", REPORT, "secret:ding", idempotency_key="k")
    await channel.send("alice", REPORT, "secret:ding?at=13900002222", idempotency_key="k")
    await channel.send(
        "alice", REPORT.model_copy(update={"link": None}), "secret:ding?at=all", idempotency_key="k"
    )
    (_, card), (_, mentioning), (_, markdown) = state.received
    assert card["msgtype"] == "actionCard" and card["actionCard"]["singleURL"] == REPORT.link
    # Mentions are made by markdown (and text) messages only: the link goes in the text.
    assert mentioning["msgtype"] == "markdown" and mentioning["at"] == {
        "atMobiles": ["13900002222"],
        "isAtAll": False,
    }
    assert mentioning["markdown"]["text"].endswith(f"({REPORT.link}) @13900002222")
    assert markdown["msgtype"] == "markdown" and markdown["at"]["isAtAll"] is True
    # 310000 is any refusal of the robot's security settings, its errmsg naming one: all three
    # are said (its errmsg alone named no cause to check, "keywords not in content").
    causes = ("custom keyword", "signing secret", "IP list")
    with pytest.raises(PermanentNotifyError, match="310000: sign not match") as wrong:
        await channel.send("alice", REPORT, f"{DING_TOKEN}#wrong-secret", idempotency_key="k")
    state.ding_keywords = ["监控报警"]
    with pytest.raises(PermanentNotifyError, match="310000: keywords not in content") as keyless:
        await channel.send("alice", REPORT, "secret:ding", idempotency_key="k")
    for said in (str(wrong.value), str(keyless.value)):
        assert all(cause in said for cause in causes), said
        assert "the target's #SEC... secret must be the robot's signing secret" in said, said
    state.ding_keywords = []
    state.failures["dingtalk"] = ["errcode:130101"]
    with pytest.raises(TransientNotifyError, match="rate limit"):
        await channel.send("alice", REPORT, "secret:ding", idempotency_key="k")


async def test_dingtalk_long_briefing_is_cut_with_a_note_under_the_robot_limit(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    # The robot refuses a request over 20,000 bytes (errcode 460101): a long briefing must
    # still reach the group, cut, saying so, and with its mentions.
    state, base = endpoints
    body = "\n".join(f"第{i}行 数据库慢查询 log line with details" for i in range(1000))
    long = REPORT.model_copy(update={"body": body, "link": None})
    await DingTalkChannel(http, SECRETS, base).send(
        "alice", long, "secret:ding?at=13900002222", idempotency_key="k"
    )
    ((_, sent),) = state.received
    text = sent["markdown"]["text"]
    assert text.startswith("### 早报 Morning briefing\n\n第0行 数据库慢查询")
    assert "第999行" not in text and "已截断" in text and text.endswith(" @13900002222")
    assert sent["at"] == {"atMobiles": ["13900002222"], "isAtAll": False}


async def test_dingtalk_cuts_a_body_json_writes_long_to_what_fits_and_a_long_title(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    # JSON writes a quote or a line break in two bytes: a body of quotes (a log's JSON) was
    # cut whole, counted as raw bytes; a title of 8,000 characters was never cut, and the
    # robot refused the message for good (460101).
    state, base = endpoints
    channel = DingTalkChannel(http, SECRETS, base)
    quotes = REPORT.model_copy(update={"body": '"' * 30000, "link": None})
    await channel.send("alice", quotes, "secret:ding", idempotency_key="k")
    titled = REPORT.model_copy(update={"title": "标题" * 4000, "body": "短", "link": None})
    await channel.send("alice", titled, "secret:ding", idempotency_key="k")
    (_, cut), (_, short) = state.received
    kept = cut["markdown"]["text"].count('"')
    assert 9000 < kept < 10000 and "已截断" in cut["markdown"]["text"], kept
    assert len(short["markdown"]["title"]) == 200 and short["markdown"]["title"].endswith("…")
    assert short["markdown"]["text"].endswith("\n\n短")


async def test_dingtalk_limiter_refuses_past_twenty_a_minute(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    channel = DingTalkChannel(http, SECRETS, base, limiter=RateLimiter(per_minute=20, max_wait=0))
    for _ in range(20):
        await channel.send("alice", REPORT, "secret:ding", idempotency_key="k")
    with pytest.raises(TransientNotifyError, match="over 20/min"):
        await channel.send("alice", REPORT, "secret:ding", idempotency_key="k")
    assert len(state.received) == 20


async def test_webhook_is_signed_and_failures_classified(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    # The answers are waited for as long as a hung server takes; only the unanswered post
    # runs out of a short timeout (a loaded machine can take over 1 s to answer a 500).
    channel = WebhookChannel(SECRETS, WEBHOOK_SECRET, LOOPBACK, timeout=HANG)
    provider = await channel.send("alice", REPORT, f"{base}/hook", idempotency_key="wf/7:webhook")
    assert provider == "req-1"
    assert state.received[0][1]["idempotency_key"] == "wf/7:webhook"
    with pytest.raises(PermanentNotifyError, match="401"):
        await WebhookChannel(SECRETS, "wrong", LOOPBACK).send(
            "alice", REPORT, f"{base}/hook", idempotency_key="k"
        )
    state.failures["webhook"] = ["500", "timeout"]
    with pytest.raises(TransientNotifyError, match="500"):
        await channel.send("alice", REPORT, f"{base}/hook", idempotency_key="k")
    impatient = WebhookChannel(SECRETS, WEBHOOK_SECRET, LOOPBACK, timeout=0.5)
    with pytest.raises(TransientNotifyError, match="timeout"):
        await impatient.send("alice", REPORT, f"{base}/hook", idempotency_key="k")
    assert state.failures["webhook"] == []


async def test_apprise_and_sms_refuse_bad_configuration_clearly() -> None:
    with pytest.raises(PermanentNotifyError, match="not a valid Apprise URL"):
        await AppriseChannel(SECRETS, LOOPBACK).send(
            "alice", REPORT, "nonsense-url", idempotency_key="k"
        )
    with pytest.raises(PermanentNotifyError, match="AMBIENT_SMS_APPRISE_URL"):
        await SmsChannel(None, SECRETS).send("alice", REPORT, "+1234567890", idempotency_key="k")


async def test_apprise_delivers_through_its_json_notifier(
    endpoints: tuple[PushEndpoints, str],
) -> None:
    state, base = endpoints
    url = base.replace("http://", "json://") + "/apprise"
    await AppriseChannel(SECRETS, LOOPBACK).send("alice", REPORT, url, idempotency_key="k")
    ((name, body),) = state.received
    assert name == "apprise" and body["title"] == REPORT.title and "3 alarms" in body["message"]
    state.failures["apprise"] = ["500"]
    with pytest.raises(TransientNotifyError, match="did not accept"):
        await AppriseChannel(SECRETS, LOOPBACK).send("alice", REPORT, url, idempotency_key="k")


async def test_webhook_to_a_refused_address_is_permanent_and_never_sent(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    strict = WebhookChannel(SECRETS, WEBHOOK_SECRET, DestinationGuard(), timeout=10)
    for url in (f"{base}/hook", "http://localhost:9/hook", "http://[::ffff:127.0.0.1]:9/hook"):
        with pytest.raises(PermanentNotifyError, match="loopback"):
            await strict.send("alice", REPORT, url, idempotency_key="k")
    with pytest.raises(PermanentNotifyError, match="only http and https"):
        await strict.send("alice", REPORT, "file:///etc/passwd", idempotency_key="k")
    assert state.received == []


async def test_webhook_redirect_is_not_followed(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    channel = WebhookChannel(SECRETS, WEBHOOK_SECRET, LOOPBACK, timeout=10)
    with pytest.raises(PermanentNotifyError, match="HTTP 307: the endpoint redirects"):
        await channel.send("alice", REPORT, f"{base}/moved", idempotency_key="k")
    with pytest.raises(PermanentNotifyError, match="HTTP 302: the endpoint redirects"):
        await channel.send("alice", REPORT, f"{base}/moved?bare", idempotency_key="k")
    assert [name for name, _ in state.received] == ["moved", "moved"]


async def test_plain_http_webhook_goes_to_the_checked_address_with_the_given_host(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    port = base.rsplit(":", 1)[1]
    guard = DestinationGuard(["127.0.0.0/8", "::1/128"])
    channel = WebhookChannel(SECRETS, WEBHOOK_SECRET, guard, timeout=10)
    await channel.send("alice", REPORT, f"http://localhost:{port}/hook", idempotency_key="k")
    assert state.webhook_hosts == [f"localhost:{port}"]
    assert (await guard.pin(f"http://localhost:{port}/hook")).url == f"{base}/hook"


async def test_a_secret_is_referenced_by_its_exact_name_only(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    secrets = SecretResolver({"hook": SecretStr(f"{base}/hook")})
    channel = WebhookChannel(secrets, WEBHOOK_SECRET, LOOPBACK, timeout=10)
    with pytest.raises(PermanentNotifyError, match="exact name"):
        await channel.send("alice", REPORT, "secret:hook?extra=1", idempotency_key="k")
    await channel.send("alice", REPORT, "secret:hook", idempotency_key="k")
    assert [name for name, _ in state.received] == ["webhook"]


async def test_wecom_robot_url_sends_its_key_to_the_configured_base_only(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    channel = WeComChannel(http, SECRETS, base, timeout=10)
    pasted = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
    await channel.send("alice", REPORT, pasted, idempotency_key="k")
    # A URL naming another host still goes to the configured base (the key is all it gives).
    await channel.send(
        "alice", REPORT, f"http://127.0.0.3:1/x?key={WECOM_KEY}", idempotency_key="k"
    )
    assert [name for name, _ in state.received] == ["wecom", "wecom"]


async def test_apprise_json_url_to_a_refused_address_is_not_sent(
    endpoints: tuple[PushEndpoints, str],
) -> None:
    state, base = endpoints
    url = base.replace("http://", "json://") + "/apprise"
    with pytest.raises(PermanentNotifyError, match="loopback"):
        await AppriseChannel(SECRETS, DestinationGuard()).send(
            "alice", REPORT, url, idempotency_key="k"
        )
    with pytest.raises(PermanentNotifyError, match="acts on the server"):
        await AppriseChannel(SECRETS, LOOPBACK).send(
            "alice", REPORT, "windows://", idempotency_key="k"
        )
    assert state.received == []


@pytest.mark.parametrize(
    "scheme", ["hassio", "synology", "mastodon", "misskey", "pjet", "enigma2", "jellyfin"]
)
async def test_apprise_self_hosted_service_on_a_refused_address_is_refused_before_any_send(
    endpoints: tuple[PushEndpoints, str], scheme: str
) -> None:
    from ambient.clients.notify.targets import TargetPolicy
    from ambient.domain.notify import Target

    state, base = endpoints
    # These Apprise services post to the host the user names, like json:// does.
    url = base.replace("http://", f"{scheme}://token@") + "/abcdef"
    target = Target(type="apprise", target=url)
    assert "loopback" in str(TargetPolicy.strict().problem(target, user="bob", is_admin=False))
    with pytest.raises(PermanentNotifyError, match="loopback"):
        await AppriseChannel(SECRETS, DestinationGuard()).send(
            "alice", REPORT, url, idempotency_key="k"
        )
    assert state.received == []


async def test_email_title_with_line_breaks_is_sent_on_one_subject_line(mailbox: Mailbox) -> None:
    channel = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    # A title built from user or alert text: a line break must neither stop the mail nor
    # start a header of its own.
    message = REPORT.model_copy(update={"title": "api down\r\nBcc: mallory@evil.example\nagain"})
    await channel.send("alice", message, "alice@example.com", idempotency_key="k")
    (mail,) = mailbox.messages
    assert mail["Subject"] == "api down Bcc: mallory@evil.example again"
    assert mail["Bcc"] is None and mail["To"] == "alice@example.com"


async def test_a_dingtalk_robot_waiting_for_its_rate_limit_does_not_hold_up_another_robot() -> None:
    import asyncio

    limiter = RateLimiter(per_minute=1, max_wait=120)
    await limiter.acquire("busy-robot")
    waiting = asyncio.create_task(limiter.acquire("busy-robot"))  # its slot is a minute away
    await asyncio.sleep(0)
    try:
        # Another team's robot has sent nothing this minute: its message goes now.
        await asyncio.wait_for(limiter.acquire("quiet-robot"), timeout=5)
        assert not waiting.done()
    finally:
        waiting.cancel()


async def test_sms_goes_to_the_phone_number_however_it_was_written(
    endpoints: tuple[PushEndpoints, str],
) -> None:
    state, base = endpoints
    # The gateway gets the number as the template places it (here in the JSON body).
    template = base.replace("http://", "json://") + "/apprise?:phone={phone}"
    channel = SmsChannel(template, SECRETS)
    for written in ("+1 (555) 000-1111", "+1.555.000.1111", "+15550001111"):
        await channel.send("alice", REPORT, written, idempotency_key="k")
    assert [body["phone"] for _, body in state.received] == ["15550001111"] * 3


async def test_email_link_is_escaped_in_the_html_part(mailbox: Mailbox) -> None:
    channel = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    # A watched page's URL becomes the link: its quotes and brackets are text, not markup.
    link = 'https://shop.example/?q="><b>Password_expired</b><a/href="https://evil.example'
    message = Message(title="Changed", body="the page changed", link=link)
    await channel.send("alice", message, "alice@example.com", idempotency_key="k")
    (mail,) = mailbox.messages
    parts = {part.get_content_type(): part for part in mail.walk()}
    rich = parts["text/html"].get_payload(decode=True)
    assert isinstance(rich, bytes)
    html = rich.decode()
    assert "<b>" not in html and "<a/href" not in html
    assert "&lt;b&gt;Password_expired&lt;/b&gt;" in html


@pytest.mark.parametrize(
    "url",
    [
        "mailto://user:pass@example.com?smtp=10.0.0.5",
        "deltachat://user:pass@example.com?smtp=10.0.0.5",  # SMTP too, like mailto://
        "mqtt://10.0.0.5/topic",
        "irc://bot@127.0.0.1/#ops",
        "xmpp://user:pass@localhost",
        "smpp://user:pass@169.254.169.254:2775/1234/5678",
        "rsyslogs://127.0.0.1",
        "nosuchservice://127.0.0.1",
    ],
)
async def test_an_apprise_url_whose_host_the_guard_cannot_check_is_refused_before_any_send(
    url: str,
) -> None:
    from ambient.clients.notify.targets import TargetPolicy
    from ambient.domain.notify import Target

    # Allow-listing loopback and every network must not let these through: the guard cannot
    # check where these protocols connect.
    policy = TargetPolicy(LOOPBACK, SECRETS)
    assert "is not supported" in str(
        policy.problem(Target(type="apprise", target=url), user="bob", is_admin=True)
    )
    with pytest.raises(PermanentNotifyError, match="is not supported"):
        await AppriseChannel(SECRETS, LOOPBACK).send("alice", REPORT, url, idempotency_key="k")


def test_every_hosted_apprise_scheme_posts_to_its_services_own_address() -> None:
    import re

    from apprise.manager_plugins import NotificationManager

    from ambient.domain.apprise_urls import APPRISE_HOSTED

    plugins = NotificationManager()
    for scheme in sorted(APPRISE_HOSTED):
        plugin = plugins[scheme]
        assert plugin is not None, f"{scheme}:// is not an Apprise service"
        addresses = [
            value
            for name, value in vars(plugin).items()
            if isinstance(value, str) and value.startswith("http") and name.endswith("_url")
        ]
        module = __import__(plugin.__module__, fromlist=["_"])
        addresses += re.findall(r'"(https?://[^"]+)"', open(module.__file__ or "").read())
        for address in addresses:
            host = address.split("://", 1)[1].split("/", 1)[0]
            assert "{" not in host, (scheme, address)  # no part of the host from the URL


async def test_the_dingtalk_limiter_forgets_robots_quiet_for_a_minute() -> None:
    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    for n in range(500):  # robots of targets since removed, or tokens that never worked
        await limiter.acquire(f"robot-{n}")
    now[0] += 61
    await limiter.acquire("robot-today")
    # Only robots that sent within the minute keep a window: memory does not grow with every
    # token ever seen.
    assert list(limiter._sent) == ["robot-today"]


async def test_a_webhook_whose_url_holds_chinese_is_delivered(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    state, base = endpoints
    channel = WebhookChannel(SECRETS, WEBHOOK_SECRET, LOOPBACK)
    target = f"{base}/hook?team=运维"
    # The delivery key names the target, so it holds the Chinese too; HTTP headers are ASCII.
    key = f"wf/7:webhook:{target}"
    await channel.send("alice", REPORT, target, idempotency_key=key)
    assert state.received == [("webhook", {**state.received[0][1], "idempotency_key": key})]


@asynccontextmanager
async def _answering(
    host: str,
    answer: bytes,
    requests: list[bytes],
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """A bare HTTP(S) server on ``host`` that notes each request line and sends ``answer``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readline())
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, port, ssl=tls)
    async with server:
        yield server.sockets[0].getsockname()[1]


class _Rebinding(DestinationGuard):
    """DNS that answers the guard's lookup of a name with 127.0.0.2 (allowed), while the
    system's resolver, asked again at connect time, answers 127.0.0.1 (a refused address)."""

    def check_url_static(self, url: str) -> None:
        pass  # "localhost" stands for any name here: only its lookups decide

    def _refuse_literal(self, host: str) -> None:
        pass

    async def resolve(self, host: str, port: int) -> list[str]:
        return ["127.0.0.2"]


@asynccontextmanager
async def _checked_and_rebound(
    checked: list[bytes], rebound: list[bytes], tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """One port answering 200 on 127.0.0.2 (the address _Rebinding's guard checks) and on
    127.0.0.1 (the one a second lookup finds), each noting the request lines it is sent."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with AsyncExitStack() as servers:
        # A port free on 127.0.0.2 may be another process's on 127.0.0.1 (parallel tests),
        # and another is tried then.
        for _ in range(50):
            port = await servers.enter_async_context(_answering("127.0.0.2", ok, checked, tls=tls))
            try:
                await servers.enter_async_context(
                    _answering("127.0.0.1", ok, rebound, port, tls=tls)
                )
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                await servers.aclose()
        yield port


async def test_apprise_posts_to_the_address_the_guard_checked_not_to_a_second_lookup() -> None:
    # DNS rebinding: json://NAME passes the guard with an allowed address, then Apprise,
    # resolving NAME again, would post to whatever it now names (the cloud metadata service,
    # an internal API). The send goes to the address checked, with the name kept as Host.
    checked: list[bytes] = []
    rebound: list[bytes] = []
    async with _checked_and_rebound(checked, rebound) as port:
        url = f"json://localhost:{port}/notify"
        await AppriseChannel(SECRETS, _Rebinding(["127.0.0.2/32"])).send(
            "alice", REPORT, url, idempotency_key="k"
        )
    assert rebound == []
    assert len(checked) == 1 and checked[0].startswith(b"POST /notify ")


async def test_an_https_webhook_posts_to_the_address_the_guard_checked_not_to_a_second_lookup(
    tmp_path: Path,
) -> None:
    # DNS rebinding over HTTPS: the name passed the guard with an allowed address, and the
    # connection, looking it up again, went wherever it named then: a TCP connect and a TLS
    # handshake at an internal address, whose port's state the delivery error told. The
    # connection goes to the address checked; the name stays for Host and TLS.
    cert, key = certificate("localhost", tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    checked: list[bytes] = []
    rebound: list[bytes] = []
    async with _checked_and_rebound(checked, rebound, server_tls) as port:
        guard = _Rebinding(["127.0.0.2/32"])
        channel = WebhookChannel(SECRETS, WEBHOOK_SECRET, guard, timeout=10, verify=trusting)
        try:
            for _ in range(2):  # the second on the connection kept, or a new one: both checked
                await channel.send(
                    "alice", REPORT, f"https://localhost:{port}/hook", idempotency_key="k"
                )
        finally:
            await channel.aclose()
    assert rebound == []
    assert len(checked) == 2 and all(line.startswith(b"POST /hook ") for line in checked)


async def test_apprise_does_not_follow_a_redirect_to_a_refused_address() -> None:
    # json:// on an allowed host answers 307 to an address the guard refuses (127.0.0.2 is
    # not in LOOPBACK): Apprise follows redirects by itself, past the guard's check.
    inside: list[bytes] = []
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with _answering("127.0.0.2", ok, inside) as port:
        moved = (
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.2:{port}/inside\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode()
        outside: list[bytes] = []
        async with _answering("127.0.0.1", moved, outside) as public:
            url = f"json://127.0.0.1:{public}/notify"
            # ?redirect=yes is Apprise's own switch: the user's URL does not turn it back on.
            for aimed in (url, f"{url}?redirect=yes"):
                with pytest.raises(PermanentNotifyError, match="HTTP 307: the endpoint redirects"):
                    await AppriseChannel(SECRETS, LOOPBACK).send(
                        "alice", REPORT, aimed, idempotency_key="k"
                    )
    assert len(outside) == 2 and outside[0].startswith(b"POST /notify ")
    assert inside == []


async def test_an_apprise_send_goes_to_the_address_checked_not_through_the_envs_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY in the worker's environment: requests (under Apprise) connected to the proxy,
    so the guard checked the proxy's address, not the user's host, which the proxy looked up
    again (past the pin against DNS rebinding); a proxy at a private address refused every
    Apprise send. The user's host is connected to as checked, as a webhook is."""
    proxied: list[bytes] = []
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with _answering("127.0.0.2", ok, proxied) as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.2:{proxy}")
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        arrived: list[bytes] = []
        async with _answering("127.0.0.1", ok, arrived) as public:
            url = f"json://127.0.0.1:{public}/notify"
            await AppriseChannel(SECRETS, LOOPBACK).send("alice", REPORT, url, idempotency_key="k")
    assert len(arrived) == 1 and arrived[0].startswith(b"POST /notify "), arrived
    assert proxied == []


async def test_an_apprise_url_with_two_at_signs_is_checked_at_the_host_apprise_posts_to() -> None:
    # Apprise reads json://a@X@Y as user a at host X: the guard must check X (127.0.0.2 is
    # not in LOOPBACK), not Y after the last @.
    inside: list[bytes] = []
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with _answering("127.0.0.2", ok, inside) as port:
        url = f"json://a@127.0.0.2:{port}@127.0.0.1:9/x"
        with pytest.raises(PermanentNotifyError, match=r"127\.0\.0\.2"):
            await AppriseChannel(SECRETS, LOOPBACK).send("alice", REPORT, url, idempotency_key="k")
    assert inside == []


LAMETRIC_CLOUD = "lametric://" + "A" * 88 + "==@abcdef0123456789abcdef0123456789"


@pytest.mark.parametrize(
    ("url", "aimed"),
    [
        # Hosted forms: the first part is a token, the request goes to the service's address.
        ("notica://TOKEN", None),  # notica.us
        ("noticas://TOKEN", None),
        ("revolt://BOT_TOKEN/CHANNEL", None),  # api.revolt.chat
        ("ntfy://topic?mode=cloud", None),  # ntfy.sh
        ("ntfys://topic", None),
        ("matrix://" + "t" * 64, None),  # webhooks.t2bot.io
        (LAMETRIC_CLOUD, None),  # developer.lametric.com
        ("trigv://trgv_abcd1234_" + "a" * 32, None),  # api.trigv.com
        ("notifico://1234/hook", None),  # n.tkte.ch
        # Self-hosted forms of the same services: the host named.
        ("notica://notica.example/TOKEN", "http://notica.example/"),
        ("noticas://u:p@notica.example:8443/sub/TOKEN", "https://notica.example:8443/"),
        ("ntfys://ntfy.example/topic", "https://ntfy.example/"),
        ("matrixs://u:p@matrix.example/!room", "https://matrix.example/"),
        ("lametric://apikey@10.0.0.7", "http://10.0.0.7/"),
    ],
)
def test_the_guard_aims_an_apprise_url_at_the_host_its_request_goes_to(
    url: str, aimed: str | None
) -> None:
    from ambient.clients.notify.targets import aimed_url
    from ambient.domain.notify import Target

    # A token read as a host could never resolve: every send failed as "cannot resolve".
    assert aimed_url(Target(type="apprise", target=url)) == aimed


def test_every_self_hosted_apprise_scheme_is_aimed_at_the_host_it_names() -> None:
    from ambient.clients.notify.targets import aimed_url
    from ambient.domain.apprise_urls import APPRISE_HTTP
    from ambient.domain.notify import Target

    for scheme in APPRISE_HTTP:
        secure = scheme.endswith("s") and scheme[:-1] in APPRISE_HTTP
        url = f"{scheme}://user:pw@host.example:8443/room/TOKEN"
        expected = ("https" if secure else "http") + "://host.example:8443/"
        assert aimed_url(Target(type="apprise", target=url)) == expected, scheme


TRIGV_KEY = "trgv_abcd1234_" + "a" * 32


@pytest.mark.parametrize(
    "url",
    [f"trigv://{TRIGV_KEY}@127.0.0.2:{{port}}/general", "notifico://127.0.0.2:{port}/1234/hook"],
)
async def test_a_self_hosted_form_of_a_hosted_apprise_service_passes_the_guard(url: str) -> None:
    from ambient.clients.notify.targets import TargetPolicy
    from ambient.domain.notify import Target

    # Trigv and Notifico post to a host the URL names when it names one (127.0.0.2 is not
    # in LOOPBACK): the guard checks it as for json://.
    inside: list[bytes] = []
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with _answering("127.0.0.2", ok, inside) as port:
        target = url.format(port=port)
        policy = TargetPolicy.strict()
        assert "loopback" in str(
            policy.problem(Target(type="apprise", target=target), user="bob", is_admin=False)
        )
        with pytest.raises(PermanentNotifyError, match=r"127\.0\.0\.2"):
            await AppriseChannel(SECRETS, LOOPBACK).send(
                "alice", REPORT, target, idempotency_key="k"
            )
    assert inside == []


async def test_everyone_is_mentioned_however_all_is_written(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    # Targets are accepted with `all` or `@all` on either robot (WeCom writes @all, DingTalk
    # isAtAll): both must @ everyone, not mention a user named "all" or print "@@all".
    state, base = endpoints
    await WeComChannel(http, SECRETS, base, timeout=10).send(
        "alice", REPORT, f"{WECOM_KEY}?mentioned=all&mobiles=all", idempotency_key="k"
    )
    await DingTalkChannel(http, SECRETS, base).send(
        "alice",
        REPORT.model_copy(update={"link": None}),
        "secret:ding?at=@all",
        idempotency_key="k",
    )
    text = next(
        body for name, body in state.received if name == "wecom" and body["msgtype"] == "text"
    )
    assert text["text"]["mentioned_list"] == ["@all"]
    assert text["text"]["mentioned_mobile_list"] == ["@all"]
    (ding,) = [body for name, body in state.received if name == "dingtalk"]
    assert ding["at"] == {"atMobiles": [], "isAtAll": True}
    assert "@all" not in ding["markdown"]["text"]


async def test_a_webhook_whose_certificate_is_not_trusted_fails_at_once_not_after_retries(
    tmp_path: Path,
) -> None:
    """An https receiver with a certificate the worker does not trust (self-signed, another
    name) was retried as a passing failure for ~35 s, and said "retrying" meanwhile; email
    said the same thing at once, with what to fix."""
    cert, key = certificate("hooks.test", tmp_path, ips=("127.0.0.1",))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient() as http:
            with pytest.raises(PermanentNotifyError, match="certificate was refused"):
                await post_json(http, f"https://127.0.0.1:{port}/hook", {"text": "hi"})
    finally:
        server.close()
        await server.wait_closed()


async def test_smtp_tls_that_cannot_work_is_a_permanent_configuration_error(
    mailbox: Mailbox, tmp_path: Path
) -> None:
    # AMBIENT_SMTP_TLS=ssl on a port that speaks plain SMTP (587, 25), or a server whose
    # certificate the worker does not trust: every retry fails the same way, so the user
    # must hear it at once with the setting to fix, not "retrying" five times.
    plain = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="ssl", timeout=5)
    with pytest.raises(PermanentNotifyError, match="AMBIENT_SMTP_TLS"):
        await plain.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    cert, key = certificate("mail.test", tmp_path, ips=("127.0.0.1",))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    with Mailbox(tls=server_tls) as secure:
        untrusted = EmailChannel("127.0.0.1", secure.port, "ops@example.com", tls="ssl", timeout=5)
        with pytest.raises(PermanentNotifyError, match="certificate"):
            await untrusted.send("alice", REPORT, "alice@example.com", idempotency_key="k")
        trusting = ssl.create_default_context(cafile=str(cert))
        trusted = EmailChannel(
            "127.0.0.1", secure.port, "ops@example.com", tls="ssl", timeout=5, tls_context=trusting
        )
        await trusted.send("alice", REPORT, "alice@example.com", idempotency_key="k")
        assert [mail["To"] for mail in secure.messages] == ["alice@example.com"]
    assert mailbox.messages == []


async def test_starttls_on_a_port_that_speaks_tls_at_once_says_which_setting_to_fix(
    tmp_path: Path,
) -> None:
    """AMBIENT_SMTP_TLS=starttls with AMBIENT_SMTP_PORT=465: the server waits for a TLS
    handshake, the client for a greeting, and the user read "transient:
    SMTPConnectTimeoutError: Timed out waiting for server ready message", retried until its
    give-up. It is said at once now, naming ssl for 465 and starttls for 587."""
    cert, key = certificate("mail.test", tmp_path, ips=("127.0.0.1",))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    with Mailbox(tls=server_tls) as secure:
        for tls in ("starttls", "none"):
            channel = EmailChannel("127.0.0.1", secure.port, "ops@example.com", tls=tls, timeout=1)
            with pytest.raises(PermanentNotifyError) as said:
                await channel.send("alice", REPORT, "alice@example.com", idempotency_key="k")
            text = str(said.value)
            assert "AMBIENT_SMTP_TLS=ssl" in text and "587" in text, text
            assert "Timed out" not in text, text
        assert secure.messages == []


async def test_a_relay_refusing_the_workers_ehlo_name_says_to_set_it_not_a_recipient() -> None:
    """A container's host name is its bare id: a relay checking the EHLO name (Postfix's
    reject_non_fqdn_helo_hostname) refused every recipient, and the user read "recipient ...
    refused (504 ...)" with nothing to set. The name is said, with AMBIENT_SMTP_HELO; set, it
    is the one the worker greets with."""
    with Mailbox(fqdn_helo=True) as mailbox:
        bare = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none", helo="c0ffee")
        with pytest.raises(PermanentNotifyError) as said:
            await bare.send("alice", REPORT, "alice@example.com", idempotency_key="k")
        text = str(said.value)
        assert "AMBIENT_SMTP_HELO" in text and "EHLO c0ffee" in text, text
        assert not text.startswith("recipient"), text
        named = EmailChannel(
            "127.0.0.1", mailbox.port, "ops@example.com", tls="none", helo="worker.example.com"
        )
        await named.send("alice", REPORT, "alice@example.com", idempotency_key="k")
        assert [mail["To"] for mail in mailbox.messages] == ["alice@example.com"]
        assert mailbox.helo_names == ["c0ffee", "worker.example.com"]


async def test_a_burst_to_a_wecom_robot_waits_for_its_rate_limit_instead_of_tripping_it(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient
) -> None:
    # WeCom allows a robot 20 messages a minute, as DingTalk does (errcode 45009 past it): in
    # an alert storm the 21st waits for a slot (here: none free at once), never sent into the
    # limit to come back 45009 on every quick retry.
    state, base = endpoints
    channel = WeComChannel(
        http, SECRETS, base, timeout=10, limiter=RateLimiter(per_minute=20, max_wait=0)
    )
    for _ in range(20):
        await channel.send("alice", REPORT, WECOM_KEY, idempotency_key="k")
    with pytest.raises(TransientNotifyError, match="over 20/min"):
        await channel.send("alice", REPORT, WECOM_KEY, idempotency_key="k")
    assert len(state.received) == 20 and state.throttled == []


async def test_mail_goes_out_from_the_smtp_login_when_no_sender_is_set(
    settings: Settings, db: Database, http: httpx.AsyncClient
) -> None:
    # The operator sets AMBIENT_SMTP_HOST, _USERNAME and _PASSWORD as the provider's guide
    # lists them: the mail must leave as that account, not as ambient-ops@localhost (which
    # QQ, 163 and Exmail refuse with 501, and most servers as a sender domain that does not
    # exist). An AMBIENT_SMTP_FROM set still wins.
    account = ("ops@mail.example", "app-password")
    with Mailbox(login=account) as mailbox:
        smtp = {
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
            "smtp_tls": "none",
            "smtp_username": account[0],
            "smtp_password": SecretStr(account[1]),
        }
        configured = Settings(_env_file=None, **smtp)  # type: ignore[call-arg, arg-type]
        email = build_channels(configured, db, http).get("email")
        await email.send("alice", REPORT, "alice@example.com", idempotency_key="k")
        assert [mail["From"] for mail in mailbox.messages] == [account[0]]
    chosen = Settings(_env_file=None, smtp_from="Ops <alerts@mail.example>", **smtp)  # type: ignore[call-arg, arg-type]
    assert chosen.smtp_from == "Ops <alerts@mail.example>"


async def test_a_robot_send_cut_off_while_waiting_for_its_slot_gives_the_slot_back() -> None:
    # A send waiting for the robot's next slot is cut off (the per-target timeout, a cancelled
    # workflow): it posted nothing, so the slot it held must go to the next message instead
    # of silencing the robot for another minute.
    now = [1000.0]
    limiter = RateLimiter(per_minute=1, max_wait=120, clock=lambda: now[0])
    await limiter.acquire("robot")
    waiting = asyncio.create_task(limiter.acquire("robot"))  # its slot is a minute away
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    now[0] += 10  # still the first send's minute: the next one waits as before
    early = asyncio.create_task(limiter.acquire("robot"))
    await asyncio.sleep(0.05)
    assert not early.done()
    early.cancel()
    now[0] += 51  # the first send's minute is over: the robot has a free slot now
    await asyncio.wait_for(limiter.acquire("robot"), timeout=5)


async def test_a_wrong_smtp_password_says_what_the_server_said_and_what_to_set() -> None:
    # QQ / 163 mail refuse the account's own password ("535 Login Fail. Please enter your
    # authorization code to login"): the operator must read the server's words and the
    # settings to change, not a bare "535".
    reply = "535 Login Fail. Please enter your authorization code to login"
    with Mailbox(auth_reply=reply) as mailbox:
        channel = EmailChannel(
            "127.0.0.1", mailbox.port, "ops@example.com", tls="none", username="u", password="p"
        )
        with pytest.raises(PermanentNotifyError) as refused:
            await channel.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    error = str(refused.value)
    assert "authorization code" in error
    assert "AMBIENT_SMTP_USERNAME" in error and "AMBIENT_SMTP_PASSWORD" in error


async def test_a_refused_sender_names_the_setting_to_change() -> None:
    # The server refuses the From (not the account's, or an unverified sender identity):
    # the operator must learn it is AMBIENT_SMTP_FROM, with the server's words.
    account = ("ops@mail.example", "app-password")
    with Mailbox(login=account) as mailbox:
        channel = EmailChannel(
            "127.0.0.1",
            mailbox.port,
            "alerts@other.example",
            tls="none",
            username=account[0],
            password=account[1],
        )
        with pytest.raises(PermanentNotifyError) as refused:
            await channel.send("alice", REPORT, "alice@example.com", idempotency_key="k")
    error = str(refused.value)
    assert "AMBIENT_SMTP_FROM" in error and "alerts@other.example" in error
    assert "must be same as authorization user" in error


async def test_a_digest_over_the_servers_size_limit_is_not_told_as_a_wrong_sender(
    deps: WorkerDeps,
) -> None:
    # A server announcing a message size limit (ESMTP SIZE: Postfix's message_size_limit, a
    # corporate relay's) refuses a MAIL FROM whose SIZE= is over it with 552 "message size
    # exceeds fixed maximum message size", the sender being fine. It was said "sender ...
    # refused: set AMBIENT_SMTP_FROM ...", which no sender fixes.
    await _user(deps.db, "alice")
    with Mailbox(size_limit=20_000) as mailbox:
        # Not the deadline's test: a loaded machine took over 2.5 s to render this digest.
        notify, request = _mailing(deps, mailbox, "size-limit", deadline=30)
        digest = "\n".join(f"- 订单服务 node-{i}: 错误率 5.{i}% 超过阈值" for i in range(2_000))
        request.message = Message(title="每日摘要", body=digest)
        result = await ActivityEnvironment().run(notify.notify, request)
        assert mailbox.messages == []
    (delivery,) = result.deliveries
    assert delivery.status is DeliveryStatus.FAILED
    key = delivery_key(request.idempotency_key, "email", "alice@example.com")
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
        events = await EventRepository(session).list(user="alice", kind="delivery.failed")
    said = row.error if row is not None else ""
    assert said.startswith("permanent: ")
    assert [e.payload["error"] for e in events] == [said.removeprefix("permanent: ")]
    # The server's words and its limit are kept; the sender is not what to change.
    assert "552" in said and "message size exceeds" in said
    assert "too big" in said and "20000 bytes" in said
    assert "AMBIENT_SMTP_FROM" not in said, said


async def test_a_link_the_body_already_carries_is_not_added_again(
    endpoints: tuple[PushEndpoints, str], http: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    # The briefing's summary ends with "[完整报告](link)": the group and the mailbox saw the
    # same report linked twice at the end of every briefing.
    state, base = endpoints
    link = "https://ops.example/share/abc"
    message = REPORT.model_copy(
        update={"body": f"**3 alarms**\n\n[完整报告]({link})", "link": link}
    )
    await WeComChannel(http, SECRETS, base, timeout=10).send(
        "alice", message, WECOM_KEY, idempotency_key="k"
    )
    ((_, wecom),) = state.received
    assert wecom["markdown"]["content"].count(link) == 1
    email = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    await email.send("alice", message, "alice@example.com", idempotency_key="k")
    parts = {part.get_content_type(): part for part in mailbox.messages[0].walk()}
    for kind in ("text/plain", "text/html"):
        payload = parts[kind].get_payload(decode=True)
        assert isinstance(payload, bytes) and payload.decode().count(link) == 1, kind
    # A body without the link still gets it.
    state.received.clear()
    await WeComChannel(http, SECRETS, base, timeout=10).send(
        "alice", REPORT, WECOM_KEY, idempotency_key="k"
    )
    assert REPORT.link and REPORT.link in state.received[0][1]["markdown"]["content"]


async def test_a_text_only_apprise_service_gets_the_words_as_written_not_their_escapes(
    endpoints: tuple[PushEndpoints, str],
) -> None:
    state, base = endpoints
    # An SMS gateway takes text: the markdown body's escapes would arrive as backslashes.
    template = base.replace("http://", "json://") + "/apprise?:phone={phone}&format=text"
    line = "Price *dropped* to [99](https://shop.example) for gpu_x"
    hit = Message(title="Keyword hit", body=f"- gpu: {markdown_literal(line)}")
    await SmsChannel(template, SECRETS).send("alice", hit, "+15550001111", idempotency_key="k")
    # A service that renders markdown still gets the markdown, escapes and all.
    await AppriseChannel(SECRETS, DestinationGuard(["127.0.0.1/32"])).send(
        "alice", hit, base.replace("http://", "json://") + "/apprise", idempotency_key="k"
    )
    [(_, sms), (_, rendered)] = state.received
    assert sms["message"] == f"- gpu: {line}"
    assert rendered["message"] == hit.body


@pytest.mark.parametrize("between", [",", " ", ", ", "\n"])
async def test_an_apprise_url_holding_a_second_url_is_refused_before_any_send(
    endpoints: tuple[PushEndpoints, str], between: str
) -> None:
    """Apprise reads "tgram://…,json://host/…" as two services: the guard checked the first
    one's host alone, and the second one was posted to, wherever it pointed."""
    from ambient.clients.notify.targets import TargetPolicy
    from ambient.domain.notify import Target

    state, base = endpoints
    inside = base.replace("http://", "json://") + "/apprise"
    url = f"tgram://123456789:abcdefg_hijklmnop/-100123{between}{inside}"
    target = Target(type="apprise", target=url)
    problem = TargetPolicy.strict().problem(target, user="bob", is_admin=False)
    assert "one Apprise URL a target" in str(problem), problem
    with pytest.raises(PermanentNotifyError, match="one Apprise URL a target"):
        await AppriseChannel(SECRETS, DestinationGuard()).send(
            "alice", REPORT, url, idempotency_key="k"
        )
    # A target stored before the rule reaches the send itself: still one service or none.
    from ambient.clients.notify.apprise import notify_apprise

    with pytest.raises(PermanentNotifyError, match="one Apprise URL a target"):
        await notify_apprise(url, REPORT)
    assert state.received == []


@pytest.mark.parametrize(
    ("url", "count"),
    [
        ("ntfy://ntfy.sh/ops/down", 2),
        ("tgram://123456789:abcdefg_hijklmnop/-100123/-100456/-100789", 3),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops/#dev", 2),
    ],
)
def test_an_apprise_url_naming_several_destinations_is_refused_when_saved(
    url: str, count: int
) -> None:
    """Each try sends to every destination of the URL: one that failed for now (a 502) had
    every retry post again to those that had taken the message (five copies)."""
    from ambient.clients.notify.targets import TargetPolicy
    from ambient.domain.notify import Target

    problem = TargetPolicy.strict().problem(
        Target(type="apprise", target=url), user="bob", is_admin=False
    )
    assert f"names {count}, and a retry after one failed" in str(problem), problem
    single = url.rsplit("/", count - 1)[0]  # the first destination alone, its own retries too
    for one in (single, f"{single}?retry=2"):
        assert (
            TargetPolicy.strict().problem(
                Target(type="apprise", target=one), user="bob", is_admin=False
            )
            is None
        )


async def test_every_http_receiver_waits_for_its_answer_as_long_as_the_setting_says(
    db: Database,
) -> None:
    """The robots waited a fixed 15 s: a WeCom gateway answering in 17 under
    AMBIENT_NOTIFY_TARGET_TIMEOUT=40 had posted, and its row said failed (a review)."""
    settings = Settings(_env_file=None, notify_target_timeout=40)  # type: ignore[call-arg]
    async with httpx.AsyncClient() as http:
        channels = build_channels(settings, db, http)
        waits = {name: channels.get(name).timeout for name in ("wecom", "dingtalk", "webhook")}  # type: ignore[attr-defined]
    assert waits == {"wecom": 40, "dingtalk": 40, "webhook": 40}
