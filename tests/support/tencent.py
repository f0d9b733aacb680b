"""The real Tencent Cloud client, aimed at the stand-in API (tests/standins/tencent_api.py)."""

from __future__ import annotations

from tencentcloud.common.credential import Credential

from ambient.clients.tencent.client import TencentCloud
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY
from tests.support.servers import HANG


def standin_tencent(base: str) -> TencentCloud:
    """The real Tencent Cloud client, aimed at the stand-in served at ``base``."""
    return TencentCloud(
        Credential(SECRET_ID, SECRET_KEY),
        region="ap-guangzhou",
        endpoint=base.removeprefix("http://"),
        protocol="http",
        timeout=int(HANG),  # served on the test's own loop: a loaded host's answers come late
    )
