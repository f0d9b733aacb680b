"""Tool-call accuracy of a model on our MCP tools: `python -m bench.toolcalls.run`.

Every utterance of dataset.jsonl goes, with our real tool list (names, descriptions, JSON
schemas, as the chat agent sends them), to an OpenAI-compatible endpoint; the first answer's
tool calls are scored against the expected tool and key arguments (bench/toolcalls/scoring.py).

    OPENAI_API_KEY=... python -m bench.toolcalls.run --base-url https://api.deepseek.com/v1 \\
        --model deepseek-chat --out toolcalls-report.json
    python -m bench.toolcalls.run --local --profile pinned --runs 3   # the `make llm` model
    python -m bench.toolcalls.run --local --profile find --split heldout --runs 3   # tool search
    python -m bench.toolcalls.run --local --profile retrieve --split heldout   # the chat agent's

Each case runs K times (--runs); the report gives pass^1 and pass^k (every run right), per
language and per tool, tool-choice and argument errors apart, seconds per request, and a line
is appended to docs/benchmarks.md. Only the OpenAI ``tool_calls`` field counts for the
headline; calls written into the text are reported as ``lenient_pass1`` beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openai import AsyncOpenAI, omit
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from pydantic import ValidationError

from ambient.clients.llm import TOOL_CHOICE_TEMPERATURE
from bench.toolcalls.scoring import (
    SAID_CHARS,
    Attempt,
    Call,
    Case,
    Effect,
    ProductReading,
    Report,
    Turn,
    calls_in_text,
    report,
    split_of,
)
from bench.toolcalls.xiaozhi_env import ENVIRONMENTS

if TYPE_CHECKING:
    from ambient.agent.chat import ToolOffer
    from ambient.agent.facade import AgentFacade

DATASET = Path(__file__).with_name("dataset.jsonl")
# The voice profile's own cases (its tools are not the full server's), split into a "tune"
# half and a "heldout" half: descriptions and prompts are tuned on the first, reported on both.
VOICE_DATASET = Path(__file__).with_name("voice.jsonl")
BENCHMARKS_MD = Path(__file__).parents[2] / "docs" / "benchmarks.md"
# Server builders by profile, looked up when asked for (the voice profile is its own server).
PROFILES = {
    "full": "mcp_server.server:build_server",
    "voice": "mcp_server.voice:build_voice_server",
}
# Ten voice-like tools of the full server: what a spoken request mostly needs.
PINNED = [
    "greet",
    "get_briefing",
    "list_tasks",
    "get_task",
    "pause_task",
    "resume_task",
    "list_remediations",
    "approve_remediation",
    "list_clusters",
    "search_logs",
]
# What the chat agent would know from earlier tool results, given to the full server's cases.
# Every id a case expects without saying it is here (the data set's "this discussion" cases
# expect disc_20261122081500_ab12, which a model could otherwise only copy from an example).
# Not to the voice profile's: 小智's model gets its role prompt and the conversation alone,
# so a voice case that needs an earlier result carries it as real earlier turns (`history`).
CONTEXT = (
    "Context for this session (as the assistant would know it from earlier tool results): "
    "the user's tasks are web-monitor/dev/hn (Hacker News for AI), threshold-watch/dev/btc "
    "(bitcoin price) and reminder/dev/standup (daily 09:30); the open remediation is "
    "remediation/3f9a1c2b7d4e (checkout-api on cluster cls-7kq2m0ab, namespace shop); the open "
    "discussion is disc_20261122081500_ab12 (the checkout-api incident); today is 2026-11-22."
)


# --profile find: what a client with tool search does. The model first sees the pinned tools
# and find_tools; each find_tools call is served by the product's own tool (through the same
# client the chat agent uses), its answer goes back as the tool result, and the tools it names
# are loaded beside the first ones for the next request. At most LOOKUP_ROUNDS lookups a case;
# the first answer with a product call (or none at all) is the one scored.
FIND_TOOLS = "find_tools"
LOOKUP_ROUNDS = 2
# Tokens an answer may take. A call is well under this; a no-call answer is scored only for
# calling nothing, and at temperature 0 the 1.5B model told a joke for 1,375 tokens (2 minutes
# of the one server slot) before it was stopped, so a longer answer is cut, not waited for.
ANSWER_TOKENS = 256
# What such a client tells its model (the harness's words, appended to the chat prompt).
FIND_NOTE = (
    "Only some of your tools are loaded. When none of them fits the request, call find_tools "
    "with the user's request in their words: the tools it finds are then loaded for you."
)


@dataclass
class Finder:
    """The client side of tool search: ``lookup`` serves a find_tools call (the text the model
    reads and the tool names found); ``catalogue`` holds every tool that can be loaded."""

    lookup: Callable[[dict[str, Any]], Awaitable[tuple[str, list[str]]]]
    catalogue: dict[str, dict[str, Any]]


def product_finder(facade: AgentFacade, tools: list[dict[str, Any]]) -> Finder:
    """find_tools answered by the product's tool on the open server, as a client would call it."""

    async def lookup(arguments: dict[str, Any]) -> tuple[str, list[str]]:
        outcome = await facade.call(FIND_TOOLS, arguments)
        found = (outcome.structured or {}).get("tools") if outcome.ok else None
        return outcome.text, [t["name"] for t in found or [] if isinstance(t, dict)]

    return Finder(lookup=lookup, catalogue={t["function"]["name"]: t for t in tools})


def load_cases(path: Path = DATASET) -> list[Case]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Case.model_validate_json(line) for line in lines if line.strip()]


class BenchError(Exception):
    """The run cannot start as asked (unknown profile or tool, no model); the text says why."""


def server_builder(profile: str) -> Any:
    """The MCP server builder of a profile, imported now: a profile not in this checkout is
    an error naming it, never a silent switch to another tool list."""
    if profile not in PROFILES:
        raise BenchError(f"unknown profile {profile!r}: one of {sorted(PROFILES)}")
    module, _, name = PROFILES[profile].partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise BenchError(
            f"profile {profile!r} needs {PROFILES[profile]}, which this checkout lacks ({exc})"
        ) from None


@asynccontextmanager
async def tool_server(profile: str = "full") -> AsyncIterator[AgentFacade]:
    """The profile's real MCP server in-process, behind the product's own client (the facade
    the chat agent uses), open for as long as the caller needs to list or call its tools."""
    from mcp import Client

    from ambient.agent.facade import OWN_SERVER, AgentFacade
    from ambient.settings import Environment, Settings
    from ambient.storage.migrate import upgrade_async

    build_server = server_builder(profile)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(  # type: ignore[call-arg]
            environment=Environment.TEST, data_dir=Path(data_dir), _env_file=None
        )
        # Servers refuse a database behind the code: this one is the bench's own, made here.
        await upgrade_async(settings.resolved_database_url)
        server = build_server(settings, stdio_user="dev")
        facade = AgentFacade()
        facade.add_server(OWN_SERVER, lambda: Client(server, cache=None))
        try:
            yield facade
        finally:
            await facade.close()


async def our_tools(profile: str = "full") -> list[dict[str, Any]]:
    """Our tools as OpenAI functions, listed from the profile's real MCP server in-process."""
    async with tool_server(profile) as facade:
        tools = await facade.openai_tools()
    if not tools:
        raise BenchError(f"the {profile!r} profile's server listed no tools (see the log above)")
    return tools


def only(tools: list[dict[str, Any]], names: Iterable[str]) -> list[dict[str, Any]]:
    """The named tools, in the server's order; a name the server lacks is an error."""
    wanted = list(names)
    offered = {t["function"]["name"] for t in tools}
    if missing := [n for n in wanted if n not in offered]:
        raise BenchError(f"no tool {', '.join(missing)} in this profile")
    return [t for t in tools if t["function"]["name"] in wanted]


def answerable(cases: list[Case], tools: list[dict[str, Any]]) -> list[Case]:
    """The cases whose expected tools are all offered (and those expecting no call)."""
    offered = {t["function"]["name"] for t in tools}
    return [c for c in cases if all(e.tool in offered for e in c.expected)]


def chat_prompt() -> str:
    from ambient.agent.chat import system_prompt

    return system_prompt("dev", "小智", "Asia/Shanghai")


def profile_prompt(profile: str) -> str:
    """The system prompt the profile's model is given. The full server's tools are used by our
    chat agent, with its prompt; the voice profile's by 小智's model, whose role config is the
    prompt the voice server publishes as its MCP ``instructions`` (docs/xiaozhi.md)."""
    if profile != "voice":
        return chat_prompt()
    with tempfile.TemporaryDirectory() as data_dir:
        from ambient.settings import Environment, Settings

        settings = Settings(  # type: ignore[call-arg]
            environment=Environment.TEST, data_dir=Path(data_dir), _env_file=None
        )
        return str(server_builder(profile)(settings, stdio_user="dev").instructions)


def conversation(history: list[Turn]) -> list[dict[str, Any]]:
    """Earlier turns as OpenAI chat messages: a tool turn is the assistant's call and the
    tool's result, joined by a call id, as a real client sends them back."""
    messages: list[dict[str, Any]] = []
    for number, turn in enumerate(history):
        if turn.user is not None:
            messages.append({"role": "user", "content": turn.user})
        elif turn.assistant is not None:
            messages.append({"role": "assistant", "content": turn.assistant})
        else:
            call_id = f"call_{number}"
            call = {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": turn.tool,
                    "arguments": json.dumps(turn.arguments, ensure_ascii=False),
                },
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": turn.result})
    return messages


def _function_calls(message: Any) -> list[tuple[str, Call]]:
    """The message's ``tool_calls`` as (call id, call); unreadable arguments read as {}."""
    calls: list[tuple[str, Call]] = []
    for call in message.tool_calls or []:
        if isinstance(call, ChatCompletionMessageFunctionToolCall):
            try:
                arguments = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                arguments = {}
            if not isinstance(arguments, dict):
                arguments = {}
            calls.append((call.id, Call(tool=call.function.name, arguments=arguments)))
    return calls


async def ask(
    client: AsyncOpenAI,
    model: str,
    tools: list[dict[str, Any]],
    case: Case,
    system: str | None = None,
    finder: Finder | None = None,
    context: str | None = CONTEXT,
    offer: ToolOffer | None = None,
    environment: frozenset[str] = frozenset(),
) -> Attempt:
    messages: list[Any] = [
        {"role": "system", "content": system if system is not None else chat_prompt()},
        *([{"role": "system", "content": context}] if context else []),
        *conversation(case.history),
        {"role": "user", "content": case.utterance},
    ]
    # --profile retrieve: the product's chat agent picks the turn's tools (ambient/agent/chat.py).
    offered = offer.tools(tools, messages) if offer is not None else list(tools)
    chosen = [t["function"]["name"] for t in offered] if offer is not None else None
    lookups: list[str] = []
    started = time.monotonic()
    for lookup_round in range(LOOKUP_ROUNDS + 1):
        try:
            completion = await client.chat.completions.create(
                model=model,
                messages=messages,
                # No tool at all (a search that matched nothing): none sent, as the chat agent.
                tools=offered or omit,  # type: ignore[arg-type]
                # What the product's chat agent sends: the figures are of the product's setting.
                temperature=TOOL_CHOICE_TEMPERATURE,
                max_tokens=ANSWER_TOKENS,
            )
        except Exception as exc:
            return Attempt(
                calls=[],
                error=f"{type(exc).__name__}: {exc}",
                seconds=time.monotonic() - started,
                lookups=lookups,
                offered=chosen,
            )
        message = completion.choices[0].message
        made = _function_calls(message)
        searches = [(i, c) for i, c in made if finder is not None and c.tool == FIND_TOOLS]
        answer = [c for _, c in made if finder is None or c.tool != FIND_TOOLS]
        if finder is None or not searches or answer or lookup_round == LOOKUP_ROUNDS:
            return Attempt(
                calls=[c for c in answer if c.tool not in environment],
                environment_calls=[c for c in answer if c.tool in environment],
                text_calls=[c for c in calls_in_text(message.content) if c.tool not in environment],
                said=(message.content or "")[:SAID_CHARS],
                seconds=time.monotonic() - started,
                lookups=lookups,
                offered=chosen,
            )
        # Only lookups: serve them, load what they found (after the tools already offered,
        # so a server's prompt cache keeps their prefix) and ask again.
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": c.tool, "arguments": json.dumps(c.arguments)},
                    }
                    for call_id, c in searches
                ],
            }
        )
        for call_id, search in searches:
            lookups.append(str(search.arguments.get("query", "")))
            text, names = await finder.lookup(search.arguments)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            loaded = {t["function"]["name"] for t in offered}
            offered += [
                finder.catalogue[n] for n in names if n in finder.catalogue and n not in loaded
            ]
    raise AssertionError("unreachable: the last round always returns")


async def evaluate(
    client: AsyncOpenAI,
    model: str,
    cases: list[Case],
    *,
    concurrency: int = 4,
    runs: int = 1,
    tools: list[dict[str, Any]] | None = None,
    profile: str = "full",
    model_sha256: str | None = None,
    system: str | None = None,
    finder: Finder | None = None,
    context: str | None = CONTEXT,
    progress: Path | None = None,
    done: dict[tuple[str, int], Attempt] | None = None,
    offer: ToolOffer | None = None,
    environment: list[dict[str, Any]] | None = None,
    read_effects: bool = False,
) -> Report:
    """Every case ``runs`` times. The first request goes alone (it fills a local server's
    prompt cache, and its time is reported apart), then the rest ``concurrency`` at a time.
    With ``progress``, each attempt is appended to that JSONL file as it comes back: a long
    local run that is cut short still leaves what it measured; ``done`` holds such attempts,
    by (case id, run from 1), which are kept instead of asked again."""
    if runs < 1:
        raise BenchError("--runs must be at least 1")
    tools = tools if tools is not None else await our_tools(profile)
    foreign = frozenset(t["function"]["name"] for t in environment or [])
    tools = [*tools, *(environment or [])]
    system = system if system is not None else profile_prompt(profile)
    gate = asyncio.Semaphore(concurrency)

    def record(case: Case, run: int, attempt: Attempt) -> Attempt:
        if progress is not None:
            line = {"id": case.id, "run": run + 1, **attempt.model_dump()}
            with progress.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        return attempt

    async def one(case: Case, run: int) -> Attempt:
        if done is not None and (case.id, run + 1) in done:
            return done[case.id, run + 1]
        async with gate:
            attempt = await ask(client, model, tools, case, system, finder, context, offer, foreign)
            return record(case, run, attempt)

    attempts: dict[str, list[Attempt]] = {c.id: [] for c in cases}
    for run in range(runs):
        batch = cases
        if run == 0 and cases:
            attempts[cases[0].id].append(await one(cases[0], run))
            batch = cases[1:]
        for case, attempt in zip(
            batch, await asyncio.gather(*(one(c, run) for c in batch)), strict=True
        ):
            attempts[case.id].append(attempt)
    return report(
        model,
        [(c, attempts[c.id]) for c in cases],
        model_sha256=model_sha256,
        profile=profile,
        tools=[t["function"]["name"] for t in tools],
        # The voice tools' effects: a call nobody asked for is read by what it would do.
        reading=voice_reading() if read_effects else None,
    )


def recorded_attempts(path: Path) -> dict[tuple[str, int], Attempt]:
    """The attempts a --progress file holds, by (case id, run); a missing file holds none, and
    a line cut off by a killed run is left out (that attempt is asked again)."""
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        # The cut-off line ends here, so the next attempt starts a line of its own.
        with path.open("a", encoding="utf-8") as out:
            out.write("\n")
    attempts: dict[tuple[str, int], Attempt] = {}
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        case, run = row.pop("id"), row.pop("run")
        attempts[str(case), int(run)] = Attempt.model_validate(row)
    return attempts


def recorded_ids(path: Path) -> set[str]:
    """The case ids a --progress JSONL recorded: an earlier run's sample."""
    return {str(json.loads(line)["id"]) for line in path.read_text().splitlines() if line.strip()}


def voice_reading() -> ProductReading:
    """What each voice tool does, read from the product (its annotations and its target
    argument), and the product's own tests of a target and a speaker that name nothing."""
    from mcp.server.mcpserver.tools.base import Tool

    from ambient.speakers import DEFAULT_ASSISTANT, names_no_speaker
    from mcp_server.voice import TOOLS
    from mcp_server.voice_prompt import SPEAKER_DESCRIPTION
    from mcp_server.voice_references import names_nothing

    effects = {
        function.__name__: Effect(
            writes=not hints.read_only_hint,
            reference=next(
                (p for p in inspect.signature(function).parameters if p in ("name", "which")),
                None,
            ),
        )
        for function, hints in TOOLS
    }
    # The argument models the MCP server validates each call with (built as it registers them).
    readers = {f.__name__: Tool.from_function(f).fn_metadata for f, _ in TOOLS}

    def read(call: Call) -> Call:
        # As the tool reads its arguments; a call the tool would refuse is scored as it was.
        metadata = readers.get(call.tool)
        if metadata is None:
            return call
        try:
            held = metadata.arg_model.model_validate(metadata.pre_parse_json(call.arguments))
        except ValidationError:
            return call
        return Call(tool=call.tool, arguments=held.model_dump(exclude_unset=True))

    return ProductReading(
        effects=effects,
        names_nothing=names_nothing,
        read=read,
        # The owner's assistant as `ambient dev` names it.
        names_no_speaker=lambda said: names_no_speaker(
            said, DEFAULT_ASSISTANT, SPEAKER_DESCRIPTION
        ),
    )


def benchmark_line(result: Report, command: str, when: datetime) -> str:
    """One row of docs/benchmarks.md's tool-call table, every figure from ``result``."""
    langs = ", ".join(
        f"{lang} {row.pass1:.0%}/{row.pass_k:.0%}" for lang, row in result.per_lang.items()
    )
    errors = result.errors
    return (
        f"| {when:%Y-%m-%d %H:%M} | `{command}` | {result.model} | "
        f"`{(result.model_sha256 or 'n/a')[:16]}` | {result.profile} ({len(result.tools)} tools) | "
        f"{result.cases} × {result.runs} | {result.pass1:.1%} | {result.pass_k:.1%} | {langs} | "
        f"{errors['tool_choice']}/{errors['arguments']}/{errors['error']} | "
        f"{result.lenient_pass1:.1%} | {result.seconds_median:.1f} / {result.seconds_p95:.1f} "
        f"(first {result.seconds_first:.0f}) |"
    )


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(argv))


async def amain(argv: list[str] | None = None) -> int:
    """The command on a running loop: a test awaits it on its own, so no second loop runs in a
    thread beside it (the garbage collector would end one loop's objects in the other's
    thread)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--model", default=os.environ.get("AMBIENT_LLM_MODEL", "gpt-4o-mini"))
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument(
        "--local", action="store_true", help="the `make llm` model (started, or reused)"
    )
    parser.add_argument(
        "--profile",
        choices=[*PROFILES, "pinned", "find", "retrieve"],
        default="full",
        help="find: the pinned tools and find_tools first, found tools loaded as a tool-search "
        "client does (see FIND_NOTE); retrieve: the tools the product's chat agent offers for "
        "the turn (ToolOffer: its search's best --top-k of the full list)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        help="with --profile retrieve: how many searched tools a turn offers (default: the "
        "product's, AMBIENT_CHAT_TOOLS)",
    )
    parser.add_argument("--tools", help="comma-separated tools of the profile to offer alone")
    parser.add_argument(
        "--cases-for",
        help="run only the cases these tools answer (comma-separated, or 'pinned') while "
        "offering the whole profile: the full tool list on the pinned subset",
    )
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument(
        "--environment",
        choices=sorted(ENVIRONMENTS),
        default="none",
        help="xiaozhi: also offer what a 小智 server offers its model beside our tools (its "
        "own functions, the device's tools); a call of one is no call of a product tool",
    )
    parser.add_argument(
        "--split",
        help="run only the cases of this split, tune or heldout (the case's `split` field; "
        "without one, its number's parity: even tune, odd heldout)",
    )
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        help="N: every Nth case of the selection in file order, from the first (a fixed "
        "sample; the file is ordered by tool, so every tool keeps its share)",
    )
    parser.add_argument("--runs", type=int, default=1, help="K: each case K times (pass^k)")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds a request may take (default 120; 3600 with --local: a cold prompt of "
        "the whole tool list takes minutes on 2 cores)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--progress", type=Path, help="append each attempt to this JSONL file as it returns"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --progress: keep the attempts that file already holds and ask only the rest "
        "(a long local run cut short goes on where it stopped)",
    )
    parser.add_argument(
        "--ids-from",
        type=Path,
        help="only the cases an earlier run's --progress JSONL names: the same sample, "
        "whatever the data set has gained since",
    )
    parser.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    if args.resume and args.progress is None:
        parser.error("--resume needs --progress (the file of the attempts to keep)")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.every < 1:
        parser.error("--every must be at least 1")
    try:
        return await _main(
            args, " ".join(["python -m bench.toolcalls.run", *(argv or sys.argv[1:])])
        )
    except BenchError as exc:
        print(f"bench.toolcalls: {exc}", file=sys.stderr)
        return 2


async def _main(args: argparse.Namespace, command: str) -> int:
    server = None
    model_sha256: str | None = None
    if args.local:
        from ambient.local_llm import MODEL_SHA256, LocalLLMError, ensure_server
        from ambient.settings import LOCAL_LLM_MODEL, Settings

        try:
            server = await asyncio.to_thread(ensure_server, Settings())
        except LocalLLMError as exc:
            raise BenchError(str(exc)) from None
        base_url, model, key = f"{server.url}/v1", LOCAL_LLM_MODEL, "local"
        model_sha256 = MODEL_SHA256
    else:
        key = os.environ.get(args.api_key_env) or ""
        if not key:
            raise BenchError(f"set {args.api_key_env} (and --base-url for a non-OpenAI endpoint)")
        base_url, model = args.base_url, args.model
    timeout = args.timeout or (3600.0 if args.local else 120.0)
    # One request at a time on a local server: its one slot would queue the rest anyway.
    concurrency = args.concurrency or (1 if args.local else 4)
    try:
        profile = "full" if args.profile in ("pinned", "find", "retrieve") else args.profile
        async with tool_server(profile) as facade:
            result = await _run(
                args,
                facade,
                profile,
                client_args=(key, base_url, timeout),
                model=model,
                concurrency=concurrency,
                model_sha256=model_sha256,
            )
        if server is not None and server.process is not None and server.process.poll() is not None:
            # Its requests failed as errors; the figures of a dead server are no measurement.
            raise BenchError(
                f"llama-server exited with {server.process.returncode} during the run "
                "(its log: `ambient llm status`); no report written"
            )
    finally:
        if server is not None:
            server.stop()
    text = result.model_dump_json(indent=2)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print_report(result)
    if args.benchmarks_md:
        with args.benchmarks_md.open("a", encoding="utf-8") as md:
            md.write(benchmark_line(result, command, datetime.now(UTC)) + "\n")
    return 0


async def _run(
    args: argparse.Namespace,
    facade: AgentFacade,
    profile: str,
    *,
    client_args: tuple[str, str | None, float],
    model: str,
    concurrency: int,
    model_sha256: str | None,
) -> Report:
    """The cases the command picked, run against the model with the profile's tools."""
    every = await facade.openai_tools()
    if not every:
        raise BenchError(f"the {profile!r} profile's server listed no tools (see the log above)")
    tools = every
    names = PINNED if args.profile == "pinned" else None
    if args.profile == "find":
        names = [*PINNED, FIND_TOOLS]
    if args.tools:
        names = [n.strip() for n in args.tools.split(",") if n.strip()]
    if names is not None:
        tools = only(every, names)
    finder = None
    system = profile_prompt(profile)
    label = f"{profile} --tools" if args.tools else args.profile
    if args.environment != "none":
        label += f" + {args.environment}'s own {len(ENVIRONMENTS[args.environment])} tools"
    cases = answerable(load_cases(args.dataset), tools)
    if args.profile == "find":
        finder = product_finder(facade, every)
        system = f"{system}\n\n{FIND_NOTE}"
        label = f"find: pinned + find_tools over {len(every) - 1}"
        # Every tool can be reached; lookups belong to the client's loop, so a case that asks
        # for find_tools itself has nothing to score here (bench.find_tools leaves it out too).
        cases = [
            c
            for c in answerable(load_cases(args.dataset), every)
            if all(e.tool != FIND_TOOLS for e in c.expected)
        ]
    offer = None
    if args.profile == "retrieve":
        from ambient.agent.chat import tool_offer
        from ambient.settings import Settings

        settings = Settings()
        if args.top_k is not None:
            settings = settings.model_copy(update={"chat_tools": args.top_k})
        offer = tool_offer(settings)
        label = f"retrieve: top {offer.limit} of {len(every) - 1}" + (
            f" + {len(offer.pinned)} pinned" if offer.pinned else ""
        )
        # As in find: every tool can be offered, and find_tools itself is never offered.
        cases = [
            c
            for c in answerable(load_cases(args.dataset), every)
            if all(e.tool != FIND_TOOLS for e in c.expected)
        ]
    if args.split:
        cases = [c for c in cases if split_of(c) == args.split]
    if args.cases_for:
        subset = PINNED if args.cases_for == "pinned" else args.cases_for.split(",")
        cases = answerable(cases, only(tools, [n.strip() for n in subset if n.strip()]))
    if args.ids_from:
        named = recorded_ids(args.ids_from)
        cases = [c for c in cases if c.id in named]
    cases = cases[:: args.every]
    if not cases:
        raise BenchError("no case of the dataset can be answered with these tools")
    key, base_url, timeout = client_args
    # Closed in this loop: left to the garbage collector, its connections were closed in a
    # loop already gone ("Event loop is closed", logged as a task error).
    async with AsyncOpenAI(
        api_key=key, base_url=base_url, max_retries=0, timeout=timeout
    ) as client:
        return await evaluate(
            client,
            model,
            cases,
            concurrency=concurrency,
            runs=args.runs,
            tools=tools,
            profile=label,
            model_sha256=model_sha256,
            system=system,
            finder=finder,
            # 小智's model never sees the chat agent's session context: a voice case gets only the
            # published role prompt and its own earlier turns.
            context=None if profile == "voice" else CONTEXT,
            progress=args.progress,
            done=recorded_attempts(args.progress) if args.resume and args.progress else None,
            offer=offer,
            environment=ENVIRONMENTS[args.environment],
            read_effects=profile == "voice",
        )


def print_report(result: Report) -> None:
    print(
        f"model {result.model} (sha256 {result.model_sha256 or 'n/a'}), profile {result.profile}, "
        f"{len(result.tools)} tools, {result.cases} cases × {result.runs} runs"
    )
    print(
        f"pass^1 {result.pass1:.1%}  pass^{result.runs} {result.pass_k:.1%}  "
        f"(lenient, calls in text too: pass^1 {result.lenient_pass1:.1%})"
    )
    print(
        f"errors over all runs: tool choice {result.errors['tool_choice']}, "
        f"arguments {result.errors['arguments']}, request {result.errors['error']}"
    )
    print(
        f"seconds a request: median {result.seconds_median:.1f}, p95 {result.seconds_p95:.1f}, "
        f"first {result.seconds_first:.1f}"
    )
    for lang, row in result.per_lang.items():
        print(f"  [{lang}] {row.cases} cases  pass^1 {row.pass1:.0%}  pass^k {row.pass_k:.0%}")
    for part, row in result.per_part.items():
        print(f"  [{part}] {row.cases} cases  pass^1 {row.pass1:.0%}  pass^k {row.pass_k:.0%}")
    for offered, row in result.per_offer.items():
        print(f"  [{offered}] {row.cases} cases  pass^1 {row.pass1:.1%}  pass^k {row.pass_k:.1%}")
    if result.unwanted:
        said = ", ".join(f"{what} {n}" for what, n in result.unwanted.items())
        print(f"  runs with a product call nobody asked for, by what it did: {said}")
    if result.guessed_speakers is not None:
        guessed = result.guessed_speakers
        print(f"  calls naming a speaker nobody said (answered as a stranger): {guessed}")
    if result.answered_in_words:
        print(f"  runs that wanted a call and got words instead: {result.answered_in_words}")
    for tool, row in result.per_tool.items():
        print(f"  {tool:28} {row.cases:3}  pass^1 {row.pass1:.0%}  pass^k {row.pass_k:.0%}")


if __name__ == "__main__":
    raise SystemExit(main())
