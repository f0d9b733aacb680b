"""One error mapping for the whole API: bad input is a 4xx naming the field, never a 500.

- validation errors: 422 with FastAPI's shape, even when the input holds NaN, infinity or a
  lone UTF-16 surrogate (FastAPI's own handler fails to encode those and answers 500);
- a path nothing serves: 404 in JSON, saying where the paths are (the MCP app's own was text),
  under /app a page saying where the pages start;
- a path served with other methods: 405 with ``Allow`` (the MCP app mounted at "/" would
  otherwise answer 404 for every unmatched request); HEAD of a path served with GET: the GET's
  status and headers; OPTIONS of a served path: 204 with ``Allow`` (api/methods.py);
- Temporal or the database down: 503 from any route, saying which in a user's terms; to an
  admin's token "Temporal is unreachable at ADDRESS" / "the database is unreachable (WHERE: the
  driver's reason)" (the log keeps it for every caller);
- a number too large for the database: 422;
- a body past ``MAX_BODY_BYTES`` (MCP's paths too): 413 naming the limit, before it is read
  (MCP's paths answer it as a JSON-RPC error, which an MCP client shows);
- a NUL character (which PostgreSQL refuses in text) in a path, query, JSON body or form, or a
  lone surrogate in a JSON body (no database encodes one): 422 naming where it is
  (``refuse_nul``, a dependency of every route);
- a feature's own errors (briefings, cloud, discussions, tasks, devices, xiaozhi endpoints,
  remediations, another user's history): as its router's ``http_error`` maps them, so its
  routes hold no try/except.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ambient.domain.configs import NUL_REFUSED, unstorable_at
from ambient.domain.push import INBOX_NAME, SECRET_PREFIX, secret_shown
from ambient.refusals import Refusal
from ambient.status import problem_told, temporal_down, temporal_not_set_up
from api.methods import MethodNotAllowed

E = TypeVar("E", bound=Exception)
logger = logging.getLogger(__name__)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN/Infinity are not JSON
    if isinstance(value, str):
        # A lone UTF-16 surrogate ("\ud800" in the request's JSON) has no UTF-8: echoed as text.
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def unprocessable(
    *fields: tuple[Sequence[str | int], str | Refusal],
    where: str = "body",
    given: Any = None,
    inputs: Sequence[Any] = (),
) -> RequestValidationError:
    """A 422 in FastAPI's shape: each (path, message) a value_error under ``where``, with the
    value refused there (``inputs``, one a field) or ``given``."""
    return RequestValidationError(
        [
            {"type": "value_error", "loc": [where, *path], "msg": str(message), "input": sent}
            for (path, message), sent in zip(fields, inputs or [given] * len(fields), strict=True)
        ]
    )


def _query_names(dependant: Dependant) -> Iterator[str]:
    yield from (field.alias for field in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _query_names(sub)


# Routes other programs call with URLs an operator pastes (xiaozhi-server's context provider,
# the Temporal Web UI's codec, a probe's health check): a query they add is theirs to add.
_THEIRS = ("/xiaozhi/context", "/codec/", "/health")


async def refuse_unknown_query(request: Request) -> None:
    """Every API route's dependency: a query parameter the route does not take is a 422 naming
    it, not ignored (``GET /tasks?user=bob`` listed the caller's own tasks as if bob's)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:  # pages, docs
        return
    if not request.query_params or request.url.path.startswith(_THEIRS):
        return
    taken = set(_query_names(route.dependant))
    unknown = [name for name in request.query_params if name not in taken]
    if unknown:
        takes = ", ".join(sorted(taken)) or "none"
        said = f"not a query parameter of this route (it takes: {takes})"
        raise unprocessable(
            *[([name], said) for name in unknown],
            where="query",
            inputs=[request.query_params[name] for name in unknown],
        )


async def refuse_nul(request: Request) -> None:
    """Every route's dependency: PostgreSQL refuses a NUL (U+0000) in text, in a query as in a
    row, so one in the path, the query, a JSON body or a form is a 422 naming it before any
    route runs (on every database alike)."""
    sent: list[tuple[str, str, Any]] = [("path", *item) for item in request.path_params.items()]
    route = request.scope.get("route")
    if isinstance(route, APIRoute):  # the parameters it reads: others are never looked at
        query = request.query_params
        sent += [("query", k, v) for k in _query_names(route.dependant) for v in query.getlist(k)]
    kind = request.headers.get("content-type", "")
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        # A page's form: FastAPI has read it already (a page shows the 422 as its refusal).
        sent += [("body", *item) for item in (await request.form()).multi_items()]
    for where, name, value in sent:
        if isinstance(value, str) and "\x00" in value:
            raise unprocessable(([name], NUL_REFUSED), where=where, given=value)
    if kind.startswith("application/json"):
        raw = await request.body()
        # JSON writes a NUL as \u0000 (a raw one is no JSON) and a lone surrogate as \ud800:
        # without an escape, no second parse.
        if b"\\u" not in raw and b"\x00" not in raw:
            return
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # nested past the parser's depth: not ours to say
            return  # the route's own parsing names what is wrong
        found = unstorable_at(body)
        if found is not None:
            raise unprocessable(found)


def unauthorized(message: str) -> HTTPException:
    """A 401 that asks for a bearer token."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"}
    )


# How much of a refused value a 422 echoes: a megabyte sent is not a megabyte said back.
INPUT_SHOWN = 200


def _cut(value: Any, left: list[int] | None = None) -> Any:
    """``value`` with its lists, dicts and texts cut once INPUT_SHOWN + 1 items and characters
    were kept, in the order its JSON writes them: each writes at least one character, so a cut
    value's JSON begins with the same INPUT_SHOWN characters as the whole one's, and a 422
    encodes what it shows, not all of a refused megabyte (a list of 100,000 conditions cost
    1.5 s of CPU)."""
    left = [INPUT_SHOWN + 1] if left is None else left
    if isinstance(value, str):
        kept = value[: max(left[0], 0)]
        left[0] -= len(kept)
        return kept
    if not isinstance(value, dict | list | tuple):
        return value
    items: list[tuple[Any, Any]] = []
    for item in value.items() if isinstance(value, dict) else enumerate(value):
        if left[0] <= 0:
            break
        left[0] -= 1
        items.append(
            (_cut(item[0], left) if isinstance(value, dict) else None, _cut(item[1], left))
        )
    return dict(items) if isinstance(value, dict) else [v for _, v in items]


# A refused value at a loc naming any of these is a notification target's, or may hold one.
TARGET_LOCS = {"target", "targets", "channels", "notification"}


def _target_shown(value: str) -> str:
    """A notification target as a 422 says it back: its key, token or URL path and query may
    be a credential, so an http(s) URL by its host, another (Apprise's tgram://TOKEN) by its
    scheme, `secret:NAME` as secret_shown says it, anything else by four characters."""
    if value.startswith(SECRET_PREFIX):
        return SECRET_PREFIX + secret_shown(value.removeprefix(SECRET_PREFIX))
    if len(value) <= 4:
        return value
    scheme, sep, rest = value.partition("://")
    if not sep:
        return value[:4] + "…"
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    return f"{scheme}://{host if scheme.lower() in ('http', 'https') else ''}…"


def _unsecret(loc: Sequence[Any], value: Any) -> Any:
    """``value`` refused at ``loc`` with every text under a target, targets, channels or
    notification key shown as _target_shown says, but a channel's `type` and `kinds` and an
    inbox's target (a user's name, as its refusal says it); None and numbers as sent."""
    if isinstance(value, dict):
        target = value.get("target")
        inbox = value.get("type") == "inbox" and isinstance(target, str)
        inbox = inbox and bool(INBOX_NAME.fullmatch(str(target)))
        return {
            k: v if inbox and k == "target" else _unsecret([*loc, k], v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unsecret([*loc, i], v) for i, v in enumerate(value)]
    if not isinstance(value, str) or not TARGET_LOCS & {p for p in loc if isinstance(p, str)}:
        return value
    if loc[-1] == "type" or "kinds" in loc[-2:]:
        return value
    return _target_shown(value)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        _json_safe(
            jsonable_encoder(
                {**error, "input": _cut(_unsecret(error["loc"], _as_text(error["input"])))}
                if "input" in error
                else error
            )
        )
        for error in exc.errors()
    ]
    for error in errors:
        shown = json.dumps(error.get("input"), ensure_ascii=False)
        if len(shown) > INPUT_SHOWN:
            error["input"] = shown[:INPUT_SHOWN] + "…"
    return JSONResponse({"detail": errors}, status_code=422)


def _as_text(given: Any) -> Any:
    """A body FastAPI did not parse (not sent as JSON) is its bytes: said as text, a byte
    that is no UTF-8 as its escape (the encoder's own decode failed: a 500, signed in or not)."""
    if isinstance(given, bytes | bytearray):
        return bytes(given).decode("utf-8", "backslashreplace")
    return given


def refusal(exc: E, statuses: Mapping[type[E], int]) -> Exception:
    """A feature's refusal no field is to blame for: the status of the first kind in
    ``statuses`` that ``exc`` is, its words; any other is Temporal down (``exc`` itself,
    answered 503 as from any route: in a user's terms, where it runs to an admin) or 502,
    the service behind failed."""
    code = next((code for kind, code in statuses.items() if isinstance(exc, kind)), None)
    if code is None and (temporal_down(exc) or temporal_not_set_up(exc)):
        return exc
    return HTTPException(code or 502, str(exc))


class ErrorBody(BaseModel):
    """A refusal in words (every one but a 422, whose ``detail`` lists the fields)."""

    detail: str = Field(description="what was refused and what to do")


# What each refusal means, as the OpenAPI document lists it beside a route's answers.
REFUSALS: dict[int, str] = {
    401: "no bearer token, or one no user has",
    403: "not yours, or your role or rollback_permission does not allow it",
    404: "no such thing of yours (the detail names it and where to list them)",
    409: "its state does not take this now, or its name is taken",
    429: "too many for now: Retry-After says when to try again",
    502: "the service behind it (Tencent Cloud, a Kubernetes API, a push target) failed",
    503: "Temporal or the app database cannot be reached now (the detail says which)",
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The refusals a router's routes may answer, for its OpenAPI document: ``codes`` (its
    feature's ``STATUSES``), and those of every route behind a token (401, 503); a 422 is
    FastAPI's own (its fields listed)."""
    return {
        code: {"model": ErrorBody, "description": REFUSALS[code]}
        for code in sorted({*codes, 401, 503} - {422})
    }


def feature_error(http_error: Callable[[Any], Exception]) -> Any:
    async def handle(request: Request, exc: Exception) -> Response:
        answer = http_error(exc)
        if isinstance(answer, RequestValidationError):
            return await validation_error(request, answer)
        if isinstance(answer, HTTPException):
            return await http_exception_handler(request, answer)
        return await unexpected_error(request, answer)

    return handle


def out_of_range(exc: Exception) -> bool:
    """A number beyond what the database stores (an id edited by hand in a link or form):
    anywhere in the chain of causes (asyncpg's DataError wraps its OverflowError a few deep
    under SQLAlchemy's)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OverflowError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def outage_answer(request: Request, exc: BaseException) -> JSONResponse | None:
    """The 503 of a request Temporal or the database did not answer (None: not one), logged:
    `problem_told` logs what it says to a member, this what it says to an admin."""
    operator = getattr(request.state, "operator", False)  # an admin's token (api.deps)
    problem = problem_told(exc, request.app.state.settings, operator=operator)
    if problem is None:
        return None
    if operator:
        logger.warning("said to an admin as down: %s", problem)
    return JSONResponse({"detail": problem}, status_code=503)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    if (outage := outage_answer(request, exc)) is not None:
        return outage
    if out_of_range(exc):
        return JSONResponse({"detail": "a number in the request is out of range"}, status_code=422)
    return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)


# Above the largest body a door takes: a dashboard image uploaded as a data: URL (up to
# MAX_DATA_URL, 8,000,000 characters), a Temporal payload (2 MB) as base64 through /codec, an
# apply's 500,000-character YAML. Bodies of many MB were read and parsed whole; the fields
# that reach Temporal (2 MB a payload) are bounded each by their own model.
MAX_BODY_BYTES = 10 * 1024 * 1024


def jsonrpc_refusal(message: str) -> dict[str, Any]:
    """A refusal under no request id (-32600, invalid request), in the shape of the SDK's own."""
    return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}


class BodyLimit:
    """413 for a request body past MAX_BODY_BYTES, declared or streamed; read here otherwise."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_large = declared.isdigit() and int(declared) > MAX_BODY_BYTES
        read: list[Message] = []
        size = 0
        while not too_large:  # counted as it comes: a chunked body declares no length
            read.append(await receive())
            if read[-1]["type"] != "http.request":
                break
            size += len(read[-1].get("body", b""))
            too_large = size > MAX_BODY_BYTES
            if not read[-1].get("more_body", False):
                break
        if too_large:
            mib = MAX_BODY_BYTES >> 20
            said = f"request body too large: at most {MAX_BODY_BYTES} bytes ({mib} MiB)"
            body: dict[str, Any] = {"detail": said}
            if scope["path"].startswith("/mcp"):  # the SDK's own 413 read as no answer
                body = jsonrpc_refusal(said)
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)


class OutageAnswered:
    """A request Temporal or the database did not answer is its 503 (`outage_answer`, as
    `unexpected_error` says it), answered here: past this, Starlette's outermost handler
    answers it the same and raises it again for the server to log, a 90-line "Exception in
    ASGI application" a request all through an outage (the warning logged keeps the detail)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started or (outage := outage_answer(Request(scope), exc)) is None:
                raise
            await outage(scope, receive, send)


def install_error_mapping(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
    app.add_middleware(OutageAnswered)
    app.add_middleware(MethodNotAllowed, api=app)
    app.add_middleware(BodyLimit)
