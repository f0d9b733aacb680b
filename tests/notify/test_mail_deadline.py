"""A mail server that takes the message and answers after the send's deadline: the message
may have been delivered, as when the connection is lost there, so no try sends it again; a
send cancelled while the server holds its answer ends at once."""

import asyncio
import ssl
import threading
from pathlib import Path

from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deliveries import delivery_key
from activities.notify import NotifyActivities
from ambient.clients.notify.email import EmailChannel
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.storage.repositories import DeliveryRepository, EventRepository
from bench.certs import certificate
from tests.conftest import unique
from tests.notify.standins import Mailbox
from tests.notify.test_delivery import _user
from tests.support.servers import HANG

DEADLINE = 2.5  # the send's deadline (AMBIENT_NOTIFY_TARGET_TIMEOUT), seconds


async def _try(notify: NotifyActivities, request: NotifyRequest) -> None:
    """One try of the notify activity, as Temporal runs it (a transient failure raises)."""
    try:
        await ActivityEnvironment().run(notify.notify, request)
    except ApplicationError as exc:
        assert exc.type == "TransientNotifyError"


def _mailing(
    deps: WorkerDeps, mailbox: Mailbox, name: str, tls: str = "none", deadline: float = DEADLINE
) -> tuple[NotifyActivities, NotifyRequest]:
    """The notify activities sending mail through ``mailbox`` (AMBIENT_SMTP_TLS ``tls``) within
    ``deadline``, and a new notification of alice's to her address."""
    deps.settings = deps.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
            "smtp_tls": tls,
            "notify_target_timeout": deadline,
        }
    )
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    request = NotifyRequest(
        user="alice",
        message=Message(title="Disk 91%", body="node-3"),
        targets=[Target(type="email", target="alice@example.com")],
        idempotency_key=unique(name),
    )
    return notify, request


async def test_a_mail_the_server_took_but_answered_after_the_deadline_is_not_sent_again(
    deps: WorkerDeps,
) -> None:
    await _user(deps.db, "alice")
    with Mailbox() as mailbox:
        mailbox.data_delay = 3 * DEADLINE  # the 250 comes after the send was cut off
        notify, request = _mailing(deps, mailbox, "mail-deadline")
        # Every try Temporal would make: the first was cut off waiting for the 250.
        for _ in range(3):
            await _try(notify, request)
        assert len(mailbox.messages) == 1
    key = delivery_key(request.idempotency_key, "email", "alice@example.com")
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
        events = await EventRepository(session).list(user="alice", kind="delivery.failed")
    assert row is not None and row.status == DeliveryStatus.FAILED.value
    assert "may have been delivered; not sent again" in (row.error or "")
    assert row.error is not None and row.error.startswith("permanent:")
    # Said once for good: nothing is tried again. (On a loaded machine a try may have been cut
    # off before the message went, and said "retrying": nothing was handed then.)
    said = [e.payload["retrying"] for e in events]
    assert said.count(False) == 1 and said[0] is False, said


async def test_a_send_cancelled_while_the_server_holds_its_answer_ends_at_once() -> None:
    """Its notify activity cancelled (a daily briefing deleted during its push) while the mail
    server holds its answer to the message: the send ends as it hears the cancel. It said QUIT
    and waited for that answer, up to its timeout (30 s by default), and so did a run waiting
    for the activity's cancel to end."""
    asked, release = threading.Event(), threading.Event()

    def hold() -> None:  # in the mail server's own thread: QUIT is not answered either
        asked.set()
        release.wait(HANG)

    with Mailbox() as mailbox:
        mailbox.on_data = hold
        # A timeout past the wait below: only the cancel can end the send in time.
        channel = EmailChannel("127.0.0.1", mailbox.port, "ops@example.com", tls="none")
        channel.timeout = 2 * HANG
        message = Message(title="Briefing", body="All quiet")
        send = asyncio.create_task(
            channel.send("alice", message, "alice@example.com", idempotency_key="k")
        )
        try:
            assert await asyncio.to_thread(asked.wait, HANG)
            send.cancel()
            done, _ = await asyncio.wait({send}, timeout=HANG)
        finally:
            release.set()
    assert done == {send} and send.cancelled()


class SlowGoodbye(Mailbox):
    """Takes the message at once (250), then holds its answer to QUIT past the deadline."""

    async def handle_QUIT(self, server: object, session: object, envelope: object) -> str:
        await asyncio.sleep(3 * DEADLINE)
        return "221 Bye"


async def test_a_mail_the_server_took_at_once_is_sent_however_slow_its_goodbye(
    deps: WorkerDeps,
) -> None:
    """The QUIT after the 250 ran inside the send's deadline: a server slow to answer it had
    the send cut there, and the mail it had taken was recorded failed, "may have been
    delivered", and said so to the user."""
    await _user(deps.db, "alice")
    with SlowGoodbye() as mailbox:
        notify, request = _mailing(deps, mailbox, "slow-goodbye")
        result = await ActivityEnvironment().run(notify.notify, request)
        assert len(mailbox.messages) == 1
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT], result
    key = delivery_key(request.idempotency_key, "email", "alice@example.com")
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
        failed = await EventRepository(session).list(user="alice", kind="delivery.failed")
    assert row is not None and row.status == "sent" and failed == []


async def test_starttls_asked_of_an_implicit_tls_port_is_said_within_the_sends_deadline(
    deps: WorkerDeps, tmp_path: Path
) -> None:
    """AMBIENT_SMTP_TLS=starttls on a port that speaks TLS from the first byte (465), through
    the channels the worker builds: the greeting was waited for as long as the send's deadline
    (30 s both by default), so the deadline cut the send first and the user read "no answer"
    on every try, never the setting to fix. It is said at the first try now, for good."""
    await _user(deps.db, "alice")
    cert, key = certificate("mail.test", tmp_path, ips=("127.0.0.1",))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    with Mailbox(tls=server_tls) as secure:
        # A deadline under the 10 s greeting wait: a third of it is waited (a loaded machine
        # took over the 0.8 s a third of 2.5 s gives for the TLS probe).
        notify, request = _mailing(deps, secure, "starttls-on-465", tls="starttls", deadline=6)
        result = await ActivityEnvironment().run(notify.notify, request)
        assert secure.messages == []
    [delivery] = result.deliveries
    assert delivery.status == DeliveryStatus.FAILED, result
    assert "AMBIENT_SMTP_TLS=ssl" in (delivery.error or ""), delivery.error
    assert (delivery.error or "").startswith("permanent:"), delivery.error
