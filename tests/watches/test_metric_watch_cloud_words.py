"""Why a Cloud Monitor threshold watch's reads fail, as its owner meets it, for each cause:
the stored error says what to do (its page, in Chinese for a Chinese reader, and its one
"Failing" notification), and the voice (task_status's failed clause) says why in a few words.
The real SDK against the stand-in API, a real worker on the dev server."""

from __future__ import annotations

import time

import pytest

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserSettings
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from ambient.watches.service import TaskService
from api.i18n import Words
from api.routers.app_pages import failed_said
from mcp_server.voice_failures import failed_clause
from tests.standins.tencent_api import TencentApi
from tests.support.servers import free_port
from tests.support.waits import eventually
from tests.watches.test_metric_watch_cloud import (  # noqa: F401
    METRIC,
    check,
    cloud,
    cpu,
    create,
    reads,
    stopped,
)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401

# cause: the stored error's words (what to do), and its page's in Chinese.
CAUSES = {
    # The instance deleted, or dimensions matching nothing: GetMonitorData answers none.
    "no datapoints": ("has no datapoints in the last 600s", "最近 600 秒内没有数据点"),
    "no current value": (
        "has no current value: its newest datapoint is 9 min old",
        "没有当前值：最新的数据点已是 9 分钟前的",
    ),
    "AuthFailure.SecretIdNotFound": (
        "it does not accept the keys; check TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY",
        "不接受这组密钥；请检查 TENCENTCLOUD_SECRET_ID 和 TENCENTCLOUD_SECRET_KEY",
    ),
    "UnauthorizedOperation": (
        "check that the CAM policy allows monitor:GetMonitorData",
        "请检查 CAM 策略是否允许 monitor:GetMonitorData",
    ),
    "RequestLimitExceeded": (
        "Tencent Cloud is busy for GetMonitorData (RequestLimitExceeded) (too many requests at "
        "once); try again in a moment.",
        "腾讯云对 GetMonitorData（RequestLimitExceeded）限流（同时请求太多）；请稍后再试。",
    ),
    "FailedOperation.ErrOwed": (
        "the account is in arrears (overdue payment): settle it in the console",
        "这个账户已欠费：请在控制台结清",
    ),
    "AuthFailure.SignatureExpire": (
        "this machine's clock is more than 5 minutes off; set it right (NTP). injected",
        "这台机器的时钟偏差超过 5 分钟；请校准时间（NTP）",
    ),
    "InternalError": (
        "Tencent Cloud is unavailable for GetMonitorData (InternalError); try again.",
        "腾讯云暂时不可用（GetMonitorData，InternalError）；请再试一次。",
    ),
    # The endpoint refuses connections: the SDK's words were all ("ClientNetworkError: …").
    "unreachable": (
        "Tencent Cloud's API could not be reached for GetMonitorData (ClientNetworkError); try "
        "again, and if it lasts, check the way to it (DNS, a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT)",
        "连不上腾讯云 API（GetMonitorData，ClientNetworkError）；请再试一次",
    ),
}

# cause: the voice's clause, in Chinese and English.
SPOKEN = {
    "no datapoints": (
        "这个实例没有数据，可能已停止、维度写错或地域不对",
        "the instance reports no data: stopped, its dimensions wrong, or in another region",
    ),
    "no current value": (
        "这个实例最近没有新数据，可能已停止",
        "the instance sent no recent data: it may have stopped",
    ),
    "AuthFailure.SecretIdNotFound": (
        "腾讯云不接受密钥，请检查密钥",
        "Tencent Cloud refuses the keys: check them",
    ),
    "UnauthorizedOperation": (
        "CAM 权限不允许读取这个指标，请给账号授权",
        "the CAM policy does not allow reading the metric: grant it",
    ),
    "RequestLimitExceeded": (
        "腾讯云在限流，稍后会再读",
        "Tencent Cloud is throttling: it is read again later",
    ),
    "FailedOperation.ErrOwed": ("腾讯云账户欠费，请先充值", "the account is in arrears: settle it"),
    "AuthFailure.SignatureExpire": (
        "服务器时钟不准，请校准时间",
        "this server's clock is off: set it right",
    ),
    "InternalError": (
        "腾讯云暂时不可用，稍后会再读",
        "Tencent Cloud is unavailable for now: it is read again later",
    ),
    "unreachable": ("连不上腾讯云 API", "Tencent Cloud's API cannot be reached"),
}


def _cause(api: TencentApi, deps: WorkerDeps, cause: str) -> None:
    if cause == "no datapoints":
        api.metric_points[METRIC] = []
    elif cause == "no current value":  # it stopped reporting 9 minutes ago
        api.metric_points[METRIC] = [(int(time.time()) - 9 * 60, 50.0)]
    elif cause == "unreachable":
        deps.tencent._endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    else:
        api.failures["GetMonitorData"] = [cause] * 50


async def _in_chinese(deps: WorkerDeps) -> None:
    async with deps.db.session() as session:
        users = UserRepository(session)
        owner = await users.get(USER)
        assert owner is not None
        await users.update(owner, UserSettings(language=Language.ZH))
        await session.commit()


@pytest.mark.parametrize("cause", list(CAUSES))
async def test_a_cloud_monitor_read_failing_says_why_and_what_to_do_on_every_door(
    cloud: tuple[TencentApi, TaskService],  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    cause: str,
) -> None:
    """The voice said "原因可以在任务详情里看" for every cause; an unreachable API, throttling
    and InternalError were stored as the SDK's text, with nothing to do; a Chinese reader read
    every cause in English, on the page and notified."""
    words, zh_words = CAUSES[cause]
    api, service = cloud
    await _in_chinese(loopback_deps)
    reads(api, 50)
    task_id, _ = await create(service, cpu(failure_threshold=1))
    handle = service.client.get_workflow_handle(task_id)
    endpoint = loopback_deps.tencent._endpoint
    _cause(api, loopback_deps, cause)
    try:
        failed = await check(service, handle)
    finally:
        loopback_deps.tencent._endpoint = endpoint
        api.failures["GetMonitorData"] = []
    stored = str(failed.detail["last_error"])
    assert failed.detail["failing"] is True and words in stored, stored
    page = failed_said(stored, Words(Language.ZH))
    assert page.startswith("失败：") and zh_words in page, page
    assert "try again" not in page and "check that" not in page, page  # no English advice

    async def told() -> list[tuple[str, str]]:
        async with loopback_deps.db.session() as session:
            inbox = await InboxRepository(session).list(USER, limit=5)
        return [(m.title, m.body) for m in inbox if task_id in m.title]

    # The one "Failing" notification carries the reason in the owner's words, as the page.
    [(title, body)] = await eventually(told, "the failing notification")
    assert title.startswith("读取失败") and zh_words in body, (title, body)
    zh, en = SPOKEN[cause]
    assert failed_clause(failed, []) == (
        f"，但最近一次没能读到数值：{zh}",
        f", but the last check could not read a value: {en}",
    )
    await stopped(service, task_id)
