"""Grouping accuracy on real labelled logs: the LogPAI Loghub 2k samples (16 systems,
2,000 lines each, every line labelled with its event), ours beside Drain3 with its defaults.

    python -m bench.loghub_accuracy DIR

DIR holds the `*_2k.log_structured.csv` files of https://github.com/logpai/loghub (not
vendored here). Both parsers get the `Content` column only, with one level for all lines
(the labels group by event, whatever the level), and no per-system regexes: ours runs its
one masking configuration, Drain3 runs `TemplateMiner(config=TemplateMinerConfig())`.
Published Drain results on these samples use per-system regexes and tuned thresholds;
this comparison does not.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from ambient.briefing.logreport import LogReducer
from bench.log_reduction import grouping_scores


def ours(messages: list[str]) -> list[str]:
    reducer = LogReducer()
    groups = reducer.add_many((None, "INFO", m) for m in messages)
    return [reducer.group_template_id(g) for g in groups]


def drain3_default(messages: list[str]) -> list[int]:
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    miner = TemplateMiner(config=TemplateMinerConfig())
    return [miner.add_log_message(m)["cluster_id"] for m in messages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    files = sorted(args.folder.glob("*_2k.log_structured.csv"))
    if not files:
        sys.exit(f"no *_2k.log_structured.csv in {args.folder}")
    rows = {}
    for path in files:
        with path.open(encoding="utf-8", newline="") as handle:
            table = list(csv.DictReader(handle))
        messages = [r["Content"] for r in table]
        events = [r["EventId"] for r in table]
        labels = {e: i for i, e in enumerate(dict.fromkeys(events))}
        truth = [labels[e] for e in events]
        ours_ga, ours_f1 = grouping_scores(ours(messages), truth)
        drain_ga, drain_f1 = grouping_scores(drain3_default(messages), truth)
        rows[path.name.split("_2k")[0]] = {
            "events": len(labels),
            "ours_ga": round(ours_ga, 3),
            "drain3_default_ga": round(drain_ga, 3),
            "ours_f1": round(ours_f1, 3),
            "drain3_default_f1": round(drain_f1, 3),
        }
    keys = ("ours_ga", "drain3_default_ga", "ours_f1", "drain3_default_f1")
    summary = {key: round(statistics.mean(r[key] for r in rows.values()), 3) for key in keys}
    lowest = {key: min(rows, key=lambda name: (rows[name][key], name)) for key in keys}
    minimum = {key: {"system": name, key: rows[name][key]} for key, name in lowest.items()}
    print(json.dumps({"systems": rows, "mean": summary, "min": minimum}, indent=2))


if __name__ == "__main__":
    main()
