"""The Temporal client as every entry point builds it, and the custom search attributes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.failure.v1 import Failure
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    TLSConfig,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadConverter,
)
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from ambient import __version__
from ambient.codec import EncryptionCodec, parse_key
from ambient.domain.field_errors import field_problems
from ambient.domain.workflow_input import BAD_WORKFLOW_INPUT, WorkflowInput
from ambient.no_answer import STALLED
from ambient.settings import Settings

if TYPE_CHECKING:
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

KIND = SearchAttributeKey.for_keyword("AmbientKind")
USER = SearchAttributeKey.for_keyword("AmbientUser")
CLUSTER = SearchAttributeKey.for_keyword("AmbientCluster")
STATE = SearchAttributeKey.for_keyword("AmbientState")
SEARCH_ATTRIBUTES = (KIND, USER, CLUSTER, STATE)


def search_attributes(
    kind: str, user: str, *, cluster: str | None = None, state: str | None = None
) -> TypedSearchAttributes:
    """What a run or schedule is found by in the Web UI and ``list_tasks``."""
    given = ((KIND, kind), (USER, user), (CLUSTER, cluster), (STATE, state))
    return TypedSearchAttributes(
        [SearchAttributePair(key, value) for key, value in given if value is not None]
    )


async def register_search_attributes(client: Client) -> None:
    """Idempotent: a server started by us has them already; an external one may not."""
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                    for key in SEARCH_ATTRIBUTES
                },
            )
        )
    except RPCError as exc:
        if exc.status is not RPCStatusCode.ALREADY_EXISTS:
            raise


def task_memo(summary: str | None, created: datetime) -> dict[str, str]:
    """A task's memo: its one-line summary (None: none, a schedule's, whose note is it) and
    when it was created. A run that continues as new keeps its memo; its start time is the
    run's (a watch's every day or two, a briefing's every day). The caller's clock: workflow
    code imports this module and reads none."""
    said = {"summary": summary} if summary is not None else {}
    return {**said, "created_at": created.isoformat()}


def created_at(memo: Mapping[str, Any]) -> datetime | None:
    """When the task was created, as its memo says (a task started before it: not known)."""
    value = memo.get("created_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def ids_query(workflow_ids: Iterable[str]) -> str:
    """The visibility query for the runs of these workflow ids (each once, in order)."""
    ids = ", ".join(json.dumps(i) for i in sorted(set(workflow_ids)))
    return f"WorkflowId IN ({ids})"


def starts_query(beginnings: Iterable[str]) -> str:
    """The visibility query for the runs whose workflow ids begin with one of these."""
    said = " OR ".join(f"WorkflowId STARTS_WITH {json.dumps(b)}" for b in sorted(set(beginnings)))
    return f"({said})"


# Not deleted or stopped by its owner (active, paused; none: a run started before the
# attribute): the task list shows a running run so, and stopped once its AmbientState is.
NOT_STOPPED = f"({STATE.name} != {json.dumps('stopped')} OR {STATE.name} IS NULL)"
# How long a delete waits for the task list to show its task stopped, and how often it looks:
# first soon after (a worker at hand takes the stop in a few ms), then less often.
LISTED_STOPPED_WITHIN = 5.0
LISTED_FIRST_LOOK, LISTED_LOOK_EVERY = 0.01, 0.1


async def listed_stopped(client: Client, workflow_id: str, seconds: float) -> bool:
    """Whether the task list (Temporal's visibility) shows the run of ``workflow_id`` stopped
    within ``seconds``: ended, or its AmbientState stopped. A stop signal is in the history at
    once, but the list follows by a moment (its worker takes the stop and sets the attribute,
    then visibility records it): a delete answered "stopped" while list_tasks showed the task
    active. True at once from a server with no visibility (the time-skipping test server)."""
    query = " AND ".join(
        (f"WorkflowId = {json.dumps(workflow_id)}", 'ExecutionStatus = "Running"', NOT_STOPPED)
    )
    loop = asyncio.get_running_loop()
    until, pause = loop.time() + seconds, LISTED_FIRST_LOOK
    while (left := until - loop.time()) > 0:
        try:
            counted = await client.count_workflows(query, rpc_timeout=timedelta(seconds=left))
        except RPCError as exc:
            return exc.status is RPCStatusCode.UNIMPLEMENTED
        if not counted.count:
            return True
        await asyncio.sleep(min(pause, max(0.0, until - loop.time())))
        pause = min(2 * pause, LISTED_LOOK_EVERY)
    return False


async def ended_within(handle: WorkflowHandle[Any, Any], seconds: float) -> bool:
    """Whether the run ``handle`` names completed within ``seconds``, however it ended (failed,
    terminated, gone); False: still running (e.g. sending its last notices)."""
    try:
        async with asyncio.timeout(seconds):
            await handle.result(follow_runs=False)
    except TimeoutError:
        return False
    except (WorkflowFailureError, RPCError):
        pass
    return True


async def until_ended(handle: WorkflowHandle[Any, Any]) -> None:
    """Return once the run ``handle`` names has ended, however it ended (completed, failed,
    terminated by another start, continued as new); never when the server does not say (a wait
    raced with this one decides)."""
    try:
        await handle.result(follow_runs=False)
        return
    except RPCError:
        pass
    except Exception:  # its failure, termination or new run: ended
        return
    await asyncio.Event().wait()


def payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The encryption codec if a payload key is configured."""
    if settings.payload_key is None:
        return None
    old = settings.payload_old_keys.items()
    keys = {key_id: parse_key(key.get_secret_value()) for key_id, key in old}
    keys[settings.payload_key_id] = parse_key(settings.payload_key.get_secret_value())
    return EncryptionCodec(keys, settings.payload_key_id)


class BadWorkflowInputError(ApplicationError, ValueError):
    """A start input that does not decode: non-retryable in a workflow (its run fails), and a
    ValueError as pydantic's was to a client reading a run's input (briefing records)."""


class InputPayloadConverter(PydanticPayloadConverter):
    """Temporal's pydantic payload converter, but for a workflow's start input that does not
    decode (ambient.domain.workflow_input): a non-retryable BadWorkflowInput naming each field,
    which fails the run, where the SDK's own error failed its first workflow task for ever."""

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        try:
            return super().from_payloads(payloads, type_hints)
        except Exception as error:
            inputs = [h for h in type_hints or () if isinstance(h, type)]
            model = next((h for h in inputs if issubclass(h, WorkflowInput)), None)
            if model is None:
                raise
            why = "; ".join(field_problems(error)) if isinstance(error, ValidationError) else ""
            raise BadWorkflowInputError(
                f"the input is not a {model.__name__}: {why or error}",
                type=BAD_WORKFLOW_INPUT,
                non_retryable=True,
            ) from error


# The payloads of every client, worker and replay without a payload key.
PLAIN_CONVERTER = DataConverter(payload_converter_class=InputPayloadConverter)


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted when a payload key is set: client, worker and replay."""
    if (codec := payload_codec(settings)) is None:
        return PLAIN_CONVERTER
    # Failure messages and stack traces are encrypted too: they quote what failed (a metric
    # URL with its API key in the query), and Temporal keeps them in clear text otherwise.
    return dataclasses.replace(
        PLAIN_CONVERTER, payload_codec=codec, failure_converter_class=FailureConverter
    )


class FailureConverter(DefaultFailureConverterWithEncodedAttributes):
    """Failures encrypted, but for the SDK's deadlock detector's, which quotes no data: its
    message stays readable, as the only way a client tells a worker too busy to answer a
    query (`unanswered`) from a query that failed ("Encoded failure" otherwise)."""

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        if str(exception).startswith(STALLED):
            failure.message = str(exception)


def tls_config(settings: Settings) -> TLSConfig | bool:
    # A CA alone is TLS to a server with a private CA (it was ignored: plain text was sent),
    # unless AMBIENT_TEMPORAL_TLS=false says otherwise.
    ca_alone = settings.temporal_tls_ca and "temporal_tls" not in settings.model_fields_set
    if not (settings.temporal_tls or settings.temporal_tls_cert or settings.temporal_api_key):
        if not ca_alone:
            return False

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path else None

    return TLSConfig(
        server_root_ca_cert=read(settings.temporal_tls_ca),
        client_cert=read(settings.temporal_tls_cert),
        client_private_key=read(settings.temporal_tls_key),
    )


_runtime_started = False


def runtime_used() -> None:
    """Note that this process starts the SDK's runtime threads (a client, a replayer)."""
    global _runtime_started
    _runtime_started = True


def runtime_started() -> bool:
    """Whether this process started the SDK's runtime threads (`runtime_used`)."""
    return _runtime_started


async def connect(
    settings: Settings, *, runtime: Runtime | None = None, lazy: bool = False
) -> Client:
    """Connect to the Temporal server of ``settings`` with the pydantic data converter."""
    runtime_used()
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=api_key,
        data_converter=data_converter(settings),
        runtime=runtime,
        lazy=lazy,
    )


# The build id a worker and a replay give the SDK: its default hashes the code of every loaded
# module (~2,000, compiling each without a cached .pyc), 0.36 s of CPU a start with the cache
# and 5 s without. Nothing reads it (no worker versioning); it shows which release served a task.
BUILD_ID = f"ambient-ops-{__version__}"


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox our workflows run in, sharing the host's `workflows` modules.

    By default the sandbox imports the workflow's module (and every module it imports) again
    for every new run: ~100 ms of CPU each, paid by every watch created and by
    every workflow a restarted worker takes up again. Our workflow modules hold no mutable
    state, so sharing them keeps determinism (replay tests guard it) and drops that cost.

    What the sandbox still checks at run time is the builtins that read files or the console
    (`open`, `input`) and a clock or randomness imported while a run runs; a passed-through
    module's own `datetime.now()` or `random.random()` is the host's and runs unchecked
    (tests/foundation/test_sandbox_guard.py), so tests/foundation/test_workflow_code.py reads
    the workflow code for them. Passing every module through (``passthrough_all_modules``)
    keeps that same guard and measured no gain; GradedRemediationWorkflow runs outside the
    sandbox (``sandboxed=False``) for the alert storm's sake (docs/benchmarks.md, "Alert
    storm, eighth round"). Imported here: only the worker and a replay run workflows, and the
    worker's package takes ~40 ms to import.
    """
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
    )
