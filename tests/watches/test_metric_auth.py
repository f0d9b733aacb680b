"""Metric sources behind credentials: a threshold watch reads a strict local Prometheus (and a
JSON API) that asks for basic or bearer auth with the server secret its config names, by name
only (the value never in its config, history or status), only a secret its owner may use, the
Authorization header sent to the source's origin alone; a 401 or 403 says what to do. A query
too long for a URL is POSTed as a form, as Prometheus' HTTP API takes it."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
import pytest_asyncio
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.watches import WatchActivities
from ambient.briefing.service import BriefingService
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.web import WebFetcher, keeps_credentials
from ambient.deps import WorkerDeps
from ambient.domain.checks import ReadMetricInput
from ambient.domain.users import Language
from ambient.setting_types import ServerSecret
from ambient.storage import Database
from ambient.watches.inputs import ConfigError
from ambient.watches.service import TaskService
from api.i18n import Words
from api.routers.app_pages import failed_said
from mcp_server.voice_failures import reason_said
from tests.conftest import unique
from tests.support.servers import HANG, http_client, serve
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from worker import build_worker

PASSWORD = "s3cret-pass"
TOKEN = "tok-123"


def secrets_for(origin: str) -> dict[str, SecretStr | ServerSecret]:
    """The server's secrets, each a source's credentials at ``origin`` alone."""

    def listed(value: str) -> ServerSecret:
        return ServerSecret(value=SecretStr(value), users=[USER], origins=[origin])

    return {
        "prom": listed(f"reader:{PASSWORD}"),
        "prom-file": listed(f"reader:{PASSWORD}\n"),  # written from a file, its line break too
        "no-colon": listed(TOKEN),  # a token, named as basic credentials
        "wrong": listed("reader:not-it"),
        "token": listed(f"{TOKEN}\n"),  # a token file's line break
        "broken": listed(f"{TOKEN}\r\nX-Admin: yes"),
        "ops": SecretStr("admins-only"),
    }


# The request line a proxy in front takes (nginx hardened to large_client_header_buffers 4 4k;
# IIS takes a 4,096-character URL and a 2,048-character query).
REQUEST_LINE = 4096


@dataclass
class StrictPrometheus:
    """Prometheus on /api/v1/query, as strict as it, behind auth (its web config's basic auth,
    or a proxy's bearer token) and behind a proxy: a request line past 4 KB is a 414; without
    the credentials a 401; a method but GET and POST a 405 (its router); the query read from
    the URL or from a form body (Go's ParseForm reads application/x-www-form-urlencoded alone),
    none a 400 bad_data. It answers the query's length, so a query cut short shows. /value is a
    JSON API behind the same auth; /away redirects to ``elsewhere`` (another origin), /here to
    its own /value."""

    elsewhere: str = ""
    open: bool = False  # no auth asked
    forbidden: bool = False  # the credentials taken, their account may not read: a 403
    no_post: bool = False  # a proxy in front that lets GET through alone
    challenge: str = 'Basic realm="prom"'  # its 401's WWW-Authenticate
    takes_ours: bool = True  # basic and bearer taken (not by a source asking Digest alone)
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # method, Authorization

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        return Starlette(
            routes=[
                Route("/api/v1/query", self.query, methods=methods),
                Route("/value", self.value),
                Route("/away", lambda _: RedirectResponse(f"{self.elsewhere}/value", 302)),
                Route("/here", lambda _: RedirectResponse("/value", 302)),
                Route("/back", lambda _: RedirectResponse(f"{self.elsewhere}/value", 302)),
                Route("/bounce", lambda _: RedirectResponse(f"{self.elsewhere}/back", 302)),
                Route("/echo", self.echo),
                Route(
                    "/moved{code:int}/api/v1/query",
                    lambda r: RedirectResponse("/api/v1/query", r.path_params["code"]),
                    methods=["GET", "POST"],
                ),
                Route("/echo.json", self.echo),
            ]
        )

    async def echo(self, request: Request) -> Response:
        """A debugging endpoint some APIs have: the request's headers said back (a basic
        auth's decoded too), as HTML or at the JSON path a watch reads."""
        if (refusal := self.refused(request)) is not None:
            return refusal
        given = request.headers["authorization"]
        decoded = base64.b64decode(given.removeprefix("Basic ")).decode(errors="replace")
        if request.url.path == "/echo.json":
            return JSONResponse({"data": {"amount": f"{given} ({decoded})"}})
        return Response(f"<html><pre>Authorization: {given}\nuser: {decoded}</pre></html>")

    def refused(self, request: Request) -> Response | None:
        line = len(request.scope["raw_path"]) + len(request.scope["query_string"]) + 1
        if line > REQUEST_LINE:
            return Response("<html><center>414 Request-URI Too Large</center>", 414)
        given = request.headers.get("authorization")
        self.seen.append((request.method, given))
        basic = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
        if self.no_post and request.method == "POST":
            return Response("<html>405 Not Allowed</html>", 405, {"Allow": "GET"})
        taken = (basic, f"Bearer {TOKEN}") if self.takes_ours else ()
        if given not in taken and not self.open:
            return Response("Unauthorized\n", 401, {"WWW-Authenticate": self.challenge})
        if self.forbidden:
            return Response("Forbidden\n", 403)
        return None

    async def query(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        if request.method not in ("GET", "POST"):
            return Response("Method Not Allowed\n", 405, {"Allow": "GET, OPTIONS, POST"})
        form: dict[str, list[str]] = {}
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if request.method == "POST" and kind == "application/x-www-form-urlencoded":
            form = parse_qs((await request.body()).decode(), keep_blank_values=True)
        query = (form.get("query") or [request.query_params.get("query", "")])[0]
        if not query:
            error = 'invalid parameter "query": 1:1: parse error: no expression found in input'
            answer = {"status": "error", "errorType": "bad_data", "error": error}
            return JSONResponse(answer, 400)
        sample = {"metric": {}, "value": [1, str(len(query))]}
        data = {"resultType": "vector", "result": [sample]}
        return JSONResponse({"status": "success", "data": data})

    async def value(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        return JSONResponse({"data": {"amount": "42.5"}})


@pytest_asyncio.fixture
async def prometheus() -> AsyncIterator[tuple[StrictPrometheus, str, StrictPrometheus]]:
    """The source, its base URL, and another origin its /away leads to."""
    source, other = StrictPrometheus(), StrictPrometheus()
    async with serve(source.app()) as base, serve(other.app()) as elsewhere:
        source.elsewhere = elsewhere
        yield source, base, other


@pytest_asyncio.fixture
async def tasks(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    prometheus: tuple[StrictPrometheus, str, StrictPrometheus],
) -> AsyncIterator[TaskService]:
    queue = unique("tq")
    loopback_deps.settings = loopback_deps.settings.model_copy(
        update={"temporal_task_queue": queue, "secrets": secrets_for(prometheus[1])}
    )
    settings, db = loopback_deps.settings, loopback_deps.db
    async with build_worker(dev_env.client, loopback_deps, task_queue=queue):
        briefings = BriefingService(dev_env.client, settings, db)
        yield TaskService(dev_env.client, settings, db, briefings=briefings, baseline_wait=HANG)


def _watch(source: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "threshold": 1000, "check_interval_minutes": 5}


async def _baseline(tasks: TaskService, source: dict[str, Any]) -> dict[str, Any]:
    ref = await tasks.create(USER, "threshold_watch", _watch(source), unique("auth"))
    await tasks.delete(USER, ref.task_id)
    assert ref.baseline is not None
    return ref.baseline


async def test_a_prometheus_behind_basic_auth_is_read_with_a_secret_named_never_shown(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    source, base, _ = prometheus
    auth = {"type": "basic", "secret": "secret:prom"}
    config = _watch({"type": "prometheus", "url": base, "query": "sum(up)", "auth": auth})
    ref = await tasks.create(USER, "threshold_watch", config, unique("basic"))
    status = await tasks.get(USER, ref.task_id)
    history = await tasks.client.get_workflow_handle(ref.task_id).fetch_history()
    await tasks.delete(USER, ref.task_id)

    assert ref.baseline == {"value": 7.0, "error": None}  # len("sum(up)")
    assert source.seen == [
        ("GET", "Basic " + base64.b64encode(b"reader:" + PASSWORD.encode()).decode())
    ]
    assert status.config["source"]["auth"] == auth
    said = json.dumps(status.model_dump(mode="json")) + json.dumps(history.to_json_dict())
    encoded = base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    assert "secret:prom" in said
    assert PASSWORD not in said and encoded not in said


async def test_a_bearer_token_is_sent_without_its_files_line_break_and_one_inside_is_refused(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    source, base, _ = prometheus
    token = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    read = await _baseline(tasks, token | {"auth": {"type": "bearer", "secret": "secret:token"}})
    broken = await _baseline(tasks, token | {"auth": {"type": "bearer", "secret": "secret:broken"}})

    assert read == {"value": 42.5, "error": None}
    # The value with a line break would be a header of its own (or h11's error, saying it).
    assert broken == {
        "value": None,
        "error": "secret broken cannot be sent as a bearer token: its value is empty or has "
        "characters no header carries (a line break inside it)",
    }
    assert source.seen == [("GET", f"Bearer {TOKEN}")]


async def test_refused_credentials_and_none_are_said_as_what_to_do(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    _, base, _ = prometheus
    query = {"type": "prometheus", "url": base, "query": "sum(up)"}
    wrong = await _baseline(tasks, query | {"auth": {"type": "basic", "secret": "secret:wrong"}})
    none = await _baseline(tasks, query)

    refused = (
        "the source refused the credentials of secret wrong (HTTP 401, scheme Basic): check "
        "the secret's value (a bearer token, or user:password for basic) and that its type is "
        "the one the source asks for"
    )
    assert wrong == {"value": None, "error": refused}
    asks = (
        "the source asks for credentials (HTTP 401, scheme Basic): give the source an auth, "
        'e.g. {"type": "basic", "secret": "secret:NAME"} with a server secret you may use'
    )
    assert none == {"value": None, "error": asks}
    zh = Words(Language.ZH)
    assert failed_said(refused, zh).startswith("失败：数据源拒绝了密钥 wrong 的凭据（HTTP 401")
    assert reason_said(refused) == ("数据源拒绝了凭据", "the source refused the credentials")
    assert reason_said(asks) == ("数据源要求凭据", "the source asks for credentials")


async def test_credentials_go_to_the_sources_origin_alone(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """Browsers and httpx drop Authorization at a redirect to another origin: the host led to
    is not the one the owner gave the secret for."""
    source, base, other = prometheus
    auth = {"type": "basic", "secret": "secret:prom"}
    json_at = {"type": "http_json", "json_path": "$.data.amount", "auth": auth}
    here = await _baseline(tasks, json_at | {"url": f"{base}/here"})
    away = await _baseline(tasks, json_at | {"url": f"{base}/away"})

    assert here == {"value": 42.5, "error": None}
    assert away == {"value": None, "error": f"HTTP 401 (redirected to {source.elsewhere}/value)"}
    assert other.seen == [("GET", None)]
    sent = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    assert source.seen == [("GET", sent)]  # /value, where /here led


@pytest.mark.parametrize(
    ("led", "kept"),
    [
        ("http://prom.example:9090/value", True),
        ("http://PROM.example:9090/login", True),
        ("http://prom.example:9091/value", False),  # another port: another origin
        ("http://sso.example:9090/login", False),
        ("https://prom.example:9090/value", False),  # another scheme on its port
    ],
)
def test_a_redirect_keeps_the_credentials_on_the_sources_origin_alone(led: str, kept: bool) -> None:
    assert keeps_credentials("http://prom.example:9090/api", led) is kept
    # Its own host upgraded to https keeps them (httpx's rule); downgraded it does not.
    assert keeps_credentials("http://prom.example/api", "https://prom.example/api")
    assert not keeps_credentials("https://prom.example/api", "http://prom.example/api")


@pytest.mark.parametrize(
    ("secret", "said"),
    [
        ("secret:ops", "secret 'ops' is not available to alice"),
        ("secret:nobody-defined", "secret 'nobody-defined' is not available to alice"),
        ("tok-123", "give the credentials as secret:NAME"),
    ],
)
async def test_a_source_names_only_a_secret_its_owner_may_use_at_create_and_update(
    tasks: TaskService,
    prometheus: tuple[StrictPrometheus, str, StrictPrometheus],
    secret: str,
    said: str,
) -> None:
    source, base, _ = prometheus
    query = {"type": "prometheus", "url": base, "query": "sum(up)"}
    denied = _watch(query | {"auth": {"type": "bearer", "secret": secret}})
    with pytest.raises(ConfigError) as created:
        await tasks.create(USER, "threshold_watch", denied, unique("denied"))
    ref = await tasks.create(USER, "threshold_watch", _watch(query), unique("allowed"))
    with pytest.raises(ConfigError) as updated:
        await tasks.update(USER, ref.task_id, denied)
    status = await tasks.get(USER, ref.task_id)
    await tasks.delete(USER, ref.task_id)

    for refused in (created.value, updated.value):
        [(where, message)] = refused.errors
        # (a literal is refused by the source's model, which names its type too)
        assert where[:2] == ("config", "source") and where[-2:] == ("auth", "secret")
        assert said in str(message)
        assert "admins-only" not in str(refused)
    assert "auth" not in status.config["source"]
    assert [method for method, _ in source.seen] == ["GET"]  # the allowed watch's baseline


async def test_a_query_too_long_for_a_url_is_posted_as_a_form(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """Asked by GET, a 3,900-character query of many paths was a 5.9 KB request line: the
    proxy in front answered 414, at every check."""
    source, base, _ = prometheus
    source.open = True
    paths = "|".join(f"/api/v1/orders/{i}/items" for i in range(160))
    query = f'sum(rate(http_requests_total{{job="api",path=~"{paths}"}}[5m]))'
    assert len(query) <= 4000  # a query the config takes
    long = await _baseline(tasks, {"type": "prometheus", "url": base, "query": query})
    short = await _baseline(tasks, {"type": "prometheus", "url": base, "query": "sum(up)"})
    async with http_client(base) as http:  # the stand-in is as strict as Prometheus' router
        put = await http.put(
            "/api/v1/query", data={"query": "up"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    assert long == {"value": float(len(query)), "error": None}
    assert short == {"value": 7.0, "error": None}
    assert [method for method, _ in source.seen] == ["POST", "GET", "PUT"]
    assert put.status_code == 405


@pytest.mark.parametrize("path", ["/echo", "/echo.json"])
async def test_a_source_echoing_the_request_never_gets_the_secrets_value_into_the_error(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus], path: str
) -> None:
    _, base, _ = prometheus
    basic = {"type": "basic", "secret": "secret:prom"}
    bearer = {"type": "bearer", "secret": "secret:token"}
    at = {"type": "http_json", "url": f"{base}{path}", "json_path": "$.data.amount"}
    said = [await _baseline(tasks, at | {"auth": auth}) for auth in (basic, bearer)]

    encoded = base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    for reading, name in zip(said, ("prom", "token"), strict=True):
        assert reading["value"] is None and f"[secret {name}]" in reading["error"]
        for secret in (PASSWORD, encoded, encoded.rstrip("="), TOKEN):
            assert secret not in reading["error"]


async def test_a_source_at_an_origin_its_secret_does_not_list_is_refused_and_never_sent(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """A member chooses the source's URL: naming a secret listed for them, they could send
    its value to a server of their own."""
    source, _, other = prometheus
    auth = {"type": "basic", "secret": "secret:prom"}
    at = {"type": "prometheus", "url": source.elsewhere, "query": "up", "auth": auth}
    elsewhere = _watch(at)
    with pytest.raises(ConfigError) as refused:
        await tasks.create(USER, "threshold_watch", elsewhere, unique("elsewhere"))

    [(where, message)] = refused.value.errors
    assert where == ("config", "source", "auth", "secret")
    assert f"secret 'prom' may not be sent to {source.elsewhere}:" in str(message)
    assert '"origins": [' in str(message)
    assert other.seen == []


async def test_a_secrets_origin_is_checked_again_at_every_read(
    db: Database, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """A watch stored before the operator took the origin off the secret sends it no more."""
    source, base, _ = prometheus
    secrets = SecretResolver(secrets_for(source.elsewhere))
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    activities = WatchActivities(db, fetcher, TencentCloud(None, region="ap-guangzhou"), secrets)
    auth = {"type": "basic", "secret": "secret:prom"}
    request = ReadMetricInput(
        source={"type": "prometheus", "url": base, "query": "up", "auth": auth}
    )

    reading = await ActivityEnvironment().run(activities.read_metric, request)

    assert reading.value is None
    assert (reading.error or "").startswith(f"secret 'prom' may not be sent to {base}")
    assert source.seen == []


def test_a_secrets_origins_are_scheme_host_and_port_and_nothing_else() -> None:
    kept = ServerSecret(value=SecretStr("t"), origins=["HTTPS://Prom.example/", "http://a:9090"])
    assert kept.origins == ["https://prom.example:443", "http://a:9090"]
    for bad in (
        "https://prom.example/api",
        "prom.example",
        "ftp://x",
        "https://u:p@x",
        "http://x:99999",
    ):
        with pytest.raises(ValueError, match="is no origin: give scheme://host"):
            ServerSecret(value=SecretStr("t"), origins=[bad])


async def test_an_owner_taken_off_the_secrets_users_is_refused_at_the_next_read(
    loopback_deps: WorkerDeps,  # noqa: F811
    prometheus: tuple[StrictPrometheus, str, StrictPrometheus],
) -> None:
    """Access was checked when the config entered alone: the owner kept reading with the
    secret after the operator took them off its users (a notification target is checked
    again at each send)."""
    source, base, _ = prometheus
    secrets = secrets_for(base)
    secrets["prom"] = ServerSecret(value=SecretStr(f"reader:{PASSWORD}"), origins=[base])
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    tencent = TencentCloud(None, region="ap-guangzhou")
    activities = WatchActivities(loopback_deps.db, fetcher, tencent, SecretResolver(secrets))
    auth = {"type": "basic", "secret": "secret:prom"}
    at = {"type": "prometheus", "url": base, "query": "up", "auth": auth}

    reading = await ActivityEnvironment().run(
        activities.read_metric, ReadMetricInput(source=at, owner=USER)
    )

    assert reading.value is None
    assert (reading.error or "").startswith(
        f"secret 'prom' is not available to {USER}: server secrets are for admins unless the "
        "operator lists the user in AMBIENT_SECRETS"
    )
    assert source.seen == []


async def test_a_403_a_hop_back_without_the_header_and_a_refused_post_are_each_said_so(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """A 403 is no request for credentials (RFC 9110 15.5.4); after A -> B -> A no header went
    to A (dropped at B), so its 401 is not the secret's; a POST refused by a proxy is not the
    query's fault."""
    source, base, other = prometheus
    other.elsewhere = base
    auth = {"auth": {"type": "basic", "secret": "secret:prom"}}
    json_at = {"type": "http_json", "json_path": "$.data.amount"}
    source.forbidden = True
    forbidden = await _baseline(tasks, json_at | auth | {"url": f"{base}/value"})
    source.forbidden = False
    bounced = await _baseline(tasks, json_at | auth | {"url": f"{base}/bounce"})
    source.no_post = True
    long = "sum(up) + " * 250
    posted = await _baseline(tasks, {"type": "prometheus", "url": base, "query": long} | auth)

    assert forbidden["error"] == (
        "the source forbids this to the account of secret prom (HTTP 403): ask whoever runs "
        "the source to let that account read it, or name a secret whose account may"
    )
    assert bounced["error"] == f"HTTP 401 (redirected to {base}/value)"
    assert posted["error"].startswith(
        "the source refused the query POSTed (HTTP 405), as a query past 2,000 characters is "
        "sent (too long for a URL): let POST /api/v1/query through"
    )
    sent = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    # the 403's read; /value, where /bounce led back (no header); the POST
    assert source.seen == [("GET", sent), ("GET", None), ("POST", sent)]
    zh = Words(Language.ZH)
    assert failed_said(posted["error"], zh).startswith("失败：数据源拒绝了以 POST 发送的查询")


@pytest.mark.parametrize("auth", [{}, {"auth": {"type": "basic", "secret": "secret:prom"}}])
async def test_a_posted_query_answered_403_is_said_as_refused_not_as_refused_for_its_method(
    tasks: TaskService,
    prometheus: tuple[StrictPrometheus, str, StrictPrometheus],
    auth: dict[str, Any],
) -> None:
    """A 403 refuses the request for a reason the server knows and need not say (RFC 9110
    15.5.4): the account, the query, a proxy's rule; a 405 is the method's. Said as the POST's
    fault, the user was sent to a proxy's method rules that may refuse nothing. Credentials
    sent, the account refused may be their secret's: it is named."""
    source, base, _ = prometheus
    source.open, source.forbidden = not auth, True
    long = "sum(up) + " * 250
    posted = await _baseline(tasks, {"type": "prometheus", "url": base, "query": long} | auth)

    account = "the account of secret prom" if auth else "the account"
    assert posted == {
        "value": None,
        "error": "the source, or something in front of it, refused the query (HTTP 403), sent "
        "by POST as a query past 2,000 characters is; a 403 does not say why: ask whoever runs "
        f"the source what it refuses there ({account}, the query, the method), or shorten the "
        "query to ask it by GET",
    }
    assert [method for method, _ in source.seen] == ["POST"]
    zh = Words(Language.ZH)
    assert failed_said(posted["error"], zh).startswith(
        "失败：数据源或它前面的代理拒绝了查询（HTTP 403）"
    )
    assert ("密钥 prom 的账号" in failed_said(posted["error"], zh)) == bool(auth)
    assert reason_said(posted["error"]) == (
        "数据源拒绝了查询（HTTP 403）",
        "the source refused the query (HTTP 403)",
    )


@pytest.mark.parametrize(
    ("challenge", "scheme"),
    [
        ('Digest realm="prom", qop="auth", nonce="7f1c", algorithm=SHA-256', "Digest"),
        ("Negotiate", "Negotiate"),
        # A realm is a quoted-string: its commas and words are no challenge (RFC 9110 11.6.1).
        ('Digest realm="Ops, Bearer tokens not taken", nonce="1"', "Digest"),
        ('Digest realm="Ops \\"a, Basic b\\", c", nonce="1", Negotiate', "Digest"),
        # Unclosed, a lone backslash at its end: still a realm's words (and read in linear
        # time: a quote that could fail to match was tried again at every later one).
        ('Digest realm="x, Bearer y\\', "Digest"),
    ],
    ids=["digest", "negotiate", "realm", "escaped", "unclosed"],
)
@pytest.mark.parametrize("auth", [{}, {"auth": {"type": "basic", "secret": "secret:prom"}}])
async def test_a_401_asking_a_scheme_no_auth_sends_says_so_not_basic_or_bearer_advice(
    tasks: TaskService,
    prometheus: tuple[StrictPrometheus, str, StrictPrometheus],
    challenge: str,
    scheme: str,
    auth: dict[str, Any],
) -> None:
    """A source's auth sends basic or bearer: to a 401 asking Digest or Negotiate (RFC 9110
    11.6.1) the advice to check the secret's value, or to give a bearer auth, fixes nothing."""
    source, base, _ = prometheus
    source.challenge, source.takes_ours = challenge, False
    read = await _baseline(tasks, {"type": "prometheus", "url": base, "query": "up"} | auth)

    assert read == {
        "value": None,
        "error": f"the source asks for credentials by scheme {scheme} (HTTP 401), which a "
        "source's auth does not send (it sends basic and bearer): let the source take one of "
        "them, or read it through a proxy that does",
    }
    assert len(source.seen) == 1
    zh = Words(Language.ZH)
    assert failed_said(read["error"], zh).startswith(
        f"失败：数据源要求以 {scheme} 方式认证（HTTP 401）"
    )
    assert reason_said(read["error"]) == (
        "数据源要求的认证方式不支持",
        "the source asks for an authentication scheme not supported",
    )


async def test_a_401_offering_basic_among_other_schemes_is_advised_as_basic(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """A 401 may name several challenges (RFC 9110 11.6.1): basic among them is one to give."""
    source, base, _ = prometheus
    source.challenge = 'Negotiate, Digest realm="prom", nonce="7f1c", Basic realm="prom"'
    read = await _baseline(tasks, {"type": "prometheus", "url": base, "query": "up"})

    assert read["error"].startswith(
        "the source asks for credentials (HTTP 401, scheme Basic): give the source an auth, "
        'e.g. {"type": "basic", '
    )


async def test_a_named_metric_whose_catalogue_entry_carries_auth_is_refused_naming_the_metric(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """The user wrote `metric`, never its source: a refusal naming source.auth.secret told
    them of a field they could not change."""
    source, base, _ = prometheus
    query = {"type": "prometheus", "url": base, "query": "sum(up)"}
    tasks.settings = tasks.settings.model_copy(
        update={
            "metric_catalogue": {
                "api_up": query | {"auth": {"type": "basic", "secret": "secret:prom"}},
                "ops_up": query | {"auth": {"type": "bearer", "secret": "secret:ops"}},
            }
        }
    )
    with pytest.raises(ConfigError) as refused:
        named = {"metric": "ops_up", "threshold": 1000, "check_interval_minutes": 5}
        await tasks.create(USER, "threshold_watch", named, unique("ops"))
    allowed = {"metric": "api_up", "threshold": 1000, "check_interval_minutes": 5}
    ref = await tasks.create(USER, "threshold_watch", allowed, unique("named"))
    await tasks.delete(USER, ref.task_id)

    [(where, message)] = refused.value.errors
    assert where == ("config", "metric")
    assert message == (
        f"metric 'ops_up' is read with server secret 'ops', which is not available to {USER}: "
        "ask the operator to list you on secret ops (its users in AMBIENT_SECRETS)"
    )
    assert ref.baseline == {"value": 7.0, "error": None}
    assert [method for method, _ in source.seen] == ["GET"]


async def test_a_named_metric_at_an_origin_its_secret_does_not_list_is_refused_naming_both(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """The user may use the secret, but not where the catalogue sends it: the refusal names
    the origin, not their rights to the secret (asking to be listed on it would not help)."""
    source, _, other = prometheus
    query = {"type": "prometheus", "url": source.elsewhere, "query": "sum(up)"}
    auth = {"type": "basic", "secret": "secret:prom"}
    tasks.settings = tasks.settings.model_copy(
        update={"metric_catalogue": {"api_up": query | {"auth": auth}}}
    )
    with pytest.raises(ConfigError) as refused:
        named = {"metric": "api_up", "threshold": 1000, "check_interval_minutes": 5}
        await tasks.create(USER, "threshold_watch", named, unique("elsewhere"))

    [(where, message)] = refused.value.errors
    assert where == ("config", "metric")
    assert str(message).startswith(
        f"metric 'api_up': secret 'prom' may not be sent to {source.elsewhere}:"
    )
    assert other.seen == []


async def test_a_basic_secrets_line_break_at_its_end_is_not_sent_as_part_of_the_password(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    source, base, _ = prometheus
    auth = {"type": "basic", "secret": "secret:prom-file"}
    read = await _baseline(tasks, {"type": "prometheus", "url": base, "query": "up", "auth": auth})

    assert read == {"value": 2.0, "error": None}
    sent = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    assert source.seen == [("GET", sent)]


@pytest.mark.parametrize("code", [301, 302, 307, 308])
async def test_a_posted_query_redirected_by_a_301_302_307_or_308_is_posted_again(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus], code: int
) -> None:
    """The query is the request (Prometheus takes POST as GET): a proxy's 301 or 302 keeps it
    (RFC 9110 15.4.2, 15.4.3 allow it), a 307 or 308 must."""
    source, base, _ = prometheus
    source.open = True
    query = "sum(up) + " * 250  # past 2,000 characters in a URL
    read = await _baseline(
        tasks, {"type": "prometheus", "url": f"{base}/moved{code}", "query": query}
    )

    assert [m for m, _ in source.seen] == ["POST"]
    assert read == {"value": float(len(query)), "error": None}


async def test_a_posted_query_answered_303_is_said_as_the_redirect_not_asked_without_it(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    """A 303 leads to another resource, read by GET (RFC 9110 15.4.4), where the query does not
    go: followed, Prometheus answered the empty GET 400 bad_data, said as 'Prometheus refused
    the query ...' of a query it never saw."""
    source, base, _ = prometheus
    source.open = True
    query = "sum(up) + " * 250  # past 2,000 characters in a URL
    read = await _baseline(tasks, {"type": "prometheus", "url": f"{base}/moved303", "query": query})

    assert read["value"] is None
    assert read["error"] == (
        "the source answered the query POSTed (a query past 2,000 characters is sent so) with "
        f"HTTP 303 See Other, to be read by GET at {base}/api/v1/query, without the query: give "
        "the source the URL that answers the query itself, or shorten the query"
    )
    assert source.seen == []  # the query's endpoint was not asked without the query
    zh = Words(Language.ZH)
    assert failed_said(read["error"], zh).startswith("失败：数据源把以 POST 发送的查询以 HTTP 303")
    assert reason_said(read["error"]) == (
        "数据源把 POST 的查询转到了别处",
        "the source sent the POSTed query elsewhere",
    )


async def test_a_basic_secret_that_is_not_user_password_is_a_failed_reading_naming_it(
    tasks: TaskService, prometheus: tuple[StrictPrometheus, str, StrictPrometheus]
) -> None:
    source, base, _ = prometheus
    auth = {"type": "basic", "secret": "secret:no-colon"}
    read = await _baseline(tasks, {"type": "prometheus", "url": base, "query": "up", "auth": auth})

    assert read == {
        "value": None,
        "error": "secret no-colon is not user:password, as basic credentials are: check its value",
    }
    assert source.seen == []  # nothing sent
