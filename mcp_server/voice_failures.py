"""How a watch's checks fail, as `task_status` says it: that its last check failed, how many
in a row, and why in a few words ("域名解析失败"), not the stored error (a resolver's or a TLS
library's text, an address, a URL). A page is `failing` (told, `what_needs_me`) only after its
``failure_threshold``; a user who asks about the task hears of a failed check at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ambient.clients import extract, guard, http1_errors, metric_reads, web_errors
from ambient.clients.notify import secrets
from ambient.clients.tencent import metrics as monitor
from ambient.cloud import errors as cloud
from ambient.refusals import Refusal, read_back
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.models import TaskStatus

# Why a check failed, by the stored error's msgid (`metric_reads.said_refusal`): said as the
# listener's words, without its values but a status or seconds (a host, an address, the
# system's words).
_STATUS_WORDS = {
    # 401 asks for credentials (RFC 9110 15.5.2): given none or refused, its owner's to give.
    401: ("网站要求先登录或提供凭据", "the site asks for credentials"),
    403: ("网站拒绝了访问", "the site refused access"),
    404: ("网页不存在", "the page does not exist"),
    410: ("网页不存在", "the page does not exist"),
    429: ("网站说请求太多", "the site said too many requests"),
    503: ("网站暂时不可用", "the site is unavailable for now"),
}
_REASONS = {
    web_errors.TOO_LARGE: ("网页太大，超过了上限", "the page is larger than the limit"),
    web_errors.TOO_MANY_REDIRECTS: ("网页跳转的次数太多", "it redirected too many times"),
    web_errors.REDIRECT_LOOP: ("网页一直在循环跳转", "it redirects round in a loop"),
    web_errors.REDIRECT_REFUSED: ("跳转后的地址打不开", "the address it redirected to failed"),
    web_errors.NO_BODY: ("网站返回了空的内容", "the site answered with an empty page"),
    web_errors.NO_LOCATION: ("网站跳转了却没说跳到哪里", "it redirected without saying where to"),
    web_errors.SIGN_IN: ("网页要求先登录", "the page asks to sign in first"),
    http1_errors.TWO_LOCATIONS: ("网站的跳转指向了两个地址", "it redirected to two places at once"),
    **dict.fromkeys(
        http1_errors.CODINGS,
        ("回答的压缩方式读不了", "the answer is compressed in a way that cannot be read"),
    ),
    web_errors.WHOLE_NOT_MODIFIED: ("网站的回答不完整", "the site's answer was incomplete"),
    web_errors.ANSWER_CUT: ("网站没回答完连接就断了", "the connection ended mid-answer"),
    guard.CANNOT_RESOLVE: ("域名解析失败", "its domain name does not resolve"),
    metric_reads.PROMETHEUS_REFUSED_HTTP: ("Prometheus 拒绝了查询", "Prometheus refused the query"),
    metric_reads.PROMETHEUS_REFUSED: ("Prometheus 拒绝了查询", "Prometheus refused the query"),
    **dict.fromkeys(
        (metric_reads.JSONPATH_SEVERAL, metric_reads.JSONPATH_SEVERAL_COMPUTED),
        ("数据路径匹配到了多个值", "its path matched several values"),
    ),
    metric_reads.NO_SAMPLE: ("查询现在没有数据", "the query has no data now"),
    metric_reads.CREDENTIALS_REFUSED: ("数据源拒绝了凭据", "the source refused the credentials"),
    metric_reads.NO_CREDENTIALS: ("数据源要求凭据", "the source asks for credentials"),
    metric_reads.UNSUPPORTED_SCHEME: (
        "数据源要求的认证方式不支持",
        "the source asks for an authentication scheme not supported",
    ),
    metric_reads.CREDENTIALS_FORBIDDEN: (
        "数据源不允许这个账号读取",
        "the source forbids its account",
    ),
    metric_reads.POST_REFUSED: ("数据源拒绝了 POST 的查询", "the source refused the POSTed query"),
    **dict.fromkeys(
        (metric_reads.POST_FORBIDDEN, metric_reads.POST_FORBIDDEN_SECRET),
        ("数据源拒绝了查询（HTTP 403）", "the source refused the query (HTTP 403)"),
    ),
    metric_reads.POSTED_SEE_OTHER: (
        "数据源把 POST 的查询转到了别处",
        "the source sent the POSTed query elsewhere",
    ),
    **dict.fromkeys(
        (metric_reads.BAD_BASIC, metric_reads.BAD_TOKEN),
        ("数据源的密钥不能用作凭据", "its secret cannot be sent as credentials"),
    ),
    metric_reads.SEVERAL_SERIES: ("查询返回了多条序列", "the query answered several series"),
    # The operator took the owner off the source's secret, its origin off it, or the secret away.
    secrets.NOT_AVAILABLE: (
        "数据源的密钥不再对你开放",
        "its source's secret is no longer open to you",
    ),
    secrets.NOT_TO_ORIGIN: (
        "数据源的密钥不允许发往它的地址",
        "its source's secret may not be sent to its address",
    ),
    secrets.UNKNOWN: ("数据源的密钥已经不存在", "its source's secret no longer exists"),
    **dict.fromkeys(guard.REFUSALS, ("这个地址不允许访问", "its address is not allowed")),
    **dict.fromkeys(
        (
            metric_reads.JSONPATH_NOTHING,
            metric_reads.JSONPATH_NOT_A_NUMBER,
            metric_reads.RANGE_VECTOR,
            metric_reads.STRING_ANSWER,
            metric_reads.NOT_ONE_SAMPLE,
            metric_reads.NOT_FINITE,
            metric_reads.NATIVE_HISTOGRAM,
            metric_reads.NO_NUMBER,
        ),
        ("返回的数据里没有要的数值", "its answer held no number to read"),
    ),
    **dict.fromkeys(
        http1_errors.CUTS, ("网站没回答完连接就断了", "the connection ended mid-answer")
    ),
    # A page read but not watchable.
    extract.NOT_TEXT: ("网页不是文字内容", "the page is not text"),
    **dict.fromkeys(
        (extract.NO_TEXT, extract.NO_RENDERED_TEXT, extract.NO_FEED_TEXT),
        ("网页上没有文字", "the page has no text"),
    ),
    extract.NOTHING_SELECTED: (
        "选择器在网页上找不到内容",
        "its selector matches nothing on the page",
    ),
}
# Tencent Cloud's (cloud.errors.failure, a Cloud Monitor read's): what is wrong, what to do.
_CLOUD_REASONS = {
    **dict.fromkeys(
        (cloud.KEYS_NOT_ACCEPTED, cloud.KEYS_NOT_ACCEPTED_BEFORE),
        ("腾讯云不接受密钥，请检查密钥", "Tencent Cloud refuses the keys: check them"),
    ),
    **dict.fromkeys(
        (cloud.TEMPORARY_KEYS_NOT_ACCEPTED, cloud.TEMPORARY_KEYS_NOT_ACCEPTED_BEFORE),
        (
            "腾讯云不接受临时密钥，请换新的",
            "Tencent Cloud refuses the temporary keys: get new ones",
        ),
    ),
    **dict.fromkeys(  # a signature expired: new keys, or the clock is off
        (cloud.TEMPORARY_KEYS_OR_CLOCK, cloud.TEMPORARY_KEYS_OR_CLOCK_BEFORE),
        (
            "腾讯云不接受临时密钥，请换新的，或校准服务器时钟",
            "Tencent Cloud refuses the temporary keys: get new ones, or set the clock right",
        ),
    ),
    cloud.ROLE_KEYS_NOT_ACCEPTED: (
        "腾讯云不接受机器角色的密钥，请检查角色和时钟",
        "Tencent Cloud refuses the machine role's keys: check the role and the clock",
    ),
    cloud.CLOCK_OFF: ("服务器时钟不准，请校准时间", "this server's clock is off: set it right"),
    cloud.CAM_REFUSED: (
        "CAM 权限不允许读取这个指标，请给账号授权",
        "the CAM policy does not allow reading the metric: grant it",
    ),
    cloud.BUSY: ("腾讯云在限流，稍后会再读", "Tencent Cloud is throttling: it is read again later"),
    cloud.UNAVAILABLE: (
        "腾讯云暂时不可用，稍后会再读",
        "Tencent Cloud is unavailable for now: it is read again later",
    ),
    cloud.NOT_REACHED: ("连不上腾讯云 API", "Tencent Cloud's API cannot be reached"),
    monitor.NOT_ANSWERED: ("腾讯云 API 没有及时回应", "Tencent Cloud's API did not answer in time"),
    cloud.PARAMETER_REJECTED: (
        "腾讯云不接受这个指标的参数，请检查地域、周期、指标名和维度",
        "Tencent Cloud rejects the metric's parameters: check its region, period, name and "
        "dimensions",
    ),
    monitor.NO_DATAPOINTS: (
        "这个实例没有数据，可能已停止、维度写错或地域不对",
        "the instance reports no data: stopped, its dimensions wrong, or in another region",
    ),
    monitor.NO_CURRENT_VALUE: (
        "这个实例最近没有新数据，可能已停止",
        "the instance sent no recent data: it may have stopped",
    ),
}
# The account's state (cloud.ACCOUNT_STATES), by its words.
_ACCOUNT_REASONS = {
    cloud.IN_ARREARS: ("腾讯云账户欠费，请先充值", "the account is in arrears: settle it"),
    cloud.LOW_BALANCE: ("腾讯云账户余额不足，请充值", "the account's balance is low: top it up"),
    cloud.ACCOUNT_STATES["FailedOperation.ErrNotOpen"]: (
        "云监控的 API 按量付费还没开通，请在控制台开通",
        "Cloud Monitor's API billing is not opened: open it in its console",
    ),
    cloud.ACCOUNT_STATES["OperationDenied.AccountDestroy"]: (
        "这个腾讯云账户已销毁，请换用有效账户的密钥",
        "the account was destroyed: use a live account's keys",
    ),
    cloud.ACCOUNT_STATES["OperationDenied.AccountNotExists"]: (
        "密钥所属的腾讯云账户不存在，请检查密钥",
        "the keys' account does not exist: check the keys",
    ),
    cloud.ACCOUNT_STATES["InternalError.NotVerified"]: (
        "腾讯云账户还没实名认证，请在控制台认证",
        "the account is not identity-verified: verify it in the console",
    ),
    cloud.ACCOUNT_STATES["InternalError.NoPaymentAccess"]: (
        "这组密钥没有支付权限，请在 CAM 授权",
        "these keys may not pay: grant payment in CAM",
    ),
}
_ACCOUNT = (
    "腾讯云账户的状态不允许，请在控制台查看",
    "the Tencent Cloud account refuses: see its console",
)
# A stored error of no shape worded here (a cloud API's, an unexpected one): where to read it.
_UNWORDED = ("原因可以在任务详情里看", "its page in the app has the reason")


def reason_said(error: str) -> tuple[str, str]:
    """Why a check failed (its stored error), a few words in Chinese and English."""
    said = metric_reads.said_refusal(error) or read_back(error, guard.REFUSALS)
    return _UNWORDED if said is None else _said(said)


def _said(said: Refusal) -> tuple[str, str]:
    msgid, values = said.msgid, said.values
    # Where it came from, or that the page was read: not said.
    if msgid in (web_errors.REDIRECTED, web_errors.FROM_SOURCE, extract.UNREADABLE_BECAUSE):
        reason = values.get("reason")
        if isinstance(reason, Refusal):
            return _said(reason)
        return reason_said(str(reason)) if reason else _UNWORDED
    if msgid in (web_errors.HTTP_STATUS, web_errors.HTTP_STATUS_WAIT):
        status = str(values.get("status"))
        known = _STATUS_WORDS.get(int(status)) if status.isdigit() else None
        return known or (f"网站返回了错误 {status}", f"the site answered error {status}")
    if msgid == web_errors.TIMED_OUT:
        seconds = values.get("seconds")
        return f"网站 {seconds} 秒内没有回应", f"the site did not answer within {seconds} seconds"
    if msgid == web_errors.NO_CONNECTION:
        reason = str(values.get("reason"))
        if reason.startswith("ConnectionRefusedError"):
            return "网站拒绝了连接", "the site refused the connection"
        return "连不上网站", "no connection to the site"
    if msgid == metric_reads.NOT_JSON:  # a sign-in page, most often
        if "html" in str(values.get("kind")):
            return "返回的是网页，不是数据", "it answered a web page, not data"
        return "返回的不是数据", "it answered something other than data"
    if msgid == cloud.ACCOUNT_REFUSED:
        why = values.get("why")
        return _ACCOUNT_REASONS.get(why.msgid, _ACCOUNT) if isinstance(why, Refusal) else _ACCOUNT
    if msgid == web_errors.TLS_FAILED:
        reason = str(values.get("reason"))
        if "expired" in reason:
            return "网站的安全证书过期了", "the site's certificate has expired"
        if "certificate" in reason:
            return "网站的安全证书无效", "the site's certificate is not valid"
        return "加密连接没能建立", "the secure connection failed"
    return _REASONS.get(msgid) or _CLOUD_REASONS.get(msgid, _UNWORDED)


# A poll's page states are read from its heartbeat, which reaches the server at once and then
# about every 0.8 of its window (docs/watches.md): a state older than this many intervals may
# be a failed check that later ones, not yet heard, put right (it was said failing while they
# succeeded). The page's `failing` events are never behind and still say it.
STALE_INTERVALS = 1.5


def _recent(seen: dict[str, object], status: TaskStatus) -> bool:
    """Whether a web monitor page's state was taken within STALE_INTERVALS of its interval."""
    minutes, at = status.config.get("check_interval_minutes"), seen.get("last_checked_at")
    # Paused or stopped, no later check ran: its last one is the truth, however old.
    if status.state is not TaskState.ACTIVE or not isinstance(minutes, int | float) or not at:
        return True
    when = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return datetime.now(UTC) - when <= timedelta(minutes=STALE_INTERVALS * minutes)


def failed_clause(status: TaskStatus, failing: list[tuple[str, str | None]]) -> tuple[str, str]:
    """How a watch's checks fail, one short clause in Chinese and English: its last check (of
    the page failing longest) failed, how many in a row and why; ``failing``: its pages told
    failing (`EventRepository.failing_pages`), said even when its status counts none."""
    web_monitor = status.kind is TaskKind.WEB_MONITOR
    urls = status.detail.get("urls") if web_monitor else {"": status.detail}
    pages = list(urls.values()) if isinstance(urls, dict) else []
    failed = [
        (seen.get("failures"), str(seen.get("last_error")))
        for seen in pages
        if isinstance(seen, dict)
        and (
            seen.get("last_outcome") == "error" and _recent(seen, status)
            if web_monitor
            else seen.get("last_error")
        )
    ]
    if not failed:
        # Told failing, its status counting no failed check (read as it recovers).
        return ("，但检查一直失败", ", but its checks keep failing") if failing else ("", "")
    times, error = max(failed, key=lambda f: f[0] if isinstance(f[0], int) else 0)
    why, why_en = reason_said(error)
    if len(pages) > 1:  # which of its pages, said as how many (a URL is not said)
        return (
            f"，但 {len(pages)} 个网页里有 {len(failed)} 个最近没能打开：{why}",
            f", but {len(failed)} of its {len(pages)} pages could not be opened lately: {why_en}",
        )
    what, what_en = (
        ("没能打开网页", "could not open the page")
        if web_monitor
        else ("没能读到数值", "could not read a value")
    )
    if isinstance(times, int) and times > 1:
        return (
            f"，但最近连续 {times} 次都{what}：{why}",
            f", but the last {times} checks {what_en}: {why_en}",
        )
    return f"，但最近一次{what}：{why}", f", but the last check {what_en}: {why_en}"
