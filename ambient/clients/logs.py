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
import itertools
import json
import lzma
import os
import re
import zlib
from collections.abc import Generator, Iterable, Iterator
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from ambient.clients.tencent.logs import LogRecord, SearchResult
from ambient.domain.loglevels import LEVEL_FIELDS, SEVERITY, TIME_FIELDS, level_and_message

# The zone may follow the time after a space, as an offset or as PostgreSQL's `%m` writes UTC.
PLAIN = re.compile(
    r"^\[?(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
    r"(?:Z| ?[+-]\d{2}:?\d{2}| (?:UTC|GMT)(?![\w+-]))?)\]?\s*(?P<rest>.*)$"
)
SPACED_ZONE = re.compile(r" (?:UTC|GMT)$| (?=[+-]\d)")
# A container's line as the kubelet keeps it (CRI): the runtime's time, the stream, a tag (P: a
# part of a long line, F: its last part or a whole line), then the line as the container wrote it.
CRI_TAG = re.compile(r"(?:stdout|stderr) [PF] ")
CRI_LINE = re.compile(r"(\d{4}-\d{2}-\d{2}T\S+ (stdout|stderr) )([PF]) (.*)", re.DOTALL)
MAX_LINE = MAX_JOINED = 1 << 20  # bytes of one line, characters of a line joined from parts
# Docker's json-file: the daemon copies a container's output through a 16 KiB buffer, and a
# longer line is written as records of one full buffer each (their "log" without the line's
# newline), the last piece ending it. A piece cut inside a UTF-8 character reads longer.
DOCKER_PIECE = 16 * 1024
# A syslog receiver's line starts with the priority (RFC 5424 adds version 1): its severity
# (the priority mod 8) is the level of a line that writes none.
PRIORITY = re.compile(r"<(\d{1,3})>(?:1 )?")
SEVERITIES = ("CRITICAL", "CRITICAL", "CRITICAL", "ERROR", "WARNING", "INFO", "INFO", "DEBUG")
# Nine digits or more: eight are an ISO date (20261122).
EPOCH = re.compile(r"\d{9,}(?:\.\d+)?")
# The level first, or after the logger as Python's default format writes it ("- app.pay - ERROR -").
LEVEL = re.compile(
    r"(?:- (?P<logger>[\w.]+) - )?\b(?P<level>DEBUG|INFO|WARN(?:ING)?|ERROR|CRITICAL|FATAL)\b"
)
# Tried only when PLAIN does not match: nginx's error log, a Chinese date, syslog (its year, if
# written, after the day), Apache's error log ("[Sun Nov 22 10:00:00.123 2026] [core:error] ...").
MONTHS = {
    name: n for n, name in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)
}
OTHER = re.compile(
    r"^(?:(?P<y>\d{4})(?:/|年)(?P<m>\d{1,2})(?:/|月)(?P<d>\d{1,2})日?"
    r"|(?P<apache>\[\w{3} )?(?P<mon>"
    + "|".join(MONTHS)
    + r") +(?P<day>\d{1,2})(?: (?P<sy>\d{4}))?)"
    r" *(?P<hms>\d{2}:\d{2}:\d{2}(?:\.\d+)?)"
    r"(?(apache) (?P<ay>\d{4})\] \[(?:[\w-]*:)?(?P<level>\w+)\])\s*(?P<rest>.*)$"
)
# Ruby's Logger: "E, [2026-11-22T10:00:00.123456 #1] ERROR -- progname: message".
RUBY = re.compile(r"^[A-Z], \[(?P<ts>[\dT:.-]+) #\d+\] +(?P<level>\w+) -- [^:]*: (?P<rest>.*)$")
# klog (Kubernetes' components): level letter, month, day, time, thread, then "file:line] ...".
KLOG = re.compile(
    r"^(?P<level>[IWEF])(?P<m>\d{2})(?P<d>\d{2}) (?P<hms>\d{2}:\d{2}:\d{2}(?:\.\d+)?) +\d+ "
    r"(?P<rest>\S+:\d+\] .*)$"
)
# nginx's and Apache's access log: the status is the level (5xx ERROR, 4xx WARNING).
ACCESS = re.compile(
    r"^\S+ \S+ \S+ \[(?P<ts>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "
    r'(?P<rest>"[^"]*" (?P<status>\d{3})\b.*)$'
)
# A Java or Python stack trace's lines after the event they belong to: indented frames, the
# exception (with its cause), the traceback's header.
TRACE_LINE = r"\s|Caused by:|Suppressed:|Traceback \(|During handling of|The above exception"
CONTINUATION = re.compile(rf"{TRACE_LINE}|[\w$.]*(?:Error|Exception|Throwable)(?::|$)")
THROWN = re.compile(r"[\w$.]*(?:Error|Exception|Throwable)(?::|$)")
# A container runtime's line (CRI, Docker's JSON) that reads as such a continuation: a trace
# line of the event above when written in the same moment (``TRACE_GAP``), else an event of its
# own at the runtime's time (a bare "Error: ..." is Node's or Rust's first line, not a trace's).
WRAPPED_TRACE = re.compile(rf"{TRACE_LINE}|[\w$.]+(?:Error|Exception|Throwable)(?::|$)")
TRACE = "__trace__"  # the key that marks a record read from such a line: its written text
TRACE_GAP = timedelta(seconds=1)
# An uncaught crash, printed after the service's last timed line with no time of its own:
# Go's runtime and the JVM name it on its first line (the goroutine dump, the frames follow),
# Python on the last line of its traceback ("ValueError: ...", "KeyboardInterrupt").
CRASH_FIRST = re.compile(r'panic: |fatal error: |Exception in thread "')
TRACEBACK = "Traceback (most recent call last):"
CHAINED = ("During handling of", "The above exception")
WARNED = SEVERITY["WARNING"]
RAISED = re.compile(r"[A-Za-z_][\w.]*(?:: .*|:)?")
LOGFMT = re.compile(r'([\w.@-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_time(value: Any, zone: tzinfo = UTC) -> datetime:
    """An epoch (a number or its digits) or ISO time; with no offset, a wall time in ``zone``."""
    if isinstance(value, bool):  # an int to Python, but no time
        raise TypeError(f"{value!r} is not a time")
    if isinstance(value, str) and EPOCH.fullmatch(value):
        value = float(value)
    if isinstance(value, int | float):
        seconds = value  # epoch s, or ms, µs, ns: each past 1e11 s (the year 5138) is smaller
        try:
            for _ in range(3):  # no more: infinity (JSON's 1e400, Infinity; 310 digits) stays
                seconds = seconds / 1000 if seconds > 1e11 else seconds
            return datetime.fromtimestamp(seconds, UTC)
        except OverflowError:  # infinity, an int past a float, a time past the year 9999
            raise ValueError("an epoch out of the years 1 to 9999 is not a time") from None
    text = SPACED_ZONE.sub(lambda m: "Z" if m[0].strip() else "", str(value).replace(",", "."))
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def json_time(data: dict[str, Any], zone: tzinfo = UTC) -> datetime | None:
    """The time of a JSON log line: its first time field that reads as one from this century
    (a "time" of 35 is a duration beside an "@timestamp"); None if none reads."""
    read: list[datetime] = []
    for name in TIME_FIELDS:
        if name in data:
            value = data[name]
            try:
                if isinstance(value, dict) and "epochSecond" in value:  # log4j2's JsonLayout
                    value = (
                        float(value["epochSecond"]) + float(value.get("nanoOfSecond") or 0) / 1e9
                    )
                read.append(parse_time(value, zone))
            except (TypeError, ValueError):
                continue
            if 2000 <= read[-1].year <= datetime.now(UTC).year + 1:  # not a duration's
                return read[-1]
    return read[0] if read else None


def text_line(line: str, zone: tzinfo, today: date) -> tuple[datetime, dict[str, Any]] | None:
    """(time, content) of a stripped line in a text format other than PLAIN's, or None."""
    # A syslog or klog line has no year: the one that puts it on or before ``today`` (_year).
    # logfmt (logrus, Go's slog, log15's t=; go-kit: level first)
    if line.startswith(("time=", "ts=", "t=")) or (
        LOGFMT.match(line) and (" ts=" in line or " time=" in line)
    ):
        data = {
            k: v[1:-1].replace('\\"', '"') if v[:1] == '"' else v for k, v in LOGFMT.findall(line)
        }
        when = json_time(data, zone)
        return None if when is None else (when, data)
    with suppress(ValueError):  # 31 November, 29 February of another year, hour 25
        if match := OTHER.match(line):
            if match["mon"]:
                month, day = MONTHS[match["mon"]], int(match["day"])
                year = int(match["sy"] or match["ay"] or _year(month, day, today))
            else:
                year, month, day = int(match["y"]), int(match["m"]), int(match["d"])
            wall = datetime.fromisoformat(f"{year:04d}-{month:02d}-{day:02d}T{match['hms']}")
            leveled = {"level": match["level"]} if match["level"] else {}
            return wall.replace(tzinfo=zone), {"message": match["rest"], **leveled}
        if match := RUBY.match(line):
            return parse_time(match["ts"], zone), {
                "message": match["rest"],
                "level": match["level"],
            }
        if match := KLOG.match(line):
            month, day = int(match["m"]), int(match["d"])
            wall = datetime.fromisoformat(
                f"{_year(month, day, today):04d}-{month:02d}-{day:02d}T{match['hms']}"
            )
            return wall.replace(tzinfo=zone), {"message": match["rest"], "level": match["level"]}
        if match := ACCESS.match(line):
            status = match["status"][0]
            level = "ERROR" if status == "5" else "WARNING" if status == "4" else "INFO"
            when = datetime.strptime(match["ts"], "%d/%b/%Y:%H:%M:%S %z")
            return when, {"message": match["rest"], "level": level}
    return None


def _year(month: int, day: int, today: date) -> int:
    """The year of a day written without one: the one that puts it on or before ``today``."""
    return today.year - ((month, day) > (today.month, today.day))


def parse_line(
    line: str, source: str, zone: tzinfo = UTC, today: date | None = None, *, inner: bool = False
) -> LogRecord | None:
    """One log line as a record, or None if it has no readable time; ``inner``: the line a
    priority, CRI prefix or Docker wrapper carried, not unwrapped again (``<1>`` 2000 times)."""
    line = line.strip()
    if not line:
        return None
    if not inner and (priority := PRIORITY.match(line)):
        record = parse_line(line[priority.end() :], source, zone, today, inner=True)
        content = record.content if record is not None else None
        if isinstance(content, dict) and level_and_message(content)[0] == "UNKNOWN":
            content["level"] = SEVERITIES[int(priority[1]) % 8]
        return record
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):  # nested past Python's limit: a few KB do it
            return None
        when = json_time(data, zone)
        if when is None:
            return None
        if not inner and isinstance(data.get("log"), str) and "stream" in data:  # Docker's
            written = _as_written(data["log"].strip(), when, source, zone, today)
            if written is not None:
                return written
            if WRAPPED_TRACE.match(data["log"]):
                data[TRACE] = data["log"]  # maybe the trace of the event above (``_file_records``)
        return _file_record(when, data, source)
    match = PLAIN.match(line)
    if match is None:
        found = text_line(line, zone, today or datetime.now(zone).date())
        return None if found is None else _file_record(*found, source, flat=True)
    try:
        when = parse_time(match["ts"], zone)
    except ValueError:
        return None
    rest = match["rest"]
    if not inner and (tag := CRI_TAG.match(rest)):
        rest = rest[tag.end() :]
        written = _as_written(rest, when, source, zone, today)
        if written is not None:
            return written
        if WRAPPED_TRACE.match(rest):  # maybe the trace of the event above (``_file_records``)
            return _file_record(when, text_fields(rest) | {TRACE: rest}, source, flat=True)
    return _file_record(when, text_fields(rest), source, flat=True)


# What Java's layouts write between the level and the message, read as fields: Spring Boot's
# "12345 --- [app] [  main] c.e.d.PaymentService   : " (process id, application name from 3.x,
# thread, logger) and log4j/logback's "[main] c.a.Pay - ". Left in the message, a constant
# header made unrelated messages of one logger alike enough to share a template.
JAVA_LOGGER = r"[\w$]+(?:\.[\w$]+)+"  # a logger with its package ("c.a.Pay"), as %c writes it
# Spring Boot's logger may hold brackets and slashes: Tomcat's servlet logger, abbreviated, is
# "o.a.c.c.C.[.[.[/].[dispatcherServlet]", the header of every unhandled exception.
JAVA_HEADER = re.compile(
    r"(?:(?P<pid>\d+) --- (?:\[[^\]]*\] )?\[ *(?P<thread>[^\]]*)\] (?P<logger>\S+?) *: "
    rf"|\[(?P<thread2>[^\]]*)\] (?P<logger2>{JAVA_LOGGER}) - )"
)
LOGGER_FIRST = re.compile(rf"({JAVA_LOGGER}) - ")  # after the level of a thread-first line
# logback's default writes the thread first: "[main] ERROR c.a.Pay - ...".
THREAD_FIRST = re.compile(
    r"\[(?P<thread>[^\]]*)\] +(?=(?:DEBUG|INFO|WARN(?:ING)?|ERROR|CRITICAL|FATAL)\b)"
)


def text_fields(rest: str) -> dict[str, Any]:
    """A text line's fields after its time: "ERROR something" -> level ERROR, message
    "something" (Python's default "- app.pay - ERROR - ..." names its logger too, Java's
    layouts their thread and logger: `JAVA_HEADER`)."""
    thread: dict[str, str] = {}
    if first := THREAD_FIRST.match(rest):
        thread, rest = {"thread": first["thread"]}, rest[first.end() :]
    if level := LEVEL.match(rest):
        fields = {k: v for k, v in level.groupdict().items() if v} | thread
        message = rest[level.end() :].lstrip(" :-")
        if header := JAVA_HEADER.match(message):
            named = {k.rstrip("2"): v for k, v in header.groupdict().items() if v}
            fields, message = fields | named, message[header.end() :]
        elif thread and (logger := LOGGER_FIRST.match(message)):
            fields, message = fields | {"logger": logger[1]}, message[logger.end() :]
        return {**fields, "message": message}
    return {"message": rest}


def _as_written(
    text: str, when: datetime, source: str, zone: tzinfo, today: date | None
) -> LogRecord | None:
    """A container's line as it wrote it (JSON, or a text line with its own time), at its
    runtime's time ``when``; None for a plain message."""
    if text.startswith("{"):  # JSON, with a time field or none: parsed once
        with suppress(ValueError, RecursionError):
            return _file_record(when, json.loads(text), source)
        return None
    record = parse_line(text, source, zone, today, inner=True)
    return None if record is None else record.model_copy(update={"time": when})


def whole_lines(lines: Iterable[str], *, ends: bool = True) -> Iterator[tuple[int, str]]:
    """Each line with its number in ``lines``; a long line a container runtime wrote in parts
    (kubelet's CRI: tag P, then F; Docker's json-file: records of 16 KiB) as one line, at its
    last part's number, the parts before it as empty lines. A line still in parts at the end
    (being written, or its end in the next file of a rotation) is read as far as written, after
    the rest, at the number of its last part read; ``ends=False`` leaves it out (one line out
    for each line in: ``--per-line``)."""
    # CRI's, per stream (stderr's lines come between stdout's parts): the last part's time,
    # stream and number, the line so far.
    parts: dict[str, tuple[str, str, int]] = {}
    # Docker's, per stream: the line's record so far and its last piece's number.
    pieces: dict[str, tuple[dict[str, Any], int]] = {}
    for number, line in enumerate(lines, 1):
        if line.startswith('{"log":"'):
            yield number, _docker_whole(line, pieces, number)
        elif (cri := CRI_LINE.match(line)) is None:
            yield number, line
        elif cri[3] == "P":
            before = parts.get(cri[2], ("", "", 0))[1]
            parts[cri[2]] = cri[1], _joined(before, cri[4].rstrip("\r\n")), number
            yield number, ""
        elif cri[2] in parts:
            yield number, f"{cri[1]}F {parts.pop(cri[2])[1]}{cri[4]}"
        else:  # a whole line (most of a kubelet's): as read, not copied
            yield number, line
    if ends:
        yield from ((at, f"{prefix}F {text}") for prefix, text, at in parts.values())
        yield from ((at, json.dumps(record, ensure_ascii=False)) for record, at in pieces.values())


def _joined(before: str, part: str) -> str:
    """A line's parts so far and the next, up to MAX_JOINED characters (past it, not copied)."""
    return before if len(before) >= MAX_JOINED else (before + part)[:MAX_JOINED]


def _docker_piece(text: str) -> bool:
    """Whether a json-file record's text is a piece of a longer line: no newline, and the
    daemon's full buffer of bytes, each invalid one (a character cut at the buffer's end, a
    GBK byte) written as U+FFFD, two bytes longer."""
    if text.endswith("\n"):
        return False
    extra = len(text.encode("utf-8", "replace")) - DOCKER_PIECE
    return extra >= 0 and extra % 2 == 0 and extra // 2 <= text.count("\ufffd")


def _ends_its_line(record: str) -> bool:
    """Whether a Docker record's text ends in its newline, read off the record as written: the
    escape ``\\n`` before ``","stream":`` (inside the text a quote is escaped, so that can only
    be its end), not an escaped backslash and an ``n`` (the text's own ``\\\\n``)."""
    at = record.find('n","stream":')
    if at < 0:
        return False
    slash = at - 1
    while slash >= 0 and record[slash] == "\\":
        slash -= 1
    return (at - 1 - slash) % 2 == 1


def _docker_whole(line: str, pieces: dict[str, tuple[dict[str, Any], int]], number: int) -> str:
    """A Docker json-file record as ``whole_lines`` yields it: a piece of a longer line kept in
    ``pieces`` with its ``number`` (yielded empty), the last one as the whole line's record at
    its first's time."""
    if not pieces and (len(line) < DOCKER_PIECE // 4 or _ends_its_line(line)):
        return line  # too short to be a piece, or a whole line, with none pending: as read
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return line
    if not (isinstance(record, dict) and isinstance(record.get("stream"), str)):
        return line
    piece, stream = record.get("log"), record["stream"]
    if not isinstance(piece, str):
        return line
    if (first := pieces.pop(stream, None)) is not None:
        record = first[0] | {"log": _joined(first[0]["log"], piece)}
    if _docker_piece(piece):
        pieces[stream] = record, number
        return ""
    return line if first is None else json.dumps(record, ensure_ascii=False)


def full_text_fields(content: dict[str, Any] | str, zone: tzinfo = UTC) -> dict[str, Any] | str:
    """A CLS record collected as whole lines (单行全文, 多行全文: the line in ``__CONTENT__``)
    with the fields its first line has when read as a file's line: its time and header taken
    off, its level, Java's thread and logger; a multi-line record's other lines kept after the
    message. A record that names its level, or whose line reads as JSON, is as it came."""
    if not isinstance(content, dict) or any(f in content for f in LEVEL_FIELDS):
        return content
    line = content.get("__CONTENT__")
    if not isinstance(line, str) or line.startswith("{"):
        return content
    first, newline, rest = line.partition("\n")
    record = parse_line(first, "cls", zone, inner=True)
    fields = record.content if record is not None else text_fields(first.strip())
    if not isinstance(fields, dict) or "message" not in fields:
        return content
    kept = {key: value for key, value in content.items() if key != "__CONTENT__"}
    return kept | fields | {"message": f"{fields['message']}{newline}{rest}"}


def _file_record(
    when: datetime, content: dict[str, Any], source: str, *, flat: bool = False
) -> LogRecord:
    """A file's record; ``flat``: its content a text line's fields (strings), nothing for the
    model to check (its validation was a tenth of a file's read)."""
    if flat:
        return LogRecord.model_construct(time=when, topic_id="file", source=source, content=content)
    return LogRecord(time=when, topic_id="file", source=source, content=content)


def _crashed(before: LogRecord, source: str, line: str) -> LogRecord:
    """An uncaught crash's record, at the time of the timed line before it."""
    return _file_record(before.time, {"message": line, "level": "CRITICAL"}, source, flat=True)


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

    @classmethod
    def inside(cls, root: Path, name: str) -> FileLogSource:
        """The file or folder ``name`` under ``root``; LogPathError if it leads out of it."""
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
        return cls(Path(target), Path(real_root))

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
                raise FileNotFoundError(f"no log file in the folder {self.path} or below it")
            return found
        if self.path.is_file() and self._allowed(self.path):
            return [self.path]
        raise FileNotFoundError(f"no log file or directory at {self.path}")

    def lines(self, path: Path) -> Generator[str, None, None]:
        """The file's lines up to where it cannot be read further (named in ``failed``)."""
        opener = OPENERS.get(path.suffix, open)  # logrotate's compresscmd gzip, xz or bzip2
        try:
            with opener(path, "rb") as handle:  # type: ignore[operator]
                # A line's first MiB: a file without newlines is not held whole in memory.
                raw = handle.readline(MAX_LINE).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM
                while raw:
                    if not raw.endswith(b"\n"):  # the rest of a longer line is passed over
                        while (rest := handle.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                            pass
                    try:
                        yield raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        if exc.reason == "unexpected end of data":  # cut inside a character
                            yield raw[: exc.start].decode("utf-8")
                        else:  # Chinese Windows and zh_CN.GBK locales write GBK (in GB18030)
                            yield raw.decode("gb18030", errors="replace")
                    raw = handle.readline(MAX_LINE)
        # A file still being compressed ends early (EOFError), a damaged one fails in its codec.
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            self.failed.append(f"{path.name}: {exc}")

    def records(self, start: datetime, end: datetime) -> Iterator[LogRecord]:
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
            for record in self._file_records(path, today, start, end):
                if start <= record.time < end:
                    yield record
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
                if crash is not None:
                    yield crash
                last, block, crash, thrown, framed = record, "event", None, False, False
                yield record
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
                    crash, raised = _crashed(last, where, text), True
                    continue
            if crash is not None:  # the traceback ended above this line
                yield crash
                crash = None
            if last is not None and CRASH_FIRST.match(text):
                block = "dump" if text.startswith(("panic: ", "fatal error: ")) else "event"
                yield _crashed(last, where, text)
            elif (
                last is not None
                and text.startswith(TRACEBACK)
                # A warning's or an error's own trace (logger.exception writes it after its line).
                and (block is None or SEVERITY[level_and_message(last.content)[0]] < WARNED)
            ):
                block, raised = "traceback", False
            elif block == "event" and (thrown or CONTINUATION.match(line)):
                # A Java exception's message may run over lines before its frames (MyBatis's
                # "### SQL: ...", Spring's "; bad SQL grammar ..."): they belong to it too.
                # Not a Python exception's (its line comes last, after the frames).
                framed, was_framed = line[0].isspace(), framed
                thrown = not framed and (
                    thrown
                    or text.startswith(("Caused by: ", "Suppressed: "))
                    or (not was_framed and THROWN.match(text) is not None)
                )
                continue
            else:
                block = None
                (top if last is None else tail).add(where)
                if last is not None and start <= last.time < end:
                    self._skip(tail)
                    tail = _Unread()
        if crash is not None:
            yield crash
        if last is None or (last.time < start and _modified_since(path, start)):
            self._skip(tail if last else top)

    def _skip(self, unreadable: _Unread) -> None:
        self.skipped += unreadable.count
        self.skipped_examples += unreadable.examples[: max(0, 5 - len(self.skipped_examples))]

    def _scan(self, query: str, start: datetime, end: datetime, limit: int) -> SearchResult:
        term = "" if query.strip() in ("", "*") else query.strip().lower()
        found = [
            record
            for record in self.records(start, end)
            if not term or term in json.dumps(record.content, ensure_ascii=False).lower()
        ]
        found.sort(key=lambda r: r.time, reverse=True)
        return SearchResult(logs=found[:limit], complete=len(found) <= limit)

    async def search(
        self, query: str, start: datetime, end: datetime, *, limit: int = 1000
    ) -> SearchResult:
        """Plain substring search (`*` for all) in the window, newest first."""
        return await asyncio.to_thread(self._scan, query, start, end, limit)
