"""A call naming no speaker on the speaker of an owner who set a voiceprint id: the owner
expects voices told apart there, so it reads as the owner and acts for nobody; a xiaozhi.me
接入点's call (its broker names the device, never a voice) is the owner's as before."""

from __future__ import annotations

from typing import Any

import httpx

from ambient.settings import Settings
from mcp_server.voice_sentences import UNNAMED_ACTS, UNNAMED_ACTS_EN
from tests.voice.support import register, voice_api

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
NO_ERRORS_EN = "No errors in the last 24 hours."
# Tools that act, as 小智 calls them (the task or fix named need not exist: who may act is
# decided first).
ACTING = (("pause_task", {"name": "nightly"}), ("approve_remediation", {"which": "payments"}))


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
        assert UNNAMED_ACTS_EN not in before, before

        enrolled = await http.patch("/users/me", json={"voiceprint_id": "vp-hush"}, headers=owner)
        assert enrolled.status_code == 200, enrolled.text
        for speaker in (None, "null", "小智"):
            acted = [await _said(http, owner, speaker, tool, **args) for tool, args in ACTING]
            assert acted == [UNNAMED_ACTS_EN] * len(ACTING), (speaker, acted)
            # What only reads is still the owner's (their errors, in their language).
            assert await _said(http, owner, speaker) == NO_ERRORS_EN
        # The owner's voice, named by its voiceprint id, acts as before.
        named = [await _said(http, owner, "vp-hush", tool, **args) for tool, args in ACTING]
        assert named == before
        # A xiaozhi.me 接入点's call names its device and no voice: the owner's, as before.
        broker = [
            await _said(http, owner, None, tool, device="xz-client-1", **args)
            for tool, args in ACTING
        ]
        assert UNNAMED_ACTS_EN not in broker, broker

        # Said in Chinese to an owner who speaks it.
        await http.patch("/users/me", json={"language": "zh"}, headers=owner)
        assert await _said(http, owner, None, "pause_task", name="nightly") == UNNAMED_ACTS
