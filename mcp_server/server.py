"""Build the MCP server: areas of tools, the shared state, auth for HTTP."""

from __future__ import annotations

import difflib
import io
import sys
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from types import FunctionType
from typing import Any

import anyio
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    Icon,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    ToolAnnotations,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError
from pydantic_core import to_json

from ambient import __version__
from ambient.bridge.serving import answered, read_text
from ambient.briefing.errors import BriefingError
from ambient.clients.kube_errors import KubeError
from ambient.clients.tencent.errors import TencentCloudError
from ambient.cloud.errors import CloudOpsError, told
from ambient.discussions.views import DiscussionError
from ambient.domain.configs import unstorable_at
from ambient.domain.field_errors import field_problems
from ambient.grants import GrantRefusedError, GrantTargetNotFoundError
from ambient.history import FilterError
from ambient.remediation.views import RemediationError
from ambient.settings import Settings
from ambient.sharing import ShareLinkLimitError
from ambient.status import database_down, problem_told, temporal_down, temporal_not_set_up
from ambient.watches.inputs import TaskError
from ambient.wiring import AppState, StateHolder, open_state
from mcp_server.auth import UserTokenVerifier, app_state, sees_operator_detail
from mcp_server.tool_schemas import published
from mcp_server.tools import AREAS, in_served_words, served_areas

INTRO = (
    "ambient-ops runs durable background work on Temporal for teams on Tencent Cloud: web and "
    "metric watches, a daily spoken briefing, graded remediation of TKE alerts."
)
INSTRUCTIONS = (
    f"{INTRO} Start with get_status; every task tool takes the task_id that create_* tools return."
)


def served_instructions(tools: Collection[str]) -> str:
    """INSTRUCTIONS for a server of ``tools``: the first step and the create_* tools named only
    where served (`--area briefing` was told to start with get_status, which it lacks)."""
    said = [INTRO]
    if "get_status" in tools:
        said.append("Start with get_status.")
    if "get_task" in tools and any(tool.startswith("create_") for tool in tools):
        said.append("Every task tool takes the task_id that create_* tools return.")
    return INSTRUCTIONS if len(said) == 3 else " ".join(said)


# A feature's own errors say what was wrong and what to do: the model reads them as they are.
FEATURE_ERRORS = (
    TaskError,
    BriefingError,
    RemediationError,
    DiscussionError,
    CloudOpsError,
    KubeError,
    TencentCloudError,
    GrantRefusedError,
    GrantTargetNotFoundError,
    FilterError,
    ShareLinkLimitError,
)

# Each tool as built from its function, once per process. Building one derives its argument
# model and JSON schema from the signature (pydantic), ~2-3 ms a tool: 60-odd tools each time
# the API app or an MCP server is built, which the test suite does for most of its tests (and
# `ambient mcp` over stdio for every session). A Tool holds only what its function and these
# arguments decide, so servers can share it.
_BUILT: dict[Hashable, Tool] = {}


# What a JSON value that is no object is, as a refusal says it.
_KINDS: dict[type, str] = {
    str: "a string",
    list: "a list",
    bool: "true or false",
    int: "a number",
    float: "a number",
}


class ListedServer(MCPServer[AppState]):
    """MCPServer listing its tools in one page, their input schemas as ``published``, and
    answering every line of stdio."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No list or resource changes are ever sent: subscriptions/listen unserved, so the
        # 2026 protocol's capabilities say so too (a listen stream was held open with nothing
        # to send, as many as a client asked for).
        super().__init__(*args, **{"subscriptions": False, **kwargs})
        self._lowlevel_server.middleware.append(self._arguments_read)

    async def _arguments_read(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        # mcp checks a request's params before any tool runs: a tools/call whose arguments are
        # no object (a string, a list) was answered -32602 "Invalid request parameters", naming
        # nothing. Bad input is a tool's refusal in words, as for a field of the wrong type.
        params = ctx.params
        if ctx.method == "tools/call" and not (
            isinstance(params, dict) and isinstance(params.get("name"), str)
        ):
            # Refused by the SDK as "Invalid request parameters", naming nothing.
            raise MCPError(
                INVALID_PARAMS,
                "tools/call: params.name, the tool's name as tools/list gives it, is missing "
                "or not a string",
            )
        if ctx.method == "tools/call" and isinstance(params, dict):
            name, given = params.get("name"), params.get("arguments")
            if isinstance(name, str) and given is not None and not isinstance(given, dict):
                context = Context(request_context=ctx, mcp_server=self)
                if name not in self._tool_manager._tools:  # its own refusal (unknown, withheld)
                    return await call_next(replace(ctx, params={**params, "arguments": {}}))
                return await self.arguments_not_an_object(name, given, context)
        return await call_next(ctx)

    async def arguments_not_an_object(
        self, name: str, given: object, context: Context[AppState, Any]
    ) -> CallToolResult:
        """The answer to a call of ``name`` whose arguments are ``given``, no object."""
        taken = ", ".join(self._tool_manager._tools[name].parameters.get("properties", {}))
        kind = _KINDS.get(type(given), "no object")
        return CallToolResult(
            content=[
                TextContent(
                    type="text",
                    text=f"Error executing tool {name}: invalid arguments — arguments: an object"
                    f" of named arguments ({taken or 'none'}; {{}} for none), not {kind}",
                )
            ],
            is_error=True,
        )

    async def run_stdio_async(self) -> None:
        # The SDK's stdio transport drops a line that is no JSON-RPC message and reads one whose
        # id is null, a fraction or true as a notification: neither is answered, the peer waits
        # for good. Lines are read here by the bridge's rule (``read_text``; stdio never had a
        # size limit) and answered as every door answers them; the transport only writes. fd 0
        # stays the wire (the transport diverts it only when it reads): nothing here starts a
        # child that inherits it.
        lowlevel = self._lowlevel_server
        async with stdio_server(stdin=anyio.wrap_file(io.StringIO())) as (_, writes):
            relay, reads = anyio.create_memory_object_stream[SessionMessage | Exception](0)

            async def read_lines() -> None:
                async with relay:
                    async for line in anyio.wrap_file(sys.stdin.buffer):
                        said = read_text(line.decode("utf-8", "replace"), limit=None)
                        if isinstance(said, dict):
                            if answered(said):
                                said = jsonrpc_message_adapter.validate_python(said)
                                await writes.send(SessionMessage(said))
                        else:
                            await relay.send(SessionMessage(said))

            async with anyio.create_task_group() as group:
                group.start_soon(read_lines)
                await lowlevel.run(reads, writes, lowlevel.create_initialization_options())

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        # Only module functions are kept: a bound method (ToolFinder's, one per server) or a
        # closure carries its own state, and icons or meta are not hashable.
        kept = isinstance(fn, FunctionType) and not fn.__closure__ and not icons and not meta
        hints = annotations.model_dump_json() if annotations else None
        key = (fn, name, title, description, hints, structured_output)
        tool = _BUILT.get(key) if kept else None
        if tool is None:
            tool = Tool.from_function(
                fn,
                name=name,
                title=title,
                description=description,
                annotations=annotations,
                icons=icons,
                meta=meta,
                structured_output=structured_output,
            )
            tool.parameters = published(tool.parameters)
            if kept:
                _BUILT[key] = tool
        tools = self._tool_manager._tools
        if tool.name in tools:  # the manager's own add_tool warns about the duplicate
            super().add_tool(
                fn, name, title, description, annotations, icons, meta, structured_output
            )
            return
        # What the manager's add_tool does with the tool it builds, for the one built already.
        tools[tool.name] = tool

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        # One page, so any cursor is one we never gave (another server's, a client's guess):
        # the spec's pagination page asks for -32602, not the whole list as if the next page.
        # An empty cursor is none (xiaozhi's firmware and cloud send cursor "" on the first call).
        if params is not None and params.cursor:
            raise MCPError(
                INVALID_PARAMS,
                f"Unknown cursor {params.cursor!r}: tools/list answers in one page, "
                "call it without one.",
            )
        return await super()._handle_list_tools(ctx, params)

    async def _handle_get_prompt(
        self, ctx: ServerRequestContext[AppState], params: GetPromptRequestParams
    ) -> GetPromptResult | InputRequiredResult:
        # The SDK refuses an unknown prompt (or its arguments) with a ValueError, answered as
        # JSON-RPC error 0; the spec's prompts page asks -32602 for an invalid name or argument.
        try:
            return await super()._handle_get_prompt(ctx, params)
        except ValueError as exc:
            raise MCPError(INVALID_PARAMS, f"{exc}: prompts/list names the prompts") from None


# The one place tools' errors are mapped, so tool functions hold no try/except.
class AmbientMCPServer(ListedServer):
    """MCPServer whose errors read as what to do: bad fields, a feature's refusal, what is down."""

    # The tools `--read-only` left out: a call to one says why, not "Unknown tool".
    withheld: frozenset[str] = frozenset()

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        def refused(problem: str) -> ToolError:
            # Worded as the SDK words a ToolError a tool raised itself.
            return ToolError(f"Error executing tool {name}: {problem}")

        tool = self._tool_manager._tools.get(name)
        if tool is None and name in self.withheld:
            raise ToolError(f"{name} changes things: this server is read-only (--read-only)")
        if tool is None:
            # A tool error (isError), not the spec's -32602: a model reads a tool's result,
            # while 小智's relays and xiaozhi-server drop a JSON-RPC error unsaid.
            raise ToolError(self.unknown_tool(name))
        if tool is not None:
            if (found := unstorable_at(arguments)) is not None:
                # PostgreSQL refuses a NUL (U+0000) in text, in a query as in a row, and no
                # database encodes a lone surrogate: refused by its argument's name before any
                # tool runs.
                at, why = found
                where = ".".join(str(part) for part in at)
                raise refused(f"invalid arguments — {where}: {why}")
            taken = tool.parameters.get("properties", {})
            if unknown := sorted(set(arguments or {}) - set(taken)):
                # mcp's argument models drop what they do not name: a misspelt guard (run_key)
                # was skipped and the tool ran. (The voice profile's small models keep leeway.)
                takes = ", ".join(taken) or "none"
                problems = "; ".join(f"{key}: not an argument of {name}" for key in unknown)
                raise refused(f"invalid arguments — {problems} (it takes: {takes})")
        try:
            return self._said_result(await super().call_tool(name, arguments, context))
        except UnexpectedToolError as exc:
            cause = exc.__cause__
            if cause is None:
                raise
            # The lazy Temporal client connects on first use, the database's pool when a
            # session first runs a statement: a server that is down surfaces here, from any
            # tool, however the feature wrapped it.
            settings = app_state(context).settings if context is not None else None
            problem = None
            database = database_down(cause)
            if database or temporal_down(cause) or temporal_not_set_up(cause):
                # Where it runs and the driver's words to an admin or the machine's operator,
                # as get_status tells them; a member hears what does not work.
                operator = context is not None and await sees_operator_detail(
                    context, database_answers=not database
                )
                problem = problem_told(cause, settings, operator=operator)
            if problem is None and isinstance(cause, FEATURE_ERRORS):
                problem = told(cause)  # a Tencent Cloud error as the cloud writes say it
            if problem is None:
                raise  # a crash: the SDK logs it and answers "Error executing tool <name>"
            # The service's words (not the caller's argument names, said back as given).
            raise refused(self.said(problem)) from None
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise
            # Each refused argument as "field: what is expected", as the API's 422 names them:
            # mcp validates arguments with a generated ``<tool>Arguments`` model, whose title and
            # the pydantic help URL mean nothing to the caller, so only the field paths and
            # messages stay. Chained to the ValidationError: mcp logs the refused field names.
            problems = "; ".join(field_problems(cause, "arguments"))
            raise refused(f"invalid arguments — {problems}") from cause

    def unknown_tool(self, name: str) -> str:
        """The refusal of a tool name not served, with the nearest served names."""
        served = self._tool_manager._tools
        near = difflib.get_close_matches(name, served, n=3, cutoff=0.75)
        hint = f"did you mean {' or '.join(near)}?" if near else "tools/list names the tools"
        finder = " (find_tools searches every tool)" if "find_tools" in served else ""
        return f"Unknown tool: {name}; {hint}{finder}"

    def said(self, text: str) -> str:
        """A refusal or hint as this server says it: naming only the tools it serves (a
        service names the tool a model calls next, whatever this server was built with)."""
        return in_served_words(text, self._tool_manager._tools)

    def _said_result(
        self, result: CallToolResult | InputRequiredResult
    ) -> CallToolResult | InputRequiredResult:
        # A result's ``text`` is the answer said to the caller (greet's, when no briefing is
        # set up), in both the structured and the text form of the result; not a briefing
        # spoken (its logs' lines may hold a tool's name, and its segments say it as written).
        structured = result.structured_content if isinstance(result, CallToolResult) else None
        if (
            not isinstance(structured, dict)
            or not isinstance(structured.get("text"), str)
            or structured.get("outcome") == "spoken"
        ):
            return result
        text = self.said(structured["text"])
        if text == structured["text"]:
            return result
        structured = {**structured, "text": text}
        content = TextContent(type="text", text=to_json(structured, indent=2).decode())
        return result.model_copy(update={"structured_content": structured, "content": [content]})


def build_server(
    settings: Settings,
    *,
    holder: StateHolder | None = None,
    read_only: bool = False,
    areas: Iterable[str] | None = None,
    stdio_user: str | None = None,
    http_auth: bool = False,
    name: str = "ambient-ops",
    instructions: str = INSTRUCTIONS,
    cls: type[MCPServer[AppState]] = AmbientMCPServer,
    voice_tokens: bool = False,
) -> MCPServer[AppState]:
    """The MCP server of ``areas`` (all by default); with ``holder`` it shares the API's state,
    otherwise it opens its own; over HTTP it takes the users' tokens (and their voice
    tokens, with ``voice_tokens``)."""
    selected = list(AREAS) if areas is None else list(areas)
    holder = holder or StateHolder()

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        if holder.state is not None:
            yield holder.state
            return
        async with open_state(settings, stdio_user=stdio_user) as state:
            holder.state = state
            try:
                yield state
            finally:
                holder.state = None

    auth = verifier = None
    if http_auth:
        # Our tokens are the API's own, not OAuth's: no protected-resource metadata is served
        # (it had named the API as an authorization server, which it is not, and at the
        # configured URL, whose host a client on localhost found "does not match"). An OAuth
        # client then registers at /register and is told to send the token
        # (api.security.ClientRegistrationRefused). The issuer is the SDK's required field.
        auth = AuthSettings(
            issuer_url=settings.public_base_url,
            resource_server_url=None,
            validate_token_resource=False,
        )
        verifier = UserTokenVerifier(holder, voice=voice_tokens)
    mcp = cls(
        name=name,
        version=__version__,
        instructions=instructions,
        lifespan=lifespan,
        token_verifier=verifier,
        auth=auth,
    )
    for area in served_areas(selected):
        AREAS[area](mcp)
    if read_only:
        reads_only(mcp)
    if instructions is INSTRUCTIONS:  # the general words: what this server serves
        mcp._lowlevel_server.instructions = served_instructions(mcp._tool_manager._tools)
    return mcp


def reads_only(mcp: MCPServer[Any]) -> None:
    """Leave ``mcp`` only the tools whose hints say they change nothing (`--read-only`)."""
    tools = mcp._tool_manager.list_tools()
    writes = [t.name for t in tools if not (t.annotations and t.annotations.read_only_hint)]
    for name in writes:
        mcp.remove_tool(name)
    if isinstance(mcp, AmbientMCPServer):
        mcp.withheld = frozenset(writes)


# The discussion bus as three servers a client enables one by one.
DISCUSSION_SERVERS = {
    "signing": "Post on the team's discussion bus: send_message, reply_message, close_discussion.",
    "annotate": "Analyse discussions: search_messages, detect_anomalies, annotate_discussion.",
    "bus": "Browse the discussion bus: list_discussions, read_discussion, list_projects, "
    "get_stats, init_store.",
}


def build_discussion_server(
    settings: Settings, which: str, *, stdio_user: str | None = None, read_only: bool = False
) -> MCPServer[AppState]:
    """One of the three discussion servers (`ambient mcp --server signing|annotate|bus`)."""
    return build_server(
        settings,
        areas=[which],
        stdio_user=stdio_user,
        read_only=read_only,
        name=f"ambient-{which}",
        instructions=DISCUSSION_SERVERS[which],
    )
