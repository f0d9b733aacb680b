"""One user pushed to on every kind of channel at once, each a real server on loopback: what
a markdown channel (a WeCom robot) and the plain ones (email's text, a webhook, the inbox)
were given."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from pydantic import SecretStr
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig, DayPlan
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import NotificationKind
from ambient.storage.repositories import InboxRepository
from tests.briefing.harness import Stack, briefing_stack, make_user
from tests.notify.standins import WEBHOOK_SECRET, WECOM_KEY, Mailbox, PushEndpoints
from tests.support.servers import HANG, serve


@dataclass
class Pushed:
    """The user's channels' stand-ins, and what each was given."""

    user: str
    deps: WorkerDeps
    bots: PushEndpoints
    mailbox: Mailbox

    async def shown(self) -> dict[str, list[str]]:
        """Each channel's texts of the messages it was given: the WeCom robot's markdown, the
        text part of each email, each webhook's body, the inbox's messages."""
        received = self.bots.received
        mails = [m.get_body(preferencelist=("plain",)) for m in self.mailbox.messages]
        async with self.deps.db.session() as session:
            inbox = await InboxRepository(session).list(self.user)
        return {
            "wecom": [body["markdown"]["content"] for name, body in received if name == "wecom"],
            "email": [part.get_content() for part in mails if part is not None],
            "webhook": [body["body"] for name, body in received if name == "webhook"],
            "inbox": [m.body for m in inbox],
        }


@contextmanager
def mailed(deps: WorkerDeps) -> Iterator[Mailbox]:
    """A mail server on loopback, and ``deps`` with email aimed at it (plain SMTP)."""
    with Mailbox() as mailbox:
        deps.settings = deps.settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": mailbox.port, "smtp_tls": "none"}
        )
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        yield mailbox


@asynccontextmanager
async def pushed_everywhere(deps: WorkerDeps, user: str) -> AsyncIterator[Pushed]:
    """``user``, whose push config names a WeCom robot, an email address and a webhook for
    every kind of message (their stand-ins served here), and ``deps`` with channels aimed at
    them."""
    bots = PushEndpoints()
    with Mailbox() as mailbox:
        async with serve(bots.app()) as base:
            deps.settings = deps.settings.model_copy(
                update={
                    "wecom_base_url": base,
                    "smtp_host": "127.0.0.1",
                    "smtp_port": mailbox.port,
                    "smtp_tls": "none",
                    "webhook_signing_secret": SecretStr(WEBHOOK_SECRET),
                    "fetch_allow_cidrs": ["127.0.0.1/32"],
                }
            )
            deps.channels = build_channels(deps.settings, deps.db, deps.http)
            # Every kind of message: a push channel's default leaves out system messages.
            every = [kind.value for kind in NotificationKind]
            channels = [
                {"type": "wecom", "target": WECOM_KEY, "kinds": every},
                {"type": "email", "target": f"{user}@example.com", "kinds": every},
                {"type": "webhook", "target": f"{base}/hook", "kinds": every},
            ]
            await make_user(deps.db, user, {"channels": channels})
            yield Pushed(user, deps, bots, mailbox)


class MailHeld:
    """The mail server's answer to DATA held (in its own thread) until released."""

    def __init__(self) -> None:
        self._asked, self._release = threading.Event(), threading.Event()

    def hold(self) -> None:
        self._asked.set()
        self._release.wait(HANG)

    async def asked(self) -> None:
        assert await asyncio.to_thread(self._asked.wait, HANG)

    def release(self) -> None:
        self._release.set()


@asynccontextmanager
async def mail_held(
    env: WorkflowEnvironment, deps: WorkerDeps, user: str, config: BriefingConfig
) -> AsyncIterator[tuple[Stack, DayPlan, WorkflowHandle[object, object], MailHeld]]:
    """``user``'s daily briefing created with an email channel whose server holds its answer
    to the message: the stack, the day, the day's run, the hold."""
    held = MailHeld()
    with mailed(deps) as mailbox:
        email = [{"type": "email", "target": f"{user}@example.com", "kinds": ["briefing"]}]
        await make_user(deps.db, user, {"channels": email})
        async with briefing_stack(env, deps) as stack:
            day, first = await stack.created(user, config)
            run = env.client.get_workflow_handle(f"daily-briefing/{user}", run_id=first)
            mailbox.on_data = held.hold
            try:
                yield stack, day, run, held
            finally:
                held.release()  # before the worker stops: it waits for its activities
