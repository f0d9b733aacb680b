"""The Tencent Cloud stand-in and the real SDK client aimed at it, for this folder's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from tencentcloud.common.credential import Credential

from ambient.clients.tencent.client import TencentCloud
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
from tests.support.servers import HANG, serve


@pytest_asyncio.fixture
async def cloud() -> AsyncIterator[tuple[TencentApi, TencentCloud]]:
    api = TencentApi()
    async with serve(api.app()) as base:
        tc = TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=base.removeprefix("http://"),
            protocol="http",
            timeout=int(HANG),  # served on the test's own loop: a loaded host's answers come late
            backoff=0.01,
        )
        yield api, tc
