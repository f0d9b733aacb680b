"""The ambient-ops worker: every workflow and activity on one task queue (`ambient worker`)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, suppress
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from activities.registry import build_activities
from ambient import temporal
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.startup import freeze_once
from ambient.storage import Database
from ambient.storage.migrate import require_current
from ambient.storage.retention import pruning
from workflows.message_arguments import MessageArguments
from workflows.registry import ALL_WORKFLOWS

log = logging.getLogger("ambient.worker")

# glibc keeps what the worker freed (a check's body, parsed page and protobufs, freed among
# the polls' long-lived objects) unless asked to give it back: ≈ 8 KB a watch of RSS at 400
# running watches (docs/benchmarks.md, "Worker memory"). Asked every minute, in a thread.
TRIM_EVERY = 60.0
# A new run's first workflow task comes only to the polls of the shared (non-sticky) queue; the
# SDK's default (5 polls, 0.2 of them shared) keeps one, so an alert storm's hundred first tasks
# came one poll's round trip after another. Ten polls, half of them shared: five at a time.
WORKFLOW_TASK_POLLS = 10
SHARED_POLL_RATIO = 0.5
# A stop waits this long for the worker's shutdown (activities have its graceful timeout, 10 s,
# then are cancelled): past it, a run whose eviction the SDK cannot finish (docs/deploy.md,
# "Logs") would hold the process for good, SIGTERM and Ctrl-C unheard. It exits, saying so.
STOP_LIMIT = 60.0


def build_worker(
    client: Client,
    deps: WorkerDeps,
    *,
    task_queue: str | None = None,
    extra_workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
) -> Worker:
    """One worker with the whole registry (plus test-only extras)."""
    return Worker(
        client,
        task_queue=task_queue or deps.settings.temporal_task_queue,
        workflows=[*ALL_WORKFLOWS, *extra_workflows],
        activities=[*build_activities(deps), *extra_activities],
        workflow_runner=temporal.workflow_runner(),
        # A signal or update sent by hand with arguments its handler cannot take: dropped or
        # refused, never a workflow task failed for good.
        interceptors=[MessageArguments()],
        # Web monitors' polls are long-running and mostly asleep: their own allowance.
        max_concurrent_activities=(
            deps.settings.max_concurrent_activities + deps.settings.max_watch_polls
        ),
        max_cached_workflows=deps.settings.max_cached_workflows,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=WORKFLOW_TASK_POLLS),
        nonsticky_to_sticky_poll_ratio=SHARED_POLL_RATIO,
        # A poll heartbeats every third of its heartbeat timeout (and on each event); the
        # server hears of it every 0.8 x that timeout (one window: 48 minutes at a 1-minute
        # interval; poll leases notice a dead worker first): thousands of polls stay cheap.
        max_heartbeat_throttle_interval=timedelta(hours=1),
        graceful_shutdown_timeout=timedelta(seconds=10),
        build_id=temporal.BUILD_ID,
    )


async def ensure_triage_schedule(client: Client, settings: Settings, db: Database) -> None:
    """The nightly alert triage Schedule as configured: made or updated when a triage user is
    set; without one, the schedule an earlier start made is deleted (one made by hand stays)."""
    from ambient.remediation.service import RemediationService
    from ambient.remediation.triage_schedule import TRIAGE_SCHEDULE
    from ambient.remediation.views import RemediationError, RemediationRefusedError

    service = RemediationService(client, settings, db)
    if not settings.remediation_triage_user:
        try:
            removed = await service.unschedule_triage()
        except RPCError as exc:
            log.warning("nightly alert triage not removed: %s", exc)
            return
        if removed:
            log.info(
                "nightly alert triage removed: AMBIENT_REMEDIATION_TRIAGE_USER is not set "
                "(schedule %s deleted)",
                TRIAGE_SCHEDULE,
            )
        return
    try:
        log.info("nightly alert triage: %s", (await service.schedule_triage()).said())
    except RemediationRefusedError as exc:
        # The user named may not remediate: the schedule an earlier start made from the settings
        # (as another user, or as this one before the permission went) would run on as it was.
        try:
            removed = await service.unschedule_triage()
        except RPCError as gone:
            log.warning("nightly alert triage not scheduled: %s; not removed: %s", exc, gone)
            return
        kept = f"; the schedule {TRIAGE_SCHEDULE} an earlier start made was deleted"
        log.warning("nightly alert triage not scheduled: %s%s", exc, kept if removed else "")
    except (RemediationError, RPCError) as exc:
        log.warning("nightly alert triage not scheduled: %s", exc)


class MetricsPortTakenError(RuntimeError):
    """The worker's metrics port is another process's (a second worker on this host)."""


class NamespaceMissingError(RuntimeError):
    """The Temporal server has no namespace of the configured name: the SDK's worker refused to
    start with a 200-line traceback (a mistyped AMBIENT_TEMPORAL_NAMESPACE)."""


async def require_namespace(client: Client, settings: Settings) -> None:
    """Refuse to start on a namespace the server does not have, saying what to do."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    from ambient import no_answer
    from ambient.status import namespace_hint

    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.temporal_namespace)
        )
    except RPCError as exc:
        if no_answer.namespace_missing(exc):
            raise NamespaceMissingError(namespace_hint(settings)) from None
        raise


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A runtime exporting Prometheus metrics, if a metrics port is set."""
    if not settings.metrics_port:
        return None
    address = f"{settings.api_host}:{settings.metrics_port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as exc:  # the SDK's "Failed starting Prometheus exporter: ..."
        raise MetricsPortTakenError(
            f"the worker cannot export its metrics on {address} ({exc}): give each worker on "
            "this host its own AMBIENT_METRICS_PORT, or 0 for none"
        ) from None


async def run_worker(settings: Settings) -> None:
    """Run the worker until SIGINT/SIGTERM arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    await require_current(settings.resolved_database_url)  # `ambient migrate` is a deploy step
    deadline: threading.Timer | None = None  # set once a stop is asked
    try:
        async with AsyncExitStack() as stack:
            client = await temporal.connect(settings, runtime=metrics_runtime(settings))
            await require_namespace(client, settings)
            db = await stack.enter_async_context(Database(settings.resolved_database_url))
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=30, trust_env=False))
            deps = WorkerDeps(
                settings=settings, db=db, channels=build_channels(settings, db, http), http=http
            )
            stack.push_async_callback(deps.channels.aclose)  # before the database closes
            stack.push_async_callback(deps.pages.aclose)
            worker = build_worker(client, deps)
            log.info(
                "worker polling %s on %s (namespace %s)",
                settings.temporal_task_queue,
                settings.temporal_address,
                settings.temporal_namespace,
            )
            upkeep: list[asyncio.Task[None]] = []
            try:
                async with worker:
                    upkeep += [asyncio.create_task(job(client)) for job in deps.upkeep]
                    upkeep.append(asyncio.create_task(release_free_memory()))
                    if settings.retention_days:
                        upkeep.append(asyncio.create_task(pruning(db, settings.retention_days)))
                    await ensure_triage_schedule(client, settings, db)
                    await stop.wait()
                    log.info("worker stopping")
                    deadline = exit_after(STOP_LIMIT)
            finally:
                # After the polls handed back: a clean stop drops this process's leases.
                for task in upkeep:
                    task.cancel()
                await asyncio.gather(*upkeep, return_exceptions=True)
    finally:
        if deadline is not None:
            deadline.cancel()


def exit_after(seconds: float) -> threading.Timer:
    """A timer that ends the process (status 1) unless cancelled within ``seconds``: on a
    thread of its own, as what waits may be the event loop itself."""

    def give_up() -> None:
        # What held it is not known here: a run the SDK could not evict (its "Failed running
        # eviction job" logged above), or an activity waiting on a database or API that
        # stopped answering. Naming the first alone sent an operator looking for a line that
        # was not there.
        log.error(
            "the worker did not stop within %.0f s (a workflow run the SDK could not evict, "
            "logged above as 'Failed running eviction job', or an activity waiting on a "
            "database or service that stopped answering); exiting",
            seconds,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer


async def release_free_memory(every: float = TRIM_EVERY) -> None:
    """Give the memory the C allocator holds free back to the system every ``every`` s."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return  # not glibc (musl, macOS): nothing to ask
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(trim, 0)


def main() -> None:
    from ambient.log_redaction import setup_logging

    # As `ambient worker` starts (ambient.cli.loading): the modules imported by now are frozen,
    # so the collector does not scan them again while the worker runs. In the storm bench's
    # process, unfrozen, each full collection took ~140 ms of the event loop's CPU, two in a
    # 100-alert storm (docs/benchmarks.md, "Alert storm, seventh round").
    freeze_once()
    setup_logging()  # as `ambient worker` logs: redacted, to stderr
    asyncio.run(run_worker(Settings()))


if __name__ == "__main__":
    main()
