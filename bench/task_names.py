"""Benchmark: the task a spoken reference names, among many tasks (``pick_task``'s CPU).

    PYTHONPATH=CHECKOUT python -m bench.task_names --tasks 2000 --tasks 10000 --repeat 5

A voice call that names a task otherwise than as written compares the words said with every
task's names and summaries, with no await between: what it costs is a voice call's time that
no budget can cut. The tasks are a user's as the listing gives them: web monitors and
reminders with 63-character names, a fifth created without a name (said by their summary:
21 summaries of pages and intervals, 4 of reminders' times, so many said alike), a tenth
paused, a twentieth deleted. Each reference is picked ``--repeat`` times in one process, as
a running server picks them (what it keeps between calls is warm after the first); printed:
its median and max ms, and what the pick answered (a task's name or the start of the question
back), to compare checkouts. Run it with each checkout's PYTHONPATH in turn (A B B A).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.listing import TaskSummary
from mcp_server.voice_task_names import pick_task

SAID = ["商店", "第二个", "shop 1", "second backup", "backup 3", "提醒（每天 8点30分）", "nothing"]


def summary(kind: TaskKind, i: int) -> str:
    if kind is TaskKind.WEB_MONITOR:
        return f"Web monitor of {1 + i % 3} URL(s) every {(1, 5, 10, 15, 30, 60, 1440)[i % 7]} min"
    return f"Reminder, daily at {(7, 8, 9, 18)[i % 4]:02d}:30"


def tasks(count: int) -> list[TaskSummary]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    listed = []
    for i in range(count):
        kind = TaskKind.WEB_MONITOR if i % 3 else TaskKind.SCHEDULE
        prefix = "web-monitor" if kind is TaskKind.WEB_MONITOR else "reminder"
        # A fifth created without a name (12 hex digits), the rest named by a person.
        name = f"{i:012x}" if i % 5 == 0 else f"shop-{i:05d}-".ljust(63, "x")
        state = TaskState.STOPPED if i % 20 == 1 else (TaskState.PAUSED if i % 10 == 2 else None)
        listed.append(
            TaskSummary(
                task_id=f"{prefix}/alice/{name}",
                kind=kind,
                state=state or TaskState.ACTIVE,
                summary=summary(kind, i),
                started_at=start + timedelta(minutes=i),
            )
        )
    return listed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, action="append", default=[])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for count in args.tasks or [2000, 10000]:
        listed = tasks(count)
        for said in SAID:
            for english in (False, True):
                times = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    picked = pick_task(listed, said, english)
                    times.append((time.perf_counter() - began) * 1000)
                answer = picked.task.task_id if picked.task else picked.question[:40]
                print(
                    f"{count:>6} {said!r:>24} {'en' if english else 'zh'}"
                    f" median {statistics.median(times):8.1f} ms max {max(times):8.1f}"
                    f"  {answer!r}"
                )


if __name__ == "__main__":
    main()
