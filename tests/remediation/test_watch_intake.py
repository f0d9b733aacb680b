"""Intake from a threshold watch: a breach on a TKE workload metric starts its remediation."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import build_activities
from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.domain.configs import STORED
from ambient.remediation import joins as remediation_joins
from ambient.remediation.alerts import Alert, alert_from_breach, remediation_id
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.ladder import Mode, Rung
from ambient.remediation.runs import RemediationInput, RemediationStatus
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.watches.inputs import ConfigError, check_on_breach
from ambient.watches.models import ThresholdWatchInput
from ambient.watches.threshold_config import ThresholdWatchConfig
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, error_rate, remediation_settings
from tests.remediation.test_triage import cloud  # noqa: F401 - the Tencent stand-in fixture
from tests.standins.tencent_api import TencentApi, every_period
from tests.support.record import save_history
from tests.support.waits import ask
from worker import ALL_WORKFLOWS, build_worker
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import TASK_TIMEOUT
from workflows.threshold_watch import ThresholdWatchWorkflow

USER = "watcher"
METRIC = "K8sWorkloadRateCpuCoreUsedCluster"


def source(
    workload: str | None, region: str | None = None, namespace: str | None = "prod"
) -> dict[str, Any]:
    dimensions = {"tke_cluster_instance_id": "cls-watch001"}
    if namespace:
        dimensions["namespace"] = namespace
    if workload:
        dimensions["workload_name"] = workload
    return {
        "type": "tencent_monitor",
        "namespace": "QCE/TKE2",
        "metric": METRIC,
        "dimensions": dimensions,
        **({"region": region} if region else {}),
    }


async def run_watch(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    task_queue: str,
    workload: str | None,
    region: str | None = None,
    history: str | None = None,
    namespace: str | None = "prod",
) -> tuple[str, list[Any]]:
    task = f"threshold-watch/{USER}/{unique('cpu')}"
    # Read as a running watch reads its config: one a release before took (no namespace).
    config = ThresholdWatchConfig.model_validate(
        {
            "source": source(workload, region, namespace),
            "conditions": [{"op": "above", "value": 90}],
            "check_interval_minutes": 5,
            "on_breach": "remediate",
        },
        context=STORED,
    )
    handle = await env.client.start_workflow(
        ThresholdWatchWorkflow.run,
        ThresholdWatchInput(user=USER, task=task, config=config),
        id=task,
        task_queue=task_queue,
    )
    for _ in range(200):
        async with deps.db.session() as session:
            events = await EventRepository(session).list(user=USER, limit=100)
        found = [e for e in events if e.task == task and e.kind.startswith("watch.remediation")]
        if found:
            await handle.signal("stop")
            if history is not None:
                await handle.result()
                await save_history(handle, history)
            return task, found
        await env.sleep(60)
    raise AssertionError("no remediation event")


async def test_breach_on_a_tke_workload_metric_starts_its_remediation(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    api, tencent = cloud
    api.metric_points[METRIC] = [(int(time.time()) - 30, 97.0), (int(time.time()) + 3600, 97.0)]
    deps.tencent = tencent
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        _, events = await run_watch(ts_env, deps, worker.task_queue, "checkout")
        started = events[0]
        assert started.kind == "watch.remediation_started", started.payload
        rid = started.payload["remediation_id"]
        child = ts_env.client.get_workflow_handle(rid)
        status = await ask(child, "status", result_type=RemediationStatus)
        config = (await child.describe()).raw_description.execution_config
    assert status.alert.service == "cls-watch001/prod/checkout"
    # As an alert sent to the API starts its run (its first task runs the local activities).
    assert config.default_workflow_task_timeout.ToTimedelta() == TASK_TIMEOUT
    assert status.alert.source == "threshold_watch" and status.user == USER
    assert status.alert.verify is not None
    assert [c.op for c in status.alert.verify.healthy] == ["below"]
    # The watch breaches above 90: back at 90 it has recovered, and the run agrees.
    assert status.alert.verify.holds(90) and not status.alert.verify.holds(90.5)
    assert started.payload["joined"] is False


async def test_breach_on_a_workload_metric_of_another_region_remediates_in_that_region(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    """The watch reads the metric in its source's region: the cluster it names is there, and
    the remediation it starts names that region (its kubeconfig is asked for there)."""
    api, tencent = cloud
    api.metric_points[METRIC] = [(int(time.time()) - 30, 97.0), (int(time.time()) + 3600, 97.0)]
    deps.tencent = tencent
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        _, events = await run_watch(
            ts_env,
            deps,
            worker.task_queue,
            "checkout",
            region="ap-shanghai",
            history="threshold_watch_remediate_region",
        )
        started = events[0]
        assert started.kind == "watch.remediation_started", started.payload
        child = ts_env.client.get_workflow_handle(started.payload["remediation_id"])
        status = await ask(child, "status", result_type=RemediationStatus)
    assert status.alert.region == "ap-shanghai"
    assert status.alert.verify is not None
    assert status.alert.verify.source.region == "ap-shanghai"  # type: ignore[union-attr]


async def test_breach_without_a_workload_records_why_it_cannot_remediate(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    api, tencent = cloud
    api.metric_points[METRIC] = [(int(time.time()) - 30, 97.0), (int(time.time()) + 3600, 97.0)]
    deps.tencent = tencent
    remediation_settings(deps)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        _, events = await run_watch(ts_env, deps, worker.task_queue, None)
    assert events[0].kind == "watch.remediation_requested"
    assert "names no TKE workload" in events[0].payload["reason"]


async def test_a_breach_on_a_workload_named_without_its_namespace_guesses_none(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    """A watch created before such configs were refused: its breach started a remediation of
    the Deployment of that name in namespace "default", which it never named."""
    api, tencent = cloud
    api.metric_points[METRIC] = [(int(time.time()) - 30, 97.0), (int(time.time()) + 3600, 97.0)]
    deps.tencent = tencent
    remediation_settings(deps)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        _, events = await run_watch(
            ts_env,
            deps,
            worker.task_queue,
            "checkout",
            namespace=None,
            history="threshold_watch_remediate_no_namespace",
        )
    assert [e.kind for e in events] == ["watch.remediation_requested"], events
    assert events[0].payload["reason"] == (
        "the metric names workload checkout in cls-watch001 but no namespace: remediation "
        "does not guess one (add namespace to the source's dimensions)"
    )
    # The run a guess of namespace default would have started was not started.
    guessed = alert_from_breach(source("checkout", namespace="default"), 97.0, [], "")
    assert guessed is not None and guessed.namespace == "default"
    with pytest.raises(RPCError) as missing:
        await ts_env.client.get_workflow_handle(remediation_id(guessed)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_a_breach_whose_owner_may_not_remediate_tells_the_refusal_not_a_start(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    """An owner whose rollback_permission was taken away after the watch's create (none):
    the breach said `watch.remediation_started` of a run that ended "refused" at once, and
    nobody was told. The breach now tells the refusal and why (its event, and a push with
    the breach's), starts no run, and the refusal is audited as a door's start is."""
    api, tencent = cloud
    api.metric_points[METRIC] = [(int(time.time()) - 30, 97.0), (int(time.time()) + 3600, 97.0)]
    deps.tencent = tencent
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER, permission="none")
    async with running_worker(ts_env.client, deps) as worker:
        task, events = await run_watch(
            ts_env, deps, worker.task_queue, "checkout", history="threshold_watch_refused"
        )
    [refused] = events
    assert refused.kind == "watch.remediation_refused", refused.payload
    reason = "rollback_permission is 'none': an admin must grant dry_run or execute"
    rid = refused.payload["remediation_id"]
    assert refused.payload["reason"] == reason and refused.payload["value"] == 97.0
    with pytest.raises(RPCError) as missing:
        await ts_env.client.get_workflow_handle(rid).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
        [audited] = await AuditRepository(session).list(subject=rid, limit=10)
    told = {m.title: m.body for m in inbox}
    assert told[f"Remediation refused: {task}"] == (
        f"The breach's remediation of cls-watch001/prod/checkout was not started: {reason}."
    ), told
    assert f"Breach: {task}" in told
    assert (audited.action, audited.actor) == ("start_refused", USER)
    assert audited.detail["permission"] == "none" and audited.detail["requested_by"] == task


async def test_a_remediating_watch_must_name_a_deployment_for_certain() -> None:
    for dimensions, why in (
        (
            {"tke_cluster_instance_id": "cls-watch001", "workload_name": "checkout"},
            "the metric names workload checkout in cls-watch001 but no namespace",
        ),
        (
            {
                "tke_cluster_instance_id": "cls-watch001",
                "namespace": "prod",
                "workload_name": "db",
                "workload_kind": "StatefulSet",
            },
            "the metric is on StatefulSet db: remediation changes Deployments only",
        ),
        (
            {"tke_cluster_instance_id": "cls-watch001", "namespace": "Prod", "workload_name": "c"},
            "the metric's dimensions name no Deployment a remediation can change: namespace: "
            "must be a Kubernetes namespace",
        ),
    ):
        config = ThresholdWatchConfig.model_validate(
            {"source": {**source(None), "dimensions": dimensions}, "threshold": 90}
            | {"on_breach": "remediate"}
        )
        # The service's rule for every door (tests/watches/test_config_refusals_doors.py).
        with pytest.raises(ConfigError) as refused:
            await check_on_breach(config, "dry_run", None)
        [(at, said)] = refused.value.errors
        assert at == ("config", "on_breach") and str(said).startswith(why), said
        # Notified only, it is a watch like any other.
        await check_on_breach(config.model_copy(update={"on_breach": "notify"}), "dry_run", None)


async def test_a_breach_while_its_ended_remediation_sends_its_notice_starts_the_next_run(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A remediation that has resolved still records and sends its notice; a breach of the
    same workload then was called "joined" (joined: true) and dropped, unsignalled. It now
    waits for the ended run, as the API does, and starts the next run."""
    workload, rid, described, queue = await ended_run_holding_its_notice(
        dev_env, deps, cloud, monkeypatch
    )
    async with running_worker(dev_env.client, deps) as worker:
        task, watch = await remediating_watch(dev_env, worker.task_queue, workload)
        events = await remediation_events(deps, task, watch, until_pending="join_remediation")
        if not events:
            # The ended run's notice goes out now, and the run completes.
            async with build_worker(dev_env.client, deps, task_queue=queue):
                await dev_env.client.get_workflow_handle(rid, run_id=described.run_id).result()
                events = await remediation_events(deps, task, watch)
        await watch.signal("stop")
        latest = await dev_env.client.get_workflow_handle(rid).describe()
        if latest.run_id != described.run_id:
            await dev_env.client.get_workflow_handle(rid).terminate("test over")
    (started,) = events
    assert started.kind == "watch.remediation_started", started.payload
    assert started.payload["remediation_id"] == rid
    assert started.payload["joined"] is False
    assert latest.run_id != described.run_id


async def remediating_watch(
    dev_env: WorkflowEnvironment, queue: str, workload: str
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """A threshold watch of ``workload``'s CPU above 90 that remediates its breaches."""
    task = f"threshold-watch/{USER}/{unique('cpu')}"
    config = {
        "source": source(workload),
        "conditions": [{"op": "above", "value": 90}],
        "check_interval_minutes": 5,
        "on_breach": "remediate",
    }
    watch = await dev_env.client.start_workflow(
        ThresholdWatchWorkflow.run,
        ThresholdWatchInput(
            user=USER, task=task, config=ThresholdWatchConfig.model_validate(config)
        ),
        id=task,
        task_queue=queue,
    )
    return task, watch


async def test_a_breach_while_its_ended_remediation_cannot_send_its_notice_is_not_held(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ended run's notice cannot go out (no worker for it): the watch's join was tried 120
    times, up to 30 s apart, and the watch checked nothing meanwhile. It is tried a few times,
    then the watch records why nothing started and goes on (the next breach tries again)."""
    workload, rid, described, _ = await ended_run_holding_its_notice(
        dev_env, deps, cloud, monkeypatch
    )
    async with running_worker(dev_env.client, deps) as worker:
        task, watch = await remediating_watch(dev_env, worker.task_queue, workload)
        events = await remediation_events(deps, task, watch)
        await watch.signal("stop")
        await watch.result()
        await save_history(watch, "threshold_watch_join_bounded")
    await dev_env.client.get_workflow_handle(rid, run_id=described.run_id).terminate("test over")
    (requested,) = events
    assert requested.kind == "watch.remediation_requested", requested.payload
    assert "still sending its report" in requested.payload["reason"], requested.payload


async def ended_run_holding_its_notice(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811 - the fixture's value, passed on
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, str, Any, str]:
    """A remediation of a new workload that resolved on a worker that cannot send notices:
    ended, its final notice waiting for the queue's next worker; the workload's metric then
    breaches again. (The workload, the run's id, its description, the queue.)"""
    api, tencent = cloud
    deps.tencent = tencent
    remediation_settings(deps, remediation_approval_from_rung=6, remediation_settle_seconds=0)
    monkeypatch.setattr(remediation_joins, "FINISHING_WAIT", 0.5)
    await add_user(deps, USER)
    workload = unique("checkout")
    conditions = ThresholdWatchConfig.model_validate(
        {"source": source(workload), "conditions": [{"op": "above", "value": 90}]}
    ).conditions
    breach = alert_from_breach(source(workload), 97.0, conditions, "cpu 97")
    assert breach is not None
    rid = remediation_id(breach)
    # The first run resolves on a worker that cannot send notices: its final notice waits for
    # the queue's next worker. Its alert, on the same workload, reads a healthy error rate (a
    # Cloud Monitor metric would have it wait a minute for its datapoint after the change).
    queue = unique("tq")
    mute = [a for a in build_activities(deps) if a.__name__ != "notify"]  # type: ignore[attr-defined]
    async with (
        error_rate(healthy_from=1) as (_, url),
        Worker(
            dev_env.client,
            task_queue=queue,
            workflows=ALL_WORKFLOWS,
            activities=mute,
            workflow_runner=temporal.workflow_runner(),
        ),
    ):
        first_alert = Alert.model_validate(
            breach.model_dump(mode="json") | {"verify": healthy_error_rate(url)}
        )
        assert remediation_id(first_alert) == rid
        first = await dev_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=first_alert, user=USER, mode="execute"),
            id=rid,
            task_queue=queue,
        )
        for _ in range(300):
            described = await first.describe()
            if described.typed_search_attributes.get(temporal.STATE) == "resolved":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the first run did not resolve")
    api.metric_points[METRIC] = every_period(97.0)
    return workload, rid, described, queue


def healthy_error_rate(url: str) -> dict[str, Any]:
    """A verify block reading the error rate at ``url`` (an `error_rate` endpoint)."""
    return {
        "source": {"type": "http_json", "url": url, "json_path": "$.error_rate"},
        "healthy": [{"op": "below", "value": 0.05}],
    }


async def remediation_events(
    deps: WorkerDeps,
    task: str,
    watch: WorkflowHandle[Any, Any],
    until_pending: str | None = None,
) -> list[Any]:
    """The watch's remediation events once there are some (or its activity is pending)."""
    for _ in range(600):
        async with deps.db.session() as session:
            events = await EventRepository(session).list(user=USER, limit=100)
        found = [e for e in events if e.task == task and e.kind.startswith("watch.remediation")]
        if found:
            return found
        if until_pending is not None:
            pending = (await watch.describe()).raw_description.pending_activities
            if any(p.activity_type.name == until_pending for p in pending):
                return []
        await asyncio.sleep(0.1)
    raise AssertionError("no remediation event")


async def test_an_alert_of_another_region_is_verified_with_its_metric_read_there(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    """An alert sent to the API names its cluster's region; its verification metric, a
    Cloud Monitor source that names none, is that cluster's: read in the alert's region,
    not in the configured one (where it has no datapoints and the run could not verify).
    A dry run: it judges the latest datapoint, read once."""
    api, tencent = cloud
    api.metric_points[METRIC] = every_period(12.0)
    deps.tencent = tencent
    remediation_settings(deps, remediation_approval_from_rung=0, remediation_settle_seconds=0)
    await add_user(deps, USER)
    subject = Alert.model_validate(
        {
            "source": "manual",
            "cluster_id": "cls-watch001",
            "namespace": "prod",
            "workload": "checkout",
            "region": "ap-shanghai",
            "verify": {"source": source("checkout"), "healthy": [{"op": "below", "value": 90}]},
        }
    )
    async with running_worker(dev_env.client, deps) as worker:
        handle = await dev_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user=USER, mode="dry_run"),
            id=f"{remediation_id(subject)}-{unique('r')}",
            task_queue=worker.task_queue,
        )
        status = await handle.result()
    read = [
        region
        for (_, action, _), region in zip(api.calls, api.regions, strict=True)
        if action == "DescribeStatisticData"
    ]
    assert read and set(read) == {"ap-shanghai"}, read
    assert status.state == "resolved", status.outcome


async def test_a_change_is_not_judged_on_a_datapoint_from_before_it(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    """A 300 s metric publishes the period holding the change only once that period is over:
    after the settle, its newest datapoint is still the breach's own, from before the restart.
    That is no verdict: the run reads again a period later, up to three, and with none newer
    it hands over as not verified, climbing to no stronger rung on a value of before."""
    api, _ = cloud
    status, waits = await verified_on_a_datapoint_of_before(
        ts_env,
        deps,
        cloud,
        source("checkout") | {"period": 300},
        "remediation_verify_reading_after_the_change",
    )
    # The restart alone, not judged on the datapoint of before it.
    assert [(a.rung, a.verified) for a in status.attempts] == [(Rung.RESTART, False)], (
        status.attempts
    )
    assert "no datapoint after the change" in status.attempts[0].verification
    assert status.state == "handed_over", status.outcome
    reads = [action for _, action, _ in api.calls if action == "DescribeStatisticData"]
    assert len(reads) == 4, reads  # the first, then one a period for three periods
    assert waits == [timedelta(seconds=300)] * 3, waits


async def test_a_10_s_metric_waits_a_minute_for_its_datapoint_after_the_change(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    """Cloud Monitor lands a datapoint a minute or more after its period ends: a 10 s metric
    read again 10 s on, three times, gave up after 30 s on a datapoint still on its way. Each
    wait is a minute at the least."""
    api, _ = cloud
    cvm = {
        "type": "tencent_monitor",
        "namespace": "QCE/CVM",
        "metric": "CPUUsage",
        "dimensions": {"InstanceId": "ins-watch001"},
        "period": 10,
    }
    status, waits = await verified_on_a_datapoint_of_before(ts_env, deps, cloud, cvm)
    assert "no datapoint after the change" in status.attempts[0].verification
    reads = [action for _, action, _ in api.calls if action == "GetMonitorData"]
    assert len(reads) == 4, reads
    assert waits == [timedelta(minutes=1)] * 3, waits


async def test_a_dry_run_judges_its_metrics_latest_datapoint_without_waiting_for_a_newer_one(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    """A dry run changed nothing, so no datapoint can be after its change: it waited up to 3
    periods for one at each rung (a 300 s metric, 15 minutes a rung) and handed over as not
    verified. It reads once and judges the latest datapoint, as it reads."""
    api, _ = cloud
    status, waits = await verified_on_a_datapoint_of_before(
        ts_env,
        deps,
        cloud,
        source("checkout") | {"period": 300},
        "remediation_dry_run_reads_once",
        mode="dry_run",
    )
    judged = [a for a in status.attempts if a.verified]
    assert judged and judged[0].rung is Rung.RESTART, status.attempts
    for attempt in judged:
        assert attempt.mode == "dry_run" and attempt.resolved is False
        assert (attempt.verification or "").startswith("metric 95 is not healthy"), attempt
    assert status.state == "budget_exhausted", status.outcome
    reads = [action for _, action, _ in api.calls if action == "DescribeStatisticData"]
    assert len(reads) == len(judged), reads  # one read a rung
    settle = timedelta(seconds=deps.settings.remediation_settle_seconds)
    assert set(waits) <= {settle}, waits  # the next rungs' settles, nothing waited for


async def verified_on_a_datapoint_of_before(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811 - the fixture's value, passed on
    verify_source: dict[str, Any],
    history: str | None = None,
    mode: Mode = "execute",
) -> tuple[RemediationStatus, list[timedelta]]:
    """A run (``mode``) of a restart whose verify block reads ``verify_source``, a Cloud
    Monitor metric whose newest datapoint, 4 minutes old, is from before the change (nothing
    after it is published): how the run ended, and the waits it made after its first settle.
    Executed by the dry-run executor under the Kubernetes executor's name: nothing is sent."""
    api, tencent = cloud
    api.metric_points[verify_source["metric"]] = [(int(time.time()) - 240, 95.0)]
    deps.tencent = tencent
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": DryRunExecutor()}
    remediation_settings(deps, remediation_approval_from_rung=0, remediation_executor="kubernetes")
    await add_user(deps, USER, permission="execute")
    subject = Alert.model_validate(
        {
            "source": "threshold_watch",
            "cluster_id": "cls-watch001",
            "namespace": "prod",
            "workload": "checkout",
            "verify": {"source": verify_source, "healthy": [{"op": "below", "value": 90}]},
        }
    )
    async with running_worker(ts_env.client, deps) as worker:
        handle = await ts_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user=USER, mode=mode),
            id=f"{remediation_id(subject)}-{unique('r')}",
            task_queue=worker.task_queue,
        )
        status = await handle.result()
        if history is not None:
            await save_history(handle, history)
        timers = [
            e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        ]
    settle = timedelta(seconds=deps.settings.remediation_settle_seconds)
    return status, timers[timers.index(settle) + 1 :]


async def test_a_breachs_remediation_starts_before_its_message_is_delivered(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
) -> None:
    """A webhook target that failed its first tries held the breach's remediation until the
    delivery's last try (3 minutes for one that never answers): a notice channel unrelated
    to the cluster delayed the fix (a review). The remediation starts first now; the message
    still gets there."""
    from pydantic import SecretStr

    from ambient.clients.notify.registry import build_channels
    from tests.notify.standins import WEBHOOK_SECRET, PushEndpoints
    from tests.support.servers import serve
    from tests.support.waits import eventually

    api, tencent = cloud
    api.metric_points[METRIC] = [(int(time.time()) - 30, 97.0), (int(time.time()) + 3600, 97.0)]
    deps.tencent = tencent
    hooks = PushEndpoints()
    hooks.failures["webhook"] = ["500", "500", "500"]  # tried again 2, 4 and 8 s on
    async with serve(hooks.app()) as base:
        remediation_settings(
            deps, remediation_approval_from_rung=1, webhook_signing_secret=SecretStr(WEBHOOK_SECRET)
        )
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        await add_user(deps, USER)
        async with running_worker(dev_env.client, deps) as worker:
            task = f"threshold-watch/{USER}/{unique('cpu')}"
            config = ThresholdWatchConfig.model_validate(
                {
                    "source": source("checkout"),
                    "conditions": [{"op": "above", "value": 90}],
                    "check_interval_minutes": 5,
                    "on_breach": "remediate",
                    "targets": [{"type": "webhook", "target": f"{base}/hook"}],
                },
                context=STORED,
            )
            handle = await dev_env.client.start_workflow(
                ThresholdWatchWorkflow.run,
                ThresholdWatchInput(user=USER, task=task, config=config),
                id=task,
                task_queue=worker.task_queue,
            )

            async def remediation() -> list[str] | None:
                async with deps.db.session() as session:
                    events = await EventRepository(session).list(user=USER, limit=100)
                kinds = [e.kind for e in events if e.task == task]
                return kinds if any(k.startswith("watch.remediation") for k in kinds) else None

            kinds = await eventually(remediation, "the breach's remediation")
            assert hooks.received == [], "the remediation waited for the message"
            assert "watch.remediation_started" in kinds and "watch.breach" in kinds, kinds
            await eventually(lambda: asyncio.sleep(0.2, hooks.received), "the breach's message")
            [(_, posted)] = hooks.received
            assert posted["title"].startswith("Breach: "), posted
            await handle.signal("stop")
            await handle.result()
            await save_history(handle, "threshold_watch_remediated_before_delivery")
