"""How a command's modules are loaded: with the cyclic collector off, then frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Whether this process froze its objects: asked of a flag, as gc.get_freeze_count() walks every
# frozen object (~160 ms of CPU with 3 million frozen: a test process, which invokes commands
# in-process, paid it at each command it invoked).
_frozen = False


def freeze_once() -> None:
    """Freeze what the process holds now so later collections skip it; once a process."""
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True


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
    freeze = not _frozen
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            freeze_once()
        if enabled:
            gc.enable()
