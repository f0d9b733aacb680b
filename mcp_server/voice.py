"""The voice profile: a handful of tools a 小智 speaker's model can use, answered in speech, on
their own MCP server (the tools: ``voice_needs``, ``voice_tasks``,
``voice_approvals``, ``voice_errors``, ``voice_clusters``).

Same service layer and rights as the full server (`mcp_server.server`), but every answer is
one or two spoken sentences in ``content[0].text``: no Markdown, ids or URLs, at most
``MAX_SPOKEN`` characters. A refusal or failure is a normal answer that says what happened,
because a voice client drops the text of an ``isError`` result. No LLM on any path.
"""

from __future__ import annotations

import contextlib
import logging
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from ambient.domain.configs import unstorable_at
from ambient.settings import Settings
from ambient.wiring import AppState, StateHolder
from mcp_server import voice_sentences as sentences
from mcp_server.auth import app_state, current_user
from mcp_server.server import ListedServer, build_server, reads_only
from mcp_server.tools.hints import DECIDE, LOOK, READ, RECORD, hints
from mcp_server.voice_answer import (
    CALL_BUDGET,
    approvals_here,
    calling_device,
    device,
    heard,
    within,
)
from mcp_server.voice_approvals import approve_remediation, refuse_remediation
from mcp_server.voice_clusters import cluster_health
from mcp_server.voice_errors import recent_errors
from mcp_server.voice_needs import greet, what_needs_me
from mcp_server.voice_prompt import DESCRIPTIONS, INSTRUCTIONS, READ_ONLY_INSTRUCTIONS
from mcp_server.voice_tasks import pause_task, resume_task, task_status

log = logging.getLogger(__name__)


# A voice client drops the text of an error result, and pydantic's text is no sentence to speak.
class VoiceServer(ListedServer):
    """MCPServer whose refused arguments are answered in words too."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        # A small model fills an optional argument it has nothing for with null or "": left
        # out, for every argument alike (a required one left out is still asked for again).
        arguments = {
            key: _as_compared(value)
            for key, value in (arguments or {}).items()
            if value is not None and not (isinstance(value, str) and not value.strip())
        }
        tool = self._tool_manager.get_tool(name)
        # Only the tool's own arguments: one it does not take (a model's own) is never read,
        # and asking for it again named another tool's argument ("没听清时间范围" of a status).
        taken = tool.parameters.get("properties", {}) if tool is not None else {}
        found = unstorable_at({k: v for k, v in arguments.items() if k in taken})
        if found is not None:
            # PostgreSQL refuses a NUL (U+0000) in text, no database a lone surrogate: heard
            # again before any tool runs.
            at = str(found[0][0]) if found[0] else "arguments"
            log.info("voice tool %r: arguments refused: %s", name, [at])
            return await self._say_again(context, [at], arguments)
        approvals_here.set(self._tool_manager.get_tool("approve_remediation") is not None)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            served = {tool.name for tool in await self.list_tools()}
            if name not in served:
                # A stale tool list, or a name a model made up.
                log.info("voice tool %r: no such tool", name)
                zh, en = (
                    (sentences.UNKNOWN_TOOL, sentences.UNKNOWN_TOOL_EN)
                    if "pause_task" in served
                    else (sentences.UNKNOWN_TOOL_READING, sentences.UNKNOWN_TOOL_READING_EN)
                )
                return await self._said(context, arguments.get("speaker"), zh, en)
            if not isinstance(exc.__cause__, ValidationError):
                raise
            fields = dict.fromkeys(str(e["loc"][0]) for e in exc.__cause__.errors() if e["loc"])
            log.info("voice tool %r: arguments refused: %s", name, list(fields))
            return await self._say_again(context, list(fields), arguments)

    async def arguments_not_an_object(
        self, name: str, given: object, context: Context[AppState, Any]
    ) -> CallToolResult:
        # Nothing of it can be read, the speaker's name neither: the owner hears it.
        log.info("voice tool %r: arguments refused: not an object", name)
        return await self._said(context, None, *sentences.SAY_AGAIN)

    async def _say_again(
        self,
        context: Context[AppState, Any] | None,
        fields: list[str],
        arguments: dict[str, Any],
    ) -> CallToolResult:
        """Ask the speaker to say these arguments again, in the caller's language."""
        speaker = arguments.get("speaker") if "speaker" not in fields else None
        # A field no tool takes (one a model made up, or inside one) has no words: its code
        # name is no word to speak, so the whole call is heard again.
        words = [
            sentences.ARGUMENT_WORDS[field] for field in fields if field in sentences.ARGUMENT_WORDS
        ]
        if not words:
            return await self._said(context, speaker, *sentences.SAY_AGAIN)
        said, said_en = "和".join(zh for zh, _ in words), " and ".join(en for _, en in words)
        zh, en = f"没听清{said}，请再说一次。", f"I didn't catch {said_en}. Please say it again."
        return await self._said(context, speaker, zh, en)

    async def _said(
        self, context: Context[AppState, Any] | None, speaker: object, zh: str, en: str
    ) -> CallToolResult:
        """``en`` if who speaks chose English (the ``speaker`` argument's text names, as the
        tools resolve it, else the session's user), else ``zh``: Chinese when that cannot be
        read now."""
        to_english = False
        if context is not None:
            named = speaker if isinstance(speaker, str) else None
            # The device the call names, as `answer` reads it: a 接入点's call is its owner's.
            calling = device.set(calling_device(context))
            with contextlib.suppress(Exception):
                state, user = app_state(context), current_user(context)
                _, to_english = await within(CALL_BUDGET / 2, heard(state, user, named))
            device.reset(calling)
        return CallToolResult(content=[TextContent(type="text", text=en if to_english else zh)])


def _as_compared(value: Any) -> Any:
    """A spoken argument in the forms names are stored and compared in: a recogniser's or a
    model's full-width "backup２", "３ｈ" or "，" (NFKC) was no task's name and no time span."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


TOOLS: list[tuple[Callable[..., Awaitable[str]], ToolAnnotations]] = [
    (greet, RECORD),
    (what_needs_me, READ),
    # An approval lets a rung run on the cluster (a rollback, an isolation): as the full
    # server's tool, destructive and of the world outside. A refusal changes nothing there.
    # Neither is idempotent: the first call may ask back ("…吗？确认就再说一次批准。") and the
    # same call again makes the decision, so a client retrying one must not take it for a
    # call that changes nothing more (pauses and resumes are: one paused stays paused).
    (approve_remediation, DECIDE),
    (refuse_remediation, hints(read_only=False, open_world=False, idempotent=False)),
    (task_status, READ),
    (pause_task, RECORD),
    (resume_task, RECORD),
    (cluster_health, LOOK),
    (recent_errors, READ),
]


def build_voice_server(
    settings: Settings,
    *,
    holder: StateHolder | None = None,
    stdio_user: str | None = None,
    http_auth: bool = False,
    read_only: bool = False,
) -> MCPServer[AppState]:
    """The voice profile: its own server over the same state, tokens and services."""
    mcp = build_server(
        settings,
        holder=holder,
        areas=(),
        stdio_user=stdio_user,
        http_auth=http_auth,
        name="ambient-voice",
        instructions=READ_ONLY_INSTRUCTIONS if read_only else INSTRUCTIONS,
        cls=VoiceServer,
        voice_tokens=True,
    )
    for tool, hint in TOOLS:
        # Plain text results: no output schema to send on every turn, nothing but the words.
        mcp.tool(
            description=DESCRIPTIONS[tool.__name__], annotations=hint, structured_output=False
        )(tool)
    if read_only:
        reads_only(mcp)
    return mcp


VOICE_PATH = "/mcp/voice"


def by_path(exact: Mapping[str, ASGIApp], default: ASGIApp) -> ASGIApp:
    """One ASGI app for the root mount: these exact paths to their apps, the rest to default."""
    # Both MCP apps carry their own auth middleware, so neither can be a route of the other.

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        await exact.get(path, default)(scope, receive, send)

    return dispatch
