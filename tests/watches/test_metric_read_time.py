"""A Cloud Monitor read that gets no answer is given up inside its activity's time, saying
what did not answer: the SDK's request timeout was as long as the activity's, which timed
out first, and the watch said only "activity StartToClose timeout"."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.testing import ActivityEnvironment
from tencentcloud.common.credential import Credential

from activities.watches import CLOUD_READ_MARGIN, WatchActivities
from ambient.clients.tencent.client import TencentCloud
from ambient.domain.checks import MetricReading, ReadMetricInput
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY
from tests.support.servers import HANG, serve

SOURCE = {
    "type": "tencent_monitor",
    "namespace": "QCE/CVM",
    "metric": "CPUUsage",
    "dimensions": {"InstanceId": "ins-slow01"},
}


async def test_a_cloud_monitor_read_with_no_answer_is_given_up_in_time_saying_so() -> None:
    released = asyncio.Event()
    asked: list[str] = []

    async def silent(request: Request) -> Response:
        asked.append(request.headers["X-TC-Action"])
        await released.wait()  # no answer until the test is done
        return Response(status_code=504)

    app = Starlette(routes=[Route("/", silent, methods=["POST"])])
    async with serve(app) as base:
        tc = TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=base.removeprefix("http://"),
            protocol="http",
            timeout=int(HANG),  # the SDK's own timeout past the activity's, as in production
        )
        env = ActivityEnvironment()
        # 3 s, not 1: at load 13 the SDK's request, sent from a thread, had not reached the
        # server within 1 s (nothing asked), which is no test of giving a silent API up.
        limit = timedelta(seconds=CLOUD_READ_MARGIN + 3)
        env.info = dataclasses.replace(env.info, start_to_close_timeout=limit, is_local=False)
        activities = WatchActivities(cast(Any, None), cast(Any, None), tc)
        try:
            reading = await env.run(activities.read_metric, ReadMetricInput(source=SOURCE))
        finally:
            released.set()
    assert reading == MetricReading(
        error="ClientNetworkError: Cloud Monitor did not answer within 3 s (if it lasts, check "
        "the way to the API: a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT)"
    )
    assert asked == ["GetMonitorData"]
