"""`ambient remediation`: score, start, follow, approve and abort remediations from a terminal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ambient.cli_numbers import whole_number
from ambient.commands import (
    Json,
    User,
    err_console,
    in_cli_words,
    json_object,
    print_json,
    print_rows,
    run_service,
    said_at,
    table_of,
    terminal,
)
from ambient.remediation.runs import FINAL_STATES, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.views import RETRY_SAFE, VERDICTS, RemediationError, action_said
from ambient.sharing import ShareLinkLimitError
from ambient.storage.models import MAX_ID, next_before

app = typer.Typer(no_args_is_help=True)  # its help: ambient/cli_group.py LAZY
console = terminal()
T = TypeVar("T")
AlertFile = Annotated[
    str,
    typer.Argument(help="the alert as JSON, or @FILE to read it from a file ('-' for stdin)"),
]
RunKey = Annotated[
    str | None, typer.Option(help="the run you looked at (show --json); else the current")
]


def _run(work: Callable[[RemediationService], Awaitable[T]]) -> T:
    # Scoring needs no Temporal: the lazy client connects at the first workflow call.
    return run_service(lambda s: s.remediations, work, (RemediationError, ShareLinkLimitError))


def _status_table(status: RemediationStatus) -> Table:
    attempts = {a.attempt: a for a in status.attempts}
    rows = []
    for step in status.plan:
        done = attempts.get(step.attempt)
        result = ""
        if done is not None:
            result = done.skipped_reason or done.detail
        elif status.next_rung == step.rung and status.waiting is not None:
            result = f"waiting for {status.waiting.what}"
        rung = f"{int(step.rung)} {step.rung.name.lower()}"
        rows.append(
            [
                str(step.attempt),
                rung + (" (approval)" if step.needs_approval else ""),
                done.mode if done else "",
                result,
                VERDICTS[done.resolved] if done else "",
            ]
        )
    return table_of(
        ["attempt", "rung", "mode", "result", "verified"],
        rows,
        title=f"{status.remediation_id} — {status.state}"
        + (f" (score {status.score}, budget {status.budget})" if status.score is not None else ""),
        caption=status.outcome or None,
    )


def _silence(status: RemediationStatus) -> str:
    """What a run that did not answer (its worker stopped or busy) leaves out: "" if it did."""
    if not status.unanswered:
        return ""
    return (
        f"{status.remediation_id} did not answer ({status.unanswered}): its state as last "
        "recorded, without its attempts or what it waits for"
    )


async def _follow(service: RemediationService, user: str, rid: str) -> RemediationStatus:
    """Redraw the ladder until the remediation ends (Ctrl-C stops following, not the work)."""
    status, said, silent = await service.get(user, rid), None, ""
    with Live(_status_table(status), console=console, refresh_per_second=4) as live:
        while True:
            if (silence := _silence(status)) != silent:
                # Said when it goes silent and when it answers again: the ladder shown is as
                # recorded meanwhile (a stopped worker's run looked "planned", and followed on).
                err_console.print(silence or f"{rid} answers again", soft_wrap=True, markup=False)
                silent = silence
            if not console.is_terminal and status.state != said:
                # Live draws a pipe the ladder once, at the end: a line per state until then.
                console.print(
                    f"{rid}: {status.state}", highlight=False, soft_wrap=True, markup=False
                )
                said = status.state
            if status.state in FINAL_STATES:
                return status
            await asyncio.sleep(1)
            status = await service.get(user, rid)
            live.update(_status_table(status))


@app.command()
def score(alert: AlertFile, as_json: Json = False) -> None:
    """Score an alert and show the budget and plan it would buy (nothing runs)."""
    view = _run(lambda s: s.score(json_object(alert, "alert")))
    if as_json:
        print_json(console, view)
        return
    console.print(f"score [bold]{view.score}[/] → budget {view.budget} ({view.generated_by})")
    for reason in view.reasons:
        console.print(f"  • {escape(reason)}")
    for step in view.plan:
        approval = " [yellow](approval)[/]" if step.needs_approval else ""
        console.print(f"  {step.attempt}. {step.action}{approval}")


@app.command()
def start(
    alert: AlertFile,
    user: User,
    mode: Annotated[str, typer.Option(help="dry_run or execute")] = "dry_run",
    follow: Annotated[bool, typer.Option(help="show progress until it ends")] = True,
    as_json: Json = False,
    request_id: Annotated[str | None, typer.Option(help=RETRY_SAFE)] = None,
) -> None:
    """Start the remediation of an alert and follow it.

    One already running for the same alert is deduplicated: followed only when it is yours to see.
    """

    async def work(service: RemediationService) -> Any:
        alerted = json_object(alert, "alert")
        started = await service.start(user, alerted, mode, request_id=request_id)  # type: ignore[arg-type]
        if as_json or not follow:
            return started
        # "started <id> (…); get_remediation shows the plan": the command with the id to type.
        said = in_cli_words(started.message, started.remediation_id)
        console.print(said, soft_wrap=True, markup=False)
        if started.state is None:
            return None  # another owner's run: nothing of it is ours to follow
        return await _follow(service, user, started.remediation_id)

    result = _run(work)
    if as_json or not follow:
        print_json(console, result)


@app.command()
def show(remediation_id: str, user: User, as_json: Json = False) -> None:
    """State, plan, attempts and audit of a remediation."""
    view = _run(lambda s: s.get(user, remediation_id))
    if as_json:
        print_json(console, view)
        return
    if silence := _silence(view):
        err_console.print(silence, soft_wrap=True, markup=False)
    console.print(_status_table(view))
    for line in view.audit:
        action = action_said(line.action, line.detail)
        console.print(f"  {said_at(line.at)} {line.actor:>12} {action}", markup=False)


@app.command()
def share(remediation_id: str, user: User) -> None:
    """A signed, expiring link to the remediation's report page."""
    link = _run(lambda s: s.share(user, remediation_id))
    # soft_wrap: the link stays on one line to be copied.
    until = f"(until {link.expires_at:%Y-%m-%d %H:%M} UTC)"
    console.print(f"{link.url}  {until}", soft_wrap=True, highlight=False, markup=False)


@app.command()
def follow(remediation_id: str, user: User) -> None:
    """Follow a remediation's progress until it ends."""
    _run(lambda s: _follow(s, user, remediation_id))


@app.command()
def approve(
    remediation_id: str,
    user: User,
    reason: Annotated[str, typer.Option(help="why")] = "",
    refuse: Annotated[bool, typer.Option("--refuse", help="refuse: hand over instead")] = False,
    rung: Annotated[
        int | None,
        typer.Option(parser=whole_number(1, 6), help="the rung you saw waiting (show); else any"),
    ] = None,
    run_key: RunKey = None,
) -> None:
    """Approve (or --refuse) the step a remediation waits for."""
    decision = _run(
        lambda s: s.approve(
            user, remediation_id, not refuse, reason, run_key=run_key, rung=rung, via="cli"
        )
    )
    console.print(f"{remediation_id}: {decision.said()}", markup=False, highlight=False)


@app.command()
def abort(
    remediation_id: str,
    user: User,
    reason: Annotated[str, typer.Option(help="why")] = "",
    run_key: RunKey = None,
) -> None:
    """Stop a remediation before its next change."""
    status = _run(lambda s: s.abort(user, remediation_id, reason, run_key=run_key, via="cli"))
    console.print(f"{remediation_id}: abort sent (state {status.state})", markup=False)


@app.command("list")
def list_(
    user: User,
    state: Annotated[str | None, typer.Option(help="only this state")] = None,
    limit: Annotated[int, typer.Option(parser=whole_number(1, 500), help="at most")] = 50,
    offset: Annotated[int, typer.Option(parser=whole_number(0), help="skip this many")] = 0,
    before_id: Annotated[
        int | None,
        typer.Option(
            parser=whole_number(1, MAX_ID),
            help="next page: N of a full page's last line, more: --before-id N",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Your remediations and those on clusters you are a named approver for (an admin: all)."""
    # One past the page: is there a next one? (A run started meanwhile shifts no before_id.)
    page = _run(
        lambda s: s.list_page(
            user, state=state, limit=limit + 1, offset=offset, before_id=before_id
        )
    )
    runs = page.runs[:limit]
    columns = ["remediation", "service", "state", "score", "attempts", "started"]
    cells: list[list[object]] = [
        [r.remediation_id, r.service, r.state, r.score, r.attempts, r.started_at] for r in runs
    ]
    print_rows(console, columns, cells, runs, as_json)
    if page.as_stored:  # a running run may be past the state shown
        said = f"{page.as_stored}; states as last stored"
        err_console.print(said, soft_wrap=True, markup=False, highlight=False)
    if (more := next_before(page.runs, limit)) and not as_json:
        err_console.print(f"more: --before-id {more}", highlight=False)


@app.command()
def stats(
    user: User,
    days: Annotated[int, typer.Option(help="look back this many days", parser=whole_number())] = 30,
    as_json: Json = False,
) -> None:
    """Outcome analytics: success by rung/service/alert type, time to resolve, budgets spent."""
    result = _run(lambda s: s.stats(user, days=days))
    if as_json:
        print_json(console, result)
        return
    console.print(
        f"{result.finished} finished, {result.resolved} resolved "
        f"({result.success_rate:.0%}); budgets run out: {result.budgets_exhausted}"
        + (
            f"; dry runs (changed nothing, not counted): {result.dry_runs}"
            if result.dry_runs
            else ""
        )
    )
    if result.median_seconds_to_resolve is not None:
        console.print(f"median time to resolve: {result.median_seconds_to_resolve / 60:.1f} min")
    for title, rows in (
        ("by rung", result.by_rung),
        ("by service", result.by_service),
        ("by alert type", result.by_alert_type),
    ):
        cells = [[r.key, str(r.runs), str(r.resolved), f"{r.rate:.0%}"] for r in rows]
        console.print(table_of(["key", "runs", "resolved", "rate"], cells, title=title))


@app.command()
def rule(
    name: str,
    user: User,
    workload: Annotated[str, typer.Option(help="glob over Deployment names")] = "*",
    namespace: Annotated[str, typer.Option(help="glob")] = "*",
    cluster: Annotated[str, typer.Option(help="glob over cluster ids")] = "*",
    importance: Annotated[int | None, typer.Option(parser=whole_number(0, 100))] = None,
    manual: Annotated[bool, typer.Option(help="never act; hand over at once")] = False,
) -> None:
    """Create or replace an alert rule (admin): pin importance or force manual handling."""
    saved = _run(
        lambda s: s.put_rule(
            user,
            {
                "name": name,
                "workload": workload,
                "namespace": namespace,
                "cluster_id": cluster,
                "importance": importance,
                "manual": manual,
            },
        )
    )
    console.print(f"alert rule {saved.name!r} saved", markup=False)


@app.command()
def triage(user: User) -> None:
    """Create or update the nightly alert-triage Schedule, run as USER.

    It runs at AMBIENT_REMEDIATION_TRIAGE_AT (05:00 team time by default).
    """
    made = _run(lambda s: s.schedule_triage(user))
    console.print(made.said(), markup=False)
