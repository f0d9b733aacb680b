"""How a command's modules are loaded: with the cyclic collector off, then frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loading() -> Iterator[None]:
    """A command's modules imported with the cyclic collector off, then frozen.

    Start-up makes hundreds of thousands of objects that live as long as the process (modules,
    classes, pydantic schemas), and the collector scanned them again and again while they were
    made: ~0.9 s of the ~3 s of CPU an `ambient chat` or `ambient mcp` start took. Frozen, later
    collections skip them; what the command makes afterwards is collected as usual. Frozen once
    a process: a process that froze already (a test run, which invokes commands in-process after
    its own collection) would freeze what its tests hold at that moment; a later load there (a
    command's parts imported when it first needs them) only keeps the collector off.
    """
    freeze = not gc.get_freeze_count()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()
