"""What remediation tests share: a metric the verification reads, users, a running worker."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mcp import Client as McpClient
from sqlalchemy import event as sql_events
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.remediation.alerts import Alert
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import FINAL_STATES, ApprovalInput, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import ActionLedger, record_asked
from ambient.settings import Settings
from ambient.storage.audit import AuditRepository
from ambient.storage.models import AuditRecord, RemediationRecord
from ambient.storage.users import UserRepository, hash_token
from ambient.wiring import AppState
from tests.conftest import running_worker
from tests.support.mcp_as import mcp_as
from tests.support.servers import serve
from tests.support.waits import ask, eventually
from workflows.remediation import GradedRemediationWorkflow

# The MCP tools' default caller.
USER = "ops"


def mcp(state: AppState, user: str = USER, read_only: bool = False) -> McpClient:
    return mcp_as(state, user, read_only=read_only)


async def call(client: McpClient, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_of(client: McpClient, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error
    return " ".join(getattr(c, "text", "") for c in result.content)


def app_state(env: WorkflowEnvironment, deps: WorkerDeps, task_queue: str) -> AppState:
    settings = deps.settings.model_copy(update={"temporal_task_queue": task_queue})
    return AppState(settings=settings, db=deps.db, temporal=env.client, channels=deps.channels)


UNHEALTHY = 0.5
HEALTHY = 0.01


def run_row(rid: str, user: str, run: str = "run", **fields: Any) -> RemediationRecord:
    """A remediation run's row as its workflow records it: a dry run on cls-1, unless told."""
    defaults: dict[str, Any] = {
        "cluster_id": "cls-1",
        "service": "checkout",
        "alert_type": "error_rate",
        "source": "test",
        "mode": "dry_run",
        "state": "applying",
    }
    return RemediationRecord(
        run_key=f"{rid}@{run}", remediation_id=rid, user=user, **{**defaults, **fields}
    )


@dataclass
class ErrorRate:
    """An error-rate endpoint: unhealthy until ``healthy_from`` reads have happened.

    The first ``unavailable`` reads are answered 503 (and count as reads).
    """

    healthy_from: int | None = None
    unavailable: int = 0
    unhealthy: float = UNHEALTHY
    reads: int = 0
    log: list[float] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/metrics", self.metrics)])

    async def metrics(self, request: Request) -> Response:
        self.reads += 1
        if self.reads <= self.unavailable:
            return JSONResponse({"error": "upstream busy"}, status_code=503)
        value = (
            HEALTHY
            if self.healthy_from is not None and self.reads >= self.healthy_from
            else self.unhealthy
        )
        self.log.append(value)
        return JSONResponse({"error_rate": value})


@asynccontextmanager
async def error_rate(
    healthy_from: int | None, unavailable: int = 0, unhealthy: float = UNHEALTHY
) -> AsyncIterator[tuple[ErrorRate, str]]:
    site = ErrorRate(healthy_from=healthy_from, unavailable=unavailable, unhealthy=unhealthy)
    async with serve(site.app()) as base:
        yield site, f"{base}/metrics"


@asynccontextmanager
async def remediations_with_worker(
    env: WorkflowEnvironment, deps: WorkerDeps, healthy_from: int | None = None
) -> AsyncIterator[tuple[str, Settings, RemediationService]]:
    """An error rate healthy from ``healthy_from`` (never by default) and a worker on ``env``:
    the metric's URL, settings naming the worker's queue, and the service over them."""
    async with (
        error_rate(healthy_from=healthy_from) as (_, url),
        running_worker(env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        yield url, settings, RemediationService(env.client, settings, deps.db)


@asynccontextmanager
async def remediations_on_dev(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, healthy_from: int | None = None
) -> AsyncIterator[tuple[str, Settings, RemediationService]]:
    """An error rate healthy from ``healthy_from`` (never by default) and a worker on the dev
    server: the metric's URL, settings reaching the worker, and the service over them."""
    async with (
        error_rate(healthy_from=healthy_from) as (_, url),
        running_worker(dev_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
            }
        )
        yield url, settings, RemediationService(dev_env.client, settings, deps.db)


def alert(url: str, **overrides: Any) -> Alert:
    """An error-rate alert on checkout in prod; ``overrides`` change any field."""
    fields: dict[str, Any] = {
        "source": "manual",
        "cluster_id": "cls-test0001",
        "namespace": "prod",
        "workload": "checkout",
        "metric": "error_rate",
        "value": 0.5,
        "threshold": 0.05,
        "message": "5xx errors on checkout",
        "verify": {
            "source": {"type": "http_json", "url": url, "json_path": "$.error_rate"},
            "healthy": [{"op": "below", "value": 0.05}],
        },
        "labels": {"tier": "critical"},
    }
    fields.update(overrides)
    return Alert.model_validate(fields)


async def add_user(
    deps: WorkerDeps,
    name: str,
    permission: str = "dry_run",
    role: str = "member",
    language: Language | None = None,
) -> None:
    async with deps.db.session() as session:
        users = UserRepository(session)
        user, _ = await users.create(UserCreate(name=name, language=language))
        user.rollback_permission = permission
        user.role = role
        await session.commit()


async def new_token(deps: WorkerDeps, name: str) -> str:
    """A fresh sign-in token for the user name."""
    async with deps.db.session() as session:
        user = await UserRepository(session).get(name)
        assert user is not None
        token = await UserRepository(session).rotate_token(user)
        await session.commit()
    return token


def remediation_settings(deps: WorkerDeps, **overrides: Any) -> None:
    """Loopback metric reads allowed, no cluster cooldown unless asked, plus ``overrides``."""
    base: dict[str, Any] = {
        "fetch_allow_cidrs": ["127.0.0.1/32"],
        "remediation_cluster_cooldown_seconds": 0,
        "remediation_rate_limit_per_hour": 0,
    }
    deps.settings = deps.settings.model_copy(update=base | overrides)


def closed_today_and_tomorrow(deps: WorkerDeps) -> list[dict[str, Any]]:
    """Change windows on every weekday but today's and tomorrow's (the team's zone): a run that
    starts a moment past midnight is still outside them (closed today alone, a test begun at
    23:59:59 met tomorrow's window open)."""
    today = datetime.now(ZoneInfo(deps.settings.remediation_timezone)).isoweekday()
    closed = {today, today % 7 + 1}
    return [{"days": [day for day in range(1, 8) if day not in closed]}]


async def as_door(
    deps: WorkerDeps,
    handle: WorkflowHandle[Any, Any],
    answer: ApprovalInput,
    rung: Rung | None = None,
) -> ApprovalInput:
    """``answer`` recorded as a door records a checked user's answer before it sends it, and
    carrying that record's token (the run applies no other): on ``rung``, else on the one the
    run waits for (a query)."""
    if rung is None:
        status = await ask(handle, "status", result_type=RemediationStatus)
        assert status.waiting is not None, status.state
        rung = status.waiting.rung
    run_key = f"{handle.id}@{(await handle.describe()).run_id}"
    said = {"rung": int(rung), "approve": answer.approve, "reason": answer.reason}
    async with deps.db.writing() as session:
        token = await record_asked(session, run_key, answer.approver, said)
    return answer.model_copy(update={"token": token})


async def tokens_sent(client: Client, rid: str) -> list[str]:
    """The one-time tokens the abort signals and approve updates of ``rid``'s latest run
    carried, as its history holds them (the Web UI shows them)."""
    sent: list[str] = []
    async for event in client.get_workflow_handle(rid).fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            payloads = event.workflow_execution_signaled_event_attributes.input.payloads
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            accepted = event.workflow_execution_update_accepted_event_attributes.accepted_request
            payloads = accepted.input.args.payloads
        else:
            continue
        messages = await client.data_converter.decode(payloads)
        sent += [m["token"] for m in messages if isinstance(m, dict) and m.get("token")]
    return sent


async def audit_quoting(deps: WorkerDeps, text: str) -> list[str]:
    """The actions of the audit rows (any subject) whose actor, subject or detail holds ``text``."""
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(limit=100_000)
    return [r.action for r in rows if text in json.dumps([r.actor, r.subject, r.detail])]


async def only_its_hash_kept(
    deps: WorkerDeps, rows: list[AuditRecord], asked: str, token: str
) -> None:
    """A door's one-time token is in no audit row; its record of ``asked`` holds its hash."""
    assert await audit_quoting(deps, token) == [], asked
    (recorded,) = [r for r in rows if r.action == asked]
    assert recorded.detail["token_sha256"] == hash_token(token), asked


async def state_reaches(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[Any, Any],
    states: tuple[str, ...],
    step: timedelta = timedelta(seconds=20),
) -> RemediationStatus:
    """Skip time a little at a time until the remediation is in one of ``states``. A dev
    server's clock is the wall's (a "skip" there is a real sleep of ``step``): there the run
    is asked until it is (``eventually``), not every 20 s or in a busy loop."""
    if not env.supports_time_skipping:

        async def there() -> RemediationStatus | None:
            status = await ask(handle, "status", result_type=RemediationStatus)
            return status if status.state in states else None

        return await eventually(there, f"the remediation in one of {states}")
    status: RemediationStatus | None = None
    for _ in range(2000):
        status = await ask(handle, "status", result_type=RemediationStatus)
        if status.state in states:
            return status
        await env.sleep(step)
    raise AssertionError(f"state {status.state if status else None}, wanted {states}")


@dataclass
class RunKeys:
    """One remediation's runs, read through the service: the run key waiting for approval,
    and whether the run with a given key has ended."""

    remediations: RemediationService
    user: str
    rid: str

    async def waiting(self) -> str | None:
        view = await self.remediations.get(self.user, self.rid)
        return view.run_key if view.state == "waiting_approval" else None

    async def ended(self, first: str) -> bool:
        view = await self.remediations.get(self.user, self.rid)
        return view.run_key != first or view.state in FINAL_STATES


async def two_runs(
    remediations: RemediationService, user: str, sent: Alert
) -> tuple[str, str, str]:
    """The same alert remediated twice (approval asked from rung 1): its first run aborted as
    it waits for approval, its second waiting. The remediation's id and the two run keys."""
    rid = (await remediations.start(user, sent, mode="dry_run")).remediation_id
    runs = RunKeys(remediations, user, rid)
    first = await eventually(runs.waiting, "the first run waits for approval")
    await remediations.abort(user, rid, "not now", via="api")
    await eventually(lambda: runs.ended(first), "the first run ends")
    await remediations.start(user, sent, mode="dry_run")
    second = await eventually(runs.waiting, "the second run waits for approval")
    assert second != first
    return rid, first, second


@asynccontextmanager
async def refusing(
    deps: WorkerDeps, verb: str, table: str, when: str = "", *, for_now: bool = False
) -> AsyncIterator[list[str]]:
    """The database refuses to ``verb`` (INSERT, UPDATE, DELETE) rows of ``table`` (``when``:
    a trigger's condition on the row) as a locked or read-only one would (``for_now``: as a
    missing table, an OperationalError, not an IntegrityError), until the block ends: the
    statements it refused."""
    refused: list[str] = []
    name = f"refused_{next(TRIGGERS)}"
    why = f"SELECT * FROM {FOR_NOW}" if for_now else f"SELECT RAISE(ABORT, '{REFUSED}')"

    def seen(context: Any) -> None:
        if (FOR_NOW if for_now else REFUSED) in str(context.original_exception):
            refused.append(context.statement)

    async def database(statement: str) -> None:
        # In a thread: the worker's write turns run in this event loop.
        path = deps.settings.data_dir / "ambient.db"
        with closing(sqlite3.connect(path, check_same_thread=False, isolation_level=None)) as db:
            await asyncio.to_thread(db.execute, statement)

    await database(f"CREATE TRIGGER {name} BEFORE {verb} ON {table} {when} BEGIN {why}; END")
    sql_events.listen(deps.db.engine.sync_engine, "handle_error", seen)
    try:
        yield refused
    finally:
        sql_events.remove(deps.db.engine.sync_engine, "handle_error", seen)
        await database(f"DROP TRIGGER {name}")


REFUSED = "the database refuses writes"
FOR_NOW = "refused_for_now"  # a table never made: the trigger's statement fails
TRIGGERS = itertools.count()


async def some(items: list[str]) -> bool:
    """Whether ``items`` holds any (for ``eventually``)."""
    return bool(items)


CANCEL_REQUESTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


async def taken_after(
    handle: WorkflowHandle[Any, Any], event: EventType.ValueType, what: str
) -> None:
    """Until a workflow task completed after ``event``: the run has taken it."""

    async def taken() -> bool:
        seen = False
        async for each in handle.fetch_history_events():
            seen = seen or each.event_type == event
            if seen and each.event_type == TASK_COMPLETED:
                return True
        return False

    await eventually(taken, what)


async def run_ended(
    deps: WorkerDeps, handle: WorkflowHandle[Any, RemediationStatus]
) -> tuple[RemediationStatus, list[Any], Any]:
    """The run's status, audit and its first step's slot."""
    status = await handle.query(GradedRemediationWorkflow.status)
    async with deps.db.session() as session:
        audit = await AuditRepository(session).list(subject=status.run_key, limit=1000)
        slot = await ActionLedger(session).reserved(f"{status.run_key}#1")
    return status, list(audit), slot


async def signal_taken(handle: Any) -> None:
    """Until a workflow task completed after the run's first signal: the run has it (its
    checkpoint, a local activity, still running: the task is handed back while it runs)."""
    for _ in range(600):  # a bound, not a timing claim
        events = [event async for event in handle.fetch_history_events()]
        signaled = [
            at
            for at, event in enumerate(events)
            if event.HasField("workflow_execution_signaled_event_attributes")
        ]
        if signaled and any(
            event.HasField("workflow_task_completed_event_attributes")
            for event in events[signaled[0] :]
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the run never took the signal")


@dataclass
class HeldAnswer:
    """The first PATCH stored as the API server stores it, its answer held until ``release``:
    a write made whose answer comes too late for the try that sent it."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def wrap(self, app: Any) -> Any:
        async def held(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["method"] != "PATCH" or self.arrived.is_set():
                await app(scope, receive, send)
                return

            async def late(message: Any) -> None:
                if message["type"] == "http.response.start":
                    self.arrived.set()
                    await self.release.wait()
                await send(message)

            await app(scope, receive, late)

        return held


async def waiting_dry_run(runs: RemediationService, name: str, url: str) -> str:
    """A dry run of ``name``'s that waits for approval at rung 1 (settling at once after)."""
    rid = (
        await runs.start(name, alert(url, workload=name, settle_seconds=0), mode="dry_run")
    ).remediation_id

    async def waiting() -> bool:
        return (await runs.get(name, rid)).state == "waiting_approval"

    await eventually(waiting, "the run waits for approval")
    return rid
