"""The chat box in headless chromium when the page's sign-in no longer holds."""

from __future__ import annotations

import asyncio
import json

from playwright.async_api import Browser, expect
from starlette.types import ASGIApp, Receive, Scope, Send

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import unique
from tests.support.pages import signed_in
from tests.support.servers import free_port, serve
from tests.web.test_pages_browser import phone_page


async def test_the_chat_box_says_the_sign_in_expired_and_how_to_sign_in_again(
    browser: Browser, deps: WorkerDeps
) -> None:
    name = unique("chat")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    # The chat is refused before it needs Temporal: a closed port.
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app")
        # The token is rotated elsewhere (the CLI, another browser): this page's cookie is stale.
        async with deps.db.session() as session:
            user = await UserRepository(session).get(name)
            assert user is not None
            fresh = await UserRepository(session).rotate_token(user)
            await session.commit()
        await page.get_by_label("消息").fill("我有哪些任务？")
        await page.get_by_role("button", name="发送").click()
        said = page.locator("#chat-log li.error")
        await expect(said).to_have_text("登录已失效：请用你的 API 令牌重新登录。")
        await said.get_by_role("link").click()
        await expect(page).to_have_url(f"{base}/signin")
        await page.locator("#token").fill(fresh)  # the sign-in form speaks the browser's language
        await page.locator("#token").press("Enter")
        await expect(page).to_have_url(f"{base}/app")


async def test_the_chat_box_takes_no_more_than_the_server_accepts_and_keeps_a_refused_message(
    browser: Browser, deps: WorkerDeps
) -> None:
    name = unique("chat")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app")
        box = page.get_by_label("消息")
        await box.fill("长" * 4001)  # a paste longer than the server's 4,000 characters
        assert await box.input_value() == "长" * 4000
        # Refused all the same (here: a value set by a script, past the box's limit): the
        # error is said in the page's language, and the text is back in the box to send again.
        await box.evaluate("(input, text) => { input.value = text; }", "短" * 4001)
        await page.get_by_role("button", name="发送").click()
        await expect(page.locator("#chat-log li.error")).to_have_text("助手没有回答（错误 422）。")
        assert await box.input_value() == "短" * 4001


async def test_the_chat_box_says_the_server_is_unreachable_and_keeps_the_message(
    browser: Browser, deps: WorkerDeps
) -> None:
    name = unique("chat")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with phone_page(browser) as page:
        async with serve(create_app(settings)) as base:
            await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
            await page.goto(f"{base}/app")
        # The server is gone (stopped, the network down): the send itself fails.
        box = page.get_by_label("消息")
        await box.fill("我有哪些任务？")
        await page.get_by_role("button", name="发送").click()
        await expect(page.locator("#chat-log li.error")).to_have_text(
            "连不上服务器：消息没有发出。请检查网络后再发送。"
        )
        assert await box.input_value() == "我有哪些任务？"


def _cut_after_the_first_line(app: ASGIApp, cut: asyncio.Event) -> ASGIApp:
    """The real app, except that a chat's answer stops after its first line with the
    connection dropped (the server killed, a proxy's timeout, the network gone) once ``cut``
    is set."""

    async def cutting(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/app/chat":
            return await app(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        line = b'{"type": "tool_call", "function": "list_tasks", "arguments": {}}\n'
        await send({"type": "http.response.body", "body": line, "more_body": True})
        await cut.wait()
        raise ConnectionResetError("the answer was cut off")

    return cutting


async def test_the_chat_box_says_an_answer_was_cut_off(browser: Browser, deps: WorkerDeps) -> None:
    name = unique("chat")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    cut = asyncio.Event()
    app = _cut_after_the_first_line(create_app(settings), cut)
    async with serve(app) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app")
        await page.get_by_label("消息").fill("我有哪些任务？")
        await page.get_by_role("button", name="发送").click()
        await expect(page.locator("#chat-log li.tool")).to_have_text("→ list_tasks {}")
        cut.set()  # the first line is shown: now the connection drops
        await expect(page.locator("#chat-log li.error")).to_have_text(
            "回答中途断开了：上面是已收到的部分。请再问一次。"
        )


def _answering(app: ASGIApp, lines: bytes) -> ASGIApp:
    """The real app, except that a chat is answered with ``lines`` (JSON lines, as /app/chat)."""

    async def answering(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/app/chat":
            return await app(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": lines})

    return answering


async def test_the_chat_box_says_how_a_tool_call_went_in_the_pages_language(
    browser: Browser, deps: WorkerDeps
) -> None:
    """A tool's result was "← list_tasks ok" or "failed: ..." on a Chinese page."""
    lines = (
        b'{"type": "tool_result", "function": "list_tasks", "ok": true, "text": "[]"}\n'
        b'{"type": "tool_result", "function": "delete_task", "ok": false, "text": "declined"}\n'
    )
    shown = ["← list_tasks 成功", "← delete_task 失败：declined"]
    await _chat_shows(browser, deps, lines, "我有哪些任务？", shown)


async def test_the_chat_box_says_a_declined_call_was_not_run_in_the_pages_language(
    browser: Browser, deps: WorkerDeps
) -> None:
    """A call the person declined read "← delete_task 失败：declined" on a Chinese page."""
    lines = (
        b'{"type": "tool_result", "function": "delete_task", "ok": false, "text": "declined", '
        b'"declined": true}\n'
    )
    await _chat_shows(browser, deps, lines, "删掉 news", ["← delete_task 已拒绝：没有运行"])


async def _chat_shows(
    browser: Browser, deps: WorkerDeps, lines: bytes, message: str, shown: list[str]
) -> None:
    """A Chinese user's chat, answered with ``lines``, shows its tool results as ``shown``."""
    name = unique("chat")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(_answering(create_app(settings), lines)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app")
        await page.get_by_label("消息").fill(message)
        await page.get_by_role("button", name="发送").click()
        await expect(page.locator("#chat-log li.tool")).to_have_text(shown)


async def test_the_chat_box_says_there_is_no_model_in_the_pages_language(deps: WorkerDeps) -> None:
    # "No language model is configured … or call the MCP tools directly" was said on a Chinese
    # page, in English, with an operator's instructions; the API's /chat keeps the English.
    name = unique("chat")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    assert settings.openai_api_key is None  # no model: the chat says so
    async with signed_in(settings, token, "/app") as http:
        page = await http.post("/app/chat", json={"message": "我有哪些任务？"})
        api = await http.post(
            "/chat", json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
        )
    said = [json.loads(line) for line in page.text.splitlines()]
    offline = (
        "没有配置语言模型，所以无法聊天：请运维配置一个（OPENAI_API_KEY，或本地模型 make llm）。"
    )
    assert [(s["type"], s.get("text")) for s in said] == [("message", offline), ("done", None)]
    english = json.loads(api.text.splitlines()[0])["text"]
    assert english.startswith("No language model is configured"), english
