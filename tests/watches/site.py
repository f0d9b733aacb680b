"""A local web site whose pages and JSON values the test changes between checks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Site:
    pages: dict[str, str] = field(default_factory=dict)
    # Pages served as these bytes with this Content-Type (a GBK page, a charset in a <meta>).
    encoded: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    values: list[float | None] = field(default_factory=list)  # None answers 500
    requests: list[tuple[str, int]] = field(default_factory=list)
    value_reads: int = 0
    # query -> the whole answer of /api/v1/query (HTTP status, body), instead of one sample.
    prometheus_answers: dict[str, tuple[int, dict[str, object]]] = field(default_factory=dict)
    huge: bool = False

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/value", self.value),
                Route("/api/v1/query", self.prometheus),
                Route("/{path:path}", self.page),
            ]
        )

    async def page(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        if path in self.redirects:
            self.requests.append((path, 302))
            return Response(status_code=302, headers={"location": self.redirects[path]})
        if path in self.encoded:
            self.requests.append((path, 200))
            body, content_type = self.encoded[path]
            return Response(body, headers={"content-type": content_type})
        if path == "/huge":
            return Response(b"x" * (64 * 1024), media_type="text/html")
        if path not in self.pages:
            self.requests.append((path, 404))
            return Response("missing", status_code=404)
        body = self.pages[path]
        etag = '"' + hashlib.sha1(body.encode()).hexdigest() + '"'
        if request.headers.get("if-none-match") == etag:
            self.requests.append((path, 304))
            return Response(status_code=304, headers={"etag": etag})
        self.requests.append((path, 200))
        return Response(body, media_type="text/html", headers={"etag": etag})

    async def prometheus(self, request: Request) -> Response:
        query = request.query_params["query"]
        if query in self.prometheus_answers:
            status, answer = self.prometheus_answers[query]
            return JSONResponse(answer, status_code=status)
        samples = [] if query == "absent_metric" else [{"metric": {}, "value": [1, "42.5"]}]
        return JSONResponse(
            {"status": "success", "data": {"resultType": "vector", "result": samples}}
        )

    async def value(self, request: Request) -> Response:
        index = min(self.value_reads, len(self.values) - 1)
        self.value_reads += 1
        value = self.values[index]
        if value is None:
            return Response("down", status_code=500)
        return JSONResponse({"data": {"amount": str(value)}})


def article(*paragraphs: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"<html><head><title>news</title></head><body><article>{body}</article></body></html>"
