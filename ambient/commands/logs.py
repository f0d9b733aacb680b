"""`ambient logs`: the log reducer from a terminal, on files.

`ambient logs templates PATH...` reads JSON lines, timestamped text lines or plain message
lines (here a line without a timestamp is a message, not an error), files or directories
of rotated files (`.gz` too), and prints the reduced report: markdown by default, the
report as JSON with `--json`, or one `{"line": N, "template_id": ...}` per input line with
`--per-line` so grouping can be scored against any labelled data set.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn

from ambient.briefing.logreport import LogReducer
from ambient.briefing.logreport_markdown import render_markdown
from ambient.cli_numbers import whole_number
from ambient.clients.log_formats import (
    CRI_TAG,
    PLAIN,
    PRIORITY,
    json_time,
    parse_time,
    text_fields,
    text_line,
    unwrapped,
)
from ambient.clients.log_parts import whole_lines
from ambient.clients.logs import CONTINUATION, FileLogSource
from ambient.commands import terminal
from ambient.domain.loglevels import SYSLOG_SEVERITIES, level_and_message
from ambient.domain.times import within_years
from ambient.refusals import Refusal, said_back

app = typer.Typer()  # its help: ambient/cli_group.py LAZY
err_console = terminal(stderr=True)


def read_line(
    line: str, today: date, *, inner: bool = False
) -> tuple[datetime | None, str, str] | None:
    """(time or None, level, message) of one line in the file source's formats; None if blank
    (``inner``: a wrapped line, not unwrapped again, as in ``parse_line``)."""
    # Read without building a record per line; a line of no known format is a message.
    text = line.strip()
    if not text:
        return None
    if not inner and (priority := PRIORITY.match(text)):  # syslog's: its severity, unless written
        read = read_line(text[priority.end() :], today, inner=True)
        if read is not None and read[1] == "UNKNOWN":
            return read[0], SYSLOG_SEVERITIES[int(priority[1]) % 8], read[2]
        return read
    if text[0] == "{":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # nested past Python's limit: a few KB do it
            data = None
        if isinstance(data, dict):
            data = unwrapped(data)
            # Docker's json-file: the line as the container wrote it
            log = data.get("log") if "stream" in data and not inner else None
            read = read_line(log, today, inner=True) if isinstance(log, str) else None
            return json_time(data), *(read[1:] if read else level_and_message(data))
    match = PLAIN.match(text)
    if match is not None:
        try:
            when = parse_time(match["ts"])
        except ValueError:
            pass
        else:
            rest = match["rest"]
            tag = None if inner else CRI_TAG.match(rest)  # a container's: the line as written
            read = read_line(rest[tag.end() :], today, inner=True) if tag else None
            return when, *(read[1:] if read else level_and_message(text_fields(rest)))
    elif found := text_line(text, UTC, today):
        return found[0], *level_and_message(found[1])
    return None, *level_and_message(text)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        time = parse_time(value)
    except ValueError:
        raise typer.BadParameter(
            f"{said_back(value, 40)} is not an ISO time (e.g. 2026-11-21T00:00:00+08:00)",
            param_hint=option,
        ) from None
    try:
        return within_years(time)
    except Refusal as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@app.command()
def templates(
    paths: Annotated[list[Path], typer.Argument(help="log files or directories of them")],
    since: Annotated[
        str | None, typer.Option(help="ISO time; lines before it are left out")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO time; lines at or after it are left out")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    per_line: Annotated[
        bool,
        typer.Option(
            "--per-line",
            help='print {"line": N, "template_id": ...} per input line (N from 1 across all '
            "inputs; null for blank or filtered-out lines)",
        ),
    ] = False,
    max_templates: Annotated[
        int, typer.Option(parser=whole_number(1), help="templates kept beside every ERROR one")
    ] = 60,
) -> None:
    """Mine templates from log files: counts, first/last seen, hourly rates, bursts."""
    if as_json and per_line:
        raise typer.BadParameter("choose one of --json and --per-line", param_hint="--per-line")
    start, end = _when(since, "--since"), _when(until, "--until")
    if start is not None and end is not None and start > end:
        raise typer.BadParameter(f"{until} is before --since {since}", param_hint="--until")
    for path in paths:
        if not path.exists():
            raise typer.BadParameter(f"no file or directory at {path}", param_hint="PATHS")
    # Each input file once, for the progress bar's total and for the lines.
    sources = [FileLogSource(path) for path in paths]
    inputs = [(source, file) for source in sources for file in source.files()]
    today = (end or datetime.now(UTC)).astimezone(UTC).date()  # a syslog line's year: text_line
    reducer = LogReducer()
    taken = bytearray()  # per input line: 1 if it was counted (kept for --per-line only)
    show = sys.stderr.isatty()
    total = sum(file.stat().st_size for _, file in inputs) if show else None
    with Progress(
        TextColumn("reducing {task.fields[file]}"),
        BarColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
        disable=not show,
    ) as progress:
        task = progress.add_task("reduce", total=total, file="")

        def counted() -> Iterator[tuple[datetime | None, str, str]]:
            done = 0
            event = True  # whether the last timed line was kept: its stack trace follows it
            lines = (
                (file, line)
                for source, file in inputs
                for _, line in whole_lines(source.lines(file), ends=not per_line)
            )
            for number, (file, line) in enumerate(lines, 1):
                parsed = read_line(line, today)
                if parsed is None:
                    keep = False
                elif parsed[0] is None:
                    keep = event or CONTINUATION.match(line) is None
                else:
                    keep = event = (start is None or parsed[0] >= start) and (
                        end is None or parsed[0] < end
                    )
                if per_line:
                    taken.append(keep)
                if show:
                    done += len(line.encode())
                    if number % 20_000 == 0:
                        progress.update(task, completed=done, file=file.name)
                if keep:
                    assert parsed is not None
                    yield parsed

        groups = reducer.add_many(counted())
    for problem in (failed for source in sources for failed in source.failed):
        err_console.print(f"not read to the end: {problem}", markup=False, highlight=False)
    if per_line:
        template_id = cache(reducer.group_template_id)  # one group's id, read once
        next_group = iter(groups).__next__
        for number, keep in enumerate(taken, 1):
            tid = f'"{template_id(next_group())}"' if keep else "null"
            sys.stdout.write(f'{{"line": {number}, "template_id": {tid}}}\n')
        return
    report = reducer.report(max_templates=max_templates, start=start, end=end)
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(render_markdown(report))
