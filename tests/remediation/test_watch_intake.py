"""Intake from a threshold watch: a breach on a TKE workload metric starts its remediation."""

from __future__ import annotations

import time
from typing import Any

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import RemediationStatus
from ambient.storage.repositories import EventRepository
from ambient.watches.configs import ThresholdWatchConfig
from ambient.watches.models import ThresholdWatchInput
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, remediation_settings
from tests.remediation.test_triage import cloud  # noqa: F401 - the Tencent stand-in fixture
from tests.standins.tencent_api import TencentApi
from workflows.remediation_records import TASK_TIMEOUT
from workflows.threshold_watch import ThresholdWatchWorkflow

USER = "watcher"
METRIC = "K8sWorkloadRateCpuCoreUsedCluster"


def source(workload: str | None) -> dict[str, Any]:
    dimensions = {"tke_cluster_instance_id": "cls-watch001", "namespace": "prod"}
    if workload:
        dimensions["workload_name"] = workload
    return {
        "type": "tencent_monitor",
        "namespace": "QCE/TKE2",
        "metric": METRIC,
        "dimensions": dimensions,
    }


async def run_watch(
    env: WorkflowEnvironment, deps: WorkerDeps, task_queue: str, workload: str | None
) -> tuple[str, list[Any]]:
    task = f"threshold-watch/{USER}/{unique('cpu')}"
    config = ThresholdWatchConfig.model_validate(
        {
            "source": source(workload),
            "conditions": [{"op": "above", "value": 90}],
            "check_interval_minutes": 5,
            "on_breach": "remediate",
        }
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
        status = await child.query("status", result_type=RemediationStatus)
        config = (await child.describe()).raw_description.execution_config
    assert status.alert.service == "cls-watch001/prod/checkout"
    # As an alert sent to the API starts its run (its first task runs the local activities).
    assert config.default_workflow_task_timeout.ToTimedelta() == TASK_TIMEOUT
    assert status.alert.source == "threshold_watch" and status.user == USER
    assert status.alert.verify is not None
    assert [c.op for c in status.alert.verify.healthy] == ["below"]
    assert started.payload["joined"] is False


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
