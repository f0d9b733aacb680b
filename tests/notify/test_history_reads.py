"""Events, inbox and deliveries read back through MCP, the API and the CLI: own records only
(admins may name a user), failures with their error, targets redacted, bad ids 422/404."""

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from mcp import Client
from rich.console import Console
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner

from activities.notify import NotifyActivities
from ambient.cli import app
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import Message, NotifyRequest, Target, redact_target
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Event
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from tests.support.admins import admin_headers
from tests.support.pages import signed_in
from tests.support.servers import free_port, http_client, serve

# A webhook's token may be in its path (Slack's, Discord's): no reader sees it, nor the query.
PATH_TOKEN = "P4thT0ken-s3cret"
HOOK = f"http://127.0.0.1:9/h/{PATH_TOKEN}?t=t0p-s3cret"
HOOK_SHOWN = redact_target("webhook", HOOK)  # its host and fingerprint


async def _notify(settings: Settings, user: str, key: str) -> None:
    """One inbox message and two failed deliveries (no SMTP; a refused webhook) for ``user``."""
    db = Database(settings.resolved_database_url)
    try:
        async with http_client() as http:
            notify = NotifyActivities(db, build_channels(settings, db, http))
            await ActivityEnvironment().run(
                notify.notify,
                NotifyRequest(
                    user=user,
                    message=Message(title=f"hello {user}", body="disk 91%"),
                    targets=[
                        Target(type="inbox"),
                        Target(type="email", target=f"{user}@example.com"),
                        Target(type="webhook", target=HOOK),
                    ],
                    idempotency_key=key,
                    task="disk-watch",
                ),
            )
    finally:
        await db.close()


@pytest_asyncio.fixture
async def stack(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        tokens = {}
        for name in ("erin", "frank"):
            answer = await http.post("/users", json={"name": name}, headers=admin)
            tokens[name] = answer.json()["token"]
            await _notify(settings, name, f"hist-{name}")
        yield (
            http,
            {"admin": admin["Authorization"], **{k: f"Bearer {v}" for k, v in tokens.items()}},
        )


async def test_api_reads_own_records_and_admins_may_name_a_user(
    stack: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, auth = stack
    erin = {"Authorization": auth["erin"]}
    deliveries = (await http.get("/deliveries", headers=erin)).json()
    assert {d["user"] for d in deliveries} == {"erin"}
    by_channel = {d["channel"]: d for d in deliveries}
    assert by_channel["inbox"]["status"] == "sent"
    assert by_channel["email"]["error"] == (
        "permanent: email is not configured: set AMBIENT_SMTP_HOST"
    )
    assert by_channel["webhook"]["target"] == HOOK_SHOWN
    assert "t0p-s3cret" not in json.dumps(deliveries) and PATH_TOKEN not in json.dumps(deliveries)
    failed = (await http.get("/deliveries", params={"status": "failed"}, headers=erin)).json()
    assert {d["channel"] for d in failed} == {"email", "webhook"}
    events = (await http.get("/events", params={"kind": "delivery.failed"}, headers=erin)).json()
    assert len(events) == 2 and all(e["task"] == "disk-watch" for e in events)
    assert HOOK_SHOWN in {e["payload"]["target"] for e in events}
    assert PATH_TOKEN not in json.dumps(events)
    inbox = (await http.get("/inbox", headers=erin)).json()
    assert [m["title"] for m in inbox] == ["hello erin"]

    assert (
        await http.get("/deliveries", params={"user": "frank"}, headers=erin)
    ).status_code == 403
    assert (await http.get("/inbox", params={"user": "frank"}, headers=erin)).status_code == 403
    assert (await http.get("/events", params={"user": "frank"}, headers=erin)).status_code == 403
    admin = {"Authorization": auth["admin"]}
    franks = (await http.get("/deliveries", params={"user": "frank"}, headers=admin)).json()
    assert {d["user"] for d in franks} == {"frank"} and len(franks) == 3
    assert PATH_TOKEN not in json.dumps(franks)
    franks_events = (await http.get("/events", params={"user": "frank"}, headers=admin)).text
    assert "127.0.0.1:9" in franks_events and PATH_TOKEN not in franks_events
    bad = await http.get("/deliveries", params={"status": "lost"}, headers=erin)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "status"]


BROKEN = "permanent: internal error: OperationalError: db at 10.0.0.5"
MASKED = "permanent: internal error: its text is an administrator's"


async def _broken(settings: Settings, user: str) -> None:
    """A delivery of ``user``'s the product failed (its error an internal one's)."""
    from ambient.storage.models import Delivery, Event

    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            fields = {"channel": "email", "target": "e@x", "status": "failed", "attempts": 1}
            session.add(Delivery(user=user, key=f"broken-{user}", error=BROKEN, **fields))
            said = {"channel": "email", "error": BROKEN, "retrying": False}
            session.add(Event(kind="delivery.failed", user=user, task="t", payload=said))
            await session.commit()
    finally:
        await db.close()


async def test_a_members_deliveries_show_an_internal_error_as_their_sends_do(
    stack: tuple[httpx.AsyncClient, dict[str, str]], settings: Settings
) -> None:
    """A member's briefing send masks an internal error's text (the database's, its host);
    their deliveries showed it whole. An admin reads it."""
    http, auth = stack
    await _broken(settings, "erin")
    own = (await http.get("/deliveries", headers={"Authorization": auth["erin"]})).json()
    admin = {"Authorization": auth["admin"]}
    theirs = (await http.get("/deliveries", params={"user": "erin"}, headers=admin)).json()
    assert MASKED in [d["error"] for d in own] and BROKEN not in json.dumps(own)
    assert BROKEN in [d["error"] for d in theirs]
    # Its delivery.failed event said the text whole to the member (docs/notifications.md).
    events = (await http.get("/events", headers={"Authorization": auth["erin"]})).json()
    failed = [e["payload"]["error"] for e in events if e["kind"] == "delivery.failed"]
    assert MASKED in failed and BROKEN not in json.dumps(events)
    theirs = (await http.get("/events", params={"user": "erin"}, headers=admin)).json()
    assert BROKEN in [e["payload"].get("error") for e in theirs]


async def _first_data(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], after_id: int
) -> str:
    """The first event a stream sends after ``after_id`` (its data line)."""
    params = {"after_id": after_id}
    async with http.stream("GET", path, params=params, headers=headers) as answer:
        assert answer.status_code == 200, await answer.aread()

        async def read() -> str:
            async for line in answer.aiter_lines():
                if line.startswith("data:"):
                    return line
            return ""

        return await asyncio.wait_for(read(), 15)


async def test_every_event_stream_masks_a_members_internal_error(
    stack: tuple[httpx.AsyncClient, dict[str, str]], settings: Settings
) -> None:
    """The dashboard's live stream built its own frames from the stored row: a member read a
    delivery failure's internal error whole there (the database's text, its host), masked in
    GET /events, /events/stream and MCP."""
    http, auth = stack
    erin = {"Authorization": auth["erin"]}
    before = max(e["id"] for e in (await http.get("/events", headers=erin)).json())
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            session.add(
                Event(
                    kind="delivery.failed",
                    user="erin",
                    task="t",
                    payload={"channel": "email", "error": BROKEN, "retrying": False},
                )
            )
            await session.commit()
    finally:
        await db.close()
    api = await _first_data(http, "/events/stream", erin, before)
    async with signed_in(settings, auth["erin"].removeprefix("Bearer "), "/app") as page:
        shown = await _first_data(page, "/app/events/stream", {}, before)
    assert MASKED in api and BROKEN not in api, api
    assert MASKED in shown and BROKEN not in shown, shown


async def test_marking_read_answers_422_or_404_never_500(
    stack: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, auth = stack
    erin, frank = {"Authorization": auth["erin"]}, {"Authorization": auth["frank"]}
    huge = await http.post("/inbox/12345678901234567890123/read", headers=erin)
    assert huge.status_code == 422 and huge.json()["detail"][0]["loc"] == ["path", "message_id"]
    assert (await http.post("/inbox/0/read", headers=erin)).status_code == 422
    assert (await http.post("/inbox/abc/read", headers=erin)).status_code == 422
    franks_message = (await http.get("/inbox", headers=frank)).json()[0]["id"]
    assert (await http.post(f"/inbox/{franks_message}/read", headers=erin)).status_code == 404
    done = await http.post(f"/inbox/{franks_message}/read", headers=frank)
    assert done.status_code == 200 and done.json()["read"] is True


async def test_mcp_read_tools_show_own_records_with_typed_inputs(settings: Settings) -> None:
    from ambient.domain.users import Role, UserCreate
    from ambient.storage.migrate import upgrade_async
    from ambient.storage.users import UserRepository

    await upgrade_async(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name="gina"))
        await UserRepository(session).create(UserCreate(name="hank"))
        await UserRepository(session).create(UserCreate(name="root", role=Role.ADMIN))
        await session.commit()
    await _notify(settings, "gina", "mcp-gina")
    await _notify(settings, "hank", "mcp-hank")

    async def call(user: str, tool: str, args: dict[str, object]) -> object:
        async with http_client() as http:
            state = AppState(
                settings=settings,
                db=db,
                temporal=None,  # type: ignore[arg-type]
                channels=build_channels(settings, db, http),
                stdio_user=user,
            )
            async with Client(build_server(settings, holder=StateHolder(state))) as client:
                if tool == "list_tools":
                    return await client.list_tools()
                return await client.call_tool(tool, args)

    try:
        tools = {t.name: t for t in (await call("gina", "list_tools", {})).tools}  # type: ignore[attr-defined]
        for name in ("list_events", "read_inbox", "list_deliveries"):
            tool = tools[name]
            assert tool.annotations is not None and tool.annotations.read_only_hint is True
            assert tool.annotations.destructive_hint is False
            assert "description" in tool.input_schema["properties"]["user"]
        assert tools["list_deliveries"].input_schema["properties"]["status"]["anyOf"][0]["enum"]

        own = await call("gina", "list_deliveries", {"status": "failed"})
        rows = own.structured_content["deliveries"]  # type: ignore[attr-defined]
        assert {(r["user"], r["channel"]) for r in rows} == {("gina", "email"), ("gina", "webhook")}
        # A page of one says where the next starts (its next_before_id was always null).
        first = await call("gina", "list_deliveries", {"status": "failed", "limit": 1})
        page = first.structured_content  # type: ignore[attr-defined]
        assert len(page["deliveries"]) == 1 and page["next_before_id"] is not None, page
        after = {"status": "failed", "limit": 1, "before_id": page["next_before_id"]}
        second = (await call("gina", "list_deliveries", after)).structured_content  # type: ignore[attr-defined]
        [older] = second["deliveries"]
        assert older["id"] < page["deliveries"][0]["id"], second
        assert second["next_before_id"] is None, second
        inbox = await call("gina", "read_inbox", {})
        assert [m["title"] for m in inbox.structured_content["messages"]] == ["hello gina"]  # type: ignore[attr-defined]
        events = await call("gina", "list_events", {"kind": "delivery.failed"})
        assert len(events.structured_content["events"]) == 2  # type: ignore[attr-defined]

        refused = await call("gina", "read_inbox", {"user": "hank"})
        assert refused.is_error and "only an admin" in refused.content[0].text  # type: ignore[attr-defined]
        bad = await call("gina", "list_deliveries", {"status": "lost"})
        assert bad.is_error  # type: ignore[attr-defined]
        # A channel the product has not is refused with the ones it has, not an empty list.
        assert "wecom" in str(tools["list_deliveries"].input_schema["properties"]["channel"])
        pigeon = await call("gina", "list_deliveries", {"channel": "pigeon"})
        assert pigeon.is_error and "channel" in pigeon.content[0].text  # type: ignore[attr-defined]
        await _broken(settings, "gina")
        masked = await call("gina", "list_deliveries", {"channel": "email"})
        errors = [r["error"] for r in masked.structured_content["deliveries"]]  # type: ignore[attr-defined]
        assert MASKED in errors and BROKEN not in errors
        whole = await call("root", "list_deliveries", {"user": "gina", "channel": "email"})
        assert BROKEN in [r["error"] for r in whole.structured_content["deliveries"]]  # type: ignore[attr-defined]
        hooks = await call("root", "list_deliveries", {"user": "gina", "channel": "webhook"})
        shown = [r["target"] for r in hooks.structured_content["deliveries"]]  # type: ignore[attr-defined]
        assert shown == [HOOK_SHOWN] and PATH_TOKEN not in str(hooks)
        events = await call("gina", "list_events", {"kind": "delivery.failed"})
        assert BROKEN not in str(events) and MASKED in str(events)
        whole = await call("root", "list_events", {"user": "gina", "kind": "delivery.failed"})
        assert BROKEN in str(whole)
        as_admin = await call("root", "read_inbox", {"user": "hank"})
        assert [m["title"] for m in as_admin.structured_content["messages"]] == ["hello hank"]  # type: ignore[attr-defined]
    finally:
        await db.close()


async def test_cli_prints_events_inbox_and_deliveries_as_json(settings: Settings) -> None:
    from ambient.domain.users import UserCreate
    from ambient.storage.migrate import upgrade_async
    from ambient.storage.users import UserRepository

    await upgrade_async(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name="ivy"))
        await session.commit()
    await db.close()
    await _notify(settings, "ivy", "cli-ivy")
    runner = CliRunner()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}

    def run(*args: str) -> list[dict[str, object]]:
        done = runner.invoke(app, list(args), env=env)
        assert done.exit_code == 0, done.output
        parsed: list[dict[str, object]] = json.loads(done.output)
        return parsed

    deliveries = await asyncio.to_thread(run, "deliveries", "--user", "ivy", "--json")
    assert {d["channel"]: d["status"] for d in deliveries} == {
        "inbox": "sent",
        "email": "failed",
        "webhook": "failed",
    }
    inbox = await asyncio.to_thread(run, "inbox", "--user", "ivy", "--json")
    assert [m["title"] for m in inbox] == ["hello ivy"]
    events = await asyncio.to_thread(run, "events", "--kind", "delivery.failed", "--json")
    assert {e["user"] for e in events} == {"ivy"} and len(events) == 2
    wide = {**env, "COLUMNS": "300"}
    table = await asyncio.to_thread(runner.invoke, app, ["deliveries", "--user", "ivy"], env=wide)
    assert table.exit_code == 0 and "email is not configured: set AMBIENT_SMTP_HOST" in table.output
    lost = await asyncio.to_thread(runner.invoke, app, ["deliveries", "--status", "lost"], env=env)
    assert lost.exit_code == 2
    # The channel is checked where the status is, in the read every door calls.
    pigeon = await asyncio.to_thread(
        runner.invoke, app, ["deliveries", "--channel", "pigeon"], env=env
    )
    assert pigeon.exit_code == 2 and "--channel: 'pigeon' is not" in pigeon.output


async def test_events_and_inbox_page_back_with_before_id_as_deliveries_do(
    stack: tuple[httpx.AsyncClient, dict[str, str]], settings: Settings
) -> None:
    """GET /events and /inbox dropped before_id without a word: the same newest page came
    back, and nothing older than one page could be read over HTTP."""
    http, auth = stack
    erin = {"Authorization": auth["erin"]}
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            for n in range(5):
                session.add(Event(kind="watch.hit", user="erin", task="t", payload={"n": n}))
            await session.commit()
    finally:
        await db.close()
    pages: list[list[int]] = []
    before: dict[str, int] = {}
    for _ in range(3):
        params = {"kind": "watch.hit", "limit": 2, **before}
        page = (await http.get("/events", params=params, headers=erin)).json()
        pages.append([e["payload"]["n"] for e in page])
        if page:
            before = {"before_id": page[-1]["id"]}
    assert pages == [[4, 3], [2, 1], [0]]
    by_kind = await http.get("/events/watch.hit", params={"limit": 9, **before}, headers=erin)
    assert by_kind.json() == []
    newest = (await http.get("/inbox", headers=erin)).json()
    older = await http.get("/inbox", params={"before_id": newest[-1]["id"]}, headers=erin)
    assert older.status_code == 200 and older.json() == []
    bad = await http.get("/inbox", params={"before_id": 0}, headers=erin)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "before_id"]


async def test_the_cli_pages_events_and_inbox_back_with_before_id_as_the_api_does(
    settings: Settings, deps: WorkerDeps
) -> None:
    """GET /events, /inbox, MCP list_events and read_inbox page back with before_id, and
    `ambient deliveries --before-id`; `ambient events` and `ambient inbox` took no such option:
    past the newest 1,000 (--limit's most) an operator could not read an event at all. A full
    page says how to get the next on stderr; the last page says nothing."""
    from ambient.domain.users import UserCreate
    from ambient.storage.repositories import InboxRepository
    from ambient.storage.users import UserRepository

    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="erin"))
        for n in range(3):
            session.add(Event(kind="watch.hit", user="erin", task="t", payload={"n": n}))
            await InboxRepository(session).add("erin", Message(title=f"m{n}", body="b"))
        await session.commit()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir), "COLUMNS": "300"}

    def run(*args: str) -> tuple[int, str, str]:
        done = CliRunner().invoke(app, list(args), env=env)
        return done.exit_code, done.stdout, done.stderr

    def paged(command: str, key: str) -> list[tuple[list[object], str]]:
        pages: list[tuple[list[object], str]] = []
        before: tuple[str, ...] = ()
        for _ in range(2):
            code, out, err = run(command, "--user", "erin", "--limit", "2", "--json", *before)
            assert code == 0, err
            rows = json.loads(out)
            pages.append(([row["payload"]["n"] if key == "n" else row[key] for row in rows], err))
            before = ("--before-id", str(rows[-1]["id"]))
        return pages

    # --json prints the records alone: a script pages on by the last one's id.
    assert await asyncio.to_thread(paged, "events", "n") == [([2, 1], ""), ([0], "")]
    assert await asyncio.to_thread(paged, "inbox", "title") == [(["m2", "m1"], ""), (["m0"], "")]
    newest = json.loads((await asyncio.to_thread(run, "events", "--user", "erin", "--json"))[1])
    full = await asyncio.to_thread(run, "events", "--user", "erin", "--limit", "2")
    assert full[0] == 0 and full[2] == f"more: --before-id {newest[1]['id']}\n", full
    before = str(newest[1]["id"])
    last = await asyncio.to_thread(
        run, "events", "--user", "erin", "--limit", "2", "--before-id", before
    )
    assert last[0] == 0 and last[2] == "", last  # a page not full is the last


def test_the_cli_refuses_a_user_it_does_not_know_as_the_api_does(settings: Settings) -> None:
    """`ambient inbox|events|deliveries --user <typo>` said "no inbox messages" (exit 0):
    a misspelt name read as nothing happened."""
    asyncio.run(_migrated(settings))
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
    for command in ("inbox", "events", "deliveries"):
        done = CliRunner().invoke(app, [command, "--user", "nobody-typo"], env=env)
        assert done.exit_code == 2, (command, done.output)
        assert "--user: no user 'nobody-typo'" in done.output, done.output


async def _migrated(settings: Settings) -> None:
    from ambient.storage.migrate import upgrade_async

    await upgrade_async(settings.resolved_database_url)


async def test_a_since_without_an_offset_is_the_readers_wall_time_at_every_door(
    settings: Settings, deps: WorkerDeps
) -> None:
    """list_events read "since 14:30" (no offset) as 14:30 UTC: in Shanghai eight hours late,
    and the last hour's events answered none."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from ambient.domain.users import UserCreate
    from ambient.storage.repositories import EventRepository
    from ambient.storage.users import UserRepository
    from tests.support.mcp_as import mcp_as

    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="li", timezone="Asia/Shanghai")
        )
        await EventRepository(session).add("watch.hit", user="li", payload={"n": 1})
        await session.commit()
    hour_ago = datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(hours=1)
    naive = hour_ago.replace(tzinfo=None).isoformat(timespec="seconds")
    async with mcp_as(deps, "li") as client:
        with_offset = await client.call_tool(
            "list_events", {"since": hour_ago.isoformat(timespec="seconds")}
        )
        wall = await client.call_tool("list_events", {"since": naive})
    assert with_offset.structured_content is not None and wall.structured_content is not None
    assert len(with_offset.structured_content["events"]) == 1
    assert len(wall.structured_content["events"]) == 1, wall.structured_content
    api_settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(create_app(api_settings)) as base, http_client(base) as http:
        headers = {"Authorization": f"Bearer {token}"}
        answer = await http.get("/events", params={"since": naive}, headers=headers)
    assert answer.status_code == 200 and len(answer.json()) == 1, answer.text


async def test_a_since_that_is_no_iso_time_is_refused_naming_since_at_every_door(
    settings: Settings, deps: WorkerDeps
) -> None:
    """list_events read since 12 (a bare number, or its digits) as 12 seconds after 1970 and
    answered every event; the schema says an ISO 8601 time. Now a number or any text that is
    no ISO time is refused naming since and the forms it takes, at MCP and the API."""
    from ambient.domain.users import UserCreate
    from ambient.storage.repositories import EventRepository
    from ambient.storage.users import UserRepository
    from tests.support.mcp_as import mcp_as

    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="mei", timezone="Asia/Shanghai")
        )
        await EventRepository(session).add("watch.hit", user="mei", payload={"n": 1})
        await session.commit()
    bad = [12, "12", 1_700_000_000, "1700000000", "yesterday", True]
    async with mcp_as(deps, "mei") as client:
        schema = next(t for t in (await client.list_tools()).tools if t.name == "list_events")
        refused = [await client.call_tool("list_events", {"since": value}) for value in bad]
        dated = await client.call_tool("list_events", {"since": "2020-01-01"})
    published = schema.input_schema["properties"]["since"]["anyOf"][0]
    assert published == {"type": "string", "format": "date-time"}
    for value, answer in zip(bad, refused, strict=True):
        text = answer.content[0].text  # type: ignore[union-attr]
        assert answer.is_error, (value, answer.structured_content)
        assert "since: must be an ISO 8601 time" in text and "+08:00" in text, (value, text)
    assert dated.structured_content is not None and len(dated.structured_content["events"]) == 1
    api_settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(create_app(api_settings)) as base, http_client(base) as http:
        headers = {"Authorization": f"Bearer {token}"}
        answers = [
            await http.get("/events", params={"since": value}, headers=headers)
            for value in ("12", "1700000000", "yesterday")
        ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"][0]
        assert detail["loc"] == ["query", "since"], detail
        assert "must be an ISO 8601 time" in detail["msg"], detail


async def test_a_time_at_the_edge_of_the_years_is_refused_naming_it_at_every_door(
    settings: Settings, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A time on the first or last day of the years 1 to 9999 left them once placed in the
    caller's zone or read in UTC: list_events and analyze_logs answered no more than "Error
    executing tool …" (an OverflowError deep in the read), with no argument named for the
    model to mend. Now each is refused naming its argument, and nothing is read."""
    from ambient.domain.users import UserCreate
    from ambient.storage.users import UserRepository
    from tests.support.mcp_as import mcp_as

    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="mei", timezone="Asia/Shanghai")
        )
        await session.commit()
    logs = tmp_path / "app.log"
    logs.write_text("2026-12-01T08:00:00Z ERROR boom\n", encoding="utf-8")
    edges = ["0001-01-01T00:00:00", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-05:00"]
    async with mcp_as(deps, "mei") as client:
        listed = [await client.call_tool("list_events", {"since": edge}) for edge in edges]
        analysed = [
            await client.call_tool(
                "analyze_logs",
                {
                    "log_source": {"type": "file", "path": str(logs)},
                    "start": "2026-12-01T00:00:00Z",
                    "end": edge,
                },
            )
            for edge in edges
        ]
    for field, answers in (("since", listed), ("end", analysed)):
        for answer in answers:
            text = answer.content[0].text  # type: ignore[union-attr]
            assert answer.is_error, answer.structured_content
            assert f"{field}: must be a time from 0001-01-02 to 9999-12-30" in text, text
    api_settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(create_app(api_settings)) as base, http_client(base) as http:
        headers = {"Authorization": f"Bearer {token}"}
        answer = await http.get("/events", params={"since": edges[1]}, headers=headers)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["query", "since"], detail
    assert detail["msg"].endswith("must be a time from 0001-01-02 to 9999-12-30"), detail


async def test_the_cli_prints_an_inbox_messages_link_whole(
    settings: Settings, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ambient inbox` folded a share link over 4-7 lines of its table, in a pipe and on a
    terminal 160 columns wide: it could be neither clicked nor copied. A pipe gets a line a
    message; a terminal gets each link on a line of its own below the table."""
    from ambient.commands import events as cli_events
    from ambient.domain.users import UserCreate
    from ambient.storage.repositories import InboxRepository
    from ambient.storage.users import UserRepository

    link = "http://127.0.0.1:8000/share/" + "t0k3n" * 30
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="lin"))
        await InboxRepository(session).add("lin", Message(title="Briefing", body="b", link=link))
        await session.commit()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir), "COLUMNS": "160"}
    piped = await asyncio.to_thread(CliRunner().invoke, app, ["inbox", "--user", "lin"], env=env)
    assert piped.exit_code == 0, piped.output
    [line] = piped.stdout.splitlines()
    assert line.split("\t")[-1] == link, piped.stdout
    # A cell holding line breaks and tabs (a receiver's error body) stays on its row's line.
    async with deps.db.session() as session:
        said = Message(title="Failed:\n\tsee\r\nbelow", body="b")
        await InboxRepository(session).add("lin", said)
        await session.commit()
    both = await asyncio.to_thread(CliRunner().invoke, app, ["inbox", "--user", "lin"], env=env)
    rows = both.stdout.splitlines()
    assert len(rows) == 2 and "Failed: see below" in rows[0], both.stdout
    assert all(len(row.split("\t")) == 6 for row in rows), rows
    on_a_terminal = Console(file=io.StringIO(), force_terminal=True, width=160)
    monkeypatch.setattr(cli_events, "terminal", lambda: on_a_terminal)
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["inbox", "--user", "lin"], env=env)
    assert shown.exit_code == 0, shown.output
    printed = on_a_terminal.file.getvalue()  # type: ignore[attr-defined]
    assert any(row.endswith(f": {link}") for row in printed.splitlines()), printed
