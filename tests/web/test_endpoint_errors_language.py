"""A xiaozhi.me 接入点's last error on the settings page, in its reader's language: the bridge
writes it in English (the CLI and MCP show it so); the Chinese page said "最近的错误：refused by
the broker: HTTP 401 …". The known ones (a wrong token, an endpoint unreachable, a refusal)
are said in Chinese, the broker's own words in them as it sent them; any other as written."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import update

from ambient.bridge.endpoints import (
    EndpointCipher,
    EndpointCreate,
    EndpointPublic,
    Endpoints,
    said_error,
)
from ambient.clients.guard import DestinationGuard
from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import XiaozhiEndpoint, utcnow
from ambient.storage.users import UserRepository
from api.i18n import Words
from api.routers.page_words import in_words
from tests.support.pages import signed_in
from tests.support.servers import free_port

# The error the bridge wrote → how the Chinese page says it (after "最近的错误：").
ERRORS = {
    "refused by the broker: HTTP 401 invalid token: expired or unknown": (
        "接入点服务拒绝了 token（HTTP 401 invalid token: expired or unknown）：token 有误或已过期，"
        "请从 xiaozhi.me 控制台复制新的接入点 URL 重新添加"
    ),
    "closed by the broker: 1008 invalid key": (
        "接入点服务拒绝了连接（1008 invalid key）：请检查接入点 URL 中的 token 是否正确"
    ),
    # A broker that gives no words with its refusal is still a wrong token.
    "closed by the broker: 1008": (
        "接入点服务拒绝了连接（1008）：请检查接入点 URL 中的 token 是否正确"
    ),
    "refused by the broker: HTTP 401": (
        "接入点服务拒绝了 token（HTTP 401）：token 有误或已过期，"
        "请从 xiaozhi.me 控制台复制新的接入点 URL 重新添加"
    ),
    "cannot connect to the broker: [Errno 111] Connect call failed ('127.0.0.1', 9)": (
        "连不上接入点服务：[Errno 111] Connect call failed ('127.0.0.1', 9)"
    ),
    # A scheme the broker does not speak: what to change said too.
    "cannot connect to the broker: ConnectionResetError (does it speak TLS? for a broker that "
    "does not, the address starts ws://)": (
        "连不上接入点服务：ConnectionResetError（它支持 TLS 吗？不支持的话，地址应以 ws:// 开头）"
    ),
    "InvalidMessage: did not receive a valid HTTP response (a broker that speaks only TLS "
    "wants an address starting wss://)": (
        "InvalidMessage: did not receive a valid HTTP response"
        "（只支持 TLS 的接入点服务，地址应以 wss:// 开头）"
    ),
    "connected, then the connection was lost: [Errno 104] Connection reset by peer": (
        "连上了接入点服务，之后连接断了：[Errno 104] Connection reset by peer"
    ),
    # A read refused while writes still work (the error stored is the driver's, on lines).
    "cannot read the endpoint from the product's database: (ProgrammingError) permission "
    "denied for table users\n[SQL: SELECT users.name]": (
        "读不到本产品数据库里的这个接入点：(ProgrammingError) permission denied for table users"
        "\n[SQL: SELECT users.name]"
    ),
    "cannot read the endpoint from the product's database: [Errno 111] Connect call failed": (
        "读不到本产品数据库里的这个接入点：[Errno 111] Connect call failed"
    ),
    "cannot decrypt the stored URL and its token (was AMBIENT_SECRET_KEY changed?): "
    "add the endpoint again": (
        "解不开保存的接入点 URL 和其中的 token（AMBIENT_SECRET_KEY 改过吗？）：请重新添加这个接入点"
    ),
    "refused by the broker: HTTP 403": "接入点服务拒绝了连接：HTTP 403",
    "no answer from the broker (timed out)": "接入点服务没有应答（超时）",
    "something nobody foresaw": "something nobody foresaw",
}


async def test_an_endpoints_known_last_errors_are_said_in_chinese(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One user's endpoints, one for each error (and one no bridge holds): past the usual limit.
    monkeypatch.setattr("ambient.bridge.endpoints.MAX_ENDPOINTS_PER_USER", len(ERRORS) + 1)
    # No bridge of this API dials them: the rows say what another replica's bridge wrote.
    closed = f"127.0.0.1:{free_port()}"
    settings = settings.model_copy(update={"temporal_address": closed, "xiaozhi_bridge": False})
    cipher = EndpointCipher(settings.secret_key.get_secret_value())
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="mei", language=Language.ZH)
        )
        endpoints = Endpoints(session, cipher, DestinationGuard(["127.0.0.1/32"]))
        for n, error in enumerate([*ERRORS, None]):
            url = f"ws://127.0.0.1:9/mcp/?token=t{n}"
            added = await endpoints.add(None, EndpointCreate(user="mei", url=url))
            # The last one's bridge stopped (its lease ran out); the others' holds them.
            held = error is not None
            lease = utcnow() + timedelta(minutes=1) if held else utcnow() - timedelta(minutes=1)
            last = "refused by the broker: HTTP 401 invalid token: expired or unknown"
            await session.execute(
                update(XiaozhiEndpoint)
                .where(XiaozhiEndpoint.id == added.id)
                .values(
                    last_error=error or last,
                    lease_until=lease,
                    holder="replica-b" if held else None,
                )
            )
        await session.commit()
    async with signed_in(settings, token) as http:
        page = html.unescape((await http.get("/app/settings")).text)
    for chinese in ERRORS.values():
        assert f"最近的错误：{chinese}<" in page, chinese
    # The one no bridge holds, on an API whose bridge is off: no bridge will, and it says so.
    off = "这里没有进程拨号接入点：桥接已关闭（AMBIENT_XIAOZHI_BRIDGE=false）；请管理员打开它"
    assert f"最近的错误：{off}<" in page
    # ...and where a bridge runs, that the one holding it stopped, with its last error inside.
    stopped = (
        "现在没有 bridge 持有它（持有它的 API 进程已停止）：API 在运行吗？"
        f"（最近的错误：{ERRORS[last]}）"
    )
    row = await _row_of(db, added.id)
    shown = EndpointPublic.of(row, utcnow()).last_error
    assert shown is not None and in_words(said_error(shown), Words(Language.ZH)) == stopped


async def _row_of(db: Database, endpoint: int) -> XiaozhiEndpoint:
    async with db.session() as session:
        row = await session.get(XiaozhiEndpoint, endpoint)
    assert row is not None
    return row
