"""Can the local model tell, asked apart, *whether* a voice turn needs one of our tools?

The voice profile's misses are turns that get a call and should not (thanks, arithmetic, "pause
it" with nothing named): the model picks well *which* tool and badly *whether* (docs/
benchmarks.md, round 7). A served model could ask the model that question first and offer our
tools only when the answer is yes. This probe measures whether the answer separates the turns,
before anything is built on it: for each case it reads the probability of the first answer
token from the local server's ``/completion`` (``n_probs``), two ways:

- ``routed``: the turn's own prompt (role prompt, our 9 tools and 小智's 9, the history, the
  turn) with a routing question appended as one more user message, answered TOOL / ASK / CHAT
  (the prompt's prefix stays in the server's cache);
- ``yesno``: a short prompt of its own without tools: "is this turn about the user's ops system?
  是 / 否", P(是) against P(否).

It prints each case's scores and, for ``yesno``, the AUC of P(是) between the turns that need a
tool and those that need none (ask-backs apart) and what each threshold keeps and cuts.

    python -m bench.toolcalls.gate_probe --split tune --way yesno
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.toolcalls.run import VOICE_DATASET, conversation, load_cases, our_tools
from bench.toolcalls.scoring import Case, part_of
from bench.toolcalls.xiaozhi_env import XIAOZHI_TOOLS
from mcp_server.voice_prompt import INSTRUCTIONS

ROUTED = (
    "（系统路由问题，不是用户说的）用户最后那句话该怎么处理？只回答一个词：TOOL = 调用上面的一个"
    "工具，说清了对象；ASK = 要操作任务或修复但没说清是哪一个，先问；CHAT = 直接用话回答（谢谢、"
    "闲聊、算术、时间、常识）。"
)
YESNO_SYSTEM = (
    "你是一个语音助手的分类器。用户的运维系统有：后台任务（网页监控、价格盯盘、提醒）、服务的修复和"
    "回滚审批、Kubernetes 集群、报错记录、每日早报。判断用户最后一句话是不是在查询或操作这个运维"
    "系统里的东西。只回答 是 或 否。"
)
YESNO_ASK = "\n\n这句话是在查询或操作运维系统吗？回答 是 或 否。"
LABELS = ("TOOL", "ASK", "CHAT")


def truth(case: Case) -> str:
    if case.expected:
        return "TOOL"
    return "ASK" if part_of(case) == "ask-back" else "CHAT"


def transcript(case: Case) -> str:
    """The conversation as lines of text, the turn to judge last."""
    lines = [
        f"{'用户' if m['role'] == 'user' else '助手'}：{m['content']}"
        for m in conversation(case.history)
        if m.get("role") in ("user", "assistant") and m.get("content")
    ]
    return "\n".join([*lines, f"用户（最后一句）：{case.utterance}"])


async def first_token(
    http: httpx.AsyncClient, url: str, messages: list[dict[str, Any]], tools: list[Any] | None
) -> dict[str, float]:
    """The probabilities of the first answer token, by token text (stripped)."""
    body: dict[str, Any] = {"messages": messages, **({"tools": tools} if tools else {})}
    prompt = (await http.post(f"{url}/apply-template", json=body)).raise_for_status().json()
    answer = await http.post(
        f"{url}/completion",
        json={
            "prompt": prompt["prompt"],
            "n_predict": 1,
            "temperature": 0,
            "n_probs": 10,
            "cache_prompt": True,
        },
    )
    top = answer.raise_for_status().json()["completion_probabilities"][0]["top_logprobs"]
    probs: dict[str, float] = {}
    for entry in top:
        token = entry["token"].strip()
        probs[token] = probs.get(token, 0.0) + math.exp(entry["logprob"])
    return probs


async def probe(cases: list[Case], way: str, url: str) -> list[tuple[Case, str, float, float]]:
    """(case, truth, score, seconds): the score is P(是) for yesno, the label index for routed."""
    tools = [*await our_tools("voice"), *XIAOZHI_TOOLS] if way == "routed" else None
    rows = []
    async with httpx.AsyncClient(timeout=600, trust_env=False) as http:
        for case in cases:
            started = time.monotonic()
            if way == "routed":
                messages = [
                    {"role": "system", "content": INSTRUCTIONS},
                    *conversation(case.history),
                    {"role": "user", "content": case.utterance},
                    {"role": "user", "content": ROUTED},
                ]
            else:
                messages = [
                    {"role": "system", "content": YESNO_SYSTEM},
                    {"role": "user", "content": transcript(case) + YESNO_ASK},
                ]
            probs = await first_token(http, url, messages, tools)
            seconds = time.monotonic() - started
            if way == "routed":
                # A label's first token is a prefix of it ("TO", "AS", "CH").
                by_label = {
                    label: sum(p for tok, p in probs.items() if tok and label.startswith(tok))
                    for label in LABELS
                }
                got = max(LABELS, key=lambda label: by_label[label])
                score = float(LABELS.index(got))
                shown = " ".join(f"{k}={v:.2f}" for k, v in by_label.items())
            else:
                yes = probs.get("是", 0.0) + probs.get("Yes", 0.0)
                no = probs.get("否", 0.0) + probs.get("No", 0.0) + probs.get("不", 0.0)
                score = yes / (yes + no) if yes + no else 0.5
                shown = f"P(是)={score:.2f}"
            rows.append((case, truth(case), score, seconds))
            print(f"{case.id} {truth(case)} {shown} {seconds:.1f}s {case.utterance}", flush=True)
    return rows


def summarize(rows: list[tuple[Case, str, float, float]], way: str) -> None:
    seconds = sorted(r[3] for r in rows)
    print(f"{len(rows)} cases, median {seconds[len(seconds) // 2]:.2f} s a case")
    if way == "routed":
        confusion = Counter((t, LABELS[int(s)]) for _, t, s, _ in rows)
        right = sum(n for (t, got), n in confusion.items() if t == got)
        print(f"right {right}/{len(rows)}; (truth, answer): {dict(confusion)}")
        return
    tool = [s for _, t, s, _ in rows if t == "TOOL"]
    for against in ("CHAT", "ASK"):
        other = [s for _, t, s, _ in rows if t == against]
        if tool and other:
            pairs = sum((a > b) + 0.5 * (a == b) for a in tool for b in other)
            print(
                f"AUC of P(是), TOOL ({len(tool)}) vs {against} ({len(other)}): "
                f"{pairs / (len(tool) * len(other)):.3f}"
            )
    chat = [s for _, t, s, _ in rows if t == "CHAT"]
    for threshold in (0.3, 0.5, 0.7, 0.8):
        print(
            f"offer our tools when P(是) ≥ {threshold}: tool turns kept "
            f"{sum(s >= threshold for s in tool)}/{len(tool)}, no-tool turns cut "
            f"{sum(s < threshold for s in chat)}/{len(chat)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=VOICE_DATASET)
    parser.add_argument("--split", default="tune")
    parser.add_argument("--way", choices=("routed", "yesno"), default="yesno")
    parser.add_argument("--url", default="http://127.0.0.1:8091", help="a running llama-server")
    args = parser.parse_args()
    cases = [c for c in load_cases(args.dataset) if c.split == args.split]
    summarize(asyncio.run(probe(cases, args.way, args.url)), args.way)


if __name__ == "__main__":
    main()
