"""CPU of the page client alone: keep-alive conditional GETs answered 304, per client module.

    python -m bench.page_client --clients old_http1 ambient.clients.http1 [--rounds 15]

One connection per client to the bench page server (bench/site.py, its own process, idle
connections kept 600 s); every round each client in turn sends ``--gets`` GETs of one page with
its ETag (all answered 304), timed with the event loop thread's CPU time
(``time.thread_time``), so other processes on a shared machine move the figure little. Prints
the median and the minimum over the rounds of CPU microseconds per GET. ``git show
REV:ambient/clients/http1.py > old_http1.py`` (on ``PYTHONPATH``) compares a former client; a
former answer reader (``http1_answer.py``, and ``http1_codings.py``) is copied beside it too.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import socket
import statistics
import subprocess
import sys
import time

from ambient.clients.http1 import PageClient

MAX_BYTES = 1_000_000


async def main(modules: list[str], rounds: int, gets: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/page/1"
    fd = listener.fileno()
    command = [sys.executable, "-m", "bench.site", "0", "--fds", str(fd), "--keep-alive", "600"]
    site = subprocess.Popen(command, pass_fds=[fd])  # noqa: ASYNC220 - one child, started once
    listener.close()
    try:
        clients: list[PageClient] = [importlib.import_module(m).PageClient() for m in modules]
        etag = ""
        for client in clients:
            for _ in range(100):
                try:
                    first = await client.get(
                        url, {}, addresses=["127.0.0.1"], time_limit=5, max_bytes=MAX_BYTES
                    )
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            etag = first.headers["etag"]
        headers = {"If-None-Match": etag}
        per_get: dict[str, list[float]] = {m: [] for m in modules}
        for _ in range(rounds):
            for module, client in zip(modules, clients, strict=True):
                start = time.thread_time()
                for _ in range(gets):
                    answer = await client.get(
                        url, headers, addresses=["127.0.0.1"], time_limit=5, max_bytes=MAX_BYTES
                    )
                per_get[module].append(1e6 * (time.thread_time() - start) / gets)
                if answer.status != 304:
                    raise SystemExit(f"{module}: expected 304, got {answer.status}")
        base = statistics.median(per_get[modules[0]])
        for module, times in per_get.items():
            median = statistics.median(times)
            print(
                f"| {module} | {rounds} x {gets} | {median:.1f} | {min(times):.1f} | "
                f"{median / base:.2f} |"
            )
        for client in clients:
            await client.aclose()
    finally:
        site.terminate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", nargs="+", default=["ambient.clients.http1"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--gets", type=int, default=300)
    args = parser.parse_args()
    if args.rounds < 1 or args.gets < 1:
        parser.error("--rounds and --gets must be at least 1")
    print(f"`python -m bench.page_client {' '.join(sys.argv[1:])}`\n")
    print("| client | rounds x GETs | CPU µs/GET, median | min | / first client |")
    print("|---|---|---|---|---|")
    asyncio.run(main(args.clients, args.rounds, args.gets))
