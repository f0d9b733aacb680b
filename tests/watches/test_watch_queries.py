"""The visibility queries that enumerate watches name their workflow type: a run of another
type in the namespace (reminders, briefings, remediations, deliver-later runs) is never taken
for a watch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.notify import NotifyActivities
from activities.poll_upkeep import closed_runs_query
from ambient import temporal
from ambient.briefing.service import BriefingService
from ambient.clients.notify.registry import build_channels
from ambient.domain.deliver_later import later_workflow_id
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.models import TaskStatus
from ambient.watches.reads import OWN_FAILURE, hide_own_failure, own_failure
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.support.servers import http_client, serve


async def _until(what: Callable[[], Awaitable[Any]], seconds: float = 30.0) -> Any:
    """Wait for ``what()`` to be truthy (a bound, not a timing claim)."""
    for _ in range(int(seconds / 0.1)):
        if got := await what():
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


def _equal(got: Callable[[], Awaitable[set[str]]], want: set[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await got() == want

    return check


async def _ids(env: WorkflowEnvironment, query: str) -> set[str]:
    return {execution.id async for execution in env.client.list_workflows(query)}


def _attrs(user: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(temporal.KIND, "web_monitor"),
            SearchAttributePair(temporal.USER, user),
        ]
    )


async def test_the_closed_runs_a_poll_process_looks_for_are_web_monitors_only(
    dev_env: WorkflowEnvironment,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    queue = unique("no-worker")  # the runs wait for a worker that never comes
    monitor = await dev_env.client.start_workflow(
        "WebMonitorWorkflow", id=unique("web-monitor/q/closed"), task_queue=queue
    )
    other = await dev_env.client.start_workflow(
        "ReminderWorkflow", id=unique("reminder/q/closed"), task_queue=queue
    )
    await other.terminate("closed, not a watch")
    await monitor.terminate("closed under its poll")
    both = {monitor.id, other.id}
    listed = " OR ".join(f"WorkflowId = '{i}'" for i in both)
    await _until(
        _equal(lambda: _ids(dev_env, f"ExecutionStatus != 'Running' AND ({listed})"), both)
    )
    found = await _ids(dev_env, closed_runs_query(since))
    assert monitor.id in found
    assert other.id not in found


async def test_the_watch_list_leaves_out_runs_of_other_types_with_watch_attributes(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    user = unique("q-user")
    queue = unique("no-worker")
    watch = await dev_env.client.start_workflow(
        "WebMonitorWorkflow",
        id=unique(f"web-monitor/{user}/w"),
        task_queue=queue,
        search_attributes=_attrs(user),
        memo={"summary": "a watch"},
    )
    impostor = await dev_env.client.start_workflow(
        "ReminderWorkflow",
        id=unique(f"reminder/{user}/x"),
        task_queue=queue,
        search_attributes=_attrs(user),
        memo={"summary": "not a watch"},
    )
    try:
        both = {watch.id, impostor.id}
        await _until(_equal(lambda: _ids(dev_env, f"AmbientUser = '{user}'"), both))
        listed = await TaskService(
            dev_env.client, settings, db, briefings=BriefingService(dev_env.client, settings, db)
        ).list(user)
        assert [t.task_id for t in listed] == [watch.id]
    finally:
        for handle in (watch, impostor):
            await handle.terminate("test over")


async def test_a_users_waiting_deliveries_are_found_by_their_attributes_never_listed_as_tasks(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    # A webhook over its rate limit asks for two minutes: the notify activity's last try hands
    # the delivery to a deliver-later run, which carries the user's AmbientUser and AmbientKind
    # "deliver_later" so an operator finds the user's waiting deliveries in the Web UI; no
    # list of tasks, whatever its filters, takes that run for a task.
    user = unique("q-user")
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name=user))
        await session.commit()

    async def busy(request: Request) -> Response:
        return Response("slow down", status_code=429, headers={"Retry-After": "120"})

    loopback = settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    queue = unique("no-worker")  # the runs wait for a worker that never comes
    watch = await dev_env.client.start_workflow(
        "WebMonitorWorkflow",
        id=unique(f"web-monitor/{user}/w"),
        task_queue=queue,
        search_attributes=_attrs(user),
        memo={"summary": "a watch"},
    )
    key = unique("change")
    later = dev_env.client.get_workflow_handle(later_workflow_id(user, key))
    try:
        async with serve(Starlette(routes=[Route("/hook", busy, methods=["POST"])])) as base:
            async with http_client() as http:
                notify = NotifyActivities(db, build_channels(loopback, db, http))
                result = await ActivityEnvironment(client=dev_env.client).run(
                    notify.notify,
                    NotifyRequest(
                        user=user,
                        message=Message(title="Disk 91%", body="node-3"),
                        targets=[Target(type="webhook", target=f"{base}/hook")],
                        idempotency_key=key,
                        attempts=1,
                    ),
                )
        assert [d.status for d in result.deliveries] == [DeliveryStatus.DEFERRED]
        waiting = f"AmbientKind = 'deliver_later' AND AmbientUser = '{user}'"
        await _until(_equal(lambda: _ids(dev_env, waiting), {later.id}))
        await _until(_equal(lambda: _ids(dev_env, f"AmbientUser = '{user}'"), {watch.id, later.id}))
        tasks = TaskService(
            dev_env.client, settings, db, briefings=BriefingService(dev_env.client, settings, db)
        )
        kinds = [None, *(kind.value for kind in TaskKind)]
        for kind in kinds:
            for state in (None, "active", "paused", "stopped"):
                listed = [t.task_id for t in await tasks.list(user, kind=kind, state=state)]
                assert later.id not in listed, (kind, state)
        assert [t.task_id for t in await tasks.list(user)] == [watch.id]
        # Ended, it is still no stopped task.
        await later.terminate("test over")
        closed = f"{waiting} AND ExecutionStatus != 'Running'"
        await _until(_equal(lambda: _ids(dev_env, closed), {later.id}))
        for kind in kinds:
            listed = [t.task_id for t in await tasks.list(user, kind=kind, state="stopped")]
            assert later.id not in listed, kind
    finally:
        await watch.terminate("test over")
        with contextlib.suppress(RPCError):
            await later.terminate("test over")


def test_the_products_own_failure_is_an_administrators_text_not_a_members() -> None:
    """After a database outage a member read their watch's status as "event
    watch.poll_failed: ConnectionRefusedError: [Errno 111] Connect call failed ('10.0.0.7',
    5432)": where the parts run, and the driver's words."""
    said = "ConnectionRefusedError: [Errno 111] Connect call failed ('10.0.0.7', 5432)"
    failure = {"what": "event watch.poll_failed", "error": said, "at": "2026-12-07T01:00:00Z"}
    status = TaskStatus(
        task_id="web-monitor/alice/x",
        kind=TaskKind.WEB_MONITOR,
        user="alice",
        state=TaskState.ACTIVE,
        checks=3,
        config={},
        detail={"last_failure": failure, "last_error": f"event watch.poll_failed: {said}"},
    )
    assert own_failure(status)
    hide_own_failure(status)
    assert "10.0.0.7" not in str(status.detail) and "Errno" not in str(status.detail)
    assert status.detail["last_failure"]["what"] == "event watch.poll_failed"
    assert status.detail["last_error"] == f"event watch.poll_failed: {OWN_FAILURE}"
    # A page's or a target's own failure is the member's to read, as it was.
    page = {"what": "webhook", "error": "HTTP 404 from the receiver", "at": failure["at"]}
    assert not own_failure(status.model_copy(update={"detail": {"last_failure": page}}))
