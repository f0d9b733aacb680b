"""An argument asked for again is said in words, never by its code name: every argument the
voice profile publishes, and a field no tool takes, over /mcp/voice as xiaozhi-server calls it."""

from __future__ import annotations

import re
from typing import Any

from ambient.settings import Settings
from mcp_server.voice_sentences import ARGUMENT_WORDS, SAY_AGAIN
from tests.support.servers import HANG
from tests.voice.support import assert_speakable, register, voice_api

LATIN = re.compile(r"[A-Za-z]")


async def test_every_argument_of_every_voice_tool_is_asked_again_in_words(
    settings: Settings,
) -> None:
    """An argument with no words was spoken as its code name ("没听清watch_name，请再说一次。"),
    and so was a field the model made up (a NUL in ``watch_name`` beside ``name``). Each
    argument the server publishes has its words; a field no tool takes is no word at all."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    said: dict[tuple[str, str], str] = {}
    async with voice_api(settings) as (base, http):
        me = await register(http, settings, "lan")
        async with (
            httpx2.AsyncClient(timeout=HANG, headers=me, trust_env=False) as client_http,
            Client(streamable_http_client(f"{base}/mcp/voice", http_client=client_http)) as client,
        ):

            async def text(tool: str, arguments: dict[str, Any]) -> str:
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, result.content
                answer = getattr(result.content[0], "text", "")
                assert_speakable(answer)
                return answer

            tools = (await client.list_tools()).tools
            for tool in tools:
                for argument in tool.input_schema.get("properties", {}):
                    # A NUL no database stores: refused before the tool runs, naming it.
                    said[tool.name, argument] = await text(tool.name, {argument: "a\x00b"})
            # A field the tool does not take is never read: the call is answered without it
            # (a status was answered "没听清时间范围" for another tool's argument, ``hours``).
            plain = await text("task_status", {"name": "shop"})
            extras = [
                await text("task_status", {"name": "shop", **extra})
                for extra in ({"watch_name": "a\x00b"}, {"x": {"y": "\x00"}}, {"hours": "\x00"})
            ]
    assert len(said) >= len(tools) > 0
    for (tool, argument), answer in said.items():
        assert argument in ARGUMENT_WORDS, f"{tool}'s {argument!r} has no words"
        assert answer == f"没听清{ARGUMENT_WORDS[argument][0]}，请再说一次。", (tool, answer)
        assert not LATIN.search(answer), (tool, argument, answer)
    assert "没听清" not in plain and extras == [plain] * 3, (plain, extras)


async def test_a_field_with_no_words_is_heard_again_as_the_whole_call(settings: Settings) -> None:
    """Whatever a refused field is named (no argument of the tool's: a nested field, a name a
    later validation reports), its code name is never said: the call is heard again."""
    from mcp_server.voice import VoiceServer, build_voice_server

    server = build_voice_server(settings)
    assert isinstance(server, VoiceServer)
    for fields in (["watch_name"], ["urls.0"], ["arguments"]):
        result = await server._say_again(None, fields, {})
        assert getattr(result.content[0], "text", "") == SAY_AGAIN[0], fields
    both = await server._say_again(None, ["watch_name", "name"], {})
    assert getattr(both.content[0], "text", "") == "没听清任务名，请再说一次。"
