"""A poll's failures are durable: none is lost with the process that saw it."""

# ruff: noqa: F811 - the fixtures `gated` and `loopback_deps` are imported and used by name

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.polling import PagePoller
from ambient.clients.notify.registry import build_channels
from ambient.clients.web import WebFetcher
from ambient.deps import WorkerDeps
from ambient.domain.notify import Target
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.polling import EndPoll, PollEnd, PollRequest, PollResult
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)

TASK = f"web-monitor/{USER}/late"


def request(base: str, hook: str, before: PollResult | None, **fields: Any) -> PollRequest:
    config = WebMonitorConfig.model_validate(
        {"urls": [f"{base}/news"], "check_interval_minutes": 1, "targets": [hook]}
    )
    fields.setdefault("first_only", before is None)
    return PollRequest(
        user=USER,
        task=TASK,
        workflow_id=TASK,
        life="life-1",
        config=config,
        targets=[config.targets[0]],
        urls=before.urls if before else {},
        seq=before.seq if before else 0,
        interval_seconds=0.2,
        window_seconds=600.0,
        **fields,
    )


async def _delivery_failed_stored(deps: WorkerDeps) -> None:
    for _ in range(300):  # a bound, not a timing claim
        async with deps.db.session() as session:
            rows = await EventRepository(session).list(task=TASK, limit=100)
        if any(row.kind == "watch.delivery_failed" for row in rows):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the failed delivery was never recorded")


async def test_a_delivery_failing_after_its_poll_handed_back_is_counted_once_by_a_poll_elsewhere(
    loopback_deps: WorkerDeps, gated: tuple[GatedSite, str]
) -> None:
    state, base = gated
    deps = loopback_deps
    notifier = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    hook = {"type": "webhook", "target": f"{base}/hook"}

    def poller() -> PagePoller:  # one per worker process
        return PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)

    here, elsewhere = poller(), poller()
    state.pages["/news"] = article("Calm.")
    # Each poll is the run's next (poll): a poll never takes the watch from a live holder of
    # its own number (docs/polling.md, invariant 2).
    baseline = await ActivityEnvironment().run(here.poll_pages, request(base, hook, None, poll=1))
    # The change's webhook is held past the poll's hand-back, then refuses for good.
    state.pages["/news"] = article("Calm.", "Storm warning.")
    state.hook_gate.clear()
    state.hook_status = 400
    running = asyncio.create_task(
        ActivityEnvironment().run(here.poll_pages, request(base, hook, baseline, poll=2))
    )
    await asyncio.wait_for(state.hook_waiting.wait(), 30)
    await here.end_poll(EndPoll(workflow_id=TASK, life="life-1"))
    handed = await running
    assert handed.ended is PollEnd.CONTROL and handed.delivery_failures == 0
    state.hook_gate.set()
    await _delivery_failed_stored(deps)

    # The watch's next poll runs in another worker process: it counts the failure.
    state.hook_status = 200
    later = await ActivityEnvironment().run(
        elsewhere.poll_pages, request(base, hook, handed, first_only=True, poll=3)
    )
    assert later.delivery_failures == 1
    assert later.last_failure is not None
    assert later.last_failure.what == "delivery of watch.change"
    assert "HTTP 400" in later.last_failure.error
    # Counted once: the poll after it, told what the workflow has seen, counts nothing again.
    again = await ActivityEnvironment().run(
        here.poll_pages,
        request(base, hook, later, first_only=True, late_failures_seen=later.late_failures, poll=4),
    )
    assert again.delivery_failures == 0


async def test_a_delivery_its_process_ended_in_flight_is_sent_by_the_next_poll_once_its_lease_ends(
    loopback_deps: WorkerDeps, gated: tuple[GatedSite, str]
) -> None:
    """The change's webhook send was in flight when the poll handed back and its process
    died in it: the delivery row says "in flight" until its lease ends (the target timeout
    plus 5 s). The next poll's tries wait it out and send it, rather than give up after
    four tries inside the lease and count a failure."""
    state, base = gated
    deps = loopback_deps
    settings = deps.settings.model_copy(
        update={"notify_target_timeout": 5.0, "notify_retry_seconds": 0.25}
    )
    notifier = NotifyActivities(deps.db, build_channels(settings, deps.db, deps.http))
    # Longer than four tries' waits (0.25 + 0.5 + 1 s) and the hand-back between the two sends.
    assert notifier.lease.total_seconds() >= 10
    hook = {"type": "webhook", "target": f"{base}/hook"}
    here = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)
    elsewhere = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)
    state.pages["/news"] = article("Calm.")
    baseline = await ActivityEnvironment().run(here.poll_pages, request(base, hook, None, poll=1))
    state.pages["/news"] = article("Calm.", "Storm warning.")
    state.hook_gate.clear()  # the send waits at the webhook
    running = asyncio.create_task(
        ActivityEnvironment().run(here.poll_pages, request(base, hook, baseline, poll=2))
    )
    await asyncio.wait_for(state.hook_waiting.wait(), 30)
    await here.end_poll(EndPoll(workflow_id=TASK, life="life-1"))
    handed = await running
    assert handed.undelivered == [handed.events[0].seq]
    for task in asyncio.all_tasks():  # its process dies in the send
        if task.get_coro().__qualname__ == "PollReports.deliver":  # type: ignore[union-attr]
            task.cancel()
    state.hook_gate.set()
    later = await ActivityEnvironment().run(
        elsewhere.poll_pages,
        request(base, hook, handed, first_only=True, poll=3, redeliver=handed.undelivered),
    )
    assert later.delivery_failures == 0  # none counted (the send may outlast its hand-back)
    for _ in range(600):  # a bound, not a timing claim
        if len(state.hooks) >= 2:
            break
        await asyncio.sleep(0.1)
    async with deps.db.session() as session:
        told = await EventRepository(session).list(task=TASK, kind="watch.delivery_failed")
    assert told == []
    sent = [json.loads(body) for body in state.hooks]
    # The send that died (the webhook may have taken it: the same key, to drop), then the
    # next poll's, once the lease ended.
    assert len(sent) == 2 and len({body["idempotency_key"] for body in sent}) == 1


async def test_an_inbox_target_naming_its_user_gets_a_change_once_when_it_is_sent_again(
    loopback_deps: WorkerDeps, gated: tuple[GatedSite, str]
) -> None:
    """A watch told "inbox: alice" (the user's own name) and a webhook. Its poll wrote the
    change's inbox copy with the event; when the change was sent again (the webhook had not
    answered by the hand-back, or a resumed poll), the inbox got it a second time: the copy's
    delivery row names the inbox as "", the target said "alice"."""
    state, base = gated
    deps = loopback_deps
    notifier = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    hook = {"type": "webhook", "target": f"{base}/hook"}
    here = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)
    elsewhere = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)

    def asked(before: PollResult | None, **fields: Any) -> PollRequest:
        config = WebMonitorConfig.model_validate(
            {
                "urls": [f"{base}/news"],
                "check_interval_minutes": 1,
                "targets": [{"type": "inbox", "target": USER}, hook],
            }
        )
        return request(base, hook, before, **fields).model_copy(
            update={"config": config, "targets": config.targets}
        )

    state.pages["/news"] = article("Calm.")
    baseline = await ActivityEnvironment().run(here.poll_pages, asked(None, poll=1))
    state.pages["/news"] = article("Calm.", "Storm warning.")
    state.hook_gate.clear()
    running = asyncio.create_task(
        ActivityEnvironment().run(here.poll_pages, asked(baseline, poll=2))
    )
    await asyncio.wait_for(state.hook_waiting.wait(), 30)
    await here.end_poll(EndPoll(workflow_id=TASK, life="life-1"))
    handed = await running
    assert handed.undelivered == [handed.events[0].seq]
    state.hook_gate.set()
    later = await ActivityEnvironment().run(
        elsewhere.poll_pages,
        asked(handed, first_only=True, poll=3, redeliver=handed.undelivered),
    )
    assert later.delivery_failures == 0
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER, limit=10)
    assert [m.title for m in inbox] == [f"Changed: {base}/news"]


async def test_a_control_written_before_its_poll_started_in_another_process_ends_it_at_start(
    loopback_deps: WorkerDeps, gated: tuple[GatedSite, str]
) -> None:
    """The workflow asked poll 2 to hand back while the server was still handing it to a
    process whose end-request reader was not running yet: the poll ends at its start
    instead of running its whole window (a Temporal cancel reaches it only at a heartbeat)."""
    state, base = gated
    deps = loopback_deps
    notifier = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    hook = {"type": "webhook", "target": f"{base}/hook"}
    here = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)
    elsewhere = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)
    state.pages["/news"] = article("Calm.")
    env = ActivityEnvironment()
    baseline = await env.run(here.poll_pages, request(base, hook, None, poll=1))
    # The workflow's worker runs no poll of this watch: it writes the request.
    run_id = env.info.workflow_run_id
    ask = EndPoll(workflow_id=TASK, life="life-1", run_id=run_id, poll=2)
    assert not await here.end_poll(ask)
    ended = await asyncio.wait_for(
        env.run(elsewhere.poll_pages, request(base, hook, baseline, poll=2)), 30
    )
    assert ended.ended is PollEnd.CONTROL and ended.checks == 0


async def test_a_change_whose_delivery_still_fails_at_its_last_try_names_every_failed_target(
    loopback_deps: WorkerDeps, gated: tuple[GatedSite, str]
) -> None:
    state, base = gated
    deps = loopback_deps
    # A short send timeout: the poll's last try comes once a delivery lease (it + 5 s) passed;
    # tries 0.25, 0.5, 1, 2 s apart. Not 1 s: a loaded host's 500 came later, its last error
    # then "no answer within 1s".
    settings = deps.settings.model_copy(
        update={"notify_target_timeout": 3.0, "notify_retry_seconds": 0.25}
    )
    notifier = NotifyActivities(deps.db, build_channels(settings, deps.db, deps.http))
    poller = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)
    hook = {"type": "webhook", "target": f"{base}/hook"}
    state.pages["/news"] = article("Calm.")
    baseline = await ActivityEnvironment().run(poller.poll_pages, request(base, hook, None, poll=1))
    # The webhook answers 500 to every try; another user's inbox is refused at the first.
    state.pages["/news"] = article("Calm.", "Storm warning.")
    state.hook_status = 500
    changed = request(base, hook, baseline, first_only=True, poll=2)
    changed.targets.append(Target(type="inbox", target="mallory"))
    await ActivityEnvironment().run(poller.poll_pages, changed)
    await _delivery_failed_stored(deps)
    async with deps.db.session() as session:
        (told,) = await EventRepository(session).list(task=TASK, kind="watch.delivery_failed")
    errors = sorted(told.payload["errors"])
    assert len(errors) == 2, errors
    assert errors[0].startswith("inbox: permanent: ") and "mallory" in errors[0]
    assert errors[1] == "webhook: transient: HTTP 500"
