"""A page server for benchmarks, run as its own process so its CPU is not the worker's."""

from __future__ import annotations

import hashlib
import sys

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
counts = {"200": 0, "304": 0, "changed": 0}


async def page(request: Request) -> Response:
    if request.headers.get("if-none-match") == ETAG:
        counts["304"] += 1
        return Response(status_code=304, headers={"etag": ETAG})
    counts["200"] += 1
    return Response(PAGE, media_type="text/html", headers={"etag": ETAG})


async def changing(request: Request) -> Response:
    """A ~5 KB page with a new paragraph on every fetch and no validators: every check
    extracts text, diffs it, stores a snapshot and reports a change."""
    counts["changed"] += 1
    n = counts["changed"]
    news = "".join(
        f"<p>Headline {i}: operations update number {i}.</p>" for i in range(n, n - 5, -1)
    )
    body = PAGE.replace("<article>", f"<article>{news}", 1)
    return Response(body, media_type="text/html")


async def stats(request: Request) -> Response:
    return JSONResponse(counts)


app = Starlette(
    routes=[Route("/stats", stats), Route("/page/{n}", page), Route("/changing/{n}", changing)]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
