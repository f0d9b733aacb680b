"""The refusals a Chinese user meets most on the forms are said in Chinese; the API's stay
English."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import SecretStr

from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from api.app import create_app
from api.i18n import Words
from api.routers.page_words import in_words
from tests.support.api_worker import api_client
from tests.support.pages import signed_in
from tests.support.servers import free_port, serve


def shown_error(page: httpx.Response) -> str:
    # The dashboard says it as its notice, the settings page as its error.
    found = re.search(r'<p class="(?:notice|error)" role="\w+">(.*?)</p>', page.text, re.S)
    assert found is not None, page.text[:2000]
    return html.unescape(found.group(1))


@asynccontextmanager
async def zh_pages(
    settings: Settings, db: Database, name: str, referer: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser-like client of the pages, signed in as a new Chinese user ``name``, and the
    user's API token."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    async with signed_in(settings, token, f"{referer}") as http:
        yield http, token


async def refusal(http: httpx.AsyncClient, path: str, form: dict[str, str | list[str]]) -> str:
    """What the page says of a form it refused (422)."""
    answer = await http.post(path, data=form)
    assert answer.status_code == 422, (path, form, answer.status_code)
    return shown_error(answer)


async def test_a_chinese_users_most_common_form_refusals_are_in_chinese(
    settings: Settings, db: Database
) -> None:
    async with zh_pages(settings, db, "yan", "/app") as (http, token):
        monitor = {"interval": "30", "keywords": "", "name": ""}
        said = await refusal(http, "/app/tasks", monitor | {"urls": "example.com/news"})
        assert said == "未创建：网页，第 1 行: 不是有效的网址：请以 https:// 开头写完整"
        said = await refusal(http, "/app/tasks", monitor | {"urls": "ftp://example.com/feed"})
        assert said == "未创建：网页，第 1 行: 只能使用 http:// 或 https:// 网址"
        said = await refusal(http, "/app/tasks", {"urls": "https://example.com", "interval": "0"})
        assert said == "未创建：间隔（分钟）: 不能小于 1"
        said = await refusal(http, "/app/tasks", monitor | {"urls": "http://127.0.0.1/x"})
        assert said == (
            "未创建：网页，第 1 行: 不能访问 127.0.0.1：它不是公网地址（127.0.0.1）；"
            "如确需访问，请运维在 AMBIENT_FETCH_ALLOW_CIDRS 中放行"
        )
        said = await refusal(
            http, "/app/push", {"type": "webhook", "target": "http://[::1]:8/hook"}
        )
        assert said == (
            "渠道 1，目标: 不能访问 ::1：它不是公网地址（::1）；"
            "如确需访问，请运维在 AMBIENT_FETCH_ALLOW_CIDRS 中放行"
        )
        said = await refusal(http, "/app/xiaozhi/endpoints", {"url": "https://api.xiaozhi.me/mcp/"})
        assert said == "接入点 URL: 必须以 wss:// 或 ws:// 开头（这里是 https://）"
        said = await refusal(http, "/app/xiaozhi/endpoints", {"url": "wss://api.xiaozhi.me/mcp/"})
        assert said == "接入点 URL: 缺少 token 参数：请复制完整的接入点 URL，包括 ?token=..."
        # Refusals beyond those: said from their structure (pydantic's type and ctx, our own
        # message ids), not from the wording of their English.
        said = await refusal(
            http, "/app/tasks", {"urls": "https://example.com", "interval": "20000"}
        )
        assert said == "未创建：间隔（分钟）: 不能大于 10080"
        said = await refusal(http, "/app/tasks", monitor | {"urls": "https://[::1"})
        assert said == "未创建：网页，第 1 行: 不是有效的网址：IPv6 地址无效"
        said = await refusal(
            http, "/app/tasks", monitor | {"urls": "https://a.example/n", "keywords": "re:["}
        )
        assert said.startswith("未创建：关键词，第 1 行: '[' 不是有效的正则表达式："), said
        said = await refusal(
            http, "/app/tasks", monitor | {"urls": "https://a.example/n", "keywords": "re:a|"}
        )
        assert said.startswith("未创建：关键词，第 1 行: 'a|' 匹配空文本"), said
        said = await refusal(http, "/app/xiaozhi/endpoints", {"url": "wss:///mcp/?token=t"})
        assert said == "接入点 URL: 缺少主机名（例如 wss://api.xiaozhi.me/mcp/?token=...）"
        said = await refusal(
            http, "/app/xiaozhi/endpoints", {"url": "ws://localhost:8/mcp/?token=t"}
        )
        assert said == (
            "接入点 URL: 不能访问 localhost：它不是公网地址（127.0.0.1）；"
            "如确需访问，请运维在 AMBIENT_FETCH_ALLOW_CIDRS 中放行"
        )
        # A 接入点 dialed by an endpoint already (the double submit, a second device's page).
        url = {"url": "wss://api.xiaozhi.me/mcp/?token=yan-once"}
        assert (await http.post("/app/xiaozhi/endpoints", data=url)).status_code == 303
        said = await refusal(http, "/app/xiaozhi/endpoints", url)
        assert re.fullmatch(
            r"接入点 URL: 这个接入点已经登记过了（接入点 \d+）；"
            r"它只能有一个连接：请先删除那个接入点",
            said,
        ), said
        # The API's words are the services' own, in English.
        api = await http.put(
            "/users/me/push",
            json={"channels": [{"type": "webhook", "target": "http://[::1]:8/hook"}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert api.status_code == 422
        assert "refused destination ::1" in api.json()["detail"][0]["msg"]


async def test_a_monitor_with_blank_or_overlong_pages_is_refused_in_chinese(
    settings: Settings, db: Database
) -> None:
    """Spaces or empty lines pass the browser's check of the required Pages box and come as no
    page; that and a URL too long were refused in pydantic's English ("List should have at
    least 1 item after validation, not 0")."""
    async with zh_pages(settings, db, "kong", "/app") as (http, _):
        monitor = {"interval": "30", "keywords": "", "name": ""}
        said = await refusal(http, "/app/tasks", monitor | {"urls": " \n "})
        assert said == "未创建：网页: 至少要有 1 项，这里有 0 项"
        long = "https://example.com/" + "a" * 2100
        said = await refusal(http, "/app/tasks", monitor | {"urls": long})
        assert said == "未创建：网页，第 1 行: 网址不能超过 2048 个字符"


async def test_a_chinese_users_settings_and_push_channel_refusals_are_in_chinese(
    settings: Settings, db: Database
) -> None:
    async with zh_pages(settings, db, "mei", "/app/settings") as (http, _):
        said = await refusal(
            http,
            "/app/settings",
            {
                "email": "mei@",
                "phone": "+86 abc",
                "timezone": "Asia/Shanghia",
                "briefing_prepare_at": "25:00",
            },
        )
        assert said == (
            # The phone's rule is the SMS channel's, said as it is (not as a regular expression).
            "邮箱: 不是有效的邮箱地址; "
            "电话: 不是电话号码：'+86 abc'（请用国际格式，例如 +8613800000000）; "
            "时区: 未知的 IANA 时区 'Asia/Shanghia'；例如 Asia/Shanghai、UTC; "
            "简报生成时间: 须为 24 小时制的 HH:MM，例如 06:00"
        )
        said = await refusal(http, "/app/push", {"type": ["sms", "wecom"], "target": ["12", "k y"]})
        assert said == (
            "渠道 1，目标: 不是电话号码：'12'（请用国际格式，例如 +8613800000000）; "
            "渠道 2，目标: 不是 wecom 目标：请填写机器人 key、机器人 URL 或 secret:NAME"
        )
        said = await refusal(http, "/app/push", {"type": "webhook", "target": ""})
        assert said == "渠道 1，目标: webhook 渠道需要填写目标（地址、URL、key 或 secret:NAME）"
        said = await refusal(http, "/app/push", {"type": "inbox", "target": "someone"})
        assert said == "渠道 1，目标: 收件箱只能是你自己的（'mei' 或留空），不能是 'someone'"
        # The target's placeholder offers secret:NAME: one the member may not use was refused
        # in English, by its channel alone.
        said = await refusal(http, "/app/push", {"type": "webhook", "target": "secret:ops-bot"})
        assert said == (
            "渠道 1，目标: 密钥 'ops-bot' 对 mei 不可用：服务器密钥只给管理员用，除非运维在 "
            'AMBIENT_SECRETS 里列上这个用户（{"NAME": {"value": "...", "users": ["mei"]}}）'
        )


async def test_a_chinese_browsers_registration_refusals_name_the_fields_in_chinese(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{free_port()}", "open_registration": True}
    )
    async with (
        serve(create_app(settings)) as base,
        api_client(base, headers={"origin": base, "accept-language": "zh-CN,zh;q=0.9"}) as http,
    ):
        # An intranet address passes the browser's own check of an email field.
        said = await refusal(http, "/register", {"name": "mei", "email": "mei@company"})
        assert said == "邮箱: 不是有效的邮箱地址"
        said = await refusal(http, "/register", {"name": "Mei Li"})
        assert said == "用户名: 须为 1-63 个小写字母、数字、'_'、'.'、'-'，以字母或数字开头"
    async with db.session() as session:
        assert await UserRepository(session).get("mei") is None


async def test_a_voiceprint_id_another_user_has_is_refused_in_chinese_on_the_settings_page(
    settings: Settings, db: Database
) -> None:
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name="ren", voiceprint_id="vp-ren"))
        await session.commit()
    async with zh_pages(settings, db, "shu", "/app/settings") as (http, _):
        said = await refusal(http, "/app/settings", {"voiceprint_id": "vp-ren"})
        assert said == "声纹 ID: 'vp-ren' 不能使用，请换一个"
        said = await refusal(http, "/app/settings", {"voiceprint_id": "ren"})
        assert said == "声纹 ID: 'ren' 不能使用，请换一个"
    async with db.session() as session:
        shu = await UserRepository(session).get("shu")
    assert shu is not None and shu.voiceprint_id is None


async def test_a_device_someone_else_registered_is_not_said_to_be_yours_to_remove(
    settings: Settings, db: Database
) -> None:
    async with zh_pages(settings, db, "ding", "/app/settings") as (http, _):
        added = await http.post("/app/xiaozhi/devices", data={"device_id": "AA:BB:CC:DD:EE:02"})
        assert added.status_code == 201
        said = await refusal(http, "/app/xiaozhi/devices", {"device_id": "aa:bb:cc:dd:ee:02"})
        assert said == "设备 aa:bb:cc:dd:ee:02 已注册；请先删除。"
    async with zh_pages(settings, db, "ke", "/app/settings") as (http, _):
        said = await refusal(http, "/app/xiaozhi/devices", {"device_id": "aa:bb:cc:dd:ee:02"})
        assert said == "设备 aa:bb:cc:dd:ee:02 已由另一个人注册：只有它的主人或管理员可以删除。"


def test_a_secret_named_with_something_after_it_is_refused_in_chinese_words() -> None:
    """The `secret:NAME?…` refusal (an admin's reference looked up, a send) was English only:
    a text, not a Refusal a page can say in its language."""
    secrets = SecretResolver({"ops-bot": SecretStr("https://hooks.example/x")})
    refused = []
    for value in ("secret:ops-bot?x=1", "secret:nope#x"):
        with pytest.raises(PermanentNotifyError) as caught:
            secrets.check_access(value, user="boss", is_admin=True)
        refused.append(caught.value)
    said = [in_words(exc.args[0], Words(Language.ZH)) for exc in refused]
    assert said == [
        "'secret:ops-bot?…'：密钥只能用确切的名称引用（secret:NAME），后面不能再跟任何内容",
        "'secret:nope…'：密钥只能用确切的名称引用（secret:NAME），后面不能再跟任何内容",
    ]
    # The English is as before.
    assert str(refused[0]) == (
        "'secret:ops-bot?…': a secret is referenced by its exact name (secret:NAME), "
        "nothing may follow it"
    )
