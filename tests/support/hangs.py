"""Where a hung test waited, in the run's report.

pytest-timeout ends a test's process after the suite's `timeout` (pyproject.toml), having
written every thread's stack to that process's terminal. Under xdist a test process has no
terminal of its own: the stacks went nowhere, and the run said only "worker 'gw0' crashed while
running …". Here the same end writes them to a file the run's controller reads back into the
crashed test's report, with each asyncio task's stack (an async test that hangs waits on an
await, which the threads' stacks do not show: its thread is idle in the selector), and what the
test had printed and logged.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

HANGS_DIR = "AMBIENT_TEST_HANGS"  # set by the controller, inherited by its test processes


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        os.environ[HANGS_DIR] = tempfile.mkdtemp(prefix="hangs-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ.pop(HANGS_DIR), ignore_errors=True)


def hang_file(nodeid: str) -> Path:
    return Path(os.environ[HANGS_DIR]) / (re.sub(r"[^\w.-]+", "_", nodeid)[-200:] + ".txt")


def _loop_in(frame: FrameType | None) -> asyncio.AbstractEventLoop | None:
    """The event loop a thread's stack runs (`run_until_complete` → … → its selector)."""
    while frame is not None:
        if isinstance(running := frame.f_locals.get("self"), asyncio.AbstractEventLoop):
            return running
        frame = frame.f_back
    return None


def _stacks() -> str:
    out = io.StringIO()
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        out.write(f"~~~ thread {names.get(ident, '?')} ({ident})\n")
        out.write("".join(traceback.format_stack(frame)))
        loop = _loop_in(frame)
        # Read from this thread while the loop's sleeps in its selector: a task that changes
        # meanwhile is only one stack the fewer.
        for task in list(asyncio.all_tasks(loop)) if loop is not None else []:
            out.write(f"~~~ task {task.get_name()} of that thread's loop: {task.get_coro()!r}\n")
            task.print_stack(file=out)
    return out.getvalue()


def _end(item: pytest.Item, timeout: float) -> None:
    text = f"Timeout: the test ran past {timeout:g} s; where each thread and task waited:\n"
    try:
        capman: Any = item.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            capman.suspend_global_capture(item)
            printed, errors = capman.read_global_capture()
            text += f"~~~ stdout\n{printed}\n~~~ stderr\n{errors}\n"
        text += _stacks()
    except Exception:  # what could be said is said
        text += traceback.format_exc()
    finally:
        hang_file(item.nodeid).write_text(text)
        sys.stderr.write(text)  # a run without xdist shows it on its terminal
        sys.stderr.flush()
        os._exit(1)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if settings.method != "thread" or HANGS_DIR not in os.environ:
        return None  # pytest-timeout's own
    timer = threading.Timer(settings.timeout, _end, (item, settings.timeout))
    timer.daemon = True

    def cancel() -> None:
        timer.cancel()
        timer.join()

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # pytest-timeout's cancel hook
    timer.start()
    return True


@pytest.hookimpl(optionalhook=True)  # xdist's: a run with -p no:xdist has no such hook
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: object) -> None:
    path = hang_file(crashitem)
    if path.exists():
        report.longrepr = f"{report.longrepr}\n{path.read_text()}"
