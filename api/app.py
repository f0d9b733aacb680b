"""The app factory: state built in the lifespan, routers, the web page, MCP mounted at /mcp,
/docs without the internet (Swagger UI from the swagger-ui-bundle package, served by us)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.types import UNSUPPORTED_PROTOCOL_VERSION, JSONRPCMessage, JSONRPCRequest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from ambient import __version__
from ambient.bridge.endpoints import EndpointError
from ambient.bridge.runner import bridge_running
from ambient.bridge.serving import as_body, read_message
from ambient.briefing.errors import BriefingError
from ambient.cloud.errors import CloudOpsError
from ambient.discussions.views import DiscussionError
from ambient.history import FilterError, ScopeError
from ambient.log_redaction import install_redaction
from ambient.remediation.views import RemediationError
from ambient.settings import Settings
from ambient.sharing import ShareLinkLimitError
from ambient.watches.inputs import TaskError
from ambient.wiring import StateHolder, open_state
from ambient.xiaozhi_errors import DeviceError
from api.deps import MISSING_TOKEN, invalid_token
from api.errors import (
    MAX_BODY_BYTES,
    feature_error,
    install_error_mapping,
    jsonrpc_refusal,
    refuse_nul,
    refuse_unknown_query,
)
from api.routers import (
    app_pages,
    audit,
    briefings,
    chat,
    cloud,
    codec,
    discussion_pages,
    discussions,
    events,
    health,
    ops_pages,
    pages,
    remediations,
    settings_pages,
    share,
    signin_pages,
    tasks,
    users,
    xiaozhi,
)
from api.security import ClientRegistrationRefused, SecurityHeaders, policy_with_inline_scripts
from mcp_server.server import build_server
from mcp_server.voice import VOICE_PATH, build_voice_server, by_path

# Seconds an idle client connection is kept open: past a client's own idle expiry (httpx's
# 5 s, uvicorn's default too), so the client closes first. At 5 s both, a client sent a request
# on a connection the server was closing: dropped unanswered (docs/benchmarks.md, the flood).
KEEP_ALIVE = 75

# Routers of every resource; add one line per router module.
ROUTERS = [
    health.router,
    users.router,
    audit.router,
    events.router,
    events.inbox_router,
    events.deliveries_router,
    discussions.router,
    tasks.router,
    remediations.router,
    cloud.router,
    briefings.router,
    briefings.voice_router,
    xiaozhi.router,
    xiaozhi.endpoints_router,
    share.router,
    codec.router,
    chat.router,
    ops_pages.router,
    discussion_pages.router,
    app_pages.router,
    settings_pages.router,
    pages.router,
    signin_pages.router,
]


class CodecCors:
    """CORS for /codec only: a script on an allowed origin reaches no other route."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["content-type", "x-namespace", "authorization"],
            allow_credentials=True,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        codec = scope["type"] == "http" and scope["path"].startswith("/codec/")
        await (self.cors if codec else self.app)(scope, receive, send)


def refusals_say_what_to_do(app: ASGIApp) -> ASGIApp:
    """The MCP SDK answers a Host it does not allow with a bare "Invalid Host header" (421),
    which is all a client behind another host name logs, and a wrong token as a missing one
    ("Authentication required", 401): name the host and the setting, and which the token was."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        refused = False

        async def sending(message: Message) -> None:
            nonlocal refused
            start = message["type"] == "http.response.start"
            if start and message["status"] in (401, 421):
                refused = True
                said, body = _refusal(Headers(scope=scope), message["status"], scope["path"])
                headers = MutableHeaders(scope=message)
                headers["content-length"] = str(len(body))
                if challenge := headers.get("www-authenticate"):  # RFC 6750's, said alike
                    headers["www-authenticate"] = _challenge(challenge, said)
                await send(message)
                await send({"type": "http.response.body", "body": body})
            elif not (refused and message["type"] == "http.response.body"):
                await send(message)

        await app(scope, receive, sending if scope["type"] == "http" else send)

    return wrapped


def _challenge(sdks: str, said: str) -> str:
    """The SDK's Bearer challenge with our realm and words; a request that sent no token gets
    no error code (RFC 6750 §3.1: the SDK said error="invalid_token" to every 401)."""
    fields = {"realm": "ambient-ops", **dict(re.findall(r'(\w+)="([^"]*)"', sdks))}
    fields |= {"error_description": said}
    if said == MISSING_TOKEN:
        fields.pop("error", None)  # an SDK whose challenge has none: no KeyError, no 500
        del fields["error_description"]
    return "Bearer " + ", ".join(f'{key}="{value}"' for key, value in fields.items())


def _refusal(headers: Headers, status: int, path: str) -> tuple[str, bytes]:
    """Why, and the body that says it."""
    if status == 401:  # the SDK's own body, with the API's words for why
        scheme, _, token = headers.get("authorization", "").partition(" ")
        said = MISSING_TOKEN
        if scheme.lower() == "bearer" and token.strip():
            # At the voice door a voice token refused is a wrong or replaced one: "send your
            # API token here" asked for the full-rights token in xiaozhi-server's settings file.
            said = invalid_token(token, voice=path.rstrip("/") == VOICE_PATH)
        error = {"error": "invalid_token"} if said != MISSING_TOKEN else {}
        return said, json.dumps({**error, "error_description": said}).encode()
    host = headers.get("host", "")
    said = (
        f"Invalid Host header {host!r}: MCP answers only the hosts it is told; "
        "add its name to AMBIENT_MCP_ALLOWED_HOSTS (NAME for any port, NAME:PORT for one)"
    )
    return said, said.encode()


# What a GET of an MCP endpoint is answered, in the JSON-RPC shape of the SDK's own refusals.
NO_STREAM = jsonrpc_refusal(
    "Method Not Allowed: this MCP endpoint (streamable HTTP, stateless) offers no SSE stream "
    "to GET; send JSON-RPC requests by POST with 'Accept: application/json, text/event-stream'"
)
# Any other method (DELETE, OPTIONS, PUT, HEAD): POST is all this endpoint serves. The SDK
# answered them 405 with "Allow: GET, POST, DELETE", two of which it refuses too, and a DELETE
# (the spec's session end, which a stateless endpoint has no session for) with no Allow at all.
POST_ONLY = jsonrpc_refusal(
    "Method Not Allowed: this MCP endpoint (streamable HTTP, stateless) takes JSON-RPC "
    "requests by POST only; it has no session to end"
)


def rebinding_refused(
    app: ASGIApp, paths: set[str], security: TransportSecuritySettings
) -> ASGIApp:
    """The MCP endpoints' Host and Origin checked before the SDK's token check: the spec asks
    403 for an Origin not allowed on every request, and the SDK answered a page that sent no
    token (or a wrong one) 401, its Origin unread; a rebound Host is refused so (421) too."""
    guard = TransportSecurityMiddleware(security)

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).rstrip("/") in paths:
            # Host and Origin only: the body's type is checked after the token, as before.
            if refused := await guard.validate_request(Request(scope), is_post=False):
                await refused(scope, receive, send)
                return
        await app(scope, receive, send)

    return wrapped


# Every protocol version the SDK serves: the initialize handshake's and the per-request era's.
SERVED_VERSIONS = [*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS]


def unsupported_version(version: str, message: JSONRPCMessage) -> dict[str, object]:
    """The 400 answer to an MCP-Protocol-Version header naming no version served, in the shape
    of the SDK's own refusal (under the request's id; a notification's has none)."""
    served = ", ".join(SERVED_VERSIONS)
    said = (
        f"unsupported MCP-Protocol-Version {version!r}: this server speaks {served}; "
        "send the version initialize answered with"
    )
    ident = {"id": message.id} if isinstance(message, JSONRPCRequest) else {}
    data = {"supported": SERVED_VERSIONS, "requested": version}
    error = {"code": UNSUPPORTED_PROTOCOL_VERSION, "message": said, "data": data}
    return {"jsonrpc": "2.0", **ident, "error": error}


def malformed_messages_refused(
    app: ASGIApp, paths: set[str], security: TransportSecuritySettings
) -> ASGIApp:
    """The SDK reads a request whose id is null, a fraction or true as a notification (202, no
    answer ever) and answers a batch or a bad envelope -32602 with pydantic's dump: each is
    answered here as the bridge answers it (``read_message``), so every door says it alike.
    Inside the SDK's app, after its authentication (a caller it does not know gets its 401, the
    body unread) and ``rebinding_refused``. An MCP-Protocol-Version naming no version served
    is refused (400) saying so: the SDK took any header it did not know for the 2026 envelope
    and asked for that envelope's ``params._meta``.
    A GET is answered 405 at once: the SDK took one accepting */* (curl's, a browser's) for the
    SSE stream a server sends its own messages on, which a stateless server never has, and held
    it open with nothing to send. The spec's answer for "no stream here" is 405; the SDK's client
    asks for that stream only with a session id, which a stateless server never gives. Any
    other method is answered 405 too, ``Allow: POST`` (``POST_ONLY``)."""
    guard = TransportSecurityMiddleware(security)

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method") if scope["type"] == "http" else None
        if method is None or scope["path"] not in paths or not scope["user"].is_authenticated:
            await app(scope, receive, send)
            return

        async def answer(body: object, status: int = 405) -> None:
            allow = {"Allow": "POST"} if status == 405 else None  # a 405 says what is allowed
            await JSONResponse(body, status_code=status, headers=allow)(scope, receive, send)

        if method not in ("GET", "POST"):
            await answer(POST_ONLY)
            return
        # Sent here, not by the SDK's transport: it would check (and log) the request again.
        if refused_headers := await guard.validate_request(
            Request(scope), is_post=method == "POST"
        ):
            await refused_headers(scope, receive, send)
            return
        if method == "GET":
            await answer(NO_STREAM)
            return
        read = [await receive()]  # bounded by BodyLimit, which has read it whole already
        while read[-1]["type"] == "http.request" and read[-1].get("more_body", False):
            read.append(await receive())
        body = b"".join(part.get("body", b"") for part in read)
        try:
            # A byte order mark before the message is no error (JSON lets a reader ignore it).
            refused = read_message(json.loads(body.decode("utf-8-sig")))
        except (ValueError, RecursionError):
            refused = None  # not JSON (or nested past Python's limit): the SDK answers -32700
        if isinstance(refused, dict):
            await answer(refused, 400)
            return
        version = Headers(scope=scope).get("mcp-protocol-version")
        if refused is not None and version is not None and version not in SERVED_VERSIONS:
            await answer(unsupported_version(version, refused), 400)
            return
        if refused is not None:  # the message as the bridge passes it on (`_meta` readable)
            read = [{"type": "http.request", "body": as_body(refused), "more_body": False}]

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await app(scope, replay, send)

    return wrapped


ASSETS = "/docs-assets"


# FastAPI's default loads them from a CDN: create the app with docs_url=None, redoc_url=None.
def serve_offline_docs(app: FastAPI) -> None:
    """/docs and its assets from the installed package (no OAuth2 redirect page: the API's one
    scheme is a bearer token, which Swagger UI's Authorize takes without a redirect)."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
        # Swagger UI starts from an inline script: allow that one by its hash, nothing else.
        page.headers["content-security-policy"] = policy_with_inline_scripts(
            bytes(page.body).decode()
        )
        return page


def _hosts(named: list[str]) -> list[str]:
    """The Host headers MCP accepts for each name given: a name without a port is that host at
    any port (the SDK matches NAME exactly or NAME:*, and xiaozhi-server's URL has a port)."""
    hosts: list[str] = []
    for host in named:
        hosts.append(host)
        if not re.search(r":(\d+|\*)$", host):
            hosts.append(f"{host}:*")
    return hosts


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    holder = StateHolder()
    mcp = build_server(settings, holder=holder, http_auth=True)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[
            "127.0.0.1:*",
            "localhost:*",
            "[::1]:*",
            *_hosts(settings.mcp_allowed_hosts),
        ],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    # Both MCP endpoints are stateless: each request stands alone, so any API replica answers
    # it (a session kept in one process was a 404 on the next), and a client that pipelines
    # initialize, initialized and tools/list without a session id (xiaozhi-server's relay) is
    # served. No tool asks the client anything back, which is all a session would carry.
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        transport_security=security,
        max_request_body_size=MAX_BODY_BYTES,  # the API's, not the SDK's 4 MiB: an image upload
    )
    voice = build_voice_server(settings, holder=holder, http_auth=True)
    voice_app = voice.streamable_http_app(
        streamable_http_path=VOICE_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=security,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_state(settings) as state:
            holder.state = state
            # The xiaozhi endpoint bridge runs in the API process: its tools need this state,
            # and the endpoint lease keeps one connection per endpoint across API replicas.
            bridge = bridge_running(state) if state.settings.xiaozhi_bridge else nullcontext()
            # The mounted MCP app's own lifespan never runs: run its session manager here.
            async with mcp.session_manager.run(), voice.session_manager.run(), bridge:
                yield
            holder.state = None

    app = FastAPI(
        title="ambient-ops",
        version=__version__,
        description="Ambient operations assistant for teams on Tencent Cloud, built on Temporal.",
        lifespan=lifespan,
        # Served from the installed swagger-ui-bundle below (the defaults load a CDN).
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_nul), Depends(refuse_unknown_query)],
    )
    serve_offline_docs(app)
    install_error_mapping(app)
    app.add_exception_handler(BriefingError, feature_error(briefings.http_error))
    app.add_exception_handler(DiscussionError, feature_error(discussions.http_error))
    app.add_exception_handler(TaskError, feature_error(tasks.http_error))
    app.add_exception_handler(RemediationError, feature_error(remediations.http_error))
    app.add_exception_handler(DeviceError, feature_error(xiaozhi.http_error))
    app.add_exception_handler(EndpointError, feature_error(xiaozhi.endpoint_error))
    app.add_exception_handler(CloudOpsError, feature_error(cloud.http_error))
    app.add_exception_handler(ScopeError, feature_error(events.http_error))
    app.add_exception_handler(FilterError, feature_error(events.filter_error))
    app.add_exception_handler(ShareLinkLimitError, feature_error(share.limit_error))
    # The Temporal Web UI calls /codec from the browser; no other route is open to its origin.
    app.add_middleware(CodecCors, origins=settings.codec_cors_origins)
    # CSP, frame and referrer policy on every HTML response (pages, share links, /docs).
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ClientRegistrationRefused)
    install_redaction()  # the codec token in /codec/ui/{token} stays out of the access log
    app.state.holder = holder
    app.state.settings = settings
    for router in ROUTERS:
        app.include_router(router)
    # Last, so every API route above matches first; serves /mcp and /mcp/voice.
    voice_paths = {VOICE_PATH: voice_app}
    for sdk_app in (mcp_app, voice_app):  # innermost: after the SDK's token check
        sdk_app.add_exception_handler(404, app_pages.not_found)
        sdk_app.state.holder = holder  # a page's 404 reads who signed in (the app's own state)
        sdk_app.user_middleware.append(
            Middleware(malformed_messages_refused, {"/mcp", VOICE_PATH}, security)
        )
    doors = rebinding_refused(by_path(voice_paths, mcp_app), {"/mcp", VOICE_PATH}, security)
    app.mount("/", refusals_say_what_to_do(doors))
    return app
