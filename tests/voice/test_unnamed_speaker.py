"""A call naming no speaker on the speaker of an owner who set a voiceprint id: the owner
expects voices told apart there, so it reads as the owner and acts for nobody; a xiaozhi.me
接入点's call (its broker names the device, never a voice) is the owner's as before."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.settings import Settings
from ambient.storage.users import UserRepository
from mcp_server.voice_sentences import (
    TEMPORAL_DOWN_EN,
    UNKNOWN_SPEAKER_EN,
    UNMATCHED_ACTS_EN,
    UNNAMED_ACTS,
    UNNAMED_ACTS_EN,
)
from tests.conftest import running_worker, unique
from tests.support.waits import eventually
from tests.voice.support import (
    UNREACHED_EN,
    register,
    say,
    voice_api,
    voice_client,
    worker_state,
)
from tests.voice.test_voice_briefing_context import ZONES
from tests.voice.test_voice_language import _prepared, _user

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
# What recent_errors says to an English speaker (the tests' Temporal is unreachable).
NO_ERRORS_EN = f"No errors recorded in the last 24 hours{UNREACHED_EN}"
# Tools that act, as 小智 calls them (the task or fix named need not exist: who may act is
# decided first). greet acts too: it spends the day's briefing.
ACTING = (
    ("pause_task", {"name": "nightly"}),
    ("resume_task", {"name": "nightly"}),
    ("approve_remediation", {"which": "payments"}),
    ("refuse_remediation", {"which": "payments"}),
    ("greet", {}),
)
# What each says once past who may act: this API has no Temporal to reach (no other refusal).
ACTED = [TEMPORAL_DOWN_EN] * len(ACTING)


async def _said(
    http: httpx.AsyncClient,
    owner: dict[str, str],
    speaker: str | None,
    tool: str = "recent_errors",
    device: str | None = None,
    **args: str,
) -> str:
    """What the owner's speaker says to ``tool`` over /mcp/voice (the owner's token), with the
    voiceprint name the model passed as ``speaker`` and the device a broker names, if any."""
    arguments = args if speaker is None else {**args, "speaker": speaker}
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if device is not None:
        params["clientId"] = device
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    called = await http.post("/mcp/voice", json=message, headers={**ACCEPT, **owner})
    assert called.status_code == 200, called.text
    text: str = called.json()["result"]["content"][0]["text"]
    return text


async def test_no_speaker_named_reads_but_may_not_act_for_an_owner_with_a_voiceprint_id(
    settings: Settings,
) -> None:
    """xiaozhi-server with voiceprint on, the owner enrolled by a voiceprint id: a voice it did
    not match, for which the model left ``speaker`` out (as its description asks), got the
    owner's answers, approve and pause included."""
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, "hush-owner")
        await http.patch("/users/me", json={"language": "en"}, headers=owner)
        # Before a voiceprint id: a call naming nobody is the owner's, and acts.
        before = [await _said(http, owner, None, tool, **args) for tool, args in ACTING]
        assert before == ACTED, before

        enrolled = await http.patch("/users/me", json={"voiceprint_id": "vp-hush"}, headers=owner)
        assert enrolled.status_code == 200, enrolled.text
        for speaker in (None, "null", "小智"):
            acted = [await _said(http, owner, speaker, tool, **args) for tool, args in ACTING]
            assert acted == [UNNAMED_ACTS_EN] * len(ACTING), (speaker, acted)
            # What only reads is still the owner's (their errors, in their language).
            assert await _said(http, owner, speaker) == NO_ERRORS_EN
        # The owner's voice, named by its voiceprint id, acts as before.
        named = [await _said(http, owner, "vp-hush", tool, **args) for tool, args in ACTING]
        assert named == ACTED, named
        # A xiaozhi.me 接入点's call names its device and no voice: the owner's, as before.
        broker = [
            await _said(http, owner, None, tool, device="xz-client-1", **args)
            for tool, args in ACTING
        ]
        assert broker == ACTED, broker

        # Said in Chinese to an owner who speaks it.
        await http.patch("/users/me", json={"language": "zh"}, headers=owner)
        assert await _said(http, owner, None, "pause_task", name="nightly") == UNNAMED_ACTS


async def test_a_xiaozhi_me_call_is_the_owners_whatever_filler_the_model_writes(
    settings: Settings,
) -> None:
    """xiaozhi.me passes no voiceprint, so its model writes "主人", "owner", "未知" or "unknown"
    for the owner: with a voiceprint id set (for a self-hosted speaker), a call naming a device
    heard "I don't know your voice" for reads and acts alike, though no voiceprint was there to
    name anyone."""
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, unique("filler-owner"))
        await http.patch("/users/me", json={"language": "en"}, headers=owner)
        enrolled = await http.patch("/users/me", json={"voiceprint_id": "vp-fill"}, headers=owner)
        assert enrolled.status_code == 200, enrolled.text
        for filler in ("主人", "owner", "未知", "unknown"):
            acted = [
                await _said(http, owner, filler, tool, device="xz-client-2", **args)
                for tool, args in ACTING
            ]
            assert acted == ACTED, (filler, acted)
            assert await _said(http, owner, filler, device="xz-client-2") == NO_ERRORS_EN
            # Where voiceprints name voices (no device named), the filler is a stranger's.
            assert await _said(http, owner, filler) == UNKNOWN_SPEAKER_EN, filler


async def test_a_xiaozhi_me_call_is_the_owners_though_their_device_answers_a_colleague(
    settings: Settings,
) -> None:
    """No voiceprint id, and a colleague allowed the owner's speaker: the model's filler on a
    self-hosted call may be a voice xiaozhi-server did not match (read, not act); through
    xiaozhi.me (a device named, no voiceprint there) it is the owner's, as with an id set."""
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, unique("filler-den"))
        lin = await register(http, settings, unique("filler-lin"))
        await http.patch("/users/me", json={"language": "en"}, headers=owner)
        mac = "aa:bb:cc:00:11:22"
        added = await http.post("/xiaozhi/devices", json={"device_id": mac}, headers=owner)
        assert added.status_code == 201, added.text
        allowed = await http.post(f"/xiaozhi/devices/{mac}/allow", headers=lin)
        assert allowed.status_code == 200, allowed.text
        for filler in ("主人", "未知"):
            acted = [
                await _said(http, owner, filler, tool, device="xz-client-3", **args)
                for tool, args in ACTING
            ]
            assert acted == ACTED, (filler, acted)
            # Not through xiaozhi.me: no one can tell, so it may read but not act.
            assert await _said(http, owner, filler, "pause_task", name="n") == UNMATCHED_ACTS_EN


async def test_a_name_said_on_a_xiaozhi_me_call_is_never_another_user(
    settings: Settings,
) -> None:
    """xiaozhi.me passes no voiceprint: the ``speaker`` there is what the model wrote. Anyone
    near the owner's speaker who said "我是 lin" was answered as lin (lin had allowed one of
    the owner's devices), with lin's data and lin's name on what they approved; and the owner
    whose spoken name the model wrote was refused as a stranger."""
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, unique("named-den"))
        lin_name = unique("named-lin")
        lin = await register(http, settings, lin_name)
        await http.patch("/users/me", json={"language": "en"}, headers=owner)
        mac = "aa:bb:cc:00:11:33"
        added = await http.post("/xiaozhi/devices", json={"device_id": mac}, headers=owner)
        assert added.status_code == 201, added.text
        allowed = await http.post(f"/xiaozhi/devices/{mac}/allow", headers=lin)
        assert allowed.status_code == 200, allowed.text
        for named in (lin_name, "小明"):
            acted = [
                await _said(http, owner, named, tool, device="xz-client-4", **args)
                for tool, args in ACTING
            ]
            assert acted == ACTED, (named, acted)  # the owner's, in the owner's English
        # Where voiceprints name voices (no device named), lin is lin, a stranger a stranger.
        assert await _said(http, owner, "小明") == UNKNOWN_SPEAKER_EN


async def test_an_unnamed_greeting_leaves_the_days_briefing_for_the_owners_named_one(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """greet spends the day's briefing: a voice the voiceprint did not name is refused it, and
    the owner, named after, still hears it."""
    now = datetime.now(UTC)
    zone = next(z for z in ZONES if 1 <= now.astimezone(ZoneInfo(z)).hour <= 21)
    owner = unique("greet-hush")
    await _user(deps, owner, Language.EN)
    async with deps.db.session() as session:
        row = await UserRepository(session).get(owner)
        assert row is not None
        row.voiceprint_id = f"vp-{owner}"
        await session.commit()
    day = {"prepare_at": "00:00", "window_start": "00:00", "window_end": "23:59"}
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        service = state.briefings
        await service.create(owner, {**day, "timezone": zone, "language": "en"})
        try:
            await eventually(lambda: _prepared(service, owner), f"{owner}'s briefing prepared")
            async with voice_client(state, owner) as client:
                unnamed = await say(client, "greet")
                assert unnamed == UNNAMED_ACTS_EN, unnamed
                assert (await service.status(owner)).given_at is None
                briefed = await say(client, "greet", speaker=f"vp-{owner}")
                again = await say(client, "greet", speaker=f"vp-{owner}")
            assert (await service.status(owner)).given_at is not None
        finally:
            await service.delete(owner)
    assert not briefed.startswith("Hello! I gave today's briefing"), briefed
    assert re.fullmatch(
        r"Hello! I gave today's briefing at (1?\d|2[0-3]):\d\d; I won't repeat it\.", again
    ), again
