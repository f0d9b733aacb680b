"""Tool-call accuracy of a model on our MCP tools: `python -m bench.toolcalls.run`.

Every utterance of dataset.jsonl goes, with our real tool list (names, descriptions, JSON
schemas, as the chat agent sends them), to an OpenAI-compatible endpoint; the first answer's
tool calls are scored against the expected tool and key arguments (bench/toolcalls/scoring.py).

    OPENAI_API_KEY=... python -m bench.toolcalls.run --base-url https://api.deepseek.com/v1 \\
        --model deepseek-chat --out toolcalls-report.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from bench.toolcalls.scoring import Call, Case, Report, report

DATASET = Path(__file__).with_name("dataset.jsonl")
CONTEXT = (
    "Context for this session (as the assistant would know it from earlier tool results): "
    "the user's tasks are web-monitor/dev/hn (Hacker News for AI), threshold-watch/dev/btc "
    "(bitcoin price) and reminder/dev/standup (daily 09:30); the open remediation is "
    "remediation/3f9a1c2b7d4e (checkout-api on cluster cls-7kq2m0ab, namespace shop); "
    "today is 2026-11-22."
)


def load_cases(path: Path = DATASET) -> list[Case]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Case.model_validate_json(line) for line in lines if line.strip()]


async def our_tools() -> list[dict[str, Any]]:
    """Our tools as OpenAI functions, listed from the real MCP server in-process."""
    from mcp import Client

    from ambient.agent import AgentFacade
    from ambient.agent.facade import OWN_SERVER
    from ambient.settings import Environment, Settings
    from mcp_server.server import build_server

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(  # type: ignore[call-arg]
            environment=Environment.TEST, data_dir=Path(data_dir), _env_file=None
        )
        server = build_server(settings, stdio_user="dev")
        facade = AgentFacade()
        facade.add_server(OWN_SERVER, lambda: Client(server, cache=None))
        try:
            return await facade.openai_tools()
        finally:
            await facade.close()


async def ask(
    client: AsyncOpenAI, model: str, tools: list[dict[str, Any]], case: Case
) -> tuple[list[Call], str | None]:
    from ambient.agent.chat import system_prompt

    messages: list[Any] = [
        {"role": "system", "content": system_prompt("dev", "小智", "Asia/Shanghai")},
        {"role": "system", "content": CONTEXT},
        {"role": "user", "content": case.utterance},
    ]
    try:
        completion = await client.chat.completions.create(
            model=model,
            messages=messages,
            tools=tools,  # type: ignore[arg-type]
            temperature=0,
        )
    except Exception as exc:
        return [], f"{type(exc).__name__}: {exc}"
    calls: list[Call] = []
    for call in completion.choices[0].message.tool_calls or []:
        if isinstance(call, ChatCompletionMessageFunctionToolCall):
            try:
                arguments = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                arguments = {}
            calls.append(Call(tool=call.function.name, arguments=arguments))
    return calls, None


async def evaluate(
    client: AsyncOpenAI, model: str, cases: list[Case], *, concurrency: int = 4
) -> Report:
    tools = await our_tools()
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> tuple[Case, list[Call], str | None]:
        async with gate:
            calls, error = await ask(client, model, tools, case)
        return case, calls, error

    return report(model, list(await asyncio.gather(*(one(c) for c in cases))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--model", default=os.environ.get("AMBIENT_LLM_MODEL", "gpt-4o-mini"))
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    key = os.environ.get(args.api_key_env)
    if not key:
        print(f"set {args.api_key_env} (and --base-url for a non-OpenAI endpoint)", file=sys.stderr)
        return 2
    client = AsyncOpenAI(api_key=key, base_url=args.base_url, max_retries=2, timeout=120)
    result = asyncio.run(
        evaluate(client, args.model, load_cases(args.dataset), concurrency=args.concurrency)
    )
    text = result.model_dump_json(indent=2)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(f"model {result.model}: {result.correct}/{result.cases} correct = {result.rate:.1%}")
    for tool, row in result.per_tool.items():
        print(f"  {tool:28} {row['correct']}/{row['cases']}  {row['rate']:.0%}")
    for lang, row in result.per_lang.items():
        print(f"  [{lang}] {row['correct']}/{row['cases']}  {row['rate']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
