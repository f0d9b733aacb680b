"""Benchmark: an alert storm through the real intake — 100 alerts in one second, 1,000 in a minute.

    python -m bench.remediation_storm --storm 100 --flood 1000 --distinct 200

Processes, as deployed: a Temporal dev server (SQLite file), the API (``api.app``, uvicorn),
the Kubernetes API stand-in (tests/standins/kube_api.py, timing every write it stores) and
one worker in this process (the product's ``build_worker``, offline scorer, Kubernetes
executor). Alerts go in as an alarm integration sends them: ``POST /remediations`` with a
bearer token, from a sender in its own process (``--sender worker`` sends them from the
worker's process and event loop instead, as the bench did before 2026-11-24: the sender's
HTTP client then took a share of the thread being measured). Settings: approval from rung 2,
per-cluster rate limit and cooldown off (one stand-in cluster).

``--postgres`` puts the app database on a PostgreSQL (pgserver's embedded binaries, as the tests
and bench.replicas start it) instead of the SQLite file, whose one write lock every run's
write turn queues for; its server's CPU (its backends too) counts as "PostgreSQL".

``--workers N`` puts N - 1 more worker processes (``python -m worker``, as deployed) on the
queue beside this one; the stage table then covers the runs this process's worker took.

``baseline``  one alert alone (after two warm-up alerts a worker), healthy Deployment.
``storm``     N alerts, each on its own healthy Deployment, sent within one second. Latency is
              from the moment the bench sends the request to the moment the stand-in stores
              the first write to that Deployment. Every run resolves at rung 1; exactly-once:
              the writes the stand-in stored equal the distinct changes the runs made (written
              by them, or found already made by a retry whose first try's answer was lost),
              and no step's key is stamped on two stored writes.
``flood``     M alerts at an even pace over 60 s on ``--distinct`` Deployments whose pods never
              become ready (each fingerprint sent M / distinct times, shuffled). Every request
              must be answered (created or deduplicated), one run per fingerprint, one audit
              ``deduplicated`` row per repeat; each run restarts once (rung 1), fails to verify,
              and waits for approval of rung 2 — no write without it; its plan is the budget
              its score buys. Then a few are approved through the API: one scale write each.

Per-stage timestamps (activity interceptor and the workflow histories) show where the time
to the first action goes: intake answered, first workflow task started, scoring with the
first rung's checks (open_remediation, or the activities a check it could not decide takes:
permission, gates, checkpoint), the change activity's queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import psutil
import uvicorn
from sqlalchemy import event, func, select
from temporalio import activity
from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from ambient import temporal
from ambient.clients.kube import KubeClients
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.devstack import DevOptions, wait_for_temporal
from ambient.domain.users import UserCreate
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.runs import RemediationStatus
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import AuditRecord
from ambient.storage.users import UserRepository
from bench.devserver import dev_server_command
from bench.remediation import percentile, write_kubeconfig
from bench.replicas import applied_steps, step_key, steps
from tests.support.servers import free_port
from worker import build_worker

QUEUE = "bench-storm"
CLUSTER = "cls-bench001"
NAMESPACE = "shop"
BAD_IMAGE = "registry/web:broken"


# --- the stand-in, timing its writes -----------------------------------------------------


def serve_kube(port: int, healthy: int, failing: int) -> None:
    """Child process: the stand-in; ``GET /bench/writes`` lists (path, method, time, step key)
    stored."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.standins.kube_api import KubeApi

    api = KubeApi(failing_images={BAD_IMAGE})
    for index in range(healthy):
        name = f"ok-{index:04d}"
        api.add_deployment(NAMESPACE, name, "registry/web:v1", replicas=2)
        api.add_service(NAMESPACE, name, {"app": name})
    for index in range(failing):
        name = f"bad-{index:04d}"
        api.add_deployment(NAMESPACE, name, BAD_IMAGE, replicas=2)
        api.add_service(NAMESPACE, name, {"app": name})
    stored: list[tuple[str, str, float, str | None]] = []

    def on_write(call: Any) -> None:
        if not call.dry_run:
            stored.append((call.path, call.method, time.time(), step_key(call.body)))

    api.on_write = on_write

    async def writes(_: Any) -> JSONResponse:
        return JSONResponse(stored)

    app = api.app()
    app.router.routes.insert(0, Route("/bench/writes", writes))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


def serve_api(port: int) -> None:
    """Child process: the product's API with the settings in the environment."""
    from ambient.startup import loading

    with loading():  # as `ambient api` imports it: the collector off, then frozen
        from api.app import KEEP_ALIVE, create_app

    app = create_app()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
    )


async def send_all(
    api: httpx.AsyncClient, plan: list[tuple[float, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """POST each alert at its offset (s) from now: when it was sent, the answer, when it came."""
    base = time.monotonic()

    async def one(offset: float, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, base + offset - time.monotonic()))
        sent = time.time()
        try:
            answer = await api.post("/remediations", json={"alert": body, "mode": "execute"})
        except httpx.HTTPError as exc:
            return {"sent": sent, "error": f"{type(exc).__name__}: {exc}"}
        # 201 a new run, 200 an alert joined to its workload's live run (deduplicated).
        if answer.status_code not in (200, 201):
            return {"sent": sent, "error": f"intake answered {answer.status_code}: {answer.text}"}
        return {"sent": sent, "body": answer.json(), "answered": time.time()}

    return list(await asyncio.gather(*(one(offset, body) for offset, body in plan)))


def api_client(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
        timeout=120,
        limits=httpx.Limits(max_connections=200),
    )


def serve_sender(url: str, token: str) -> None:
    """Child process: one JSON plan a line on stdin, one JSON list of answers a line on stdout."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        async with api_client(url, token) as api:
            while line := await reader.readline():
                answers = await send_all(api, [(o, b) for o, b in json.loads(line)])
                sys.stdout.write(json.dumps(answers) + "\n")
                sys.stdout.flush()

    asyncio.run(serve())


class Sender:
    """Sends alerts from its own process, or through ``in_worker`` (a client on this loop)."""

    def __init__(self, url: str, token: str, in_worker: httpx.AsyncClient | None) -> None:
        self.url, self.token, self.in_worker = url, token, in_worker
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        if self.in_worker is None:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.remediation_storm",
                "--serve-sender",
                self.url,
                self.token,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 24,
            )

    async def send(self, plan: list[tuple[float, dict[str, Any]]]) -> list[dict[str, Any]]:
        if self.in_worker is not None:
            return await send_all(self.in_worker, plan)
        assert self.process is not None
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(plan) + "\n").encode())
        await self.process.stdin.drain()
        answers: list[dict[str, Any]] = json.loads(await self.process.stdout.readline())
        return answers

    async def stop(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            await self.process.wait()


def deployment_of(path: str) -> str:
    parts = path.strip("/").split("/")
    return parts[parts.index("deployments") + 1]


# --- stage timestamps -------------------------------------------------------------------


@dataclass
class Stages:
    """Wall-clock times per remediation id: activity starts and ends, by activity type."""

    start: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    end: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    scheduled: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))


class StageTimer(ClientInterceptor, Interceptor):
    """On the client, so the worker built from it times every activity."""

    def __init__(self, stages: Stages) -> None:
        self.stages = stages

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TimedActivity(next, self.stages)


class _TimedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, stages: Stages) -> None:
        super().__init__(next)
        self.stages = stages

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        rid, kind = info.workflow_id or "", info.activity_type
        self.stages.start[rid].setdefault(kind, time.time())
        if info.current_attempt_scheduled_time is not None:
            self.stages.scheduled[rid].setdefault(
                kind, info.current_attempt_scheduled_time.timestamp()
            )
        try:
            return await self.next.execute_activity(input)
        finally:
            self.stages.end[rid].setdefault(kind, time.time())


async def first_task_started(client: Client, rid: str) -> float | None:
    async for item in client.get_workflow_handle(rid).fetch_history_events():
        if item.HasField("workflow_task_started_event_attributes"):
            return item.event_time.ToDatetime().timestamp() + 0.0
    return None


# --- measuring --------------------------------------------------------------------------


def alert(workload: str, settle: int = 1) -> dict[str, Any]:
    return {
        "source": "cloud_monitor",
        "cluster_id": CLUSTER,
        "namespace": NAMESPACE,
        "workload": workload,
        "metric": "error_rate",
        "value": 0.2,
        "threshold": 0.05,
        "message": "5xx errors",
        "settle_seconds": settle,
    }


@dataclass
class Bench:
    api: httpx.AsyncClient
    kube: httpx.AsyncClient
    client: Client
    db: Database
    stages: Stages
    sender: Sender

    async def writes(self) -> list[tuple[str, str, float, str | None]]:
        return [tuple(w) for w in (await self.kube.get("/bench/writes")).json()]  # type: ignore[misc]

    async def status(self, rid: str) -> dict[str, Any]:
        # A run's status is a query its (loaded) worker answers: one that timed out (502) or
        # failed (500: the SDK's deadlock detector on a starved worker, "workflow didn't yield
        # within 2 second(s)") is asked again, a few seconds later, and said. The bench only
        # reads here; nothing is timed.
        for attempt in range(5):
            answer = await self.api.get(f"/remediations/{rid.split('/', 1)[1]}")
            if answer.status_code not in (500, 502):
                break
            print(f"status of {rid}: {answer.status_code} {answer.text[:300]}", flush=True)
            await asyncio.sleep(2 * (attempt + 1))
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    async def until(self, rids: list[str], states: set[str], within: float) -> dict[str, Any]:
        """Wait until every run is in one of ``states``, then read each run through the API.

        The state comes from the server's description (the run's search attribute): a query
        per run every few seconds would load the worker being measured, and time out on it.
        """
        deadline = time.monotonic() + within
        pending = set(rids)
        while pending:
            for rid in sorted(pending):
                described = await self.client.get_workflow_handle(rid).describe()
                if described.typed_search_attributes.get(temporal.STATE) in states:
                    pending.discard(rid)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not settled: {len(pending)} runs, e.g. {min(pending)}")
            await asyncio.sleep(2)
        return {rid: await self.status(rid) for rid in rids}

    async def first_actions(
        self, sent: dict[str, tuple[float, str]]
    ) -> tuple[list[float], dict[str, list[float]]]:
        """Latency to the first stored write per Deployment, and every write per Deployment."""
        by_workload: dict[str, list[float]] = defaultdict(list)
        for path, _, at, _key in await self.writes():
            by_workload[deployment_of(path)].append(at)
        latencies = [min(by_workload[w]) - t for w, (t, _) in sent.items() if by_workload[w]]
        return latencies, by_workload

    async def stage_table(
        self, sent: dict[str, tuple[float, str]], answered: dict[str, float]
    ) -> str:
        """p50/p95 of each stage's time after the alert was sent."""
        marks: dict[str, list[float]] = defaultdict(list)
        for workload, (t0, rid) in sent.items():
            marks["intake answered (workflow started)"].append(answered[workload] - t0)
            started = await first_task_started(self.client, rid)
            if started is not None:
                marks["first workflow task started"].append(started - t0)
            for kind, label in (
                ("open_remediation", "scoring to checkpoint done (open_remediation)"),
                ("check_remediation_permission", "permission done"),
                ("check_remediation_gates", "gates done"),
                ("take_remediation_checkpoint", "checkpoint read done"),
            ):
                if kind in self.stages.end[rid]:
                    marks[label].append(self.stages.end[rid][kind] - t0)
            if "open_remediation" in self.stages.start[rid]:
                marks["scoring started"].append(self.stages.start[rid]["open_remediation"] - t0)
            if "apply_remediation_step" in self.stages.scheduled[rid]:
                marks["change activity scheduled"].append(
                    self.stages.scheduled[rid]["apply_remediation_step"] - t0
                )
                marks["change activity started"].append(
                    self.stages.start[rid]["apply_remediation_step"] - t0
                )
        order = [
            "intake answered (workflow started)",
            "first workflow task started",
            "scoring started",
            "scoring to checkpoint done (open_remediation)",
            "permission done",
            "gates done",
            "checkpoint read done",
            "change activity scheduled",
            "change activity started",
        ]
        # Each activity's own time (start to end) and its wait for a slot (scheduled to start).
        for rid in (rid for _, rid in sent.values()):
            for kind, began in self.stages.start[rid].items():
                if kind in self.stages.end[rid]:
                    marks[f"  {kind}: run"].append(self.stages.end[rid][kind] - began)
                if kind in self.stages.scheduled[rid]:
                    marks[f"  {kind}: wait for a slot"].append(
                        began - self.stages.scheduled[rid][kind]
                    )
        order += sorted(label for label in marks if label.startswith("  "))
        lines = ["| stage (after the alert was sent) | p50 ms | p95 ms |", "|---|---:|---:|"]
        for label in order:
            if marks[label]:
                values = marks[label]
                lines.append(
                    f"| {label} | {1000 * statistics.median(values):.0f} | "
                    f"{1000 * percentile(values, 0.95):.0f} |"
                )
        return "\n".join(lines)


class Meter:
    """CPU seconds of each process of the stack, and the worker's database commits."""

    def __init__(self, pids: dict[str, int], db: Database) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.commits = 0

        def committed(_: Any) -> None:
            self.commits += 1

        event.listen(db.engine.sync_engine, "commit", committed)

    def busy(self) -> float:
        """CPU seconds of the whole stack so far."""
        return sum(v for k, v in self.read().items() if k != "commits")

    def trace(self, every: float = 0.25) -> list[tuple[float, float]]:
        """Sample (time, the stack's CPU) every ``every`` s, in a thread, until ``stop_trace``."""
        samples: list[tuple[float, float]] = []
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(every):
                samples.append((time.time(), self.busy()))

        samples.append((time.time(), self.busy()))
        threading.Thread(target=sample, daemon=True).start()
        return samples

    def stop_trace(self) -> None:
        self._stop.set()

    def read(self) -> dict[str, float]:
        cpu: dict[str, float] = {}
        for name, process in self.processes.items():
            times = process.cpu_times()
            # The Temporal CLI runs the server in a child process.
            cpu[name] = times.user + times.system + times.children_user + times.children_system
            if name == "PostgreSQL":  # its backends, one a connection, live as long as the pool's
                for child in process.children():
                    with contextlib.suppress(psutil.NoSuchProcess):
                        cpu[name] += sum(child.cpu_times()[:2])
        cpu["commits"] = float(self.commits)
        return cpu

    @staticmethod
    def per_alert(before: dict[str, float], after: dict[str, float], n: int) -> str:
        parts = [
            f"{name} {1000 * (after[name] - before[name]) / n:.1f} ms"
            for name in before
            if name != "commits"
        ]
        cpu = sum(after[k] - before[k] for k in before if k != "commits")
        commits = (after["commits"] - before["commits"]) / n
        return (
            f"CPU per alert, whole run: {1000 * cpu / n:.1f} ms ({', '.join(parts)}); "
            f"database commits per alert by the bench's worker: {commits:.1f}"
        )


def saturation(
    trace: list[tuple[float, float]],
    sent: dict[str, tuple[float, str]],
    writes: dict[str, list[float]],
) -> str:
    """How busy the machine was from the first alert sent to the 95th percentile first action.

    The stack's CPU in that window against what the machine's cores could give in it: near
    100 %, the first actions wait for CPU, and their latency is the work before them divided
    by the cores, whatever the order the work is done in.
    """

    def cpu_at(t: float) -> float:
        for (t0, c0), (t1, c1) in pairwise(trace):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1e-9)
        return trace[-1][1] if t > trace[-1][0] else trace[0][1]

    start = min(t for t, _ in sent.values())
    firsts = sorted(min(writes[w]) for w in sent if writes[w])
    end = firsts[max(0, -(-95 * len(firsts) // 100) - 1)]
    used = cpu_at(end) - cpu_at(start)
    cores = len(os.sched_getaffinity(0))
    done = sum(1 for t in firsts if t <= end)
    return (
        f"to the p95 first action ({1000 * (end - start):.0f} ms after the first alert was "
        f"sent): the stack used {used:.2f} s of CPU, {100 * used / (cores * (end - start)):.0f} % "
        f"of {cores} cores; {1000 * used / done:.1f} ms of CPU per alert acted on by then ({done})"
    )


async def storm(
    bench: Bench,
    first: int,
    n: int,
    spread: float,
    meter: Meter | None = None,
    trace_cpu: bool = False,
) -> dict[str, Any]:
    """``n`` alerts on healthy Deployments, sent within ``spread`` seconds."""
    before = meter.read() if meter else {}
    trace = meter.trace() if meter and trace_cpu else None
    sent: dict[str, tuple[float, str]] = {}
    answered: dict[str, float] = {}
    workloads = [f"ok-{first + index:04d}" for index in range(n)]
    answers = await bench.sender.send(
        [(index * spread / max(n, 1), alert(w)) for index, w in enumerate(workloads)]
    )
    for workload, answer in zip(workloads, answers, strict=True):
        if "error" in answer:
            raise RuntimeError(answer["error"])
        assert answer["body"]["created"], answer
        sent[workload] = (answer["sent"], answer["body"]["remediation_id"])
        answered[workload] = answer["answered"]
    # The results, not the API: polling a hundred runs would load the machine being measured.
    finals = await asyncio.wait_for(
        asyncio.gather(
            *(
                bench.client.get_workflow_handle(rid, result_type=RemediationStatus).result()
                for _, rid in sent.values()
            )
        ),
        timeout=900,
    )
    cpu = Meter.per_alert(before, meter.read(), n) if meter else ""
    latencies, writes = await bench.first_actions(sent)
    if trace is not None and meter is not None:
        meter.stop_trace()
        cpu += "\n" + saturation(trace, sent, writes)
    found = {a.key for s in finals for a in s.attempts if a.applied and a.already_applied}
    stamped = Counter(k for p, _, _, k in await bench.writes() if k and deployment_of(p) in sent)
    stored = sum(len(writes[w]) for w in sent)
    return {
        "n": n,
        "acted": len(latencies),
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "max": max(latencies),
        "resolved": sum(1 for s in finals if s.state == "resolved"),
        "exactly_once": exactly_once(applied_steps(finals), found, stamped, stored),
        "stages": await bench.stage_table(sent, answered),
        "cpu": cpu,
    }


def exactly_once(
    runs: list[tuple[str, list[str]]], found: set[str], stamped: Counter[str], stored: int
) -> str:
    """The writes stored against the distinct changes the runs made: each change (found already
    made by a retry too, its first try's write stored and its answer lost under load) is one
    write stored, stamped with its step's key; a key stamped on two writes is flagged."""
    made = {key for _, keys in runs for key in keys}
    check = steps(runs, stamped)
    said = (
        f"writes stored {stored}, changes made {len(made)} ({len(made - found)} written by "
        f"their run, {len(made & found)} found already made by a retry); {check.written} step "
        f"keys stamped, {check.lost} lost, {check.duplicated} duplicated"
    )
    if stored == len(made) and not check.lost and not check.duplicated:
        return f"exactly once: {said}"
    twice = ", ".join(sorted(k for k, n in stamped.items() if n > 1)[:5]) or "none"
    return f"NOT EXACTLY ONCE: {said}; keys stored twice: {twice}"


async def flood(
    bench: Bench, total: int, distinct: int, seconds: float, approve: int
) -> dict[str, Any]:
    """``total`` alerts over ``seconds`` on ``distinct`` failing Deployments, repeats shuffled."""
    order = [index % distinct for index in range(total)]
    random.Random(27).shuffle(order)
    async with bench.db.session() as session:
        dedup_before = await session.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.action == "deduplicated")
        )

    results = await bench.sender.send(
        [
            (slot * seconds / total, alert(f"bad-{index:04d}", settle=1))
            for slot, index in enumerate(order)
        ]
    )
    answers = [r["body"] for r in results if "body" in r]
    failures = [r["error"] for r in results if "error" in r]
    created = [a["remediation_id"] for a in answers if a["created"]]
    deduplicated = sum(1 for a in answers if a.get("deduplicated"))
    # How long a repeat waited for its answer (the join: the run's update, or its signal).
    joins = sorted(
        r["answered"] - r["sent"] for r in results if r.get("body", {}).get("deduplicated")
    )
    finals = await bench.until(sorted(set(created)), {"waiting_approval"}, 600)
    async with bench.db.session() as session:
        dedup_rows = (
            await session.scalar(
                select(func.count())
                .select_from(AuditRecord)
                .where(AuditRecord.action == "deduplicated")
            )
            or 0
        ) - (dedup_before or 0)
    _, writes = await bench.first_actions({})
    workloads = [f"bad-{i:04d}" for i in range(distinct)]
    writes_before = sum(len(writes[w]) for w in workloads)
    budget_ok = 0
    for status in finals.values():
        score = await bench.api.post(
            "/remediations/score", json={"alert": status["alert"], "mode": "execute"}
        )
        score.raise_for_status()
        buys = score.json()["budget"]
        needs = [s["attempt"] for s in status["plan"] if s["needs_approval"]]
        if status["budget"] == buys == len(status["plan"]) and needs and min(needs) == 2:
            budget_ok += 1
    # Approve rung 2 of a few: each gets exactly one more write (the scale).
    approved = sorted(finals)[:approve]
    for rid in approved:
        answer = await bench.api.post(
            f"/remediations/{rid.split('/', 1)[1]}/approval", json={"approve": True}
        )
        answer.raise_for_status()
    # Wait until each approved run has left rung 2 (its scale written and verified).
    deadline = time.monotonic() + 300
    while True:
        statuses = {rid: await bench.status(rid) for rid in approved}
        if all(
            any(a["rung"] == 2 and a["verified"] for a in s["attempts"]) for s in statuses.values()
        ):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("approved runs did not finish rung 2")
        await asyncio.sleep(1)
    _, writes = await bench.first_actions({})
    writes_after = sum(len(writes[w]) for w in workloads)
    return {
        "sent": total,
        "answered": len(answers),
        "failures": failures[:3],
        "distinct": distinct,
        "created": len(created),
        "runs": len(set(created)),
        "deduplicated": deduplicated,
        "repeat_answer_ms": {
            "p50": round(1000 * joins[len(joins) // 2]) if joins else None,
            "p95": round(1000 * joins[int(0.95 * (len(joins) - 1))]) if joins else None,
        },
        "dedup_audit": dedup_rows,
        "waiting_approval": sum(1 for s in finals.values() if s["state"] == "waiting_approval"),
        "writes_before_approval": writes_before,
        "budget_ok": budget_ok,
        "approved": len(approved),
        "writes_after_approval": writes_after,
    }


async def main(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="ambient-bench-storm-"))
    port, kube_port, api_port = free_port(), free_port(), free_port()
    # A warm-up alert for each worker (imports, connections), one alone, then the storm.
    warmups = 2 * args.workers
    healthy = args.storm + warmups + 1
    server = subprocess.Popen(dev_server_command(data, port))  # noqa: ASYNC220 - started once
    pg = None
    if args.postgres:
        import pgserver  # the embedded PostgreSQL (the dev extra), as the tests use it

        pg = pgserver.get_server(data / "pg", cleanup_mode="stop")
        socket_dir = parse_qs(urlparse(pg.get_uri()).query)["host"][0]
        os.environ["AMBIENT_DATABASE_URL"] = (
            f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
        )
    kube = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            "-m",
            "bench.remediation_storm",
            "--serve-kube",
            str(kube_port),
            str(healthy),
            str(args.distinct),
        ]
    )
    kubeconfig = write_kubeconfig(data, kube_port)
    env = {
        "AMBIENT_ENVIRONMENT": "test",
        "AMBIENT_DATA_DIR": str(data),
        "AMBIENT_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "AMBIENT_TEMPORAL_TASK_QUEUE": QUEUE,
        "AMBIENT_KUBECONFIG": str(kubeconfig),
        "AMBIENT_REMEDIATION_EXECUTOR": "kubernetes",
        "AMBIENT_REMEDIATION_APPROVAL_FROM_RUNG": "2",
        "AMBIENT_REMEDIATION_RATE_LIMIT_PER_HOUR": "0",
        "AMBIENT_REMEDIATION_CLUSTER_COOLDOWN_SECONDS": "0",
    }
    os.environ.update(env)
    api_proc: subprocess.Popen[bytes] | None = None
    extra: list[subprocess.Popen[bytes]] = []
    try:
        settings = Settings(metrics_port=None, _env_file=None)  # type: ignore[call-arg]
        opts = DevOptions(data, 0, port, 0, None, None)
        plain = await wait_for_temporal(settings, opts, time.monotonic() + 60)
        stages = Stages()
        config = plain.config()
        config["interceptors"] = [StageTimer(stages)]
        client = Client(**config)
        await upgrade_async(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            _, token = await UserRepository(session).create(
                UserCreate(name="oncall", rollback_permission="execute")  # type: ignore[arg-type]
            )
            await session.commit()
        api_proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "bench.remediation_storm", "--serve-api", str(api_port)]
        )
        api = api_client(f"http://127.0.0.1:{api_port}", token)
        sender = Sender(
            f"http://127.0.0.1:{api_port}", token, api if args.sender == "worker" else None
        )
        await sender.start()
        kube_http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{kube_port}", trust_env=False, timeout=30
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                await api.get("/health")
                await kube_http.get("/bench/writes")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        clients = KubeClients(kubeconfig, None)
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            deps = WorkerDeps(
                settings,
                db,
                build_channels(settings, db, http),
                http,
                executors={
                    "dry_run": DryRunExecutor(clients),
                    "kubernetes": KubernetesExecutor(clients),
                },
            )
            bench = Bench(api, kube_http, client, db, stages, sender)
            processes = {
                "worker" if sender.process else "worker (and the sender)": os.getpid(),
                "API": api_proc.pid,
                "Temporal": server.pid,
                "stand-in": kube.pid,
            }
            if sender.process:
                processes["sender"] = sender.process.pid
            if pg is not None and (pg_pid := pg.get_pid()) is not None:
                processes["PostgreSQL"] = pg_pid
            # More workers on the queue: the product's own `python -m worker` processes, each
            # with its own event loop, write turn and database connections (on this SQLite
            # file they meet at its lock). Stages are timed in this process's worker only.
            for index in range(args.workers - 1):
                extra.append(
                    subprocess.Popen(  # noqa: ASYNC220
                        [sys.executable, "-m", "worker"],
                        env={**os.environ, "AMBIENT_METRICS_PORT": str(free_port())},
                        stderr=(data / f"worker-{index + 2}.log").open("wb"),
                    )
                )
                processes[f"worker {index + 2}"] = extra[-1].pid
            meter = Meter(processes, db)
            async with build_worker(client, deps):
                print(
                    f"uptime: {os.getloadavg()}; sender: {args.sender}; workers: {args.workers}",
                    flush=True,
                )
                # Warm-up: imports, connections; alerts spread so each worker takes some.
                await storm(bench, args.storm + 1, warmups, 0.5)
                one = await storm(bench, args.storm, 1, 0, meter)
                print(f"baseline: one alert alone: {1000 * one['p50']:.0f} ms", flush=True)
                print(f"one alert alone: {one['cpu']}", flush=True)
                print(one["stages"], flush=True)
                many = (
                    await storm(bench, 0, args.storm, 1.0, meter, args.trace_cpu)
                    if args.storm
                    else None
                )
                if many:
                    print(
                        f"storm: {many['n']} alerts in 1 s: first action p50 "
                        f"{1000 * many['p50']:.0f} ms, p95 {1000 * many['p95']:.0f} ms, max "
                        f"{1000 * many['max']:.0f} ms (p95 {many['p95'] / one['p50']:.1f}x the "
                        f"one-alert baseline); acted {many['acted']}/{many['n']}, resolved "
                        f"{many['resolved']}/{many['n']}; {many['exactly_once']}",
                        flush=True,
                    )
                    print(f"storm: {many['cpu']}", flush=True)
                    print(many["stages"], flush=True)
                if args.flood:
                    flooded = await flood(bench, args.flood, args.distinct, args.seconds, 5)
                    print(f"flood: {flooded}", flush=True)
                print(f"uptime: {os.getloadavg()}", flush=True)
            await deps.channels.aclose()  # before the database closes, as the worker
        await sender.stop()
        await clients.aclose()
        await api.aclose()
        await kube_http.aclose()
        await db.close()
    finally:
        for proc in extra:
            proc.terminate()
            proc.wait(30)
        if api_proc is not None:
            api_proc.terminate()
        kube.terminate()
        server.terminate()
        server.wait(30)
        if pg is not None:
            pg.cleanup()
        shutil.rmtree(data, ignore_errors=True)  # ~11 MB a run (Temporal's and our database)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-kube":
        serve_kube(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-api":
        serve_api(int(sys.argv[2]))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-sender":
        serve_sender(sys.argv[2], sys.argv[3])
        sys.exit(0)
    # The worker in this process starts as `ambient worker` starts it (ambient.cli.loading):
    # what the imports made is frozen, so the collector does not scan it again during the
    # storm. Until 2026-11-27 it was not: two full collections of ~0.25 million objects in a
    # storm, ~140 ms of the event loop's CPU each, that the deployed worker does not make.
    gc.freeze()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--storm", type=int, default=100, help="alerts sent within one second")
    parser.add_argument("--flood", type=int, default=1000, help="alerts sent over --seconds")
    parser.add_argument("--distinct", type=int, default=200, help="fingerprints in the flood")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--trace-cpu",
        action="store_true",
        help="sample the stack's CPU every 0.25 s (a thread in the worker's process) and say "
        "how busy the machine was up to the storm's p95 first action",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="the app database on PostgreSQL, not SQLite"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes on the queue (this one + more)"
    )
    parser.add_argument(
        "--sender",
        choices=["process", "worker"],
        default="process",
        help="send the alerts from a process of their own, or from the worker's (as before)",
    )
    asyncio.run(main(parser.parse_args()))
