import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.watches import NotModified, SameBytes, WatchActivities, read_page
from ambient.clients.extract import PAGE_EXTRACTOR, main_text
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.web import FetchResult, WebFetcher
from ambient.clients.web_errors import (
    FetchError,
    HttpStatusError,
    RefusedAddressError,
    SignInRequiredError,
    TooLargeError,
    TooManyRedirectsError,
)
from ambient.domain.checks import CheckPageInput, MetricReading, ReadMetricInput
from ambient.domain.users import Language
from ambient.storage import Database
from ambient.storage.polls import WatchSnapshot
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import UrlState
from ambient.watches.page_changes import diff_pages
from ambient.words import Words, error_words
from tests.conftest import unique
from tests.support.servers import free_port, http_client, serve
from tests.watches.site import Site, article

LOOPBACK = ["127.0.0.1/32"]


@pytest_asyncio.fixture
async def site() -> AsyncIterator[tuple[Site, str]]:
    state = Site()
    async with serve(state.app()) as base:
        yield state, base


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client() as client:
        yield client


async def test_conditional_get_gets_304_for_an_unchanged_page(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    state, base = site
    state.pages["/a"] = article("hello")
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    first = await fetcher.fetch(f"{base}/a")
    again = await fetcher.fetch(f"{base}/a", etag=first.etag)
    assert first.status == 200 and first.etag
    assert again.not_modified and again.body == b""
    assert state.requests == [("/a", 200), ("/a", 304)]


async def test_loopback_private_and_metadata_addresses_are_refused(http: httpx.AsyncClient) -> None:
    fetcher = WebFetcher()
    for url in (
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://10.0.0.8/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/",
    ):
        # A metadata address is said as one, with the one allowance that opens it.
        with pytest.raises(RefusedAddressError, match=r"non-public address|cloud metadata"):
            await fetcher.fetch(url)
    with pytest.raises(RefusedAddressError, match="only http"):
        await fetcher.fetch("file:///etc/passwd")


async def test_redirect_to_a_private_address_is_refused(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    state, base = site
    state.redirects["/go"] = "http://10.1.2.3/admin"
    with pytest.raises(RefusedAddressError, match=r"10\.1\.2\.3"):
        await WebFetcher(allow_cidrs=LOOPBACK).fetch(f"{base}/go")
    assert state.requests == [("/go", 302)]


async def test_a_meta_refresh_stub_is_followed_as_a_browser_follows_it(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    """A Chinese portal's home is a stub, <meta http-equiv="refresh" content="0;url=/cn/">:
    the watch read the stub ("the page has no text (is it rendered by JavaScript?)", or its
    one sentence forever). Followed now, as a redirect is, through the destination guard; a
    page refreshing itself later (content="300") is the page."""
    state, base = site
    stub = (
        "<html><head><meta content='0; URL=/cn/index.html' http-equiv='Refresh'>"
        "<title>跳转</title></head><body>正在跳转…</body></html>"
    )
    state.pages["/"] = stub
    state.pages["/cn/index.html"] = article("今日新闻：系统升级完成。")
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    page = await fetcher.fetch(f"{base}/")
    assert page.url == f"{base}/cn/index.html" and "系统升级完成" in page.body.decode()
    state.pages["/away"] = stub.replace("/cn/index.html", "http://10.1.2.3/admin")
    with pytest.raises(RefusedAddressError, match=r"redirected to http://10\.1\.2\.3/admin"):
        await fetcher.fetch(f"{base}/away")
    state.pages["/live"] = article("比分直播").replace(
        "<head>", '<head><meta http-equiv="refresh" content="300">'
    )
    assert (await fetcher.fetch(f"{base}/live")).url == f"{base}/live"
    state.pages["/loop"] = stub.replace("/cn/index.html", "/loop")
    assert (await fetcher.fetch(f"{base}/loop")).url == f"{base}/loop"
    # A refresh a browser does not read as a tag: commented out, or for readers without
    # scripts (<noscript>, "enable JavaScript"): the page is the page, not where it points.
    for hidden in (
        "<!-- <meta http-equiv='refresh' content='0;url=/cn/index.html'> -->",
        "<noscript><meta http-equiv='refresh' content='0;url=/cn/index.html'></noscript>",
        '<script>w(\'<meta http-equiv="refresh" content="0;url=/cn/index.html">\')</script>',
    ):
        state.pages["/here"] = article("本页内容").replace("<head>", "<head>" + hidden)
        assert (await fetcher.fetch(f"{base}/here")).url == f"{base}/here", hidden


@pytest.mark.parametrize("authorization", [None, "Bearer tok-123"])
async def test_a_redirect_to_a_port_no_url_has_is_refused_as_an_address(
    site: tuple[Site, str], http: httpx.AsyncClient, authorization: str | None
) -> None:
    """Whether the header goes on was asked of the URL led to before the guard: its port
    99999 raised a bare ValueError (an activity failure, not a failed check)."""
    state, base = site
    state.redirects["/go"] = "http://127.0.0.1:99999/x"
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    with pytest.raises(RefusedAddressError, match=r"redirected to http://127\.0\.0\.1:99999/x"):
        await fetcher.fetch(f"{base}/go", authorization=authorization)
    assert state.requests == [("/go", 302)]


async def test_an_error_status_names_no_url_but_where_a_redirect_led(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    """ "HTTP 404 from <the page>" named the page its row already shows: said twice."""
    state, base = site
    state.redirects["/moved"] = "/gone"
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    with pytest.raises(HttpStatusError) as direct:
        await fetcher.fetch(f"{base}/gone")
    with pytest.raises(HttpStatusError) as moved:
        await fetcher.fetch(f"{base}/moved")
    assert (str(direct.value), direct.value.status) == ("HTTP 404", 404)
    assert str(moved.value) == f"HTTP 404 (redirected to {base}/gone)"


async def test_a_redirect_to_a_sign_in_form_is_said_not_taken_as_the_page(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    """A page behind a sign-in redirects to its form: the form was read as the page (its
    baseline), and no change of the page behind it was ever seen, nor the user told."""
    state, base = site
    state.redirects["/dashboard"] = "/accounts/login?next=/dashboard"
    form = '<form method="post"><input name="user"><input type="password" name="pw"></form>'
    state.pages["/accounts/login"] = f"<html><body><h1>Sign in</h1>{form}</body></html>"
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    with pytest.raises(SignInRequiredError) as sent:
        await fetcher.fetch(f"{base}/dashboard")
    assert str(sent.value).startswith(
        f"the page sends the browser to sign in at {base}/accounts/login?[redacted]: "
    )
    # The sign-in page itself, watched as given, is a page; so is a redirect to a page with
    # a password field that is no sign-in path (a settings page), and to a login path
    # without one (a landing page).
    assert (await fetcher.fetch(f"{base}/accounts/login")).status == 200
    # Watched on purpose behind a trailing slash's or a language's redirect: still that page.
    state.redirects["/signin"] = "/en/signin/"
    state.pages["/en/signin/"] = f"<html><body>{form}</body></html>"
    assert (await fetcher.fetch(f"{base}/signin")).status == 200
    # An open page whose redirect's query names a sign-in path is no sign-in form.
    state.redirects["/home"] = "/welcome?from=/login"
    state.pages["/welcome"] = f"<html><body>Welcome {form}</body></html>"
    assert (await fetcher.fetch(f"{base}/home")).status == 200
    state.redirects["/me"] = "/settings"
    state.pages["/settings"] = f"<html><body>{form}</body></html>"
    assert (await fetcher.fetch(f"{base}/me")).status == 200
    state.redirects["/start"] = "/login-help"
    state.pages["/login-help"] = "<html><body>How to sign in</body></html>"
    assert (await fetcher.fetch(f"{base}/start")).status == 200


async def test_redirect_chains_are_capped(site: tuple[Site, str], http: httpx.AsyncClient) -> None:
    state, base = site
    for i in range(8):
        state.redirects[f"/r{i}"] = f"/r{i + 1}"
    with pytest.raises(TooManyRedirectsError):
        await WebFetcher(allow_cidrs=LOOPBACK, max_redirects=5).fetch(f"{base}/r0")
    state.pages["/r8"] = article("end")
    ok = await WebFetcher(allow_cidrs=LOOPBACK, max_redirects=8).fetch(f"{base}/r0")
    assert ok.url.endswith("/r8")


async def test_a_redirect_loop_is_said_as_a_loop_with_its_hops_at_its_first_return(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    """A site that sends a monitor round in a loop (a cookie it sets and asks back, which a
    monitor does not keep) was said "more than 5 redirects", after asking it six times."""
    state, base = site
    state.redirects["/home"] = "/lang"
    state.redirects["/lang"] = "/home"
    with pytest.raises(TooManyRedirectsError) as failed:
        await WebFetcher(allow_cidrs=LOOPBACK, max_redirects=5).fetch(f"{base}/home")
    said = str(failed.value)
    assert said == (
        "the redirects go round in a loop: the site may want a cookie or a sign-in, which a "
        f"monitor does not keep; watch the page a browser ends on ({base}/home → /lang → /home)"
    ), said
    zh = error_words(said, Words(Language.ZH))
    assert zh.startswith("重定向形成了循环：网站可能需要 cookie 或登录"), zh
    assert zh.endswith(f"（{base}/home → /lang → /home）"), zh
    # A loop of long URLs is said within what a check keeps of its error (500 characters),
    # each hop told apart by its end.
    long = [f"/region/ap-guangzhou/overview/services/{'x' * 40}/step-{i}" for i in range(6)]
    for here, there in zip(long, [*long[1:], long[0]], strict=True):
        state.redirects[here] = there
    with pytest.raises(TooManyRedirectsError) as failed:
        await WebFetcher(allow_cidrs=LOOPBACK, max_redirects=8).fetch(f"{base}{long[0]}")
    said = str(failed.value)
    assert len(said) < 500 and all(f"step-{i}" in said for i in range(6)), said
    assert error_words(said, Words(Language.ZH)).startswith("重定向形成了循环"), said


async def test_a_redirect_to_a_chinese_path_sent_as_raw_utf8_is_followed_as_browsers_do(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    state, base = site
    # Some servers (an nginx `return 301 /新闻`) send the Location's path as raw UTF-8 bytes,
    # not percent-encoded; browsers read it as UTF-8.
    state.redirects["/old"] = "/新闻/今日".encode().decode("latin-1")  # the bytes on the wire
    state.redirects["/percent"] = "/%E6%96%B0%E9%97%BB/%E4%BB%8A%E6%97%A5"
    state.pages["/新闻/今日"] = article("今日新闻")
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    for start in ("/old", "/percent"):
        result = await fetcher.fetch(f"{base}{start}")
        assert "今日新闻" in result.text()
    assert state.requests == [
        ("/old", 302),
        ("/新闻/今日", 200),
        ("/percent", 302),
        ("/新闻/今日", 200),
    ]


async def test_a_redirect_to_a_path_with_spaces_is_followed_as_browsers_do(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    state, base = site
    # A CMS's Location with a space left in its path: browsers send it as %20.
    state.redirects["/report"] = "/daily report.html?day=25 Nov"
    state.pages["/daily report.html"] = article("Daily report")
    result = await WebFetcher(allow_cidrs=LOOPBACK).fetch(f"{base}/report")
    assert "Daily report" in result.text()
    assert result.url == f"{base}/daily%20report.html?day=25%20Nov"


async def test_oversize_body_and_error_status(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    _, base = site
    fetcher = WebFetcher(allow_cidrs=LOOPBACK, max_bytes=10_000)
    with pytest.raises(TooLargeError):
        await fetcher.fetch(f"{base}/huge")
    with pytest.raises(HttpStatusError, match="404"):
        await fetcher.fetch(f"{base}/nope")


# A European page that says nothing of its encoding (no charset, no <meta>), saved in
# Latin-1, and an old Chinese page in GBK: each read as the browser of its readers reads it.
UNDECLARED = [
    ("/latin-1", "Müller öffnet das Café an der Straße in Zürich; café crème à 2 €.", "cp1252"),
    # Every accent before a letter: the bytes are valid GB18030 too (Müller was M黮ler).
    ("/latin-1-words", "Müller öffnet Straßencafés in Zürich", "cp1252"),
    ("/gbk", "下午发生数据库故障，已恢复。朱镕基", "gbk"),
    ("/gbk-traditional", "這是一個繁體中文的頁面，們說話", "gbk"),
]


async def test_a_page_that_declares_no_encoding_is_read_as_latin_1_or_gbk_as_it_reads(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    state, base = site
    for path, text, encoding in UNDECLARED:
        state.encoded[path] = (article(text).encode(encoding), "text/html")
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    for path, text, _ in UNDECLARED:
        result = await fetcher.fetch(f"{base}{path}")
        assert main_text(result.text()) == text
    pages = [main_text((await fetcher.fetch(f"{base}{path}")).text()) for path, *_ in UNDECLARED]
    hits = diff_pages([], pages, ["café", "Zürich", "数据库故障"]).hits
    assert hits == {"café": pages[:1], "Zürich": pages[:2], "数据库故障": pages[2:3]}


async def test_a_meta_saying_utf_16_in_a_page_without_byte_order_mark_means_utf_8(
    site: tuple[Site, str], http: httpx.AsyncClient
) -> None:
    """The <meta> was readable as ASCII, so the page is not UTF-16 (WHATWG: such a label is
    taken as UTF-8)."""
    state, base = site
    for label in ("utf-16", "UTF-16LE", "utf-16be"):
        html = article("数据库故障已恢复").replace("<head>", f'<head><meta charset="{label}">')
        state.encoded[f"/{label}"] = (html.encode(), "text/html")
        result = await WebFetcher(allow_cidrs=LOOPBACK).fetch(f"{base}/{label}")
        assert main_text(result.text()) == "数据库故障已恢复", label


def test_extraction_takes_main_text_or_a_css_selector() -> None:
    html = (
        "<html><body><nav>Menu</nav><div id='price'>42 USD</div>"
        + "<article>"
        + "<p>Long story about machine learning.</p>" * 5
        + "</article></body></html>"
    )
    assert "machine learning" in main_text(html)
    assert main_text(html, "#price") == "42 USD"


async def test_a_digest_page_is_compared_with_its_newest_stored_text_hits_on_new_lines_only(
    site: tuple[Site, str], http: httpx.AsyncClient, db: Database
) -> None:
    state, base = site
    url = f"{base}/news"
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    env = ActivityEnvironment()
    state.pages["/news"] = article("AI beats humans at chess.", "Weather is sunny.")
    check = CheckPageInput(task="t1", url=url, keywords=["AI", "machine learning"])
    first = await env.run(activities.check_page, check)
    assert first.outcome == "baseline" and first.hits == {}
    assert (await env.run(activities.check_page, check)).outcome == "unchanged"

    state.pages["/news"] = article(
        "AI beats humans at chess.", "Weather is rainy.", "A machine learning chip ships."
    )
    changed = await env.run(activities.check_page, check)
    assert changed.outcome == "changed"
    assert changed.hits == {"machine learning": ["A machine learning chip ships."]}
    assert "+Weather is rainy." in changed.excerpt
    # The next run compares with what this one stored; another task has its own texts.
    assert (await env.run(activities.check_page, check)).outcome == "unchanged"
    other = await env.run(activities.check_page, check.model_copy(update={"task": "t2"}))
    assert other.outcome == "baseline"


async def test_a_page_rewritten_at_length_shows_its_new_lines_and_how_many_more_changed(
    site: tuple[Site, str], http: httpx.AsyncClient, db: Database
) -> None:
    # A digest shows a changed page's "+" lines: with the first 12 diff lines all removals,
    # its section was the page's address and nothing else, and a watch's message only "-".
    state, base = site
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    env = ActivityEnvironment()
    state.pages["/long"] = article(*(f"第{n}条：服务运行正常。" for n in range(30)))
    check = CheckPageInput(task=unique("t"), url=f"{base}/long", keywords=[])
    assert (await env.run(activities.check_page, check)).outcome == "baseline"
    state.pages["/long"] = article(*(f"第{n}条：服务已迁移。" for n in range(30)))
    changed = await env.run(activities.check_page, check)
    assert changed.excerpt.split("\n") == [
        *(f"+第{n}条：服务已迁移。" for n in range(12)),
        "… 48 more changed lines",
    ]
    assert changed.more_added == 18  # of the 48: new lines, the rest removed ones


async def test_a_digest_check_retried_after_it_stored_the_page_still_tells_the_change(
    site: tuple[Site, str], http: httpx.AsyncClient, db: Database
) -> None:
    """The first attempt stored the new text and its answer was lost (its worker killed):
    the retry found its own text newest and said "unchanged", so the day's news was lost."""
    import dataclasses
    from datetime import UTC, datetime, timedelta

    state, base = site
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    check = CheckPageInput(task="t1", url=f"{base}/news", keywords=["machine learning"])
    state.pages["/news"] = article("Weather is sunny.")
    assert (await ActivityEnvironment().run(activities.check_page, check)).outcome == "baseline"
    state.pages["/news"] = article("Weather is sunny.", "A machine learning chip ships.")
    scheduled = datetime.now(UTC) - timedelta(seconds=1)
    first = ActivityEnvironment()
    first.info = dataclasses.replace(first.info, attempt=1, scheduled_time=scheduled)
    lost = await first.run(activities.check_page, check)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2, scheduled_time=scheduled)
    again = await retry.run(activities.check_page, check)
    assert again.outcome == "changed" and again.hits == lost.hits
    assert again.hits == {"machine learning": ["A machine learning chip ships."]}
    # The next run (scheduled after the text was stored) has nothing new to tell.
    later = ActivityEnvironment()
    later.info = dataclasses.replace(later.info, attempt=2, scheduled_time=datetime.now(UTC))
    assert (await later.run(activities.check_page, check)).outcome == "unchanged"


async def test_a_digest_and_a_web_monitor_read_a_page_into_one_text_its_hash_is_made_of(
    site: tuple[Site, str], http: httpx.AsyncClient, db: Database
) -> None:
    state, base = site
    url = f"{base}/news"
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    activities = WatchActivities(db, fetcher, TencentCloud(None, region="ap-guangzhou"))
    state.pages["/news"] = article("AI beats humans at chess.", "Weather is sunny.")
    monitor = WebMonitorConfig.model_validate({"urls": [url]})
    page = await read_page(fetcher, url, monitor)
    assert page is not None
    assert page.lines == ["AI beats humans at chess.", "Weather is sunny."]
    assert page.text == "\n".join(page.lines)
    assert page.hash == hashlib.sha256(page.text.encode()).hexdigest()
    # The digest's check stores that text under that hash, and reports it.
    task = unique("t")
    checked = await ActivityEnvironment().run(
        activities.check_page, CheckPageInput(task=task, url=url)
    )
    async with db.session() as session:
        stored = (
            await session.execute(
                select(WatchSnapshot.hash, WatchSnapshot.text).where(WatchSnapshot.task == task)
            )
        ).one()
    assert checked.hash == stored.hash == page.hash and stored.text == page.text
    # Read again as the monitor saw it: a 304 is nothing new, the same bytes are not read again.
    assert page.extractor == PAGE_EXTRACTOR
    seen = UrlState.model_validate({**page.fresh, "hash": page.hash, "extractor": PAGE_EXTRACTOR})
    validators = {k: v for k, v in page.fresh.items() if k != "raw_hash"}
    assert await read_page(fetcher, url, monitor, seen) == NotModified(validators)
    same = await read_page(fetcher, url, monitor, seen.model_copy(update={"etag": None}))
    # no text to use by mistake: only its validators
    assert same == SameBytes(page.fresh, PAGE_EXTRACTOR)
    assert state.requests == [("/news", 200)] * 2 + [("/news", 304), ("/news", 200)]
    # Its rules read the page (a selector that matches nothing): a failed fetch, saying why.
    missing = WebMonitorConfig.model_validate({"urls": [url], "selectors": {url: "#price"}})
    with pytest.raises(FetchError, match="cannot read the page's text: the selector '#price'"):
        await read_page(fetcher, url, missing)


async def test_check_page_turns_fetch_errors_into_error_outcomes(
    http: httpx.AsyncClient, db: Database
) -> None:
    activities = WatchActivities(db, WebFetcher(), TencentCloud(None, region="ap-guangzhou"))
    result = await ActivityEnvironment().run(
        activities.check_page, CheckPageInput(task="t", url="http://127.0.0.1:9/")
    )
    assert result.outcome == "error" and "non-public" in (result.error or "")


async def test_a_304_to_a_digests_plain_read_is_a_failed_check_not_a_crash(db: Database) -> None:
    """A digest's check sends no validators; a server that answers 304 all the same failed the
    activity on an assert (retried, then the whole check) instead of saying so."""

    async def not_modified(_: Request) -> Response:
        return Response(status_code=304)

    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    async with serve(Starlette(routes=[Route("/{path:path}", not_modified)])) as base:
        check = CheckPageInput(task=unique("t"), url=f"{base}/news")
        checked = await ActivityEnvironment().run(activities.check_page, check)
    assert (checked.outcome, checked.error) == (
        "error",
        "the server answered 304 Not Modified to a request for the whole page",
    )


async def test_read_metric_reads_json_and_reports_errors(
    site: tuple[Site, str], http: httpx.AsyncClient, db: Database
) -> None:
    state, base = site
    state.values = [50123.5, None]
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    source = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    env = ActivityEnvironment()
    assert (await env.run(activities.read_metric, ReadMetricInput(source=source))).value == 50123.5
    failed = await env.run(activities.read_metric, ReadMetricInput(source=source))
    assert failed.value is None and "HTTP 500" in (failed.error or "")


async def test_read_metric_runs_a_prometheus_instant_query(
    site: tuple[Site, str], http: httpx.AsyncClient, db: Database
) -> None:
    _, base = site
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    env = ActivityEnvironment()
    source = {
        "type": "prometheus",
        "url": base,
        "query": 'sum(rate(http_errors_total{job="api"}[5m]))',
    }
    assert (await env.run(activities.read_metric, ReadMetricInput(source=source))).value == 42.5
    empty = await env.run(
        activities.read_metric, ReadMetricInput(source={**source, "query": "absent_metric"})
    )
    # No series is no data, not 0: said so, with the query's way to make none 0.
    assert (empty.value, empty.error) == (
        None,
        "query answered no sample: no series matches it now (no data, not 0; where none means 0, "
        'add "or vector(0)"): absent_metric',
    )


async def test_a_read_retried_on_failure_is_retried_only_for_failures_that_may_pass(
    site: tuple[Site, str], db: Database
) -> None:
    """A remediation's verify read (``retry_failures``) of a source answering the wrong shape
    failed the activity as "may pass later": read three times over 6 s, then said as "3 reads
    failed". A wrong shape is said at once; no answer (a port nobody listens on) is retried."""
    state, base = site
    state.values = [7.0]
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    env = ActivityEnvironment()
    missing = {"type": "http_json", "url": f"{base}/value", "json_path": "$.nope"}
    read = await env.run(
        activities.read_metric, ReadMetricInput(source=missing, retry_failures=True)
    )
    assert (read.value, read.error) == (None, "JSONPath $.nope matched nothing")
    closed = {**missing, "url": f"http://127.0.0.1:{free_port()}/value"}
    with pytest.raises(ApplicationError) as failed:
        await env.run(activities.read_metric, ReadMetricInput(source=closed, retry_failures=True))
    assert failed.value.type == "MetricUnavailable"
    assert failed.value.message.startswith("1 read failed, the last: no connection: "), failed.value


async def test_a_urls_checked_addresses_are_reused_and_dropped_when_the_connection_fails(
    site: tuple[Site, str],
) -> None:
    state, base = site
    state.pages["/a"] = article("A.")
    fetcher = WebFetcher(allow_cidrs=LOOPBACK)
    asked: list[str] = []
    check_url = fetcher._guard.check_url

    async def counted(url: str) -> list[str]:
        asked.append(url)
        return await check_url(url)

    fetcher._guard.check_url = counted  # type: ignore[method-assign]
    try:
        for _ in range(3):
            await fetcher.fetch(f"{base}/a")
        assert asked == [f"{base}/a"]  # one verdict for the three checks
        # A refusal is never kept: asked again each time.
        for _ in range(2):
            with pytest.raises(RefusedAddressError):
                await fetcher.fetch("http://10.0.0.1/")
        assert asked.count("http://10.0.0.1/") == 2
        # A port nobody listens on: the failed connection drops the verdict.
        dead = "http://127.0.0.1:9/"
        for _ in range(2):
            with pytest.raises(FetchError):
                await fetcher.fetch(dead)
        assert asked.count(dead) == 2
    finally:
        await fetcher.aclose()


async def test_a_metric_source_stored_before_a_rule_is_read_as_it_ran(db: Database) -> None:
    """A running watch's source is stored data: one its config accepted before a rule was
    added (TKE's periods, the region's form) still gets its reading, the API's reason, not
    "source: not a metric source: 2 validation errors ..." on every check."""
    activities = WatchActivities(db, WebFetcher(), TencentCloud(None, region="ap-guangzhou"))
    source = {
        "type": "tencent_monitor",
        "namespace": "QCE/TKE2",
        "metric": "K8sWorkloadCpuCoreUsed",
        "dimensions": {"tke_cluster_instance_id": "cls-1", "workload_name": "api"},
        "period": 10,
        "region": "shanghai",
    }
    reading = await ActivityEnvironment().run(
        activities.read_metric, ReadMetricInput(source=source)
    )
    # The reading names what the API will not serve, as for any source that cannot be read.
    assert reading.value is None
    assert (reading.error or "").startswith("InvalidParameterValue.Period: QCE/TKE2 metrics")


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b'{"v": NaN}', "NaN"),
        (b'{"v": "NaN"}', '"NaN"'),
        (b'{"v": Infinity}', "Infinity"),
        (b'{"v": "1e999"}', '"1e999"'),
        # Shown as the JSON it is: Python's words (True, None, 'text') are not in the answer.
        (b'{"v": true}', "true"),
        (b'{"v": null}', "null"),
        ('{"v": ["万", 2]}'.encode(), '["万", 2]'),
        # Cut in punctuation, no English words inside a Chinese page ("... (120 characters)").
        (b'{"v": "' + b"x" * 118 + b'"}', '"' + "x" * 99 + "…"),
        # Python's numerals are no JSON numbers: "2024_12" was read 202412 and told a breach.
        (b'{"v": "2024_12"}', '"2024_12"'),
        (b'{"v": "1_000"}', '"1_000"'),
    ],
)
async def test_a_json_value_that_is_no_finite_number_is_a_failed_reading_saying_so(
    site: tuple[Site, str], db: Database, body: bytes, shown: str
) -> None:
    state, base = site
    state.encoded["/odd.json"] = (body, "application/json")
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    source = {"type": "http_json", "url": f"{base}/odd.json", "json_path": "$.v"}
    reading = await ActivityEnvironment().run(
        activities.read_metric, ReadMetricInput(source=source)
    )
    assert reading == MetricReading(error=f"JSONPath $.v is not a number: {shown}")


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
async def test_a_prometheus_sample_that_is_no_finite_number_is_a_failed_reading_saying_so(
    site: tuple[Site, str], db: Database, value: str
) -> None:
    state, base = site
    state.prometheus_answers["errors / requests"] = (
        200,
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]},
        },
    )
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    source = {"type": "prometheus", "url": base, "query": "errors / requests"}
    reading = await ActivityEnvironment().run(
        activities.read_metric, ReadMetricInput(source=source)
    )
    assert reading == MetricReading(
        error=f"query answered {value}, not a number (no data to divide?): errors / requests"
    )


@pytest.mark.parametrize(
    "answer", [{"message": "ok"}, {"status": "success", "data": None}, [1, 2], {"data": {}}]
)
async def test_an_answer_that_is_no_prometheus_answer_is_said_so(
    site: tuple[Site, str], db: Database, answer: object
) -> None:
    # Another service's JSON at the address was said "no series matches it now" (rewrite the
    # query), or crashed reading it ('NoneType' object has no attribute 'get').
    state, base = site
    state.prometheus_answers["up"] = (200, answer)
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    source = {"type": "prometheus", "url": base, "query": "up"}
    reading = await ActivityEnvironment().run(
        activities.read_metric, ReadMetricInput(source=source)
    )
    assert reading == MetricReading(
        error='the answer to \'up\' is not a Prometheus API answer (no "status": "success" '
        "with its data): check that the URL is the Prometheus server's"
    )


async def test_a_prometheus_scalar_answer_is_its_value(
    site: tuple[Site, str], db: Database
) -> None:
    state, base = site
    state.prometheus_answers["scalar(sum(up))"] = (
        200,
        {"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}},
    )
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    source = {"type": "prometheus", "url": base, "query": "scalar(sum(up))"}
    reading = await ActivityEnvironment().run(
        activities.read_metric, ReadMetricInput(source=source)
    )
    assert reading == MetricReading(value=3.0)


async def test_a_query_prometheus_refuses_is_a_failed_reading_with_prometheus_reason(
    site: tuple[Site, str], db: Database
) -> None:
    state, base = site
    reason = '1:5: parse error: unexpected "}" in label matching'
    state.prometheus_answers["up{job=}"] = (
        400,
        {"status": "error", "errorType": "bad_data", "error": reason},
    )
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    source = {"type": "prometheus", "url": base, "query": "up{job=}"}
    reading = await ActivityEnvironment().run(
        activities.read_metric, ReadMetricInput(source=source)
    )
    assert reading == MetricReading(
        error=f"Prometheus refused the query 'up{{job=}}' (HTTP 400): bad_data: {reason}"
    )


async def test_a_huge_value_at_the_json_path_is_a_failed_reading_of_bounded_size(
    site: tuple[Site, str], db: Database
) -> None:
    # The reading travels as the local activity's result into the watch's history and its
    # failure is stored on the watch: a 3 MB text there would pass Temporal's payload limit.
    state, base = site
    state.encoded["/huge.json"] = (b'{"v": "' + b"9x" * 1_500_000 + b'"}', "application/json")
    state.encoded["/big.json"] = (b'{"v": 1' + b"0" * 400 + b"}", "application/json")
    activities = WatchActivities(
        db, WebFetcher(allow_cidrs=LOOPBACK), TencentCloud(None, region="ap-guangzhou")
    )
    env = ActivityEnvironment()
    for path in ("/huge.json", "/big.json"):
        source = {"type": "http_json", "url": f"{base}{path}", "json_path": "$.v"}
        reading = await env.run(activities.read_metric, ReadMetricInput(source=source))
        assert reading.value is None and reading.error is not None
        assert reading.error.startswith("JSONPath $.v is not a number: ")
        assert len(reading.error) <= 500


@pytest.mark.parametrize(
    ("content_type", "head", "text", "encoding"),
    [
        # WHATWG's other labels of GBK (read as GB18030) and of Shift_JIS (Windows' superset):
        # each was read as UTF-8 (gb_2312, x-sjis) or as strict GB2312 (chinese), the page
        # garbage and its Chinese keywords never found.
        *(
            (f"text/html; charset={label}", "", "数据库故障 镕喆", "gb18030")
            for label in ("gb_2312", "gb_2312-80", "csgb2312", "chinese", "iso-ir-58")
        ),
        *(
            (f"text/html; charset={label}", "", "システム障害 ①", "cp932")
            for label in ("x-sjis", "windows-31j", "shift_jis")
        ),
        # A feed declares its encoding in its XML declaration: read by it.
        ("application/rss+xml", '<?xml version="1.0" encoding="shift_jis"?>', "障害", "cp932"),
        ("application/xml", "<?xml version='1.0' encoding='euc-kr'?>\n", "시스템 장애", "euc-kr"),
        ("text/xml", '<?xml version="1.0" encoding="windows-1251"?>', "Сбой базы", "cp1251"),
    ],
)
def test_a_page_is_read_in_the_encoding_its_label_or_declaration_names(
    content_type: str, head: str, text: str, encoding: str
) -> None:
    body = head.encode() + f"<p>{text}</p>".encode(encoding)
    page = FetchResult("https://example.com/", 200, False, None, None, body, content_type)
    assert page.text() == f"{head}<p>{text}</p>"


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        # Labels no codec answers to (not WHATWG's either: browsers pass over them). The page
        # was read as UTF-8, its Chinese garbage no keyword matched.
        ("text/html; charset=windows-936", ""),
        ("text/html; charset=x-euc-cn", ""),
        ("text/html", '<meta charset="windows-936">'),
        # An unknown label in the header: the page's own <meta> says what it is.
        ("text/html; charset=x-unknown", '<meta charset="gbk">'),
        (
            "text/html; charset=x-unknown",
            '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">',
        ),
    ],
)
def test_a_label_no_codec_knows_is_passed_over_as_browsers_do(content_type: str, head: str) -> None:
    body = head.encode() + "<p>数据库故障，已恢复。</p>".encode("gbk")
    page = FetchResult("https://example.com/", 200, False, None, None, body, content_type)
    assert page.text() == f"{head}<p>数据库故障，已恢复。</p>"
