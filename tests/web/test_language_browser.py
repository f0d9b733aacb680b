"""In headless chromium: a Chinese user's pages, switching language, and 小智 devices on the
settings page (add with the token shown once, allow as a speaker, remove)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from playwright.async_api import Browser, Dialog, Page, expect
from temporalio.testing import WorkflowEnvironment

from ambient.bridge.endpoints import EndpointCipher, Endpoints
from ambient.clients.guard import DestinationGuard
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import unique
from tests.standins.xiaozhi_broker import running_broker
from tests.support.servers import HANG, http_client, serve
from tests.support.waits import eventually
from tests.web.test_pages_browser import fits_phone, phone_page


async def _user(deps: WorkerDeps, name: str, language: Language | None) -> str:
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=language))
        await session.commit()
    return token


async def _sign_in(page: Page, base: str, token: str) -> None:
    await page.goto(f"{base}/signin")
    await page.locator("#token").fill(token)
    await page.locator("form[action='/signin'] button").click()
    await expect(page).to_have_url(f"{base}/app")


# A few strings per page that only the page's language has.
CHINESE = {
    "/app": ["新建网页监控", "收件箱", "任务与事件"],
    "/app/briefings": ["晨间简报", "还没有简报"],
    "/app/remediations": ["还没有修复。"],
    "/app/discussions": ["还没有讨论。", "主题"],
    "/app/settings": ["推送渠道", "小智设备", "页面语言"],
}
ENGLISH = {
    "/app": ["New web monitor", "Inbox", "Tasks & events"],
    "/app/briefings": ["Morning briefing", "No briefings yet"],
    "/app/remediations": ["No remediations yet."],
    "/app/discussions": ["No discussions yet.", "Topic"],
    "/app/settings": ["Push channels", "小智 devices", "Language of these pages"],
}


async def _reads(page: Page, base: str, wanted: dict[str, list[str]]) -> None:
    for path, texts in wanted.items():
        await page.goto(f"{base}{path}")
        for text in texts:
            await expect(page.locator("body")).to_contain_text(text)


async def test_a_chinese_user_reads_chinese_pages_and_switching_the_setting_switches_them(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    name = unique("zh")
    token = await _user(deps, name, Language.ZH)
    # The browser asks for English: the user's own setting wins.
    async with serve(create_app(settings)) as base, phone_page(browser, "en-US") as page:
        await _sign_in(page, base, token)
        await expect(page.locator("html")).to_have_attribute("lang", "zh")
        await _reads(page, base, CHINESE)
        await fits_phone(page, "language-zh-settings")
        # A message the router builds is in Chinese too, and names the form's fields so.
        await page.goto(f"{base}/app")
        await page.get_by_label("网页（每行一个 URL）").fill("https://a.example\nhttp:///x")
        await page.get_by_role("button", name="创建监控").click()
        await expect(page.get_by_role("status")).to_contain_text("未创建：网页，第 2 行")

        await page.goto(f"{base}/app/settings")
        await page.get_by_label("页面语言").select_option("en")
        await page.get_by_role("button", name="保存设置").click()
        # Said in the language just chosen.
        await expect(page.get_by_role("status")).to_contain_text("Settings saved")
        await _reads(page, base, ENGLISH)
        for path, texts in CHINESE.items():
            await page.goto(f"{base}{path}")
            for text in texts:
                await expect(page.locator("body")).not_to_contain_text(text)

        await page.goto(f"{base}/app/settings")
        await page.get_by_label("Language of these pages").select_option("zh")
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.get_by_role("status")).to_contain_text("设置已保存")
        await expect(page.locator("nav")).to_contain_text("设置")


async def test_an_english_user_reads_english_pages_from_a_chinese_browser(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    token = await _user(deps, unique("en"), Language.EN)
    async with serve(create_app(settings)) as base, phone_page(browser, "zh-CN") as page:
        await page.goto(base)
        # Anonymous: the browser's language.
        await expect(page.get_by_role("link", name="用 API 令牌登录")).to_be_visible()
        await _sign_in(page, base, token)
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await _reads(page, base, ENGLISH)


async def test_the_chat_box_suggests_a_message_in_the_pages_language(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The chat box's example message was Chinese on an English page too."""
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    english = await _user(deps, unique("en"), Language.EN)
    chinese = await _user(deps, unique("zh"), Language.ZH)
    async with serve(create_app(settings)) as base:
        for token, example in (
            (english, "Every morning at 8, mail me a summary of yesterday's logs"),
            (chinese, "每天早上8点把昨天的日志摘要发到我邮箱"),
        ):
            async with phone_page(browser) as page:
                await _sign_in(page, base, token)
                await expect(page.locator("#chat-input")).to_have_attribute("placeholder", example)


async def _context(base: str, device: str, token: str) -> dict[str, object]:
    async with http_client(base) as http:
        answer = await http.get(
            "/xiaozhi/context",
            headers={"device-id": device, "authorization": f"Bearer {token}"},
        )
    body: dict[str, object] = answer.json()
    return body


async def test_devices_are_added_with_the_token_once_allowed_as_a_speaker_and_removed(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    owner, friend = unique("owner"), unique("friend")
    owner_token = await _user(deps, owner, Language.ZH)
    friend_token = await _user(deps, friend, Language.EN)
    mac = "AA:BB:CC:00:11:22"
    async with serve(create_app(settings)) as base:
        async with phone_page(browser, "zh-CN") as page:
            await _sign_in(page, base, owner_token)
            await page.goto(f"{base}/app/settings")
            await expect(page.locator("#devices")).to_contain_text("还没有小智设备。")

            await page.get_by_label("设备 ID（MAC 地址）").fill("not a mac!")
            await page.get_by_role("button", name="添加设备").click()
            await expect(page.get_by_role("alert")).to_contain_text("设备 ID：xiaozhi-server")
            await expect(page.locator("#devices")).to_contain_text("还没有小智设备。")

            await page.get_by_label("设备 ID（MAC 地址）").fill(mac)
            await page.get_by_role("button", name="添加设备").click()
            await expect(page.locator("#device-added")).to_contain_text("只显示这一次")
            # Where the page the add answered opens, not 2,000 px down on a phone, unseen.
            await expect(page.locator("#device-token")).to_be_in_viewport()
            device_token = (await page.locator("#device-token").inner_text()).strip()
            assert device_token.startswith("xzd_")
            await expect(page.locator("#devices")).to_contain_text(mac.lower())
            await fits_phone(page, "language-zh-device-added")
            # The token works where xiaozhi-server uses it, and is never shown again.
            facts = await _context(base, mac, device_token)
            assert facts["code"] == 0, facts
            await page.goto(f"{base}/app/settings")
            await expect(page.locator("#devices")).to_contain_text(mac.lower())
            assert device_token not in await page.content()

            await page.get_by_label("设备 ID（MAC 地址）").fill(mac)
            await page.get_by_role("button", name="添加设备").click()
            await expect(page.get_by_role("alert")).to_contain_text("已注册；请先删除")

        # Another user lets the owner's speaker answer them: their own consent, on their page.
        async with phone_page(browser, "en-US") as page:
            await _sign_in(page, base, friend_token)
            await page.goto(f"{base}/app/settings")
            await expect(page.locator("#devices")).to_contain_text("No 小智 devices yet.")
            await page.get_by_label("Their device id").fill("ff:ff:ff:ff:ff:ff")
            await page.get_by_role("button", name="Allow", exact=True).click()
            # Refused, the form comes back with the refusal and the id as typed.
            await expect(page.get_by_role("alert")).to_contain_text(
                "There is no device ff:ff:ff:ff:ff:ff."
            )
            await expect(page.get_by_label("Their device id")).to_have_value("ff:ff:ff:ff:ff:ff")
            await page.get_by_label("Their device id").fill(mac)
            await page.get_by_role("button", name="Allow", exact=True).click()
            await expect(page.get_by_role("status")).to_contain_text(
                f"{mac.lower()} may now answer you by your voiceprint."
            )

        async with phone_page(browser, "zh-CN") as page:
            await _sign_in(page, base, owner_token)
            await page.goto(f"{base}/app/settings")
            card = page.locator(f"#devices [data-device='{mac.lower()}']")
            await expect(card).to_contain_text(f"也按声纹回答：{friend}")

            async def accept(dialog: Dialog) -> None:
                await dialog.accept()

            page.on("dialog", accept)
            await card.get_by_role("button", name="删除").click()
            await expect(page.get_by_role("status")).to_contain_text("它的令牌已失效")
            await expect(page.locator("#devices")).to_contain_text("还没有小智设备。")
        facts = await _context(base, mac, device_token)
        assert facts["code"] == 401, facts

        async with phone_page(browser, "en-US") as page:
            await _sign_in(page, base, friend_token)
            await page.goto(f"{base}/app/settings")
            await page.get_by_label("Their device id").fill(mac)
            await page.get_by_role("button", name="Stop allowing").click()
            await expect(page.get_by_role("alert")).to_contain_text(f"There is no device {mac}.")


async def test_endpoints_are_added_by_url_shown_masked_with_their_live_state_and_removed(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    settings = deps.settings.model_copy(
        update={
            "temporal_address": dev_env.client.service_client.config.target_host,
            "fetch_allow_cidrs": ["127.0.0.1/32"],  # the broker stand-in listens on loopback
        }
    )
    name = unique("ep")
    token = await _user(deps, name, Language.ZH)
    good, wrong = unique("jwt"), unique("expired")
    cipher = EndpointCipher(settings.secret_key.get_secret_value())

    async def states() -> dict[str, tuple[str, str | None]]:
        async with deps.db.session() as session:
            listed = await Endpoints(session, cipher, DestinationGuard([])).list(None)
        return {row.url: (row.state, row.last_error) for row in listed if row.user == name}

    async with (
        running_broker({good}) as broker,
        serve(create_app(settings)) as base,
        phone_page(browser, "zh-CN") as page,
    ):
        await _sign_in(page, base, token)
        await page.goto(f"{base}/app/settings")
        listed = page.locator("#endpoint-list")
        await expect(listed).to_contain_text("还没有接入点。")

        await page.get_by_label("接入点 URL").fill("https://api.example/mcp/?token=x")
        await page.get_by_role("button", name="添加接入点").click()
        await expect(page.get_by_role("alert")).to_contain_text("接入点 URL: ")
        await expect(page.get_by_role("alert")).to_contain_text("wss://")
        await expect(listed).to_contain_text("还没有接入点。")

        await page.get_by_label("接入点 URL").fill(broker.url(good))
        await page.get_by_role("button", name="添加接入点").click()
        masked = f"ws://127.0.0.1:{broker.port}/mcp/?token=***"
        await expect(page.get_by_role("status")).to_contain_text(f"已添加 {masked}")
        await broker.held(good)
        await page.get_by_label("接入点 URL").fill(broker.url(wrong))
        await page.get_by_role("button", name="添加接入点").click()
        await eventually(
            lambda: _refused(states), "the wrong token is retrying with the broker's reason"
        )

        await page.goto(f"{base}/app/settings")
        cards = listed.locator("li.card")
        await expect(cards).to_have_count(2)
        await expect(cards.nth(0)).to_contain_text("已连接")
        await expect(cards.nth(1)).to_contain_text("重试中")
        await expect(cards.nth(1)).to_contain_text("最近的错误：接入点服务拒绝了 token（HTTP 401")
        content = await page.content()
        assert good not in content and wrong not in content  # never shown again
        await fits_phone(page, "language-zh-endpoints")

        connection = broker.connections[good][0]

        async def accept(dialog: Dialog) -> None:
            await dialog.accept()

        page.on("dialog", accept)
        await cards.nth(0).get_by_role("button", name="删除").click()
        await expect(page.get_by_role("status")).to_contain_text(f"已删除 {masked}")
        await expect(cards).to_have_count(1)
        await asyncio.wait_for(connection.closed.wait(), HANG)


async def _refused(states: Callable[[], Awaitable[dict[str, tuple[str, str | None]]]]) -> bool:
    return any(
        state == "retrying" and "401" in (error or "") for state, error in (await states()).values()
    )
