"""An alert storm: many alerts at once through the intake, the gates and the audit log."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from starlette.requests import Request
from temporalio.testing import WorkflowEnvironment

from activities.remediation import RemediationActivities
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.remediation.alerts import Alert, remediation_id
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.ladder import (
    Mode,
    RemediationExecutor,
    RolloutHealth,
    Rung,
    StepRequest,
    WorkloadRef,
    step_key,
)
from ambient.remediation.runs import GateInput, Keyed, OpenInput, VerifyInput
from ambient.remediation.safety import rate_limit_gate
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import (
    ActionLedger,
    BreakerRepository,
    RemediationRepository,
    append_entry,
    read_audit_keys,
)
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.db import SQLITE_TURN
from ambient.storage.models import AuditRecord, RemediationAction, RemediationBreaker
from ambient.storage.users import UserRepository
from api.deps import get_optional_user
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.remediation.support import (
    add_user,
    alert,
    remediation_settings,
    remediations_with_worker,
)
from tests.remediation.test_kube_executor import Cluster, kube  # noqa: F401  (fixture)
from tests.support.api_worker import signed_in_api
from tests.support.waits import eventually


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The migrated SQLite file, and a real PostgreSQL (several workers share one)."""
    database: Database = request.getfixturevalue("db" if request.param == "sqlite" else "pg")
    return database


async def test_gate_checks_of_a_storm_on_one_cluster_reserve_no_more_than_the_hourly_limit(
    deps: WorkerDeps, any_db: Database
) -> None:
    remediation_settings(deps, remediation_rate_limit_per_hour=3)
    gates = RemediationActivities(any_db, deps.settings, None, {})
    cluster = f"cls-{uuid.uuid4().hex[:8]}"  # the PostgreSQL server is shared by the module
    now = datetime.now(UTC)

    async def check(index: int) -> bool:
        run_key = f"remediation/{cluster}{index:02d}@run"
        decision = await gates.check_remediation_gates(
            GateInput(
                run_key=run_key,
                key=f"{run_key}/rung-1/gate/1",
                cluster_id=cluster,
                service=f"{cluster}/prod/web-{index}",
                rung=Rung.RESTART,
                now=now,
            )
        )
        assert decision.allowed or decision.gate == "rate_limit", decision
        return decision.allowed

    allowed = await asyncio.gather(*(check(i) for i in range(20)))

    assert sum(allowed) == 3
    async with any_db.session() as session:
        reserved = await session.scalar(
            select(func.count())
            .select_from(RemediationAction)
            .where(RemediationAction.cluster_id == cluster)
        )
        gate_rows = await session.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(
                AuditRecord.action == "gate",
                AuditRecord.subject.startswith(f"remediation/{cluster}"),
            )
        )
    assert reserved == 3
    assert gate_rows == 20


async def test_the_api_token_lookup_holds_no_database_connection_for_the_rest_of_the_request(
    deps: WorkerDeps,
) -> None:
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=unique("storm")))
        await session.commit()
    async with deps.db.session() as session:
        request = Request({"type": "http", "headers": []})
        user = await get_optional_user(
            request, session, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        )
        # The request goes on to Temporal with this session open: it must not pin a connection.
        assert not session.in_transaction()
        assert user is not None and user.name.startswith("storm")
        assert request.state.operator is False  # a member: told what is down, not where


async def test_the_same_alerts_sent_many_times_at_once_start_one_run_each_and_record_every_repeat(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    user = unique("storm-ops")
    await add_user(deps, user, "execute")
    async with remediations_with_worker(dev_env, deps) as (url, _, service):
        # Five distinct alerts (fingerprints), each sent six times, all at once.
        alerts = [alert(url, workload=f"{user}-{i}") for i in range(5)]
        answers = await asyncio.gather(
            *(service.start(user, alerts[i % 5], "dry_run") for i in range(30))
        )
        created = [a.remediation_id for a in answers if a.created]
        repeats = [a for a in answers if a.deduplicated]
        assert sorted(created) == sorted({a.remediation_id for a in answers})
        assert len(created) == 5 and len(repeats) == 25
        async with deps.db.session() as session:
            dedup_rows = await session.scalar(
                select(func.count())
                .select_from(AuditRecord)
                .where(AuditRecord.action == "deduplicated", AuditRecord.actor == user)
            )
        assert dedup_rows == 25
        for rid in created:
            await dev_env.client.get_workflow_handle(rid).terminate("test over")


async def test_a_remediation_keeps_its_first_workflow_task_through_a_worker_busy_for_a_minute(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps)  # the loopback verify URL is allowed
    # No worker polls this queue: only the start is looked at.
    settings = deps.settings.model_copy(update={"temporal_task_queue": unique("tq-idle")})
    user = unique("storm-timeout")
    await add_user(deps, user, "dry_run")
    service = RemediationService(dev_env.client, settings, deps.db)
    started = await service.start(user, alert("http://127.0.0.1:9/metrics", workload=user))
    handle = dev_env.client.get_workflow_handle(started.remediation_id)
    description = await handle.describe()
    config = description.raw_description.execution_config
    # The default 10 s let a storm's hundred first tasks time out and redo their local
    # activities over and over.
    assert config.default_workflow_task_timeout.ToTimedelta() == timedelta(minutes=1)
    await handle.terminate("test over")


async def test_a_repeated_alert_is_answered_and_recorded_without_asking_the_busy_worker(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps)  # the loopback verify URL is allowed
    # No worker polls this queue: like a worker busy with a storm, it answers no query.
    settings = deps.settings.model_copy(update={"temporal_task_queue": unique("tq-idle")})
    user = unique("storm-repeat")
    await add_user(deps, user, "dry_run")
    service = RemediationService(dev_env.client, settings, deps.db)
    subject = alert("http://127.0.0.1:9/metrics", workload=user)
    first = await service.start(user, subject)
    # A guard against a hang (the old path waited for the worker's answer), not a time limit.
    again = await asyncio.wait_for(service.start(user, subject), timeout=60)
    assert again.deduplicated and not again.created
    assert again.remediation_id == first.remediation_id and again.state == "scoring"
    handle = dev_env.client.get_workflow_handle(first.remediation_id)
    run_id = (await handle.describe()).run_id
    async with deps.db.session() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(
                AuditRecord.action == "deduplicated",
                AuditRecord.subject == f"{first.remediation_id}@{run_id}",
            )
        )
    assert rows == 1
    await handle.terminate("test over")


async def test_repeats_through_the_api_wait_out_another_process_holding_the_sqlite_write_lock(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The flood's worker held SQLite's write lock through whole busy timeouts; a shorter one
    # here (1 s, six of them a write turn) makes a held lock outlast it without a long test,
    # with room for the repeats to reach their write on a loaded host.
    monkeypatch.setattr("ambient.storage.db.BUSY_TIMEOUT_MS", 1000)
    remediation_settings(deps)  # the loopback verify URL is allowed
    settings = deps.settings.model_copy(
        update={
            # No worker polls this queue: the repeats are answered by the API alone.
            "temporal_task_queue": unique("tq-idle"),
            "temporal_address": dev_env.client.service_client.config.target_host,
        }
    )
    name = unique("storm-locked")
    async with deps.db.session() as session:
        account, token = await UserRepository(session).create(UserCreate(name=name))
        account.rollback_permission = "dry_run"
        await session.commit()
    subject = alert("http://127.0.0.1:9/metrics", workload=name).model_dump(mode="json")
    path = make_url(settings.resolved_database_url).database
    assert path is not None
    async with signed_in_api(settings, token) as http:
        first = await http.post("/remediations", json={"alert": subject})
        assert first.status_code == 201, first.text
        rid = first.json()["remediation_id"]
        handle = dev_env.client.get_workflow_handle(rid)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's writer, holding on
        try:
            repeats = [
                asyncio.create_task(http.post("/remediations", json={"alert": subject}))
                for _ in range(5)
            ]

            async def signalled() -> int:
                history = await handle.fetch_history()
                return sum(
                    e.HasField("workflow_execution_signaled_event_attributes")
                    for e in history.events
                )

            # Each repeat signals the run, then writes its audit row: wait until all five
            # are at the write, and hold the lock for three busy timeouts from the first one's
            # arrival there (a write turn waits out six). Counted from the fifth, a loaded
            # host's repeats, seconds apart, held the first past its six.
            first_at = None
            for _ in range(1200):
                count = await signalled()
                if count and first_at is None:
                    first_at = time.monotonic()
                if count == 5:
                    break
                await asyncio.sleep(0.05)
            assert first_at is not None
            await asyncio.sleep(max(0.0, first_at + 3.0 - time.monotonic()))
        finally:
            other.rollback()
            other.close()
        answers = await asyncio.gather(*repeats)
    # Joined to the live run: 200 with it, not 201 (nothing was created).
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert all(a.json()["deduplicated"] for a in answers)
    async with deps.db.session() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.action == "deduplicated", AuditRecord.actor == name)
        )
    assert rows == 5
    await handle.terminate("test over")


async def _gaps_another_task_ran_in(db: Database, subject: str, *, bulk: bool = False) -> int:
    """Twenty audit rows in one write turn: between how many of them another task ran."""
    ticks = 0
    done = asyncio.Event()

    async def other() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(other())
    gaps = 0
    try:
        async with db.write_session(bulk=bulk) as session:
            seen = ticks
            for index in range(20):
                await append_entry(
                    session, Keyed(run_key=subject, key=f"{subject}/{index}"), "a", {}, "t"
                )
                gaps += ticks != seen
                seen = ticks
            await session.commit()
    finally:
        done.set()
        await ticking
    return gaps


async def _audit_rows(db: Database, subject: str, n: int) -> None:
    async with db.write_session() as session:
        for index in range(n):
            await append_entry(
                session, Keyed(run_key=subject, key=f"{subject}/{index}"), "a", {}, "t"
            )
        await session.commit()


async def test_a_write_turn_keeps_the_event_loop_between_its_statements(db: Database) -> None:
    # An alert storm's hundred runs queued for the write turn; each statement of a turn went
    # to aiosqlite's thread and back through the busy loop (~4 trips a statement), where every
    # other task ran in between.
    subject = unique("turn")
    assert await _gaps_another_task_ran_in(db, subject) == 0
    # A bulk turn (a batch of checks) leaves the loop to the others between statements.
    assert await _gaps_another_task_ran_in(db, f"{subject}-b", bulk=True) == 20
    async with db.session() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.subject.in_([subject, f"{subject}-b"]))
        )
    assert rows == 40


async def test_a_write_turn_that_fails_rolls_back_and_leaves_its_connection_usable(
    db: Database,
) -> None:
    subject = unique("turn-fails")
    with pytest.raises(RuntimeError, match="stop"):
        async with db.write_session() as session:
            await append_entry(session, Keyed(run_key=subject, key=f"{subject}/1"), "a", {}, "t")
            raise RuntimeError("stop")
    # Its connection went back to the pool: the next turns and reads use the pool's
    # connections again, outside a turn through aiosqlite's thread.
    await asyncio.gather(*(_audit_rows(db, f"{subject}-{i}", 3) for i in range(5)))
    async with db.session() as session:
        rows = (
            await session.scalars(
                select(AuditRecord.subject).where(AuditRecord.subject.startswith(subject))
            )
        ).all()
    assert sorted(rows) == sorted(f"{subject}-{i}" for i in range(5) for _ in range(3))


async def test_a_burst_of_sessions_keeps_its_connections_for_the_next_burst(db: Database) -> None:
    # An alert storm's runs read at once; SQLAlchemy's default pool kept 5 connections and closed
    # every overflow one on its return, so each burst opened its connections again (a thread,
    # the file, the pragmas each time).
    opened = 0

    def connected(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(db.engine.sync_engine, "connect", connected)

    async def read_while_others_do(inside: list[int], all_in: asyncio.Event) -> int:
        async with db.session() as session:
            value = await session.scalar(select(func.count()).select_from(AuditRecord))
            inside.append(1)
            if len(inside) == 15:
                all_in.set()
            await all_in.wait()  # fifteen sessions hold a connection at once
            return value or 0

    for burst in range(2):
        inside: list[int] = []
        all_in = asyncio.Event()
        await asyncio.gather(*(read_while_others_do(inside, all_in) for _ in range(15)))
        assert db.engine.pool.checkedin() == 15, burst  # type: ignore[attr-defined]
    assert opened <= 15


async def test_an_opening_reads_its_audit_records_once_and_a_retry_appends_none_again(
    db: Database,
) -> None:
    # open_remediation appends up to five records in one write turn (scored, planned,
    # permission, gate, checkpoint): each append_entry asked the audit log again, and each
    # record was flushed on its own (a unit of work each).
    subject = unique("opening")
    statements: list[str] = []
    flushes: list[int] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "audit_log" in statement:
            statements.append(statement.split()[0])

    async def turn() -> list[int]:
        async with db.write_session() as session:
            event.listen(session.sync_session, "after_flush", lambda *_: flushes.append(1))
            await read_audit_keys(session, subject)
            rows = [
                await append_entry(
                    session, Keyed(run_key=subject, key=f"{subject}/{action}"), action, {}
                )
                for action in ("scored", "planned", "permission", "gate", "checkpoint")
            ]
            await session.commit()
        return [row.id for row in rows]

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        first = await turn()
        assert statements.count("SELECT") == 1 and statements.count("INSERT") == 5
        assert len(flushes) == 1  # the commit's
        assert first == sorted(first)  # inserted in the order they were appended
        statements.clear()
        # The activity retried: the same five records are found, none is written again.
        assert await turn() == first
        assert statements == ["SELECT"]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    async with db.session() as session:
        rows = await session.scalars(
            select(AuditRecord.action)
            .where(AuditRecord.subject == subject)
            .order_by(AuditRecord.id)
        )
        assert list(rows) == ["scored", "planned", "permission", "gate", "checkpoint"]


def opening_of(cluster_id: str, mode: Mode) -> OpenInput:
    """An opening of a new run of oncall's checkout alert on ``cluster_id``."""
    subject = Alert(
        source="manual",
        cluster_id=cluster_id,
        namespace="shop",
        workload="checkout",
        metric="error_rate",
        value=0.5,
        threshold=0.05,
        message="5xx errors on checkout",
    )
    run_key = f"{remediation_id(subject)}@{unique('run')}"
    return OpenInput(
        run_key=run_key, alert=subject, user="oncall", mode=mode, now=datetime.now(UTC)
    )


async def test_an_opening_run_again_after_its_change_answers_as_its_audit_rows_did(
    deps: WorkerDeps,
    kube: Cluster,  # noqa: F811  (the fixture)
) -> None:
    # The first rung's change follows the opening in its workflow task: a task lost with its
    # worker after the change runs the opening again. A fresh read then is the restarted
    # Deployment, not the release before the incident that later rungs roll back to; a
    # permission revoked since, or rules that now ask approval first, would refuse or hold a
    # change already made. The opening answers with what its audit rows hold.
    remediation_settings(deps, remediation_executor="kubernetes")
    await add_user(deps, "oncall", permission="execute")
    executors: dict[str, RemediationExecutor] = {"kubernetes": kube.executor}
    activities = RemediationActivities(deps.db, deps.settings, None, executors)
    opening = opening_of(kube.target.cluster_id, "execute")
    run_key = opening.run_key
    first = await activities.open_remediation(opening)
    assert first.plan[0].rung is Rung.RESTART and first.checkpoint is not None
    restart = kube.step(run_key, Rung.RESTART, restarted_at="2026-11-29T18:00:00Z")
    assert (await kube.executor.apply(restart)).applied
    revision = first.checkpoint.revision
    assert revision is not None
    assert (await kube.executor.checkpoint(kube.target)).revision == revision + 1
    async with deps.db.session() as session:
        user = await UserRepository(session).get("oncall")
        assert user is not None
        user.rollback_permission = "none"
        await session.commit()
    remediation_settings(deps, remediation_executor="kubernetes", remediation_approval_from_rung=1)
    activities = RemediationActivities(deps.db, deps.settings, None, executors)
    fresh = await activities.open_remediation(opening.model_copy(update={"run_key": f"{run_key}x"}))
    assert fresh.plan[0].needs_approval and fresh.permission is not None
    assert fresh.permission.mode is None  # what a new opening would answer now

    again = await activities.open_remediation(opening)

    assert again.model_dump(exclude={"gate"}) == first.model_dump(exclude={"gate"})
    assert again.gate is not None and again.gate.allowed  # the slot it reserved
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=run_key)
    assert sorted(r.action for r in rows) == sorted(
        ["scored", "planned", "baseline", "permission", "gate", "checkpoint"]
    )


async def test_an_opening_run_again_after_a_dry_run_gave_back_its_slot_answers_its_gate_as_recorded(
    deps: WorkerDeps,
) -> None:
    # A dry run (like a change skipped: paused, already so) gives back the slot its gate
    # reserved. A task lost with its worker after that change runs the opening again: the gate
    # its change was made on must stand, not close on a cluster whose hour another run's step
    # took meanwhile (the run would wait for the limit, or hand over "cannot change now", with
    # its change made and audited after an allowed gate).
    remediation_settings(deps, remediation_rate_limit_per_hour=1)
    await add_user(deps, "oncall", permission="dry_run")
    executors: dict[str, RemediationExecutor] = {"dry_run": DryRunExecutor()}
    activities = RemediationActivities(deps.db, deps.settings, None, executors)
    opening = opening_of(f"cls-{uuid.uuid4().hex[:8]}", "dry_run")
    run_key, subject = opening.run_key, opening.alert
    first = await activities.open_remediation(opening)
    assert first.gate is not None and first.gate.allowed and first.checkpoint is not None
    key = step_key(run_key, Rung.RESTART)
    change = StepRequest(
        remediation_id=run_key,
        rung=Rung.RESTART,
        target=subject.target(),
        mode="dry_run",
        key=key,
        checkpoint=first.checkpoint,
        restarted_at=first.checkpoint.taken_at.isoformat(),
    )
    assert not (await activities.apply_remediation_step(change)).applied  # its slot given back
    other = f"{remediation_id(subject)}@{unique('run')}"
    taken = await activities.check_remediation_gates(
        GateInput(
            run_key=other,
            key=f"{step_key(other, Rung.RESTART)}/gate/1",
            cluster_id=subject.cluster_id,
            service=subject.service,
            rung=Rung.RESTART,
            now=datetime.now(UTC),
        )
    )
    assert taken.allowed  # the cluster's one slot this hour

    again = await activities.open_remediation(opening.model_copy(update={"now": datetime.now(UTC)}))

    assert again.gate is not None and again.gate.allowed, again.gate
    assert again.checkpoint == first.checkpoint
    async with deps.db.session() as session:
        # Held again for the change that runs again (which gives it back once more).
        assert await ActionLedger(session).reserved(key) is not None
        gates = await AuditRepository(session).list(subject=run_key, action="gate")
    assert [g.detail["allowed"] for g in gates] == [True]


async def test_a_new_runs_row_in_a_sqlite_write_turn_is_inserted_without_a_savepoint(
    db: Database,
) -> None:
    # The turn holds SQLite's one write lock and the row was just read as absent: no other
    # writer can store it meanwhile, and the savepoint around its insert was two statements
    # of every opening (the refusal it guards against cannot come).
    run_key = f"remediation/{unique('turn')}@run"
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement.split()[0])

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with db.writing() as session:
            await RemediationRepository(session).save_run(
                run_key,
                alert("http://127.0.0.1:9/metric"),
                {"tried": []},
                remediation_id=run_key.split("@")[0],
                user="someone",
                mode="execute",
                score=50,
                budget=2,
                state="planned",
                attempts=0,
            )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert "SAVEPOINT" not in statements and statements.count("INSERT") == 1, statements
    # Once the turn's transaction has ended, the lock is no longer held: the savepoint again.
    async with db.write_session() as session:
        assert session.info.get(SQLITE_TURN)
        await session.commit()
        assert not session.info.get(SQLITE_TURN)
    async with db.session() as session:
        row = await RemediationRepository(session).get(run_key)
    assert row is not None and row.state == "planned"


async def test_a_gate_reads_only_the_newest_changes_of_a_busy_cluster_and_counts_them_all(
    any_db: Database,
) -> None:
    # The rate limit weighs the newest per_hour changes and how many the hour holds: every
    # opening in a storm on one cluster read all the hour's reservations (thousands).
    cluster = f"cls-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    at = [now - timedelta(minutes=m) for m in range(30)]
    async with any_db.session() as session:
        for index, when in enumerate(at):
            await ActionLedger(session).reserve(f"{cluster}/{index}", cluster, "s", 1, when)
        await ActionLedger(session).reserve(
            f"{cluster}/old", cluster, "s", 1, now - timedelta(hours=2)
        )
        await session.commit()
    async with any_db.session() as session:
        newest, changes = await ActionLedger(session).recent(
            cluster, now - timedelta(hours=1), newest=5
        )
    assert (newest, changes) == (at[:5], 30)
    limited = rate_limit_gate(newest, now, 5, 0, changes)
    assert not limited.allowed and "30 changes" in str(limited.reason)
    assert limited == rate_limit_gate(at, now, 5, 0)  # as from all of them
    assert rate_limit_gate(newest, now, 31, 0, changes) == rate_limit_gate(at, now, 31, 0)


class _Unhealthy(DryRunExecutor):
    """A rollout that did not come up: every verification of it counts a failure."""

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth:
        return RolloutHealth(available=False, ready_replicas=0, desired=2, detail="0/2 ready")


async def test_a_verification_reads_its_breaker_row_once_and_a_retry_counts_no_failure_again(
    deps: WorkerDeps,
) -> None:
    # A service's first verification found no breaker row, and the session does not remember
    # an absent row: the row was read again for the state and again for the save (three
    # reads of remediation_breakers a run in an alert storm, where every service is new).
    remediation_settings(deps, remediation_executor="kubernetes")
    activities = RemediationActivities(deps.db, deps.settings, None, {"kubernetes": _Unhealthy()})
    service = unique("checkout")
    target = WorkloadRef(cluster_id="cls-a1b2c3d4", namespace="default", name=service)
    run_key = f"remediation/{unique('fp')}@run"
    request = VerifyInput(
        run_key=run_key,
        key=f"{step_key(run_key, Rung.RESTART)}/verification",
        mode="execute",
        target=target,
        service=service,
        rung=Rung.RESTART,
        now=datetime.now(UTC),
    )
    reads: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if statement.startswith("SELECT") and "remediation_breakers" in statement:
            reads.append(statement)

    event.listen(deps.db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        first = await activities.verify_remediation(request)
        assert len(reads) == 1, reads
        again = await activities.verify_remediation(request)  # its retry, the same key
    finally:
        event.remove(deps.db.engine.sync_engine, "before_cursor_execute", seen)
    assert not first.resolved and not again.resolved
    async with deps.db.session() as session:
        state = await BreakerRepository(session).state(service, int(Rung.RESTART))
    assert state.failures == 1, state  # counted once for the key


@pytest.mark.parametrize("earlier", [1, 0])
async def test_two_runs_failing_on_one_service_at_once_count_both_and_open_its_breaker(
    deps: WorkerDeps, any_db: Database, monkeypatch: pytest.MonkeyPatch, earlier: int
) -> None:
    # A restart of a Deployment failed (once, or never yet); then two alerts of it (its CPU,
    # its error rate: two runs) each restarted it, and their verifications, on two workers,
    # ended at once, unresolved: the failure that reaches the threshold opens the breaker.
    # On PostgreSQL both read 1 failure and both wrote 2, and the breaker stayed closed; with
    # no row yet, both wrote the first and one verification failed on the other's.
    threshold = earlier + 2
    remediation_settings(
        deps, remediation_executor="kubernetes", remediation_breaker_failures=threshold
    )
    service = unique("checkout")
    target = WorkloadRef(cluster_id="cls-a1b2c3d4", namespace="default", name=service)
    read: list[str] = []
    row = BreakerRepository.row

    async def other_read_or_waits() -> bool:
        # On SQLite the other cannot read before this one's write turn ends.
        if len(read) == 2 or any_db.sqlite:
            return True
        async with any_db.session() as session:
            waiting = (
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
                "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return bool(await session.scalar(text(waiting)))

    async def read_then_held(
        self: BreakerRepository, service: str, rung: int
    ) -> RemediationBreaker | None:
        # Each holds its transaction open after its read until the other has read too or
        # waits for its turn: two workers' verifications overlapping.
        found = await row(self, service, rung)
        read.append(service)
        await eventually(other_read_or_waits, "the other run's read or its wait")
        return found

    def verification(run: str) -> VerifyInput:
        run_key = f"remediation/{unique(run)}@run"
        return VerifyInput(
            run_key=run_key,
            key=f"{step_key(run_key, Rung.RESTART)}/verification",
            mode="execute",
            target=target,
            service=service,
            rung=Rung.RESTART,
            now=datetime.now(UTC),
        )

    one, other = (
        RemediationActivities(any_db, deps.settings, None, {"kubernetes": _Unhealthy()})
        for _ in "ab"
    )
    for _ in range(earlier):
        await one.verify_remediation(verification("first"))  # alone: 1 failure
    monkeypatch.setattr(BreakerRepository, "row", read_then_held)
    verified = await asyncio.gather(
        one.verify_remediation(verification("cpu")),
        other.verify_remediation(verification("errors")),
    )
    monkeypatch.setattr(BreakerRepository, "row", row)
    assert [v.resolved for v in verified] == [False, False]
    async with any_db.session() as session:
        state = await BreakerRepository(session).state(service, int(Rung.RESTART))
    assert (state.failures, state.opened_at is not None) == (threshold, True), state
