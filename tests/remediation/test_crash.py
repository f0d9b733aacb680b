"""kill -9 of the worker between a patch reaching the API server and its activity completing.

The worker is a real process (`ambient worker`, the production entry point) running the graded
remediation against the Kubernetes API stand-in. The stand-in kills it the moment a rung's
patch is stored (the restart's, or the scale out's after the restart failed verification),
before the answer goes back, so the change never completes. A new worker process makes it
again: it must find the step key stamped on the deployment and change nothing a second time.

The dev server (real clock), not the time-skipping test server: the latter never hands the
dead worker's sticky workflow task to the new worker. The restart is the first rung, which
follows open_remediation as a local activity in the run's first workflow task: the retry comes
when the killed worker's task times out (10 s, this start's default; a minute as the product
starts runs), and the new worker runs the opening and the change again. A change made as a
regular activity (a later rung) is tried again once the killed attempt's start-to-close timeout,
the settings' step timeout (30 s by default, 10 s here), expires.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from lightkube.resources.apps_v1 import Deployment
from temporalio.testing import WorkflowEnvironment

from ambient.clients.kube import client_from_kubeconfig
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.remediation.alerts import Alert, remediation_id
from ambient.remediation.ladder import STEP_ANNOTATION, Rung
from ambient.remediation.runs import RemediationInput, RemediationStatus
from ambient.storage.audit import AuditRepository
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.remediation.support import HEALTHY, UNHEALTHY, alert, error_rate
from tests.standins.kube_api import ApiCall, KubeApi, kubeconfig
from tests.support.servers import serve
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import search_attributes

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
USER = "oncall"


def worker_env(
    deps: WorkerDeps, address: str, task_queue: str, kubeconfig_path: Path
) -> dict[str, str]:
    """The worker's settings, as an operator would give them: AMBIENT_* variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AMBIENT_", "OPENAI_", "TENCENTCLOUD_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        AMBIENT_ENVIRONMENT="test",
        AMBIENT_DATA_DIR=str(deps.settings.data_dir),
        # What the tests' messages are said in, as in-process workers say them (conftest).
        AMBIENT_DEFAULT_LANGUAGE=deps.settings.default_language.value,
        AMBIENT_DATABASE_URL=deps.settings.resolved_database_url,
        AMBIENT_TEMPORAL_ADDRESS=address,
        AMBIENT_TEMPORAL_TASK_QUEUE=task_queue,
        AMBIENT_METRICS_PORT="0",
        AMBIENT_KUBECONFIG=str(kubeconfig_path),
        AMBIENT_REMEDIATION_EXECUTOR="kubernetes",
        AMBIENT_REMEDIATION_SETTLE_SECONDS="0",
        AMBIENT_REMEDIATION_RATE_LIMIT_PER_HOUR="0",
        AMBIENT_REMEDIATION_CLUSTER_COOLDOWN_SECONDS="0",
    )
    return env


@contextmanager
def worker_process(env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`ambient worker` in its own process, output to ``log``; SIGTERM at the end if alive."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ambient.cli", "worker"],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def within(waited: Awaitable[T], seconds: float, what: str, api: KubeApi, logs: Path) -> T:
    """``waited``, or a failure that shows what the API server saw and what the workers said."""
    try:
        return await asyncio.wait_for(waited, timeout=seconds)
    except TimeoutError:
        calls = "\n".join(f"{c.method} {c.path} -> {c.status}" for c in api.calls)
        said = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs.glob("worker-*"))
        raise AssertionError(f"{what} within {seconds}s\n{calls}\n{said}") from None


def step_stamped(call: ApiCall) -> str | None:
    """The step key a Deployment merge patch stamps on it; None for any other call."""
    if call.kind != "deployments" or not isinstance(call.body, dict):
        return None
    annotations = call.body.get("metadata", {}).get("annotations", {})
    stamp: str | None = annotations.get(STEP_ANNOTATION)
    return stamp


def sent_without_version(call: ApiCall) -> dict[str, Any]:
    """A stamped patch as a retry that found its stamp rebuilds it: all but the resourceVersion
    it was sent with, which the retry cannot know."""
    return {**call.body, "metadata": {"annotations": call.body["metadata"]["annotations"]}}


async def remediated_through_a_kill(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    api: KubeApi,
    subject: Alert,
    kill_at: Callable[[ApiCall], bool],
    settings: dict[str, str] | None = None,
) -> RemediationStatus:
    """``subject`` remediated in execute mode by `ambient worker` processes against ``api``:
    the first is killed once the write ``kill_at`` picks is stored, before its answer goes
    back; a second one finishes the run."""
    async with deps.db.session() as session:
        user, _ = await UserRepository(session).create(UserCreate(name=USER))
        user.rollback_permission = "execute"
        await session.commit()

    killed = asyncio.Event()
    first: list[subprocess.Popen[bytes]] = []

    def kill_the_worker_once_the_patch_is_stored(call: ApiCall) -> None:
        if not killed.is_set() and kill_at(call):
            os.kill(first[0].pid, signal.SIGKILL)  # the answer never reaches the worker
            killed.set()

    api.on_write = kill_the_worker_once_the_patch_is_stored
    cluster = subject.cluster_id
    async with serve(api.app()) as base:
        config = tmp_path / "kubeconfig"
        config.write_text(yaml.safe_dump(kubeconfig({cluster: base})))
        task_queue = unique("crash")
        env = worker_env(deps, dev_env.client.service_client.config.target_host, task_queue, config)
        env["AMBIENT_REMEDIATION_STEP_TIMEOUT_SECONDS"] = "10"
        env["AMBIENT_FETCH_ALLOW_CIDRS"] = "127.0.0.1/32"  # the verify block's metric
        # A run that climbs to rung 3 (approval from rung 3, the default) is handed over in
        # seconds: a test that fails ends with what the run did, not a half-hour wait.
        env["AMBIENT_REMEDIATION_APPROVAL_TIMEOUT_MINUTES"] = "0.05"
        env.update(settings or {})
        with worker_process(env, tmp_path, tmp_path / "worker-1.log") as worker:
            first.append(worker)
            handle = await dev_env.client.start_workflow(
                GradedRemediationWorkflow.run,
                RemediationInput(alert=subject, user=USER, mode="execute"),
                id=f"{remediation_id(subject)}-{unique('crash')}",
                task_queue=task_queue,
                search_attributes=search_attributes(USER, cluster),
            )
            await within(killed.wait(), 120, "the patch never came", api, tmp_path)
            assert await asyncio.to_thread(worker.wait, 30) == -signal.SIGKILL
        # The permission revoked after the change was made: the run must not end "refused"
        # with its change in the cluster (an opening run again answers as its audit rows did;
        # a regular activity's retry reads no permission).
        async with deps.db.session() as session:
            user = await UserRepository(session).get(USER)
            assert user is not None
            user.rollback_permission = "none"
            await session.commit()
        with worker_process(env, tmp_path, tmp_path / "worker-2.log"):
            return await within(
                handle.result(), 300, "the restarted worker did not finish", api, tmp_path
            )


@pytest.mark.devserver
async def test_a_worker_killed_after_the_restart_patch_does_not_restart_the_deployment_twice(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    api = KubeApi()
    api.add_deployment("prod", "checkout", "registry/checkout:v1", replicas=2)
    subject = Alert(
        source="manual",
        cluster_id="crash-test",
        namespace="prod",
        workload="checkout",
        metric="error_rate",
        value=0.5,
        threshold=0.05,
        message="5xx errors on checkout",
        settle_seconds=0,
        labels={"tier": "critical"},
    )
    status = await remediated_through_a_kill(
        dev_env, deps, tmp_path, api, subject, lambda call: step_stamped(call) is not None
    )

    # One restart reached the API server: one write, one new revision.
    writes = api.writes()
    assert [(c.method, c.kind) for c in writes] == [("PATCH", "deployments")]
    assert sorted(api.revisions("prod", "checkout")) == [1, 2]
    assert status.state == "resolved"
    [attempt] = status.attempts
    assert attempt.rung is Rung.RESTART
    # The retried activity found its own stamp on the deployment.
    assert attempt.applied and attempt.already_applied
    # One checkpoint in the audit, read before the restart: the opening run again found it.
    async with deps.db.session() as session:
        saved = await AuditRepository(session).list(subject=status.run_key, action="checkpoint")
    assert [r.detail["revision"] for r in saved] == [1]
    stamp = api.deployments[("prod", "checkout")]["metadata"]["annotations"][STEP_ANNOTATION]
    assert stamp == attempt.key
    # Its audit row still shows the patch the killed attempt sent (all but the resourceVersion
    # it was sent with, which the retry cannot know): rebuilt from the stamped deployment.
    [write] = writes
    sent = sent_without_version(write)
    assert attempt.patch == {"deployment/prod/checkout": sent}
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key)
    [action] = [r for r in rows if r.action == "action"]
    assert action.detail["already_applied"] is True
    assert action.detail["patch"] == {"deployment/prod/checkout": sent}


@pytest.mark.devserver
async def test_a_worker_killed_after_the_scale_out_patch_does_not_scale_the_deployment_twice(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    # The scale out is rung 2: a regular activity in a later workflow task, not the run's first.
    api = KubeApi()
    api.add_deployment("prod", "checkout", "registry/checkout:v1", replicas=2)
    # The first reading (after the restart) is unhealthy, the second (after the scale out) not.
    async with error_rate(healthy_from=2) as (site, url):
        subject = alert(url, cluster_id="crash-test", settle_seconds=0)

        def scale_out_stored(call: ApiCall) -> bool:
            return step_stamped(call) is not None and "replicas" in call.body.get("spec", {})

        status = await remediated_through_a_kill(
            dev_env, deps, tmp_path, api, subject, scale_out_stored
        )

    # One write per rung reached the API server.
    writes = api.writes()
    assert [(c.method, c.kind) for c in writes] == [("PATCH", "deployments")] * 2
    # The restart did not clear the alert; the retried scale out found its own stamp on the
    # deployment, and the alert cleared after it.
    assert [(a.rung, a.applied, a.already_applied, a.resolved) for a in status.attempts] == [
        (Rung.RESTART, True, False, False),
        (Rung.SCALE_OUT, True, True, True),
    ]
    assert status.state == "resolved" and site.log == [UNHEALTHY, HEALTHY]
    restart, scale_out = status.attempts
    assert [step_stamped(c) for c in writes] == [restart.key, scale_out.key]
    assert sorted(api.revisions("prod", "checkout")) == [1, 2]  # the scale out made none
    # The count one scale out gives: 2 replicas doubled.
    deployment = api.deployments[("prod", "checkout")]
    assert deployment["metadata"]["annotations"][STEP_ANNOTATION] == scale_out.key
    assert deployment["spec"]["replicas"] == 4
    # Its audit row shows the patch the killed attempt sent, rebuilt from the deployment.
    sent = sent_without_version(writes[1])
    assert sent["spec"] == {"replicas": 4}
    assert scale_out.patch == {"deployment/prod/checkout": sent}
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key)
    actions = [r.detail for r in rows if r.action == "action"]
    assert [(a["rung"], a["already_applied"]) for a in actions] == [(1, False), (2, True)]
    assert actions[1]["patch"] == {"deployment/prod/checkout": sent}


def stamped_by(call: ApiCall) -> str | None:
    """The step key any write stamps on its object (a Deployment, Service, ConfigMap), by a
    merge patch or a JSON patch (a rollback's)."""
    if isinstance(call.body, list):
        path = "/metadata/annotations/" + STEP_ANNOTATION.replace("/", "~1")
        return next((str(op["value"]) for op in call.body if op.get("path") == path), None)
    if not isinstance(call.body, dict):
        return None
    stamp: str | None = call.body.get("metadata", {}).get("annotations", {}).get(STEP_ANNOTATION)
    return stamp


@pytest.mark.devserver
async def test_a_worker_killed_inside_the_full_rollback_writes_none_of_its_objects_twice(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Rung 5 writes more than one object: the Deployment back to the release before the
    incident, then the Service rung 4 isolated. The worker is killed once the Service write is
    stored, the Deployment's made before it: the retry writes neither again, and the run
    ends resolved with each object written once by the rung."""
    v1, v2 = "registry/checkout:v1", "registry/checkout:v2"
    api = KubeApi()
    api.add_configmap("prod", "checkout-env", {"MODE": "fast"})
    api.add_deployment("prod", "checkout", v1, replicas=2, configmaps=["checkout-env"])
    api.add_service("prod", "checkout", {"app": "checkout"})
    api.failing_images = {v2}
    async with serve(api.app()) as base:  # the bad release v2, as kubectl would ship it
        config = tmp_path / "setup-kubeconfig"
        config.write_text(yaml.safe_dump(kubeconfig({"crash-test": base})))
        client = client_from_kubeconfig(path=config, context="crash-test")
        shipped = {
            "spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": v2}]}}}
        }
        await client.patch(Deployment, "checkout", shipped, namespace="prod")
        await client.close()
    api.calls.clear()
    async with error_rate(healthy_from=5) as (site, url):
        # User-facing and critical: a score that buys the whole ladder.
        labels = {"tier": "critical", "user_facing": "true"}
        subject = alert(url, cluster_id="crash-test", settle_seconds=0, labels=labels)

        def full_rollbacks_service_stored(call: ApiCall) -> bool:
            return call.kind == "services" and (stamped_by(call) or "").endswith("#5")

        status = await remediated_through_a_kill(
            dev_env,
            deps,
            tmp_path,
            api,
            subject,
            full_rollbacks_service_stored,
            {"AMBIENT_REMEDIATION_APPROVAL_FROM_RUNG": "0"},
        )

    assert status.state == "resolved", status
    rungs = [(a.rung, a.applied) for a in status.attempts]
    assert rungs[-1] == (Rung.FULL_ROLLBACK, True), rungs
    assert status.attempts[-1].already_applied  # the retry found the killed attempt's writes
    by_rung5 = [
        (c.method, c.kind, c.path.rsplit("/", 1)[-1])
        for c in api.writes()
        if (stamped_by(c) or "").endswith("#5")
    ]
    # Each object the full rollback changed, written once, the killed attempt's writes kept.
    assert sorted(by_rung5) == [
        ("PATCH", "deployments", "checkout"),
        ("PATCH", "services", "checkout"),
    ], by_rung5
    deployment = api.deployments[("prod", "checkout")]
    assert [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]] == [v1]
    assert api.services[("prod", "checkout")]["spec"]["selector"] == {"app": "checkout"}
    assert site.log[-1] == HEALTHY
