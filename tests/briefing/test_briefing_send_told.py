"""A briefing sent on request says what each channel did: one on a closed loopback port fails
(its retries spent), one served on loopback takes it; over MCP, the API and the CLI, on the dev
server (real time: the dead channel's five tries take ~30 s, the three doors' sends at once)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from ambient.cli import app as cli
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import redact_target
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage.users import UserRepository
from tests.briefing.test_briefing_send_lives import _regenerated
from tests.briefing.test_briefing_surfaces import _all_day, _call, _zone_away_from_midnight
from tests.conftest import running_worker, unique
from tests.notify.standins import WEBHOOK_SECRET, PushEndpoints
from tests.support.api_worker import reaching, signed_in_api
from tests.support.mcp_as import mcp_as
from tests.support.pages import signed_in
from tests.support.servers import free_port, serve
from tests.support.waits import eventually

# httpx's at a closed port, with where (never the URL: a robot's key is in its query).
REFUSED = "could not connect to 127.0.0.1:{port} (All connection attempts failed)"
CHECK = "Check that it is up and reachable, then send again."


async def test_a_send_says_which_channels_took_it_and_which_failed_and_why(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The dead webhook's retries spent, the send answered `{"deliveries": []}` with no error
    and the CLI printed nothing and exited 0; the inbox copy (sent) and the live webhook's
    delivery went unsaid too. Now every door says each channel's outcome, the failure's why
    and what to do, and the CLI exits 1 when no channel asked for took it."""
    dead_only, both = unique("sd"), unique("sb")
    port = free_port()
    dead = f"http://127.0.0.1:{port}/hook"
    dead_shown = redact_target("webhook", dead)  # a webhook's path may be its token
    refused = REFUSED.format(port=port)
    bots = PushEndpoints()
    async with serve(bots.app()) as base:
        live = f"{base}/hook?token=t0p-secret"  # a query is a secret's place: never shown
        deps.settings = deps.settings.model_copy(
            update={
                "webhook_signing_secret": SecretStr(WEBHOOK_SECRET),
                "fetch_allow_cidrs": ["127.0.0.1/32"],
            }
        )
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        token = await _user(deps, dead_only, [dead])
        both_token = await _user(deps, both, [dead, live])
        async with running_worker(dev_env.client, deps) as worker:
            settings = reaching(deps, dev_env.client, worker)
            async with (
                mcp_as(deps, dead_only, temporal=dev_env.client, settings=settings) as alone,
                mcp_as(deps, both, temporal=dev_env.client, settings=settings) as two,
                signed_in_api(settings, token) as http,
                signed_in(settings, both_token, referer="/app/briefings") as page,
            ):
                for client in (alone, two):
                    config = _all_day(_zone_away_from_midnight())
                    await _call(client, "create_daily_briefing", **config)
                    await eventually(functools.partial(_regenerated, client), "prepared")
                # Each door's send at once: the dead channel's retries are waited out once.
                by_mcp, by_api, by_cli, by_mcp_both, by_page = await asyncio.gather(
                    _call(alone, "send_briefing", request_id="m"),
                    # The longest request id: its key was too long to read back by.
                    http.post("/briefings/send", json={"request_id": "a" * 128}),
                    asyncio.to_thread(_cli, settings, dead_only),
                    _call(two, "send_briefing", request_id="m"),
                    page.post(
                        "/app/briefings/action",
                        data={"action": "send", "request_id": "p"},
                        headers={"accept-language": "zh"},
                    ),
                )
                # Two CliRunners at once share sys.stdout: the second after the first, its
                # user's dead channel dropped (its retries waited out once is enough).
                await _user(deps, both, [live])
                by_cli_live = await asyncio.to_thread(_cli, settings, both)
    failed = {
        "channel": "webhook",
        "target": dead_shown,
        "status": "failed",
        "provider_id": None,
        "error": f"transient: {refused}",
    }
    inbox = {"channel": "inbox", "status": "sent", "error": None}
    not_sent = f"Not sent to webhook {dead_shown}: {refused}. {CHECK}"
    assert by_api.status_code == 200, by_api.text
    for answer in (by_mcp, by_api.json()):
        first, *rest = answer["deliveries"]
        assert (_part(first, inbox), rest) == (inbox, [failed])
        assert answer["said"] == (
            f"Not sent to any of your push channels. Your inbox has it. {not_sent}"
        )
    shown_live = redact_target("webhook", live)
    outcomes = [(d["channel"], d["target"], d["status"]) for d in by_mcp_both["deliveries"]]
    assert sorted(outcomes[1:]) == [
        ("webhook", dead_shown, "failed"),
        ("webhook", shown_live, "sent"),
    ]
    assert outcomes[0][::2] == ("inbox", "sent")
    assert by_mcp_both["said"] == f"Sent to webhook {shown_live}. Your inbox has it. {not_sent}"
    assert by_page.status_code == 303, by_page.text
    assert parse_qs(urlsplit(by_page.headers["location"]).query)["msg"] == [
        f"已发送到 webhook {shown_live}。收件箱里有一份。未发送到 webhook {dead_shown}："
        f"{refused}。请确认它在运行且能连通，然后再发送一次。"
    ]
    assert "t0p-secret" not in str(by_mcp_both) + by_cli_live.output
    assert by_cli.exit_code == 1, by_cli.output
    assert f"webhook {dead_shown}: failed (transient: {refused})" in by_cli.output
    assert "Not sent to any of your push channels" in " ".join(by_cli.output.split())
    assert by_cli_live.exit_code == 0, by_cli_live.output
    assert f"webhook {shown_live}: sent" in by_cli_live.output
    # The MCP's, the page's and the CLI's sends of the user who has it; never twice.
    assert [name for name, _ in bots.received] == ["webhook"] * 3


async def _user(deps: WorkerDeps, name: str, hooks: list[str]) -> str:
    """User ``name`` (created unless there) pushed to ``hooks``; their token when created."""
    channels = [{"type": "webhook", "target": hook, "kinds": ["briefing"]} for hook in hooks]
    token = ""
    async with deps.db.session() as session:
        repo = UserRepository(session)
        user = await repo.get(name)
        if user is None:
            user, token = await repo.create(UserCreate(name=name))
        await repo.set_push_config(user, {"channels": channels})
        await session.commit()
    return token


def _cli(settings: Settings, user: str) -> Result:
    env = {
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": settings.temporal_address,
        "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "AMBIENT_USER": user,
    }
    return CliRunner().invoke(cli, ["briefing", "send"], env=env)


def _part(delivery: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    return {name: delivery[name] for name in like}
