"""The product's own LLM steps, run through the product's code against a real model.

    python -m bench.llm_steps --local                    # all three steps, the `make llm` model
    python -m bench.llm_steps --local --step scoring --runs 3
    python -m bench.llm_steps --step events              # the configured OpenAI-compatible model
    python -m bench.llm_steps --rules --step briefing    # no model: the offline rules

- **briefing**: generated days of logs (bench/loggen, as the reduction tests use) reduced into
  the briefing's inputs, varied in language, size, bursts, alarms, fixes and failed sources; the
  model writes each briefing through ``write_briefing`` and every summary's claims not in its
  input are counted (``ambient/briefing/faithfulness.py``), with how many were therefore not spoken.
- **scoring**: generated alerts (English and Chinese, every metric and namespace kind) through
  ``score_alert``: valid on the first request, valid after the one retry, offline
  fallback; and agreement of the model's attempt budget (1–6) with the offline rules'.
- **events**: the labelled batches in bench/llm_steps_events.jsonl (labels from the event
  agent's documented policy, docs/agent.md) through ``decide``: accuracy overall and per label,
  the offline rules' beside it.

Every figure printed is measured by this run; ``--out`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from activities.event_agent import decide
from ambient.briefing.faithfulness import unsupported_claims
from ambient.briefing.logreport import LogReducer
from ambient.briefing.logreport_markdown import render_markdown
from ambient.briefing.logs import fill_from_report
from ambient.briefing.models import ALARMS_NOT_CONFIGURED, BriefingInputs, SourceNote
from ambient.briefing.writer import draft_text, llm_prompt, write_briefing
from ambient.clients.llm import LLMClient
from ambient.clients.tencent.alarms import AlarmRecord
from ambient.domain.event_digest import EventBrief, notable, offline_verdict, written_in
from ambient.remediation.alerts import Alert
from ambient.remediation.scorer import score_alert
from ambient.remediation.scores import offline_score
from ambient.settings import Settings
from bench.loggen import DAY, generate

EVENTS = Path(__file__).with_name("llm_steps_events.jsonl")
STEPS = ("briefing", "scoring", "events")


# --- inputs ---------------------------------------------------------------------------


def briefing_days(count: int) -> list[BriefingInputs]:
    """``count`` varied days: size, templates, bursts, language, alarms, fixes, failures."""
    days = []
    for n in range(count):
        rng = random.Random(1000 + n)
        logs = generate(
            rng.choice([800, 2000, 5000]),
            seed=100 + n,
            template_count=rng.choice([12, 20, 30]),
            bursts=rng.choice([0, 1, 2, 3]),
        )
        reducer = LogReducer()
        reducer.add_many((when, level, message) for when, level, message, _ in logs.lines)
        report = reducer.report(start=DAY, end=DAY + timedelta(days=1))
        inputs = BriefingInputs(
            date=DAY.date().isoformat(),
            language="zh" if n % 2 == 0 else "en",
            report_markdown=render_markdown(report, max_rows=12, tz=UTC),
            notes=[SourceNote(source="logs", ok=True, detail=f"{len(logs.lines)} lines read")],
        )
        fill_from_report(inputs, report)
        if n % 3 == 0:
            inputs.notes.append(SourceNote(source="alarms", ok=False, detail=ALARMS_NOT_CONFIGURED))
        else:
            inputs.alarms_configured = True
            inputs.alarms = [
                AlarmRecord(
                    source=rng.choice(["monitor", "cls"]),
                    name=rng.choice(["CPU > 90%", "5xx rate", "磁盘使用率", "Pod 重启"]),
                    status=rng.choice(["firing", "resolved"]),
                    level=rng.choice(["critical", "warning"]),
                    target=rng.choice(["checkout", "payment-service", "ins-7kq2m0ab"]),
                    time=DAY + timedelta(hours=rng.randint(0, 23), minutes=rng.randint(0, 59)),
                )
                for _ in range(rng.randint(0, 4))
            ]
            inputs.notes.append(
                SourceNote(source="alarms", ok=True, detail=f"{len(inputs.alarms)} alarms")
            )
        if n % 4 == 1:
            inputs.fixed.append("checkout: rolled back to revision 41 after 5xx rate 12% at 03:10")
        if n % 5 == 2:
            inputs.needs_person.append("payment-service: restart did not help, error rate 8%")
        days.append(inputs)
    return days


ALERT_TEXTS = [
    ("error_rate", 0.05, "5xx error rate {v:.0%} on {w} (threshold {t:.0%})"),
    ("error_rate", 0.05, "{w} 接口错误率 {v:.0%}，超过阈值 {t:.0%}"),
    ("latency_p99_ms", 800, "p99 latency of {w} is {v:.0f} ms"),
    ("latency_p99_ms", 800, "{w} 的 P99 延迟 {v:.0f} 毫秒，用户下单变慢"),
    ("cpu_percent", 85, "CPU at {v:.0f}% on {w} pods"),
    ("cpu_percent", 85, "{w} CPU 使用率 {v:.0f}%"),
    ("memory_percent", 90, "memory {v:.0f}% on {w}, OOMKilled twice in 10 minutes"),
    ("memory_percent", 90, "{w} 内存使用率 {v:.0f}%，发生 OOM"),
    ("restarts", 3, "{w} restarted {v:.0f} times in 15 minutes (CrashLoopBackOff)"),
    ("restarts", 3, "{w} 15 分钟内重启 {v:.0f} 次"),
    ("queue_depth", 1000, "consumer lag {v:.0f} messages on {w}"),
    ("queue_depth", 1000, "{w} 消息积压 {v:.0f} 条，下游处理不过来"),
]
WORKLOADS = ["checkout", "payment-service", "orders-api", "user-center", "search", "report-job"]
NAMESPACES = ["prod", "production", "staging", "default", "dev"]


def alerts(count: int) -> list[Alert]:
    """``count`` alerts: every text (half Chinese) × workloads × namespaces × how far over."""
    rng = random.Random(7)
    out = []
    for n in range(count):
        metric, threshold, text = ALERT_TEXTS[n % len(ALERT_TEXTS)]
        workload = WORKLOADS[(n // len(ALERT_TEXTS)) % len(WORKLOADS)]
        value = threshold * rng.choice([0.9, 1.1, 1.5, 2.5, 6.0])
        labels = {}
        if n % 4 == 0:
            labels["severity"] = rng.choice(["critical", "warning", "p1"])
        if n % 6 == 0:
            labels["tier"] = rng.choice(["user-facing", "internal"])
        out.append(
            Alert(
                source=rng.choice(["threshold_watch", "monitor", "cls", "manual"]),
                cluster_id="cls-" + "".join(rng.choices("abcdefgh0123456789", k=8)),
                namespace=NAMESPACES[n % len(NAMESPACES)],
                workload=workload,
                metric=metric,
                value=round(value, 3),
                threshold=threshold,
                message=text.format(v=value, t=threshold, w=workload),
                labels=labels,
            )
        )
    return out


def event_cases(path: Path = EVENTS) -> list[dict[str, Any]]:
    """The labelled batches, notify and hold taking turns (the file groups them): a run its
    deadline cuts short has still measured both decisions, not only the first label's."""
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    notify = [c for c in cases if c["notify"]]
    hold = [c for c in cases if not c["notify"]]
    turns = [c for pair in zip(notify, hold, strict=False) for c in pair]
    shorter = min(len(notify), len(hold))
    return turns + notify[shorter:] + hold[shorter:]


def briefs(case: dict[str, Any]) -> list[EventBrief]:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    return [
        EventBrief(id=i, kind=e["kind"], task=e.get("task"), at=at, gist=e.get("gist", ""))
        for i, e in enumerate(case["events"], 1)
    ]


# --- steps -----------------------------------------------------------------------------


def _seconds(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median_s": round(statistics.median(ordered), 1),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
    }


class Deadline:
    """``--max-minutes``: stop starting cases after this; the figures cover the finished ones."""

    def __init__(self, minutes: float | None) -> None:
        self.at = time.monotonic() + minutes * 60 if minutes else None
        self.hit = False

    def passed(self) -> bool:
        self.hit = self.hit or (self.at is not None and time.monotonic() > self.at)
        return self.hit


async def run_briefing(llm: LLMClient, days: int, runs: int, deadline: Deadline) -> dict[str, Any]:
    summaries = faithful = refused = invalid = 0
    kinds: Counter[str] = Counter()
    per_summary: list[int] = []
    seconds: list[float] = []
    for run in range(runs):
        for day, inputs in enumerate(briefing_days(days), 1):
            if deadline.passed():
                break
            case = inputs.model_copy(deep=True)
            started = time.monotonic()
            written = await write_briefing(llm, case)
            seconds.append(time.monotonic() - started)
            if llm.offline:
                # The checker's own floor: the offline writer only restates its input.
                written.llm_draft = written.draft
                written.unsupported = unsupported_claims(
                    draft_text(written.draft), llm_prompt(case)
                )
            if written.llm_draft is None:
                invalid += 1
                note = next((n.detail for n in case.notes if n.source == "llm"), "")
                print(f"briefing run {run + 1} day {day}: no valid draft — {note}", flush=True)
                continue
            summaries += 1
            per_summary.append(len(written.unsupported))
            kinds.update(u.kind for u in written.unsupported)
            if written.unsupported:
                refused += 1
            else:
                faithful += 1
            claims = "; ".join(map(str, written.unsupported[:6]))
            print(
                f"briefing run {run + 1} day {day} [{inputs.language}] "
                f"{len(written.unsupported)} unsupported {claims} ({seconds[-1]:.0f} s)",
                flush=True,
            )
    return {
        "days": days,
        "runs": runs,
        "stopped_by_deadline": deadline.hit,
        "asked": len(seconds),
        "summaries": summaries,
        "no_valid_draft": invalid,
        "faithful": faithful,
        "with_violations": refused,
        "violations": sum(per_summary),
        "violations_per_summary": round(sum(per_summary) / summaries, 2) if summaries else None,
        "violations_by_kind": dict(kinds),
        **_seconds(seconds),
    }


async def run_scoring(llm: LLMClient, count: int, runs: int, deadline: Deadline) -> dict[str, Any]:
    first = retried = fallback = agree = 0
    diffs: list[int] = []
    failures: Counter[str] = Counter()
    seconds: list[float] = []
    total = 0
    for run in range(runs):
        for n, alert in enumerate(alerts(count)):
            if deadline.passed():
                break
            total += 1
            started = time.monotonic()
            scored = await score_alert(alert, [], llm)
            seconds.append(time.monotonic() - started)
            offline = offline_score(alert, [])
            if scored.card.generated_by != "llm":
                fallback += 1
                failures[(scored.failure or "?")[:80]] += 1
                verdict = f"fallback ({scored.failure})"
            else:
                first += scored.attempts == 1
                retried += scored.attempts > 1
                agree += scored.card.budget == offline.budget
                diffs.append(abs(scored.card.score - offline.score))
                verdict = (
                    f"llm score {scored.card.score} budget {scored.card.budget} "
                    f"(offline {offline.score}/{offline.budget}, {scored.attempts} request(s))"
                )
            print(f"scoring run {run + 1} #{n + 1}: {verdict} ({seconds[-1]:.0f} s)", flush=True)
    valid = first + retried
    return {
        "alerts": count,
        "runs": runs,
        "stopped_by_deadline": deadline.hit,
        "scored": total,
        "valid_first_request": first,
        "valid_after_retry": retried,
        "validity_rate": round(valid / total, 4) if total else None,
        "first_request_validity_rate": round(first / total, 4) if total else None,
        "fallback": fallback,
        "fallback_rate": round(fallback / total, 4) if total else None,
        "fallback_reasons": dict(failures),
        "budget_agreement_with_offline": round(agree / valid, 4) if valid else None,
        "median_abs_score_diff": statistics.median(diffs) if diffs else None,
        **_seconds(seconds),
    }


async def run_events(llm: LLMClient, runs: int, deadline: Deadline) -> dict[str, Any]:
    cases = event_cases()
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    offline_right: Counter[str] = Counter()
    asked: Counter[str] = Counter()
    asked_right: Counter[str] = Counter()
    messages = in_language = overruled = loops = 0
    fallback = 0
    seconds: list[float] = []
    for run in range(runs):
        for case in cases:
            if deadline.passed():
                break
            label = "notify" if case["notify"] else "hold"
            events = briefs(case)
            started = time.monotonic()
            verdict = await decide(llm, events)
            seconds.append(time.monotonic() - started)
            seen[label] += 1
            # Only a batch with a notable event reaches the model (routine ones are the rules').
            if any(notable(e.kind) for e in events):
                if verdict.generated_by == "offline" and not verdict.overruled:
                    fallback += 1  # no valid answer (or one that looped twice): the rules'
                    loops += "repeated itself" in verdict.decision.reason
                else:
                    # The model's own answer (the policy tells notable events whatever it says).
                    asked[label] += 1
                    asked_right[label] += (not verdict.overruled) == case["notify"]
                    overruled += verdict.overruled
            language = ""
            if verdict.generated_by != "offline" and verdict.decision.notify:
                messages += 1
                ok = written_in(verdict.decision, case["lang"])
                in_language += ok
                language = f", its language{'' if ok else ' NOT'} {case['lang']}: "
                language += repr(verdict.decision.title)
            if verdict.decision.notify == case["notify"]:
                right[label] += 1
            if run == 0 and offline_verdict(events).decision.notify == case["notify"]:
                offline_right[label] += 1
            print(
                f"events run {run + 1} {case['id']} [{case['lang']}] label {label}: "
                f"{'notify' if verdict.decision.notify else 'hold'} by {verdict.generated_by}"
                f"{' (the model said hold)' if verdict.overruled else ''}"
                f" ({seconds[-1]:.0f} s){language}",
                flush=True,
            )
    total = sum(seen.values())
    labels = sorted(seen)
    first_run = cases[: min(len(cases), total)]
    per_run = Counter("notify" if c["notify"] else "hold" for c in first_run)
    return {
        "cases": len(cases),
        "events": sum(len(c["events"]) for c in cases),
        "runs": runs,
        "stopped_by_deadline": deadline.hit,
        "decided": total,
        "accuracy": round(sum(right.values()) / total, 4) if total else None,
        "per_label": {label: round(right[label] / seen[label], 4) for label in labels},
        "answered_by_model": sum(asked.values()),
        "asked_accuracy": round(sum(asked_right.values()) / sum(asked.values()), 4)
        if asked
        else None,
        "asked_per_label": {
            label: round(asked_right[label] / asked[label], 4) for label in sorted(asked)
        },
        "overruled": overruled,
        "model_messages": messages,
        "messages_in_events_language": round(in_language / messages, 4) if messages else None,
        "fallback": fallback,
        "fallback_for_a_loop": loops,
        "offline_rules_accuracy": round(sum(offline_right.values()) / len(first_run), 4)
        if first_run
        else None,
        "offline_rules_per_label": {
            label: round(offline_right[label] / per_run[label], 4)
            for label in labels
            if per_run[label]
        },
        **_seconds(seconds),
    }


# --- command ----------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    model_sha256: str | None = None
    if args.rules:
        # No model: the offline writer through the checker, the event rules on the labels.
        settings = Settings(openai_api_key=None, local_llm=False)
    elif args.local:
        from ambient.local_llm import MODEL_SHA256, ensure_server

        # Reused when it already serves the model (the server is shared): never stopped here.
        await asyncio.to_thread(ensure_server, Settings(local_llm=True))
        settings = Settings(local_llm=True)
        model_sha256 = MODEL_SHA256
    else:
        settings = Settings()
        if settings.openai_api_key is None:
            raise SystemExit("bench.llm_steps: no model: --local, or set OPENAI_API_KEY")
    if args.timeout:
        settings = settings.model_copy(update={"llm_timeout": args.timeout})
    llm = LLMClient(settings)
    report: dict[str, Any] = {
        "command": "python -m bench.llm_steps " + " ".join(sys.argv[1:]),
        "model": settings.llm_model,
        "model_sha256": model_sha256,
        "endpoint": settings.llm_description,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    steps = [args.step] if args.step else list(STEPS)
    deadline = Deadline(args.max_minutes)
    for step in steps:
        started = time.monotonic()
        if step == "briefing":
            result = await run_briefing(llm, args.days, args.runs, deadline)
        elif step == "scoring":
            result = await run_scoring(llm, args.alerts, args.runs, deadline)
        else:
            result = await run_events(llm, args.runs, deadline)
        result["wall_s"] = round(time.monotonic() - started)
        report[step] = result
        print(json.dumps({step: result}, ensure_ascii=False, indent=2), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.llm_steps", description=__doc__)
    p.add_argument("--local", action="store_true", help="the `make llm` model (reused/started)")
    p.add_argument(
        "--rules", action="store_true", help="no model: the offline rules (the checker's floor)"
    )
    p.add_argument("--step", choices=STEPS, help="one step (default: all three)")
    p.add_argument("--runs", type=int, default=1, help="each case K times")
    p.add_argument("--days", type=int, default=20, help="briefing inputs (default 20)")
    p.add_argument("--alerts", type=int, default=120, help="alerts to score (default 120)")
    p.add_argument(
        "--max-minutes",
        type=float,
        help="start no case after this many minutes (a loaded machine); figures say so",
    )
    p.add_argument("--timeout", type=float, help="seconds a request may take")
    p.add_argument("--out", help="write the report JSON here")
    return p


if __name__ == "__main__":
    asyncio.run(main(parser().parse_args()))
