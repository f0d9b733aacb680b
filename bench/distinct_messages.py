"""A day of log messages that share no template, through the briefing's reducer.

    python -m bench.distinct_messages --lines 10000 --lines 100000

Free-text logs (search terms, chat, prompts) give every line its own shape: the worst case for
template mining, where a new shape is compared with the clusters it could join. Each message
is ``--words`` random lower-case words (nothing for the masks to take); one line in ten is an
ERROR. Prints, per size, the CPU seconds of adding the lines and of the report, the process's
peak RSS, the templates found and the spoken briefing's length, all measured in the run.
"""

from __future__ import annotations

import argparse
import random
import resource
import string
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from ambient.briefing.logreport import LogReducer
from ambient.briefing.logreport_markdown import render_markdown
from ambient.briefing.logs import fill_from_report
from ambient.briefing.models import BriefingInputs
from ambient.briefing.offline import offline_draft

DAY = datetime(2026, 11, 23, tzinfo=UTC)


def day_of(lines: int, words: int, seed: int) -> Iterator[tuple[datetime, str, str]]:
    rng = random.Random(seed)
    letters = string.ascii_lowercase
    for i in range(lines):
        message = " ".join(
            "".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(words)
        )
        level = "ERROR" if i % 10 == 0 else "INFO"
        yield DAY + timedelta(seconds=i * 86400 / lines), level, message


def measure(lines: int, words: int) -> dict[str, float | int]:
    reducer = LogReducer()
    started = time.process_time()
    reducer.add_many(day_of(lines, words, seed=lines))
    added = time.process_time()
    report = reducer.report(start=DAY, end=DAY + timedelta(days=1))
    reported = time.process_time()
    markdown = render_markdown(report)
    inputs = BriefingInputs(date="2026-11-24", language="en", report_markdown=markdown)
    fill_from_report(inputs, report)
    spoken = offline_draft(inputs).spoken_text
    return {
        "lines": lines,
        "add_cpu_s": round(added - started, 2),
        "report_cpu_s": round(reported - added, 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "templates": len(report.templates),
        "spoken_chars": len(spoken),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, action="append", help="a size (repeatable)")
    parser.add_argument("--words", type=int, default=8, help="words a message")
    args = parser.parse_args()
    for lines in args.lines or [10_000]:
        print(measure(lines, args.words), flush=True)


if __name__ == "__main__":
    main()
