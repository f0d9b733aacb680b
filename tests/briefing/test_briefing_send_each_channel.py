"""A briefing sent on request says every channel it asked for, a channel that failed before
its row was written too; a channel quiet hours held back is no failure of the CLI; a send
with the longest request id is read back, its targets redacted (MCP, API, CLI, page, on the
dev server with a webhook served on loopback)."""

from __future__ import annotations

import asyncio
import functools
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import redact_target
from ambient.storage.users import UserRepository
from tests.briefing.test_briefing_send_lives import _regenerated
from tests.briefing.test_briefing_send_told import _cli, _user
from tests.briefing.test_briefing_surfaces import _all_day, _call, _zone_away_from_midnight
from tests.conftest import running_worker, unique
from tests.notify.standins import WEBHOOK_SECRET, PushEndpoints
from tests.notify.test_delivery import _quiet_now
from tests.support.api_worker import reaching, signed_in_api
from tests.support.mcp_as import mcp_as
from tests.support.pages import signed_in
from tests.support.servers import serve
from tests.support.waits import eventually


async def test_every_channel_asked_for_is_said_and_quiet_hours_are_no_failure(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A push config entry that cannot be read (no row: it fails before any send) was dropped
    once the live webhook had its row; quiet hours holding the only channel back made the CLI
    exit 1 and the zh page say "suppressed"; a 128-character request id made a key too long to
    read back: the answer was the workflow's, its webhook's token in its target and words."""
    broken, quiet = unique("sx"), unique("sq")
    bots = PushEndpoints()
    async with serve(bots.app()) as base:
        live = f"{base}/hook"
        shown = redact_target("webhook", live)  # a webhook's path may be its token
        deps.settings = deps.settings.model_copy(
            update={
                "webhook_signing_secret": SecretStr(WEBHOOK_SECRET),
                "fetch_allow_cidrs": ["127.0.0.1/32"],
            }
        )
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        await _user(deps, broken, [live])
        quiet_token = await _user(deps, quiet, [f"{live}?token=s3cret"])
        quiet_shown = redact_target("webhook", f"{live}?token=s3cret")
        async with deps.db.session() as session:
            users = UserRepository(session)
            user = await users.get(broken)
            assert user is not None
            # Saved before a rule: no type, so no target to send to (read back as a problem).
            user.push_config = {
                **user.push_config,
                "channels": [
                    *user.push_config["channels"],
                    {"target": "https://example.invalid/x"},
                ],
            }
            held = _quiet_now("Asia/Shanghai")  # a user's zone unless set
            held_back = await users.get(quiet)
            assert held_back is not None
            held_back.push_config = {**held_back.push_config, "quiet_hours": held}
            await session.commit()
        async with running_worker(dev_env.client, deps) as worker:
            settings = reaching(deps, dev_env.client, worker)
            async with (
                mcp_as(deps, broken, temporal=dev_env.client, settings=settings) as client,
                mcp_as(deps, quiet, temporal=dev_env.client, settings=settings) as quiet_client,
                signed_in_api(settings, quiet_token) as http,
                signed_in(settings, quiet_token, referer="/app/briefings") as page,
            ):
                for each in (client, quiet_client):
                    await _call(
                        each, "create_daily_briefing", **_all_day(_zone_away_from_midnight())
                    )
                    await eventually(functools.partial(_regenerated, each), "prepared")
                longest = await http.post("/briefings/send", json={"request_id": "r" * 128})
                sent = await _call(client, "send_briefing", request_id="x")
                by_cli = await asyncio.to_thread(_cli, settings, quiet)
                by_page = await page.post(
                    "/app/briefings/action",
                    data={"action": "send", "request_id": "p"},
                    headers={"accept-language": "zh"},
                )
    assert longest.status_code == 200, longest.text
    assert "s3cret" not in longest.text
    said = sorted((d["channel"], d["target"], d["status"]) for d in longest.json()["deliveries"])
    assert said == [("inbox", "", "sent"), ("webhook", quiet_shown, "suppressed")]
    outcomes = [(d["channel"], d["status"]) for d in sent["deliveries"]]
    assert sorted(outcomes) == [("inbox", "sent"), ("push_config", "failed"), ("webhook", "sent")]
    assert sent["said"].startswith(
        f"Sent to webhook {shown}. Your inbox has it. Not sent to push config: "
    )
    assert sent["said"].endswith("Correct it in your push config, then send again.")
    assert by_cli.exit_code == 0, by_cli.output
    held_said = f"Held back from webhook {quiet_shown} by your quiet hours: send again after them."
    assert held_said in " ".join(by_cli.output.split())
    assert parse_qs(urlsplit(by_page.headers["location"]).query)["msg"] == [
        f"没有发到你的任何推送渠道。收件箱里有一份。"
        f"免打扰时段内没有发送到 webhook {quiet_shown}：请在免打扰时段之后再发送。"
    ]
    # The broken user's send, to the live webhook; quiet hours held the others back.
    assert [name for name, _ in bots.received] == ["webhook"]
