"""The dashboard's check now says, in the reader's language, that a page whose server asked
us to wait was not checked, and when it will be; and a page that failed, why, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import httpx
import pytest

from ambient.clients.web import WebFetcher
from ambient.clients.web_errors import FetchError, NoAnswerError
from ambient.domain.users import Language
from ambient.watches.service import TaskService
from api.i18n import Words
from api.routers.app_pages import failed_said, read_said
from tests.conftest import unique
from tests.support.servers import free_port, serve
from tests.watches.site import Site, article
from tests.watches.test_check_now_paused import ZONE, Busy, busy, paused_watch  # noqa: F401
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor, service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from tests.web.test_task_refusals_language import zh_dashboard  # noqa: F401  (fixture)


async def test_check_now_on_the_dashboard_says_the_site_asked_to_wait_in_chinese(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,  # noqa: F811
    busy: tuple[Busy, str],  # noqa: F811
) -> None:
    """The flash said only "trigger: ... is active": the check not made went unsaid."""
    page, base = busy
    task_id, _, until = await paused_watch(service, base)
    answer = await zh_dashboard.post(
        "/app/tasks/action", data={"task_id": task_id, "action": "trigger"}
    )
    assert answer.status_code == 303
    said = unquote(answer.headers["location"].partition("msg=")[2])
    local = datetime.fromisoformat(until).astimezone(ZoneInfo(ZONE))
    assert said == (
        f"立即执行：{task_id} 运行中；127.0.0.1 要求我们稍等，所以这次没有检查："
        f"{local:%H:%M}（{ZONE}）之后再检查"
    )
    assert [status for _, status in page.requests] == [429]
    shown = await zh_dashboard.get(answer.headers["location"])
    assert "127.0.0.1 要求我们稍等" in shown.text
    await service.delete(USER, task_id)


async def test_check_now_of_a_threshold_watch_on_the_dashboard_says_what_it_read_in_chinese(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The flash said only "立即执行：… 运行中": what the check read went unsaid (the page
    read only a web monitor's pages)."""
    site, base = gated
    site.values = [5.0, 150.0, None]  # the baseline, a breach, then the source refuses
    source = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    config = {"source": source, "threshold": 100}
    ref = await service.create(USER, "threshold_watch", config, unique("dash"))
    said = []
    for _ in range(2):
        answer = await zh_dashboard.post(
            "/app/tasks/action", data={"task_id": ref.task_id, "action": "trigger"}
        )
        assert answer.status_code == 303
        said.append(unquote(answer.headers["location"].partition("msg=")[2]))
    await service.delete(USER, ref.task_id)
    assert said[0] == f"立即执行：{ref.task_id} 运行中；读到 150.0：越过阈值"
    assert said[1].startswith(f"立即执行：{ref.task_id} 运行中；失败："), said[1]


async def test_check_now_on_the_dashboard_says_a_page_error_once_in_chinese(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A page's HTTP error was said in English and named the page twice ("…/gone：失败：HTTP
    404 from …/gone"); the answer's own error (MCP, API) still gives the status, in English."""
    site, base = gated
    site.pages["/gone"] = article("Here for now.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/gone"), unique("gone"))
    del site.pages["/gone"]
    answer = await zh_dashboard.post(
        "/app/tasks/action", data={"task_id": ref.task_id, "action": "trigger"}
    )
    assert answer.status_code == 303
    said = unquote(answer.headers["location"].partition("msg=")[2])
    assert said == f"立即执行：{ref.task_id} 运行中；{base}/gone：失败：服务器答复 HTTP 404"
    status = await service.get(USER, ref.task_id)
    assert status.detail["urls"][f"{base}/gone"]["last_error"] == "HTTP 404"  # type: ignore[index]
    await service.delete(USER, ref.task_id)


def test_a_fetch_error_is_said_in_the_readers_language_and_any_other_as_it_was_said() -> None:
    zh, en = Words(Language.ZH), Words(Language.EN)
    assert failed_said("HTTP 503 (Retry-After: 30 s)", zh) == (
        "失败：服务器答复 HTTP 503，要求 30 秒后再来"
    )
    assert failed_said("timed out after 20 s", zh) == "失败：20 秒内没有答复"
    assert failed_said("HTTP 404", en) == "failed: HTTP 404"
    # Where a redirect led, in the reader's words too ("(redirected to …)" stayed English).
    moved = "HTTP 404 (redirected to https://example.com/b)"
    assert (
        failed_said(moved, zh) == "失败：服务器答复 HTTP 404（重定向到 https://example.com/b 之后）"
    )
    assert failed_said(moved, en) == f"failed: {moved}"
    waited = "HTTP 503 (Retry-After: 30 s) (redirected to https://example.com/b)"
    assert failed_said(waited, zh) == (
        "失败：服务器答复 HTTP 503，要求 30 秒后再来（重定向到 https://example.com/b 之后）"
    )
    assert failed_said(None, zh) == "失败：?"
    # A metric read's failure with its source's URL after it (a threshold watch's).
    assert failed_said("HTTP 500 from http://prom:9090", zh) == (
        "失败：服务器答复 HTTP 500（来自 http://prom:9090）"
    )
    assert failed_said("timed out after 20 s from http://prom", zh) == (
        "失败：20 秒内没有答复（来自 http://prom）"
    )


async def test_a_pages_other_fetch_errors_are_said_once_in_the_readers_language() -> None:
    """A page too large, a redirect chain too long, a refused redirect and an empty answer
    were said in English, naming the page its row already shows ("…/r0：失败：more than 5
    redirects from …/r0"); now once, each in the reader's language (the stored error, and the
    MCP and API answers, stay English)."""
    site = Site()
    site.pages["/big"] = article("x" * 4000)
    for i in range(3):
        site.redirects[f"/r{i}"] = f"/r{i + 1}"
    site.redirects["/inside"] = "http://127.0.0.2:9/inside"
    zh, en = Words(Language.ZH), Words(Language.EN)
    async with serve(site.app()) as base:
        fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"], max_bytes=1000, max_redirects=2)
        errors = {}
        for path in ("/big", "/r0", "/inside"):
            with pytest.raises(FetchError) as failed:
                await fetcher.fetch(f"{base}{path}")
            errors[path] = str(failed.value)
        await fetcher.aclose()
    assert all(base not in error for path, error in errors.items() if path != "/inside"), errors
    assert failed_said(errors["/big"], zh) == "失败：内容超过 1000 字节的上限"
    assert failed_said(errors["/big"], en) == "failed: larger than the cap of 1000 bytes"
    assert failed_said(errors["/r0"], zh) == "失败：重定向超过 2 次"
    assert failed_said(errors["/r0"], en) == "failed: more than 2 redirects"
    # The guard's reason too, not its English inside the Chinese sentence.
    assert failed_said(errors["/inside"], zh) == (
        "失败：重定向到 http://127.0.0.2:9/inside：不能访问 127.0.0.2：它不是公网地址"
        "（127.0.0.2）；如确需访问，请运维在 AMBIENT_FETCH_ALLOW_CIDRS 中放行"
    )
    assert failed_said(errors["/inside"], en) == f"failed: {errors['/inside']}"
    empty = "the server answered HTTP 204 with no body: nothing to watch"
    assert failed_said(empty, zh) == "失败：服务器答复 HTTP 204，但没有内容可以监控"
    whole = "the server answered 304 Not Modified to a request for the whole page"
    assert failed_said(whole, zh) == "失败：服务器对整页的请求答复了 304 Not Modified"


@asynccontextmanager
async def cut_answer() -> AsyncIterator[str]:
    """A URL whose server sends 40 bytes of a 100-byte body, then closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/a"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_pages_network_failures_are_said_in_the_readers_language() -> None:
    """A connection refused, a name that does not resolve and a TLS handshake that failed were
    said in English on a Chinese page ("失败：ConnectionRefusedError: ..."), then with the
    system's English after the Chinese ("无法解析域名 …：[Errno -2] Name or service not known");
    now what each means, the system's detail after only where it helps (the address refused).
    An answer cut off is not said as no connection."""
    zh, en = Words(Language.ZH), Words(Language.EN)
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    errors = {}
    async with serve(Site().app()) as base:
        for name, url in (
            ("closed", f"http://127.0.0.1:{free_port()}/a"),
            ("unknown", "http://no-such-host.invalid/a"),
            ("tls", base.replace("http://", "https://") + "/a"),  # TLS to a plain server
        ):
            with pytest.raises(NoAnswerError) as failed:
                await fetcher.fetch(url)
            errors[name] = str(failed.value)
        # An answer cut off inside its body: a connection there was, an answer began.
        async with cut_answer() as cut:
            with pytest.raises(NoAnswerError) as failed:
                await fetcher.fetch(cut)
            errors["cut"] = str(failed.value)
    await fetcher.aclose()
    assert errors["cut"].startswith("the connection ended before the whole answer: "), errors
    cut_said = failed_said(errors["cut"], zh)
    assert cut_said == "失败：连接在应答收完前断开：100 字节的内容只收到 40 字节", cut_said
    closed = failed_said(errors["closed"], zh)
    detail = errors["closed"].removeprefix("no connection: ConnectionRefusedError: ")
    assert detail.startswith("[Errno 111] "), errors
    assert closed == (
        f"失败：连接失败：对方拒绝连接，多半是这个端口上没有服务在监听（{detail}）"
    ), closed
    unknown = failed_said(errors["unknown"], zh)
    assert unknown == "失败：无法解析域名 no-such-host.invalid：DNS 里查不到这个名字", unknown
    tls = failed_said(errors["tls"], zh)
    assert tls == (
        "失败：TLS 连接失败：对方答复的不是 TLS：这个地址可能要用 http:// 而不是 https://"
    ), tls
    # A redirect to a name that does not resolve: every part in the reader's words.
    redirected = f"redirected to http://no-such-host.invalid/b: {errors['unknown']}"
    assert failed_said(redirected, zh) == (
        "失败：重定向到 http://no-such-host.invalid/b：无法解析域名 no-such-host.invalid："
        "DNS 里查不到这个名字"
    )
    assert failed_said(errors["closed"], en) == f"failed: {errors['closed']}"


def test_a_metric_answer_of_the_wrong_shape_is_said_in_the_readers_language() -> None:
    """A threshold watch's reading of an answer that is no number (deep JSON, a Prometheus
    range vector or string, a JSONPath to text) was said in English on a Chinese page."""
    zh, en = Words(Language.ZH), Words(Language.EN)
    said = {
        "query answered a range vector (matrix), not one sample: query an instant vector "
        "(no [range] selector): up[5m]": (
            "查询答复的是区间向量（matrix），不是一个样本：请改用即时向量查询"
            "（不带 [区间] 选择器）：up[5m]"
        ),
        "query answered a string, not a number: query an instant vector returning one "
        'sample: "42"': ('查询答复的是字符串，不是数字：请改用只返回一个样本的即时向量查询："42"'),
        "the source did not answer a number (RecursionError: maximum recursion depth exceeded)": (
            "数据源答复的不是数字（RecursionError: maximum recursion depth exceeded）"
        ),
        "JSONPath $.v is not a number: 'high'": "JSONPath $.v 取到的不是数字：'high'",
        # A path with spaces in its filter is one path.
        "JSONPath $.data[?(@.n == 'a')].v matched nothing": (
            "JSONPath $.data[?(@.n == 'a')].v 没有匹配到任何值"
        ),
        "query must return exactly one sample, got 3: errors / requests": (
            "查询必须正好返回一个样本，实际返回了 3 个：errors / requests"
        ),
        "query answered no sample: no series matches it now (no data, not 0; where none means "
        '0, add "or vector(0)"): sum(up)': (
            "查询没有答复任何样本：现在没有匹配的序列（没有数据，不是 0；如果没有就算 0，请在查询后"
            '加上 "or vector(0)"）：sum(up)'
        ),
        'query answered 2 series ({instance="a:9100"}, {instance="b:9100"}), not one: aggregate '
        'them (sum, max, ...) or pick one with a label matcher: up{job="node"}': (
            '查询答复了 2 条序列（{instance="a:9100"}, {instance="b:9100"}），不是一条：'
            '请用 sum、max 等聚合它们，或用标签匹配只选一条：up{job="node"}'
        ),
        "query answered a native histogram, not a number: ask for one number of it "
        "(histogram_count, histogram_sum, histogram_quantile): rpc_seconds": (
            "查询答复的是原生直方图，不是数字：请只查询它的一个数值（histogram_count、histogram_sum、"
            "histogram_quantile）：rpc_seconds"
        ),
        "JSONPath $.items[*].p matched 2 values ($.items.[0].p = 1, $.items.[1].p = 2): give "
        "a path to one of them, e.g. $.items.[0].p": (
            "JSONPath $.items[*].p 匹配到了 2 个值（$.items.[0].p = 1, $.items.[1].p = 2）："
            "请改为只指向其中一个的路径，例如 $.items.[0].p"
        ),
        "query answered NaN, not a number (no data to divide?): errors / requests": (
            "查询答复的是 NaN，不是数字（可能是除以零：分母没有数据）：errors / requests"
        ),
    }
    for error, chinese in said.items():
        assert failed_said(error, zh) == f"失败：{chinese}"
        assert failed_said(error, en) == f"failed: {error}"


def test_a_reading_under_a_line_it_fell_below_is_not_said_in_chinese_to_exceed_it() -> None:
    """A watch on a price falling under 60000 was told "读到 55000.0：超过阈值" ("went over the
    threshold") when it dropped under it: the words say a line was crossed, not which way."""
    read = {
        "outcome": "breach",
        "value": 55000.0,
        "conditions": [{"op": "below", "value": 60000.0}],
        "breaching": True,
        "error": None,
    }
    said = read_said(read, Words(Language.ZH))
    assert said == "读到 55000.0：越过阈值", said
    assert Words(Language.ZH)("threshold crossed") == "越过阈值"


def test_a_page_whose_text_cannot_be_read_is_said_in_the_readers_language() -> None:
    """A selector that matched nothing was said in English on a Chinese page ("失败：cannot
    read the page's text: the selector … matches nothing on the page")."""
    zh, en = Words(Language.ZH), Words(Language.EN)
    nothing = (
        "cannot read the page's text: the selector 'div.price > span' matches nothing on the page"
    )
    assert failed_said(nothing, zh) == (
        "失败：读不出网页的文字：选择器 'div.price > span' 在网页上找不到任何内容"
    )
    assert failed_said(nothing, en) == f"failed: {nothing}"
    image = (
        "cannot read the page's text: the page is not text (image/png): a web monitor reads "
        "HTML, plain text or JSON"
    )
    assert failed_said(image, zh) == (
        "失败：读不出网页的文字：网页不是文字（image/png）：网页监控读的是 HTML、纯文本或 JSON"
    )
    # Served without a Content-Type: "no Content-Type" was English inside the Chinese line.
    untyped = image.replace("image/png", "no Content-Type")
    assert failed_said(untyped, zh) == (
        "失败：读不出网页的文字：网页不是文字（没有 Content-Type）："
        "网页监控读的是 HTML、纯文本或 JSON"
    )
    assert failed_said(untyped, en) == f"failed: {untyped}"
    metric = "the source answered no Content-Type, not JSON: <html>"
    assert failed_said(metric, zh) == "失败：数据源答复的是 没有 Content-Type，不是 JSON：<html>"
    for why, said in (
        ("the page has no text", "网页上没有文字"),
        ("the feed has no entries with text", "这个订阅源没有带文字的条目"),
    ):
        assert (
            failed_said(f"cannot read the page's text: {why}", zh)
            == f"失败：读不出网页的文字：{said}"
        )
    # A reason of no catalog message (a codec's words) stays as it was written.
    codec = "cannot read the page's text: 'gb18030' codec can't decode byte 0xff"
    assert (
        failed_said(codec, zh) == "失败：读不出网页的文字：'gb18030' codec can't decode byte 0xff"
    )
