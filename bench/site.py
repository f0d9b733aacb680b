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
counts = {"200": 0, "304": 0}


async def page(request: Request) -> Response:
    if request.headers.get("if-none-match") == ETAG:
        counts["304"] += 1
        return Response(status_code=304, headers={"etag": ETAG})
    counts["200"] += 1
    return Response(PAGE, media_type="text/html", headers={"etag": ETAG})


async def stats(request: Request) -> Response:
    return JSONResponse(counts)


app = Starlette(routes=[Route("/stats", stats), Route("/page/{n}", page)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
