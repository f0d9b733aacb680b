"""A test that hangs is ended by the suite's timeout with where it waited in the run's report,
also when a test process of xdist ran it (whose own terminal goes nowhere)."""

import os
import subprocess
import sys
from pathlib import Path

HUNG = """
import asyncio


async def test_waits_for_ever():
    never = asyncio.Event()
    await never.wait()  # the line the report names
"""


def test_a_hung_test_is_reported_with_the_await_it_waited_on(tmp_path: Path) -> None:
    (tmp_path / "test_hung.py").write_text(HUNG)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("AMBIENT_TEST_HANGS", None)  # the run below is a controller of its own
    options = "-q -p no:cacheprovider -p tests.support.hangs -n 1 --timeout 2"
    options += " -o timeout_method=thread -o asyncio_mode=auto"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *options.split(), "--rootdir", str(tmp_path), "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "crashed while running 'test_hung.py::test_waits_for_ever'" in run.stdout
    assert "Timeout: the test ran past 2 s" in run.stdout
    assert "await never.wait()  # the line the report names" in run.stdout, run.stdout


def test_a_run_without_xdist_takes_the_plugin_too(tmp_path: Path) -> None:
    # Debugging with pdb runs without xdist, whose crash hook the plugin implements.
    (tmp_path / "test_fine.py").write_text("def test_fine():\n    pass\n")
    root = Path(__file__).resolve().parents[2]
    options = "-q -p no:cacheprovider -p no:xdist -p tests.support.hangs"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *options.split(), "--rootdir", str(tmp_path), "."],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
