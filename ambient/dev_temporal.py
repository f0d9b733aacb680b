"""The embedded Temporal dev server's flags: `ambient dev`, the tests' servers, the benchmarks."""

from __future__ import annotations

# The Temporal CLI opens its SQLite file with a rollback journal and a full sync: every one of
# the server's writes (several a workflow task) waited for the disk, one writer at a time, and
# in an alert storm its updates timed out ("context deadline exceeded"). WAL with a normal
# sync, as our own database has: durable across a crash of the process, not of the machine.
TEMPORAL_SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
# The server's history queues read new tasks (a workflow task or activity to hand to a worker, a
# timer that fired, a visibility record) at most 20 times a second each by default, Temporal's
# guard for a database many shards share. The dev server has one shard: each hop then waited up
# to 50 ms, and a workflow of three activities took 200 ms instead of 50. One server on its own
# file reads as soon as it is told (docs/deploy.md says when a cluster wants the same).
TEMPORAL_DYNAMIC_CONFIG = tuple(
    f"history.{queue}ProcessorMaxPollRPS=1000" for queue in ("transfer", "timer", "visibility")
)


def queue_flags() -> list[str]:
    """The embedded server's flags for its queues (the tests' in-memory servers take these)."""
    return [flag for value in TEMPORAL_DYNAMIC_CONFIG for flag in ("--dynamic-config-value", value)]


def temporal_settings() -> list[str]:
    """The embedded server's flags for its SQLite file and its queues (``ambient dev`` and the
    benchmarks start it so)."""
    pragmas = [flag for pragma in TEMPORAL_SQLITE_PRAGMAS for flag in ("--sqlite-pragma", pragma)]
    return pragmas + queue_flags()
