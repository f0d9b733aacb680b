"""`ambient remediation` prints what alerts and users wrote as text, not Rich markup."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient import no_answer
from ambient.cli import app as cli
from ambient.commands import ACTING_USER, in_cli_words
from ambient.deps import WorkerDeps
from ambient.remediation.alerts import Alert
from ambient.remediation.runs import FINAL_STATES, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import RemediationRepository
from ambient.settings import Settings
from ambient.storage.db import Database
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import user_named
from ambient.xiaozhi_context import voice_facts
from tests.conftest import running_worker, unique
from tests.remediation.support import (
    add_user,
    alert,
    error_rate,
    remediation_settings,
    remediations_on_dev,
)
from tests.support.servers import HANG, free_port
from tests.support.waits import eventually

Invoke = Callable[..., Awaitable[tuple[int, str]]]


def _admin_ops(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI on ``settings``' data directory, with the admin ``ops`` created."""
    monkeypatch.setenv("AMBIENT_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    assert runner.invoke(cli, ["user", "create", "ops", "--admin"]).exit_code == 0
    return runner


def test_stats_show_an_alert_type_with_brackets_as_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _admin_ops(settings, monkeypatch)
    # An alarm integration names its metric as it likes: a policy name, brackets and all.
    metric = "[/] p95 [bold]latency[/bold]"
    alert = Alert(
        source="cls",
        cluster_id="cls-7kq2m0ab",
        namespace="default",
        workload="checkout",
        metric=metric,
    )

    async def finished_run() -> None:
        db = Database(settings.resolved_database_url)
        try:
            async with db.session() as session:
                await RemediationRepository(session).save_run(
                    "remediation/x@1",
                    alert,
                    {"tried": [1]},
                    remediation_id="remediation/x",
                    user="ops",
                    mode="execute",
                    state="resolved",
                    attempts=1,
                    resolved_rung=1,
                    finished_at=datetime.now(UTC),
                )
                await session.commit()
        finally:
            await db.close()

    asyncio.run(finished_run())
    shown = runner.invoke(cli, ["remediation", "stats", "--user", "ops"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert metric in shown.output


@pytest.mark.parametrize("given", ["@{missing}", "@{folder}", "@{latin1}", "not json", "[1]"])
def test_an_alert_the_cli_cannot_read_is_one_line_and_exit_2(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str
) -> None:
    monkeypatch.setenv("AMBIENT_DATA_DIR", str(settings.data_dir))
    latin1 = tmp_path / "alert.json"
    latin1.write_bytes('{"source": "café"}'.encode("latin-1"))
    text = given.format(missing=tmp_path / "gone.json", folder=tmp_path, latin1=latin1)
    refused = CliRunner().invoke(cli, ["remediation", "score", text])
    assert (refused.exit_code, refused.stdout) == (2, ""), refused.output
    [line] = refused.stderr.splitlines()
    assert line.startswith("alert"), line


async def test_show_prints_an_outcome_with_brackets_as_written(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcome quotes what a person typed (an abort's or a refusal's reason): `show` and
    `follow` print it as text, not Rich markup. Its audit lines say their times in the
    terminal's zone with its offset, as `ambient cloud logs` does: they printed UTC wall times
    with no zone, eight hours off on a terminal in Asia/Shanghai."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    user = unique("cli-ops")
    await add_user(deps, user)
    reason = "[/] wrong cluster, see [bold]INC-42[/bold]"
    async with error_rate(healthy_from=1) as (_, url), running_worker(dev_env.client, deps) as w:
        settings = deps.settings.model_copy(update={"temporal_task_queue": w.task_queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        started = await service.start(user, alert(url, workload=user, settle_seconds=0))
        rid = started.remediation_id
        await waiting(service, user, rid)
        await service.abort(user, rid, reason, via="cli")

        async def aborted() -> bool:
            return (await service.get(user, rid)).state == "aborted"

        await eventually(aborted, f"{rid} is aborted")
        env = {
            "AMBIENT_DATA_DIR": str(settings.data_dir),
            "AMBIENT_USER": user,
            "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "AMBIENT_TEMPORAL_TASK_QUEUE": w.task_queue,
            "COLUMNS": "300",
        }
        audit = (await service.get(user, rid)).audit
        monkeypatch.setenv("TZ", "Asia/Shanghai")
        time.tzset()
        try:
            shown = await asyncio.to_thread(
                CliRunner().invoke, cli, ["remediation", "show", rid], env=env
            )
        finally:
            monkeypatch.undo()
            time.tzset()
    assert shown.exit_code == 0, shown.output
    # The caption wraps at the table's width.
    assert f"aborted by {user}: {reason}" in " ".join(shown.output.split())
    beijing = audit[0].at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"  {beijing:%Y-%m-%d %H:%M:%S}+08:00 " in shown.output, shown.output
    # The abort's record says the door it came through.
    assert f"{user} abort with the CLI\n" in shown.output, shown.output


async def test_remediation_list_pages_on_with_limit_and_offset(
    settings: Settings, deps: WorkerDeps
) -> None:
    """`ambient remediation list` showed the 50 newest runs and no way past them."""
    from tests.remediation.support import run_row

    user = unique("cli-pager")
    await add_user(deps, user)
    async with deps.db.session() as session:
        for i in range(3):
            session.add(
                run_row(f"remediation/{unique('fp')}", user, state="resolved", service=f"s{i}")
            )
        await session.commit()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir), "AMBIENT_USER": user, "COLUMNS": "300"}

    def listed(*options: str) -> list[str]:
        shown = CliRunner().invoke(cli, ["remediation", "list", "--json", *options], env=env)
        assert shown.exit_code == 0, shown.output
        return [run["service"] for run in json.loads(shown.output)]

    first, rest = (
        await asyncio.to_thread(listed, "--limit", "2"),
        await asyncio.to_thread(listed, "--limit", "2", "--offset", "2"),
    )
    assert len(first) == 2 and len(rest) == 1 and sorted(first + rest) == ["s0", "s1", "s2"]
    refused = await asyncio.to_thread(
        CliRunner().invoke, cli, ["remediation", "list", "--offset", "-1"], env=env
    )
    assert refused.exit_code != 0 and "offset" in refused.output
    too_far = await asyncio.to_thread(
        CliRunner().invoke, cli, ["remediation", "list", "--offset", str(10**20)], env=env
    )
    assert too_far.exit_code != 0 and "offset: 0 to" in too_far.output, too_far.output
    # In a pipe, one tab-separated line a run: the table folded each id over three lines.
    env["COLUMNS"] = "60"
    piped = await asyncio.to_thread(CliRunner().invoke, cli, ["remediation", "list"], env=env)
    lines = [line.split("\t") for line in piped.output.splitlines()]
    ids = {
        run["remediation_id"]
        for run in json.loads(
            (
                await asyncio.to_thread(
                    CliRunner().invoke, cli, ["remediation", "list", "--json"], env=env
                )
            ).output
        )
    }
    assert {line[0] for line in lines} == ids and {len(line) for line in lines} == {6}, piped.output


async def test_remediation_list_pages_by_before_id_as_list_remediations_does(
    settings: Settings, deps: WorkerDeps
) -> None:
    """list_remediations and GET /remediations page by before_id (a run started between two
    pages shifts nothing); `ambient remediation list` had only --offset, which shows a run
    twice when one starts between the pages (an alert storm is when an operator pages)."""
    from tests.remediation.support import run_row

    user = unique("pager")
    await add_user(deps, user)
    async with deps.db.session() as session:
        for i in range(3):
            session.add(
                run_row(f"remediation/{unique('fp')}", user, state="resolved", service=f"s{i}")
            )
        await session.commit()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir), "AMBIENT_USER": user, "COLUMNS": "300"}

    def listed(*options: str) -> tuple[list[dict[str, object]], str]:
        shown = CliRunner().invoke(cli, ["remediation", "list", *options], env=env)
        assert shown.exit_code == 0, shown.output
        return (json.loads(shown.stdout) if "--json" in options else []), shown.stderr

    first, _ = await asyncio.to_thread(listed, "--json", "--limit", "2")
    async with deps.db.session() as session:  # a new run starts between the two pages
        session.add(run_row(f"remediation/{unique('fp')}", user, state="resolved", service="s3"))
        await session.commit()
    before = str(first[-1]["id"])
    rest, _ = await asyncio.to_thread(listed, "--json", "--limit", "2", "--before-id", before)
    assert [r["service"] for r in first + rest] == ["s2", "s1", "s0"]
    # A full page says how to get the next; the last says nothing.
    newest, _ = await asyncio.to_thread(listed, "--json")
    assert (await asyncio.to_thread(listed, "--limit", "2"))[1] == (
        f"more: --before-id {newest[1]['id']}\n"
    )
    assert (await asyncio.to_thread(listed, "--limit", "2", "--before-id", before))[1] == ""


async def test_remediation_list_with_temporal_down_says_so_in_a_line_not_a_grpc_log(
    settings: Settings, deps: WorkerDeps
) -> None:
    """Every command says "Temporal is unreachable at ADDRESS: ..." (README "Output");
    `remediation list` with an open run printed the service's log line on stderr:
    "remediations: the server's list failed (Failed client connect: Server connection error:
    tonic::transport::Error(Transport, ConnectError(...))); rows as stored", exit 0."""
    from tests.remediation.support import run_row

    user = unique("down")
    await add_user(deps, user)
    async with deps.db.session() as session:
        fingerprint = f"remediation/{unique('fp')}"
        session.add(run_row(fingerprint, user, state="settling", started_at=datetime.now(UTC)))
        await session.commit()
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env |= {"AMBIENT_DATA_DIR": str(settings.data_dir), "AMBIENT_TEMPORAL_ADDRESS": address}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ambient.cli", "remediation", "list", "--user", user],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"Temporal is unreachable at {address}: start it (`ambient dev`) or point "
        "AMBIENT_TEMPORAL_ADDRESS at a running server; states as last stored\n"
    )
    assert [line.split("\t")[:3] for line in done.stdout.splitlines()] == [
        [fingerprint, "checkout", "settling"]
    ]
    # Asked for runs in a state they may be in now: the stored states cannot say (a list of
    # those waiting for approval read empty while runs waited).
    waiting = await asyncio.to_thread(
        subprocess.run,
        [*done.args, "--state", "waiting_approval"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert waiting.returncode == 1 and waiting.stdout == "", waiting
    assert "state waiting_approval: where the running runs are now could not be read" in (
        waiting.stderr
    ), waiting.stderr


async def test_start_in_a_pipe_prints_each_state_as_the_run_reaches_it(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Following redraws the ladder on a terminal; a pipe (a log, `tee`) got nothing between the
    start line and the end, however long the run waited."""
    remediation_settings(deps)
    user = unique("cli-pipe")
    await add_user(deps, user)
    async with error_rate(healthy_from=1) as (_, url), running_worker(dev_env.client, deps) as w:
        env = {
            "AMBIENT_DATA_DIR": str(deps.settings.data_dir),
            "AMBIENT_USER": user,
            "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "AMBIENT_TEMPORAL_TASK_QUEUE": w.task_queue,
            "AMBIENT_FETCH_ALLOW_CIDRS": '["127.0.0.1/32"]',
            "AMBIENT_REMEDIATION_CLUSTER_COOLDOWN_SECONDS": "0",
            "COLUMNS": "300",
        }
        sent = alert(url, workload=user, settle_seconds=0).model_dump_json()
        followed = await asyncio.to_thread(
            CliRunner().invoke, cli, ["remediation", "start", sent], env=env
        )
    assert followed.exit_code == 0, followed.output
    lines = followed.output.splitlines()
    rid = lines[0].split()[1]
    # The hint is the command to type, the run's id in it, not "`ambient remediation show`".
    assert lines[0].endswith(f"; `ambient remediation show {rid} --user {user}` shows the plan"), (
        lines[0]
    )
    states = [line.split(": ", 1)[1] for line in lines if line.startswith(f"{rid}: ")]
    assert states and states[-1] == "resolved", followed.output
    assert len(set(states)) == len(states)  # a line when the state changes, not each second


async def test_share_prints_the_link_on_one_line_to_be_copied(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # In a terminal (or a pipe) 80 columns wide the link broke in its signature onto a new line.
    remediation_settings(deps, remediation_approval_from_rung=1)
    user = unique("cli-sharer")
    await add_user(deps, user)
    async with error_rate(healthy_from=1) as (_, url), running_worker(dev_env.client, deps) as w:
        settings = deps.settings.model_copy(update={"temporal_task_queue": w.task_queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        started = await service.start(user, alert(url, workload=user, settle_seconds=0))
        env = {
            "AMBIENT_DATA_DIR": str(settings.data_dir),
            "AMBIENT_USER": user,
            "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "AMBIENT_TEMPORAL_TASK_QUEUE": w.task_queue,
            "COLUMNS": "60",
        }
        args = ["remediation", "share", started.remediation_id]
        shown = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        await service.abort(user, started.remediation_id, "done", via="api")
    assert shown.exit_code == 0, shown.output
    assert len(shown.output.splitlines()) == 1, shown.output
    assert "/share/" in shown.output.split()[0]


async def waiting(service: RemediationService, user: str, rid: str) -> RemediationStatus:
    """The run's status once it waits for an approval."""

    async def check() -> RemediationStatus | None:
        status = await service.get(user, rid)
        return status if status.state == "waiting_approval" else None

    return await eventually(check, f"{rid} waits for an approval")


@asynccontextmanager
async def a_run_waiting_for_approval(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, who: str
) -> AsyncIterator[tuple[RemediationService, str, str, RemediationStatus, Invoke]]:
    """A remediation waiting at rung 1 for its approval, and the CLI run as its user:
    ``invoke(*args)`` answers the exit code and the output on one line."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    user = unique(who)
    await add_user(deps, user)
    async with error_rate(healthy_from=1) as (_, url), running_worker(dev_env.client, deps) as w:
        settings = deps.settings.model_copy(update={"temporal_task_queue": w.task_queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        rid = (
            await service.start(user, alert(url, workload=user, settle_seconds=0))
        ).remediation_id
        seen = await waiting(service, user, rid)
        env = {
            "AMBIENT_DATA_DIR": str(settings.data_dir),
            "AMBIENT_USER": user,
            "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "AMBIENT_TEMPORAL_TASK_QUEUE": w.task_queue,
            "COLUMNS": "300",
        }

        async def invoke(*args: str) -> tuple[int, str]:
            done = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
            return done.exit_code, " ".join(done.output.split())

        yield service, user, rid, seen, invoke


async def test_approve_names_the_rung_and_run_it_was_checked_on(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The API and the page take the rung (and run) the caller saw; the CLI approved whatever
    # rung waited when it checked.
    async with a_run_waiting_for_approval(dev_env, deps, "cli-approver") as run:
        service, user, rid, seen, invoke = run
        approve = ("remediation", "approve", rid, "--reason", "go")
        early = await invoke(*approve, "--rung", "2")
        other = await invoke(*approve, "--rung", "1", "--run-key", f"{rid}@made-up")
        unchanged = await service.get(user, rid)
        taken = await invoke(*approve, "--rung", "1", "--run-key", seen.run_key)
    assert early[0] == 1 and "rung 2" in early[1] and "not come yet" in early[1], early
    assert other[0] == 1 and "no run of" in other[1], other
    # The refusal's tool (get_remediation) as the command to type, the run's id in it.
    assert f"look at its current run (`ambient remediation show {rid} --user {user}`)" in other[1]
    assert unchanged.state == "waiting_approval" and unchanged.approvals == []
    # The step and that it is a dry run, in the voice's words.
    assert taken == (0, f"{rid}: approved step 1 (restart, a dry run)"), taken


async def test_abort_names_the_run_it_was_checked_on(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The API and MCP abort the run the caller saw; the CLI aborted whichever run was latest.
    async with a_run_waiting_for_approval(dev_env, deps, "cli-aborter") as run:
        service, user, rid, seen, invoke = run
        abort = ("remediation", "abort", rid, "--reason", "stop")
        other = await invoke(*abort, "--run-key", f"{rid}@made-up")
        unchanged = await service.get(user, rid)
        taken = await invoke(*abort, "--run-key", seen.run_key)
    assert other[0] == 1 and "no run of" in other[1], other
    assert f"(`ambient remediation show {rid} --user {user}`)" in other[1], other
    assert unchanged.state == "waiting_approval"
    assert taken[0] == 0 and "abort sent" in taken[1], taken


async def test_a_run_terminated_by_an_operator_shows_it_ended_in_every_door(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Terminated in the Web UI (or `temporal workflow terminate`), the run never wrote its
    # end: get, the CLI and the list went on showing it waiting for an approval, and approving
    # it said it had "already finished (state waiting_approval)". Its row, shown aborted only
    # while a list was built, kept it out of `--state aborted` and in every open count.
    async with a_run_waiting_for_approval(dev_env, deps, "cli-terminated") as run:
        service, user, rid, seen, invoke = run
        await dev_env.client.get_workflow_handle(rid).terminate(reason="operator")
        closed = f'WorkflowId = "{rid}" AND ExecutionStatus = "Terminated"'

        async def listed_closed() -> bool:
            # The reads below take a running run's state from the server's list (a visibility
            # query, eventually consistent): the terminate reaches it a moment later.
            return bool([e async for e in dev_env.client.list_workflows(closed)])

        await eventually(listed_closed, "the run listed as terminated by the server")
        # What 小智 is told at a wake, before any list looked: it counted the run open.
        account = await user_named(deps.db, user)
        assert account is not None
        facts = await voice_facts(deps.db, account, service, budget=HANG)
        ended = (await service.list_page(user, state="aborted")).runs
        still_running = (await service.list_page(user, open_only=True)).runs
        shown = await service.get(user, rid)
        listed = {r.run_key: r.state for r in (await service.list_page(user)).runs}
        still_open = (await service.list_page(user, state="waiting_approval")).runs
        approved = await invoke("remediation", "approve", rid, "--reason", "go")
        aborted = await invoke("remediation", "abort", rid)
    assert facts.open_alerts == 0, facts
    assert shown.state == "aborted" and shown.waiting is None, shown
    said = "a dry run, nothing was changed: terminated in Temporal before its own end"
    assert shown.outcome == said, shown.outcome
    assert shown.finished_at is not None
    assert listed == {seen.run_key: "aborted"} and still_open == []
    assert [r.run_key for r in ended] == [seen.run_key] and still_running == []
    async with deps.db.session() as session:  # what the voice's counts read
        row = await RemediationRepository(session).get(seen.run_key)
    assert row is not None and (row.state, row.finished_at) == ("aborted", shown.finished_at)
    assert row.detail["outcome"] == shown.outcome
    assert approved[0] == 1 and "not waiting for approval (state aborted)" in approved[1]
    assert aborted[0] == 1 and "already finished (state aborted)" in aborted[1], aborted


def test_a_rule_named_with_brackets_is_said_saved_as_named(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _admin_ops(settings, monkeypatch)
    # A rule's name is free text: Rich read it as markup ("[/]" ended the command after the
    # rule was saved, "[red]" vanished).
    name = "[/] checkout [red]x[/red]"
    saved = runner.invoke(cli, ["remediation", "rule", name, "--user", "ops", "--manual"])
    assert (saved.exit_code, saved.stdout) == (0, f"alert rule {name!r} saved\n"), saved.output


def test_a_list_command_is_named_without_the_id_a_show_command_takes() -> None:
    """A text naming list_remediations and get_remediation, said for a run: the list is
    "`ambient remediation list`" (it said "`ambient remediation list remediation/…`", an
    argument the command does not take), the show names the run."""
    rid = "remediation/0123456789abcdef"
    text = "get_remediation shows the plan; call list_remediations to see yours"
    acting = ACTING_USER.set("")  # outside a command: no --user to name
    try:
        assert in_cli_words(text, rid) == (
            f"`ambient remediation show {rid}` shows the plan; run `ambient remediation list` to "
            "see yours"
        )
        assert in_cli_words("list_tasks, list_briefings", "web-monitor/ann/home") == (
            "`ambient task list`, `ambient briefing list`"
        )
        # A command's --user is named in each command it says (it asked for one, or acted as
        # AMBIENT_USER's or the default user without it).
        ACTING_USER.set("ann")
        assert in_cli_words("list_tasks") == "`ambient task list --user ann`"
    finally:
        ACTING_USER.reset(acting)


async def test_show_of_a_run_whose_worker_stopped_says_it_is_as_last_recorded(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its worker stopped: `show` printed the state as recorded ("planned" while it waited for
    its approver) as if the run had said it, every rung's result blank, nothing told; the page
    and the API said it did not answer."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
    remediation_settings(deps, remediation_approval_from_rung=1)
    user = unique("cli-silent")
    await add_user(deps, user, permission="dry_run")
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        rid = (
            await remediations.start(user, alert(metric_url, workload=user), mode="dry_run")
        ).remediation_id

        async def waiting() -> bool:
            view = await remediations.get(user, rid)
            return view.waiting is not None and view.waiting.what == "approval"

        await eventually(waiting, "rung 1 waits for approval")
    # The worker has stopped: nothing answers the run's queries.
    env = {
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_USER": user,
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "COLUMNS": "300",
    }
    shown = await asyncio.to_thread(CliRunner().invoke, cli, ["remediation", "show", rid], env=env)
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.output.split())
    assert f"{rid} did not answer" in said and "as last recorded" in said, shown.output


async def test_a_run_terminated_after_it_acted_keeps_its_steps_in_the_list(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Terminated while it waited for an approval after rung 1, its row was written aborted
    with 0 attempts: the list said it had done nothing, its page showed the step."""
    remediation_settings(deps, remediation_approval_from_rung=2)
    user = unique("cli-acted")
    await add_user(deps, user)
    async with error_rate(healthy_from=None) as (_, url), running_worker(dev_env.client, deps) as w:
        settings = deps.settings.model_copy(update={"temporal_task_queue": w.task_queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        alerted = alert(url, workload=user, settle_seconds=0)
        rid = (await service.start(user, alerted)).remediation_id
        seen = await waiting(service, user, rid)
        before = {r.run_key: r.attempts for r in (await service.list_page(user)).runs}
        assert before == {seen.run_key: 1}, before
        await dev_env.client.get_workflow_handle(rid).terminate(reason="operator")

        async def ended() -> dict[str, tuple[str, int]] | None:
            runs = (await service.list_page(user)).runs
            listed = {r.run_key: (r.state, r.attempts) for r in runs}
            return listed if listed[seen.run_key][0] == "aborted" else None

        after = await eventually(ended, "the run listed as aborted")
    assert after == {seen.run_key: ("aborted", 1)}, after


async def test_an_alert_that_cleared_while_its_rung_waited_ends_the_run_with_no_change(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Approved after the metric was healthy again, the rung's change ran anyway, and the run
    said "resolved at rung 1", a success the rung never had (DESIGN: resolved → stop)."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    user = unique("cli-cleared")
    await add_user(deps, user)
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(dev_env.client, deps) as w,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": w.task_queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        rid = (
            await service.start(user, alert(url, workload=user, settle_seconds=0))
        ).remediation_id
        seen = await waiting(service, user, rid)
        site.healthy_from = 0  # the alert clears while the approval waits
        await service.approve(user, rid, True, "go", run_key=seen.run_key, rung=1, via="api")

        async def ended() -> RemediationStatus | None:
            status = await service.get(user, rid)
            return status if status.state in FINAL_STATES else None

        done = await eventually(ended, "the run's end")
    assert done.state == "resolved", done
    assert done.attempts == [], done
    assert "cleared while rung 1 (restart) waited" in done.outcome, done.outcome
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(user)
    [told] = [m for m in inbox if m.title.startswith("Alert cleared")]
    assert told.body.count("nothing was changed") == 1, told.body  # a dry run's, said once
