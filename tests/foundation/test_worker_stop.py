"""A stop the worker's shutdown cannot finish (a run the SDK could not evict, docs/deploy.md
"Logs") ends the process after `worker.STOP_LIMIT`, saying so; a stop that finishes does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The worker's timer in a process of its own, whose event loop the stop waits on for good (as
# the SDK's retried eviction holds it), or which cancels it as a finished stop does.
SCRIPT = """
import asyncio, logging, sys
from worker import exit_after
logging.basicConfig(level=logging.INFO)

async def main(finished: bool) -> None:
    deadline = exit_after(0.5)
    if finished:
        deadline.cancel()
    await asyncio.sleep(3)  # what the stop waits on

asyncio.run(main(sys.argv[1] == "finished"))
print("exited by itself")
"""


def _stop(kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, kind],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )


def test_a_stop_that_cannot_finish_ends_the_process_saying_why() -> None:
    ended = _stop("stuck")
    assert ended.returncode == 1, ended
    assert "the worker did not stop within 0 s" in ended.stderr
    assert "Failed running eviction job" in ended.stderr  # where to look
    assert "exited by itself" not in ended.stdout


def test_a_stop_that_finishes_exits_as_it_would() -> None:
    ended = _stop("finished")
    assert ended.returncode == 0, ended
    assert "exited by itself" in ended.stdout
    assert "did not stop" not in ended.stderr
