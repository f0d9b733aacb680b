"""Template quality of a log file by its layout: loggen's day written as each common layout
writes a line, read by the briefing's file source and reducer.

    python -m bench.log_layouts --lines 100000

The same generated messages (bench.loggen, ground truth known) are written as plain text,
log4j's and logback's patterns, Spring Boot 2's and 3's defaults and Python's default, then
read back whole. Prints, per layout, the templates found (the truth has ``--templates``),
grouping accuracy and pairwise F1 (as bench/log_reduction.py computes them), and the CPU
seconds of the read, all measured in the run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ambient.briefing.logreport import LogReducer
from ambient.clients.logs import FileLogSource
from ambient.domain.loglevels import level_and_message
from bench.log_reduction import grouping_scores
from bench.loggen import generate

BEIJING = timezone(timedelta(hours=8))
Layout = Callable[[datetime, str, str, int], str]


def _ms(when: datetime) -> str:
    return f"{when.microsecond // 1000:03d}"


# (time in Beijing, level, message, line number) -> the line as the layout writes it.
LAYOUTS: dict[str, Layout] = {
    "plain %d %p %m": lambda w, lv, m, _: f"{w:%Y-%m-%d %H:%M:%S},{_ms(w)} {lv} {m}",
    "log4j %d %-5p [%t] %c - %m": lambda w, lv, m, n: (
        f"{w:%Y-%m-%d %H:%M:%S},{_ms(w)} {lv:5} [pool-1-thread-{n % 8}] com.acme.App - {m}"
    ),
    "logback %d [%t] %-5level %logger - %msg": lambda w, lv, m, n: (
        f"{w:%Y-%m-%d %H:%M:%S}.{_ms(w)} [http-nio-8080-exec-{n % 10}] {lv:5} c.a.App - {m}"
    ),
    "spring-boot-2": lambda w, lv, m, n: (
        f"{w:%Y-%m-%d %H:%M:%S}.{_ms(w)} {lv:>5} 4242 --- "
        f"[{'main' if n % 3 else 'http-nio-8080-exec-1':>15}] c.a.d.PaymentService     : {m}"
    ),
    "spring-boot-3": lambda w, lv, m, n: (
        f"{w:%Y-%m-%dT%H:%M:%S}.{_ms(w)}+08:00 {lv:>5} 4242 --- [shop] "
        f"[{'main' if n % 3 else 'http-nio-8080-exec-1':>15}] c.a.d.PaymentService     : {m}"
    ),
    "python %(asctime)s - %(name)s - %(levelname)s": lambda w, lv, m, _: (
        f"{w:%Y-%m-%d %H:%M:%S},{_ms(w)} - app.pay - {lv} - {m}"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--templates", type=int, default=200)
    args = parser.parse_args()
    day = generate(args.lines, seed=11, template_count=args.templates)
    first = min(when for when, *_ in day.lines).astimezone(BEIJING)
    start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=2)
    truth = [true for *_, true in day.lines]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "app.log")
        for name, layout in LAYOUTS.items():
            with path.open("w", encoding="utf-8") as out:
                for n, (when, level, message, _) in enumerate(day.lines):
                    out.write(layout(when.astimezone(BEIJING), level, message, n) + "\n")
            reducer = LogReducer()
            started = time.process_time()
            records = FileLogSource(path, zone=BEIJING).records(start, end)
            groups = reducer.add_many((r.time, *level_and_message(r.content)) for r in records)
            report = reducer.report()
            cpu = time.process_time() - started
            accuracy, f1 = grouping_scores([reducer.group_template_id(g) for g in groups], truth)
            print(
                f"{name:48} lines={report.total} templates={report.template_count} "
                f"accuracy={accuracy:.3f} f1={f1:.3f} cpu_s={cpu:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
