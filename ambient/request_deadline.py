"""One deadline for a whole request (a task's check now, update, pause or resume; a briefing's
regenerate or send), set at its top and read by each call it makes to Temporal (passed by hand,
a call that forgot it let a silent worker hold the request). Outside one, calls keep their own
bounds; a task started inside one sees its deadline while it runs, not once it has ended.
Its clock is time.monotonic, asyncio's default loop's (deadlines compare with loop.time()),
so a thread the request runs sync code in (anyio copies the context) reads it too."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

# The running request's deadline (time.monotonic) in a box emptied when the request ends.
_current: ContextVar[Sequence[float]] = ContextVar("request_deadline", default=())


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """The block is one request, due in ``seconds``; inside another, the sooner of the two."""
    until = time.monotonic() + seconds
    box = [min([until, *_current.get()])]
    token = _current.set(box)
    try:
        yield
    finally:
        box.clear()
        _current.reset(token)


def deadline() -> float | None:
    """The running request's deadline (time.monotonic, the loop's time); None outside one."""
    return next(iter(_current.get()), None)


def left() -> float | None:
    """Seconds left of the running request (0: none); None outside one."""
    until = deadline()
    return None if until is None else max(0.0, until - time.monotonic())


def bounded(budget: float) -> float:
    """A call's own ``budget``, cut to what is left of the running request."""
    rest = left()
    return budget if rest is None else min(budget, rest)
