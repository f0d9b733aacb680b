"""A web monitor's change mailed to a server that greylists: the watch checks on while a
deliver-later run tries the mail again, and the mail arrives once (dev server, real time)."""

# ruff: noqa: F811 - the fixtures `site` and `loopback_deps` are imported and used by name

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.deliver_later import LaterOutcome, later_workflow_id
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.watches.models import TaskStatus
from tests.conftest import running_worker
from tests.notify.standins import Mailbox
from tests.support.waits import eventually
from tests.watches.site import Site, article
from tests.watches.test_polling import events, fast, start, status
from tests.watches.test_workflows import USER, loopback_deps, site  # noqa: F401  (fixtures)

ADDRESS = f"{USER}@example.com"


async def test_a_greylisted_change_mail_comes_once_from_a_later_run_while_the_watch_checks_on(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    deps = loopback_deps
    with Mailbox() as mailbox:
        # The server greylists until the test lets it take the mail, saying no delay: the
        # poll's quick tries go first (a "later" that names no delay may pass in seconds),
        # its last hands the mail over, and the later run's tries back off from 1 s.
        mailbox.greylist_first = 1000
        mailbox.greylist_reply = "451 4.7.1 Please try again later"
        deps.settings = deps.settings.model_copy(
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox.port,
                "smtp_tls": "none",
                "notify_later_seconds": 1.0,
                # A short lease: the poll's last try comes once one has passed.
                "notify_target_timeout": 5.0,
            }
        )
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        state.pages["/news"] = article("Calm.")
        config = fast([f"{base}/news"], targets=[{"type": "email", "target": ADDRESS}])
        async with running_worker(dev_env.client, deps) as worker:
            watch = await start(dev_env, worker.task_queue, config)
            await eventually(lambda: _checks(watch, 1))
            state.pages["/news"] = article("Calm.", "Storm warning.")
            await eventually(lambda: _true(len(mailbox.tries) >= 1), "the mail's first try")
            # The poll handed the mail over: the watch checks on while it is retried.
            fetched = len(state.requests)
            await eventually(lambda: _true(len(state.requests) >= fetched + 3), "three checks more")
            assert mailbox.messages == []
            (change,) = [
                key for kind, key in await events(deps, watch.id) if kind == "watch.change"
            ]
            assert change is not None
            handed = dev_env.client.get_workflow_handle(later_workflow_id(USER, change))
            # Waited for by its run (test_deliver_later), once the poll's last try started it.
            run = await eventually(lambda: _run_of(handed), "the hand-over")
            later = dev_env.client.get_workflow_handle(
                handed.id, run_id=run, result_type=LaterOutcome
            )
            mailbox.greylist_first = 0  # its delay has passed: the next try is taken
            assert await later.result() == LaterOutcome()
            await watch.signal("stop")
            final = TaskStatus.model_validate(await watch.result())
    assert [mail["To"] for mail in mailbox.messages] == [ADDRESS]
    assert b"Storm warning." in mailbox.messages[0].get_body(("plain",)).get_content().encode()
    assert final.detail["delivery_failures"] == 0
    kinds = [kind for kind, _ in await events(deps, watch.id)]
    assert kinds == ["watch.change", "delivery.failed", "watch.stopped"]  # retrying, once
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).under(USER, change)
        (retrying,) = await EventRepository(session).list(task=watch.id, kind="delivery.failed")
    assert [(row.channel, row.status) for row in rows if row.channel == "email"] == [
        ("email", "sent")
    ]
    assert retrying.payload["retrying"] is True


async def _run_of(handle: WorkflowHandle[Any, Any]) -> str | None:
    try:
        return (await handle.describe()).run_id
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _checks(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    return (await status(handle)).checks >= n


async def _true(value: bool) -> bool:
    return value
