import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from mcp import Client
from typer.testing import CliRunner

from ambient.cli import app
from ambient.deps import WorkerDeps
from ambient.domain.notify import redact_target
from ambient.domain.users import Role, UserCreate
from ambient.settings import Settings
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.mcp_as import mcp_as
from tests.support.servers import free_port, http_client, serve


async def test_set_push_config_tool_saves_and_rejects_bad_input(deps: WorkerDeps) -> None:
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    async with _tools(deps, "alice") as client:
        saved = await client.call_tool(
            "set_push_config",
            {
                "channels": [
                    {"type": "email", "target": "alice@example.com", "kinds": ["briefing"]},
                    {"type": "wecom", "target": "wecom-robot-key"},
                ],
                "quiet_hours": {"start": "22:00", "end": "07:00"},
            },
        )
        assert not saved.is_error
        bad = await client.call_tool(
            "set_push_config", {"channels": [{"type": "pager", "target": "x"}]}
        )
        missing = await client.call_tool("set_push_config", {"channels": [{"type": "webhook"}]})
        current = await client.call_tool("get_push_config", {})
    assert bad.is_error and "push config not changed" in bad.content[0].text  # type: ignore[union-attr]
    assert "channels.0.type" in bad.content[0].text  # type: ignore[union-attr]
    assert missing.is_error and "needs a target" in missing.content[0].text  # type: ignore[union-attr]
    # Named as every refusal is (it read "channels: channels[0]: a webhook channel ...").
    assert "channels.0.target: a webhook channel needs a target" in missing.content[0].text  # type: ignore[union-attr]
    assert current.structured_content is not None
    assert [c["type"] for c in current.structured_content["channels"]] == ["email", "wecom"]
    assert current.structured_content["quiet_hours"]["start"] == "22:00"


@pytest_asyncio.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        token = (await http.post("/users", json={"name": "bob"}, headers=admin)).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


async def test_push_config_api_and_cli(api: httpx.AsyncClient, settings: Settings) -> None:
    bad = await api.put("/users/me/push", json={"channels": [{"type": "dingtalk"}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "channels"]
    ok = await api.put(
        "/users/me/push",
        json={"channels": [{"type": "inbox"}], "quiet_hours": {"start": "23:00", "end": "06:00"}},
    )
    assert ok.status_code == 200
    # The same target rules as sending, at entry: not someone else's inbox, not a private URL.
    for channel in (
        {"type": "inbox", "target": "alice"},
        {"type": "webhook", "target": "http://10.1.2.3/hook"},
        {"type": "email", "target": "secret:not-mine"},
    ):
        refused = await api.put("/users/me/push", json={"channels": [channel]})
        assert refused.status_code == 422, (channel, refused.text)
        # Named down to the field, as a refusal of the target's form is.
        assert refused.json()["detail"][0]["loc"] == ["body", "channels", 0, "target"]
    assert (await api.get("/users/me/push")).json()["channels"][0]["kinds"] == [
        "briefing",
        "watch",
        "remediation",
    ]

    import asyncio

    runner = CliRunner()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
    done = await asyncio.to_thread(
        runner.invoke,
        app,
        [
            "user",
            "push",
            "bob",
            "--config",
            '{"channels": [{"type": "email", "target": "bob@example.com"}]}',
        ],
        env=env,
    )
    assert done.exit_code == 0, done.output
    assert (await api.get("/users/me/push")).json()["channels"][0]["target"] == "bob@example.com"
    refused = await asyncio.to_thread(
        runner.invoke,
        app,
        ["user", "push", "bob", "--config", '{"channels": [{"type": "sms", "kinds": ["nope"]}]}'],
        env=env,
    )
    assert refused.exit_code == 2 and "not changed" in refused.output
    # The operator's command keeps the target rules of every door: no private webhook saved.
    private = '{"channels": [{"type": "webhook", "target": "http://10.1.2.3/hook"}]}'
    refused = await asyncio.to_thread(
        runner.invoke, app, ["user", "push", "bob", "--config", private], env=env
    )
    assert refused.exit_code == 2 and "private address" in refused.output, refused.output
    assert (await api.get("/users/me/push")).json()["channels"][0]["target"] == "bob@example.com"


async def test_push_config_refuses_other_inboxes_foreign_secrets_and_private_webhooks(
    deps: WorkerDeps,
) -> None:
    from pydantic import SecretStr

    from ambient.clients.notify.registry import build_channels
    from ambient.setting_types import ServerSecret

    settings = deps.settings.model_copy(
        update={
            "secrets": {
                "ops-bot": SecretStr("admin-only-key"),
                "team-bot": ServerSecret(value=SecretStr("k"), users=["carol"]),
            }
        }
    )
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="carol"))
        await UserRepository(session).create(UserCreate(name="dave"))
        await UserRepository(session).create(UserCreate(name="erin", role=Role.ADMIN))
        await session.commit()
    state = AppState(
        settings=settings,
        db=deps.db,
        temporal=None,  # type: ignore[arg-type]
        channels=build_channels(settings, deps.db, deps.http),
        stdio_user="carol",
    )
    refused = {
        "inbox": ({"type": "inbox", "target": "dave"}, "your own inbox"),
        "secret": ({"type": "wecom", "target": "secret:ops-bot"}, "not available to carol"),
        # A name no secret has is refused in the same words: which names exist is not told.
        "undefined": ({"type": "wecom", "target": "secret:no-such"}, "not available to carol"),
        "private": ({"type": "webhook", "target": "http://10.0.0.1/hook"}, "private address"),
        "scheme": ({"type": "webhook", "target": "file:///etc/passwd"}, "only http and https"),
        "suffix": ({"type": "webhook", "target": "secret:team-bot?x=1"}, "exact name"),
        "email": ({"type": "email", "target": "not-an-address"}, "not an email address"),
        "phone": ({"type": "sms", "target": "12"}, "not a phone number"),
    }
    async with Client(build_server(settings, holder=StateHolder(state))) as client:
        answers = {
            name: await client.call_tool("set_push_config", {"channels": [channel]})
            for name, (channel, _) in refused.items()
        }
        many = await client.call_tool("set_push_config", {"channels": [{"type": "inbox"}] * 21})
        allowed = await client.call_tool(
            "set_push_config",
            {"channels": [{"type": "wecom", "target": "secret:team-bot"}, {"type": "inbox"}]},
        )
    for name, (_, why) in refused.items():
        text = answers[name].content[0].text  # type: ignore[union-attr]
        assert answers[name].is_error and "push config not changed" in text and why in text, name
    assert many.is_error and "at most 20" in many.content[0].text  # type: ignore[union-attr]
    assert not allowed.is_error
    # An admin may use every secret, so is told which name is none.
    as_admin = dataclasses.replace(state, stdio_user="erin")
    async with Client(build_server(settings, holder=StateHolder(as_admin))) as client:
        undefined = await client.call_tool(
            "set_push_config", {"channels": [{"type": "wecom", "target": "secret:no-such"}]}
        )
    assert "unknown secret 'no-such'" in undefined.content[0].text  # type: ignore[union-attr]


async def test_a_push_config_saved_before_a_rule_still_reads_back(deps: WorkerDeps) -> None:
    async with deps.db.session() as session:
        users = UserRepository(session)
        user, _ = await users.create(UserCreate(name="olga"))
        # Saved by an older version that did not check addresses.
        await users.set_push_config(
            user, {"channels": [{"channel": "email", "target": "not-an-address"}]}
        )
        await session.commit()
    async with _tools(deps, "olga") as client:
        current = await client.call_tool("get_push_config", {})
    assert not current.is_error
    assert current.structured_content is not None
    assert current.structured_content["channels"][0]["target"] == "not-an-address"


async def test_saving_channels_on_the_settings_page_keeps_the_quiet_hours(
    api: httpx.AsyncClient,
) -> None:
    quiet = {"start": "22:00", "end": "07:30", "include_remediation": False}
    saved = await api.put(
        "/users/me/push", json={"channels": [{"type": "inbox"}], "quiet_hours": quiet}
    )
    assert saved.status_code == 200
    token = api.headers.pop("Authorization").removeprefix("Bearer ")
    # The page edits channels only: it has no quiet hours to send back.
    page = await api.post(
        "/app/push",
        data={"type": "email", "target": "bob@example.com"},
        cookies={"ambient_token": token},
        headers={"referer": str(api.base_url.join("/app/settings"))},
    )
    assert page.status_code == 303 and "saved" in page.headers["location"]
    api.headers["Authorization"] = f"Bearer {token}"
    config = (await api.get("/users/me/push")).json()
    assert [c["target"] for c in config["channels"]] == ["bob@example.com"]
    assert config["quiet_hours"] == quiet


async def test_quiet_hours_that_start_when_they_end_are_refused_by_name(
    api: httpx.AsyncClient,
) -> None:
    # 00:00 to 00:00 reads as "all day" but covered no minute at all: pushes kept coming.
    refused = await api.put(
        "/users/me/push",
        json={"channels": [{"type": "inbox"}], "quiet_hours": {"start": "00:00", "end": "00:00"}},
    )
    assert refused.status_code == 422
    (problem,) = refused.json()["detail"]
    assert problem["loc"][:2] == ["body", "quiet_hours"] and "same time" in problem["msg"]
    assert (await api.get("/users/me/push")).json()["quiet_hours"] is None


async def test_saving_the_settings_page_unchanged_keeps_every_channels_kinds(
    api: httpx.AsyncClient,
) -> None:
    import re

    channels = [
        {"type": "inbox", "target": "", "kinds": ["system"]},
        {"type": "email", "target": "bob@example.com", "kinds": None},
        {"type": "inbox", "target": "", "kinds": ["watch", "system"]},
    ]
    saved = await api.put("/users/me/push", json={"channels": channels})
    assert saved.status_code == 200, saved.text
    token = api.headers.pop("Authorization").removeprefix("Bearer ")
    cookies = {"ambient_token": token}
    shown = await api.get("/app/settings", cookies=cookies)
    assert shown.status_code == 200, shown.text[:300]
    page = shown.text
    form = page[page.index('id="push"') : page.index("</form>", page.index('id="push"'))]
    # What a browser sends back for the form as the page shows it.
    types = re.findall(r'<option value="([a-z]+)" selected>', form)
    targets = re.findall(r'name="target" value="([^"]*)"', form)
    kinds = re.findall(r'name="kinds" value="([^"]+)"\s*checked', form)
    sent = await api.post(
        "/app/push",
        data={"type": [*types, ""], "target": targets, "kinds": kinds},
        cookies=cookies,
        headers={"referer": str(api.base_url.join("/app/settings"))},
    )
    assert sent.status_code == 303 and "saved" in sent.headers["location"]
    api.headers["Authorization"] = f"Bearer {token}"
    after = (await api.get("/users/me/push")).json()["channels"]
    every = ["briefing", "watch", "remediation", "system"]  # what no kinds (null) means
    assert [(c["type"], c["target"], c["kinds"] or every) for c in after] == [
        (c["type"], c["target"], c["kinds"] or every) for c in channels
    ]


async def test_an_email_or_sms_channel_with_no_address_to_use_is_refused_when_saved(
    deps: WorkerDeps,
) -> None:
    """{"type": "email"} without a target was saved for a user with no email in the profile,
    and every push then failed with "no email target for cleo: give one ... in the push config
    (set_push_config)". Without a target it needs an address to use: another channel of its
    type with one, or the profile's."""
    cleo, dana = unique("cleo"), unique("dana")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=cleo))
        await UserRepository(session).create(UserCreate(name=dana, email="dana@example.com"))
        await session.commit()
    async with _tools(deps, cleo) as client:
        refused = await client.call_tool("set_push_config", {"channels": [{"type": "email"}]})
        sms = await client.call_tool(
            "set_push_config", {"channels": [{"type": "inbox"}, {"type": "sms"}]}
        )
        paired = [{"type": "email"}, {"type": "email", "target": "c@example.com"}]
        with_address = await client.call_tool("set_push_config", {"channels": paired})
    async with _tools(deps, dana) as client:
        from_profile = await client.call_tool("set_push_config", {"channels": [{"type": "email"}]})
    said = getattr(refused.content[0], "text", "")
    assert refused.is_error and "channels[0]: an email channel without a target" in said, said
    assert "your profile has no email" in said
    assert sms.is_error and "channels[1]: an sms channel" in getattr(sms.content[0], "text", "")
    assert not with_address.is_error and not from_profile.is_error


async def test_the_push_tools_refuse_an_unregistered_user_as_every_tool_does(
    deps: WorkerDeps,
) -> None:
    # They said "Your user is not registered: POST /users or `ambient user create`." while
    # every other tool said an admin registers users (POST /users is an admin's).
    async with _tools(deps, "ghost") as client:
        said = [
            await client.call_tool("get_push_config", {}),
            await client.call_tool("set_push_config", {"channels": []}),
            await client.call_tool("whoami", {}),
        ]
    # "Error executing tool NAME: " and then the refusal.
    texts = {getattr(result.content[0], "text", "").split(": ", 1)[1] for result in said}
    assert all(result.is_error for result in said)
    assert texts == {"no user 'ghost': an admin registers it (ambient user create ghost)"}, texts


async def test_the_quiet_hours_the_assistant_reads_say_held_pushes_are_not_sent_later(
    deps: WorkerDeps,
) -> None:
    # During quiet hours pushes are recorded as suppressed and never sent afterwards, and
    # remediation still goes out unless include_remediation (docs/notifications.md): a tool
    # saying "pushes wait" lets the assistant promise the night's alerts in the morning.
    async with _tools(deps, "alice") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    quiet = str(tools["set_push_config"].input_schema["properties"]["quiet_hours"])
    assert "wait" not in quiet
    assert "not sent later" in quiet and "remediation" in quiet


def _tools(deps: WorkerDeps, user: str) -> Client:
    """An MCP client of the full server, acting as ``user`` (as over stdio)."""
    return mcp_as(deps, user)


async def test_the_push_schema_says_the_kinds_a_channel_gets_when_omitted(
    api: httpx.AsyncClient, deps: WorkerDeps
) -> None:
    # The body's channels were read as plain targets, documented "all when omitted", while a
    # channel saved without kinds gets briefing, watch and remediation, not system.
    schemas = (await api.get("/openapi.json")).json()["components"]["schemas"]
    body = schemas["PushConfigSent"]["properties"]["channels"]["items"]["$ref"].split("/")[-1]
    said = schemas[body]["properties"]["kinds"]["description"]
    assert "briefing, watch, remediation when omitted" in said, said
    sent = await api.put("/users/me/push", json={"channels": [{"type": "inbox"}]})
    assert sent.json()["channels"][0]["kinds"] == ["briefing", "watch", "remediation"], sent.text
    async with _tools(deps, unique("kinds")) as client:
        tools = (await client.list_tools()).tools
        tool = next(t for t in tools if t.name == "set_push_config")
    channel = tool.input_schema["properties"]["channels"]["items"]["$ref"].split("/")[-1]
    said = tool.input_schema["$defs"][channel]["properties"]["kinds"]["description"]
    assert "briefing, watch, remediation when omitted" in said, said


DISCORD_TOKEN = "Zq9SECRETdiscordTOKEN0123456789abcdefXYZ"
SLACK_SECRET = "Xk9sPq2LmN8vRt4WzY6bQ1cD"


async def test_an_admin_reads_a_members_push_targets_without_their_tokens(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    # Apprise reads Discord's and Slack's own https webhook URLs as it reads discord:// and
    # slack://; the token is in the path in both forms, as it is in many a webhook's.
    channels = [
        {"type": "apprise", "target": f"discord://123456789012345678/{DISCORD_TOKEN}"},
        {
            "type": "apprise",
            "target": f"https://discord.com/api/webhooks/123456789012345678/{DISCORD_TOKEN}",
        },
        {"type": "apprise", "target": f"https://hooks.slack.com/services/T0A/B0F/{SLACK_SECRET}"},
        {"type": "webhook", "target": f"https://hooks.slack.com/services/T0A/B0F/{SLACK_SECRET}"},
    ]
    saved = await api.put("/users/me/push", json={"channels": channels})
    assert saved.status_code == 200, saved.text
    admin = await admin_headers(settings)
    shown = (await api.get("/users/bob", headers=admin)).json()["push_config"]["channels"]
    assert [c["target"].partition("#")[0] for c in shown] == [
        "discord://…",
        "https://discord.com/…",
        "https://hooks.slack.com/…",
        "https://hooks.slack.com/…",
    ]
    # Each ends with its URL's fingerprint: two webhooks to one host are told apart.
    assert [c["target"] for c in shown] == [redact_target(c["type"], c["target"]) for c in channels]
    listed = (await api.get("/users", headers=admin)).text
    assert DISCORD_TOKEN not in listed and SLACK_SECRET not in listed
    # The owner's own push config keeps them whole.
    assert (await api.get("/users/me/push")).json()["channels"] == [
        {**c, "kinds": ["briefing", "watch", "remediation"]} for c in channels
    ]
