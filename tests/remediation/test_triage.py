"""Nightly alert triage: yesterday's unresolved alarms from the Tencent Cloud stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import yaml
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from ambient.cli import app as cli
from ambient.clients.tencent.client import LIMIT_RETRIES, TencentCloud
from ambient.clients.tencent.errors import TencentRetryableError
from ambient.deps import WorkerDeps
from ambient.remediation.alerts import Alert, remediation_id
from ambient.remediation.joins import NAME_ONLY
from ambient.remediation.runs import RemediationInput, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.triage import (
    TRIAGE_RETRY,
    TriageInput,
    TriageResult,
    unresolved_alarms,
)
from ambient.remediation.triage_schedule import TRIAGE_SCHEDULE
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import EventRepository, InboxRepository
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, alert, remediation_settings
from tests.standins.kube_api import kubeconfig
from tests.standins.tencent_api import TencentApi
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.tencent import standin_tencent
from tests.support.waits import ask, eventually
from worker import ensure_triage_schedule
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import TASK_TIMEOUT, search_attributes
from workflows.remediation_triage import START_THROUGH_CANCEL, AlertTriageWorkflow

USER = "night"
ZONE = ZoneInfo("Asia/Shanghai")


def yesterday_at(hour: int) -> int:
    """Seconds since the epoch of ``hour`` o'clock yesterday, Shanghai time."""
    today = datetime.now(ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - timedelta(days=1) + timedelta(hours=hour)).timestamp())


def tke(cluster: str, namespace: str, workload: str) -> str:
    return f"tke_cluster_instance_id:{cluster}|namespace:{namespace}|workload_name:{workload}"


@pytest_asyncio.fixture
async def cloud() -> AsyncIterator[tuple[TencentApi, TencentCloud]]:
    api = TencentApi()
    api.monitor_alarms = [
        {
            "PolicyName": "checkout 5xx",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": yesterday_at(2),
            "AlarmLevel": "serious",
            "AlarmObject": tke("cls-night001", "prod", "checkout"),
            "Content": "5xx rate 12% > 5%",
        },
        {  # the same alarm again later: one remediation
            "PolicyName": "checkout 5xx",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": yesterday_at(9),
            "AlarmObject": tke("cls-night001", "prod", "checkout"),
            "Content": "5xx rate 9% > 5%",
        },
        {  # recovered on its own
            "PolicyName": "cart latency",
            "AlarmStatus": "OK",
            "FirstOccurTime": yesterday_at(3),
            "AlarmObject": tke("cls-night001", "prod", "cart"),
            "Content": "p99 800ms",
        },
        {  # not a TKE workload
            "PolicyName": "cvm disk",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": yesterday_at(4),
            "AlarmObject": "ins-abc123",
            "Content": "disk 95%",
        },
        {  # the day before yesterday: not this night's work
            "PolicyName": "old",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": yesterday_at(-5),
            "AlarmObject": tke("cls-night001", "prod", "old"),
            "Content": "old",
        },
    ]
    api.cls_records = [
        {
            "AlarmName": "search errors",
            "Status": 0,
            "CreateTime": yesterday_at(5) * 1000,
            "AlarmLevel": 1,
            "TopicName": "search-logs",
            "Trigger": "error count > 100 cluster_id=cls-night001 namespace=prod workload=search",
        }
    ]
    # The clusters these tests name are TKE's, their API servers not open to us (an empty
    # kubeconfig): a dry run previews from the alert. An id TKE does not know stops it.
    api.kubeconfigs.update({f"cls-{name}": "" for name in ("night001", "night002", "night003")})
    api.kubeconfigs["cls-watch001"] = ""
    async with serve(api.app()) as base:
        # A rate limit the client waits out a few ms apart (its own first wait is 0.5 s).
        yield api, standin_tencent(base, backoff=0.01)


async def _triage(
    ts_env: WorkflowEnvironment, worker: Worker
) -> WorkflowHandle[AlertTriageWorkflow, TriageResult]:
    """A dry run of the alert triage for USER started on ``worker``'s queue."""
    return await ts_env.client.start_workflow(
        AlertTriageWorkflow.run,
        TriageInput(user=USER, mode="dry_run"),
        id=unique("alert-triage"),
        task_queue=worker.task_queue,
    )


async def test_triage_starts_one_remediation_per_unresolved_alarm_and_joins_on_repeat(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cloud: tuple[TencentApi, TencentCloud]
) -> None:
    _, tencent = cloud
    deps.tencent = tencent
    # Remediations wait for approval at rung 1, so they are still running for the second run.
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approval_timeout_minutes=14 * 24 * 60
    )
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        handle = await _triage(ts_env, worker)
        first: TriageResult = await handle.result()
        await save_history(handle, "alert_triage")  # type: ignore[arg-type]
        second = await _triage(ts_env, worker)
        again: TriageResult = await second.result()
        await save_history(second, "alert_triage_joined")  # type: ignore[arg-type]
        services, task_timeouts, joined_by = [], [], []
        for rid in first.started:
            child = ts_env.client.get_workflow_handle(rid)
            status = await ask(child, "status", result_type=RemediationStatus)
            services.append((status.alert.source, status.alert.service, status.user))
            async with deps.db.session() as session:
                repeats = await AuditRepository(session).list(
                    subject=status.run_key, action="deduplicated"
                )
            joined_by.append((status.joined_by, [(r.actor, r.detail["source"]) for r in repeats]))
            config = (await child.describe()).raw_description.execution_config
            task_timeouts.append(config.default_workflow_task_timeout.ToTimedelta())

    assert len(first.started) == 2 and first.joined == []
    assert sorted(services) == [
        ("cls", "cls-night001/prod/search", USER),
        ("monitor", "cls-night001/prod/checkout", USER),
    ]
    assert first.skipped == ["monitor alarm 'cvm disk': names no TKE workload"]
    # As an alert sent to the API starts its run: the storm of a night's alarms keeps its tasks.
    assert task_timeouts == [TASK_TIMEOUT, TASK_TIMEOUT]
    assert sorted(again.joined) == sorted(first.started) and again.started == []
    # Joined as the API joins a repeat: the run knows who sent its alert again, and so does
    # its audit (the triage's second run was a silent "joined" before).
    assert joined_by == [([USER], [(USER, "triage")])] * 2


def _older_id(alert: Alert) -> str:
    """The id an alert's remediation had before ids named the workload (until 2026-11-28)."""
    parts = [alert.source, alert.cluster_id, alert.namespace, alert.workload, alert.metric or ""]
    return "remediation/" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


async def test_triage_starts_its_runs_under_the_workload_ids_beside_runs_under_older_ids(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cloud: tuple[TencentApi, TencentCloud]
) -> None:
    """Runs started before ids named the workload are gone (a remediation lasts hours, and a
    release two back is drained): a triage no longer looks for them, an activity before each
    start. The patch that took that look away (no-older-id-join) went through Temporal's
    lifecycle: the history holds no marker of it (the one it holds is triage-start-through-
    cancel's)."""
    _, tencent = cloud
    deps.tencent = tencent
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approval_timeout_minutes=14 * 24 * 60
    )
    await add_user(deps, USER)
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    older = sorted(_older_id(a) for a in found.alerts)
    async with running_worker(ts_env.client, deps) as worker:
        for subject in found.alerts:
            await ts_env.client.start_workflow(
                GradedRemediationWorkflow.run,
                RemediationInput(alert=subject, user=USER, mode="dry_run", requested_by=USER),
                id=_older_id(subject),
                task_queue=worker.task_queue,
                search_attributes=search_attributes(USER, subject.cluster_id),
            )
        handle = await _triage(ts_env, worker)
        result: TriageResult = await handle.result()
        history = await handle.fetch_history()
        for rid in [*older, *result.started]:
            await ts_env.client.get_workflow_handle(rid).terminate("test over")

    assert sorted(result.started) == sorted(remediation_id(a) for a in found.alerts)
    assert result.joined == [] and not set(older) & set(result.started)
    patches = [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    # One: a start the triage's cancel cut is asked again (the runs it starts never hear it).
    assert patches == [{"id": START_THROUGH_CANCEL, "deprecated": False}]
    joins = [
        e
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "join_remediation"
    ]
    assert joins == []


async def test_triage_alerts_name_the_region_of_their_monitor_alarm(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Cloud Monitor's alarm history names each alarm's region (AlarmHistory.Region) by its
    short name, as in the API reference's examples ("gz"): the alert of a cluster in another
    region is remediated there, not in the configured one. An API name is taken as it is; a
    value that is neither is not guessed at (the configured region)."""
    api, tencent = cloud
    for alarm in api.monitor_alarms[:2]:  # checkout 5xx and its repeat
        alarm["Region"] = "sh"
    api.monitor_alarms[2].update(AlarmStatus="ALARM", Region="ap-beijing")  # cart, unresolved
    api.monitor_alarms[3]["Region"] = "test-master"  # cvm disk, the alarm object of no workload
    api.monitor_alarms[3]["AlarmObject"] = tke("cls-night002", "prod", "disk")
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    regions = {a.service: a.region for a in found.alerts}
    assert regions == {
        "cls-night001/prod/checkout": "ap-shanghai",
        "cls-night001/prod/cart": "ap-beijing",
        "cls-night002/prod/disk": None,
        "cls-night001/prod/search": None,  # a CLS record naming no Region: the configured
    }


async def test_triage_alerts_name_the_region_of_their_cls_alert_record(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """CLS alert records are not read per region: DescribeAlertRecordHistory takes no Region
    (its reference: "Region ... This parameter is not required for this API") and each record
    names its monitored topic's region (AlertHistoryRecord.Region, 监控对象所属地域). A CLS
    alarm on a cluster in ap-shanghai was remediated in the configured region, where the
    cluster is not found; it is remediated in the record's region."""
    api, tencent = cloud
    api.monitor_alarms = []
    api.cls_records[0]["Region"] = "ap-shanghai"
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    assert {a.service: a.region for a in found.alerts} == {
        "cls-night001/prod/search": "ap-shanghai"
    }


async def test_a_monitor_alarm_naming_its_workload_in_dimensions_only_is_triaged(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """DescribeAlarmHistories' AlarmObject is a display text ("10.0.0.8 (内) | 服务器01 | …" in
    the API reference) and the instance's dimensions are its Dimensions: read as text only,
    a TKE workload alarm was skipped as naming no workload."""
    api, tencent = cloud
    dims = {"tke_cluster_instance_id": "cls-night003", "namespace": "shop", "workload_name": "pay"}
    api.monitor_alarms = [
        {
            "PolicyName": "pay restarts",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": yesterday_at(2),
            "AlarmObject": "cls-night003 | shop | pay",
            "Content": "容器重启次数 > 3",
            "Dimensions": json.dumps(dims),
        },
        {  # the dimensions as a list of Key/Value pairs, as other Monitor answers write them
            "PolicyName": "cart restarts",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": yesterday_at(3),
            "AlarmObject": "cls-night003 | shop | cart",
            "Content": "容器重启次数 > 3",
            "Dimensions": json.dumps(
                [{"Key": k, "Value": v} for k, v in {**dims, "workload_name": "cart"}.items()]
            ),
        },
    ]
    api.cls_records = []
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    assert found.skipped == []
    assert sorted(a.service for a in found.alerts) == [
        "cls-night003/shop/cart",
        "cls-night003/shop/pay",
    ]


async def test_triage_schedule_runs_at_five_in_the_team_time_zone(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    await add_user(deps, USER)
    service = RemediationService(dev_env.client, deps.settings, deps.db)
    first = await service.schedule_triage(USER)
    second = await service.schedule_triage(USER)  # idempotent
    handle = dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE)
    try:
        described = await handle.describe()
    finally:
        await handle.delete()
    assert (first.created, second.created) == (True, False)
    spec = described.schedule.spec
    assert spec.time_zone_name == "Asia/Shanghai"
    assert [(c.hour[0].start, c.minute[0].start) for c in spec.calendars] == [(5, 0)]
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == "AlertTriageWorkflow"


async def test_worker_start_schedules_the_triage_only_when_a_triage_user_is_set(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    await add_user(deps, USER)
    await ensure_triage_schedule(dev_env.client, deps.settings, deps.db)
    # Described, not listed: the list is a visibility query, which may still show the
    # schedule an earlier test on this server deleted (eventually consistent).
    with pytest.raises(RPCError) as absent:
        await dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE).describe()
    configured = deps.settings.model_copy(update={"remediation_triage_user": USER})
    await ensure_triage_schedule(dev_env.client, configured, deps.db)
    await ensure_triage_schedule(dev_env.client, configured, deps.db)  # a restart: no error
    handle = dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE)
    try:
        described = await handle.describe()
    finally:
        await handle.delete()
    assert absent.value.status is RPCStatusCode.NOT_FOUND, absent.value
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    (decoded,) = await dev_env.client.data_converter.decode(action.args, [TriageInput])
    assert decoded.user == USER


async def _triage_schedule(client: Client) -> tuple[str, list[tuple[int, int]], str, bool]:
    """The triage Schedule's user, times, time zone and pause; then it is deleted."""
    handle = client.get_schedule_handle(TRIAGE_SCHEDULE)
    try:
        described = await handle.describe()
    finally:
        await handle.delete()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    (decoded,) = await client.data_converter.decode(action.args, [TriageInput])
    spec = described.schedule.spec
    times = [(c.hour[0].start, c.minute[0].start) for c in spec.calendars]
    return decoded.user, times, spec.time_zone_name or "", described.schedule.state.paused


async def test_a_restart_with_new_triage_settings_moves_the_schedule_and_keeps_a_pause(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The schedule stayed at its old time, zone and user (one with rollback_permission
    execute) whatever the settings said at the next start."""
    await add_user(deps, "night", permission="execute")
    await add_user(deps, "dawn", permission="dry_run")
    before = deps.settings.model_copy(
        update={"remediation_triage_user": "night", "remediation_triage_at": "05:00"}
    )
    await ensure_triage_schedule(dev_env.client, before, deps.db)
    # An operator pauses it in the Web UI, then moves the triage and restarts the worker.
    await dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE).pause(note="paused in the Web UI")
    after = deps.settings.model_copy(
        update={
            "remediation_triage_user": "dawn",
            "remediation_triage_at": "03:30",
            "remediation_timezone": "Europe/Berlin",
        }
    )
    await ensure_triage_schedule(dev_env.client, after, deps.db)
    assert await _triage_schedule(dev_env.client) == ("dawn", [(3, 30)], "Europe/Berlin", True)


async def test_two_workers_starting_at_once_both_leave_the_configured_schedule(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    await add_user(deps, "dawn")
    configured = deps.settings.model_copy(update={"remediation_triage_user": "dawn"})
    await asyncio.gather(
        *(ensure_triage_schedule(dev_env.client, configured, deps.db) for _ in range(2))
    )
    assert await _triage_schedule(dev_env.client) == ("dawn", [(5, 0)], "Asia/Shanghai", False)


async def test_triage_by_hand_as_another_user_runs_as_that_user_and_says_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """`ambient remediation triage --user dawn` said "schedule alert-triage is in place" and
    the schedule went on as night."""
    await add_user(deps, "night", permission="execute")
    await add_user(deps, "dawn", permission="dry_run")
    env = {
        "AMBIENT_DATA_DIR": str(deps.settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": deps.settings.temporal_task_queue,
        "AMBIENT_REMEDIATION_TRIAGE_AT": "04:15",
    }
    said = []
    for user in ("night", "dawn"):
        args = ["remediation", "triage", "--user", user]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        said.append(" ".join(result.output.split()))
    assert await _triage_schedule(dev_env.client) == ("dawn", [(4, 15)], "Asia/Shanghai", False)
    assert said == [
        "schedule alert-triage created: nightly at 04:15 Asia/Shanghai as night",
        "schedule alert-triage updated: nightly at 04:15 Asia/Shanghai as dawn",
    ]


async def test_triage_by_hand_refuses_a_user_nobody_registered(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Every other command refuses a --user nobody registered (README "Output"); `remediation
    triage --user ghost` (a typo) replaced the nightly triage's user with it, exit 0: the
    05:00 sweep then ran as nobody."""
    await add_user(deps, "night")
    env = {
        "AMBIENT_DATA_DIR": str(deps.settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": deps.settings.temporal_task_queue,
    }
    said = []
    for user in ("night", "ghost"):
        args = ["remediation", "triage", "--user", user]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        said.append((result.exit_code, " ".join(result.output.split())))
    assert await _triage_schedule(dev_env.client) == ("night", [(5, 0)], "Asia/Shanghai", False)
    assert said == [
        (0, "schedule alert-triage created: nightly at 05:00 Asia/Shanghai as night"),
        (1, "no user 'ghost': an admin registers it (ambient user create ghost)"),
    ]


async def test_triage_by_hand_refuses_a_user_who_may_not_remediate(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, caplog: pytest.LogCaptureFixture
) -> None:
    """A triage scheduled as a user whose rollback_permission is none started runs each night
    that were all refused at once. Refused by hand and at the worker's start, no schedule."""
    await add_user(deps, "noone", permission="none")
    env = {
        "AMBIENT_DATA_DIR": str(deps.settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": deps.settings.temporal_task_queue,
    }
    args = ["remediation", "triage", "--user", "noone"]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    why = (
        "noone has rollback_permission 'none': the triage's remediations would each be "
        "refused; an admin must grant dry_run or execute"
    )
    assert (result.exit_code, " ".join(result.output.split())) == (1, why)
    settings = deps.settings.model_copy(update={"remediation_triage_user": "noone"})
    with caplog.at_level(logging.INFO, logger="ambient.worker"):
        await ensure_triage_schedule(dev_env.client, settings, deps.db)
    assert f"nightly alert triage not scheduled: AMBIENT_REMEDIATION_TRIAGE_USER: {why}" in (
        caplog.text
    )
    with pytest.raises(RPCError) as absent:
        await dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE).describe()
    assert absent.value.status is RPCStatusCode.NOT_FOUND, absent.value


async def test_a_triage_whose_user_lost_the_permission_tells_each_refusal(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cloud: tuple[TencentApi, TencentCloud]
) -> None:
    """Its user's rollback_permission taken away after the schedule was made: the night's
    runs each ended "refused" at once and nobody was told. Each tells its refusal."""
    _, tencent = cloud
    deps.tencent = tencent
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER, permission="none")
    async with running_worker(ts_env.client, deps) as worker:
        result: TriageResult = await (await _triage(ts_env, worker)).result()
        states = [
            (await ts_env.client.get_workflow_handle(rid, result_type=RemediationStatus).result())
            for rid in result.started
        ]
    assert len(result.started) == 2 and [s.state for s in states] == ["refused", "refused"]
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    assert sorted(m.title for m in inbox) == [
        "Remediation refused: cls-night001/prod/checkout",
        "Remediation refused: cls-night001/prod/search",
    ]


async def test_a_worker_whose_triage_user_nobody_registered_says_so_and_makes_no_schedule(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker made the nightly triage as a name no user has: each night started nothing,
    and no log said why."""
    nobody = deps.settings.model_copy(update={"remediation_triage_user": "ghost"})
    with caplog.at_level(logging.INFO, logger="ambient.worker"):
        await ensure_triage_schedule(dev_env.client, nobody, deps.db)
    with pytest.raises(RPCError) as absent:
        await dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE).describe()
    assert absent.value.status is RPCStatusCode.NOT_FOUND, absent.value
    assert (
        "nightly alert triage not scheduled: AMBIENT_REMEDIATION_TRIAGE_USER: no user 'ghost': "
        "an admin registers it (ambient user create ghost)"
    ) in caplog.text


async def test_a_restart_without_a_triage_user_removes_the_schedule_it_made(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, caplog: pytest.LogCaptureFixture
) -> None:
    """Unsetting AMBIENT_REMEDIATION_TRIAGE_USER left the old user's nightly triage running,
    with its rollback_permission, for good."""
    await add_user(deps, "night", permission="execute")
    on = deps.settings.model_copy(update={"remediation_triage_user": "night"})
    await ensure_triage_schedule(dev_env.client, on, deps.db)
    off = deps.settings.model_copy(update={"remediation_triage_user": None})
    with caplog.at_level(logging.INFO, logger="ambient.worker"):
        await ensure_triage_schedule(dev_env.client, off, deps.db)
    with pytest.raises(RPCError) as gone:
        await dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE).describe()
    assert gone.value.status is RPCStatusCode.NOT_FOUND, gone.value
    assert "nightly alert triage removed: AMBIENT_REMEDIATION_TRIAGE_USER is not set" in (
        caplog.text
    )


async def test_a_restart_with_a_triage_user_who_may_not_remediate_removes_the_schedule_it_made(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, caplog: pytest.LogCaptureFixture
) -> None:
    """AMBIENT_REMEDIATION_TRIAGE_USER moved to a user with rollback_permission none: the start
    said "not scheduled" and left the previous user's nightly triage running, in execute."""
    await add_user(deps, "eve-exec", permission="execute")
    await add_user(deps, "eve-none", permission="none")
    first = deps.settings.model_copy(update={"remediation_triage_user": "eve-exec"})
    await ensure_triage_schedule(dev_env.client, first, deps.db)
    moved = deps.settings.model_copy(update={"remediation_triage_user": "eve-none"})
    with caplog.at_level(logging.INFO, logger="ambient.worker"):
        await ensure_triage_schedule(dev_env.client, moved, deps.db)
    with pytest.raises(RPCError) as gone:
        await dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE).describe()
    assert gone.value.status is RPCStatusCode.NOT_FOUND, gone.value
    assert "rollback_permission 'none'" in caplog.text, caplog.text
    assert f"the schedule {TRIAGE_SCHEDULE} an earlier start made was deleted" in caplog.text


async def test_a_restart_without_a_triage_user_keeps_a_triage_made_by_hand(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    await add_user(deps, "dawn")
    await RemediationService(dev_env.client, deps.settings, deps.db).schedule_triage("dawn")
    off = deps.settings.model_copy(update={"remediation_triage_user": None})
    await ensure_triage_schedule(dev_env.client, off, deps.db)
    assert await _triage_schedule(dev_env.client) == ("dawn", [(5, 0)], "Asia/Shanghai", False)


async def test_cls_refused_still_triages_monitor_alarms_and_says_cls_was_not_read(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A CAM policy without cls:DescribeAlertRecordHistory: the night's triage failed whole and
    Cloud Monitor's unresolved alarms went untriaged. Now they are triaged, and the night's
    record says CLS's alert records could not be read, and what to fix."""
    api, tencent = cloud
    api.failures["DescribeAlertRecordHistory"] = ["AuthFailure.UnauthorizedOperation"]
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    assert [a.service for a in found.alerts] == ["cls-night001/prod/checkout"]
    assert found.skipped[0] == (
        "cls alarms could not be read: Tencent Cloud refused DescribeAlertRecordHistory "
        "(AuthFailure.UnauthorizedOperation): check that the CAM policy allows "
        "cls:DescribeAlertRecordHistory (docs/tencent-cloud.md). injected "
        "AuthFailure.UnauthorizedOperation (RequestId req-standin)"
    )


async def test_both_sources_refused_the_night_says_what_to_fix_and_ends(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Keys without any alarm-reading permission: the triage failed with the API's code alone
    ("AuthFailure.UnauthorizedOperation: ..."), its activity retried for nothing. It now ends
    with nothing triaged and says what to fix; an outage is still raised to be retried."""
    api, tencent = cloud
    for action in ("DescribeAlarmHistories", "DescribeAlertRecordHistory"):
        api.failures[action] = ["AuthFailure.UnauthorizedOperation"]
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    assert found.alerts == []
    assert found.skipped == [
        "the alarm history could not be read: Tencent Cloud refused DescribeAlarmHistories "
        "(AuthFailure.UnauthorizedOperation): check that the CAM policy allows "
        "monitor:DescribeAlarmHistories (docs/tencent-cloud.md). injected "
        "AuthFailure.UnauthorizedOperation (RequestId req-standin)"
    ]
    for action in ("DescribeAlarmHistories", "DescribeAlertRecordHistory"):
        api.failures[action] = ["InternalError"] * 9
    with pytest.raises(TencentRetryableError):
        await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)


# Cloud Monitor's answers to one read of the day: the first and the client's retries.
RATE_LIMITED = ["RequestLimitExceeded"] * (LIMIT_RETRIES + 1)


async def _triage_history(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tencent: TencentCloud
) -> tuple[TriageResult, list[str], int]:
    """A night's triage: its result, the services of the runs it started (then ended), and how
    many attempts its read of the alarms took."""
    deps.tencent = tencent
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approval_timeout_minutes=14 * 24 * 60
    )
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        handle = await _triage(ts_env, worker)
        result: TriageResult = await handle.result()
        services = []
        for rid in result.started:
            child = ts_env.client.get_workflow_handle(rid)
            status = await ask(child, "status", result_type=RemediationStatus)
            services.append(status.alert.service)
            await child.terminate("test over")
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    return result, sorted(services), attempts[0]


async def test_a_source_rate_limited_at_triage_is_read_again_by_the_next_attempt(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cloud: tuple[TencentApi, TencentCloud]
) -> None:
    """Cloud Monitor rate-limited past the client's own retries while CLS answered: the night
    went on with CLS's alarm only, Monitor's unresolved alarms untriaged and said "busy … try
    again in a moment", the activity's other attempts unused. The attempt fails, and the next
    reads both sources."""
    api, tencent = cloud
    api.failures["DescribeAlarmHistories"] = list(RATE_LIMITED)
    result, services, attempt = await _triage_history(ts_env, deps, tencent)
    assert services == ["cls-night001/prod/checkout", "cls-night001/prod/search"]
    assert result.skipped == ["monitor alarm 'cvm disk': names no TKE workload"]
    assert attempt == 2


async def test_a_source_rate_limited_on_every_attempt_is_said_unread_by_the_night(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cloud: tuple[TencentApi, TencentCloud]
) -> None:
    """Rate-limited on each of the triage's attempts: the last goes on with CLS's alarm and
    says Cloud Monitor was not read, still failing on the last of its attempts."""
    api, tencent = cloud
    api.failures["DescribeAlarmHistories"] = RATE_LIMITED * TRIAGE_RETRY.maximum_attempts
    result, services, attempt = await _triage_history(ts_env, deps, tencent)
    assert services == ["cls-night001/prod/search"]
    assert result.skipped == [
        "monitor alarms could not be read: Tencent Cloud is busy for DescribeAlarmHistories "
        "(RequestLimitExceeded) (too many requests at once); try again in a moment. injected "
        "RequestLimitExceeded (RequestId req-standin) (still failing on the night's last of 3 "
        "attempts)"
    ]
    assert attempt == TRIAGE_RETRY.maximum_attempts


async def test_alarms_without_a_time_are_said_skipped_by_the_night(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """An alarm answered without a time the API gives is skipped by the read and counted
    (``unreadable``); the night's record said only the sources unread, so an unresolved alarm
    went untriaged without a word. It says how many were skipped."""
    api, tencent = cloud
    day = [a | {"AlarmId": f"alarm-{n}"} for n, a in enumerate(api.monitor_alarms[:4])]
    day[2].update(AlarmStatus="ALARM", FirstOccurTime="yesterday")  # cart, unresolved
    answer = {"Response": {"Histories": day, "TotalCount": 4}}
    api.raw["DescribeAlarmHistories"] = [(200, "application/json", json.dumps(answer).encode())]
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    assert "cls-night001/prod/cart" not in [a.service for a in found.alerts]
    assert any(s.startswith("1 unreadable alarm skipped") for s in found.skipped), found.skipped


async def test_a_second_alarm_on_one_workload_is_said_not_dropped(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A CPU alarm and a restarts alarm on pay made one alert (one ladder per workload), and
    the restarts alarm was in neither the alerts nor skipped: nobody knew it was seen."""
    api, tencent = cloud
    pay = tke("cls-night003", "shop", "pay")
    api.monitor_alarms = [
        {
            "PolicyName": name,
            "AlarmStatus": "ALARM",
            "FirstOccurTime": yesterday_at(hour),
            "AlarmObject": pay,
            "Content": content,
        }
        for name, hour, content in (
            ("pay cpu", 2, "CPU 97%"),
            ("pay restarts", 3, "restarts > 3"),
            ("pay cpu", 4, "CPU 95%"),  # the same alarm again: a repeat, nothing to say
        )
    ]
    api.cls_records = []
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    assert [(a.metric, a.service) for a in found.alerts] == [("pay cpu", "cls-night003/shop/pay")]
    assert found.skipped == [
        "monitor alarm 'pay restarts' on cls-night003/shop/pay: joined into the remediation "
        "of monitor alarm 'pay cpu' (one remediation per workload)"
    ]


async def test_the_triages_alarms_join_another_members_run_with_their_text(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cloud: tuple[TencentApi, TencentCloud]
) -> None:
    """The triage's alarms are the operator's (Cloud Monitor, CLS), not a member's typing: its
    configured user's night joins another's run with them, whatever the user's role. Another
    user's triage (started by hand as someone else) joins as a name, and is told so."""
    _, tencent = cloud
    deps.tencent = tencent
    owner, night, other = unique("own"), unique("night"), unique("other")
    remediation_settings(
        deps,
        remediation_approval_from_rung=1,
        remediation_approval_timeout_minutes=14 * 24 * 60,
        remediation_triage_user=night,
    )
    for name in (owner, night, other):
        await add_user(deps, name)
    # The owner's own alert on the workload the night's Cloud Monitor alarm names.
    theirs = alert(
        "http://127.0.0.1:9/metric",
        cluster_id="cls-night001",
        workload="checkout",
        metric="latency",
    )
    rid = remediation_id(theirs)
    async with running_worker(ts_env.client, deps) as worker:
        run = await ts_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=theirs, user=owner, mode="dry_run", requested_by=owner),
            id=rid,
            task_queue=worker.task_queue,
            search_attributes=search_attributes(owner, theirs.cluster_id),
        )
        started: list[str] = []
        for user in (night, other):
            triage = await ts_env.client.start_workflow(
                AlertTriageWorkflow.run,
                TriageInput(user=user, mode="dry_run"),
                id=unique("alert-triage"),
                task_queue=worker.task_queue,
            )
            result: TriageResult = await triage.result()
            assert rid in result.joined, result
            started += result.started
        status = await eventually(lambda: _joined_by(run, 2), "both nights joined")
        await run.terminate("test over")
        for other_run in started:
            await ts_env.client.get_workflow_handle(other_run).terminate("test over")
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key, action="deduplicated")
        told = {
            u: await EventRepository(session).list(user=u, kind=NAME_ONLY) for u in (night, other)
        }

    # The configured night's alarm is the run's to check; the other's is a name only.
    assert [(a.source, a.service) for a in status.joined_alerts] == [
        ("monitor", "cls-night001/prod/checkout")
    ]
    assert sorted((r.actor, r.detail["source"], "metric" in r.detail) for r in rows) == [
        (night, "triage", True),
        (other, "triage", False),
    ]
    # Told of each run its night joined as a name (the owner's, and the configured night's).
    assert told[night] == [] and sorted(e.payload["remediation_id"] for e in told[other]) == sorted(
        result.joined
    )


async def _joined_by(run: WorkflowHandle[Any, Any], count: int) -> RemediationStatus | None:
    status: RemediationStatus = await run.query(GradedRemediationWorkflow.status)
    return status if len(status.joined_by) >= count else None


async def test_an_alarm_with_no_data_is_said_skipped_by_the_night(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """An alarm gone to no data (NO_DATA, 数据不足) on a workload is not remediated (nothing to
    verify a change by), and the night passed over it without a word: its user, who saw it
    in the console, got neither a run nor a line saying why. It is said in skipped, once."""
    api, tencent = cloud
    cart = tke("cls-night002", "shop", "cart")
    api.monitor_alarms = [
        {
            "PolicyName": "cart cpu",
            "AlarmStatus": "NO_DATA",
            "FirstOccurTime": yesterday_at(hour),
            "AlarmObject": cart,
            "Content": "no data",
        }
        for hour in (2, 6)  # the same alarm twice: said once
    ]
    api.cls_records = []
    found = await unresolved_alarms(tencent, ZONE, datetime.now(ZONE), days=1)
    assert found.alerts == []
    assert found.skipped == [
        "monitor alarm 'cart cpu' on cls-night002/shop/cart: no data (NO_DATA, 数据不足): its "
        "metric had too little data to tell, so it is not remediated (nothing to verify a "
        "change by); look at what reports the metric"
    ], found.skipped


async def test_a_night_run_late_reads_its_own_nights_day_and_the_next_is_kept(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A worker down past the next 05:00: the night's run, taken late, read the day before the
    day it ran (a whole day never triaged), and the Schedule skipped the nights its run
    waited through. Each night's run reads its own night's day now, and waits its turn."""
    await add_user(deps, USER)
    nights = [
        (datetime.now(ZONE) - timedelta(days=back)).replace(
            hour=5, minute=0, second=0, microsecond=0
        )
        for back in (4, 3)
    ]
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        await RemediationService(dev_env.client, settings, deps.db).schedule_triage(USER)
        handle = dev_env.client.get_schedule_handle(TRIAGE_SCHEDULE)
        try:
            described = await handle.describe()
            assert described.schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ALL
            # Two past nights' runs, started now (late), as the Schedule starts them.
            await handle.backfill(
                ScheduleBackfill(
                    start_at=nights[0] - timedelta(minutes=1),
                    end_at=nights[1] + timedelta(minutes=1),
                    overlap=ScheduleOverlapPolicy.BUFFER_ALL,
                )
            )

            async def runs() -> list[str] | None:
                query = f'TemporalScheduledById="{TRIAGE_SCHEDULE}"'
                found = [w.id async for w in dev_env.client.list_workflows(query)]
                return found if len(found) == 2 else None

            ids = await eventually(runs, "the two nights' runs")
            results = [
                await dev_env.client.get_workflow_handle(rid, result_type=TriageResult).result()
                for rid in sorted(ids)
            ]
        finally:
            await handle.delete()
    days = [(night - timedelta(days=1)).replace(hour=0, minute=0) for night in nights]
    assert [r.window.split(" – ")[0] for r in results] == [d.isoformat() for d in days]


async def test_alarms_naming_one_workload_by_its_context_and_by_its_tke_id_make_one_run(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, TencentCloud],
    tmp_path: Path,
) -> None:
    """A CLS alarm's trigger naming the cluster by the kubeconfig context that reaches it
    (``cluster=prod``), a Monitor alarm by its TKE id: the triage took them for two workloads
    and started two ladders on one Deployment, under two ids, as the API's start by the
    context did not (it names the run by the TKE id)."""
    api, tencent = cloud
    deps.tencent = tencent
    api.cls_records = [
        {
            "AlarmName": "checkout errors",
            "Status": 0,
            "CreateTime": yesterday_at(5) * 1000,
            "AlarmLevel": 1,
            "TopicName": "checkout-logs",
            "Trigger": "error count > 100 cluster_id=prod namespace=prod workload=checkout",
        }
    ]
    config = kubeconfig({"prod": "https://cls-night001.ccs.tencent-cloud.com"})
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    remediation_settings(
        deps,
        kubeconfig=path,
        remediation_approval_from_rung=1,
        remediation_approval_timeout_minutes=60,
    )
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        result = await (await _triage(ts_env, worker)).result()
    checkout = alert(
        "http://127.0.0.1:9/metrics",
        cluster_id="cls-night001",
        namespace="prod",
        workload="checkout",
    )
    assert result.started == [remediation_id(checkout)], result
    assert any("checkout errors" in said and "joined into" in said for said in result.skipped)
