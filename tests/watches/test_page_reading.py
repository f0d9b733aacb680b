"""What a watch reads from pages of real sites: pages rendered by JavaScript, selectors that
miss, keywords written in another width, JSON APIs watched as pages."""

# ruff: noqa: F811 - the fixtures `site`, `loopback_deps`, `any_db` and `postgres_url` are
# imported and used by name

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.notify import NotifyActivities
from activities.polling import PagePoller
from activities.watches import WatchActivities
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.web import WebFetcher
from ambient.deps import WorkerDeps
from ambient.domain.checks import CheckPageInput
from ambient.storage import Database
from ambient.storage.models import Event
from ambient.storage.polls import WatchSnapshot
from ambient.storage.repositories import EventRepository
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import TaskStatus
from ambient.watches.polling import PollRequest
from tests.conftest import running_worker, unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.servers import serve
from tests.support.waits import ask, eventually
from tests.watches.site import Site, article
from tests.watches.test_poll_ends import any_db  # noqa: F401  (fixture)
from tests.watches.test_polling import _changes, _checks, fast, start
from tests.watches.test_workflows import loopback_deps, site  # noqa: F401  (fixtures)

# A single-page app: the server sends a shell, JavaScript renders the text.
APP_SHELL = (
    "<html><head><title>Status</title><script src='/app.js'></script></head>"
    "<body><div id='root'></div><script>render(document.getElementById('root'))</script>"
    "</body></html>"
)


async def test_a_page_without_text_or_a_selector_that_matches_nothing_is_said_at_creation(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/app"] = APP_SHELL
    state.pages["/news"] = article("Markets are calm today.")
    state.pages["/alerts"] = "<html><body><div id='alerts'></div><p>Nothing new.</p></body></html>"
    config = fast(
        [f"{base}/app", f"{base}/news", f"{base}/alerts"],
        selectors={f"{base}/news": "#price", f"{base}/alerts": "#alerts"},
    )
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config, every=60.0, window=120.0)
        baseline = await handle.execute_update("baseline", result_type=TaskStatus)
        await handle.signal("stop")
        await handle.result()
    urls: Any = baseline.detail["urls"]
    assert urls[f"{base}/app"]["last_outcome"] == "error"
    assert urls[f"{base}/app"]["last_error"] == (
        "cannot read the page's text: the page has no text (is it rendered by JavaScript?)"
    )
    assert urls[f"{base}/news"]["last_outcome"] == "error"
    assert urls[f"{base}/news"]["last_error"] == (
        "cannot read the page's text: the selector '#price' matches nothing on the page"
    )
    # An element that is there but empty (no alert today) is a page to watch, not an error.
    assert urls[f"{base}/alerts"]["last_outcome"] == "baseline"


# The first bytes of a PNG image (its signature and header chunk) and of a ZIP archive.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06"
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256))


async def test_an_image_or_a_file_of_bytes_is_a_failed_check_not_a_page_of_garbage(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.encoded["/logo.png"] = (PNG, "image/png")
    state.encoded["/export"] = (ZIP, "application/octet-stream")
    state.encoded["/bare"] = (ZIP, "")
    # A text file a bucket serves as bytes (no type given at upload) is still read.
    state.encoded["/notes.txt"] = ("版本 1.2 已发布\n".encode(), "binary/octet-stream")
    urls = [f"{base}/logo.png", f"{base}/export", f"{base}/bare", f"{base}/notes.txt"]
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, fast(urls), every=60.0, window=120.0)
        baseline = await handle.execute_update("baseline", result_type=TaskStatus)
        await handle.signal("stop")
        await handle.result()
    seen: Any = baseline.detail["urls"]
    assert {url: (seen[url]["last_outcome"], seen[url]["last_error"]) for url in urls} == {
        f"{base}/logo.png": ("error", "cannot read the page's text: " + NOT_TEXT % "image/png"),
        f"{base}/export": (
            "error",
            "cannot read the page's text: " + NOT_TEXT % "application/octet-stream",
        ),
        f"{base}/bare": ("error", "cannot read the page's text: " + NOT_TEXT % "no Content-Type"),
        f"{base}/notes.txt": ("baseline", None),
    }


NOT_TEXT = "the page is not text (%s): a web monitor reads HTML, plain text or JSON"


async def test_a_json_api_watched_as_a_page_hits_its_chinese_keyword_and_shows_the_changed_field(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site

    def serve(status: str) -> None:
        # json.dumps' default, as many APIs send it: one line, non-ASCII escaped (\u6570...).
        body = json.dumps({"service": "订单", "status": status, "notes": ["x" * 2000]})
        state.encoded["/api/status"] = (body.encode(), "application/json")

    serve("正常")
    config = fast([f"{base}/api/status"], keywords=["数据库故障"])
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config)
        await eventually(lambda: _checks(handle, 2))
        serve("数据库故障")
        await handle.signal("check_now")
        await eventually(lambda: _changes(handle, 1))
        await handle.signal("stop")
        await handle.result()
    async with loopback_deps.db.session() as session:
        rows = await EventRepository(session).list(task=handle.id, limit=100)
    (hit,) = [row.payload for row in rows if row.kind == "watch.hit"]
    # Its keys in order: "status" is the last.
    assert hit["hits"] == {"数据库故障": ["status: 数据库故障"]}
    assert hit["excerpt"] == "-status: 正常\n+status: 数据库故障"


def sections(*b: str) -> str:
    """A page of two parts, #a and #b (its lines)."""
    paragraphs = "".join(f"<p>{line}</p>" for line in b)
    return f"<html><body><div id='a'><p>Alpha news.</p></div><div id='b'>{paragraphs}</div>"


async def test_an_updated_selector_reads_the_page_anew_and_its_text_is_no_change(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    url = f"{base}/sections"
    state.pages["/sections"] = sections("Rocket launch planned.")
    config = fast([url], keywords=["launch"], selectors={url: "#a"})
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config)
        await eventually(lambda: _checks(handle, 2))
        moved = fast([url], keywords=["launch"], selectors={url: "#b"})
        await handle.execute_update("update_config", moved.model_dump(mode="json"))
        # The page as the new selector reads it is the new baseline, not a change.
        after: Any = await eventually(lambda: _outcome(handle, url, "baseline"))
        checks = (await ask(handle, "status", result_type=TaskStatus)).checks
        await eventually(lambda: _checks(handle, checks + 2))
        state.pages["/sections"] = sections("Rocket launch planned.", "Second launch done.")
        await eventually(lambda: _changes(handle, 1))
        await handle.signal("stop")
        await handle.result()
    assert after["last_error"] is None
    async with loopback_deps.db.session() as session:
        rows = await EventRepository(session).list(task=handle.id, limit=100)
    assert [row.kind for row in reversed(rows)] == ["watch.hit", "watch.stopped"]
    assert rows[-1].payload["hits"] == {"launch": ["Second launch done."]}


async def _outcome(handle: Any, url: str, outcome: str) -> Any:
    seen = (await ask(handle, "status", result_type=TaskStatus)).detail["urls"][url]
    return seen if seen["last_outcome"] == outcome else None


# A status file whose writer cut a line mid-write: a NUL byte before its newline.
STATUS = "service a: {a}\nservice b: ok\x00\n"


async def test_a_plain_text_page_holding_a_nul_is_checked_and_its_change_told(
    any_db: Database,
) -> None:
    # A briefing's news check: on PostgreSQL (its text holds no NUL) the page's snapshot was
    # refused and the check raised at every run. A NUL is no text, as in a page's HTML.
    site = Site()
    site.encoded["/status.txt"] = (STATUS.format(a="ok").encode(), "text/plain")
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    activities = WatchActivities(any_db, fetcher, TencentCloud(None, region="ap-guangzhou"))
    async with serve(site.app()) as base:
        check = CheckPageInput(task=unique("news"), url=f"{base}/status.txt", keywords=["down"])
        first = await ActivityEnvironment().run(activities.check_page, check)
        site.encoded["/status.txt"] = (STATUS.format(a="down").encode(), "text/plain")
        changed = await ActivityEnvironment().run(activities.check_page, check)
    assert (first.outcome, changed.outcome) == ("baseline", "changed")
    assert changed.hits == {"down": ["service a: down"]}
    async with any_db.session() as session:
        texts = await session.scalars(
            select(WatchSnapshot.text).where(WatchSnapshot.task == check.task)
        )
        assert sorted(texts) == ["service a: down\nservice b: ok", "service a: ok\nservice b: ok"]


async def test_a_web_monitors_change_on_a_plain_text_page_holding_a_nul_is_stored_and_told(
    any_db: Database,
) -> None:
    # On PostgreSQL the poll's write of the page was refused at every check: a failed write
    # counted, its change never stored nor told.
    site = Site()
    site.encoded["/status.txt"] = (STATUS.format(a="ok").encode(), "text/plain")
    task = f"web-monitor/alice/{unique('status')}"
    poller = PagePoller(
        any_db,
        WebFetcher(allow_cidrs=["127.0.0.1/32"]),
        NotifyActivities(any_db, ChannelRegistry()),
    )
    async with serve(site.app()) as base:
        config = WebMonitorConfig.model_validate(
            {"urls": [f"{base}/status.txt"], "keywords": ["down"], "check_interval_minutes": 1}
        )
        request = PollRequest(
            user="alice",
            task=task,
            workflow_id=task,
            life="life-1",
            config=config,
            targets=[],
            interval_seconds=60.0,
            window_seconds=600.0,
            first_only=True,
            poll=1,
        )
        first = await ActivityEnvironment().run(poller.poll_pages, request)
        site.encoded["/status.txt"] = (STATUS.format(a="down").encode(), "text/plain")
        again = request.model_copy(update={"urls": first.urls, "seq": first.seq, "poll": 2})
        changed = await ActivityEnvironment().run(poller.poll_pages, again)
    assert (first.event_failures, changed.event_failures) == (0, 0)
    hits = [(event.kind, event.payload["hits"]) for event in changed.events]
    assert hits == [("watch.hit", {"down": ["service a: down"]})]
    async with any_db.session() as session:
        kinds = await session.scalars(select(Event.kind).where(Event.task == task))
        assert list(kinds) == ["watch.hit"]
