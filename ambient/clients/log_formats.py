"""Log line formats: one line (a file's, a container runtime's, a CLS record's) as a record."""

from __future__ import annotations

import json
import re
from contextlib import suppress
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ambient.clients.tencent.logs import LogRecord
from ambient.domain.loglevels import (
    LEVEL_FIELDS,
    NAMED_LEVEL_FIELDS,
    SYSLOG_SEVERITIES,
    TIME_FIELDS,
    access_event,
    level_and_message,
    status_level,
    without_colours,
)

# The zone may follow the time after a space, as an offset or as PostgreSQL's `%m` writes UTC.
PLAIN = re.compile(
    r"^\[?(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
    r"(?:Z| ?[+-]\d{2}:?\d{2}| (?:UTC|GMT)(?![\w+-]))?)\]?\s*(?P<rest>.*)$"
)
SPACED_ZONE = re.compile(r" (?:UTC|GMT)$| (?=[+-]\d)")
# A container's line as the kubelet keeps it (CRI): the runtime's time, the stream, a tag (P: a
# part of a long line, F: its last part or a whole line), then the line as the container wrote it.
CRI_TAG = re.compile(r"(?:stdout|stderr) [PF] ")
# A syslog receiver's line starts with the priority (RFC 5424 adds version 1): its severity
# (SYSLOG_SEVERITIES) is the level of a line that writes none.
PRIORITY = re.compile(r"<(\d{1,3})>(?:1 )?")
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
# syslog's host and tag after its time: "web-01 payment-service[1234]: ".
SYSLOG_TAG = re.compile(r"\S+ (?P<program>[^\s:\[]+)(?:\[\d+\])?: ")
# Ruby's Logger: "E, [2026-11-22T10:00:00.123456 #1] ERROR -- progname: message".
RUBY = re.compile(r"^[A-Z], \[(?P<ts>[\dT:.-]+) #\d+\] +(?P<level>\w+) -- [^:]*: (?P<rest>.*)$")
# klog (Kubernetes' components): level letter, month, day, time, thread, then "file:line] ...".
KLOG = re.compile(
    r"^(?P<level>[IWEF])(?P<m>\d{2})(?P<d>\d{2}) (?P<hms>\d{2}:\d{2}:\d{2}(?:\.\d+)?) +\d+ "
    r"(?P<source>\S+:\d+)\] (?P<rest>.*)$"
)
# klog's structured form (Kubernetes 1.21 on): the message quoted, then its key="value" pairs.
# The code's place (file:line) is no word of the message: left in, every line's template
# began with a wildcard, and the quoted message, masked as a value, left no word at all.
KLOG_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"(?: |$)')
# nginx's error log after its level: the process and thread ids, the connection's number.
NGINX_IDS = re.compile(r"\[(?P<level>[a-z]+)\] \d+#\d+: (?:\*\d+ )?")
# RFC 5424's header after its version: time, host, app, process id, message id, structured
# data ("-" or [id k="v"]...), each "-" when absent; the message may open with a BOM.
RFC5424 = re.compile(
    r"(?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    r'(?P<sd>-|(?:\[(?:[^\]"\\]|"(?:[^"\\]|\\.)*")*\])+)(?: \ufeff?(?P<rest>.*))?$'
)
# Redis's: "1:M 22 Nov 2026 10:00:00.123 # ..." (before 3.0 "[1] 22 Nov 10:00:00.123 # ..."),
# the mark its level: . debug, - verbose, * notice, # warning.
REDIS = re.compile(
    r"^(?:\d+:[XCSM]|\[\d+\]) (?P<day>\d{1,2}) (?P<mon>" + "|".join(MONTHS) + r") "
    r"(?:(?P<y>\d{4}) )?(?P<hms>\d{2}:\d{2}:\d{2}(?:\.\d+)?) (?P<mark>[.*#-]) (?P<rest>.*)$"
)
REDIS_LEVELS = {".": "DEBUG", "-": "DEBUG", "*": "INFO", "#": "WARNING"}
# java.util.logging's one-line format (Tomcat's catalina.out): "22-Nov-2026 10:00:00.123 SEVERE
# [main] org.apache.catalina.startup.Catalina.start message": its thread and class.method fields.
JUL = re.compile(
    r"^(?P<day>\d{2})-(?P<mon>" + "|".join(MONTHS) + r")-(?P<y>\d{4}) "
    r"(?P<hms>\d{2}:\d{2}:\d{2}(?:\.\d+)?) (?P<level>SEVERE|WARNING|INFO|CONFIG|FINE|FINER|FINEST) "
    r"(?:\[(?P<thread>[^\]]*)\] )?(?:(?P<logger>[\w$]+(?:\.[\w$<>]+)+) )?(?P<rest>.*)$"
)
# PHP's error log ("[22-Nov-2026 02:00:00 UTC] PHP Fatal error:  ...", the zone as its
# date.timezone names it) and PHP-FPM's ("[22-Nov-2026 10:00:00] WARNING: [pool www] ...").
PHP = re.compile(
    r"^\[(?P<day>\d{2})-(?P<mon>" + "|".join(MONTHS) + r")-(?P<y>\d{4}) "
    r"(?P<hms>\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?: (?P<tz>[A-Za-z][\w/+-]*))?\] (?P<rest>.*)$"
)
PHP_LEVEL = re.compile(
    r"PHP (?P<level>Fatal error|Parse error|Recoverable fatal error|Warning|Notice|Deprecated"
    r"|Strict Standards): +"
)
PHP_LEVELS = {
    **{"Fatal error": "CRITICAL", "Parse error": "ERROR", "Recoverable fatal error": "ERROR"},
    **{"Warning": "WARNING", "Notice": "INFO", "Deprecated": "INFO", "Strict Standards": "INFO"},
}
# journalctl -o short-unix: the epoch in seconds and microseconds, then as syslog writes it.
UNIX_TIME = re.compile(r"^(?P<ts>\d{10}\.\d{1,9}) (?P<rest>.*)$")
# nginx's and Apache's access log: the status is the level (5xx ERROR, 4xx WARNING). Any
# fields before the time (the client, ident and user of the common format; Apache's
# vhost_combined and nginx's $host first put the virtual host before them), each taken whole
# (possessive: a line without the time is passed over in one go, not tried field by field).
ACCESS_TIME = "%d/%b/%Y:%H:%M:%S %z"
ACCESS = re.compile(
    r"^(?:[^\s\[]\S* )++\[(?P<ts>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "
    r'(?P<rest>"[^"]*" (?P<status>\d{3})\b.*)$'
)
# The request of an access log line, its target a path (not a proxy's absolute URL).
REQUEST = re.compile(r'"(?P<method>[A-Z]{3,10}) (?P<path>/\S*) HTTP/[\d.]+"')
# A Java or Python stack trace's lines after the event they belong to: indented frames, the
# exception (with its cause), the traceback's header.
TRACE_LINE = r"\s|Caused by:|Suppressed:|Traceback \(|During handling of|The above exception"
# A container runtime's line (CRI, Docker's JSON) that reads as such a continuation: a trace
# line of the event above when written in the same moment (``logs.TRACE_GAP``), else an event of
# its own at the runtime's time (a bare "Error: ..." is Node's or Rust's first line, not a trace's).
WRAPPED_TRACE = re.compile(rf"{TRACE_LINE}|[\w$.]+(?:Error|Exception|Throwable)(?::|$)")
TRACE = "__trace__"  # the key that marks a record read from such a line: its written text
LOGFMT = re.compile(r'([\w.@-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_time(value: Any, zone: tzinfo = UTC) -> datetime:
    """An epoch (a number or its digits), an ISO time (with no offset, a wall time in
    ``zone``) or an access log's (nginx's ``$time_local``: ``22/Nov/2026:10:00:00 +0800``)."""
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
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        if not isinstance(value, str) or "/" not in value:
            raise
        return datetime.strptime(value, ACCESS_TIME)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def unwrapped(data: dict[str, Any]) -> dict[str, Any]:
    """A JSON line's fields; loguru's serialized record (``serialize=True``: the formatted line
    in "text", the fields in "record") as its time, level, logger and message."""
    record = data.get("record")
    if not isinstance(record, dict) or "text" not in data:
        return data
    with suppress(AttributeError, KeyError, TypeError):
        return {
            "time": record["time"]["timestamp"],
            "level": record["level"]["name"],
            "logger": f"{record['name']}:{record['function']}:{record['line']}",
            "message": record["message"],
        }
    return data


def json_time(data: dict[str, Any], zone: tzinfo = UTC) -> datetime | None:
    """The time of a JSON log line: its first time field that reads as one from this century
    (a "time" of 35 is a duration beside an "@timestamp"); None if none reads."""
    read: list[datetime] = []
    for value in (data[name] for name in TIME_FIELDS if name in data):
        try:
            if isinstance(value, dict) and "epochSecond" in value:  # log4j2's JsonLayout
                value = float(value["epochSecond"]) + float(value.get("nanoOfSecond") or 0) / 1e9
            elif isinstance(value, dict) and "$date" in value:  # MongoDB's (4.4 on)
                value = value["$date"]  # ISO, or Extended JSON's {"$numberLong": "<ms>"}
                value = value.get("$numberLong") if isinstance(value, dict) else value
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
            leveled = {"level": match["level"]} if match["level"] else {}
            message = match["rest"]
            if match["mon"] and not match["apache"] and (tag := SYSLOG_TAG.match(message)):
                # The program's words after syslog's host and tag (and a time of its own):
                # the host left in the message made one template a host; the level is
                # looked for there, at the start of what the program wrote.
                said = message[tag.end() :]
                said = timed["rest"] if (timed := PLAIN.match(said)) else said
                level, words = level_and_message(said)
                if level != "UNKNOWN":
                    leveled, said = {"level": level}, words
                message = f"{tag['program']}: {said}"
            elif match["y"] and (ids := NGINX_IDS.match(message)):
                leveled, message = {"level": ids["level"]}, message[ids.end() :]
            return _wall(year, month, day, match["hms"], zone), {"message": message, **leveled}
        if match := RUBY.match(line):
            return parse_time(match["ts"], zone), {
                "message": match["rest"],
                "level": match["level"],
            }
        if match := KLOG.match(line):
            month, day = int(match["m"]), int(match["d"])
            wall = _wall(_year(month, day, today), month, day, match["hms"], zone)
            message = match["rest"]
            if quoted := KLOG_QUOTED.match(message):
                said = quoted[1].replace('\\"', '"').replace("\\\\", "\\")
                message = f"{said} {message[quoted.end() :]}".rstrip()
            return wall, {"message": message, "level": match["level"], "logger": match["source"]}
        if (match := REDIS.match(line)) or (match := JUL.match(line)):
            month, day = MONTHS[match["mon"]], int(match["day"])
            year = int(match["y"] or _year(month, day, today))
            fields = {k: v for k, v in match.groupdict().items() if k in ("thread", "logger") and v}
            level = REDIS_LEVELS[match["mark"]] if "mark" in match.re.groupindex else match["level"]
            wall = _wall(year, month, day, match["hms"], zone)
            return wall, {"message": match["rest"], "level": level, **fields}
        if match := PHP.match(line):
            month, day = MONTHS[match["mon"]], int(match["day"])
            written = zone
            with suppress(ValueError, ZoneInfoNotFoundError):  # a name ZoneInfo does not know
                written = ZoneInfo(match["tz"]) if match["tz"] else zone
            if php := PHP_LEVEL.match(match["rest"]):
                level = PHP_LEVELS[php["level"]]
                fields = {"message": match["rest"][php.end() :], "level": level}
            else:
                fields = text_fields(match["rest"])
            return _wall(int(match["y"]), month, day, match["hms"], written), fields
        if match := UNIX_TIME.match(line):
            return parse_time(match["ts"], zone), {"message": match["rest"]}
        if '] "' in line and (match := ACCESS.match(line)):
            level = status_level(match["status"]) or "INFO"
            when = datetime.strptime(match["ts"], ACCESS_TIME)
            return when, {"message": _request(match["rest"], match["status"]), "level": level}
    return None


def _request(rest: str, status: str) -> str:
    """An access log line's event (`access_event`); the line as written when its request is not
    one. Left whole, the quoted request was masked as one value and the status as a number:
    every failing request read "GET <*> <*> <*> ..."."""
    request = REQUEST.match(rest)
    if request is None:
        return rest
    return access_event(request["method"], request["path"], status)


def _wall(year: int, month: int, day: int, hms: str, zone: tzinfo) -> datetime:
    """A date and an ``hh:mm:ss[.frac]`` written in ``zone`` (ValueError: no such day or time)."""
    return datetime.fromisoformat(f"{year:04d}-{month:02d}-{day:02d}T{hms}").replace(tzinfo=zone)


def _year(month: int, day: int, today: date) -> int:
    """The year of a day written without one: the one that puts it on or before ``today``."""
    return today.year - ((month, day) > (today.month, today.day))


def parse_line(
    line: str, source: str, zone: tzinfo = UTC, today: date | None = None, *, inner: bool = False
) -> LogRecord | None:
    """One log line as a record, or None if it has no readable time; ``inner``: the line a
    priority, CRI prefix or Docker wrapper carried, not unwrapped again (``<1>`` 2000 times)."""
    line = without_colours(line).strip()
    if not line:
        return None
    if not inner and (priority := PRIORITY.match(line)):
        return _prioritised(priority, line, source, zone, today)
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):  # nested past Python's limit: a few KB do it
            return None
        data = unwrapped(data)
        if (when := json_time(data, zone)) is None:
            return None
        if not inner and isinstance(data.get("log"), str) and "stream" in data:  # Docker's
            if (written := _as_written(data["log"].strip(), when, source, zone, today)) is not None:
                return written
            if WRAPPED_TRACE.match(data["log"]):
                data[TRACE] = data["log"]  # maybe the trace of the event above (logs.py)
        return file_record(when, data, source)
    if (match := PLAIN.match(line)) is None:
        found = text_line(line, zone, today or datetime.now(zone).date())
        return None if found is None else file_record(*found, source, flat=True)
    try:
        when = parse_time(match["ts"], zone)
    except ValueError:
        return None
    rest = match["rest"]
    if not inner and (tag := CRI_TAG.match(rest)):
        rest = rest[tag.end() :]
        if (written := _as_written(rest, when, source, zone, today)) is not None:
            return written
        if WRAPPED_TRACE.match(rest):  # maybe the trace of the event above (logs.py)
            return file_record(when, text_fields(rest) | {TRACE: rest}, source, flat=True)
    elif rest[:1] in "IWEF" and rest[1:2].isdigit() and KLOG.match(rest):
        # A klog line behind the time `kubectl logs --timestamps` (or a collector) put first.
        if (written := _as_written(rest, when, source, zone, today)) is not None:
            return written
    return file_record(when, text_fields(rest), source, flat=True)


def _prioritised(
    priority: re.Match[str], line: str, source: str, zone: tzinfo, today: date | None
) -> LogRecord | None:
    """A syslog receiver's line after its priority, whose severity is the level of a line
    that writes none."""
    record = None
    if priority[0].endswith("1 ") and (header := RFC5424.match(line, priority.end())):
        # Its host, process and message ids are no words of the program's message: left in,
        # one message from three hosts was three templates, each a third of its count.
        with suppress(ValueError):
            fields = text_fields(header["rest"] or "")
            if header["app"] != "-":
                fields |= {"app": header["app"], "message": f"{header['app']}: {fields['message']}"}
            if header["host"] != "-":
                fields["host"] = header["host"]
            record = file_record(parse_time(header["ts"], zone), fields, source, flat=True)
    if record is None:
        record = parse_line(line[priority.end() :], source, zone, today, inner=True)
    content = record.content if record is not None else None
    if isinstance(content, dict) and level_and_message(content)[0] == "UNKNOWN":
        content["level"] = SYSLOG_SEVERITIES[int(priority[1]) % 8]
    return record


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
# loguru's default: "2026-11-22 10:00:00.123 | ERROR    | pay.handler:charge:42 - ...".
LOGURU = re.compile(r"\| (?P<level>[A-Z]+) *\| (?P<logger>\S+) - ")
LOGGER_FIRST = re.compile(rf"({JAVA_LOGGER}) - ")  # after the level of a thread-first line
# logback's default writes the thread first: "[main] ERROR c.a.Pay - ...".
THREAD_FIRST = re.compile(
    r"\[(?P<thread>[^\]]*)\] +(?=(?:DEBUG|INFO|WARN(?:ING)?|ERROR|CRITICAL|FATAL)\b)"
)


def text_fields(rest: str) -> dict[str, Any]:
    """A text line's fields after its time: "ERROR something" -> level ERROR, message
    "something" (Python's default "- app.pay - ERROR - ..." names its logger too, Java's
    layouts their thread and logger: `JAVA_HEADER`)."""
    if rest[:1] == "|" and (loguru := LOGURU.match(rest)):
        return {**loguru.groupdict(), "message": rest[loguru.end() :]}
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
            return file_record(when, json.loads(text), source)
        return None
    record = parse_line(text, source, zone, today, inner=True)
    return None if record is None else record.model_copy(update={"time": when})


# The fields a CLS record may carry a whole line in: full-text collection's (单行全文, 多行全文)
# __CONTENT__; a shipper of Docker's json-file records keeps its `log` (with `stream`), and an
# extraction may name it content, message or msg. Read as a file's line is, or a klog error had
# no level and a text line kept its time and level word in its template.
LINE_FIELDS = ("__CONTENT__", "log", "content", "message", "msg")
# Beside the line, what a container runtime's record carries (Docker's json-file: stream, attrs).
RUNTIME_FIELDS = ("stream", "attrs")


def line_field(content: dict[str, Any] | str) -> str | None:
    """The field a CLS record carries its whole line in: __CONTENT__, else its single text field
    (CLS's metadata, times and a runtime's stream aside) when that is one of LINE_FIELDS."""
    if not isinstance(content, dict):
        return None
    if isinstance(content.get("__CONTENT__"), str):
        return "__CONTENT__"
    said = [
        key
        for key in content
        if not key.startswith("__") and key not in TIME_FIELDS and key not in RUNTIME_FIELDS
    ]
    if len(said) == 1 and said[0] in LINE_FIELDS and isinstance(content[said[0]], str):
        return said[0]
    return None


def full_text_fields(content: dict[str, Any] | str, zone: tzinfo = UTC) -> dict[str, Any] | str:
    """A CLS record that carries a whole line (`line_field`) with the fields its first line has
    when read as a file's line: its time and header taken off (a syslog receiver's priority
    too, its severity the level of a line that writes none), its level, Java's thread and
    logger; a multi-line record's other lines kept after the message. A record that names its
    level, or whose line reads as JSON, is as it came."""
    if not isinstance(content, dict) or any(
        f in content for f in (*LEVEL_FIELDS, *NAMED_LEVEL_FIELDS)
    ):
        return content
    key = line_field(content)
    line = content.get(key) if key else None
    if not isinstance(line, str) or line.startswith("{"):
        return content
    line = without_colours(line).rstrip()  # Docker's `log` ends with the line's newline
    first, newline, rest = line.partition("\n")
    first = first.strip()
    if priority := PRIORITY.match(first):  # a syslog receiver's line, as a file's is read
        record = _prioritised(priority, first, "cls", zone, None)
    else:
        record = parse_line(first, "cls", zone, inner=True)
    fields = record.content if record is not None else text_fields(first)
    if not isinstance(fields, dict) or "message" not in fields:
        return content
    kept = {name: value for name, value in content.items() if name != key}
    return kept | fields | {"message": f"{fields['message']}{newline}{rest}"}


def file_record(
    when: datetime, content: dict[str, Any], source: str, *, flat: bool = False
) -> LogRecord:
    """A file's record; ``flat``: its content a text line's fields (strings), nothing for the
    model to check (its validation was a tenth of a file's read)."""
    if flat:
        return LogRecord.model_construct(time=when, topic_id="file", source=source, content=content)
    return LogRecord(time=when, topic_id="file", source=source, content=content)
