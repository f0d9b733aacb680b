"""405 with ``Allow`` for a path served with other methods; HEAD as its GET; OPTIONS as 204."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


# The page each of the pages' forms posts from, by the form's path prefix: a form's page is
# shown at its POST address when it is refused or answers with something to show once.
FORM_PAGES = (
    ("/app/tasks", "/app"),
    ("/app/push", "/app/settings"),
    ("/app/digest", "/app/settings"),
    ("/app/settings", "/app/settings"),
    ("/app/xiaozhi", "/app/settings"),
    ("/app/discussions", "/app/discussions"),
    ("/app/remediation", "/app/remediations"),
    ("/app/briefing", "/app/briefings"),
    ("/app/", "/app"),
)


def form_page(path: str) -> str | None:
    """The page a POST-only address under /app belongs to; None outside the pages."""
    return next((page for prefix, page in FORM_PAGES if path.startswith(prefix)), None)


class MethodNotAllowed:
    """Before the catch-all mount: 405 for a path an API route serves with other methods;
    HEAD as the path's GET without its body; OPTIONS as 204 with ``Allow``."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    def _served(self, scope: Scope, method: str) -> bool:
        probe = {**scope, "method": method}
        return any(
            route.matches(probe)[0] is Match.FULL
            for route in self.api.router.routes
            if not (isinstance(route, Mount) and route.path == "")  # the MCP app matches all
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method") if scope["type"] == "http" else None
        # HEAD and OPTIONS too: FastAPI's routes serve neither, and the MCP mount at "/" took
        # them as paths nothing serves ("no API path /health" to an uptime monitor's HEAD).
        if method in (*METHODS, "HEAD", "OPTIONS") and not self._served(scope, method):
            # "/tasks/" is "/tasks": FastAPI's redirect of a trailing slash never came, as
            # DELETE /tasks/{id} (an empty id) and the catch-all mount match the path first.
            bare = scope["path"].rstrip("/")
            if bare and bare != scope["path"] and self._takes(bare, scope, method):
                raw = scope.get("raw_path", b"").rstrip(b"/") or bare.encode()
                scope = {**scope, "path": bare, "raw_path": raw}
                if self._served(scope, method):
                    await self.app(scope, receive, send)
                    return
            # Asked per method, so routers included lazily (FastAPI's wrappers) count too.
            allowed = [m for m in METHODS if m != method and self._served(scope, m)]
            if method == "HEAD" and "GET" in allowed:
                await self.app({**scope, "method": "GET"}, *headers_only(receive, send))
                return
            # Every method the path takes, as OPTIONS answers it and a 405 must name it
            # (RFC 9110 15.5.6): HEAD wherever GET is, OPTIONS wherever anything is.
            takes = ", ".join([*allowed, *(["HEAD"] if "GET" in allowed else []), "OPTIONS"])
            if method == "OPTIONS" and allowed:
                await Response(status_code=204, headers={"Allow": takes})(scope, receive, send)
                return
            if method == "GET" and allowed and (page := form_page(scope["path"])) is not None:
                # The address a form's refusal (or a new device's token) was shown at, opened
                # again (Enter, a new tab, a bookmark): the page the form is on, not JSON.
                await RedirectResponse(page, status_code=303)(scope, receive, send)
                return
            if allowed:
                response = JSONResponse(
                    {"detail": f"method {method} not allowed here; this path takes {takes}"},
                    status_code=405,
                    headers={"Allow": takes},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _takes(self, path: str, scope: Scope, method: str) -> bool:
        """Whether ``path`` is served with ``method``, or (HEAD, OPTIONS) with any method."""
        probe = {**scope, "path": path}
        if method == "HEAD":
            return self._served(probe, "GET")
        if method == "OPTIONS":
            return any(self._served(probe, m) for m in METHODS)
        return self._served(probe, method)


def headers_only(receive: Receive, send: Send) -> tuple[Receive, Send]:
    """receive and send for a GET answering a HEAD: its status and headers are sent and the
    answer ends; the body (a stream's too) is dropped, and the GET is told the client left."""
    sent = False

    async def receiving() -> Message:
        return {"type": "http.disconnect"} if sent else await receive()

    async def sending(message: Message) -> None:
        nonlocal sent
        if sent or message["type"] != "http.response.start":
            return
        await send(message)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        sent = True

    return receiving, sending
