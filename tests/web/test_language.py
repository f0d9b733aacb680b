"""The pages' language: the catalog is complete, and who gets which language (API, CLI, pages)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract
from typer.testing import CliRunner

from ambient.cli import app as cli
from ambient.domain.users import Language, UserCreate
from ambient.refusals import Refusal
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from api.app import create_app
from api.i18n import TEMPLATES, catalog_path, from_accept_language
from tests.support.servers import free_port, http_client, serve

PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")

# Where the catalog's msgids are: the templates, the `_()` / `N_()` calls of the page routers
# (one module per page family, each named *pages.py) and the services' Refusals.
SOURCES = (
    *sorted(TEMPLATES.glob("*.html")),
    *sorted((TEMPLATES.parent / "routers").glob("*pages.py")),
    TEMPLATES.parent / "routers" / "share.py",  # a shared report's page frame
    TEMPLATES.parent / "routers" / "page_words.py",  # a refusal in a page's words
    *sorted((TEMPLATES.parent.parent / "ambient").rglob("*.py")),
)


def refusal_classes(cls: type[Refusal] = Refusal) -> set[str]:
    return {cls.__name__}.union(*(refusal_classes(sub) for sub in cls.__subclasses__()))


KEYWORDS = DEFAULT_KEYWORDS | dict.fromkeys(refusal_classes())


def used_messages() -> dict[str, list[str]]:
    """Every literal msgid the pages use, with where (file:line) it is used."""
    found: dict[str, list[str]] = {}
    for source in SOURCES:
        # Jinja2's extractor for the templates (its types and Babel's differ only on paper).
        method: Any = babel_extract if source.suffix == ".html" else "python"
        options = {"extensions": "jinja2.ext.i18n"} if source.suffix == ".html" else {}
        with source.open("rb") as text:
            for line, message, _comments, _context in extract(
                method, text, KEYWORDS, options=options
            ):
                if isinstance(message, str):
                    found.setdefault(message, []).append(f"{source.name}:{line}")
    return found


def test_every_message_the_pages_use_has_a_chinese_translation() -> None:
    with catalog_path(Language.ZH).open("rb") as po:
        catalog = read_po(po)
    used = used_messages()
    assert len(used) > 150  # the extraction sees the templates and both page routers
    untranslated = {
        msgid: where
        for msgid, where in used.items()
        if msgid not in catalog or not catalog[msgid].string or catalog[msgid].fuzzy
    }
    assert untranslated == {}, "add these to api/locale/zh/LC_MESSAGES/messages.po"
    stale = sorted(m.id for m in catalog if m.id and m.id not in used)
    assert stale == [], "no longer used: remove from the catalog"
    # A translation names only values its English names, or formatting fails on the page (it
    # may leave out an English-only detail: a refusal's "it resolves to ").
    mismatched = [
        m.id
        for m in catalog
        if m.id and not set(PLACEHOLDER.findall(m.string)) <= set(PLACEHOLDER.findall(m.id))
    ]
    assert mismatched == []


def test_the_browser_language_is_the_first_of_zh_or_en_it_asks_for() -> None:
    assert from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == Language.ZH
    assert from_accept_language("en-US,en;q=0.9") == Language.EN
    assert from_accept_language("fr-FR, en;q=0.5, zh;q=0.7") == Language.ZH
    assert from_accept_language("fr-FR, de") is None
    assert from_accept_language("zh;q=0, en") == Language.EN
    assert from_accept_language("") is None and from_accept_language(None) is None


def test_the_product_default_is_chinese() -> None:
    assert Settings(_env_file=None).default_language == Language.ZH  # type: ignore[call-arg]


@pytest_asyncio.fixture
async def site(settings: Settings) -> AsyncIterator[tuple[str, Settings]]:
    # Temporal is not needed here: a closed port (the pages say Temporal is down, in words).
    settings = settings.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{free_port()}",
            "open_registration": True,
            "default_language": Language.ZH,
        }
    )
    async with serve(create_app(settings)) as base:
        yield base, settings


async def test_anonymous_pages_follow_the_browser_then_the_server_default(
    site: tuple[str, Settings],
) -> None:
    base, _ = site
    async with http_client(base) as http:
        chinese = await http.get("/signin", headers={"accept-language": "zh-CN,zh;q=0.9"})
        english = await http.get("/signin", headers={"accept-language": "en-US,en;q=0.9"})
        neither = await http.get("/signin", headers={"accept-language": "fr-FR"})
    assert "用 API 令牌登录" not in chinese.text  # that is the landing page's link
    assert "<h1>登录</h1>" in chinese.text and '<html lang="zh">' in chinese.text
    assert "<h1>Sign in</h1>" in english.text and '<html lang="en">' in english.text
    assert "<h1>登录</h1>" in neither.text  # AMBIENT_DEFAULT_LANGUAGE=zh


async def test_page_registration_keeps_the_browser_language_and_the_api_sets_it(
    site: tuple[str, Settings], db: Database
) -> None:
    base, _ = site
    async with http_client(base, headers={"origin": base}) as http:
        made = await http.post(
            "/register", data={"name": "mei"}, headers={"accept-language": "zh-CN,en;q=0.5"}
        )
        assert made.status_code == 200 and "欢迎，mei" in made.text
        # Signed in: the cookie's user speaks Chinese even to a browser that asks for English.
        page = await http.get("/app", headers={"accept-language": "en-US"})
        assert "新建网页监控" in page.text
    async with http_client(base, headers={"origin": base}) as http:
        made = await http.post("/register", data={"name": "ann"}, headers={"accept-language": "fr"})
        assert made.status_code == 200 and "Welcome" not in made.text  # server default: zh
        token = re.search(r'<pre id="token">([^<]+)</pre>', made.text)
        assert token is not None
        auth = {"Authorization": f"Bearer {token.group(1)}"}
        me = await http.get("/users/me", headers=auth)
        assert me.json()["language"] is None  # not chosen: follows the server's default
        bad = await http.patch("/users/me", json={"language": "fr"}, headers=auth)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "language"]
        assert (await http.get("/users/me", headers=auth)).json()["language"] is None
        chosen = await http.patch("/users/me", json={"language": "en"}, headers=auth)
        assert chosen.status_code == 200 and chosen.json()["language"] == "en"
        page = await http.get("/app", headers={"accept-language": "zh-CN"})
        assert "New web monitor" in page.text and "新建网页监控" not in page.text
    async with db.session() as session:
        mei = await UserRepository(session).get("mei")
    assert mei is not None and mei.language == "zh"


def test_the_user_command_sets_the_language_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    env = {"AMBIENT_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    created = runner.invoke(cli, ["user", "create", "lin", "--language", "en"], env=env)
    assert created.exit_code == 0, created.output
    shown = runner.invoke(cli, ["user", "show", "lin"], env=env)
    assert re.search(r"language\W+en\b", shown.output), shown.output
    refused = runner.invoke(cli, ["user", "create", "kai", "--language", "fr"], env=env)
    assert refused.exit_code == 2 and "language" in refused.output


async def test_a_user_who_has_not_chosen_follows_the_server_default(
    site: tuple[str, Settings], db: Database
) -> None:
    base, _ = site
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="kim"))
        await session.commit()
    async with http_client(base, cookies={"ambient_token": token}) as http:
        page = await http.get("/app/settings")
    assert "服务器默认（中文）" in page.text and "小智设备" in page.text


async def test_a_chosen_language_can_go_back_to_the_default_on_the_page_and_in_the_api(
    site: tuple[str, Settings], db: Database
) -> None:
    base, _ = site
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="ida", language=Language.EN)
        )
        await session.commit()
    async with http_client(
        base,
        cookies={"ambient_token": token},
        headers={"referer": f"{base}/app/settings", "accept-language": "en-US"},
    ) as http:
        page = await http.get("/app/settings")
        options = re.findall(r'<option value="([^"]*)"', page.text.split('id="language"')[1])
        assert options[:3] == ["", "zh", "en"]  # the default is offered after a choice too
        saved = await http.post("/app/settings", data={"language": ""})
        assert saved.status_code == 303, saved.text
        async with db.session() as session:
            ida = await UserRepository(session).get("ida")
        assert ida is not None and ida.language is None
        # The browser's language again (English here, though the server's default is zh),
        # and the choice says so.
        page = await http.get(saved.headers["location"])
        assert "Settings saved" in page.text
        assert '<option value="" selected>Your browser\'s language (English)<' in page.text
        auth = {"Authorization": f"Bearer {token}"}
        chosen = await http.patch("/users/me", json={"language": "zh"}, headers=auth)
        assert chosen.status_code == 200 and chosen.json()["language"] == "zh"
        cleared = await http.patch("/users/me", json={"language": None}, headers=auth)
        assert cleared.status_code == 200 and cleared.json()["language"] is None
        kept = await http.patch("/users/me", json={"phone": "+86 10 1234"}, headers=auth)
        assert kept.json()["language"] is None


async def test_a_channel_with_no_address_to_use_is_refused_in_chinese_words(
    site: tuple[str, Settings], db: Database
) -> None:
    # The refusal said "你资料中的 phone" and "没有 email": the field was the English word.
    base, _ = site
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="noa"))
        await session.commit()
    async with http_client(
        base, cookies={"ambient_token": token}, headers={"referer": f"{base}/app/settings"}
    ) as http:
        sms = await http.post("/app/push", data={"type": ["sms"], "target": [""]})
        email = await http.post("/app/push", data={"type": ["email"], "target": [""]})
    assert sms.status_code == 422 and email.status_code == 422, sms.text
    assert "你资料中的电话，而你的资料里没有电话" in sms.text, sms.text
    assert "你资料中的邮箱，而你的资料里没有邮箱" in email.text, email.text


async def test_a_name_field_says_its_rule_in_the_pages_language_when_the_browser_refuses(
    site: tuple[str, Settings],
) -> None:
    """A name typed in Chinese met only the browser's "match the requested format": the
    field's pattern had no title saying what it takes."""
    base, _ = site
    async with http_client(base) as http:
        page = await http.get("/register", headers={"accept-language": "zh-CN"})
    assert 'title="须为 1-63 个小写字母、数字' in page.text, page.text
