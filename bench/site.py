"""A page server for benchmarks, run as its own process so its CPU is not the worker's.

Pages (one path per watch):

- ``/page/{n}``: ~5 KB, answers 304 to a matching ``If-None-Match`` (every check after the
  first is a 304);
- ``/same/{n}``: the same ~5 KB body every time, with no validators (the watch downloads and
  hashes it, and finds nothing new);
- ``/changing/{n}``: ~5 KB with a new paragraph on every fetch and no validators (every check
  extracts text, diffs, stores a snapshot and reports a change).

Every page fetch is stamped (``time.time()``) under its path, so the benchmark measures
checks and schedule lag from outside the workflows, whatever the check design:

- ``/fetches?prefix=/page/&since=T0&until=T1``: ``{path: [stamps]}`` of matching paths;
- ``/stats?prefix=/page/&since=T0&until=T1``: counts (paths, paths fetched twice or more,
  fetches in the range, fetches of other paths in the range).

``python -m bench.site PORT`` serves plain HTTP on 127.0.0.1:PORT. ``--fds 3,4,...`` serves on
listening sockets the parent opened and passed (many ports: one connection key per watch, as
if every watch had its own host), ``--tls CERT KEY`` serves HTTPS and ``--keep-alive S``
keeps idle connections S seconds (uvicorn's default is 5; nginx's 75).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import socket
import time
from collections import defaultdict

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PAGE = (
    "<html><body><article>"
    + "<p>Steady news paragraph about operations.</p>" * 80
    + "</article></body></html>"
)
ETAG = '"' + hashlib.sha1(PAGE.encode()).hexdigest() + '"'
counts = {"200": 0, "304": 0, "same": 0, "changed": 0}
# path -> fetch times; appending a float is all a fetch costs the site.
fetched: defaultdict[str, list[float]] = defaultdict(list)


def stamp(request: Request) -> None:
    fetched[request.url.path].append(time.time())


async def page(request: Request) -> Response:
    stamp(request)
    if request.headers.get("if-none-match") == ETAG:
        counts["304"] += 1
        return Response(status_code=304, headers={"etag": ETAG})
    counts["200"] += 1
    return Response(PAGE, media_type="text/html", headers={"etag": ETAG})


async def same(request: Request) -> Response:
    """The same body every time and nothing to revalidate with: unchanged by hash only."""
    stamp(request)
    counts["same"] += 1
    return Response(PAGE, media_type="text/html")


async def changing(request: Request) -> Response:
    """A ~5 KB page with a new paragraph on every fetch and no validators: every check
    extracts text, diffs it, stores a snapshot and reports a change."""
    stamp(request)
    counts["changed"] += 1
    n = counts["changed"]
    news = "".join(
        f"<p>Headline {i}: operations update number {i}.</p>" for i in range(n, n - 5, -1)
    )
    body = PAGE.replace("<article>", f"<article>{news}", 1)
    return Response(body, media_type="text/html")


def query_range(request: Request) -> tuple[str, float, float]:
    params = request.query_params
    since = float(params.get("since", "-inf"))
    until = float(params.get("until", "inf"))
    if math.isnan(since) or math.isnan(until):
        raise ValueError("since/until must be numbers")
    return params.get("prefix", "/"), since, until


async def fetches(request: Request) -> Response:
    try:
        prefix, since, until = query_range(request)
    except ValueError as error:
        return JSONResponse({"error": str(error)}, status_code=422)
    found = {
        path: [t for t in stamps if since <= t < until]
        for path, stamps in fetched.items()
        if path.startswith(prefix)
    }
    return JSONResponse({path: stamps for path, stamps in found.items() if stamps})


async def stats(request: Request) -> Response:
    try:
        prefix, since, until = query_range(request)
    except ValueError as error:
        return JSONResponse({"error": str(error)}, status_code=422)
    paths = twice = inside = other = 0
    for path, stamps in fetched.items():
        n = sum(1 for t in stamps if since <= t < until)
        if path.startswith(prefix):
            paths += 1
            twice += len(stamps) >= 2
            inside += n
        else:
            other += n
    return JSONResponse(
        {
            **counts,
            "paths": paths,
            "paths_fetched_twice": twice,
            "fetches": inside,
            "other_fetches": other,
        }
    )


app = Starlette(
    routes=[
        Route("/stats", stats),
        Route("/fetches", fetches),
        Route("/page/{n}", page),
        Route("/same/{n}", same),
        Route("/changing/{n}", changing),
    ]
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--fds", default="", help="listening sockets to serve on, comma-separated")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument(
        "--keep-alive", type=float, default=5.0, help="seconds an idle connection is kept"
    )
    args = parser.parse_args()
    cert, key = args.tls or (None, None)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        ssl_certfile=cert,
        ssl_keyfile=key,
        timeout_keep_alive=int(args.keep_alive),
    )
    sockets = [socket.socket(fileno=int(fd)) for fd in args.fds.split(",") if fd]
    uvicorn.Server(config).run(sockets=sockets or None)
