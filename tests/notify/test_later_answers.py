"""A receiver's "try again later" as the channels read it: which answers ask to be tried later
(and after how long), and which stay final."""

from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.email import EmailChannel
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
)
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.webhook import WebhookChannel
from ambient.domain.deliver_later import retry_after_seconds, smtp_asked_delay
from ambient.domain.notify import Message
from tests.notify.standins import Mailbox
from tests.support.servers import serve

MESSAGE = Message(title="Disk 91%", body="node-3")
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reply", "seconds"),
    [
        ("4.7.1 Greylisted, try again in 300 s", 300),
        ("4.7.1 Greylisted for 300 seconds", 300),
        ("Greylisted for 5 minutes (2)", 300),
        ("4.7.1 Greylisting in action, please come back in 00:05:00", 300),
        ("Try again in 1 hour", 3600),
        ("deferred: retry after 60s", 60),
        ("please wait 2 mins before retrying", 120),
        # Said without a delay: the backoff decides.
        ("4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/example.com.html", None),
        ("4.7.1 Please try again later", None),
        ("4.2.2 Mailbox full, 5 messages over quota", None),
        ("Service busy at 12:30:45, closing connection", None),
    ],
)
def test_an_smtp_reply_states_its_delay_or_none(reply: str, seconds: float | None) -> None:
    assert smtp_asked_delay(reply) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120),
        (" 0 ", 0),
        ("Sun, 29 Nov 2026 12:05:00 GMT", 300),
        ("Sun, 29 Nov 2026 11:00:00 GMT", 0),  # a date already past: at once
        ("\u00b2", None),  # a digit to str.isdigit(), not a number of seconds
        ("soon", None),
        ("-5", None),
    ],
)
def test_a_retry_after_is_seconds_or_a_date(value: str, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


async def test_a_greylisting_server_asks_later_and_a_refusal_is_final(mailbox: Mailbox) -> None:
    channel = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
    mailbox.greylist_first = 1
    with pytest.raises(DeferredNotifyError, match="Greylisted") as later:
        await channel.send("alice", MESSAGE, "alice@example.com", idempotency_key="k")
    assert later.value.retry_after == 300
    mailbox.greylist.add("bob@example.com")  # "try again later", no delay said
    with pytest.raises(DeferredNotifyError) as unsaid:
        await channel.send("alice", MESSAGE, "bob@example.com", idempotency_key="k")
    assert unsaid.value.retry_after is None
    mailbox.refuse.add("ghost@example.com")
    with pytest.raises(PermanentNotifyError, match="550"):
        await channel.send("alice", MESSAGE, "ghost@example.com", idempotency_key="k")
    mailbox.mail_reply = "421 4.7.0 Too many connections, try again in 2 minutes"
    with pytest.raises(DeferredNotifyError, match="421") as busy:
        await channel.send("alice", MESSAGE, "alice@example.com", idempotency_key="k")
    assert busy.value.retry_after == 120


@pytest.mark.parametrize(
    ("status", "headers", "raised", "retry_after"),
    [
        (429, {"Retry-After": "120"}, DeferredNotifyError, 120),
        (503, {}, DeferredNotifyError, None),
        (503, {"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}, DeferredNotifyError, "a date"),
        (408, {}, TransientNotifyError, None),
        (500, {}, TransientNotifyError, None),
        (404, {}, PermanentNotifyError, None),
        (400, {"Retry-After": "5"}, PermanentNotifyError, None),
    ],
)
async def test_a_webhook_answer_is_later_transient_or_final(
    status: int, headers: dict[str, str], raised: type[Exception], retry_after: object
) -> None:
    # 429 and 503 ask to be tried later; 408 and the other 5xx may pass at once; another 4xx
    # (a wrong URL, a payload refused) never will.
    async def hook(request: Request) -> Response:
        return Response("answer", status_code=status, headers=headers)

    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        channel = WebhookChannel(SecretResolver({}), None, DestinationGuard(["127.0.0.1/32"]))
        with pytest.raises(raised) as answered:
            await channel.send("alice", MESSAGE, f"{base}/hook", idempotency_key="k")
        await channel.aclose()
    assert type(answered.value) is raised
    asked = getattr(answered.value, "retry_after", None)
    if retry_after == "a date":
        assert asked is not None and asked > 365 * 86400
    else:
        assert asked == retry_after
