"""The settings page in headless chromium: what the user empties is cleared."""

from __future__ import annotations

from playwright.async_api import Browser, Dialog, expect

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository, user_public
from ambient.xiaozhi import DeviceService
from api.app import create_app
from tests.conftest import unique
from tests.support.servers import serve
from tests.web.test_pages_browser import phone_page


async def test_emptying_email_phone_and_voiceprint_on_the_settings_page_clears_them(
    browser: Browser, deps: WorkerDeps
) -> None:
    name = unique("clear")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(
                name=name, email="old@example.com", phone="+86 138 0000 0000", voiceprint_id="vp-1"
            )
        )
        await session.commit()
    async with serve(create_app(deps.settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/settings")
        for label in ("Email", "Phone", "Voiceprint id"):
            await page.get_by_label(label, exact=True).fill("")
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.get_by_role("status")).to_contain_text("Settings saved")
        for label in ("Email", "Phone", "Voiceprint id"):
            await expect(page.get_by_label(label, exact=True)).to_have_value("")
    async with deps.db.session() as session:
        stored = user_public(await UserRepository(session).get(name))
    assert (stored.email, stored.phone, stored.voiceprint_id) == (None, None, None)
    # What was not emptied stays as it was.
    assert stored.assistant_name == "小智" and stored.timezone == "Asia/Shanghai"


async def test_a_link_from_elsewhere_puts_no_notice_on_a_signed_in_page(
    browser: Browser, deps: WorkerDeps
) -> None:
    """Pages show the notice their own form left in ?msg= (signed by the server in ?sig=); a
    link in a mail or on another site put any words there ("send your token to …") on the
    user's own page."""
    name = unique("notice")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    fake = "Your session expired: mail your API token to help@evil.example"
    async with serve(create_app(deps.settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        for path in ("/app?", "/app/settings?", "/app/briefings?", "/app?sig=0123abcd&"):
            await page.goto(f"{base}{path}msg={fake}")  # opened from a mail, or a guessed sig
            await expect(page.locator("header")).to_contain_text(name)
            assert await page.get_by_role("status").count() == 0, path
            assert "evil.example" not in await page.content(), path
        # The page's own form still leaves its notice after the redirect.
        await page.goto(f"{base}/app/settings")
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.get_by_role("status")).to_contain_text("Settings saved")


async def test_an_owners_withdrawn_member_has_one_let_back_button_however_many_devices(
    browser: Browser, deps: WorkerDeps
) -> None:
    """Each device card of the owner's showed the owner's withdrawals and a "Let … back"
    button: two speakers, two buttons doing the same. One now, and it lets them back."""
    owner, mei = unique("wdo"), unique("wdm")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name=owner, language=Language.EN)
        )
        await UserRepository(session).create(UserCreate(name=mei))
        await session.commit()
    devices = DeviceService(deps.db)
    macs = ["aa:bb:cc:00:01:0a", "aa:bb:cc:00:01:0b"]
    for mac in macs:
        await devices.add(owner, owner, mac)
    await devices.allow(mei, macs[0])
    await devices.withdraw(owner, macs[0], mei)
    async with serve(create_app(deps.settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/settings")
        button = page.get_by_role("button", name=f"Let {mei} back")
        await expect(button).to_have_count(1)
        await expect(page.locator("#devices .card")).to_have_count(2)
        await expect(page.locator("#devices")).not_to_contain_text("Withdrawn")
        await button.click()
        await expect(page.get_by_role("status")).to_contain_text(f"{mei} may allow")
        await expect(button).to_have_count(0)
    assert [d.withdrawn for d in await devices.list(owner)] == [[], []]


async def test_an_owner_withdraws_a_member_then_lets_them_back_but_not_naming_no_owner(
    browser: Browser, deps: WorkerDeps
) -> None:
    """The card's "Stop answering" and the withdrawal's "Let … back" go through the service;
    a let-back whose owner field was emptied (the form read it as the caller, and let them
    back) is refused and lets no one back. Withdrawn, the member's own Allow is refused as
    withdrawn, by role, until let back."""
    owner, mei = unique("wbo"), unique("wbm")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name=owner, language=Language.EN)
        )
        _, mei_token = await UserRepository(session).create(
            UserCreate(name=mei, language=Language.EN)
        )
        await session.commit()
    devices = DeviceService(deps.db)
    mac = "aa:bb:cc:00:01:2c"
    await devices.add(owner, owner, mac)
    await devices.allow(mei, mac)
    async with serve(create_app(deps.settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/settings")

        async def accept(dialog: Dialog) -> None:
            await dialog.accept()

        page.on("dialog", accept)
        await page.get_by_role("button", name=f"Stop answering {mei}").click()
        await expect(page.get_by_role("status")).to_contain_text(f"{mac} no longer answers {mei}.")
        async with phone_page(browser) as theirs:
            await theirs.context.add_cookies(
                [{"name": "ambient_token", "value": mei_token, "url": base}]
            )
            await theirs.goto(f"{base}/app/settings")
            await theirs.get_by_label("Their device id").fill(mac)
            await theirs.get_by_role("button", name="Allow", exact=True).click()
            await expect(theirs.get_by_role("alert")).to_contain_text(
                f"Its owner (or an admin) withdrew your consent to {mac}: you may allow it again"
                " once its owner or an admin lets you back (ask its owner)"
            )
        back = page.get_by_role("button", name=f"Let {mei} back")
        form = page.locator("form[action='/app/xiaozhi/withdrawn/let-back']")
        await form.locator("input[name=user]").evaluate("field => { field.value = '' }")
        await back.click()
        await expect(page.get_by_role("status")).to_contain_text(
            "No user '': name an owner whose withdrawals are listed; nothing changed"
        )
        assert [d.withdrawn for d in await devices.list(owner)] == [[mei]]
        await back.click()
        await expect(page.get_by_role("status")).to_contain_text(
            f"{mei} may allow your devices again."
        )
        await expect(back).to_have_count(0)
    assert [d.withdrawn for d in await devices.list(owner)] == [[]]


async def test_a_blank_endpoint_url_is_refused_in_chinese_words(
    browser: Browser, deps: WorkerDeps
) -> None:
    """Spaces pass the browser's check of the required 接入点 URL box: the refusal said "（这里是
    no scheme://）"; an empty one sent by hand, pydantic's "String should have at least 1
    character"."""
    async with deps.db.session() as session:
        _, zh = await UserRepository(session).create(
            UserCreate(name=unique("kongbai"), language=Language.ZH)
        )
        _, en = await UserRepository(session).create(
            UserCreate(name=unique("blank"), language=Language.EN)
        )
        await session.commit()
    said = {
        zh: ("添加接入点", "接入点 URL: 必须以 wss:// 或 ws:// 开头（这里没有写协议）", "不能为空"),
        en: (
            "Add 接入点",
            "接入点 URL: must start with wss:// or ws:// (got no scheme://)",
            "String should have at least 1 character",
        ),
    }
    async with serve(create_app(deps.settings)) as base:
        for token, (button, spaces, empty) in said.items():
            async with phone_page(browser) as page:
                await page.context.add_cookies(
                    [{"name": "ambient_token", "value": token, "url": base}]
                )
                await page.goto(f"{base}/app/settings")
                await page.locator("#endpoint-url").fill("   ")
                await page.get_by_role("button", name=button).click()
                await expect(page.get_by_role("alert")).to_have_text(spaces)
                # Sent empty (the browser's check of the box taken off).
                await page.locator("#endpoint-url").evaluate("input => { input.required = false }")
                await page.locator("#endpoint-url").fill("")
                await page.get_by_role("button", name=button).click()
                await expect(page.get_by_role("alert")).to_have_text(f"接入点 URL: {empty}")
