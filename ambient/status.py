"""System status: what `get_status`, `ambient status` and `/health` report."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from temporalio.api.enums.v1 import IndexedValueType, TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ambient import no_answer
from ambient.clients.llm import openai_client
from ambient.refusals import N_
from ambient.settings import Settings
from ambient.storage import Database, migrate

PROBE_TIMEOUT = timedelta(seconds=3)

log = logging.getLogger(__name__)

# What is down, as a user is told it (the pages say it translated): no host, port or error text.
TEMPORAL_DOWN = N_(
    "Temporal, which runs the tasks, is not reachable right now: this was not done. "
    "Try again in a moment."
)
TEMPORAL_NOT_SET_UP = N_(
    "Temporal, which runs the tasks, is not set up for ambient-ops yet: this was not done. "
    "Ask your administrator to finish its set-up."
)
DATABASE_DOWN = N_(
    "The database, which keeps the tasks and settings, is not reachable right now: this was "
    "not done. Try again in a moment."
)


def _unreachable(exc: BaseException) -> bool:
    if isinstance(exc, RPCError):
        # A hung server (stopped, its disk full) leaves a call to the client's own timer:
        # CANCELLED "Timeout expired", which an MCP tool answered with no words at all.
        return exc.status in no_answer.UNREACHABLE or no_answer.timed_out(exc)
    return temporal_refused(exc)


def temporal_refused(exc: BaseException) -> bool:
    """Whether ``exc`` says Temporal is not there: its connection refused or lost
    (UNAVAILABLE), or never made. Not a deadline, which a loaded host runs out of too."""
    if isinstance(exc, RPCError):
        return exc.status == RPCStatusCode.UNAVAILABLE
    # The SDK's connect (also the lazy client's first call) fails with a plain RuntimeError.
    return isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect")


def _in_chain(exc: BaseException, test: Callable[[BaseException], bool]) -> BaseException | None:
    """The first of ``exc`` and what it was raised from (five deep) that ``test`` holds for."""
    chain: BaseException | None = exc
    for _ in range(5):  # the error itself and what it was raised from
        if chain is None or test(chain):
            return chain
        chain = chain.__cause__ or chain.__context__
    return None


def temporal_down(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says Temporal did not answer.

    Not for a worker that did not answer a query: the server may say DEADLINE_EXCEEDED for it,
    which the feature's error (raised from it) already names as a silent worker.
    """
    return no_answer.SILENT_WORKER not in str(exc) and _in_chain(exc, _unreachable) is not None


def _unregistered(exc: BaseException) -> bool:
    # Temporal refuses a start, a schedule or a list that names a search attribute its
    # namespace has not registered: INVALID_ARGUMENT, the attribute named in its message;
    # every request, when the namespace itself does not exist.
    from ambient import temporal

    if no_answer.namespace_missing(exc):
        return True
    if not isinstance(exc, RPCError) or exc.status != RPCStatusCode.INVALID_ARGUMENT:
        return False
    said = exc.message.lower()
    return "search attribute" in said and any(
        key.name.lower() in said for key in temporal.SEARCH_ATTRIBUTES
    )


def temporal_not_set_up(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is Temporal refusing our search attributes, which
    its namespace has not registered, or the namespace, which does not exist: no task can be
    created or listed until an operator mends it."""
    return _in_chain(exc, _unregistered) is not None


def register_hint(namespace: str, missing: list[str]) -> str:
    """What an operator does about ``missing`` search attributes (ours: all if not known)."""
    from ambient import temporal

    names = missing or [key.name for key in temporal.SEARCH_ATTRIBUTES]
    return (
        f"temporal: namespace {namespace!r} has not registered {', '.join(names)} as "
        "Keyword: no task can be created or listed; register each as a Keyword, one of "
        "another type removed first (`temporal operator "
        f"search-attribute create --namespace {namespace} --name {names[0]} --type "
        "Keyword`; `ambient status` lists those missing; docs/deploy.md)"
    )


def namespace_hint(settings: Settings | None) -> str:
    """What an operator does about a namespace the Temporal server does not have."""
    namespace = settings.temporal_namespace if settings else "the configured namespace"
    address = settings.temporal_address if settings else "the configured address"
    return (
        f"temporal: the server at {address} has no namespace {namespace!r}: set "
        "AMBIENT_TEMPORAL_NAMESPACE to one it has, or create it (`temporal operator namespace "
        f"create --namespace {namespace}`) and register our search attributes in it "
        "(docs/deploy.md)"
    )


def temporal_problem(exc: BaseException, settings: Settings | None) -> str | None:
    """A one-line "Temporal is unreachable at ADDRESS" if ``exc`` (or what it wraps) says so, or
    which of our search attributes its namespace lacks and how to register them."""
    if (refused := _in_chain(exc, _unregistered)) is not None:
        from ambient import temporal

        if no_answer.namespace_missing(refused):
            return namespace_hint(settings)

        said = str(refused).lower()
        named = [key.name for key in temporal.SEARCH_ATTRIBUTES if key.name.lower() in said]
        return register_hint(settings.temporal_namespace if settings else "default", named)
    if not temporal_down(exc):
        return None
    address = settings.temporal_address if settings else "the configured address"
    return (
        f"Temporal is unreachable at {address}: start it (`ambient dev`) or point "
        "AMBIENT_TEMPORAL_ADDRESS at a running server"
    )


def _database_down(exc: BaseException) -> bool:
    # A failure to connect, not a statement's refusal: SQLAlchemy wraps a driver's connect
    # error with no statement, or marks the connection invalidated when it dropped mid-way.
    if isinstance(exc, DBAPIError):
        return exc.statement is None or exc.connection_invalidated
    # A driver's socket errors while connecting (asyncpg's refused or unresolvable host) pass
    # through SQLAlchemy unwrapped: only the pool in the traceback says whose they were. So
    # does a statement past its bound (asyncpg's command timeout, db.COMMAND_TIMEOUT): a
    # database that stopped answering mid-request was a 500.
    if not isinstance(exc, OSError):
        return False
    files = [
        f.f_code.co_filename.replace("\\", "/") for f, _ in traceback.walk_tb(exc.__traceback__)
    ]
    if any("/sqlalchemy/pool/" in file for file in files):
        return True
    return isinstance(exc, TimeoutError) and any("/asyncpg/" in file for file in files)


def database_down(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the database did not answer."""
    return _in_chain(exc, _database_down) is not None


def database_problem(exc: BaseException, settings: Settings | None) -> str | None:
    """A one-line "the database is unreachable (WHERE)" if ``exc`` (or what it wraps) says so."""
    if (down := _in_chain(exc, _database_down)) is None:
        return None
    reason = down.orig if isinstance(down, DBAPIError) else down
    return (
        f"the database is unreachable ({_database_named(settings)}: {reason}): start "
        "it, or point AMBIENT_DATABASE_URL at a running server you may use"
    )


def problem_told(exc: BaseException, settings: Settings | None, *, operator: bool) -> str | None:
    """What is down, if ``exc`` (or what it wraps) says Temporal or the database did not answer:
    where and why to an ``operator`` (an admin, whoever runs the server), in a user's terms to
    anyone else, as get_status tells them (``SystemStatus.told``); the log keeps the detail."""
    detail = temporal_problem(exc, settings) or database_problem(exc, settings)
    if detail is None or operator:
        return detail
    log.warning("said to a user as down: %s", detail)
    if temporal_not_set_up(exc):
        return TEMPORAL_NOT_SET_UP
    return TEMPORAL_DOWN if temporal_down(exc) else DATABASE_DOWN


def _database_named(settings: Settings | None) -> str:
    """Where the database is, without its credentials."""
    if settings is None:
        return "the configured database"
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite {url.database}"
    host = url.host or url.query.get("host") or "localhost"  # ?host=/run/postgresql: a socket
    return f"{url.get_backend_name()} at {host}" + (f":{url.port}" if url.port else "")


class PublicStatus(BaseModel):
    """What anyone may see (/health, the front page): which part answers, not where it is."""

    temporal_reachable: bool
    workers_polling: int = Field(description="pollers seen on our task queue (workflow + activity)")
    database_reachable: bool
    database_current: bool | None = Field(
        default=None,
        description="whether the database is at this release's revision (None: not read)",
    )
    database: str = Field(description="database backend (sqlite, postgresql)")
    llm_mode: str = Field(
        description="offline (deterministic), local (`make llm`) or remote (OpenAI-compatible)"
    )
    llm_reachable: bool | None = Field(
        default=None, description="whether the model's server answers (None: offline, no model)"
    )

    @property
    def healthy(self) -> bool:
        # Not database_current: a replica of the release before serves on through a rolling
        # upgrade (migrate first, then replace the replicas), and a 503 here dropped them all.
        return self.temporal_reachable and self.database_reachable


class SystemStatus(PublicStatus):
    """The whole report, with addresses and error texts: `ambient status`, and the MCP tool
    to an admin (``told``)."""

    temporal_address: str
    namespace: str
    task_queue: str
    llm: str = Field(description="the model in use and where, or offline")
    errors: list[str] = Field(default_factory=list)

    def public(self) -> PublicStatus:
        return PublicStatus.model_validate(self.model_dump(include=set(PublicStatus.model_fields)))

    def told(self, *, operator: bool) -> StatusReport:
        """What get_status tells its caller: where things run only to an ``operator``."""
        problems = _problems(self)
        if self.namespace_missing:  # its pollers are not known: no worker is not said
            problems = [p for p in problems if not p.startswith("no worker")]
            problems.append(
                "Temporal has no namespace for ambient-ops: no task can be created or listed "
                "until an operator sets it up"
            )
        if self.database_current is False:
            problems.append(
                "the database is not at this release's revision: no worker or API process "
                "starts on it until an operator migrates it (`ambient migrate`)"
            )
        if self.search_attributes_missing:
            problems.append(
                "Temporal is not set up for ambient-ops (its search attributes): no task can be "
                "created or listed until an operator registers them"
            )
        said = StatusReport.model_validate(
            self.model_dump(include=set(PublicStatus.model_fields)) | {"problems": problems}
        )
        if operator:
            operator_fields = set(StatusReport.model_fields) - set(PublicStatus.model_fields)
            said = said.model_copy(update=self.model_dump(include=operator_fields - {"problems"}))
        return said

    search_attributes_missing: list[str] = Field(
        default_factory=list, description="ours the namespace lacks: tasks fail until registered"
    )

    namespace_missing: bool = Field(
        default=False, description="the configured namespace is not on the server: nothing runs"
    )

    @property
    def healthy(self) -> bool:
        return super().healthy and not self.search_attributes_missing and not self.namespace_missing


class StatusReport(PublicStatus):
    """get_status's answer: whether each part works, for every user; where it runs and the
    errors as the parts said them, for an admin or the machine's operator only (None else)."""

    problems: list[str] = Field(
        default_factory=list, description="what does not work now and what that means"
    )
    temporal_address: str | None = None
    namespace: str | None = None
    task_queue: str | None = None
    llm: str | None = Field(default=None, description="the model in use and where, or offline")
    errors: list[str] | None = None


def _problems(status: PublicStatus) -> list[str]:
    """What does not work, in a user's terms: no host, port, queue or error text."""
    problems = []
    if not status.temporal_reachable:
        problems.append("Temporal does not answer: tasks cannot be read, started or changed now")
    elif not status.workers_polling:
        problems.append("no worker is running: background tasks and remediations wait for one")
    if not status.database_reachable:
        problems.append("the database does not answer: nothing stored can be read now")
    if status.llm_reachable is False:
        problems.append(
            "the language model does not answer: briefings and alert scoring use the offline"
            " rules meanwhile"
        )
    return problems


# A worker polls again as each long poll (a minute at most) ends: one the server last saw
# longer ago has stopped. The server lists a poller for ~5 minutes after its last poll, and a
# worker killed or stopped was counted as polling all that while.
POLLED_WITHIN = timedelta(seconds=75)


BOTH_KINDS = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)


async def pollers(
    client: Client,
    namespace: str,
    task_queue: str,
    kinds: tuple[TaskQueueType.ValueType, ...] = BOTH_KINDS,
    timeout: timedelta = PROBE_TIMEOUT,  # noqa: ASYNC109 (a gRPC deadline, not a wait)
) -> int:
    """The workers polling the queue now (its ``kinds`` of tasks): each identity the server
    saw poll it lately. Raises the server's refusal (RPCError)."""
    identities: set[str] = set()
    since = datetime.now(UTC) - POLLED_WITHIN
    for kind in kinds:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind
            ),
            timeout=timeout,
        )
        identities.update(
            poller.identity
            for poller in response.pollers
            if not poller.HasField("last_access_time")
            or poller.last_access_time.ToDatetime(tzinfo=UTC) >= since
        )
    return len(identities)


async def _missing_attributes(client: Client, namespace: str) -> list[str]:
    """Our search attributes the namespace has not registered (a server that cannot say: none):
    every task's start and list names them, and Temporal refuses both without them."""
    from ambient import temporal

    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace), timeout=PROBE_TIMEOUT
        )
    except Exception:  # an older server, or a permission this client lacks: not known
        return []
    # One of another type (a Text) is no better than none: a list by it finds nothing.
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    return [
        key.name
        for key in temporal.SEARCH_ATTRIBUTES
        if response.custom_attributes.get(key.name) != keyword
    ]


async def _llm_answers(settings: Settings, errors: list[str]) -> bool | None:
    """Ask the configured model's server for its models; a dead one is said, not assumed."""
    client = openai_client(settings, timeout=PROBE_TIMEOUT.total_seconds())
    if client is None:
        return None
    import openai  # loaded with the client (openai_client)

    try:
        await client.models.list()
    except openai.OpenAIError as exc:
        hint = " (start it: `ambient llm serve`)" if settings.local_llm else ""
        errors.append(
            f"llm: {settings.llm_description} does not answer ({exc}){hint}; briefings, alert "
            "scoring and the event agent use the offline rules meanwhile, marked offline"
        )
        return False
    finally:
        await client.close()
    return True


async def system_status(settings: Settings, client: Client, db: Database) -> SystemStatus:
    """Probe Temporal, our task queue's pollers and the database; never raises."""
    errors: list[str] = []
    temporal_ok, polling, missing, namespace_missing = False, 0, list[str](), False
    try:
        await client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=PROBE_TIMEOUT)
        temporal_ok = True
        polling = await pollers(client, settings.temporal_namespace, settings.temporal_task_queue)
        missing = await _missing_attributes(client, settings.temporal_namespace)
    except Exception as exc:
        errors.append(temporal_problem(exc, settings) or f"temporal: {exc}")
        namespace_missing = no_answer.namespace_missing(exc)
    if temporal_ok and not polling:
        # Tasks are created and never run: no worker takes them (none started, or one on
        # another queue).
        errors.append(
            f"no worker polls task queue {settings.temporal_task_queue!r}: start `ambient "
            "worker` with this AMBIENT_TEMPORAL_TASK_QUEUE; tasks and remediations wait for one"
        )
    if missing:
        errors.append(register_hint(settings.temporal_namespace, missing))
    db_ok, db_current = False, None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT.total_seconds()):
            db_ok = await db.ping()
            # A database no process of this release starts on (never migrated, or a newer
            # release's) answered, and `status` said all was well.
            refused = await migrate.behind(db)
            db_current = refused is None
            if refused is not None:
                errors.append(f"database: {refused}")
    except Exception as exc:
        errors.append(f"database: {exc}")
    llm_ok = await _llm_answers(settings, errors)
    return SystemStatus(
        temporal_reachable=temporal_ok,
        temporal_address=settings.temporal_address,
        namespace=settings.temporal_namespace,
        task_queue=settings.temporal_task_queue,
        workers_polling=polling,
        database_reachable=db_ok,
        database_current=db_current,
        database=db.engine.dialect.name,
        llm_mode=settings.llm_mode,
        llm=settings.llm_description,
        llm_reachable=llm_ok,
        search_attributes_missing=missing,
        namespace_missing=namespace_missing,
        errors=errors,
    )
