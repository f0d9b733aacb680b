"""Recall of `find_tools` on the tool-call data set: `python -m bench.find_tools`.

For every case with expected tools, is every expected tool among the top k that find_tools
ranks for the case's request, over the full server's own tool list (the same index the MCP
tool builds)? Recall@1/3/5 overall, per language and per batch, on the tuning split (a case's
`split` field, else even case numbers: what the word maps were tuned on) and the held-back
split (`split: heldout`, else odd), the misses of each, and the milliseconds a query takes.
A batch is the letters of a case's id (f001 → f; the first, numbered-only cases → "base"); a
batch whose held-back half was read while tuning is marked "looked at": its figure is no
longer a held-back one.

    python -m bench.find_tools [--dataset PATH] [--split even|odd|all] [--batch h] [--json]
    python -m bench.find_tools --offer 5 [--tokenize http://127.0.0.1:8091]

``--offer K``: the chat agent's own choice instead (``ToolOffer``, ambient/agent/chat.py: the
search's best K, plus pinned and already-called tools, for each case with its earlier turns):
the share of cases whose expected tools it offers, which bounds the chat agent's pass, and how
many tools it offers; with ``--tokenize`` (a llama-server's base URL, its ``/tokenize``), the
prompt tokens of the offered tools' JSON, median, p95 and largest, beside the full list's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from statistics import median
from typing import Any

from ambient.domain.tool_search import ToolIndex
from bench.toolcalls.scoring import Case, split_of

DATASET = Path(__file__).parent / "toolcalls" / "dataset.jsonl"
KS = (1, 3, 5)
# Batches whose held-back half has been read (docs/benchmarks.md, "find_tools recall", tells
# when): base and f in round 1, g in round 2, h after round 3's tuning (its first look), i after
# round 4's, j and k (other authors') after round 5's, l–s after their first looks.
LOOKED_AT = frozenset({"base", *"fghijklmnopqrs"})
Rank = Callable[[str], list[str]]


def load(path: Path) -> list[Case]:
    """The cases that expect at least one tool (a no-tool turn has nothing to find)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    cases = [Case.model_validate_json(line) for line in lines if line.strip()]
    return [c for c in cases if c.expected]


def split(cases: Iterable[Case], which: str) -> list[Case]:
    """even: cases numbered 2, 4, … (tuned on); odd: the held-back rest; all: both."""
    if which == "all":
        return list(cases)
    half = "tune" if which == "even" else "heldout"
    return [c for c in cases if split_of(c) == half]


def batch_of(case: Case) -> str:
    return case.id.rstrip("0123456789") or "base"


def found(case: Case, ranked: list[str], k: int) -> bool:
    return {e.tool for e in case.expected} <= set(ranked[:k])


def recall(cases: list[Case], rank: Rank) -> dict[str, Any]:
    """Recall@k overall and per language, each case missed at the largest k, and the time a
    query took (median and slowest, milliseconds)."""
    ranked: dict[str, list[str]] = {}
    took: list[float] = []
    for c in cases:
        started = time.perf_counter()
        ranked[c.id] = rank(c.utterance)
        took.append((time.perf_counter() - started) * 1000)
    top = max(KS)

    def at(group: list[Case]) -> dict[str, float]:
        if not group:
            return {f"@{k}": 0.0 for k in KS}
        return {f"@{k}": sum(found(c, ranked[c.id], k) for c in group) / len(group) for k in KS}

    languages = sorted({c.lang for c in cases})
    batches = sorted({batch_of(c) for c in cases})
    return {
        "cases": len(cases),
        "recall": at(cases),
        "ms_per_query": {"median": median(took) if took else 0.0, "max": max(took, default=0.0)},
        "by_language": {lang: at([c for c in cases if c.lang == lang]) for lang in languages},
        "by_batch": {
            b: {"cases": sum(batch_of(c) == b for c in cases)}
            | at([c for c in cases if batch_of(c) == b])
            for b in batches
        },
        "misses": [
            {
                "id": c.id,
                "lang": c.lang,
                "request": c.utterance,
                "expected": [e.tool for e in c.expected],
                "ranked": ranked[c.id][:top],
            }
            for c in cases
            if not found(c, ranked[c.id], top)
        ],
    }


async def full_index() -> ToolIndex:
    """The index find_tools builds, from the full server's own tool list."""
    from ambient.settings import Environment, Settings
    from mcp_server.server import build_server
    from mcp_server.tools.system import tool_docs

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(  # type: ignore[call-arg]
            environment=Environment.TEST, data_dir=Path(data_dir), _env_file=None
        )
        tools = await build_server(settings).list_tools()
    return ToolIndex(tool_docs(tools))


def _print(name: str, result: dict[str, Any]) -> None:
    def row(figures: dict[str, float]) -> str:
        return "  ".join(f"recall{k} {v:.3f}" for k, v in figures.items())

    took = result["ms_per_query"]
    print(
        f"{name}: {result['cases']} cases  {row(result['recall'])}  "
        f"({took['median']:.2f} ms a query, slowest {took['max']:.2f})"
    )
    for lang, figures in result["by_language"].items():
        print(f"  {lang}: {row(figures)}")
    for batch, figures in result["by_batch"].items():
        looked = "  (held-back half looked at)" if batch in LOOKED_AT and name == "odd" else ""
        n = figures.pop("cases")
        print(f"  batch {batch}: {n} cases  {row(figures)}{looked}")
    for miss in result["misses"]:
        print(f"  miss {miss['id']} [{miss['lang']}] {miss['request']!r}")
        print(f"       expected {miss['expected']}; top 5 {miss['ranked']}")


async def offer_sizes(k: int, splits: list[str], tokenize: str | None) -> None:
    """What the chat agent offers for each case of the data set's splits (``--offer``)."""
    import logging

    import httpx

    from ambient.agent.chat import ToolOffer

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per /tokenize otherwise
    from ambient.settings import Settings
    from bench.toolcalls.run import CONTEXT, conversation, load_cases, our_tools

    every = await our_tools("full")
    offer = ToolOffer(k, Settings().chat_pinned_tools)
    cases = [
        c for c in load_cases() if c.expected and all(e.tool != "find_tools" for e in c.expected)
    ]

    async def tokens(client: httpx.AsyncClient, tools: list[dict[str, Any]]) -> int:
        text = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        answer = await client.post(f"{tokenize}/tokenize", json={"content": text})
        answer.raise_for_status()
        return len(answer.json()["tokens"])

    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        if tokenize:
            print(f"full list: {len(every)} tools, {await tokens(client, every)} tokens")
            sized = [(await tokens(client, [t]), t["function"]["name"]) for t in every]
            largest = ", ".join(f"{name} {size}" for size, name in sorted(sized)[::-1][:4])
            print(f"largest tools (tokens): {largest}")
        for which in splits:
            group = split(cases, which)
            offered, sizes, count = 0, [], []
            for c in group:
                messages = [
                    {"role": "system", "content": CONTEXT},
                    *conversation(c.history),
                    {"role": "user", "content": c.utterance},
                ]
                chosen = offer.tools(every, messages)
                offered += {e.tool for e in c.expected} <= {t["function"]["name"] for t in chosen}
                count.append(len(chosen))
                if tokenize:
                    sizes.append(await tokens(client, chosen))
            line = (
                f"{which}: {len(group)} cases, expected tools offered {offered}/{len(group)} "
                f"= {offered / len(group):.3f}, tools offered median {median(count)}"
            )
            if sizes:
                ordered = sorted(sizes)
                p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
                line += f", tokens median {median(sizes):.0f} p95 {p95} max {ordered[-1]}"
            print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--split", choices=["even", "odd", "all"], action="append")
    parser.add_argument("--batch", action="append", help="only these batches (e.g. h, base)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--offer", type=int, help="the chat agent's offer of K searched tools")
    parser.add_argument("--tokenize", help="with --offer: a llama-server URL to count tokens")
    args = parser.parse_args(argv)
    if args.offer is not None:
        asyncio.run(offer_sizes(args.offer, args.split or ["even", "odd"], args.tokenize))
        return
    index = asyncio.run(full_index())

    def rank(request: str) -> list[str]:
        return [h.tool.name for h in index.search(request, max(KS))]

    # A case that expects find_tools itself (the searcher is not in its own index) has no answer.
    names = {t.name for t in index.tools}
    cases = [c for c in load(args.dataset) if {e.tool for e in c.expected} <= names]
    if args.batch:
        cases = [c for c in cases if batch_of(c) in args.batch]
    results = {which: recall(split(cases, which), rank) for which in args.split or ["even", "odd"]}
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return
    print(f"find_tools over {len(index.tools)} tools, {args.dataset}")
    for which, result in results.items():
        _print(which, result)


if __name__ == "__main__":
    main()
