"""Why a watch's check failed, said in a listener's words: the errors a real fetch stores (a
500 whose body is a Java stack trace, a Chinese error page, a certificate refused, a timeout,
a refused connection, a long URL) said without their system text, host, address or URL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from ambient.clients.metric_reads import KEPT
from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.tencent.errors import (
    TencentCloudError,
    TencentRequestError,
    TencentRetryableError,
    translate,
)
from ambient.clients.tencent.metrics import NO_DATAPOINTS, NOT_ANSWERED, coded
from ambient.clients.web import WebFetcher
from ambient.clients.web_errors import FetchError
from ambient.cloud.errors import ACCOUNT_STATES, failure
from ambient.domain.users import Language
from ambient.setting_types import ServerSecret
from ambient.words import error_words
from api.i18n import Words
from api.routers.app_pages import failed_said
from bench.certs import certificate
from mcp_server.voice_failures import reason_said
from tests.support.servers import HANG, free_port, serve

JAVA = (
    'java.lang.NullPointerException: Cannot invoke "com.shop.Order.getId()" because "order"'
    " is null\n\tat com.shop.checkout.CheckoutService.submit(CheckoutService.java:142)\n"
)
CHINESE = (
    "<html><body><h1>502 网关错误</h1><p>上游服务暂时不可用。错误编号：a3f9c2d17e</p></body></html>"
)
LONG = "/missing/" + "/".join(f"catalogue-section-{i}" for i in range(40)) + "?ref=" + "x" * 300


def _site(answered: asyncio.Event) -> Starlette:
    """The pages; /slow answers once ``answered`` is set (after the fetcher gave up)."""

    async def page(request: Request) -> Response:
        path = request.url.path
        if path == "/slow":
            await answered.wait()
        return _answer(path)

    return Starlette(routes=[Route("/{path:path}", page)])


def _answer(path: str) -> Response:
    if path == "/java":
        return Response(JAVA, status_code=500, media_type="text/plain")
    if path == "/zh":
        return Response(CHINESE, status_code=502, media_type="text/html; charset=utf-8")
    if path == "/busy":
        return Response("busy", status_code=503, headers={"retry-after": "120"})
    return Response("missing", status_code=404)


async def _failed(fetcher: WebFetcher, url: str) -> str:
    with pytest.raises(FetchError) as failed:
        await fetcher.fetch(url)
    return str(failed.value)


async def test_a_real_fetchs_errors_are_said_as_what_went_wrong(tmp_path: Path) -> None:
    answered = asyncio.Event()
    app = _site(answered)
    cert, key = certificate("shop", tmp_path, ips=("127.0.0.1",))  # its own CA: not trusted
    # Only /slow is meant to time out: a 0.5 s budget for the others said "did not answer
    # within 0.5 seconds" for whichever a loaded machine answered late.
    fetcher = WebFetcher(allow_cidrs=["127.0.0.0/8"], timeout=HANG)
    impatient = WebFetcher(allow_cidrs=["127.0.0.0/8"], timeout=0.5)
    try:
        async with serve(app) as base, serve(app, tls=(cert, key)) as secure:
            try:
                errors = {
                    "java": await _failed(fetcher, f"{base}/java"),
                    "zh": await _failed(fetcher, f"{base}/zh"),
                    "busy": await _failed(fetcher, f"{base}/busy"),
                    "long": await _failed(fetcher, f"{base}{LONG}"),
                    "slow": await _failed(impatient, f"{base}/slow"),
                    "tls": await _failed(fetcher, secure.replace("http://", "https://") + "/"),
                    "refused": await _failed(fetcher, f"http://127.0.0.1:{free_port()}/"),
                    "dns": await _failed(fetcher, "https://checkout.shop-nowhere.invalid/cart"),
                }
            finally:  # /slow answers: the servers can stop
                answered.set()
    finally:
        await fetcher.aclose()
        await impatient.aclose()
    said = {what: reason_said(error) for what, error in errors.items()}
    assert said == {
        "java": ("网站返回了错误 500", "the site answered error 500"),
        "zh": ("网站返回了错误 502", "the site answered error 502"),
        "busy": ("网站暂时不可用", "the site is unavailable for now"),
        "long": ("网页不存在", "the page does not exist"),
        "slow": ("网站 0.5 秒内没有回应", "the site did not answer within 0.5 seconds"),
        "tls": ("网站的安全证书无效", "the site's certificate is not valid"),
        "refused": ("网站拒绝了连接", "the site refused the connection"),
        "dns": ("域名解析失败", "its domain name does not resolve"),
    }, errors


async def test_a_redirect_naming_no_one_location_is_said_as_such() -> None:
    """A redirect with no Location, or with two different ones, failed its check in words the
    voice did not know (its fallback); two were said in English with the client's class name
    on a Chinese page."""

    async def page(request: Request) -> Response:
        if request.url.path == "/none":
            return Response("Found", status_code=302)
        if request.url.path == "/loop":  # a cookie asked back: /loop ↔ /loop?lang=zh
            back = "/loop" if request.url.query else "/loop?lang=zh"
            return Response(status_code=302, headers={"location": back})
        two = Response(status_code=302, headers={"location": "/a"})
        two.raw_headers.append((b"location", b"/b"))
        return two

    fetcher = WebFetcher(allow_cidrs=["127.0.0.0/8"])
    try:
        async with serve(Starlette(routes=[Route("/{path:path}", page)])) as base:
            none, two, loop = (
                await _failed(fetcher, f"{base}/none"),
                await _failed(fetcher, f"{base}/two"),
                await _failed(fetcher, f"{base}/loop"),
            )
    finally:
        await fetcher.aclose()
    assert (none, two) == (
        "the server answered HTTP 302, a redirect, with no Location to follow: no page to read; "
        "open the URL in a browser to find where it moved, and watch that one",
        "the answer names two different Locations: a redirect names one target; watch the "
        "page it should lead to, or ask its site to send one",
    )
    assert (reason_said(none), reason_said(two), reason_said(loop)) == (
        ("网站跳转了却没说跳到哪里", "it redirected without saying where to"),
        ("网站的跳转指向了两个地址", "it redirected to two places at once"),
        ("网页一直在循环跳转", "it redirects round in a loop"),
    )
    assert failed_said(two, Words(Language.ZH)) == (
        "失败：答复里有两个不同的 Location：重定向只能指向一个地址；请监控它本该跳转到的页面，"
        "或请网站只发送一个"
    )


def test_a_metric_read_or_an_error_of_no_known_shape_is_said_without_its_text() -> None:
    """A threshold watch's read names its source after the fetch's words (not said); an error
    of no shape worded (a cloud API's) says where its reason is, not the error."""
    assert reason_said("timed out after 20 s from http://10.0.0.5:9090/api/v1/query") == (
        "网站 20 秒内没有回应",
        "the site did not answer within 20 seconds",
    )
    assert reason_said(
        "the source did not answer a number (JSONDecodeError: Expecting value: line 1 column 1)"
    ) == ("返回的数据里没有要的数值", "its answer held no number to read")
    assert reason_said(
        "JSONPath $.items[*].p matched 2 values ($.items.[0].p = 1, $.items.[1].p = 2): "
        "give a path to one of them, e.g. $.items.[0].p"
    ) == ("数据路径匹配到了多个值", "its path matched several values")
    assert reason_said(
        "query answered a native histogram, not a number: ask for one number of it "
        "(histogram_count, histogram_sum, histogram_quantile): rpc_duration_seconds"
    ) == ("返回的数据里没有要的数值", "its answer held no number to read")
    assert reason_said(
        "query answered no sample: no series matches it now (no data, not 0; where none means 0, "
        'add "or vector(0)"): sum(up)'
    ) == ("查询现在没有数据", "the query has no data now")
    assert reason_said(
        'query answered 2 series ({instance="a:9100"}, {instance="b:9100"}), not one: aggregate '
        'them (sum, max, ...) or pick one with a label matcher: up{job="node"}'
    ) == ("查询返回了多条序列", "the query answered several series")
    # As a check stores it (activities/watches.py read_page): the reason was never matched.
    assert reason_said(
        "cannot read the page's text: the page has no text (is it rendered by JavaScript?)"
    ) == ("网页上没有文字", "the page has no text")
    assert reason_said(
        "cannot read the page's text: the selector '#price' matches nothing on the page"
    ) == ("选择器在网页上找不到内容", "its selector matches nothing on the page")
    assert reason_said("InternalError: 内部错误 (RequestId 5f1c2d3e-aaaa-bbbb)") == (
        "原因可以在任务详情里看",
        "its page in the app has the reason",
    )


def test_a_metric_sources_secret_refused_at_its_read_is_said_in_the_listeners_language() -> None:
    """The operator took a watch's owner off its source's secret, the source's origin off it,
    or the secret away: each read stores the refusal (activities/watches.py _credentials), and
    the voice said "原因可以在任务详情里看", where the page showed it in English alone."""
    resolver = SecretResolver(
        {
            "prom": ServerSecret(
                value=SecretStr("reader:pw"), users=["bob"], origins=["http://127.0.0.1:9090"]
            )
        }
    )
    reads = (
        lambda: resolver.check_access("secret:prom", user="lin", is_admin=False),
        lambda: resolver.check_origin("secret:prom", "http://127.0.0.1:9191/api/v1/query"),
        lambda: resolver.check_access("secret:gone", user="root", is_admin=True),
    )
    stored = []
    for read in reads:
        with pytest.raises(PermanentNotifyError) as refused:
            read()
        stored.append(str(refused.value))  # as the read stores it
    assert stored[0] == (
        "secret 'prom' is not available to lin: server secrets are for admins unless the "
        'operator lists the user in AMBIENT_SECRETS ({"NAME": {"value": "...", "users": ["lin"]}})'
    )
    assert [reason_said(error) for error in stored] == [
        ("数据源的密钥不再对你开放", "its source's secret is no longer open to you"),
        ("数据源的密钥不允许发往它的地址", "its source's secret may not be sent to its address"),
        ("数据源的密钥已经不存在", "its source's secret no longer exists"),
    ]
    assert [failed_said(error, Words(Language.ZH)) for error in stored] == [
        "失败：密钥 'prom' 对 lin 不可用：服务器密钥只给管理员用，除非运维在 AMBIENT_SECRETS 里列上"
        '这个用户（{"NAME": {"value": "...", "users": ["lin"]}}）',
        "失败：密钥 'prom' 不能发往 http://127.0.0.1:9191：密钥能发往哪些源，由运维在"
        ' AMBIENT_SECRETS 里列出（{"prom": {"value": "...", "origins": ["http://127.0.0.1:9191"]}}）',
        "失败：没有密钥 'gone'：密钥由运维在 AMBIENT_SECRETS 里定义",
    ]
    assert failed_said(stored[0], Words(Language.EN)) == f"failed: {stored[0]}"


def test_a_secrets_origin_refusal_cut_where_a_read_keeps_it_is_still_said_in_words() -> None:
    """A source at a long host (~170 characters): the origin refusal says it twice, a read keeps
    500 characters of it (activities/watches.py _failed), and the cut error read back as no
    refusal: the page showed the English, the voice "原因可以在任务详情里看"."""
    from ambient.clients.metric_reads import KEPT

    host = ".".join(["metrics-cluster-0123456789"] * 6) + ".example.com"
    resolver = SecretResolver(
        {"prom": ServerSecret(value=SecretStr("reader:pw"), origins=["http://127.0.0.1:9090"])}
    )
    with pytest.raises(PermanentNotifyError) as refused:
        resolver.check_origin("secret:prom", f"https://{host}/api/v1/query")
    assert len(str(refused.value)) > KEPT  # the case: cut where it is kept
    stored = str(refused.value)[:KEPT]
    assert reason_said(stored) == (
        "数据源的密钥不允许发往它的地址",
        "its source's secret may not be sent to its address",
    )
    said = failed_said(stored, Words(Language.ZH))
    assert said.startswith(f"失败：密钥 'prom' 不能发往 https://{host}:443：密钥能发往哪些源"), said
    assert said.endswith(f"{stored[-20:]}…）"), said


def test_a_secrets_origin_refusal_followed_by_other_text_is_not_read_back_as_it() -> None:
    """The cut refusal was read back from any 500 characters that began like it (its example
    any text): a whole refusal followed by other words was said as the refusal alone. Only an
    example the secret and origin read back would have made, cut, is."""
    from ambient.clients.metric_reads import KEPT, said_refusal

    resolver = SecretResolver(
        {"prom": ServerSecret(value=SecretStr("reader:pw"), origins=["http://127.0.0.1:9090"])}
    )
    with pytest.raises(PermanentNotifyError) as refused:
        resolver.check_origin("secret:prom", "http://127.0.0.1:9191/api/v1/query")
    whole = str(refused.value)
    stored = (whole + "; and then the source's proxy said " + "x" * KEPT)[:KEPT]
    assert said_refusal(whole) is not None  # the refusal alone is read back
    assert said_refusal(stored) is None
    assert said_refusal(stored[:-1]) is None


def test_a_cloud_monitor_reads_other_refusals_are_said_as_what_to_do() -> None:
    """The refusals of a Cloud Monitor read the stand-in watch test does not reach, as a read
    stores them (failure's words, cut where a read keeps them): each said in a few words, not
    "原因可以在任务详情里看"."""

    def stored(code: str, role: str | None = None, temporary: bool = False) -> str:
        exc = translate(TencentCloudSDKException(code, "the API's words " * 30, "req-1"))
        exc.call, exc.role, exc.temporary = ("monitor", "GetMonitorData"), role, temporary
        return str(failure(exc))[:KEPT]

    slow = TencentRetryableError(*coded(NOT_ANSWERED % {"seconds": "25"}))
    assert {
        "temporary": reason_said(stored("AuthFailure.TokenFailure", temporary=True)),
        "expired": reason_said(stored("AuthFailure.SignatureExpire", temporary=True)),
        "role": reason_said(stored("AuthFailure.SecretIdNotFound", role="ambient-reader")),
        "parameter": reason_said(stored("InvalidParameterValue")),
        "balance": reason_said(stored("InternalError.InsufficientBalance")),
        "billing": reason_said(stored("FailedOperation.ErrNotOpen")),
        "slow": reason_said(str(failure(slow))),
    } == {
        "temporary": (
            "腾讯云不接受临时密钥，请换新的",
            "Tencent Cloud refuses the temporary keys: get new ones",
        ),
        "expired": (
            "腾讯云不接受临时密钥，请换新的，或校准服务器时钟",
            "Tencent Cloud refuses the temporary keys: get new ones, or set the clock right",
        ),
        "role": (
            "腾讯云不接受机器角色的密钥，请检查角色和时钟",
            "Tencent Cloud refuses the machine role's keys: check the role and the clock",
        ),
        "parameter": (
            "腾讯云不接受这个指标的参数，请检查地域、周期、指标名和维度",
            "Tencent Cloud rejects the metric's parameters: check its region, period, name and "
            "dimensions",
        ),
        "balance": ("腾讯云账户余额不足，请充值", "the account's balance is low: top it up"),
        "billing": (
            "云监控的 API 按量付费还没开通，请在控制台开通",
            "Cloud Monitor's API billing is not opened: open it in its console",
        ),
        "slow": ("腾讯云 API 没有及时回应", "Tencent Cloud's API did not answer in time"),
    }


def test_every_account_state_is_spoken_as_what_to_do() -> None:
    """An account state Tencent Cloud refuses a read for is said as itself (destroyed, not
    verified, no payment, billing not opened), not "the account refuses: see its console"."""
    generic = (
        "腾讯云账户的状态不允许，请在控制台查看",
        "the Tencent Cloud account refuses: see its console",
    )
    said = {code: reason_said(str(failure(_refused(code)))) for code in ACCOUNT_STATES}
    assert generic not in said.values(), said
    assert len({words for words in said.values()}) == len(set(ACCOUNT_STATES.values())), said


def _refused(code: str) -> TencentCloudError:
    exc = translate(TencentCloudSDKException(code, "words", "req-1"))
    exc.call = ("monitor", "GetMonitorData")
    return exc


def test_a_cut_error_ending_in_the_words_after_its_last_value_is_read_back_once() -> None:
    """A NoData of many dimensions is cut in its fixed words after them: read back, those words
    ran into the dimensions, and the page said them twice (the Chinese page in English)."""
    dims = ", ".join(f"dim{i}=value-{i:04d}" for i in range(13))
    values = {"metric": "QCE/LB/Conn", "seconds": "600", "region": "ap-guangzhou"}
    stored = str(
        failure(TencentRequestError(*coded(NO_DATAPOINTS % (values | {"dimensions": dims}))))
    )
    assert len(stored) > KEPT
    page = error_words(stored[:KEPT], Words(Language.EN))
    assert page.count("a stopped instance reports nothing") == 1, page
    assert f"({dims}) name a resource" in page, page
    chinese = error_words(stored[:KEPT], Words(Language.ZH))
    assert "a stopped instance" not in chinese and "dim11=value-0011" in chinese, chinese


def test_temporary_keys_with_an_expired_signature_are_said_all_in_chinese_on_a_page() -> None:
    """The clock's hint came in the message, after the sentence: a Chinese page said the one
    advice that mattered ("this machine's clock is more than 5 minutes off …") in English."""
    exc = translate(TencentCloudSDKException("AuthFailure.SignatureExpire", "签名过期", "req-1"))
    exc.call, exc.temporary = ("monitor", "GetMonitorData"), True
    chinese = error_words(str(failure(exc)), Words(Language.ZH))
    assert "时钟偏差超过 5 分钟" in chinese and "clock" not in chinese, chinese


@pytest.mark.parametrize(
    ("code", "chinese"),
    [
        ("LimitExceeded.MetricQuotaExceeded", "已达配额或上限"),
        ("ResourceNotFound", "请求里指定的资源不存在"),
        (
            "FailedOperation.RegionUnavailable",
            "GetMonitorData（FailedOperation.RegionUnavailable）失败",
        ),
    ],
)
def test_a_read_refused_for_a_quota_a_missing_thing_or_else_reads_in_chinese(
    code: str, chinese: str
) -> None:
    """Their sentences were f-strings: a Chinese page said them in English."""
    exc = translate(TencentCloudSDKException(code, "words", "req-1"))
    exc.call = ("monitor", "GetMonitorData")
    said = error_words(str(failure(exc)), Words(Language.ZH))
    assert chinese in said, said


def test_a_keys_refusal_a_release_before_stored_still_reads_in_chinese_and_is_spoken() -> None:
    """A paused watch keeps its last error: stored before the restart's words, it read back as
    Tencent Cloud's bare refusal, half English, and was spoken "原因可以在任务详情里看"."""
    stored = (
        "Tencent Cloud refused GetMonitorData (AuthFailure.SecretIdNotFound): it does not accept "
        "the keys; check TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (a key deleted or "
        "disabled in the console is refused too). unknown SecretId (RequestId req-1)"
    )
    chinese = error_words(stored, Words(Language.ZH))
    assert "不接受这组密钥" in chinese and "does not accept" not in chinese, chinese
    assert reason_said(stored) == (
        "腾讯云不接受密钥，请检查密钥",
        "Tencent Cloud refuses the keys: check them",
    )
