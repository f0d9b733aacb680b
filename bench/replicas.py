"""Benchmark: two workers and two API replicas on one PostgreSQL app database, one worker killed.

    python -m bench.replicas --watches 5000 --interval 300 --remediations 100 --kill-after 900

One Temporal dev server, one PostgreSQL (pgserver's embedded binaries), ``ambient migrate``
once, then two ``ambient worker`` and two ``ambient api`` processes, all on that database and
that server. Watches and remediations are created through both APIs in turn (HTTP, a user's
token), as users would. ``--kill-after`` seconds after the last watch is created, one worker
gets SIGKILL; the run goes on ``--after`` seconds, then everything is counted from what the
stand-ins recorded, never from the product's own view:

- the page server stamps every fetch of every watch's page (and which edition it served):
  checks are the fetches, a *lost* check is a gap between two fetches of a page longer than
  the interval plus ``--bound``, a *duplicated* one a gap shorter than half an interval;
  schedule lag is each fetch against its page's fixed-rate grid (as bench.watches);
- each page changes edition every ``--change-every`` seconds (pages spread over that time):
  the changes a watch must report are the edition changes between its page's successive
  fetches; the webhook receiver counts what arrived (each change once by its key; a key
  posted twice is a duplicated delivery, a change with no post a lost one);
- the Kubernetes API stand-in counts the writes stamped with each remediation step's key:
  a step applied (the run's final status) with no stamped write is lost, a key written twice
  duplicated.

Lag before the kill: fetches in the ``--measure`` seconds before it. Lag recovery: the time
from the kill to the last fetch whose lag is 5 s or more.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from ambient.remediation.ladder import STEP_ANNOTATION
from ambient.remediation.runs import RemediationStatus
from bench.watches import percentile
from tests.standins.kube_api import KubeApi, kubeconfig
from tests.support.servers import free_port, polls_workflow_tasks, serve

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "replicas"
USER = "replicas"
CLUSTER = "replicas"
NAMESPACE = "prod"
RECOVERED_LAG = 5.0  # seconds: "the lag returns under 5 s"
# A new watch's grid starts this long after its baseline at most (half an interval if less;
# workflows/web_monitor.py spreads watches created together).
SPREAD = 60.0
FILLER = "<p>Steady paragraph about the service and its operations.</p>" * 60


# --- the stand-ins' record ---------------------------------------------------------------


@dataclass
class Recorder:
    """Watched pages that change edition on a clock, and a webhook receiver; both record.

    Page ``n`` changes edition every ``change_every`` seconds, its changes offset by
    ``n / pages`` of that period so that they spread over it. It answers 304 to its own
    edition's ETag, so an unchanged check costs what a revalidated page costs.
    """

    change_every: float
    pages: int
    start: float = field(default_factory=time.time)
    fetches: defaultdict[str, list[tuple[float, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    hooks: list[tuple[float, str, str]] = field(default_factory=list)  # (at, key, title)
    frozen_at: float = float("inf")  # no page changes after this (the measured run is over)

    def edition(self, n: int, at: float) -> int:
        offset = self.change_every * (n % self.pages) / self.pages
        return int((min(at, self.frozen_at) - self.start + offset) // self.change_every)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/w/{n:int}", self.page),
                Route("/hook", self.hook, methods=["POST"]),
                Route("/record", self.record),
                Route("/freeze", self.freeze, methods=["POST"]),
            ]
        )

    async def page(self, request: Request) -> Response:
        n: int = request.path_params["n"]
        now = time.time()
        edition = self.edition(n, now)
        self.fetches[request.url.path].append((now, edition))
        etag = f'"{n}-{edition}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag})
        body = f"<html><body><article><p>Edition {edition} of page {n}.</p>{FILLER}</article>"
        return Response(body + "</body></html>", media_type="text/html", headers={"etag": etag})

    async def hook(self, request: Request) -> Response:
        sent = await request.json()
        self.hooks.append((time.time(), str(sent["idempotency_key"]), str(sent["title"])))
        return Response(status_code=204)

    async def freeze(self, _: Request) -> Response:
        self.frozen_at = time.time()
        return Response(status_code=204)

    async def record(self, _: Request) -> Response:
        return JSONResponse({"fetches": self.fetches, "hooks": self.hooks})


def serve_recorder(port: int, change_every: float, pages: int) -> None:
    """Child process: the recorder on loopback (its CPU is not the bench's)."""
    uvicorn.run(Recorder(change_every, pages).app(), host="127.0.0.1", port=port, log_level="error")


# --- what the record says ----------------------------------------------------------------


def grid_lags(stamps: list[float], interval: float) -> list[tuple[float, float]]:
    """(fetch time, lag) of one page's fetches after its baseline, against the fixed-rate
    grid anchored where no fetch is early: anchor = min_j (t_j - j * interval)."""
    steady = sorted(stamps)[1:]
    if not steady:
        return []
    anchor = min(t - j * interval for j, t in enumerate(steady))
    return [(t, t - (anchor + j * interval)) for j, t in enumerate(steady)]


@dataclass
class Checks:
    fetches: int
    lost: list[float]  # when each gap longer than interval + bound ended
    duplicated: list[float]  # when each gap shorter than half an interval ended
    longest_gap: float
    lags: list[tuple[float, float]]  # (fetch time, lag), every page

    def counts(self, since: float = 0.0) -> str:
        """'lost / duplicated' of the gaps that ended at ``since`` or later."""
        return f"{sum(t >= since for t in self.lost)} / {sum(t >= since for t in self.duplicated)}"

    def lag(self, q: float, since: float, until: float) -> float:
        return percentile([lag for t, lag in self.lags if since <= t < until], q)

    def recovered(self, kill: float) -> float:
        """Seconds from the kill to the last fetch lagging 5 s or more (0: none did)."""
        late = [t for t, lag in self.lags if t >= kill and lag >= RECOVERED_LAG]
        return max(late) - kill if late else 0.0


def checks(
    fetches: dict[str, list[tuple[float, int]]], interval: float, bound: float, until: float
) -> Checks:
    """The checks of every page up to ``until`` (when the watches were stopped): a page not
    fetched in its last interval + bound before then lost its last checks too. The first gap,
    from the baseline to the grid's first check, may be longer by the grid's documented delay
    (``SPREAD``)."""
    lost: list[float] = []
    duplicated: list[float] = []
    longest = 0.0
    lags: list[tuple[float, float]] = []
    for stamps in fetches.values():
        times = sorted(t for t, _ in stamps if t <= until)
        for n, (a, b) in enumerate(itertools.pairwise(times)):
            gap = b - a
            longest = max(longest, gap)
            if gap > interval + bound + (min(interval / 2, SPREAD) if n == 0 else 0):
                lost.append(b)
            if gap < interval / 2:
                duplicated.append(b)
        if times and until - times[-1] > interval + bound:
            lost.append(until)
        lags += grid_lags(times, interval)
    total = sum(1 for s in fetches.values() for t, _ in s if t <= until)
    return Checks(total, lost, duplicated, longest, lags)


@dataclass
class Deliveries:
    changes: int  # edition changes between successive fetches of each page
    delivered: int  # distinct keys that arrived
    lost: int  # changes of a page beyond the distinct keys that arrived for it
    duplicated: int  # posts of a key already received, and keys beyond a page's changes


def deliveries(
    fetches: dict[str, list[tuple[float, int]]], hooks: list[tuple[float, str, str]], base: str
) -> Deliveries:
    by_title: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for _, key, title in hooks:
        if title.startswith("Changed: "):  # a watch's other messages (failing, ...) are not changes
            by_title[title][key] += 1
    changes = delivered = lost = duplicated = 0
    for path, stamps in fetches.items():
        editions = [edition for _, edition in sorted(stamps)]
        expected = sum(a != b for a, b in itertools.pairwise(editions))
        keys = by_title.pop(f"Changed: {base}{path}", Counter())
        changes += expected
        delivered += len(keys)
        lost += max(0, expected - len(keys))
        duplicated += sum(n - 1 for n in keys.values()) + max(0, len(keys) - expected)
    # Posts for a page never fetched: reported changes that never were.
    duplicated += sum(sum(keys.values()) for keys in by_title.values())
    return Deliveries(changes, delivered, lost, duplicated)


@dataclass
class Steps:
    applied: int  # steps the runs' final statuses say were applied
    written: int  # distinct step keys stamped at the Kubernetes stand-in
    lost: int
    duplicated: int
    unfinished: int  # runs that did not end resolved


def step_key(body: Any) -> str | None:
    """The step key a write to the stand-in was stamped with (None: no step's)."""
    body = body if isinstance(body, dict) else {}
    annotations = body.get("metadata", {}).get("annotations") or {}
    spec = body.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations")
    key = annotations.get(STEP_ANNOTATION) or (spec or {}).get(STEP_ANNOTATION)
    return str(key) if key else None


def step_writes(api: KubeApi) -> Counter[str]:
    """Writes stamped with a step key at the stand-in, by key."""
    return Counter(key for call in api.writes() if (key := step_key(call.body)))


def applied_steps(finals: list[RemediationStatus]) -> list[tuple[str, list[str]]]:
    """Each run's final state and the keys of the steps it applied."""
    return [(f.state, [a.key for a in f.attempts if a.applied]) for f in finals]


def steps(runs: list[tuple[str, list[str]]], writes: Counter[str]) -> Steps:
    applied = [key for _, keys in runs for key in keys]
    return Steps(
        applied=len(applied),
        written=len(writes),
        lost=sum(1 for key in applied if key not in writes),
        duplicated=sum(n - 1 for n in writes.values()) + len(set(writes) - set(applied)),
        unfinished=sum(1 for state, _ in runs if state != "resolved"),
    )


# --- the processes -----------------------------------------------------------------------


def cluster_env(
    database_url: str,
    temporal_address: str,
    data_dir: Path,
    kubeconfig_path: Path,
    queue: str = QUEUE,
) -> dict[str, str]:
    """What an operator sets on every worker and API process: the same database, server and
    task queue (AMBIENT_* variables only)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AMBIENT_", "OPENAI_", "TENCENTCLOUD_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        AMBIENT_ENVIRONMENT="test",
        AMBIENT_DATA_DIR=str(data_dir),
        AMBIENT_DATABASE_URL=database_url,
        AMBIENT_TEMPORAL_ADDRESS=temporal_address,
        AMBIENT_TEMPORAL_TASK_QUEUE=queue,
        AMBIENT_METRICS_PORT="0",
        AMBIENT_FETCH_ALLOW_CIDRS="127.0.0.1/32",  # the pages and the webhook are on loopback
        AMBIENT_KUBECONFIG=str(kubeconfig_path),
        AMBIENT_REMEDIATION_EXECUTOR="kubernetes",
        AMBIENT_REMEDIATION_RATE_LIMIT_PER_HOUR="0",
        AMBIENT_REMEDIATION_CLUSTER_COOLDOWN_SECONDS="0",
    )
    return env


def ambient(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``ambient ARGS`` in its own process, output to ``log``."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "ambient.cli", *args],
            env=env,
            cwd=log.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def healthy(url: str, http: httpx.AsyncClient) -> bool:
    """Whether the API at ``url`` answers its health check (asked with one client for a whole
    wait: a client made afresh loads the CA bundle, ~50 ms of CPU, at every ask)."""
    try:
        return (await http.get(f"{url}/health")).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Cluster:
    queue: str
    workers: list[subprocess.Popen[bytes]]
    apis: list[str]  # base URLs
    processes: list[subprocess.Popen[bytes]]


@contextmanager
def started(env: dict[str, str], logs: Path, workers: int, apis: int) -> Iterator[Cluster]:
    """``ambient migrate`` once, then the workers and the API replicas; all stopped on exit."""
    migrate = subprocess.run(
        [sys.executable, "-m", "ambient.cli", "migrate"], env=env, capture_output=True, check=False
    )
    if migrate.returncode:
        raise RuntimeError(f"ambient migrate failed: {migrate.stdout!r} {migrate.stderr!r}")
    cluster = Cluster(env["AMBIENT_TEMPORAL_TASK_QUEUE"], [], [], [])
    try:
        for i in range(workers):
            cluster.workers.append(ambient(env, logs / f"worker-{i + 1}.log", "worker"))
        for i in range(apis):
            port = free_port()
            process = ambient(env, logs / f"api-{i + 1}.log", "api", "--port", str(port))
            cluster.processes.append(process)
            cluster.apis.append(f"http://127.0.0.1:{port}")
        cluster.processes += cluster.workers
        yield cluster
    finally:
        for process in cluster.processes:
            stop(process)


async def ready(client: Client, cluster: Cluster, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    for process in cluster.workers:
        while not await polls_workflow_tasks(client, cluster.queue, process.pid):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {process.pid} is not polling")
            await asyncio.sleep(0.5)
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        for url in cluster.apis:
            while not await healthy(url, http):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"API {url} is not healthy")
                await asyncio.sleep(0.5)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


# --- through the APIs --------------------------------------------------------------------


def watch_body(page: str, hook: str, interval: float) -> dict[str, Any]:
    return {
        "type": "web_monitor",
        "config": {
            "urls": [page],
            "check_interval_minutes": interval / 60,
            "targets": [{"type": "webhook", "target": hook}],
        },
    }


def alert(index: int, settle: int) -> dict[str, Any]:
    return {
        "source": "bench",
        "cluster_id": CLUSTER,
        "namespace": NAMESPACE,
        "workload": f"web-{index:04d}",
        "metric": "error_rate",
        "value": 0.5,
        "threshold": 0.05,
        "message": "5xx errors",
        "settle_seconds": settle,
        "labels": {"tier": "critical"},
    }


def kube_standin(remediations: int) -> KubeApi:
    api = KubeApi()
    for index in range(remediations):
        api.add_deployment(NAMESPACE, f"web-{index:04d}", "registry/web:v1", replicas=2)
    return api


async def create_watches(
    apis: list[httpx.AsyncClient], pages: list[str], hook: str, interval: float, concurrency: int
) -> list[str]:
    """One watch per page, through the APIs in turn; their task ids."""
    gate = asyncio.Semaphore(concurrency)
    began = time.monotonic()

    async def one(i: int, page: str) -> str:
        async with gate:
            if i and i % 500 == 0:
                print(f"  {i} watches in {time.monotonic() - began:.0f} s", flush=True)
            for _attempt in range(5):
                answer = await apis[i % len(apis)].post(
                    "/tasks", json=watch_body(page, hook, interval)
                )
                if answer.status_code in (200, 201):  # 200: a retry found the one it made
                    return str(answer.json()["task_id"])
                if answer.status_code < 500:
                    raise RuntimeError(f"creating a watch: {answer.status_code} {answer.text}")
            raise RuntimeError(f"creating a watch: {answer.status_code} {answer.text}")

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(pages))))


async def start_remediation(api: httpx.AsyncClient, index: int, settle: int) -> str:
    answer = await api.post(
        "/remediations", json={"alert": alert(index, settle), "mode": "execute"}
    )
    if answer.status_code not in (200, 201):  # 200: joined a live run of its workload
        raise RuntimeError(f"starting a remediation: {answer.status_code} {answer.text}")
    return str(answer.json()["remediation_id"])


@asynccontextmanager
async def api_clients(urls: list[str], token: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    headers = {"Authorization": f"Bearer {token}"}
    clients = [
        httpx.AsyncClient(base_url=u, headers=headers, trust_env=False, timeout=120) for u in urls
    ]
    try:
        yield clients
    finally:
        for c in clients:
            await c.aclose()


async def stop_watches(apis: list[httpx.AsyncClient], ids: list[str], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, task: str) -> None:
        async with gate:
            await apis[i % len(apis)].delete(f"/tasks/{task}")

    await asyncio.gather(*(one(i, t) for i, t in enumerate(ids)), return_exceptions=True)


async def finals(client: Client, ids: list[str], seconds: float) -> list[RemediationStatus]:
    return list(
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    client.get_workflow_handle(i, result_type=RemediationStatus).result()
                    for i in ids
                )
            ),
            seconds,
        )
    )


# --- the bench ---------------------------------------------------------------------------


def kubeconfig_file(folder: Path, url: str) -> Path:
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({CLUSTER: url})))
    return path


async def main(args: argparse.Namespace) -> None:
    import pgserver  # the embedded PostgreSQL (the dev extra), as the tests use it

    from ambient.devstack import DevOptions, wait_for_temporal
    from ambient.domain.users import UserCreate
    from ambient.settings import Environment, Settings
    from ambient.storage import Database
    from ambient.storage.users import UserRepository
    from bench.devserver import dev_server_command

    data = Path(tempfile.mkdtemp(prefix="ambient-bench-replicas-"))
    port, site_port = free_port(), free_port()
    temporal_log = (data / "temporal.log").open("wb")
    command = dev_server_command(data, port)
    server = subprocess.Popen(command, stdout=temporal_log, stderr=temporal_log)  # noqa: ASYNC220
    site = subprocess.Popen(  # noqa: ASYNC220 - long-lived children, started once
        [
            *(sys.executable, "-m", "bench.replicas", "--serve-site", str(site_port)),
            *("--change-every", str(args.change_every), "--watches", str(args.watches)),
        ]
    )
    pg = pgserver.get_server(data / "pg", cleanup_mode="stop")
    socket_dir = parse_qs(urlparse(pg.get_uri()).query)["host"][0]
    database_url = f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
    kube = kube_standin(args.remediations)
    try:
        settings = Settings(
            environment=Environment.TEST,
            data_dir=data,
            temporal_address=f"127.0.0.1:{port}",
            _env_file=None,  # type: ignore[call-arg]
        )
        client = await wait_for_temporal(
            settings, DevOptions(data, 0, port, 0, None, None), time.monotonic() + 60
        )
        async with serve(kube.app()) as kube_url:
            env = cluster_env(
                database_url, settings.temporal_address, data, kubeconfig_file(data, kube_url)
            )
            if args.dead_after:
                env["AMBIENT_WORKER_DEAD_AFTER_SECONDS"] = str(args.dead_after)
            with started(env, data, args.workers, args.apis) as cluster:
                await ready(client, cluster)
                db = Database(database_url)
                async with db.session() as session:
                    user, token = await UserRepository(session).create(UserCreate(name=USER))
                    user.rollback_permission = "execute"
                    await session.commit()
                await db.close()
                args.data = str(data)
                await run(args, client, cluster, token, kube, f"http://127.0.0.1:{site_port}")
    finally:
        site.terminate()
        server.terminate()
        server.wait(30)
        pg.cleanup()
        temporal_log.close()
        shutil.rmtree(data, ignore_errors=True)  # Temporal's file and PostgreSQL's data


async def run(
    args: argparse.Namespace,
    client: Client,
    cluster: Cluster,
    token: str,
    kube: KubeApi,
    site_url: str,
) -> None:
    interval = args.interval
    pages = [f"{site_url}/w/{n}" for n in range(args.watches)]
    async with (
        api_clients(cluster.apis, token) as apis,
        httpx.AsyncClient(base_url=site_url, trust_env=False, timeout=300) as site,
    ):
        began = time.monotonic()
        ids = await create_watches(apis, pages, f"{site_url}/hook", interval, args.concurrency)
        print(
            f"created {len(ids)} watches through {len(apis)} APIs in "
            f"{time.monotonic() - began:.0f} s; load {load()}",
            flush=True,
        )
        # Remediations spread over the minute around the kill, so steps are in flight then.
        spread = 60.0
        kill_at = time.monotonic() + args.kill_after
        rids: list[str] = []

        async def remediate() -> None:
            await asyncio.sleep(max(0.0, kill_at - spread / 2 - time.monotonic()))
            for index in range(args.remediations):
                api = apis[index % len(apis)]
                rids.append(await start_remediation(api, index, args.settle))
                await asyncio.sleep(spread / max(1, args.remediations))

        remediating = asyncio.create_task(remediate())
        await asyncio.sleep(max(0.0, kill_at - time.monotonic()))
        killed = time.time()
        kill(cluster.workers[0])
        print(f"killed worker {cluster.workers[0].pid} (SIGKILL); load {load()}", flush=True)
        await remediating
        await asyncio.sleep(args.after)
        ended = time.time()
        # The pages stop changing, so the changes to count end here; the watches go on (the
        # stack is thrown away after), and the deliveries of the last changes arrive.
        await site.post("/freeze")
        print(f"measured; load {load()}", flush=True)
        done = await finals(client, rids, 600)
        record = await settled(site, site_url)
    # The raw record beside the processes' logs, to look into a figure after the run.
    saved = Path(args.data) / "record.json"
    saved.write_text(json.dumps({"killed": killed, "ended": ended, **record}))
    print(f"record and logs: {saved.parent}", flush=True)
    report(args, record, done, step_writes(kube), killed, ended, site_url)


async def settled(site: httpx.AsyncClient, site_url: str, seconds: float = 60) -> dict[str, Any]:
    """The stand-in's record once the deliveries of the last checks have arrived (a stop
    hands back within a second; a delivery still running finishes after it), or after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        record: dict[str, Any] = (await site.get("/record")).json()
        told = deliveries(record["fetches"], record["hooks"], site_url)
        if told.lost == 0 or time.monotonic() > deadline:
            return record
        await asyncio.sleep(1)


def report(
    args: argparse.Namespace,
    record: dict[str, Any],
    done: list[RemediationStatus],
    writes: Counter[str],
    killed: float,
    ended: float,
    site_url: str,
) -> None:
    fetches = {p: [(t, e) for t, e in s] for p, s in record["fetches"].items()}
    hooks = [(t, k, title) for t, k, title in record["hooks"]]
    found = checks(fetches, args.interval, args.bound, ended)
    told = deliveries(fetches, hooks, site_url)
    stepped = steps(applied_steps(done), writes)
    before = (killed - args.measure, killed)
    back = found.recovered(killed)
    print(
        "\n| watches | interval s | workers → after kill | APIs | checks | lag p50 s before | "
        "lag p95 s before | lag back < 5 s after kill | checks lost / duplicated (after kill) | "
        "longest gap s | changes | deliveries lost / duplicated | remediations | "
        "steps applied | steps lost / duplicated | runs not resolved |\n" + "|" + "---|" * 16
    )
    print(
        f"| {args.watches} | {args.interval:g} | {args.workers} → {args.workers - 1} | "
        f"{args.apis} | {found.fetches} | {found.lag(0.5, *before):.2f} | "
        f"{found.lag(0.95, *before):.2f} | {back:.0f} s | "
        f"{found.counts()} ({found.counts(killed)}) | {found.longest_gap:.0f} | "
        f"{told.changes} | {told.lost} / {told.duplicated} | "
        f"{len(done)} | {stepped.applied} | {stepped.lost} / {stepped.duplicated} | "
        f"{stepped.unfinished} |"
    )
    after = (killed + back, ended)
    print(
        f"\nlag after recovery: p50 {found.lag(0.5, *after):.2f} s, "
        f"p95 {found.lag(0.95, *after):.2f} s; delivered {told.delivered} of {told.changes} "
        f"changes; {stepped.written} step keys written; load {load()}"
    )


def recount(runs: list[Path], interval: float, bound: float) -> None:
    """The checks' figures of finished runs, from the record each saved beside its logs."""
    print("| run | checks | lag back < 5 s after kill | checks lost / duplicated (after kill) |")
    print("|---|---|---|---|")
    for run in runs:
        saved = json.loads((run / "record.json").read_text())
        fetches = {page: [(t, e) for t, e in stamps] for page, stamps in saved["fetches"].items()}
        found = checks(fetches, interval, bound, saved["ended"])
        back = found.recovered(saved["killed"])
        counts = f"{found.counts()} ({found.counts(saved['killed'])})"
        print(f"| {run.name} | {found.fetches} | {back:.0f} s | {counts} |")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=300.0, help="seconds, at least 60")
    parser.add_argument("--remediations", type=int, default=100)
    parser.add_argument("--kill-after", type=float, default=600.0, help="seconds after creation")
    parser.add_argument("--after", type=float, default=300.0, help="seconds run after the kill")
    parser.add_argument("--measure", type=float, default=300.0, help="lag window before the kill")
    parser.add_argument("--bound", type=float, default=60.0, help="a check this late is lost")
    parser.add_argument("--change-every", type=float, default=900.0, help="page edition period")
    parser.add_argument("--settle", type=int, default=20, help="remediation settle seconds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16, help="API requests at once")
    parser.add_argument(
        "--dead-after", type=int, default=0, help="AMBIENT_WORKER_DEAD_AFTER_SECONDS (0: default)"
    )
    parser.add_argument("--serve-site", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--recount", type=Path, nargs="+", help="count the checks of runs' saved records again"
    )
    args = parser.parse_args()
    if args.serve_site:
        serve_recorder(args.serve_site, args.change_every, args.watches)
    elif args.recount:
        recount(args.recount, args.interval, args.bound)
    else:
        if args.interval < 60:
            parser.error("--interval: check_interval_minutes is at least 1 (60 s)")
        print(f"`python -m bench.replicas {shlex.join(sys.argv[1:])}`; load {load()}\n", flush=True)
        asyncio.run(main(args))
