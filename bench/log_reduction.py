"""Log reduction benchmark: a generated day of logs (ground truth from the generator)
through our reducer and through Drain3 with its default settings, in the same run.

    python -m bench.log_reduction --lines 1000000 --runs 3

Measures, for our reducer: wall and CPU time of the reduction (lines already in memory as
(time, level, message); generation is not timed), tokens of `render_markdown` counted with
tiktoken's cl100k_base (offline, from the file the `bpe-openai` package ships), the share of
true ERROR/CRITICAL templates kept exactly (one report template holding exactly that
template's lines) in the report and in the rendered text, grouping accuracy (LogPAI's: the
share of lines whose predicted group is exactly a true group) and pairwise F1, and the
injected bursts found. For Drain3 defaults (`TemplateMiner` with `TemplateMinerConfig()`,
no masking, grouped by level and cluster as ours is): time, grouping accuracy, F1.
With `--cli` also the end-to-end command (`ambient logs templates --per-line`) on the same
lines written as a file (JSON lines, every 5th line timestamped text), once.
Every printed figure is computed in the run.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from ambient.briefing.logreport import LogReducer, LogReport
from ambient.briefing.logreport_markdown import render_markdown
from ambient.briefing.logtemplates import Masker, mask_line
from ambient.domain.loglevels import ERROR_LEVELS
from bench.loggen import GeneratedLogs, file_lines, generate

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def cl100k() -> Any:
    """tiktoken's cl100k_base without the network: the `bpe-openai` package ships the file;
    placed in a TIKTOKEN_CACHE_DIR under the name tiktoken looks for (sha1 of the URL)."""
    import bpe_openai
    import tiktoken

    cache = Path(tempfile.gettempdir()) / "ambient-tiktoken-cache"
    cache.mkdir(exist_ok=True)
    target = cache / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if not target.exists():
        source = Path(bpe_openai.__file__).parent / "data" / "cl100k_base.tiktoken.gz"
        target.write_bytes(gzip.decompress(source.read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    return tiktoken.get_encoding("cl100k_base")


def grouping_scores(predicted: Sequence[Hashable], truth: Sequence[int]) -> tuple[float, float]:
    """(grouping accuracy, pairwise F1) of a predicted grouping against the true one."""
    joint = Counter(zip(predicted, truth, strict=True))
    per_pred = Counter(predicted)
    per_true = Counter(truth)
    exact = sum(n for (p, t), n in joint.items() if per_pred[p] == n and per_true[t] == n)

    def pairs(counts: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    together, pred_pairs, true_pairs = pairs(joint), pairs(per_pred), pairs(per_true)
    precision = together / pred_pairs if pred_pairs else 1.0
    recall = together / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return exact / len(truth), f1


def exact_groups(predicted: Sequence[Hashable], truth: Sequence[int]) -> dict[int, Hashable]:
    """True template -> the predicted group that holds exactly its lines, where there is one."""
    joint = Counter(zip(predicted, truth, strict=True))
    per_pred = Counter(predicted)
    per_true = Counter(truth)
    return {t: p for (p, t), n in joint.items() if per_pred[p] == n and per_true[t] == n}


def timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_ours(
    lines: list[tuple[Any, str, str]],
) -> tuple[LogReport, list[str], LogReducer]:
    reducer = LogReducer()
    add = reducer.add
    groups = [add(when, level, message) for when, level, message in lines]
    report = reducer.report()
    ids: dict[int, str] = {}
    predicted = [ids.get(g) or ids.setdefault(g, reducer.group_template_id(g)) for g in groups]
    return report, predicted, reducer


def _mask_chunk(messages: list[str]) -> list[str]:
    masker = Masker()  # its word cache warms within a few hundred lines of a chunk
    return [mask_line(m, masker) for m in messages]


def run_ours_in_processes(
    lines: list[tuple[Any, str, str]], processes: int, chunk: int = 50_000
) -> tuple[LogReport, list[str], LogReducer]:
    """The same reduction with masking (the stateless half of the work) in worker
    processes; this process counts and clusters chunk by chunk as masked chunks return."""
    reducer = LogReducer()
    groups: list[int] = []
    chunks = [lines[i : i + chunk] for i in range(0, len(lines), chunk)]
    with ProcessPoolExecutor(processes) as pool:
        masked = pool.map(_mask_chunk, ([m for _, _, m in c] for c in chunks))
        for part, texts in zip(chunks, masked, strict=True):
            groups += reducer.add_many(part, texts)
    report = reducer.report()
    ids: dict[int, str] = {}
    predicted = [ids.get(g) or ids.setdefault(g, reducer.group_template_id(g)) for g in groups]
    return report, predicted, reducer


def timed_with_children(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """Like `timed`, CPU time including worker processes that ended inside."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result, wall, cpu = timed(work)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result, wall, cpu + children


def run_drain3_default(lines: list[tuple[Any, str, str]]) -> list[tuple[str, int]]:
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    miner = TemplateMiner(config=TemplateMinerConfig())  # defaults, no drain3.ini read
    return [(level, miner.add_log_message(message)["cluster_id"]) for _, level, message in lines]


def bursts_found(logs: GeneratedLogs, report: LogReport, truth_to_id: dict[int, Hashable]) -> int:
    found = 0
    for burst in logs.bursts:
        tid = truth_to_id.get(burst.template)
        if any(
            a.kind == "burst"
            and a.template_id == tid
            and a.at is not None
            and burst.start - timedelta(minutes=5) <= a.at <= burst.end
            for a in report.anomalies
        ):
            found += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of our reducer (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drain3-lines", type=int, default=None, help="default: --lines")
    parser.add_argument("--cli", action="store_true", help="also time the command end to end")
    parser.add_argument(
        "--processes", type=int, default=0, help="also time masking in N worker processes"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    logs, gen_wall, _ = timed(lambda: generate(args.lines, seed=args.seed))
    lines = [(when, level, message) for when, level, message, _ in logs.lines]
    truth = [line[3] for line in logs.lines]
    print(
        f"generated {len(lines):,} lines, {len(logs.templates)} templates, "
        f"{len(logs.bursts)} bursts in {gen_wall:.1f} s (not timed below)"
    )

    walls, cpus = [], []
    report: LogReport | None = None
    predicted: list[str] = []
    for run in range(args.runs):
        (report, predicted, _), wall, cpu = timed(lambda: run_ours(lines))
        walls.append(wall)
        cpus.append(cpu)
        print(f"ours run {run + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    assert report is not None
    parallel: dict[str, Any] | None = None
    if args.processes:
        p_walls, p_cpus, same = [], [], True
        for run in range(args.runs):
            (_, p_predicted, _), wall, cpu = timed_with_children(
                lambda: run_ours_in_processes(lines, args.processes)
            )
            p_walls.append(wall)
            p_cpus.append(cpu)
            same = same and p_predicted == predicted
            print(f"ours, masking in {args.processes} processes, run {run + 1}: {wall:.2f} s wall")
        parallel = {
            "processes": args.processes,
            "wall_s_median": round(statistics.median(p_walls), 2),
            "wall_s_all": [round(w, 2) for w in p_walls],
            "cpu_s_median_all_processes": round(statistics.median(p_cpus), 2),
            "same_grouping_as_one_process": same,
        }
    accuracy, f1 = grouping_scores(predicted, truth)
    exact = exact_groups(predicted, truth)
    text = render_markdown(report)
    tokens = len(cl100k().encode(text))
    errors = [t.index for t in logs.templates if t.level in ERROR_LEVELS]
    listed = {t.template_id: t for t in report.templates}
    kept = [i for i in errors if exact.get(i) in listed]
    kept_text = [i for i in kept if listed[str(exact[i])].template in text]
    found = bursts_found(logs, report, dict(exact))

    drain_lines = lines[: args.drain3_lines or len(lines)]
    drain_pred, drain_wall, drain_cpu = timed(lambda: run_drain3_default(drain_lines))
    drain_accuracy, drain_f1 = grouping_scores(drain_pred, truth[: len(drain_lines)])
    drain_exact = exact_groups(drain_pred, truth[: len(drain_lines)])
    drain_errors = [i for i in errors if i in set(truth[: len(drain_lines)])]
    drain_error_exact = sum(1 for i in drain_errors if i in drain_exact)

    result = {
        "lines": len(lines),
        "true_templates": len(logs.templates),
        "ours": {
            "runs": args.runs,
            "wall_s_median": round(statistics.median(walls), 2),
            "wall_s_all": [round(w, 2) for w in walls],
            "cpu_s_median": round(statistics.median(cpus), 2),
            "lines_per_s": round(len(lines) / statistics.median(walls)),
            "templates_found": report.template_count,
            "grouping_accuracy": round(accuracy, 4),
            "pairwise_f1": round(f1, 4),
            "error_templates_true": len(errors),
            "error_templates_kept_exactly_in_report": len(kept),
            "error_templates_kept_exactly_in_text": len(kept_text),
            "report_tokens_cl100k": tokens,
            "report_chars": len(text),
            "bursts_injected": len(logs.bursts),
            "bursts_found": found,
            "anomalies_reported": len(report.anomalies),
        },
        "drain3_default": {
            "lines": len(drain_lines),
            "wall_s": round(drain_wall, 2),
            "cpu_s": round(drain_cpu, 2),
            "lines_per_s": round(len(drain_lines) / drain_wall),
            "templates_found": len(set(drain_pred)),
            "grouping_accuracy": round(drain_accuracy, 4),
            "pairwise_f1": round(drain_f1, 4),
            "error_templates_grouped_exactly": f"{drain_error_exact}/{len(drain_errors)}",
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    if parallel is not None:
        result["ours_masking_in_processes"] = parallel
    if args.cli:
        result["cli"] = run_cli(logs, truth)
    print(json.dumps(result, indent=2, ensure_ascii=False))


def run_cli(logs: GeneratedLogs, truth: list[int]) -> dict[str, Any]:
    """`ambient logs templates --per-line` on the lines as a file, once; scored like above."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "day.log"
        with path.open("w", encoding="utf-8") as handle:
            for line in file_lines(logs, text_every=5):
                handle.write(line + "\n")
        command = [sys.executable, "-m", "ambient.cli", "logs", "templates", str(path)]
        wall = time.perf_counter()
        done = subprocess.run([*command, "--per-line"], capture_output=True, check=True, text=True)
        elapsed = time.perf_counter() - wall
        size = path.stat().st_size
    predicted = [json.loads(row)["template_id"] for row in done.stdout.splitlines()]
    accuracy, f1 = grouping_scores(predicted, truth)
    return {
        "file_mb": round(size / 1e6, 1),
        "wall_s": round(elapsed, 2),
        "grouping_accuracy": round(accuracy, 4),
        "pairwise_f1": round(f1, 4),
    }


if __name__ == "__main__":
    main()
