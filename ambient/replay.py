"""Replay recorded workflow histories against the current workflow code."""

from __future__ import annotations

import functools
import logging
import os
import pkgutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer, WorkflowReplayResult

from ambient.no_answer import STALLED
from ambient.temporal import BUILD_ID, PLAIN_CONVERTER, runtime_used, workflow_runner
from workflows.message_arguments import MessageArguments
from workflows.registry import ALL_WORKFLOWS


class ReplayInputError(ValueError):
    """What was asked to replay cannot be: a path that is not there, a ``module:attr`` that
    names nothing, a query the server refuses (said in one line, exit 2)."""


@dataclass
class ReplayOutcome:
    source: str
    workflow_id: str
    workflow_type: str
    error: str | None
    # The file could not be read as a history (not JSON, not a history), or its workflow type
    # is none of the classes given: no verdict on it.
    unreadable: bool = False
    foreign: bool = False  # unreadable as its workflow type is none of the classes given

    @property
    def ok(self) -> bool:
        return self.error is None


def load_workflows(specs: Sequence[str]) -> list[type]:
    """The registry plus extra classes named ``module:attr`` (a class or a list of classes)."""
    found = list(ALL_WORKFLOWS)
    if specs and os.getcwd() not in sys.path:
        # Like `python -m`: modules named on the command line resolve from the current folder.
        sys.path.insert(0, os.getcwd())
    for spec in specs:
        try:
            value = pkgutil.resolve_name(spec)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ReplayInputError(f"--workflows {spec}: {exc}") from None
        found.extend(value if isinstance(value, list | tuple) else [value])
    return found


def history_files(paths: Iterable[Path]) -> list[Path]:
    """The history files of ``paths`` (a folder's JSON files); a path not there is refused."""
    paths = list(paths)
    if missing := [str(path) for path in paths if not path.exists()]:
        raise ReplayInputError(f"no such file or folder: {', '.join(missing)}")
    return [
        f for path in paths for f in (sorted(path.rglob("*.json")) if path.is_dir() else [path])
    ]


# The replayer's failure for a history whose workflow type no class given defines.
NOT_REGISTERED = "is not registered on this worker"


def _outcome(source: str, result: WorkflowReplayResult) -> ReplayOutcome:
    error = None if result.replay_failure is None else str(result.replay_failure)
    first = result.history.events[:1]  # the started event (none in an empty history)
    kind = first[0].workflow_execution_started_event_attributes.workflow_type.name if first else ""
    if error is not None and NOT_REGISTERED in error:
        # Not this code's workflow (a test's, another service's): nothing said of determinism.
        unknown = f"workflow type {kind or '?'} is not one of the product's; name its class with "
        unknown += "--workflows module:attr"
        return ReplayOutcome(source, result.history.workflow_id, kind or "?", unknown, True, True)
    return ReplayOutcome(source, result.history.workflow_id, kind or "?", error)


def replayer(workflows: Sequence[type], converter: DataConverter | None = None) -> Replayer:
    runtime_used()  # the replayer's worker runs on the SDK's runtime threads
    return Replayer(
        runtime=_quiet_runtime(),
        workflows=list(workflows),
        data_converter=converter or PLAIN_CONVERTER,
        workflow_runner=workflow_runner(),
        interceptors=[MessageArguments()],  # as the worker's: a signal it dropped is dropped
        build_id=BUILD_ID,  # not the SDK's default: a hash of every loaded module's code
    )


@functools.cache
def _quiet_runtime() -> Runtime:
    """The SDK's runtime for replays: its core's log goes to Python's logging (the command's
    report says what failed), not to the console. On the default runtime each workflow task a
    replay failed (a type not ours, a determinism error) was a coloured WARN line with a stack
    on stdout, before the report a deploy's check reads."""
    forwarded = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    logged = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarded
    )
    return Runtime(telemetry=TelemetryConfig(logging=logged))


# A replay whose workflow code the SDK's deadlock detector cut short (its 2 s passed on a host
# starved of CPU, as the sandbox's first import can take) said nothing about determinism: it is
# run again, as the server retries a workflow task a live worker failed that way.
REPLAY_ATTEMPTS = 3


def _stalled(result: WorkflowReplayResult) -> bool:
    return result.replay_failure is not None and STALLED in str(result.replay_failure)


async def replay(
    runner: Replayer, history: WorkflowHistory, first: WorkflowReplayResult | None = None
) -> WorkflowReplayResult:
    """One history replayed (``first``: its first attempt's result, made already): its verdict,
    not a verdict on how busy the host was."""
    result = first or await runner.replay_workflow(history, raise_on_replay_failure=False)
    for _ in range(REPLAY_ATTEMPTS - 1):
        if not _stalled(result):
            break
        result = await runner.replay_workflow(history, raise_on_replay_failure=False)
    return result


async def replay_files(
    files: Sequence[Path], workflows: Sequence[type], converter: DataConverter | None = None
) -> list[ReplayOutcome]:
    runner = replayer(workflows, converter)
    # Each history read as it is replayed: a folder of them is never held parsed at once. One
    # that cannot be read is said so, and the others still replay.
    outcomes: list[ReplayOutcome] = []
    for f in files:
        try:
            history = WorkflowHistory.from_json(f.stem, f.read_text())
        except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError among them
            outcomes.append(ReplayOutcome(str(f), "?", "?", f"not a history: {exc}", True))
            continue
        outcomes.append(_outcome(str(f), await replay(runner, history)))
    return outcomes


async def replay_query(
    client: Client, query: str, workflows: Sequence[type]
) -> list[ReplayOutcome]:
    # Every history the query matches: cut at 100, a deploy gate passed on the first 100.
    histories = client.list_workflows(query).map_histories()
    runner = replayer(workflows, client.data_converter)
    try:
        async with runner.workflow_replay_iterator(histories) as iterator:
            results = [result async for result in iterator]
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise ReplayInputError(f"--query: {exc.message}") from None
        raise
    return [_outcome(query, await replay(runner, result.history, result)) for result in results]
