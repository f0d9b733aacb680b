"""The settings page's forms: a refusal shows the form again as the user filled it in."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from ambient.domain.users import Role, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import XiaozhiDevice
from ambient.storage.users import UserRepository, user_public
from ambient.xiaozhi import DeviceService
from ambient.xiaozhi_errors import DeviceError
from api.routers import pages as pages_router
from api.routers.pages import MESSAGE_LINK, fitted
from tests.support.pages import signed_in
from tests.support.servers import free_port


@pytest_asyncio.fixture
async def page(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in browser's requests to the pages (Temporal is not needed: a closed port)."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(
                name="lin",
                email="lin@example.com",
                timezone="UTC",
                wake_words=["hey, ambient", "你好，小智"],
            )
        )
        await session.commit()
    async with signed_in(settings, token, "/app/settings") as http:
        yield http


def values(page: str, form: str) -> dict[str, list[str]]:
    """The values a form shows: each input's value and each select's selected option."""
    start = page.index(f'id="{form}"')
    body = page[start : page.index("</form>", start)]
    shown: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input[^>]* name="([a-z_]+)"[^>]* value="([^"]*)"', body):
        shown.setdefault(name, []).append(html.unescape(value))
    for name, options in re.findall(r'<select[^>]* name="([a-z_]+)">(.*?)</select>', body, re.S):
        chosen = re.findall(r'<option value="([^"]*)"\s*selected', options)
        shown.setdefault(name, []).extend(chosen)
    areas = re.findall(r'<textarea[^>]* name="([a-z_]+)"[^>]*>(.*?)</textarea>', body, re.S)
    for name, text in areas:
        shown.setdefault(name, []).append(html.unescape(text))
    return shown


async def test_saving_the_settings_form_unchanged_changes_nothing(
    page: httpx.AsyncClient, db: Database
) -> None:
    async with db.session() as session:
        before = user_public(await UserRepository(session).get("lin"))
    shown = values((await page.get("/app/settings")).text, "settings")
    saved = await page.post("/app/settings", data=shown)
    assert saved.status_code == 303, saved.text
    async with db.session() as session:
        after = user_public(await UserRepository(session).get("lin"))
    assert after == before and after.wake_words == ["hey, ambient", "你好，小智"]


async def test_emptying_the_wake_words_on_the_form_keeps_none_as_the_api_does(
    page: httpx.AsyncClient, db: Database
) -> None:
    shown = values((await page.get("/app/settings")).text, "settings")
    saved = await page.post("/app/settings", data={**shown, "wake_words": " \n "})
    assert saved.status_code == 303, saved.text
    async with db.session() as session:
        user = await UserRepository(session).get("lin")
    assert user is not None and user.wake_words == []
    shown = values((await page.get("/app/settings")).text, "settings")
    assert await page.post("/app/settings", data={**shown, "wake_words": "你好，小智"})
    async with db.session() as session:
        user = await UserRepository(session).get("lin")
    assert user is not None and user.wake_words == ["你好，小智"]


async def test_a_refused_settings_form_shows_what_the_user_typed(
    page: httpx.AsyncClient,
) -> None:
    typed = {"email": "lin.new@example.com", "timezone": "Asia/Shanghia", "phone": "+86 138"}
    refused = await page.post("/app/settings", data=typed)
    assert refused.status_code == 422 and "Asia/Shanghia" in refused.text
    shown = values(refused.text, "settings")
    assert shown["email"] == ["lin.new@example.com"] and shown["timezone"] == ["Asia/Shanghia"]
    assert shown["phone"] == ["+86 138"]
    # Nothing was saved.
    assert values((await page.get("/app/settings")).text, "settings")["email"] == [
        "lin@example.com"
    ]


async def test_a_refused_push_form_shows_the_channels_the_user_typed(
    page: httpx.AsyncClient,
) -> None:
    typed = {
        "type": ["email", "webhook", ""],
        "target": ["lin2@example.com", "http://10.0.0.5/hook", ""],
        "kinds": ["0:watch", "1:briefing", "1:system"],
    }
    refused = await page.post("/app/push", data=typed)
    assert refused.status_code == 422, refused.text
    shown = values(refused.text, "push")
    assert shown["type"] == ["email", "webhook"]
    assert shown["target"] == ["lin2@example.com", "http://10.0.0.5/hook", ""]
    start = refused.text.index('id="push"')
    form = refused.text[start : refused.text.index("</form>", start)]
    checked = re.findall(r'name="kinds" value="([^"]+)"\s*checked', form)
    assert checked[:3] == ["0:watch", "1:briefing", "1:system"]


async def test_a_refused_device_keeps_the_id_the_user_typed(page: httpx.AsyncClient) -> None:
    refused = await page.post("/app/xiaozhi/devices", data={"device_id": "aa:bb:cc:dd:ee:fg!"})
    assert refused.status_code == 422
    assert values(refused.text, "add-device")["device_id"] == ["aa:bb:cc:dd:ee:fg!"]


async def test_a_refused_monitor_form_shows_what_the_user_typed(page: httpx.AsyncClient) -> None:
    typed = {
        "urls": "https://example.com/news\nftp://example.com/feed",
        "keywords": "AI, outage",
        "interval": "30",
        "name": "news",
    }
    refused = await page.post("/app/tasks", data=typed, headers={"referer": str(page.base_url)})
    assert refused.status_code == 422, (refused.status_code, refused.headers)
    assert "Not created: Pages, line 2" in html.unescape(refused.text)
    shown = values(refused.text, "new-monitor")
    assert shown["urls"] == ["https://example.com/news\nftp://example.com/feed"]
    assert shown["keywords"] == ["AI, outage"] and shown["name"] == ["news"]
    assert shown["interval"] == ["30"]


async def test_a_refused_discussion_post_shows_what_the_user_wrote(
    page: httpx.AsyncClient,
) -> None:
    posted = await page.post(
        "/app/discussions/post",
        data={"topic": "磁盘告警", "content": "先看一下", "message_id": "m1"},
    )
    assert posted.status_code == 303, posted.text
    discussion_id = posted.headers["location"].split("id=")[1].split("&")[0]
    reply = {
        "discussion_id": discussion_id,
        "content": "<b>日志</b>\n" + "磁盘已满。" * 50,
        "tags": "需要 帮助",
        "message_id": "m2",
    }
    refused = await page.post("/app/discussions/post", data=reply)
    assert refused.status_code == 422 and "tag" in refused.text
    assert values(refused.text, "reply")["content"] == [reply["content"]]
    assert values(refused.text, "reply")["tags"] == ["需要 帮助"]
    too_long = {"topic": "另一件事", "content": "x" * 20_001, "message_id": "m3"}
    refused = await page.post("/app/discussions/post", data=too_long)
    assert refused.status_code == 422
    shown = values(refused.text, "new-discussion")
    assert shown["topic"] == ["另一件事"] and shown["content"] == ["x" * 20_001]


async def test_a_device_reference_naming_two_devices_is_said_so_on_the_page(
    page: httpx.AsyncClient, db: Database
) -> None:
    """'2' is one device's number and another's id: the page said 'No device 2 among yours'."""
    for device in ("2", "aa:bb:cc:00:00:0b"):  # numbers 1 and 2
        added = await page.post("/app/xiaozhi/devices", data={"device_id": device})
        assert added.status_code in (201, 303), added.text
    for path in ("/app/xiaozhi/devices/remove", "/app/xiaozhi/devices/allow"):
        refused = await page.post(path, data={"device": "2"}, follow_redirects=True)
        said = html.unescape(refused.text)
        # The whole advice, not only its first clause (the pages cut at the first "; ").
        assert (
            "'2' names 2 devices: device 1 (2), device 2 (aa:bb:cc:00:00:0b); nothing changed; "
            "name the one you mean by a reference only it has"
        ) in said, path
        assert "No device" not in said and "There is no device" not in said
    async with db.session() as session:
        kept = await session.scalars(select(XiaozhiDevice.device_id).order_by(XiaozhiDevice.id))
        assert list(kept) == ["2", "aa:bb:cc:00:00:0b"]


async def test_removing_a_device_from_a_stale_page_names_the_device_it_showed(
    page: httpx.AsyncClient,
) -> None:
    """Removed in another tab, then Remove again: the page said 'No device 1 among yours', a
    number it never showed, for the device it listed as aa:bb:cc:00:00:0c."""
    added = await page.post("/app/xiaozhi/devices", data={"device_id": "aa:bb:cc:00:00:0c"})
    assert added.status_code == 201, added.text
    stale = await page.get("/app/settings")
    form = re.search(r'action="/app/xiaozhi/devices/remove".*?</form>', stale.text, re.S)
    assert form is not None
    sent = {"device": html.unescape(re.findall(r'name="device" value="([^"]*)"', form[0])[0])}
    removed = await page.post("/app/xiaozhi/devices/remove", data=sent, follow_redirects=True)
    assert "Removed aa:bb:cc:00:00:0c" in html.unescape(removed.text)
    again = await page.post("/app/xiaozhi/devices/remove", data=sent, follow_redirects=True)
    assert "No device aa:bb:cc:00:00:0c among yours." in html.unescape(again.text)


async def test_a_long_value_posted_by_hand_comes_back_in_a_redirect_a_proxy_passes(
    page: httpx.AsyncClient,
) -> None:
    """A device or remediation id of 20,000 characters (a hand-edited form) came back whole in
    the redirect's Location (~20 KB): past a reverse proxy's response header buffer (nginx
    4-8 KB), the person got a 502 for a refusal."""
    long = "设备" * 10_000
    posts = [
        ("/app/xiaozhi/devices/remove", {"device": long}),
        ("/app/remediation/action", {"remediation_id": long, "action": "abort"}),
    ]
    for path, data in posts:
        answer = await page.post(path, data=data)
        assert answer.status_code == 303, (path, answer.status_code)
        assert len(answer.headers["location"]) < 4_000, (path, len(answer.headers["location"]))
        shown = await page.get(answer.headers["location"], follow_redirects=True)
        assert shown.status_code == 200, (path, shown.status_code)


async def test_a_long_refusal_keeps_its_end_and_says_where_it_was_cut(
    page: httpx.AsyncClient,
) -> None:
    """A refusal was cut at 400 characters with its end, "among yours.", lost: the notice is
    cut in its middle now, "…" where, within what a proxy takes in the redirect's header."""
    device = "设备" * 300
    answer = await page.post("/app/xiaozhi/devices/remove", data={"device": device})
    assert answer.status_code == 303 and len(answer.headers["location"]) < 4_000
    shown = await page.get(answer.headers["location"])
    notice = re.search(r'<p class="notice" role="status">(.*?)</p>', shown.text, re.S)
    assert notice is not None
    said = html.unescape(notice[1])
    assert said.startswith("No device 设备设备") and said.endswith("设备 among yours.")
    assert " … " in said and len(said) < len(f"No device {device} among yours.")


def test_a_long_notice_is_cut_between_its_sentences_and_keeps_its_last() -> None:
    """Many pages' outcomes (a check now of 50 pages), then what to do: whole clauses of the
    beginning, " … ", and the last clause whole."""
    pages = [f"https://example.com/news/{n}：失败：服务器答复 HTTP 404" for n in range(50)]
    message = "；".join([*pages, "检查这些网址后再试一次。"])
    said = fitted(message)
    head, cut, tail = said.partition(" … ")
    assert cut and tail == "检查这些网址后再试一次。"
    assert head.endswith("HTTP 404；") and message.startswith(head)
    assert len(quote(said)) <= MESSAGE_LINK < len(quote(message))
    assert fitted(pages[0]) == pages[0]


async def test_a_refused_endpoint_keeps_the_url_and_verbatim_the_user_typed(
    page: httpx.AsyncClient,
) -> None:
    """A refused 接入点 came back with an empty URL field and verbatim unticked: the person had
    to paste the URL (a long token) again to fix one letter of it."""
    typed = "http://api.example.com/mcp/?token=abc"  # http://, not ws:// or wss://
    refused = await page.post("/app/xiaozhi/endpoints", data={"url": typed, "verbatim": "on"})
    assert refused.status_code == 422
    assert "must start with wss:// or ws://" in html.unescape(refused.text)
    assert values(refused.text, "add-endpoint")["url"] == [typed]
    assert re.search(r'name="verbatim"[^>]* checked', refused.text)
    fresh = await page.get("/app/settings")
    assert values(fresh.text, "add-endpoint")["url"] == [""]
    assert not re.search(r'name="verbatim"[^>]* checked', fresh.text)


async def test_a_refused_allow_keeps_the_device_id_the_user_typed(page: httpx.AsyncClient) -> None:
    """Allowing a device nobody has answered with a redirect to an empty form."""
    refused = await page.post("/app/xiaozhi/devices/allow", data={"device": "aa:bb:cc:dd:ee:99"})
    assert refused.status_code == 422
    assert "There is no device aa:bb:cc:dd:ee:99." in html.unescape(refused.text)
    assert values(refused.text, "allow-device")["device"] == ["aa:bb:cc:dd:ee:99"]


def test_a_notice_of_megabytes_is_measured_at_its_ends_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A value of megabytes a hand-edited form posted comes back in its refusal: the notice is
    cut as a short one is, without measuring each character of its middle (which held the
    server's loop for seconds)."""
    measured: list[str] = []
    size = pages_router._link_size
    monkeypatch.setattr(pages_router, "_link_size", lambda c: measured.append(c) or size(c))
    message = f"No device {'设备' * 1_000_000} among yours."
    said = fitted(message)
    assert said.startswith("No device 设备") and said.endswith("设备 among yours.")
    assert " … " in said and len(quote(said)) <= MESSAGE_LINK
    assert len(measured) <= 3 * 2 * MESSAGE_LINK  # the two ends kept, measured a few times


async def test_the_owner_stops_their_device_answering_someone_who_allowed_it(
    page: httpx.AsyncClient, db: Database
) -> None:
    """Another's consent on the owner's device was theirs alone to end: the page showed who
    allowed it and gave its owner no way to stop it answering them."""
    added = await page.post("/app/xiaozhi/devices", data={"device_id": "aa:bb:cc:00:00:0d"})
    assert added.status_code == 201, added.text
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name="mei"))
        await session.commit()
    await DeviceService(db).allow("mei", "aa:bb:cc:00:00:0d")
    shown = await page.get("/app/settings")
    # The owner has no voiceprint id: a voice the device does not match may be a stranger's.
    assert "Without your voiceprint id, a voice it does not match" in html.unescape(shown.text)
    # Next to the field, what setting it costs: a voice the speaker does not name may not act.
    warning = re.search(r'<p class="muted" id="voiceprint-warning">([^<]*)</p>', shown.text)
    assert warning is not None and "may not act for you" in html.unescape(warning[1]), shown.text
    form = re.search(r'action="/app/xiaozhi/devices/withdraw".*?</form>', shown.text, re.S)
    assert form is not None, shown.text
    sent = dict(re.findall(r'name="(device|speaker)" value="([^"]*)"', form[0]))
    assert sent == {"device": "aa:bb:cc:00:00:0d", "speaker": "mei"}
    done = await page.post("/app/xiaozhi/devices/withdraw", data=sent, follow_redirects=True)
    assert "aa:bb:cc:00:00:0d no longer answers mei." in html.unescape(done.text)
    assert "Answers only its owner." in done.text and "unmatched" not in done.text
    again = await page.post("/app/xiaozhi/devices/withdraw", data=sent, follow_redirects=True)
    assert "'mei' has not allowed aa:bb:cc:00:00:0d" in html.unescape(again.text)
    assert [v.speakers for v in await DeviceService(db).list("lin")] == [[]]
    # Withdrawn until let back: the page says so and lets them back; then mei may allow it.
    assert (
        "Withdrawn from your devices, may not allow any of them again until let back: mei"
    ) in again.text
    form = re.search(r'action="/app/xiaozhi/withdrawn/let-back".*?</form>', again.text, re.S)
    assert form is not None and "Let mei back" in form[0], again.text
    owners = dict(re.findall(r'name="(user|speaker)" value="([^"]*)"', form[0]))
    assert owners == {"user": "lin", "speaker": "mei"}
    back = await page.post("/app/xiaozhi/withdrawn/let-back", data=owners, follow_redirects=True)
    assert "mei may allow your devices again." in html.unescape(back.text)
    assert "let-back" not in back.text
    await DeviceService(db).allow("mei", "aa:bb:cc:00:00:0d")
    assert [v.speakers for v in await DeviceService(db).list("lin")] == [["mei"]]
    # A page from before the owner's form (its button named the device) still lets them back.
    await page.post("/app/xiaozhi/devices/withdraw", data=sent)
    back = await page.post("/app/xiaozhi/devices/let-back", data=sent, follow_redirects=True)
    assert "mei may allow aa:bb:cc:00:00:0d again." in html.unescape(back.text)
    assert "let-back" not in back.text


async def test_an_owners_withdrawals_are_shown_once_not_on_every_device_card(
    page: httpx.AsyncClient, db: Database
) -> None:
    """Withdrawals are the owner's, not a device's: each of the owner's cards said "Withdrawn
    …: mei" with its own "Let mei back" button, the same names and buttons once per device."""
    macs = ["aa:bb:cc:00:00:1a", "aa:bb:cc:00:00:1b", "aa:bb:cc:00:00:1c"]
    for mac in macs:
        added = await page.post("/app/xiaozhi/devices", data={"device_id": mac})
        assert added.status_code == 201, added.text
    async with db.session() as session:
        for name in ("mei", "kai"):
            await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    devices = DeviceService(db)
    for name in ("mei", "kai"):
        await devices.allow(name, macs[0])
        await devices.withdraw("lin", macs[0], name)
    shown = html.unescape((await page.get("/app/settings")).text)
    cards = shown[shown.index('id="devices"') : shown.index("</ul>", shown.index('id="devices"'))]
    assert "Withdrawn" not in cards and "let-back" not in cards, cards
    said = "Withdrawn from your devices, may not allow any of them again until let back: kai, mei"
    assert shown.count(said) == 1, shown
    buttons = re.findall(r"<button>Let (\w+) back</button>", shown)
    assert buttons == ["kai", "mei"], shown
    form = re.search(r'action="/app/xiaozhi/[a-z/-]*let-back".*?</form>', shown, re.S)
    assert form is not None
    back = await page.post(
        form[0].split('"')[1],
        data=dict(re.findall(r'name="(\w+)" value="([^"]*)"', form[0])),
        follow_redirects=True,
    )
    assert "kai may allow" in html.unescape(back.text), back.text
    assert [v.withdrawn for v in await devices.list("lin")] == [["mei"]] * 3


@pytest.mark.parametrize(
    ("language", "exempt"),
    [
        ("en", "A call from a xiaozhi.me 接入点 names a device, never a voice: it acts for you"),
        ("zh", "从 xiaozhi.me 接入点来的调用只指明音箱、从不带声音，照样替你操作"),
    ],
    ids=["en", "zh"],
)
async def test_the_voiceprint_warning_says_xiaozhi_me_calls_still_act_for_the_owner(
    page: httpx.AsyncClient, language: str, exempt: str
) -> None:
    """The warning next to the voiceprint id said an unnamed voice may not act once it is set,
    and not that a xiaozhi.me 接入点's calls are exempt (they name a device, and are the
    owner's): an owner with only a xiaozhi.me speaker read that setting it stops them."""
    # lin chose no language: the pages speak the browser's.
    shown = await page.get("/app/settings", headers={"accept-language": language})
    warning = re.search(r'<p class="muted" id="voiceprint-warning">([^<]*)</p>', shown.text)
    assert warning is not None, shown.text
    assert exempt in html.unescape(warning[1]), warning[1]


async def test_an_admins_let_back_buttons_name_each_owner(settings: Settings, db: Database) -> None:
    """An admin's page shows each owner's withdrawals once per owner; two owners who withdrew
    the same member gave two buttons both named "Let p-lin back", told apart by nothing a
    screen reader says. Another owner's button names the owner."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    devices = DeviceService(db)
    async with db.session() as session:
        users = UserRepository(session)
        _, token = await users.create(UserCreate(name="p-admin", role=Role.ADMIN))
        for name in ("p-o1", "p-o2", "p-lin"):
            await users.create(UserCreate(name=name))
        await session.commit()
    for n, owner in enumerate(("p-o1", "p-o2", "p-admin")):
        mac = f"aa:bb:cc:00:01:0{n}"
        await devices.add(None, owner, mac)
        await devices.allow("p-lin", mac)
        await devices.withdraw(None, mac, "p-lin")
    async with signed_in(settings, token, "/app/settings") as page:
        shown = html.unescape((await page.get("/app/settings")).text)
        zh = (await page.get("/app/settings", headers={"accept-language": "zh"})).text
    buttons = re.findall(r"<button>(Let p-lin back[^<]*)</button>", shown)
    assert sorted(buttons) == [
        "Let p-lin back",
        "Let p-lin back to p-o1's devices",
        "Let p-lin back to p-o2's devices",
    ], shown
    assert "放行 p-lin 回到 p-o1 的音箱" in html.unescape(zh), zh


async def test_a_stored_channel_a_rule_now_refuses_is_kept_when_the_push_form_is_saved(
    page: httpx.AsyncClient, db: Database
) -> None:
    # The page sends every channel back: one saved by an older release with a misspelled
    # option blocked adding any other, the form refused whole.
    stale = {"type": "wecom", "target": "4b1c2d3e-0000-4000-8000-00000000abcd?mention=@all"}
    async with db.session() as session:
        user = await UserRepository(session).get("lin")
        user.push_config = {"channels": [stale]}
        await session.commit()
    shown = values((await page.get("/app/settings")).text, "push")
    assert shown["target"][0] == stale["target"], shown
    typed = {
        "type": [stale["type"], "email"],
        "target": [stale["target"], "lin2@example.com"],
        "kinds": ["0:watch", "1:briefing"],
    }
    saved = await page.post("/app/push", data=typed)
    assert saved.status_code == 303, saved.text
    async with db.session() as session:
        stored = (await UserRepository(session).get("lin")).push_config
    assert [(c["type"], c["target"]) for c in stored["channels"]] == [
        ("wecom", stale["target"]),
        ("email", "lin2@example.com"),
    ]
    # Changed, it is checked as new: refused by its number on the form, nothing saved.
    typed["target"][0] = stale["target"].replace("abcd", "abce")
    refused = await page.post("/app/push", data=typed)
    assert refused.status_code == 422 and "Channel 1, Target" in refused.text, refused.text
    async with db.session() as session:
        assert (await UserRepository(session).get("lin")).push_config == stored


async def test_a_let_back_form_naming_no_owner_is_refused_and_lets_no_one_back(
    page: httpx.AsyncClient, db: Database
) -> None:
    """The form read an empty owner as the caller and let them back, where the API
    (`?user=`) and the CLI (`--user ''`) refuse it: the service refuses it, nothing changes."""
    devices = DeviceService(db)
    added = await page.post("/app/xiaozhi/devices", data={"device_id": "aa:bb:cc:00:00:2a"})
    assert added.status_code == 201, added.text
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name="mei"))
        await session.commit()
    await devices.allow("mei", "aa:bb:cc:00:00:2a")
    await devices.withdraw("lin", "aa:bb:cc:00:00:2a", "mei")
    for sent in ({"user": "", "speaker": "mei"}, {"speaker": "mei"}):
        back = await page.post("/app/xiaozhi/withdrawn/let-back", data=sent, follow_redirects=True)
        said = html.unescape(back.text)
        assert "No user '': name an owner whose withdrawals are listed; nothing changed" in said
        assert "may allow your devices again" not in said
        assert [v.withdrawn for v in await devices.list("lin")] == [["mei"]]


async def test_a_device_form_sent_again_shows_the_token_its_first_send_made(
    page: httpx.AsyncClient, db: Database
) -> None:
    # A reload of the page the add answered sends its form again: it said "already
    # registered; remove it first", the token shown once gone. Now that form's second send
    # shows the same token; another form's add of the device is refused as before.
    form = values((await page.get("/app/settings")).text, "add-device")["form"][0]
    sent = {"device_id": "AA:BB:CC:DD:EE:31", "form": form}
    first, again = [await page.post("/app/xiaozhi/devices", data=sent) for _ in range(2)]
    tokens = [re.findall(r"xzd_[0-9a-f]{64}", r.text) for r in (first, again)]
    assert (first.status_code, again.status_code) == (201, 201), again.text[:500]
    assert tokens[0] and tokens[0] == tokens[1], tokens
    # Another page's form (shown within the same second too: its own id) adds it anew.
    second = values((await page.get("/app/settings")).text, "add-device")["form"][0]
    assert second != form
    other = await page.post("/app/xiaozhi/devices", data={**sent, "form": second})
    assert other.status_code == 422
    assert "is already registered; remove it first" in html.unescape(other.text)
    async with db.session() as session:
        rows = await session.scalars(select(XiaozhiDevice).where(XiaozhiDevice.user == "lin"))
        assert [r.device_id for r in rows] == ["aa:bb:cc:dd:ee:31"]
    await DeviceService(db).authenticate("aa:bb:cc:dd:ee:31", tokens[0][0])  # the token works


async def test_a_device_form_sent_again_after_the_remove_gives_no_removed_token_back(
    page: httpx.AsyncClient, db: Database
) -> None:
    # The form's token is made from its id: sent again (back, then resend) after the device
    # was removed, it added the device with the token the remove had ended.
    form = values((await page.get("/app/settings")).text, "add-device")["form"][0]
    sent = {"device_id": "aa:bb:cc:dd:ee:32", "form": form}
    first = await page.post("/app/xiaozhi/devices", data=sent)
    [ended] = set(re.findall(r"xzd_[0-9a-f]{64}", first.text))
    removed = await page.post("/app/xiaozhi/devices/remove", data={"device": "aa:bb:cc:dd:ee:32"})
    assert removed.status_code == 303, removed.text
    again = await page.post("/app/xiaozhi/devices", data=sent)
    assert again.status_code == 201, again.text[:500]
    [given] = set(re.findall(r"xzd_[\w-]{40,}", again.text))
    assert given != ended
    devices = DeviceService(db)
    with pytest.raises(DeviceError):
        await devices.authenticate("aa:bb:cc:dd:ee:32", ended)
    await devices.authenticate("aa:bb:cc:dd:ee:32", given)
