"""The real Tencent Cloud client, aimed at the stand-in API (tests/standins/tencent_api.py)."""

from __future__ import annotations

from tencentcloud.common.credential import Credential

from ambient.clients.tencent.client import TencentCloud
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.wiring import AppState
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
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


def ops_state(
    deps: WorkerDeps, tencent: TencentCloud | None, settings: Settings | None = None
) -> AppState:
    """The doors' state of the stdio user "ops" on the stand-ins: no Temporal (the cloud tools
    need none)."""
    return AppState(
        settings=settings or deps.settings,
        db=deps.db,
        temporal=None,  # type: ignore[arg-type]
        channels=deps.channels,
        tencent=tencent,
        stdio_user="ops",
    )


def late_log_before_the_second_page(api: TencentApi, row: dict[str, object]) -> None:
    """Between the search's first and second page, a late log (a LogListener catching up)
    lands among the logs the first page held: by Offset, every older log moves one on."""
    api.before["SearchLog"] = lambda: api.before.__setitem__(
        "SearchLog", lambda: api.logs.append(row)
    )
