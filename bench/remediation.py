"""Benchmark: alert → first remediation action on the embedded stack, and 100 at once.

    python -m bench.remediation --sequential 50 --concurrent 100

A Temporal dev server (SQLite file) in a child process, the Kubernetes API stand-in
(tests/standins/kube_api.py) in another child process, and one worker in this process with
the offline scorer. Phases:

``sequential-dry_run``   alerts one after another, mode dry_run (the dry-run executor reads
                         the Deployment, its ReplicaSets, Services and ConfigMaps)
``sequential-execute``   the same in execute mode through the Kubernetes executor (a patch)
``concurrent-execute``   N alerts started at once, each on its own Deployment

Latency is from the call that hands the alert to ``RemediationService.start`` to the end of
the first ``apply`` of the executor (the first change, or the recorded dry-run patch). The
per-cluster rate limit and cooldown are switched off (one stand-in cluster); approval is
off; each Deployment is healthy, so rung 1 (restart) resolves after a 1 s settle time.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.registry import build_activities
from ambient.clients.kube import KubeClients
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.devstack import DevOptions, free_port, wait_for_temporal
from ambient.domain.users import UserCreate
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.ladder import (
    Checkpoint,
    RemediationExecutor,
    RolloutHealth,
    StepRequest,
    StepResult,
    WorkloadRef,
)
from ambient.remediation.runs import RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.settings import Environment, Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository
from bench.devserver import dev_server_command
from bench.remediation_floor import ACTED, RemediationFloorWorkflow, action, noop
from worker import build_worker
from workflows.registry import ALL_WORKFLOWS

QUEUE = "bench-remediation"
CLUSTER = "cls-bench001"
NAMESPACE = "shop"


class TimedExecutor:
    """Wraps an executor and notes when each remediation's first ``apply`` returned."""

    def __init__(self, inner: RemediationExecutor) -> None:
        self.inner = inner
        self.first_action: dict[str, float] = {}

    async def checkpoint(self, target: WorkloadRef) -> Checkpoint:
        return await self.inner.checkpoint(target)

    async def apply(self, step: StepRequest) -> StepResult:
        result = await self.inner.apply(step)
        self.first_action.setdefault(step.target.name, time.monotonic())
        return result

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth:
        return await self.inner.rollout_health(target)


def serve_kube(port: int, deployments: int) -> None:
    """Child process: the stand-in with ``deployments`` healthy Deployments."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.standins.kube_api import KubeApi

    api = KubeApi()
    for index in range(deployments):
        name = f"web-{index:04d}"
        api.add_deployment(NAMESPACE, name, "registry/web:v1", replicas=2)
        api.add_service(NAMESPACE, name, {"app": name})
    uvicorn.run(api.app(), host="127.0.0.1", port=port, log_level="error")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def alert(index: int) -> dict[str, Any]:
    return {
        "source": "bench",
        "cluster_id": CLUSTER,
        "namespace": NAMESPACE,
        "workload": f"web-{index:04d}",
        "metric": "error_rate",
        "value": 0.2,
        "threshold": 0.05,
        "message": "5xx errors",
        "settle_seconds": 1,
    }


def write_kubeconfig(data: Path, kube_port: int) -> Path:
    """A kubeconfig naming the bench's cluster at the Kubernetes stand-in on ``kube_port``."""
    kubeconfig = data / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": CLUSTER,
                "clusters": [
                    {"name": CLUSTER, "cluster": {"server": f"http://127.0.0.1:{kube_port}"}}
                ],
                "contexts": [{"name": CLUSTER, "context": {"cluster": CLUSTER, "user": "b"}}],
                "users": [{"name": "b", "user": {"token": "bench"}}],
            }
        )
    )
    return kubeconfig


async def phase(
    name: str,
    service: RemediationService,
    timed: TimedExecutor,
    indexes: list[int],
    mode: str,
    concurrent: bool,
) -> dict[str, Any]:
    started: dict[str, float] = {}
    rids: dict[str, str] = {}

    async def one(index: int) -> None:
        workload = f"web-{index:04d}"
        started[workload] = time.monotonic()
        result = await service.start("bench", alert(index), mode)  # type: ignore[arg-type]
        rids[workload] = result.remediation_id

    wall = time.monotonic()
    if concurrent:
        await asyncio.gather(*(one(i) for i in indexes))
    else:
        for index in indexes:
            await one(index)
            while f"web-{index:04d}" not in timed.first_action:  # noqa: ASYNC110 - a probe
                await asyncio.sleep(0.005)
    finals = await asyncio.wait_for(
        asyncio.gather(
            *(
                service.client.get_workflow_handle(rid, result_type=RemediationStatus).result()
                for rid in rids.values()
            )
        ),
        timeout=600,
    )
    elapsed = time.monotonic() - wall
    latencies = [timed.first_action[w] - started[w] for w in started if w in timed.first_action]
    resolved = sum(1 for f in finals if f.state == "resolved")
    return {
        "phase": name,
        "n": len(indexes),
        "acted": len(latencies),
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "max": max(latencies),
        "resolved": resolved,
        "wall": elapsed,
    }


async def main(sequential: int, concurrent: int, passthrough: bool = False) -> list[dict[str, Any]]:
    data = Path(tempfile.mkdtemp(prefix="ambient-bench-remediation-"))
    port, kube_port = free_port(), free_port()
    command = dev_server_command(data, port)
    total = 2 * sequential + concurrent + 1
    server = subprocess.Popen(command)  # noqa: ASYNC220 - long-lived children, started once
    kube = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "bench.remediation", "--serve-kube", str(kube_port), str(total)]
    )
    kubeconfig = write_kubeconfig(data, kube_port)
    settings = Settings(
        environment=Environment.TEST,
        data_dir=data,
        temporal_address=f"127.0.0.1:{port}",
        temporal_task_queue=QUEUE,
        metrics_port=None,
        max_concurrent_activities=200,
        kubeconfig=kubeconfig,
        remediation_executor="kubernetes",
        remediation_approval_from_rung=0,
        remediation_rate_limit_per_hour=0,
        remediation_cluster_cooldown_seconds=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    results: list[dict[str, Any]] = []
    try:
        opts = DevOptions(data, 0, port, 0, None, None)
        client = await wait_for_temporal(settings, opts, time.monotonic() + 60)
        for _ in range(100):
            try:
                async with httpx.AsyncClient(trust_env=False, timeout=1) as probe:
                    await probe.get(f"http://127.0.0.1:{kube_port}/apis/apps/v1/deployments")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        await upgrade_async(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            await UserRepository(session).create(
                UserCreate(name="bench", rollback_permission="execute")  # type: ignore[arg-type]
            )
            await session.commit()
        clients = KubeClients(kubeconfig, None)
        dry = TimedExecutor(DryRunExecutor(clients))
        kubernetes = TimedExecutor(KubernetesExecutor(clients))
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            deps = WorkerDeps(
                settings,
                db,
                build_channels(settings, db, http),
                http,
                executors={"dry_run": dry, "kubernetes": kubernetes},
            )
            service = RemediationService(client, settings, db)
            if not passthrough:
                worker = build_worker(
                    client,
                    deps,
                    task_queue=QUEUE,
                    extra_workflows=[RemediationFloorWorkflow],
                    extra_activities=[noop, action],
                )
            else:
                # Experiment: the sandbox reuses the host's workflow modules instead of
                # importing the whole `workflows` package again for every new run.
                worker = Worker(
                    client,
                    task_queue=QUEUE,
                    workflows=[*ALL_WORKFLOWS, RemediationFloorWorkflow],
                    activities=[*build_activities(deps), noop, action],
                    max_concurrent_activities=settings.max_concurrent_activities,
                    workflow_runner=SandboxedWorkflowRunner(
                        restrictions=SandboxRestrictions.default.with_passthrough_modules(
                            "workflows", "bench"
                        )
                    ),
                )
            async with worker:
                # One warm-up alert: imports, sandbox and connection set-up are not the metric.
                await phase("warm-up", service, dry, [total - 1], "dry_run", False)
                plan = [
                    ("sequential-dry_run", dry, list(range(sequential)), "dry_run", False),
                    (
                        "sequential-execute",
                        kubernetes,
                        list(range(sequential, 2 * sequential)),
                        "execute",
                        False,
                    ),
                    (
                        "concurrent-execute",
                        kubernetes,
                        list(range(2 * sequential, 2 * sequential + concurrent)),
                        "execute",
                        True,
                    ),
                ]
                for size, together in ((sequential, False), (concurrent, True)):
                    if size:
                        floor = await floor_phase(client, size, together)
                        results.append(floor)
                        print(row(floor), flush=True)
                for name, timed, indexes, mode, together in plan:
                    if not indexes:
                        continue
                    result = await phase(name, service, timed, indexes, mode, together)
                    results.append(result)
                    print(row(result), flush=True)
            await deps.channels.aclose()  # before the database closes, as the worker
        await clients.aclose()
        await db.close()
    finally:
        kube.terminate()
        server.terminate()
        server.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    return results


async def floor_phase(client: Any, n: int, concurrent: bool) -> dict[str, Any]:
    """Floor workflows, one after another or all at once, timed like the remediations."""
    begun: dict[str, float] = {}
    tag = "c" if concurrent else "s"

    async def one(index: int) -> Any:
        name = f"floor-{tag}-{index}"
        begun[name] = time.monotonic()
        return await client.start_workflow(
            RemediationFloorWorkflow.run, name, id=name, task_queue=QUEUE
        )

    wall = time.monotonic()
    if concurrent:
        handles = await asyncio.gather(*(one(i) for i in range(n)))
        await asyncio.gather(*(h.result() for h in handles))
    else:
        for index in range(n):
            await (await one(index)).result()
    latencies = [ACTED[name] - start for name, start in begun.items()]
    return {
        "phase": f"floor {'concurrent' if concurrent else 'sequential'} (same commands, no work)",
        "n": n,
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "max": max(latencies),
        "resolved": n,
        "wall": time.monotonic() - wall,
    }


HEADER = (
    "| phase | N | first action p50 ms | p95 ms | max ms | resolved | wall s |\n"
    "|---|---|---|---|---|---|---|"
)


def row(r: dict[str, Any]) -> str:
    return (
        f"| {r['phase']} | {r['n']} | {1000 * r['p50']:.0f} | {1000 * r['p95']:.0f} | "
        f"{1000 * r['max']:.0f} | {r['resolved']}/{r['n']} | {r['wall']:.1f} |"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-kube":
        serve_kube(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument(
        "--passthrough-workflows",
        action="store_true",
        help="experiment: pass the workflows package through the sandbox",
    )
    args = parser.parse_args()
    print(HEADER, flush=True)
    asyncio.run(main(args.sequential, args.concurrent, args.passthrough_workflows))
