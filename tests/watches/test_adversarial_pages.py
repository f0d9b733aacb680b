"""Web monitors against a page server as strict as real sites (tests/watches/strict_site.py),
driven through the task service the MCP tools and the API call: a create -> the workflow ->
its poll -> the page client over loopback, then a check now for each further check (its
answer says what the check found). The server holds against the product any validator it
sends to a page that never issued it (a leak of what it saw elsewhere)."""

# ruff: noqa: F811 - the fixtures `service`, `loopback_deps` are used by name

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.watches import Page, read_page
from ambient import temporal
from ambient.clients import extract
from ambient.clients.web import WebFetcher
from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.storage import Database
from ambient.storage.polls import WatchSnapshot
from ambient.storage.repositories import EventRepository
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import TaskStatus
from ambient.watches.poll_store import PageText, advance_snapshot
from ambient.watches.service import TaskService
from api.i18n import Words
from api.routers.app_pages import failed_said
from mcp_server.voice_failures import reason_said
from tests.conftest import unique
from tests.support.servers import serve
from tests.watches.site import article
from tests.watches.strict_site import Resource, StrictSite, strict_site
from tests.watches.test_lifecycle_service import service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)


@pytest_asyncio.fixture
async def strict() -> AsyncIterator[tuple[StrictSite, str]]:
    async with strict_site() as (site, base):
        yield site, base
    assert site.violations == [] and site.leaks == []


def watch(url: str, **fields: Any) -> dict[str, Any]:
    return {"urls": [url], "check_interval_minutes": 60, **fields}


async def created(service: TaskService, config: dict[str, Any]) -> str:
    """A web monitor of ``config`` whose first check found a baseline: its task id."""
    made = await service.create(USER, "web_monitor", config, unique("adv"))
    assert made.baseline is not None, made
    assert {seen["outcome"] for seen in made.baseline["urls"].values()} == {"baseline"}, made
    return made.task_id


async def checked(service: TaskService, task_id: str, url: str) -> dict[str, Any]:
    """What a check now found on ``url``."""
    told = await service.trigger(USER, task_id)
    assert told.checked is not None, told
    found: dict[str, Any] = told.checked["urls"][url]
    return found


def status_page(nonce: str) -> bytes:
    """A status block holding what its reader sees and what no reader sees: a script's
    per-request nonce and its words, a style, a noscript fallback."""
    return (
        "<html><head><title>Status</title></head><body><div id='status'>"
        "<p>All systems normal.</p>"
        f"<script>window.csrf = '{nonce}'; showBanner('outage');</script>"
        "<style>.outage { color: red }</style>"
        "<noscript>Enable JavaScript to see outage details.</noscript>"
        "</div></body></html>"
    ).encode()


async def test_a_selectors_match_reads_no_script_style_or_noscript_text(
    service: TaskService, loopback_deps: WorkerDeps, strict: tuple[StrictSite, str]
) -> None:
    """A selector's match was read with its scripts, styles and noscript text: a keyword in
    a script hit, and a nonce a script carries changed the page at every check."""
    site, base = strict
    url = f"{base}/status"
    site.pages["/status"] = Resource(status_page("n-1"))
    task_id = await created(service, watch(url, keywords=["outage"], selectors={url: "#status"}))
    site.pages["/status"] = Resource(status_page("n-2"))
    found = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert found == {"outcome": "unchanged", "error": None}
    async with loopback_deps.db.session() as session:
        texts = await session.scalars(
            select(WatchSnapshot.text).where(WatchSnapshot.task == task_id)
        )
        assert list(texts) == ["All systems normal."]


async def test_a_page_answering_304_is_read_anew_after_an_extractor_upgrade_and_its_change_told(
    service: TaskService, strict: tuple[StrictSite, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker of new extraction rules sent the validators of a text read by the old ones:
    the page answered 304 until it changed, and its change was then taken as a new baseline
    (other rules: not comparable), never told."""
    site, base = strict
    url = f"{base}/news"
    site.pages["/news"] = Resource(article("All quiet.").encode(), etag='"v1"')
    task_id = await created(service, watch(url, keywords=["outage"]))
    # The worker now runs a release whose rules for a page's path are others.
    monkeypatch.setattr(extract, "PAGE_EXTRACTOR", "next-release")
    upgraded = await checked(service, task_id, url)
    site.pages["/news"] = Resource(article("All quiet.", "An outage.").encode(), etag='"v2"')
    changed = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert changed == {"outcome": "hit", "error": None, "hits": {"outage": ["An outage."]}}
    # Read anew once, without validators: the same text, now of the new rules.
    assert upgraded == {"outcome": "unchanged", "error": None}
    assert [a.headers.get("if-none-match") for a in site.asked] == [None, None, '"v1"']


async def test_a_304_naming_another_entity_tag_leaves_the_validators_sent(
    service: TaskService,
) -> None:
    """A 304's ETag and Last-Modified replaced the stored ones whatever it named. A cache must
    not take a 304's validators over a stored response whose strong validator differs (RFC 9111
    4.3.4), and a compliant server names the tag it matched (RFC 9110 13.1.2, 15.4.5): one
    naming another answered by something else (here If-Modified-Since alone, a farm whose
    nodes tag one file apart), and the tag it named was sent on as the page's."""
    first, earlier, later = (
        f"{day} Nov 2026 08:00:00 GMT" for day in ("Tue, 24", "Mon, 23", "Wed, 25")
    )
    answers = [
        (200, {"etag": '"node-1"', "last-modified": first}),
        (304, {"etag": '"node-2"', "last-modified": earlier}),  # another tag: not the page's
        (304, {"etag": 'W/"node-1"', "last-modified": later}),  # the one sent, weakly: taken
        (304, {}),
    ]
    asked: list[tuple[str | None, str | None]] = []

    async def page(request: Request) -> Response:
        asked.append(
            (request.headers.get("if-none-match"), request.headers.get("if-modified-since"))
        )
        status, headers = answers[len(asked) - 1]
        body = article("All quiet.") if status == 200 else b""
        return Response(body, status_code=status, headers=headers, media_type="text/html")

    async with serve(Starlette(routes=[Route("/news", page)])) as base:
        url = f"{base}/news"
        task_id = await created(service, watch(url))
        found = [await checked(service, task_id, url) for _ in range(3)]
        await service.delete(USER, task_id)
    assert found == [{"outcome": "not_modified", "error": None}] * 3
    assert asked == [
        (None, None),
        ('"node-1"', first),
        ('"node-1"', first),
        ('W/"node-1"', later),
    ]


async def test_a_redirected_pages_validators_go_only_to_the_page_that_gave_them(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """The validators of the page a redirect led to were sent to every hop: to an address
    that never issued them (another site's ETag, an identifier of it, included)."""
    site, base = strict
    url = f"{base}/old"
    site.pages["/old"] = Resource(b"", moved_to="/new")
    site.pages["/new"] = Resource(article("All quiet.").encode(), etag='"n1"')
    task_id = await created(service, watch(url))
    found = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert found == {"outcome": "not_modified", "error": None}
    sent = [(a.path, a.headers.get("if-none-match"), a.status) for a in site.asked]
    assert sent == [
        ("/old", None, 301),
        ("/new", None, 200),
        ("/old", None, 301),
        ("/new", '"n1"', 304),
    ]


async def test_a_json_api_whose_keys_come_in_another_order_is_unchanged(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """JSON objects are unordered (RFC 8259): an API that writes its keys in another order
    each time changed at every check."""
    site, base = strict
    url = f"{base}/api/status"

    def answers(body: bytes) -> None:
        site.pages["/api/status"] = Resource(body, content_type="application/json")

    answers(b'{"status": "ok", "nodes": 3}')
    task_id = await created(service, watch(url))
    answers(b'{"nodes": 3, "status": "ok"}')
    reordered = await checked(service, task_id, url)
    answers(b'{"nodes": 4, "status": "ok"}')
    changed = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert reordered == {"outcome": "unchanged", "error": None}
    assert changed == {"outcome": "changed", "error": None}


# What the release before stored beside a page's hash, by the path that reads it now (a page's
# own, a selector's, a JSON answer's).
BEFORE_PAGE_TAG = f"x7-t{version('trafilatura')}"
BEFORE_PATH_TAGS = {
    extract.PAGE_EXTRACTOR: BEFORE_PAGE_TAG,
    extract.SELECTOR_EXTRACTOR: "s9",
    extract.JSON_EXTRACTOR: "j8",
}


async def left_by_the_release_before(
    db: Database, task_id: str, config: dict[str, Any], tag: str | None = None
) -> dict[str, Any]:
    """The page states (and stored texts) a worker of the release before left for ``config``'s
    pages as they are now: its extractor tag (``tag``, else its path's), and none of this
    release's fields."""
    monitor = WebMonitorConfig.model_validate(config)
    fetcher = WebFetcher(allow_cidrs=["127.0.0.0/8"])
    states: dict[str, Any] = {}
    for url in map(str, monitor.urls):
        page = await read_page(fetcher, url, monitor)
        assert isinstance(page, Page)
        async with db.writing() as session:
            await advance_snapshot(session, task_id, PageText(url, None, page.hash, page.text))
        states[url] = {
            "hash": page.hash,
            "etag": page.fresh["etag"],
            "last_modified": page.fresh["last_modified"],
            "raw_hash": page.fresh["raw_hash"],
            "extractor": tag or BEFORE_PATH_TAGS[page.extractor],
            "reading": monitor.reading(url),
            "last_outcome": "baseline",
        }
    await fetcher.aclose()
    return states


async def run_on(
    service: TaskService, task_id: str, config: dict[str, Any], urls: dict[str, Any]
) -> dict[str, str]:
    """Start ``task_id`` on from page states a run of the release before handed over (as its
    history holds them: without this release's fields): its first check's outcome per URL."""
    handle = await service.client.start_workflow(
        "WebMonitorWorkflow",
        {"user": USER, "task": task_id, "config": config, "state": {"urls": urls}},
        id=task_id,
        task_queue=service.settings.temporal_task_queue,
        search_attributes=temporal.search_attributes("web_monitor", USER, state="active"),
    )
    first = await handle.execute_update("baseline", result_type=TaskStatus)
    return {url: seen["last_outcome"] for url, seen in first.detail["urls"].items()}


async def test_at_the_upgrade_a_page_read_by_unchanged_rules_tells_its_change(
    service: TaskService, loopback_deps: WorkerDeps, strict: tuple[StrictSite, str]
) -> None:
    """A release's extractor change (x6 to x7) made every page's next text a new baseline,
    pages it reads as x6 did too (plain HTML, trafilatura's): a change made around the upgrade,
    and its keyword hits, were never told. Only the texts its change reads otherwise (x8 and
    s10: a data table's rows, a line each) start anew; a page, a selector's match and a JSON
    answer read as before tell their change."""
    site, base = strict
    news, status, api, table = f"{base}/news", f"{base}/status", f"{base}/api", f"{base}/table"
    config = {
        **watch(news, keywords=["outage"], selectors={status: "#status"}),
        "urls": [news, status, api, table],
    }
    rows = "<tr><td>API</td><td>%s</td></tr><tr><td>Database</td><td>Operational</td></tr>"

    def pages(news_text: list[str], status_text: str, api_status: str) -> None:
        site.pages["/news"] = Resource(article(*news_text).encode())
        said = status_page("n-1").replace(b"All systems normal.", status_text.encode())
        site.pages["/status"] = Resource(said)
        body = json.dumps({"status": api_status, "nodes": 3}).encode()
        site.pages["/api"] = Resource(body, content_type="application/json")
        said = f"<html><body><h1>Status</h1><table>{rows % api_status}</table></body></html>"
        site.pages["/table"] = Resource(said.encode())

    pages(["All quiet."], "All systems normal.", "ok")
    task_id = f"web-monitor/{USER}/{unique('upgraded')}"
    left = await left_by_the_release_before(loopback_deps.db, task_id, config)
    pages(["All quiet.", "A database outage."], "Some systems degraded.", "down")
    first = await run_on(service, task_id, config, left)
    await service.delete(USER, task_id)
    assert first == {news: "changed", status: "changed", api: "changed", table: "baseline"}
    async with loopback_deps.db.session() as session:
        rows = await EventRepository(session).list(task=task_id, limit=100)
    told = [
        (row.kind, row.payload["url"], row.payload["hits"]) for row in rows if "hits" in row.payload
    ]
    assert sorted(told) == [
        ("watch.change", api, {}),
        ("watch.change", status, {}),
        ("watch.hit", news, {"outage": ["A database outage."]}),
    ]


async def test_a_page_state_of_the_release_before_sends_its_validators_nowhere_once(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """A state saved before ``validators_from`` was kept sent its validators to the watched
    URL: behind a redirect, to a hop that never issued them (another site's ETag, leaked to
    the first). Where they came from unknown, its first check sends none; then it knows."""
    site, base = strict
    url = f"{base}/old"
    site.pages["/old"] = Resource(b"", moved_to="/new")
    site.pages["/new"] = Resource(article("All quiet.").encode(), etag='"n1"')
    made = await created(service, watch(url))
    kept = (await service.get(USER, made)).detail["urls"]
    await service.delete(USER, made)
    left = {u: {k: v for k, v in s.items() if k != "validators_from"} for u, s in kept.items()}
    site.asked.clear()
    task_id = f"web-monitor/{USER}/{unique('upgraded')}"
    first = await run_on(service, task_id, watch(url), left)
    found = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert first == {url: "unchanged"} and found == {"outcome": "not_modified", "error": None}
    sent = [(a.path, a.headers.get("if-none-match"), a.status) for a in site.asked]
    assert sent == [
        ("/old", None, 301),
        ("/new", None, 200),
        ("/old", None, 301),
        ("/new", '"n1"', 304),
    ]


async def test_a_redirects_signed_query_is_kept_nowhere_and_the_next_signature_gets_a_304(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """The URL a redirect led to was kept whole in the watch's state (its workflow history,
    its status): an object store's signed URL (COS's q-signature, S3's X-Amz-Signature) put
    its secret there. Compared whole, the next signature's URL was not where the validators
    came from either: the file came whole at every check."""
    site, base = strict
    url = f"{base}/report"
    site.pages["/report"] = Resource(b"", moved_to="/report.txt?q-signature=secret-1")
    site.pages["/report.txt"] = Resource(b"All quiet.", "text/plain", etag='"r1"')
    task_id = await created(service, watch(url))
    kept = (await service.get(USER, task_id)).detail["urls"]
    site.pages["/report"] = Resource(b"", moved_to="/report.txt?q-signature=secret-2")
    found = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert "secret" not in json.dumps(kept)
    assert found == {"outcome": "not_modified", "error": None}
    sent = [(a.path, a.headers.get("if-none-match"), a.status) for a in site.asked]
    assert sent[-1] == ("/report.txt?q-signature=secret-2", '"r1"', 304)


async def test_a_json_answer_of_the_release_before_unchanged_at_the_upgrade_tells_its_next_change(
    service: TaskService, loopback_deps: WorkerDeps, strict: tuple[StrictSite, str]
) -> None:
    """A JSON answer the release before read (tagged as a page's text) came with the same bytes
    at the first check after the upgrade: its text was taken as read by this release's rules,
    its page tag kept, and its first real change, read as JSON, was a new baseline, not told."""
    site, base = strict
    url = f"{base}/api"

    def answers(status: str) -> None:
        body = json.dumps({"status": status, "nodes": 3}).encode()
        site.pages["/api"] = Resource(body, content_type="application/json")

    answers("ok")
    task_id = f"web-monitor/{USER}/{unique('upgraded')}"
    left = await left_by_the_release_before(loopback_deps.db, task_id, watch(url), BEFORE_PAGE_TAG)
    first = await run_on(service, task_id, watch(url), left)
    answers("down")
    changed = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert first == {url: "unchanged"}
    assert changed == {"outcome": "changed", "error": None}


async def test_a_redirects_query_names_the_page_its_validators_go_to_but_its_signature_does_not(
    service: TaskService,
) -> None:
    """Where a redirect led was kept without its query: /view?id=5's validators went to
    /view?id=6, another page (its server's 304 would keep id=5's text for it). A query's
    signing parameters still name no other page: the next signature's answer is a 304."""
    leads_to = ["/view?id=5&q-sign-time=1&q-signature=a"]
    asked: list[tuple[str, str | None]] = []

    async def item(request: Request) -> Response:
        return Response(status_code=302, headers={"location": leads_to[0]})

    async def view(request: Request) -> Response:
        page = request.query_params["id"]
        asked.append((page, request.headers.get("if-none-match")))
        if request.headers.get("if-none-match") == f'"v{page}"':
            return Response(status_code=304, headers={"etag": f'"v{page}"'})
        body = f"Item {page}: all quiet.".encode()
        return Response(body, media_type="text/plain", headers={"etag": f'"v{page}"'})

    async with serve(Starlette(routes=[Route("/item", item), Route("/view", view)])) as base:
        url = f"{base}/item"
        task_id = await created(service, watch(url))
        leads_to[0] = "/view?id=5&q-sign-time=2&q-signature=b"
        resigned = await checked(service, task_id, url)
        leads_to[0] = "/view?id=6&q-sign-time=3&q-signature=c"
        other = await checked(service, task_id, url)
        await service.delete(USER, task_id)
    assert resigned == {"outcome": "not_modified", "error": None}
    assert other == {"outcome": "changed", "error": None}
    assert asked == [("5", None), ("5", '"v5"'), ("6", None)]


async def test_a_redirects_secrets_are_in_no_check_error_event_or_history(
    service: TaskService, loopback_deps: WorkerDeps, strict: tuple[StrictSite, str]
) -> None:
    """The errors of a check a redirect led astray (a status from where it led, its target
    refused) named that URL whole: a signed URL's signature, a token, a password went into the
    check's error, its events and workflow history."""
    site, base = strict
    url = f"{base}/report"
    signed = "/report.txt?id=5&X-Amz-Signature=secret-1&t=1700000000&sign=secret-2"
    site.pages["/report"] = Resource(b"", moved_to=signed)
    site.pages["/report.txt"] = Resource(b"All quiet.", "text/plain")
    task_id = await created(service, watch(url))
    del site.pages["/report.txt"]
    gone = await checked(service, task_id, url)
    host = base.removeprefix("http://")
    site.pages["/report"] = Resource(
        b"", moved_to=f"http://me:secret-3@{host}/x?token=secret-4&a=1"
    )
    refused = await checked(service, task_id, url)
    history = await service.client.get_workflow_handle(task_id).fetch_history()
    await service.delete(USER, task_id)
    async with loopback_deps.db.session() as session:
        events = await EventRepository(session).list(task=task_id, limit=100)
    assert gone == {
        "outcome": "error",
        "error": f"HTTP 404 (redirected to {base}/report.txt?[redacted])",
    }
    assert refused == {
        "outcome": "error",
        "error": f"redirected to {base}/x?[redacted]: refused URL: user:password@ in the address "
        "is not accepted (it hides the real host); put credentials in a secret",
    }
    assert "secret" not in history.to_json() + json.dumps([e.payload for e in events])


@pytest.mark.parametrize(
    ("first", "other", "signed", "resigned"),
    [
        ("t=a", "t=b", "sign=s1&t=100", "sign=s2&t=200"),  # Tencent CDN type D
        ("sig=python", "sig=rust", "sv=2024&sig=s1&se=100", "sv=2024&sig=s2&se=200"),  # Azure
        ("token=USDT", "token=ETH", "e=100&token=s1", "e=200&token=s2"),  # Qiniu
        ("session=1", "session=2", "session=1&X-Amz-Signature=s1", "session=1&X-Amz-Signature=s2"),
    ],
    ids=["t", "sig", "token", "session"],
)
async def test_a_redirects_signers_parameter_names_its_page_unless_its_signer_is_there(
    service: TaskService, first: str, other: str, signed: str, resigned: str
) -> None:
    """``t`` was taken for a CDN's signing time wherever it stood: /topic?t=a's Last-Modified
    went to /topic?t=b, another page, whose server answered 304 (not modified since): b's text
    was never read; as were ``sig``, ``token`` and ``session``. Beside its signer's mark (a
    ``sign``: Tencent CDN type D; an Azure SAS's ``sv``; Qiniu's deadline ``e``) it is the
    signature's: the next signature's URL still gets its 304."""
    leads_to = [f"/topic?{first}"]
    asked: list[tuple[str, str | None]] = []
    modified = "Tue, 24 Nov 2026 08:00:00 GMT"

    async def item(request: Request) -> Response:
        return Response(status_code=302, headers={"location": leads_to[0]})

    async def topic(request: Request) -> Response:
        asked.append((request.url.query, request.headers.get("if-modified-since")))
        if request.headers.get("if-modified-since") == modified:
            return Response(status_code=304, headers={"last-modified": modified})
        body = f"Topic {request.url.query}: all quiet.".encode()
        return Response(body, media_type="text/plain", headers={"last-modified": modified})

    async with serve(Starlette(routes=[Route("/item", item), Route("/topic", topic)])) as base:
        url = f"{base}/item"
        task_id = await created(service, watch(url))
        leads_to[0] = f"/topic?{other}"
        told = await checked(service, task_id, url)
        leads_to[0] = f"/topic?{signed}"
        await checked(service, task_id, url)
        leads_to[0] = f"/topic?{resigned}"
        again = await checked(service, task_id, url)
        await service.delete(USER, task_id)
    assert told == {"outcome": "changed", "error": None}
    assert again == {"outcome": "not_modified", "error": None}
    assert asked == [(first, None), (other, None), (signed, None), (resigned, modified)]


async def test_a_page_labelled_with_a_content_coding_that_is_none_is_read_as_browsers_read_it(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """A page sent as "Content-Encoding: utf-8" (a charset, no content coding: misconfigured
    servers send it) failed every check, where Chromium shows it as sent, as it does any name
    that is no coding. A coding of the registry this client does not decode (br), and a gzip
    body cut short, are still refused: their bytes are no page (Chromium refuses the latter)."""
    site, base = strict
    url = f"{base}/news"
    page = article("All quiet.").encode()
    site.pages["/news"] = Resource(page, encoding="utf-8")
    task_id = await created(service, watch(url))
    site.pages["/news"] = Resource(article("An outage.").encode(), encoding="UTF-8")
    changed = await checked(service, task_id, url)
    site.pages["/news"] = Resource(b"\x0b\x02\x80ok\x03", encoding="br")
    brotli = await checked(service, task_id, url)
    site.pages["/news"] = Resource(gzip.compress(page)[:-12], encoding="gzip")
    cut = await checked(service, task_id, url)
    site.pages["/news"] = Resource(gzip.compress(page), encoding="pack200-gzip")
    pack200 = await checked(service, task_id, url)
    site.pages["/news"] = Resource(gzip.compress(page), encoding="utf-8")
    gzipped = await checked(service, task_id, url)
    site.pages["/news"] = Resource(gzip.compress(page), encoding="gzip, foo")  # labelled gzip
    listed = await checked(service, task_id, url)
    site.pages["/news"] = Resource(gzip.compress(page), encoding="x gzip")  # a name with a space
    spaced = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert changed == {"outcome": "changed", "error": None}
    undecoded = (
        "the answer is in Content-Encoding %s, which is not decoded here (gzip and deflate are: "
        "ask its server for one of those, or none), and cannot be read"
    )
    misnamed = (
        "the answer is gzip bytes under Content-Encoding %s, which is no content coding (ask its "
        "server to label them gzip alone), and cannot be read"
    )
    assert brotli == {"outcome": "error", "error": undecoded % "br"}
    assert cut == {
        "outcome": "error",
        "error": "the connection ended before the whole answer: the gzip body ends before its "
        "end (truncated)",
    }
    assert [pack200, gzipped, listed, spaced] == [
        {"outcome": "error", "error": undecoded % "pack200-gzip"},
        {"outcome": "error", "error": misnamed % "utf-8"},
        {"outcome": "error", "error": misnamed % "foo"},
        {"outcome": "error", "error": misnamed % "x gzip"},
    ]
    # Said in the reader's words, as a fetch's other failures are (English alone before); a
    # name with a space too (it was "HttpProtocolError: ...", in English on a Chinese page).
    zh = Words(Language.ZH)
    assert [failed_said(check["error"], zh) for check in (gzipped, spaced, brotli)] == [
        "失败：回答是 gzip 压缩的字节，却标为 Content-Encoding utf-8，这不是一种压缩编码"
        "（请让它的服务器只标 gzip），读不了",
        "失败：回答是 gzip 压缩的字节，却标为 Content-Encoding x gzip，这不是一种压缩编码"
        "（请让它的服务器只标 gzip），读不了",
        "失败：回答以 Content-Encoding br 发送，这里不解码这种编码（只解码 gzip 和 deflate："
        "请让它的服务器用其中一种，或不压缩），读不了",
    ]
    assert (
        reason_said(gzipped["error"])
        == reason_said(spaced["error"])
        == reason_said(brotli["error"])
        == ("回答的压缩方式读不了", "the answer is compressed in a way that cannot be read")
    )


async def test_a_redirect_naming_no_one_location_fails_its_check_saying_why(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """A 302 without a Location had its body (a note of the move) read as the page: a change
    told, and another when the server named the page again. Two Location fields were joined
    into one URL ("/a, /b") and followed there. Neither names one page (RFC 9110 15.4; Chromium
    refuses two other ones): the check fails saying why. Two naming the same page lead there."""
    site, base = strict
    url = f"{base}/news"
    site.pages["/news"] = Resource(article("All quiet.").encode())
    task_id = await created(service, watch(url))
    site.pages["/news"] = Resource(b"<p>Found</p>", moved_to="", moved_status=302)
    unnamed = await checked(service, task_id, url)
    site.pages["/news"] = Resource(b"", moved_to="/a", also_to="/b", moved_status=302)
    two = await checked(service, task_id, url)
    site.pages["/news"] = Resource(b"", moved_to="/a", also_to="/a", moved_status=302)
    site.pages["/a"] = Resource(article("All quiet.").encode())
    same = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert unnamed == {
        "outcome": "error",
        "error": "the server answered HTTP 302, a redirect, with no Location to follow: no page "
        "to read; open the URL in a browser to find where it moved, and watch that one",
    }
    assert two == {
        "outcome": "error",
        "error": "the answer names two different Locations: a redirect names "
        "one target; watch the page it should lead to, or ask its site to send one",
    }
    assert same == {"outcome": "unchanged", "error": None}


async def test_a_cos_sts_signed_redirect_is_one_page_and_shows_no_credential(
    service: TaskService,
) -> None:
    """A redirect to a COS URL presigned with temporary keys (STS): its x-cos-security-token,
    a credential, was shown in the check's error and workflow history, and a token new at each
    signature made every check's validators another page's (never a 304)."""
    leads_to: list[str] = []
    asked: list[str | None] = []

    def sign(n: int) -> None:
        leads_to[:] = [
            f"/report.txt?q-sign-algorithm=sha1&q-ak=AKIDtmp{n}&q-sign-time=17000{n}%3B17999"
            f"&q-key-time=17000{n}%3B17999&q-header-list=host&q-url-param-list="
            f"&q-signature=sig{n}&x-cos-security-token=sts-secret-{n}"
        ]

    async def item(request: Request) -> Response:
        return Response(status_code=302, headers={"location": leads_to[0]})

    async def report(request: Request) -> Response:
        asked.append(request.headers.get("if-none-match"))
        if len(asked) > 2:
            return Response(status_code=404)
        if request.headers.get("if-none-match") == '"r1"':
            return Response(status_code=304, headers={"etag": '"r1"'})
        return Response(b"All quiet.", media_type="text/plain", headers={"etag": '"r1"'})

    routes = [Route("/item", item), Route("/report.txt", report)]
    async with serve(Starlette(routes=routes)) as base:
        url = f"{base}/item"
        sign(1)
        task_id = await created(service, watch(url))
        sign(2)
        resigned = await checked(service, task_id, url)
        sign(3)
        gone = await checked(service, task_id, url)
        history = await service.client.get_workflow_handle(task_id).fetch_history()
        await service.delete(USER, task_id)
    assert resigned == {"outcome": "not_modified", "error": None}
    assert asked == [None, '"r1"', '"r1"']
    shown = f"{base}/report.txt?[redacted]"
    assert gone == {"outcome": "error", "error": f"HTTP 404 (redirected to {shown})"}
    assert "sts-secret" not in history.to_json()


def stamped_page(stamp: str, *, news: str = "") -> bytes:
    """A status page whose reader sees the same text at every request, and a stamp it hides
    (a hidden attribute, an inline display:none) that changes at each."""
    visible = "The quarterly maintenance window is scheduled for Saturday night. " * 3
    return (
        "<html><body><article><h1>Status</h1>"
        f"<p>{visible}</p>"
        f"<div style='display: none;'>rendered by node-7, request {stamp}</div>"
        f"<p hidden>Major outage (draft {stamp})</p>"
        f"<p>All systems operational.{news}</p></article></body></html>"
    ).encode()


async def test_what_a_page_hides_from_its_reader_is_no_change_and_no_keyword_hit(
    service: TaskService, loopback_deps: WorkerDeps, strict: tuple[StrictSite, str]
) -> None:
    """Text a page hides (its hidden attribute, an inline display:none) was read as its text:
    a per-request stamp in it changed the page at every check, and trafilatura merged it into
    the visible paragraph's line, so a keyword in that unchanged paragraph hit every time; a
    word nobody sees ("outage") hit too."""
    site, base = strict
    url = f"{base}/status"
    site.pages["/status"] = Resource(stamped_page("1"))
    task_id = await created(service, watch(url, keywords=["maintenance", "outage"]))
    site.pages["/status"] = Resource(stamped_page("2"))
    same = await checked(service, task_id, url)
    site.pages["/status"] = Resource(stamped_page("3", news=" Payments degraded."))
    changed = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert same == {"outcome": "unchanged", "error": None}
    assert changed == {"outcome": "changed", "error": None}
    async with loopback_deps.db.session() as session:
        texts = list(
            await session.scalars(select(WatchSnapshot.text).where(WatchSnapshot.task == task_id))
        )
    assert all("node-7" not in text and "outage" not in text for text in texts), texts


async def test_a_page_labelled_with_a_bytes_codec_is_read_and_the_watchs_other_page_too(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """A page labelled "charset=hex" (or base64, quoted-printable: Python codecs of bytes, no
    text encoding) failed the whole poll: the poll was retried, every URL fetched again each
    time, and the create answered no baseline, the watch's healthy page's neither. The label
    is passed over, as browsers pass over a label they do not know."""
    site, base = strict
    good, odd = f"{base}/good", f"{base}/odd"
    site.pages["/good"] = Resource(article("All quiet.").encode())
    hexed = "text/html; charset=hex"
    site.pages["/odd"] = Resource(article("一切正常。").encode(), content_type=hexed)
    task_id = await created(service, {**watch(good, keywords=["故障"]), "urls": [good, odd]})
    news = article("一切正常。", "数据库故障。").encode()
    site.pages["/odd"] = Resource(news, content_type=hexed)
    changed = await checked(service, task_id, odd)
    await service.delete(USER, task_id)
    assert changed == {"outcome": "hit", "error": None, "hits": {"故障": ["数据库故障。"]}}
    assert site.answers("/good") == [200, 200]  # once a check: no poll asked again


async def test_a_keyword_across_a_hidden_span_inside_a_paragraph_is_a_hit(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """A hidden span inside a paragraph (against copying) split its line in two where it
    stood: "数据库故障" across it was never a hit."""
    site, base = strict
    url = f"{base}/news"
    site.pages["/news"] = Resource(article("一切正常。").encode())
    task_id = await created(service, watch(url, keywords=["数据库故障"]))
    said = "<p>下午发生数据库<span style='display:none'>7f3a</span>故障</p>"
    site.pages["/news"] = Resource(f"<html><body>{said}</body></html>".encode())
    found = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert found == {
        "outcome": "hit",
        "error": None,
        "hits": {"数据库故障": ["下午发生数据库故障"]},
    }


def rss(*descriptions: str) -> bytes:
    items = "".join(
        f"<item><title>entry {n}</title><description>{d}</description></item>"
        for n, d in enumerate(descriptions)
    )
    channel = f"<channel><title>Status</title>{items}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'.encode()


async def test_a_new_feed_entry_whose_script_names_a_keyword_is_no_hit(
    service: TaskService, strict: tuple[StrictSite, str]
) -> None:
    """A feed entry's escaped <script> was read as its text: "outage" in a tracking call hit
    the keyword, though no reader of the entry sees it."""
    site, base = strict
    url = f"{base}/feed"
    kind = "application/rss+xml"
    site.pages["/feed"] = Resource(rss("&lt;p&gt;Quiet.&lt;/p&gt;"), content_type=kind)
    task_id = await created(service, watch(url, keywords=["outage"]))
    done = "&lt;p&gt;Maintenance done.&lt;script&gt;report('outage')&lt;/script&gt;&lt;/p&gt;"
    site.pages["/feed"] = Resource(rss("&lt;p&gt;Quiet.&lt;/p&gt;", done), content_type=kind)
    found = await checked(service, task_id, url)
    await service.delete(USER, task_id)
    assert found == {"outcome": "changed", "error": None}
