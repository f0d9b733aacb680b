"""The C allocator's settings for a long-running process with many threads (glibc only).

glibc gives threads that allocate (Temporal core's runtime, the executors, the database's
threads) arenas of their own, up to eight a core, and what a page check frees in one stays in
that arena's pages among long-lived objects. The worker keeps two arenas in all: ≈ 3 KB of
RSS a running watch less (docs/benchmarks.md, "Worker memory", round 3).
"""

from __future__ import annotations

import ctypes

MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Let glibc keep at most ``arenas`` arenas; threads that start later share them (call
    before any thread starts: one that allocated already keeps its own)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl, macOS): nothing to ask
    mallopt(M_ARENA_MAX, arenas)
