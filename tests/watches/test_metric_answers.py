"""A metric source that answers what no reading can be made of — JSON nested past the parser's
depth, a Prometheus range vector, string or native histogram, an HTML page, a JSONPath that
matches several values — is one failed reading that says what came back, read once: nested
JSON crashed the read (RecursionError), which was tried three times over 5 s and said as the
crash. A Prometheus query is asked as written, at the server the owner named."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ambient.clients.metric_reads import read_json_number
from ambient.clients.web import WebFetcher
from ambient.clients.web_errors import FetchError
from ambient.domain.users import Language
from ambient.watches.service import TaskService
from api.i18n import Words
from api.routers.app_pages import failed_said
from mcp_server.voice_failures import reason_said
from tests.conftest import unique
from tests.support.servers import serve
from tests.watches.test_lifecycle_service import service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)

DEEP = "[" * 5000 + "]" * 5000  # past the JSON decoder's recursion depth
# A query of every character a URL's query treats apart: it arrives as written or not at all.
ODD_QUERY = 'sum(rate(x{a="b c",d=~"e|f&g+h",p="100%#1",n="名"}[5m])) / 1e3'
# A proxy's sign-in page, answered 200.
SIGN_IN = "<html><head><title>Sign in</title></head>\n<body>Please sign in</body></html>"
# Prices as text, a list and a key with a space: read by jsonpath-ng's extensions.
YUAN = {
    "items": [{"price": "¥12"}, {"price": "¥99"}],
    "a": [1, 2, 3, 4, 5],
    "rows": [{"unit price": 1.5}, {"unit price": 2}],
    "x": {"y": {"z": 7}},
}
# Six kube-prometheus targets: series told apart by long labels.
TARGETS = [
    ("alertmanager-main", "web", "alertmanager", "9093"),
    ("blackbox-exporter", "https", "kube-rbac-proxy", "9115"),
    ("grafana", "http", "grafana", "3000"),
    ("kube-state-metrics", "https-main", "kube-rbac-proxy-main", "8443"),
    ("node-exporter", "https", "kube-rbac-proxy", "9100"),
    ("prometheus-k8s", "web", "prometheus", "9090"),
]
KUBE_SERIES = [
    {
        "metric": {
            "__name__": "up",
            "container": container,
            "endpoint": endpoint,
            "instance": f"10.244.{i}.17:{port}",
            "job": job,
            "namespace": "monitoring",
            "pod": f"{job}-7d9c8b6f5-x2kq{i}",
            "service": job,
        },
        "value": [1, "1"],
    }
    for i, (job, endpoint, container, port) in enumerate(TARGETS)
]
# Chinese in the fields around the number: read as UTF-8, no byte of it was.
GBK_DOCUMENT = '{"服务": "订单", "data": {"cpu": 42.5, "名称": "上海一区"}}'
ZH, EN = Words(Language.ZH), Words(Language.EN)


@pytest_asyncio.fixture
async def source() -> AsyncIterator[tuple[list[str], str]]:
    reads: list[str] = []

    async def deep(request: Request) -> Response:
        reads.append(request.url.path)
        return Response(DEEP, media_type="application/json")

    async def prometheus(request: Request) -> Response:
        reads.append(request.url.path)
        if request.query_params["query"] == ODD_QUERY:  # as Prometheus decodes a form value
            data = {"resultType": "scalar", "result": [1, "0.25"]}
            return JSONResponse({"status": "success", "data": data})
        if request.query_params["query"] == 'up{job="node"}':  # one series per instance
            result = [
                {
                    "metric": {"__name__": "up", "job": "node", "instance": f"10.0.0.{i}:9100"},
                    "value": [1, "1"],
                }
                for i in range(1, 6)
            ]
            return JSONResponse(
                {"status": "success", "data": {"resultType": "vector", "result": result}}
            )
        if request.query_params["query"] == 'up{namespace="monitoring"}':
            data = {"resultType": "vector", "result": KUBE_SERIES}
            return JSONResponse({"status": "success", "data": data})
        if request.query_params["query"] == "sum(rate(x[5m]))":  # a value with its warnings
            data = {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.5"]}]}
            warnings = ["PromQL warning: encountered a mix of histograms and floats"]
            infos = ['PromQL info: metric might not be a counter, name does not end in "_total"']
            return JSONResponse(
                {"status": "success", "data": data, "warnings": warnings, "infos": infos}
            )
        if request.query_params["query"] == "count(up)":  # gzip under a charset's name
            data = {"resultType": "vector", "result": [{"metric": {}, "value": [1, "3"]}]}
            body = gzip.compress(json.dumps({"status": "success", "data": data}).encode())
            headers = {"Content-Encoding": "utf-8"}
            return Response(body, media_type="application/json", headers=headers)
        if request.query_params["query"] == "sum(up)":
            data = {"resultType": "vector", "result": [{"metric": {}, "value": [1, "3"]}]}
            return JSONResponse({"status": "success", "data": data})
        if request.query_params["query"] == "up":  # a proxy's sign-in page in front of it
            return Response(SIGN_IN, media_type="text/html")
        if request.query_params["query"] == "request_duration_seconds":  # a native histogram
            histogram = {"count": "3", "sum": "0.4", "buckets": [[0, "0.1", "0.2", "3"]]}
            data = {"resultType": "vector", "result": [{"metric": {}, "histogram": [1, histogram]}]}
            return JSONResponse({"status": "success", "data": data})
        if request.query_params["query"].startswith('"'):  # a string literal: a string
            data = {"resultType": "string", "result": [1, request.query_params["query"][1:-1]]}
            return JSONResponse({"status": "success", "data": data})
        series = {"metric": {}, "values": [[1, "2"], [2, "3"]]}
        data = {"resultType": "matrix", "result": [series]}
        return JSONResponse({"status": "success", "data": data})

    async def prices(request: Request) -> Response:
        reads.append(request.url.path)
        return JSONResponse({"items": [{"price": 1.5}, {"price": 2}], "total": {"price": 3.5}})

    async def yuan(request: Request) -> Response:
        reads.append(request.url.path)
        return JSONResponse(YUAN)

    async def login(request: Request) -> Response:
        reads.append(request.url.path)
        if request.query_params.get("plain"):  # a page with no title
            return Response("<p>Please   sign in</p>", media_type="text/html")
        return Response(SIGN_IN, media_type="text/html")

    async def gbk(request: Request) -> Response:
        reads.append(request.url.path)  # as many Chinese services answer
        headers = {"content-type": "application/json;charset=GBK"}
        return Response(GBK_DOCUMENT.encode("gbk"), headers=headers)

    async def private(request: Request) -> Response:
        reads.append(request.url.path)  # a proxy sends the owner to its sign-in page
        return RedirectResponse("/login?next=%2Fprivate&session=abc123", status_code=302)

    app = Starlette(
        routes=[
            Route("/deep", deep),
            Route("/prices", prices),
            Route("/login", login),
            Route("/private", private),
            Route("/yuan", yuan),
            Route("/gbk", gbk),
            Route("/api/v1/query", prometheus),
        ]
    )
    async with serve(app) as base:
        yield reads, base


async def _baseline_error(tasks: TaskService, source: dict[str, str], name: str) -> str:
    """The error a threshold watch reading ``source`` takes as its baseline (no value); the
    watch deleted after."""
    config = {"source": source, "threshold": 1, "check_interval_minutes": 5}
    ref = await tasks.create(USER, "threshold_watch", config, unique(name))
    await tasks.delete(USER, ref.task_id)
    assert ref.baseline is not None and ref.baseline["value"] is None
    return str(ref.baseline["error"])


async def test_json_nested_past_the_parsers_depth_is_one_failed_reading(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    reads, base = source
    deep = {"type": "http_json", "url": f"{base}/deep", "json_path": "$.data"}
    error = await _baseline_error(service, deep, "deep")
    assert error.startswith("the source did not answer a number (RecursionError")
    assert reads == ["/deep"]


async def test_a_prometheus_range_vector_is_said_as_one(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    reads, base = source
    ranged = {"type": "prometheus", "url": base, "query": "up[5m]"}
    assert await _baseline_error(service, ranged, "range") == (
        "query answered a range vector (matrix), not one sample: query an instant "
        "vector (no [range] selector): up[5m]"
    )
    assert reads == ["/api/v1/query"]


async def test_a_prometheus_string_is_said_as_one_not_as_two_samples(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """A query answering a string (``[time, "text"]``) was said as "got 2 samples"."""
    reads, base = source
    text = {"type": "prometheus", "url": base, "query": '"42"'}
    assert await _baseline_error(service, text, "string") == (
        'query answered a string, not a number: query an instant vector returning one sample: "42"'
    )
    assert reads == ["/api/v1/query"]


async def _baseline(tasks: TaskService, source: dict[str, str], name: str) -> dict[str, object]:
    """The baseline a threshold watch reading ``source`` takes; the watch deleted after."""
    config = {"source": source, "threshold": 1, "check_interval_minutes": 5}
    ref = await tasks.create(USER, "threshold_watch", config, unique(name))
    await tasks.delete(USER, ref.task_id)
    assert ref.baseline is not None
    return ref.baseline


async def test_a_json_path_matching_several_values_is_refused_naming_them(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """``$.items[*].price`` matched two prices and the first was watched, never said: one
    value the owner did not choose was held against the line."""
    reads, base = source
    several = {"type": "http_json", "url": f"{base}/prices", "json_path": "$.items[*].price"}
    assert await _baseline_error(service, several, "several") == (
        "JSONPath $.items[*].price matched 2 values ($.items.[0].price = 1.5, "
        "$.items.[1].price = 2): give a path to one of them, e.g. $.items.[0].price"
    )
    # A path that may match several but matches one is that value.
    one = {**several, "json_path": "$..total.price"}
    assert await _baseline(service, one, "one") == {"value": 3.5, "error": None}
    assert reads == ["/prices", "/prices"]


async def test_values_a_json_path_computes_are_several_values_not_the_last_of_them(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """jsonpath-ng's extensions (sub(), arithmetic, len) place every value they compute at
    `this`: kept one a place, two prices were read as the last (99.0, where the first was read
    before), and ``$.a[*] * 100`` over 1 to 5 as 500, unsaid."""
    reads, base = source
    url = f"{base}/yuan"
    prices = {"type": "http_json", "url": url, "json_path": "$.items[*].price.`sub(/¥/, )`"}
    assert await _baseline_error(service, prices, "sub") == (
        'JSONPath $.items[*].price.`sub(/¥/, )` matched 2 values ("12", "99"): give a path to '
        "one of them, e.g. $.items[0].price.`sub(/¥/, )`"
    )
    scaled = {**prices, "json_path": "$.a[*] * 100"}
    error = await _baseline_error(service, scaled, "times")
    assert error == (
        "JSONPath $.a[*] * 100 matched 5 values (100, 200, 300, …): give a path to one of them, "
        "e.g. $.a[0] * 100"
    )
    assert failed_said(error, ZH) == (
        "失败：JSONPath $.a[*] * 100 匹配到了 5 个值（100, 200, 300, …）："
        "请改为只指向其中一个的路径，例如 $.a[0] * 100"
    )
    # No one value's path to give (no [*] to take the first of): the JSONPath's words alone.
    recursive = {**prices, "json_path": "$..price.`sub(/¥/, )`"}
    error = await _baseline_error(service, recursive, "recursive-sub")
    assert error == (
        'JSONPath $..price.`sub(/¥/, )` matched 2 values ("12", "99"): give a path to one of them'
    )
    assert failed_said(error, ZH) == (
        '失败：JSONPath $..price.`sub(/¥/, )` 匹配到了 2 个值（"12", "99"）：'
        "请改为只指向其中一个的路径"
    )
    assert reason_said(error) == ("数据路径匹配到了多个值", "its path matched several values")
    # The example given reads; one value computed is read; a recursive path that reaches one
    # node twice is that node's value.
    for path, value in (
        ("$.items[0].price.`sub(/¥/, )`", 12.0),
        ("$.a.`len`", 5.0),
        ("$..[*]..z", 7.0),
    ):
        read = {**prices, "json_path": path}
        assert await _baseline(service, read, "one") == {"value": value, "error": None}, path
    assert reads == ["/yuan"] * 6


async def test_several_values_at_keys_with_spaces_are_said_in_the_readers_words(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """jsonpath-ng writes a key with a space as $.rows.[0].'unit price': the example was read
    back as one word, so the Chinese page said the whole error in English and the voice its
    fallback; the values were listed with English words (" at ", " and 2 more")."""
    reads, base = source
    rows = {"type": "http_json", "url": f"{base}/yuan", "json_path": "$.rows[*].'unit price'"}
    error = await _baseline_error(service, rows, "unit-price")
    assert reason_said(error) == ("数据路径匹配到了多个值", "its path matched several values")
    assert failed_said(error, ZH) == (
        "失败：JSONPath $.rows[*].'unit price' 匹配到了 2 个值（$.rows.[0].'unit price' = 1.5, "
        "$.rows.[1].'unit price' = 2）：请改为只指向其中一个的路径，例如 $.rows.[0].'unit price'"
    )
    assert failed_said(error, EN) == f"failed: {error}"
    assert reads == ["/yuan"]


async def test_a_prometheus_native_histogram_is_said_as_one(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """A native histogram's sample carries "histogram", not "value": said as KeyError: 'value'."""
    reads, base = source
    histogram = {"type": "prometheus", "url": base, "query": "request_duration_seconds"}
    assert await _baseline_error(service, histogram, "histogram") == (
        "query answered a native histogram, not a number: ask for one number of it "
        "(histogram_count, histogram_sum, histogram_quantile): request_duration_seconds"
    )
    assert reads == ["/api/v1/query"]


async def test_an_html_page_instead_of_json_is_said_as_what_came_back(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """A sign-in page answered 200 was said as "JSONDecodeError: Expecting value: line 1
    column 1 (char 0)": nothing of a page, nor of what it said. Said with its title and where
    a redirect led (its query left out: a session's token), in the reader's words: the Chinese
    page said it inside English ("the answer is text/html, not JSON: ...")."""
    reads, base = source
    signed = "the source answered text/html, not JSON: <title>Sign in</title>"
    page = {"type": "http_json", "url": f"{base}/login", "json_path": "$.data"}
    assert await _baseline_error(service, page, "login") == signed
    prometheus = {"type": "prometheus", "url": base, "query": "up"}
    assert await _baseline_error(service, prometheus, "login-prometheus") == signed
    untitled = {**page, "url": f"{base}/login?plain=1"}
    assert await _baseline_error(service, untitled, "login-plain") == (
        "the source answered text/html, not JSON: <p>Please sign in</p>"
    )
    private = {**page, "url": f"{base}/private"}
    error = await _baseline_error(service, private, "private")
    assert error == f"{signed} (redirected to {base}/login?[redacted])"
    assert failed_said(error, ZH) == (
        "失败：数据源答复的是 text/html，不是 JSON：<title>Sign in</title>"
        f"（重定向到 {base}/login?[redacted] 之后）"
    )
    assert failed_said(error, EN) == f"failed: {error}"
    assert reason_said(error) == ("返回的是网页，不是数据", "it answered a web page, not data")
    assert reads == ["/login", "/api/v1/query", "/login", "/private", "/login"]


async def test_a_prometheus_answer_gzipped_under_no_coding_is_said_as_an_answer_not_a_page(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """gzip bytes under "Content-Encoding: utf-8" were said as a page's ("the page is
    compressed ... ask its site ...") with " from URL" after the advice: a metric source's
    answer is no page. Said of the answer, its source's URL after, in the reader's words."""
    reads, base = source
    gzipped = {"type": "prometheus", "url": base, "query": "count(up)"}
    error = await _baseline_error(service, gzipped, "gzipped")
    assert error == (
        "the answer is gzip bytes under Content-Encoding utf-8, which is no content coding (ask "
        f"its server to label them gzip alone), and cannot be read from {base}/"
    )
    assert failed_said(error, ZH) == (
        "失败：回答是 gzip 压缩的字节，却标为 Content-Encoding utf-8，这不是一种压缩编码"
        f"（请让它的服务器只标 gzip），读不了（来自 {base}/）"
    )
    assert reason_said(error) == (
        "回答的压缩方式读不了",
        "the answer is compressed in a way that cannot be read",
    )
    assert reads == ["/api/v1/query"]


async def test_a_prometheus_url_given_as_its_query_endpoint_is_read_there(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """The endpoint's URL pasted for the base (…/api/v1/query) was asked at
    …/api/v1/query/api/v1/query, and said as an HTTP 404 from the URL the owner gave."""
    reads, base = source
    for url in (f"{base}/api/v1/query", f"{base}/api/v1/query/"):
        endpoint = {"type": "prometheus", "url": url, "query": "sum(up)"}
        config = {"source": endpoint, "threshold": 1, "check_interval_minutes": 5}
        ref = await service.create(USER, "threshold_watch", config, unique("endpoint"))
        await service.delete(USER, ref.task_id)
        assert ref.baseline == {"value": 3.0, "error": None}
    assert reads == ["/api/v1/query", "/api/v1/query"]


async def test_a_prometheus_query_arrives_as_written_whatever_its_characters(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    reads, base = source
    odd = {"type": "prometheus", "url": base, "query": ODD_QUERY}
    config = {"source": odd, "threshold": 1, "check_interval_minutes": 5}
    ref = await service.create(USER, "threshold_watch", config, unique("odd"))
    await service.delete(USER, ref.task_id)
    assert ref.baseline == {"value": 0.25, "error": None}
    assert reads == ["/api/v1/query"]


async def test_a_prometheus_query_of_several_series_names_them_and_what_to_do(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """Which series is the value is the owner's to say: refused, it was "query must return
    exactly one sample, got 5", naming none of them and not what to change."""
    reads, base = source
    several = {"type": "prometheus", "url": base, "query": 'up{job="node"}'}
    assert await _baseline_error(service, several, "several-series") == (
        'query answered 5 series ({instance="10.0.0.1:9100"}, {instance="10.0.0.2:9100"}, '
        '{instance="10.0.0.3:9100"}, …), not one: aggregate them (sum, max, ...) or '
        'pick one with a label matcher: up{job="node"}'
    )
    assert reads == ["/api/v1/query"]


async def test_several_series_with_long_labels_are_said_whole_on_the_page_and_in_the_voice(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """kube-prometheus's targets differ in six labels: the three series named filled the 500
    characters a check keeps of its error, which was cut before its end and no longer read as
    what was said: the page showed it cut and in English, the voice its fallback. Each is
    named by its job and instance first: alphabetically, container and endpoint came first and
    the job was cut ("job=\"alert…")."""
    reads, base = source
    query = 'up{namespace="monitoring"}'
    error = await _baseline_error(
        service, {"type": "prometheus", "url": base, "query": query}, "kube"
    )
    assert reason_said(error) == ("查询返回了多条序列", "the query answered several series")
    shown = (
        '{job="alertmanager-main",instance="10.244.0.17:9093",container="alertmanager",e…, '
        '{job="blackbox-exporter",instance="10.244.1.17:9115",container="kube-rbac-proxy…, '
        '{job="grafana",instance="10.244.2.17:3000",container="grafana",endpoint="http",…, …'
    )
    assert error == (
        f"query answered 6 series ({shown}), not one: aggregate them (sum, max, ...) or pick one "
        f"with a label matcher: {query}"
    )
    assert failed_said(error, ZH) == (
        f"失败：查询答复了 6 条序列（{shown}），不是一条：请用 sum、max 等聚合它们，或用标签匹配"
        f"只选一条：{query}"
    )
    assert reads == ["/api/v1/query"]


async def test_a_prometheus_value_answered_with_warnings_and_infos_is_read(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """Prometheus adds ``warnings`` and ``infos`` beside a value it answers: the value is read."""
    reads, base = source
    warned = {"type": "prometheus", "url": base, "query": "sum(rate(x[5m]))"}
    assert await _baseline(service, warned, "warned") == {"value": 0.5, "error": None}
    assert reads == ["/api/v1/query"]


async def test_a_json_source_declaring_gbk_is_read_in_it(source: tuple[list[str], str]) -> None:
    """`application/json;charset=GBK`: every read failed ("the source did not answer a number
    (UnicodeDecodeError: …)"), whatever field held the Chinese."""
    reads, base = source
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    try:
        assert await read_json_number(fetcher, f"{base}/gbk", "$.data.cpu") == 42.5
    finally:
        await fetcher.aclose()
    assert reads == ["/gbk"]


async def test_a_json_path_naming_chinese_keys_in_dot_notation_is_read(
    source: tuple[list[str], str],
) -> None:
    """`$.数据.价格` (RFC 9535 takes any name past ASCII in dot notation) was refused at
    creation, "Unexpected character: 数": jsonpath-ng reads such a name only quoted."""
    from ambient.watches.configs import check_json_path

    _, base = source
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    try:
        assert check_json_path("$.data.名称") == "$.data.名称"
        # Found (its value is a place's name, no number), a descendant's name the same way.
        for path in ("$.data.名称", "$..名称"):
            with pytest.raises(FetchError, match="not a number"):
                await read_json_number(fetcher, f"{base}/gbk", path)
        assert await read_json_number(fetcher, f"{base}/gbk", "$['data'].cpu") == 42.5
    finally:
        await fetcher.aclose()
