"""Log sources behind one interface: Tencent CLS, or files (so everything log-based works
without a cloud account).

The file source reads a file or a directory of rotated files (`app.log`, `app.log.1`,
`app.log.2.gz`, ...): JSON lines with a time field, or plain lines that start with a
timestamp. Lines it cannot read are counted and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import heapq
import itertools
import lzma
import os
import re
import zlib
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from ambient.clients.log_formats import TRACE, TRACE_LINE, file_record, parse_line
from ambient.clients.log_parts import cut_json, whole_lines
from ambient.clients.log_query import file_query
from ambient.clients.tencent.logs import LogRecord, SearchResult
from ambient.domain.loglevels import MESSAGE_FIELDS, SEVERITY, level_and_message

MAX_LINE = 1 << 20  # bytes of one line
LOOK_EVERY = 1000  # lines read between two looks at ``FileLogSource.give_up``
PADDING = b"\0" * 8  # the least run of NULs read as a crash's padding inside a line
# A Java or Python stack trace's lines after the event they belong to: indented frames, the
# exception (with its cause), the traceback's header.
CONTINUATION = re.compile(rf"{TRACE_LINE}|[\w$.]*(?:Error|Exception|Throwable)(?::|$)")
THROWN = re.compile(r"[\w$.]*(?:Error|Exception|Throwable)(?::|$)")
# A container runtime's trace line (log_formats.WRAPPED_TRACE) belongs to the event above when
# written within this of it.
TRACE_GAP = timedelta(seconds=1)
# An uncaught crash, printed after the service's last timed line with no time of its own:
# Go's runtime and the JVM name it on its first line (the goroutine dump, the frames follow),
# Python on the last line of its traceback ("ValueError: ...", "KeyboardInterrupt").
CRASH_FIRST = re.compile(r'panic: |fatal error: |Exception in thread "')
TRACEBACK = "Traceback (most recent call last):"
CHAINED = ("During handling of", "The above exception")
WARNED = SEVERITY["WARNING"]
RAISED = re.compile(r"[A-Za-z_][\w.]*(?:: .*|:)?")
# A Python exception's message may run over the lines after its line (PostgreSQL's DETAIL and
# HINT, SQLAlchemy's [SQL: ...], pydantic's field names and errors): the untimed lines after it
# are its own up to a timed line or another traceback, but no more than this many not indented
# (a format changed after it is still unreadable past them).
MAX_RAISED_LINES = 1000
# An event's trace kept in its record's message (as CLS's multi-line records keep it), in
# characters: the rest of a longer one is read, not kept.
MAX_TRACE_CHARS = 65536


def uncaught_crash(text: str, level: str) -> str | None:
    """The line naming an uncaught crash printed below a multi-line record's first line (CLS's
    多行全文 starts a record at each timed line, so a crash without a time joins the line above
    it), as a file's is read: Go's and the JVM's first line, Python's traceback's last
    exception (a chained one's), the traceback only below a line less than a warning (an
    error's own trace is that error's). None when there is none."""
    lines = text.split("\n")[1:] if "\n" in text else []
    for number, line in enumerate(lines):
        if CRASH_FIRST.match(stripped := line.strip()):
            return stripped
        if stripped.startswith(TRACEBACK) and SEVERITY[level] < WARNED:
            raised: str | None = None
            for after in lines[number + 1 :]:
                if (written := after.strip()) and not after[0].isspace():
                    if written.startswith((TRACEBACK, *CHAINED)):
                        raised = None
                    elif raised is None and RAISED.fullmatch(written):
                        raised = written
            return raised  # none without its exception line, as in a file
    return None


def _in_traceback(state: str, text: str, said: int) -> str | None:
    """Where an event's Python traceback is after ``text``, a line not indented, read in
    ``state`` ("frames": its header read; "raised": its exception line read, and ``said``
    lines after it): the first such line after the frames is the exception line whatever its
    name ("DoesNotExist", "socket.timeout"), the lines after it its message's (up to
    MAX_RAISED_LINES) or a chained traceback's. None: the line is no part of it."""
    if text.startswith(TRACEBACK):
        return "frames"
    if text.startswith(CHAINED) or (state == "raised" and said < MAX_RAISED_LINES):
        return state
    return "raised" if state == "frames" else None


def _traced(record: LogRecord, trace: list[str]) -> LogRecord:
    """The record with its trace's lines below its message, as CLS's multi-line records
    hold them (a search finds the exception a trace names); a record whose message is no text
    is as it was."""
    content = record.content
    if isinstance(content, dict):
        key = next((f for f in MESSAGE_FIELDS if f in content), None)
        if key is not None and isinstance(content[key], str):
            content[key] = "\n".join([content[key], *trace])
    return record


def _crashed(before: LogRecord, source: str, line: str) -> LogRecord:
    """An uncaught crash's record, at the time of the timed line before it."""
    return file_record(before.time, {"message": line, "level": "CRITICAL"}, source, flat=True)


def not_utf8(raw: bytes) -> str:
    """A line that is not UTF-8 throughout: UTF-8 with a character or two cut (a note cut to
    N bytes by Go's s[:n] or C's snprintf) when its valid characters beyond ASCII outnumber its
    invalid ones, the cut ones left out as at a line's end (a "�" in their place split the
    line's template from the same line's uncut); else GBK (read as GB18030), as Chinese Windows
    and zh_CN.GBK locales write it, whose lines are rarely valid UTF-8 for more than a
    character. GB18030 alone is no test: most UTF-8 Chinese decodes as it, to mojibake."""
    text = raw.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd")
    beyond_ascii = len(text) - len(text.encode("ascii", errors="ignore")) - invalid
    if beyond_ascii > invalid:
        return raw.decode("utf-8", errors="ignore")
    return raw.decode("gb18030", errors="replace")


def rotation_order(path: Path) -> tuple[int, str]:
    """app.log (newest) before app.log.1 before app.log.2.gz ..."""
    numbers = re.findall(r"\.(\d+)(?:\.(?:gz|xz|bz2))?$", path.name)
    return (int(numbers[0]) if numbers else 0, path.name)


MAX_NAME = 1024
OPENERS: dict[str, Any] = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}


class LogPathError(ValueError):
    """A file topic names something outside the log folder, or is not a usable name."""


# Lines of a file not read (written before the window) looked at for times.
PEEK_LINES = 20


class _Unread:
    """Unreadable lines not yet placed: their count and the first few (a file of a million
    unreadable lines keeps five names, not a million)."""

    def __init__(self) -> None:
        self.count, self.examples = 0, list[str]()

    def add(self, where: str) -> None:
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(where)


def _modified_since(path: Path, start: datetime) -> bool:
    try:
        return path.stat().st_mtime >= start.timestamp()
    except OSError:  # gone since it was read
        return False


class FileLogSource:
    def __init__(self, path: Path, root: Path | None = None, zone: tzinfo = UTC) -> None:
        self.path = path
        # Most services write local wall times without an offset: they are read in ``zone``.
        self.zone = zone
        # With a root, every file read must really (symlinks resolved) be inside it.
        self.root = os.path.realpath(root) if root is not None else None
        self.skipped = 0
        self.skipped_examples: list[str] = []
        self.timed = False  # some file had a line with a time read (in the window or not)
        # Files that failed part way ("app.log.1.gz: Compressed file ended ..."): the rest is read.
        self.failed: list[str] = []
        # Asked every LOOK_EVERY lines read: True ends the read there (``gave_up``).
        self.give_up: Callable[[], bool] | None = None
        self.gave_up = False

    @classmethod
    def inside(cls, root: Path, name: str, zone: tzinfo = UTC) -> FileLogSource:
        """The file or folder ``name`` under ``root``, its wall times read in ``zone``;
        LogPathError if it leads out of it."""
        if "\x00" in name:
            raise LogPathError("a file topic cannot contain a NUL byte")
        if len(name) > MAX_NAME:
            raise LogPathError(f"a file topic is at most {MAX_NAME} characters")
        real_root = os.path.realpath(root)
        target = os.path.realpath(os.path.join(real_root, name or "."))
        if not Path(target).is_relative_to(real_root):
            raise LogPathError(
                "file topics must name a file or folder inside AMBIENT_LOG_DIR "
                "(symlinks are followed to where they point)"
            )
        return cls(Path(target), Path(real_root), zone)

    @property
    def shown(self) -> str:
        """The path as a reader is told it: under a root, relative to it (where the server
        keeps its logs is an admin's to know); else as it was named."""
        if self.root is None:
            return str(self.path)
        return os.path.relpath(os.path.realpath(self.path), self.root)

    def _allowed(self, path: Path) -> bool:
        return self.root is None or Path(os.path.realpath(path)).is_relative_to(self.root)

    def files(self) -> list[Path]:
        """The file, or every file in the folder and its subfolders (a folder a pod or a
        service, as /var/log/pods), each folder's in rotation order; hidden ones left out."""
        if self.path.is_dir():
            found: list[Path] = []
            seen: set[str] = set()  # a file linked from two places is read once
            unread: list[OSError] = []  # a folder it may not list: said if nothing else is
            for folder, subfolders, names in os.walk(self.path, onerror=unread.append):
                subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
                here = [Path(folder, n) for n in names if not n.startswith(".")]
                for path in sorted(here, key=rotation_order):
                    real = os.path.realpath(path)
                    if real not in seen and path.is_file() and self._allowed(path):
                        seen.add(real)
                        found.append(path)
            if not found:
                if unread:
                    raise unread[0]
                raise FileNotFoundError(f"no log file in the folder {self.shown} or below it")
            return found
        if self.path.is_file() and self._allowed(self.path):
            return [self.path]
        raise FileNotFoundError(f"no log file or directory at {self.shown}")

    def lines(self, path: Path) -> Generator[str, None, None]:
        """The file's lines up to where it cannot be read further (named in ``failed``)."""
        opener = OPENERS.get(path.suffix, open)  # logrotate's compresscmd gzip, xz or bzip2
        try:
            with opener(path, "rb") as handle:  # type: ignore[operator]
                # A line's first MiB: a file without newlines is not held whole in memory.
                raw = handle.readline(MAX_LINE).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM
                read = 0
                while raw:
                    if not read % LOOK_EVERY and self.give_up is not None and self.give_up():
                        self.gave_up = True
                        return
                    read += 1
                    if PADDING in raw or raw.startswith(b"\0"):
                        # A crash's padding (ext4, xfs: from a block's start, often inside a
                        # line): the line after it is read, the one it cut is not. A NUL or
                        # two inside a line (written in a value) are the line's own.
                        at = raw.rfind(PADDING)
                        raw = (raw[at:] if at >= 0 else raw).lstrip(b"\0")
                        if not raw:
                            raw = handle.readline(MAX_LINE)
                            continue
                    cut = not raw.endswith(b"\n")
                    if cut:  # the rest of a longer line is passed over
                        while (rest := handle.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                            pass
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        if exc.reason == "unexpected end of data":  # cut inside a character
                            line = raw[: exc.start].decode("utf-8")
                        else:
                            line = not_utf8(raw)
                    # A JSON line cut no longer parses: the fields before the cut are read.
                    yield (cut_json(line) or line) if cut else line
                    raw = handle.readline(MAX_LINE)
        # A file still being compressed ends early (EOFError), a damaged one fails in its codec.
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            self.failed.append(f"{path.name}: {exc}")

    def records(self, start: datetime, end: datetime) -> Generator[LogRecord]:
        """The records in [start, end), streamed; unreadable lines are counted in ``skipped``."""
        self.skipped, self.skipped_examples, self.failed, self.timed = 0, [], [], False
        files = self.files()
        today = end.astimezone(self.zone).date()  # the day a line without a year is read for
        for path in files:
            if not _modified_since(path, start):
                # Last written before the window opened: no line of it is in the window (the
                # rotated days of a long retention, read again every morning otherwise). Its
                # first lines still say whether the folder's format is read here.
                self.timed = self.timed or self._has_times(path, today)
                continue
            records = self._file_records(path, today, start, end)
            yield from (record for record in records if start <= record.time < end)
        if files and len(self.failed) == len(files):
            raise OSError("; ".join(self.failed))

    def _has_times(self, path: Path, today: date) -> bool:
        """Whether one of the file's first lines has a time read here."""
        failed, lines = len(self.failed), self.lines(path)
        try:
            head = itertools.islice(lines, PEEK_LINES)
            return any(parse_line(line, path.name, self.zone, today) for line in head)
        finally:
            lines.close()
            del self.failed[failed:]  # a file not read is not one that failed

    def _file_records(
        self, path: Path, today: date, start: datetime, end: datetime
    ) -> Iterator[LogRecord]:
        """The file's records, an uncaught crash's among them at the time of the line before;
        its unreadable lines in [start, end) counted (placed as a crash is, at a file's top
        by the first timed line, anywhere in a file with none, after the last timed line of a
        file modified since ``start`` in the window too: a format change)."""
        last: LogRecord | None = None  # the last timed record: a crash is placed at its time
        top, tail = _Unread(), _Unread()  # unreadable before the first timed line, after the last
        # What the untimed lines now read belong to: "event" (the trace of the record above),
        # "dump" (a Go crash: all of them), "traceback" (an uncaught Python exception, whose
        # record waits in ``crash`` for the traceback's end: a chained one names the last),
        # or None (unreadable).
        block: str | None = None
        crash: LogRecord | None = None
        raised = False  # the traceback's exception line was read (a chained one comes after)
        # The event's Python traceback: None, "frames" (its header read), "raised" (its
        # exception line read, whatever the exception's name; a chained one may follow).
        python: str | None = None
        said = 0  # lines not indented after an exception line (its message's)
        # The record not yet yielded, whose trace's lines (``below``, ``kept`` characters) are
        # still being read.
        held: LogRecord | None = None
        below: list[str] = []
        kept = 0
        thrown = False  # an event's Java exception line was read, its frames not yet
        framed = False  # the event's last trace line was a frame (indented)
        for number, line in whole_lines(self.lines(path)):
            record = parse_line(line, f"{path.name}:{number}", self.zone, today)
            if record is not None and isinstance(record.content, dict):
                trace = record.content.pop(TRACE, None)
                if trace and block and last and record.time - last.time <= TRACE_GAP:
                    record, line = None, trace  # read as a plain file's trace line
            if record is not None:
                if last is None and start <= record.time < end:
                    self._skip(top)
                self.timed = True
                if tail.count:
                    tail = _Unread()
                if held is not None:
                    yield _traced(held, below) if below else held
                if crash is not None:
                    yield crash
                last, block, crash, thrown, framed = record, "event", None, False, False
                python, held = None, record
                if below:
                    below, kept = [], 0
                continue
            text = line.strip()
            if not text or block == "dump":
                continue
            where = f"{path.name}:{number}"
            if block == "traceback" and last is not None:
                if line[0].isspace():
                    continue
                if text.startswith((TRACEBACK, *CHAINED)):
                    raised = False
                    continue
                if not raised and RAISED.fullmatch(text):
                    crash, raised, said = _crashed(last, where, text), True, 0
                    continue
                if raised and said < MAX_RAISED_LINES and not CRASH_FIRST.match(text):
                    said += 1  # the exception's message
                    continue
            if crash is not None:  # the traceback ended above this line
                yield crash
                crash = None
            if last is not None and CRASH_FIRST.match(text):
                if held is not None:
                    yield _traced(held, below) if below else held
                    below, kept = [], 0
                block = "dump" if text.startswith(("panic: ", "fatal error: ")) else "event"
                held = _crashed(last, where, text)  # the JVM's frames after it are its trace
                if block == "dump":
                    yield held
                    held = None
            elif (
                last is not None
                and text.startswith(TRACEBACK)
                # A warning's or an error's own trace (logger.exception writes it after its line).
                and (block is None or SEVERITY[level_and_message(last.content)[0]] < WARNED)
            ):
                block, raised = "traceback", False
                if held is not None:  # an uncaught crash's, none of the record above's
                    yield _traced(held, below) if below else held
                    held, below, kept = None, [], 0
            elif (
                block == "event"
                and python is not None
                and not line[0].isspace()
                and (after := _in_traceback(python, text, said)) is not None
            ):
                said = said + 1 if python == "raised" else 0
                python = after
                if held is not None and kept < MAX_TRACE_CHARS:
                    below.append(line.rstrip())
                    kept += len(line)
            elif block == "event" and (thrown or CONTINUATION.match(line)):
                # A Java exception's message may run over lines before its frames (MyBatis's
                # "### SQL: ...", Spring's "; bad SQL grammar ..."): they belong to it too.
                # Not a Python exception's (its line comes last, after the frames).
                if text.startswith(TRACEBACK):
                    python = "frames"
                framed, was_framed = line[0].isspace(), framed
                thrown = not framed and (
                    thrown
                    or text.startswith(("Caused by: ", "Suppressed: "))
                    or (not was_framed and THROWN.match(text) is not None)
                )
                if held is not None and kept < MAX_TRACE_CHARS:
                    below.append(line.rstrip())
                    kept += len(line)
                continue
            else:
                block = None
                (top if last is None else tail).add(where)
                if last is not None and start <= last.time < end:
                    self._skip(tail)
                    tail = _Unread()
        if held is not None:
            yield _traced(held, below) if below else held
        if crash is not None:
            yield crash
        if last is None or (last.time < start and _modified_since(path, start)):
            self._skip(tail if last else top)

    def _skip(self, unreadable: _Unread) -> None:
        self.skipped += unreadable.count
        self.skipped_examples += unreadable.examples[: max(0, 5 - len(self.skipped_examples))]

    def _scan(self, query: str, start: datetime, end: datetime, limit: int) -> SearchResult:
        # The newest ``limit`` kept as they come, the rest counted: a day of a million
        # matching lines was held whole (~1 KB each) to be sorted.
        wanted, matched = file_query(query), 0

        def found() -> Iterator[LogRecord]:
            nonlocal matched
            for record in self.records(start, end):
                if wanted(record):
                    matched += 1
                    yield record

        newest = heapq.nlargest(limit, found(), key=lambda r: r.time)
        return SearchResult(logs=newest, complete=matched <= limit)

    async def search(
        self, query: str, start: datetime, end: datetime, *, limit: int = 1000
    ) -> SearchResult:
        """The records in the window that ``query`` matches (`file_query`), newest first."""
        return await asyncio.to_thread(self._scan, query, start, end, limit)
