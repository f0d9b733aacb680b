import asyncio
import hashlib
import logging
import sys
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import FrameType

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from ambient import sharing
from ambient.log_redaction import redact
from ambient.render import markdown_html
from ambient.settings import Settings
from ambient.sharing import (
    ExpiredShareLinkError,
    InvalidShareLinkError,
    RevokedShareLinkError,
    ShareLinkLimitError,
    ShareLinkRepository,
    _signature,
    share_report,
)
from ambient.storage import Database
from ambient.storage.models import ShareLink
from api.app import create_app
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.admins import admin_headers
from tests.support.servers import HANG, free_port, http_client, serve

SECRET = "test-secret-key"


async def test_links_expire_refuse_tampering_and_revocation(db: Database) -> None:
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    async with db.session() as session:
        repo = ShareLinkRepository(session, SECRET)
        html = markdown_html("**3** alarms")
        row, token = await repo.create("alice", "briefing", "Morning", html, days=7, now=now)
        assert (
            await repo.open(token, now + timedelta(days=6))
        ).html == "<p><strong>3</strong> alarms</p>\n"
        with pytest.raises(ExpiredShareLinkError):
            await repo.open(token, now + timedelta(days=7, seconds=1))
        token_id, expires, signature = token.split(".")
        later = str(int(expires) + 86400 * 30)
        with pytest.raises(InvalidShareLinkError):  # extending the expiry breaks the signature
            await repo.open(f"{token_id}.{later}.{signature}", now)
        with pytest.raises(InvalidShareLinkError):
            await ShareLinkRepository(session, "other-secret").open(token, now)
        with pytest.raises(InvalidShareLinkError):
            await repo.open("garbage", now)
        assert not await repo.revoke("mallory", row.id)
        assert await repo.revoke("alice", row.id)
        with pytest.raises(RevokedShareLinkError):
            await repo.open(token, now)


async def test_an_expired_link_re_signed_with_a_later_expiry_stays_expired(db: Database) -> None:
    # Outside production the signing key is the published default: whoever holds an expired
    # link can sign it again with any expiry. The link's stored expiry decides, not the token's.
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    async with db.session() as session:
        _, token = await ShareLinkRepository(session, SECRET).create(
            "alice", "briefing", "Morning", "body", days=1, now=now
        )
        token_id, expires, _ = token.split(".")
        later = int(expires) + 86400 * 30
        forged = f"{token_id}.{later}.{_signature(SECRET, token_id, later)}"
        with pytest.raises(ExpiredShareLinkError):
            await ShareLinkRepository(session, SECRET).open(forged, now + timedelta(days=2))


async def test_the_same_key_gives_the_same_link(db: Database) -> None:
    async with db.session() as session:
        repo = ShareLinkRepository(session, SECRET)
        first = await repo.create(
            "alice", "briefing", "t", "b", days=7, key="briefing/alice/2026-11-22"
        )
        again = await repo.create(
            "alice", "briefing", "t", "b", days=7, key="briefing/alice/2026-11-22"
        )
    assert first[0].id == again[0].id and first[1] == again[1]


async def test_a_keyed_links_id_cannot_be_made_from_its_key_with_the_signing_secret(
    db: Database,
) -> None:
    """A briefing's link was keyed by its user and date, its id that key's hash: whoever held
    the signing secret (leaked, or the development default) signed that id and opened another
    user's briefing, never given a link to it. A link the release before made by its key
    (the hash whole) is still the key's link and opens."""
    key, old_key = "briefing/alice/2026-11-22/v1", "briefing/alice/2026-11-21/v1"
    now = datetime.now(UTC)
    async with db.session() as session:
        repo = ShareLinkRepository(session, SECRET)
        row, token = await repo.create("alice", "briefing", "t", "b", days=7, key=key)
        guessed = hashlib.sha256(key.encode()).hexdigest()[:32]
        expires = int((now + timedelta(days=1)).timestamp())
        forged = f"{guessed}.{expires}.{_signature(SECRET, guessed, expires)}"
        with pytest.raises(InvalidShareLinkError):
            await repo.open(forged)
        assert (await repo.open(token)).id == row.id
        # The release before's keyed link: its id the key's hash whole.
        before = ShareLink(
            token_id=hashlib.sha256(old_key.encode()).hexdigest()[:32],
            user="alice",
            kind="briefing",
            title="t",
            html="b",
            created_at=now,
            expires_at=now + timedelta(days=7),
        )
        session.add(before)
        await session.flush()
        again, again_token = await repo.create("alice", "briefing", "t", "b", days=7, key=old_key)
        assert again.id == before.id and (await repo.open(again_token)).id == before.id


async def test_the_hours_limit_counts_the_last_hour_and_still_gives_a_link_made_before(
    db: Database,
) -> None:
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    async with db.session() as session:
        repo = ShareLinkRepository(session, SECRET)

        async def make(minutes: int, key: str | None = None) -> int:
            at = now + timedelta(minutes=minutes)
            row, _ = await repo.create(
                "alice", "report", "t", "b", days=7, key=key, per_hour=2, now=at
            )
            return row.id

        keyed = await make(0, key="briefing/alice/d1")
        await make(10)
        with pytest.raises(ShareLinkLimitError) as refused:
            await make(30)
        # The first of the hour's two ages out in 30 minutes: then one more may be made.
        assert refused.value.retry_after == 30 * 60
        assert str(refused.value) == (
            "share link limit: 2 made in the last hour (max 2); try again in 30 min"
        )
        assert await make(30, key="briefing/alice/d1") == keyed  # a retry is no new link
        await make(61)  # an hour after the first: not refused


@pytest_asyncio.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        yield http


async def test_share_api_opens_without_login_and_escapes_untrusted_html(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await admin_headers(settings)
    token = (await api.post("/users", json={"name": "alice"}, headers=admin)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    body = "# Report\n\n<script>alert(1)</script> | a |\n|---|\n| b |"
    created = await api.post(
        "/share", json={"title": "Nightly <report>", "body": body}, headers=auth
    )
    assert created.status_code == 201
    link = created.json()
    assert link["url"].endswith(link["token"])
    page = await api.get(f"/share/{link['token']}")
    assert page.status_code == 200
    assert (
        "<h1>Report</h1>" in page.text
        and "<script>" not in page.text
        and "&lt;script&gt;" in page.text
    )
    assert "Nightly &lt;report&gt;" in page.text
    assert (await api.get(f"/share/{link['token']}x")).status_code == 404
    assert (await api.delete(f"/share/{link['id']}", headers=auth)).status_code == 204
    assert (await api.get(f"/share/{link['token']}")).status_code == 410
    assert (
        await api.post("/share", json={"title": "", "body": "x"}, headers=auth)
    ).status_code == 422
    assert (await api.post("/share", json={"title": "t", "body": "x"})).status_code == 401


async def test_sharing_again_after_expiry_or_revocation_gives_a_link_that_opens(
    db: Database,
) -> None:
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    key = "briefing/alice/2026-11-22/v1"
    async with db.session() as session:
        repo = ShareLinkRepository(session, SECRET)
        first, _ = await repo.create("alice", "briefing", "t", "b", days=7, key=key, now=now)
        # A week later the user asks for the link again: a dead link is no answer.
        later = now + timedelta(days=8)
        second, token = await repo.create("alice", "briefing", "t", "b", days=7, key=key, now=later)
        assert second.id != first.id and (await repo.open(token, later)).id == second.id
        again, same = await repo.create("alice", "briefing", "t", "b", days=7, key=key, now=later)
        assert (again.id, same) == (second.id, token)  # a retry still gives the same link
        assert await repo.revoke("alice", second.id, later)
        third, token = await repo.create("alice", "briefing", "t", "b", days=7, key=key, now=later)
        assert third.id not in (first.id, second.id)
        assert (await repo.open(token, later)).id == third.id


async def test_a_share_link_pasted_with_trailing_punctuation_is_not_found_not_a_crash(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await admin_headers(settings)
    token = (await api.post("/users", json={"name": "gus"}, headers=admin)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    link = (await api.post("/share", json={"title": "t", "body": "b"}, headers=auth)).json()
    # Chat apps glue the sentence's full stop onto a pasted link.
    for mangled in (f"{link['token']}。", f"{link['token']}，谢谢", "x.1.é"):
        page = await api.get(f"/share/{mangled}")
        assert page.status_code == 404 and "No report at this address" in page.text, mangled
    assert (await api.get(f"/share/{link['token']}")).status_code == 200


async def test_a_link_a_workflow_made_is_revoked_by_its_owner_with_the_link_itself(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """The morning's email carries a briefing link and nothing else: its owner, who forwarded
    it by mistake, revokes it with what they have — the link."""
    admin = await admin_headers(settings)
    tokens = {}
    for name in ("alice", "mallory"):
        created = await api.post("/users", json={"name": name}, headers=admin)
        tokens[name] = {"Authorization": f"Bearer {created.json()['token']}"}
    db = Database(settings.resolved_database_url)
    try:
        link = await share_report(
            db, settings, "alice", "briefing", "Morning", "**3** alarms", "briefing/alice/d1/v1"
        )
    finally:
        await db.close()
    token = link.url.rsplit("/", 1)[1]
    assert (await api.get(f"/share/{token}")).status_code == 200

    theirs = await api.delete(f"/share/{token}", headers=tokens["mallory"])
    assert theirs.status_code == 404 and (await api.get(f"/share/{token}")).status_code == 200
    forged = await api.delete(f"/share/{token[:-2]}xx", headers=tokens["alice"])
    assert forged.status_code == 404
    assert (await api.delete(f"/share/{token}")).status_code == 401
    revoked = await api.delete(f"/share/{token}", headers=tokens["alice"])
    assert revoked.status_code == 204, revoked.text
    assert (await api.get(f"/share/{token}")).status_code == 410


async def test_a_users_links_are_listed_to_them_and_an_admin_who_may_revoke_any(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """Links made with a token that leaked outlived its rotation, unseen: nobody could list
    them, and only their maker could revoke them. The owner lists theirs (never a token), an
    admin anyone's, and an admin revokes any; a member neither lists nor revokes another's."""
    admin = await admin_headers(settings)
    tokens = {}
    for name in ("alice", "mallory"):
        created = await api.post("/users", json={"name": name}, headers=admin)
        tokens[name] = {"Authorization": f"Bearer {created.json()['token']}"}
    made = []
    for title in ("first", "second"):
        answer = await api.post(
            "/share", json={"title": title, "body": "x"}, headers=tokens["alice"]
        )
        made.append(answer.json())
    listed = (await api.get("/share", headers=tokens["alice"])).json()
    assert [link["title"] for link in listed] == ["second", "first"], listed
    assert all("token" not in link and link["revoked_at"] is None for link in listed)
    theirs = await api.get("/share", params={"user": "alice"}, headers=tokens["mallory"])
    assert theirs.status_code == 403, theirs.text
    assert (
        await api.delete(f"/share/{made[0]['id']}", headers=tokens["mallory"])
    ).status_code == 404
    by_admin = await api.get("/share", params={"user": "alice"}, headers=admin)
    assert [link["id"] for link in by_admin.json()] == [made[1]["id"], made[0]["id"]]
    revoked = await api.delete(f"/share/{made[0]['id']}", headers=admin)
    assert revoked.status_code == 204, revoked.text
    assert (await api.get(f"/share/{made[0]['token']}")).status_code == 410
    assert (await api.get(f"/share/{made[1]['token']}")).status_code == 200
    first_revoked = (await api.get("/share", headers=tokens["alice"])).json()[1]["revoked_at"]
    assert first_revoked is not None
    # Revoked again: it keeps the time it was first revoked.
    assert (await api.delete(f"/share/{made[0]['id']}", headers=tokens["alice"])).status_code == 204
    assert (await api.get("/share", headers=tokens["alice"])).json()[1][
        "revoked_at"
    ] == first_revoked


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())


async def test_the_access_log_keeps_no_share_link_that_opens(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """A share link opens without logging in: the API's access log (shipped to a log
    service, read by operators) must not hold links that open the reports."""
    admin = await admin_headers(settings)
    created = await api.post("/users", json={"name": "lena"}, headers=admin)
    auth = {"Authorization": f"Bearer {created.json()['token']}"}
    link = (await api.post("/share", json={"title": "t", "body": "b"}, headers=auth)).json()
    token_id, expires, signature = link["token"].split(".")
    access = logging.getLogger("uvicorn.access")  # uvicorn's: it does not propagate
    lines, level = _Lines(), access.level
    access.addHandler(lines)
    access.setLevel(logging.INFO)
    try:
        assert (await api.get(f"/share/{link['token']}")).status_code == 200
    finally:
        access.removeHandler(lines)
        access.setLevel(level)
    assert any(f"/share/{token_id}.{expires}.***" in line for line in lines.seen), lines.seen
    assert not any(signature in line for line in lines.seen)
    assert redact(f"pushed {link['url']}") == f"pushed {link['url'].replace(signature, '***')}"


async def test_a_blank_title_or_body_is_refused_by_name(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    # "   " as the title (or the whole body) made a link to a page with no title (or nothing).
    admin = await admin_headers(settings)
    token = (await api.post("/users", json={"name": "bea"}, headers=admin)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    for sent, field in (
        ({"title": "   ", "body": "b"}, "title"),
        ({"title": "t", "body": " \n"}, "body"),
    ):
        refused = await api.post("/share", json=sent, headers=auth)
        assert refused.status_code == 422, (sent, refused.text)
        assert [e["loc"] for e in refused.json()["detail"]] == [["body", field]], refused.text
    # Past 100,000 characters a body's render could take seconds (docs/benchmarks.md).
    long = await api.post("/share", json={"title": "t", "body": "x" * 100_001}, headers=auth)
    assert long.status_code == 422 and long.json()["detail"][0]["loc"] == ["body", "body"]
    padded = await api.post("/share", json={"title": "  周报  ", "body": "b"}, headers=auth)
    assert padded.status_code == 201
    page = await api.get(f"/share/{padded.json()['token']}")
    assert "<title>周报" in page.text or ">周报<" in page.text, page.text[:500]


async def test_a_shared_report_page_speaks_its_readers_language(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    # It said <html lang="zh"> with an English footer to every reader.
    admin = await admin_headers(settings)
    token = (await api.post("/users", json={"name": "lang"}, headers=admin)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    link = (await api.post("/share", json={"title": "t", "body": "b"}, headers=auth)).json()
    english = await api.get(f"/share/{link['token']}", headers={"accept-language": "en-US"})
    chinese = await api.get(f"/share/{link['token']}", headers={"accept-language": "zh-CN"})
    assert '<html lang="en">' in english.text and "valid until" in english.text
    assert '<html lang="zh">' in chinese.text and "有效期至" in chinese.text
    # The kind of report too: the footer said "ambient-ops · report · 有效期至".
    assert "ambient-ops · report · valid until" in english.text
    assert "ambient-ops · 报告 · 有效期至" in chinese.text, chinese.text


async def test_a_dead_or_unknown_share_link_says_so_in_its_readers_language(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    # The report page speaks its reader's language, but an expired, revoked or unknown link
    # answered a bare English "<h1>this link has expired</h1>" to a Chinese reader too.
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            repo = ShareLinkRepository(session, settings.secret_key.get_secret_value())
            past = datetime.now(UTC) - timedelta(days=2)
            _, expired = await repo.create("ann", "briefing", "t", "b", days=1, now=past)
            row, revoked = await repo.create("ann", "briefing", "t", "b", days=7)
            assert await repo.revoke("ann", row.id)
            await session.commit()
    finally:
        await db.close()
    cases = [
        (expired, 410, "This link has expired", "此链接已过期"),
        (revoked, 410, "This link was withdrawn", "此链接已被分享者撤回"),
        (f"{revoked[:-2]}xx", 404, "No report at this address", "此地址没有报告"),
        ("garbage", 404, "No report at this address", "此地址没有报告"),
    ]
    for token, code, english, chinese in cases:
        for asked, language, says in (("en-US", "en", english), ("zh-CN,zh;q=0.9", "zh", chinese)):
            page = await api.get(f"/share/{token}", headers={"accept-language": asked})
            assert page.status_code == code, (token, page.text)
            assert f'<html lang="{language}">' in page.text, (token, page.text)
            assert says in page.text, (token, asked, page.text)
            assert page.headers["content-type"] == "text/html; charset=utf-8"


async def test_a_link_opened_while_its_page_renders_says_so_not_an_empty_report(
    api: httpx.AsyncClient, settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_link stores a link, its page pending, before the render: opened meanwhile (a
    keyed retry gives the token of a link still rendering) it served an empty report."""
    admin = await admin_headers(settings)
    made = (await api.post("/users", json={"name": "ivy"}, headers=admin)).json()["token"]
    loop = asyncio.get_running_loop()
    rendering, opened = asyncio.Event(), threading.Event()
    released: list[bool] = []

    def render_held(text: str) -> str:
        # The render goes on until the link has been opened: only HANG ends the wait.
        loop.call_soon_threadsafe(rendering.set)
        released.append(opened.wait(HANG))
        return markdown_html(text)

    monkeypatch.setattr(sharing, "markdown_html", render_held)
    auth = {"Authorization": f"Bearer {made}"}
    shared = asyncio.create_task(
        api.post("/share", json={"title": "t", "body": "**b**"}, headers=auth)
    )
    await asyncio.wait_for(rendering.wait(), HANG)
    async with db.session() as session:
        row = await session.scalar(select(ShareLink).where(ShareLink.user == "ivy"))
    assert row is not None
    token = sharing._token(settings.secret_key.get_secret_value(), row)
    pages = {
        language: await api.get(f"/share/{token}", headers={"accept-language": asked})
        for asked, language in (("en-US", "en"), ("zh-CN,zh;q=0.9", "zh"))
    }
    opened.set()
    assert (await shared).status_code == 201 and released == [True]
    for language, says in (
        ("en", "This report is still being prepared"),
        ("zh", "此报告仍在准备中"),
    ):
        page = pages[language]
        assert page.status_code == 503, page.text
        assert page.headers["Retry-After"] == "2"
        assert f'<html lang="{language}">' in page.text and says in page.text, page.text
    done = await api.get(f"/share/{token}")
    assert done.status_code == 200 and "<strong>b</strong>" in done.text


async def test_a_report_being_rendered_holds_no_other_members_request(
    api: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any member may share a body of 500,000 characters: rendered in the API's event loop,
    a body that took long to render held every other user's request until it was done."""
    admin = await admin_headers(settings)
    token = (await api.post("/users", json={"name": "rex"}, headers=admin)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    loop = asyncio.get_running_loop()
    rendering, answered = asyncio.Event(), threading.Event()
    released: list[bool] = []

    def render_held(text: str) -> str:
        # The render goes on until another request has been answered: on the event loop's
        # own thread none can be, and only HANG ends the wait.
        loop.call_soon_threadsafe(rendering.set)
        released.append(answered.wait(HANG))
        return markdown_html(text)

    monkeypatch.setattr(sharing, "markdown_html", render_held)
    body = "<" * 30_000 + "[" * 3_000  # unmatched: what took Python-Markdown quadratic time
    shared = asyncio.create_task(
        api.post("/share", json={"title": "t", "body": body}, headers=auth)
    )
    await asyncio.wait_for(rendering.wait(), HANG)
    me = await api.get("/users/me", headers=auth)
    answered.set()
    assert me.status_code == 200 and me.json()["name"] == "rex"
    assert (await shared).status_code == 201
    assert released == [True]


def _steps(text: str) -> int:
    """The Python lines a render runs: a count that does not depend on the machine's speed."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> object:
        nonlocal count
        count += 1
        return tracer

    sys.settrace(tracer)
    try:
        markdown_html(text)
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("shape", ["[", "<", "![", "*a", "[a]("])
def test_rendering_takes_steps_in_proportion_to_the_text(shape: str) -> None:
    # Python-Markdown looked for each "[" 's closing bracket to the end of the text: 2,000
    # unmatched ones took 2.5 s, 4,000 took 11.8 s, and a share's body may hold 500,000.
    small, double = _steps(shape * 500), _steps(shape * 1_000)
    assert double < 2.5 * small, (shape, small, double)


async def test_a_member_past_the_hours_share_links_is_told_when_to_try_again(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{free_port()}", "share_links_per_hour": 2}
    )
    async with serve(create_app(settings)) as base, http_client(base) as api:
        admin = await admin_headers(settings)
        auth = {}
        for name in ("sam", "tess"):
            created = await api.post("/users", json={"name": name}, headers=admin)
            auth[name] = {"Authorization": f"Bearer {created.json()['token']}"}
        share = {"title": "t", "body": "b"}
        made = [await api.post("/share", json=share, headers=auth["sam"]) for _ in range(2)]
        refused = await api.post("/share", json=share, headers=auth["sam"])
        theirs = await api.post("/share", json=share, headers=auth["tess"])
    assert [r.status_code for r in made] == [201, 201]
    assert refused.status_code == 429, refused.text
    assert refused.json()["detail"] == (
        "share link limit: 2 made in the last hour (max 2); try again in 60 min"
    )
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600
    assert theirs.status_code == 201  # another member's hour is their own


async def test_a_report_being_rendered_holds_no_write_transaction(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long body renders for seconds: rendered inside the write
    transaction, it held SQLite's one write lock (and this process's write turn) throughout."""
    loop = asyncio.get_running_loop()
    rendering, written = asyncio.Event(), threading.Event()
    released: list[bool] = []

    def render_held(text: str) -> str:
        # The render goes on until another write is stored: inside the share's transaction
        # none can be, and only HANG ends the wait.
        loop.call_soon_threadsafe(rendering.set)
        released.append(written.wait(HANG))
        return markdown_html(text)

    monkeypatch.setattr(sharing, "markdown_html", render_held)
    shared = asyncio.create_task(
        share_report(db, settings, "uma", "report", "t", "**b**", "report/uma/1")
    )
    await asyncio.wait_for(rendering.wait(), HANG)
    async with db.writing() as session:
        await ShareLinkRepository(session, SECRET).create("vic", "report", "t", "<p>v</p>", days=1)
    written.set()
    link = await shared
    assert released == [True]
    async with db.session() as session:
        token = link.url.rsplit("/", 1)[1]
        repo = ShareLinkRepository(session, settings.secret_key.get_secret_value())
        assert (await repo.open(token)).html == "<p><strong>b</strong></p>\n"


async def test_requests_at_once_past_the_hours_limit_render_at_most_the_limit(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request read the hour's links, none stored yet, before its render: all passed and
    all rendered (seconds of CPU each), the store refusing the extra ones only after."""
    asked, limit = 5, 2
    lock, all_there = threading.Lock(), threading.Event()
    there: list[str] = []
    rendered: list[bool] = []

    def arrived(what: str) -> None:
        with lock:
            there.append(what)
            if len(there) == asked:
                all_there.set()

    def render_counted(text: str) -> str:
        # Each render waits for every request to render or be refused: all at once.
        arrived("render")
        rendered.append(all_there.wait(HANG))
        return markdown_html(text)

    async def share() -> bool:
        try:
            await sharing.create_link(db, settings, "wes", "report", "t", "**b**", per_hour=limit)
        except ShareLinkLimitError:
            arrived("refused")
            return False
        return True

    monkeypatch.setattr(sharing, "markdown_html", render_counted)
    made = await asyncio.gather(*(share() for _ in range(asked)))
    assert sorted(made) == [False] * (asked - limit) + [True] * limit
    assert rendered == [True] * limit


async def test_a_render_that_fails_leaves_no_link_and_no_slot_of_the_hour(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr(sharing, "markdown_html", broken)
    with pytest.raises(RuntimeError):
        await sharing.create_link(db, settings, "xia", "report", "t", "b", per_hour=1)
    monkeypatch.undo()
    row, _ = await sharing.create_link(db, settings, "xia", "report", "t", "**b**", per_hour=1)
    async with db.session() as session:
        rows = (await session.execute(select(ShareLink).where(ShareLink.user == "xia"))).all()
    assert [r.html for (r,) in rows] == ["<p><strong>b</strong></p>\n"]
    assert row.html == "<p><strong>b</strong></p>\n"


async def test_past_the_limit_the_wait_lasts_until_enough_links_age_out(db: Database) -> None:
    """Three links in the hour (the morning push's are never refused) and a limit of 2: one
    more may be made once two have aged out, not once the oldest has."""
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    async with db.session() as session:
        repo = ShareLinkRepository(session, SECRET)
        for minutes in (0, 10, 20):
            at = now + timedelta(minutes=minutes)
            await repo.create("yan", "briefing", "t", "b", days=7, per_hour=0, now=at)
        with pytest.raises(ShareLinkLimitError) as refused:
            at = now + timedelta(minutes=30)
            await repo.create("yan", "report", "t", "b", days=7, per_hour=2, now=at)
    assert refused.value.retry_after == 40 * 60
    assert str(refused.value) == (
        "share link limit: 3 made in the last hour (max 2); try again in 40 min"
    )


async def test_a_keyed_link_whose_render_died_with_its_process_is_made_again(
    db: Database,
) -> None:
    """create_link stores a link before its render: a process that died rendering left a
    page that never comes, and its key gave that link until it expired."""
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    key = "report/zoe/1"
    async with db.session() as session:
        repo = ShareLinkRepository(session, SECRET)
        left, _ = await repo.create("zoe", "report", "t", sharing.PENDING, days=7, key=key, now=now)
        soon = now + timedelta(minutes=1)  # still rendering, as far as anyone can tell
        same, _ = await repo.create("zoe", "report", "t", "<p>b</p>", days=7, key=key, now=soon)
        later = now + timedelta(minutes=6)
        again, _ = await repo.create("zoe", "report", "t", "<p>b</p>", days=7, key=key, now=later)
    assert same.id == left.id
    assert again.id != left.id and again.html == "<p>b</p>"


async def test_a_title_longer_than_its_column_is_kept_cut_on_postgresql(
    pg: Database, settings: Settings
) -> None:
    """A remediation's title names its service (a Deployment's name may be 253 characters):
    PostgreSQL refused the row, and sharing the report answered 500 (SQLite kept it)."""
    title = "Remediation of cls-abc/shop/" + "checkout-" * 30
    row, made = await sharing.create_link(pg, settings, "yan", "remediation", title, "b")
    assert made and len(row.title) == 255 and row.title.startswith(title[:200])
