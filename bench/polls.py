"""Worker-side CPU of web-monitor polls, without Temporal: the check loop alone.

    python -m bench.polls --n 200 --kind page --seconds 20 --interval 2

N `poll_pages` activities (in an `ActivityEnvironment`, the real activity code) against the
bench page server in its own process: ``page`` answers 304 after the first fetch,
``same`` sends the same body without validators (unchanged by hash), ``changing`` sends a
new ~5 KB page on every fetch (text, diff, snapshot, event, inbox message). ``--keywords``
gives every watch that keyword filter ("update" hits every changing page's new headlines).
Each watch first takes its baseline (not measured); then every watch polls for ``--seconds``
at ``--interval``. CPU per check = process CPU over the polls / checks. The
Temporal server and the hand-backs are not in it: `bench/watches.py` measures the whole.

``--ports N --tls --idle 30 120`` serves HTTPS on N ports (watch i on port i % N: with N = the
watches, every watch has a connection of its own, as with watches of different hosts) and
runs the polls once per page-client idle keep-alive, printing the new connections per check
beside the CPU: an idle limit shorter than the interval pays a TCP and TLS handshake per check.
``--clients MODULE ...`` runs the polls once per page-client module (a ``PageClient`` of the
same interface), each in the same run: ``git show REV:ambient/clients/http1.py > old_http1.py``
and ``--clients old_http1 ambient.clients.http1`` compares a former client with the current one.
``--profile FILE`` writes a cProfile (thread CPU time) of the event loop over the polls (the
text extraction runs in a worker thread and is not in it; bench/extract.py measures it).
``--site-keep-alive`` is how long the page server keeps an idle connection (it closes first
if it keeps it less than the interval, whatever the client does).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.polling import PagePoller
from ambient.clients.http1 import IDLE_SECONDS, PageClient
from ambient.clients.notify.registry import build_channels
from ambient.clients.web import WebFetcher
from ambient.settings import Environment, Settings
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.notification_spec import notification_targets
from ambient.watches.polling import PollRequest, PollResult
from bench.certs import certificate
from bench.stack import bench_database

PATHS = {"page": "page", "same": "same", "changing": "changing"}


async def main(
    n: int,
    kind: str,
    seconds: float,
    interval: float,
    *,
    ports: int,
    tls: bool,
    idles: list[float],
    site_keep_alive: float,
    clients: list[str],
    keywords: list[str],
    profile: str | None,
) -> None:
    data = Path(tempfile.mkdtemp(prefix="ambient-polls-"))
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(ports)]
    site_ports = [listener.getsockname()[1] for listener in listeners]
    fds = [listener.fileno() for listener in listeners]
    command = [sys.executable, "-m", "bench.site", "0", "--fds", ",".join(map(str, fds))]
    command += ["--keep-alive", str(site_keep_alive)]
    client_tls: ssl.SSLContext | None = None
    if tls:
        cert, key = certificate("localhost", data, ips=("127.0.0.1",))
        command += ["--tls", str(cert), str(key)]
        client_tls = ssl.create_default_context(cafile=str(cert))
    site = subprocess.Popen(command, pass_fds=fds)  # noqa: ASYNC220 - one child, started once
    for listener in listeners:
        listener.close()  # the site has its own copies
    scheme = "https" if tls else "http"
    settings = Settings(
        environment=Environment.TEST,
        data_dir=data,
        fetch_allow_cidrs=["127.0.0.1/32"],
        metrics_port=None,
        _env_file=None,  # type: ignore[call-arg]
    )
    db = await bench_database(settings)
    try:
        verify: ssl.SSLContext | bool = client_tls or True
        async with httpx.AsyncClient(trust_env=False, timeout=30, verify=verify) as http:
            for _ in range(100):
                try:
                    await http.get(f"{scheme}://127.0.0.1:{site_ports[0]}/stats")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            channels = build_channels(settings, db, http)
            notifier = NotifyActivities(db, channels)
            for module, idle in [(module, idle) for module in clients for idle in idles]:
                client_class: type[PageClient] = importlib.import_module(module).PageClient
                pages = client_class(ssl_context=client_tls, idle_seconds=idle)
                fetcher = WebFetcher(pages, allow_cidrs=["127.0.0.1/32"])
                poller = PagePoller(db, fetcher, notifier)

                async def poll(i: int, before: PollResult | None, poller: PagePoller) -> PollResult:
                    url = f"{scheme}://127.0.0.1:{site_ports[i % ports]}/{PATHS[kind]}/{i}"
                    config = WebMonitorConfig.model_validate(
                        {"urls": [url], "check_interval_minutes": 1, "keywords": keywords}
                    )
                    request = PollRequest(
                        user="bench",
                        task=f"bench-poll/{i}",
                        workflow_id=f"bench-poll/{i}",
                        life="bench",
                        config=config,
                        targets=notification_targets(None, []),
                        urls=before.urls if before else {},
                        seq=before.seq if before else 0,
                        first_check_in=0.0 if before is None else i * interval / n,
                        interval_seconds=interval,
                        window_seconds=seconds,
                        first_only=before is None,
                    )
                    return await ActivityEnvironment().run(poller.poll_pages, request)

                baselines = await asyncio.gather(*(poll(i, None, poller) for i in range(n)))
                opened = pages.opened
                profiler = cProfile.Profile(time.thread_time) if profile else None
                c0, t0 = time.process_time(), time.monotonic()
                if profiler is not None:
                    profiler.enable()
                results = await asyncio.gather(*(poll(i, baselines[i], poller) for i in range(n)))
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(f"{profile}.{module}.{idle:g}")
                c1, t1 = time.process_time(), time.monotonic()
                opened = pages.opened - opened
                await fetcher.aclose()
                checks = sum(r.checks for r in results)
                events = sum(len(r.events) for r in results)
                failures = sum(r.event_failures for r in results)
                print(
                    f"| {module} | {kind} | {n} | {ports} | {scheme} | {idle:g} | {interval:g} | "
                    f"{checks / (t1 - t0):.1f} | {n / interval:.1f} | "
                    f"{1000 * (c1 - c0) / max(checks, 1):.2f} | {opened / max(checks, 1):.2f} | "
                    f"{events} | {failures} |",
                    flush=True,
                )
            await channels.aclose()  # before the database closes, as the worker
    finally:
        site.terminate()
        await db.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--kind", choices=sorted(PATHS), default="page")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument(
        "--ports",
        type=int,
        default=1,
        help="site ports; watch i uses port i %% PORTS (N ports: a connection key per watch, "
        "as if each watch had its own host)",
    )
    parser.add_argument("--tls", action="store_true", help="HTTPS (self-signed, trusted)")
    parser.add_argument(
        "--site-keep-alive",
        type=float,
        default=5.0,
        help="seconds the page server keeps an idle connection (5: uvicorn's default; nginx "
        "keeps 75)",
    )
    parser.add_argument(
        "--idle",
        type=float,
        nargs="+",
        default=[IDLE_SECONDS],
        help="the page client's idle keep-alive seconds; one row each, in one run",
    )
    parser.add_argument(
        "--clients",
        nargs="+",
        default=["ambient.clients.http1"],
        help="page-client modules (each with a PageClient); one row each, in one run",
    )
    parser.add_argument("--keywords", nargs="+", default=[], help="a keyword filter per watch")
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile of the measured polls to FILE.CLIENT.IDLE"
    )
    args = parser.parse_args()
    if args.ports < 1:
        parser.error("--ports must be at least 1")
    print(f"`python -m bench.polls {' '.join(sys.argv[1:])}`\n")
    print(
        "| client | kind | N | ports | scheme | idle s | interval s | checks/s | asked/s | "
        "worker CPU ms/check | connections/check | events | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    asyncio.run(
        main(
            args.n,
            args.kind,
            args.seconds,
            args.interval,
            ports=args.ports,
            tls=args.tls,
            idles=args.idle,
            site_keep_alive=args.site_keep_alive,
            clients=args.clients,
            keywords=args.keywords,
            profile=args.profile,
        )
    )
