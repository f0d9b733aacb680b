"""Log levels: a record's level and message, whatever names and fields its source used."""

from __future__ import annotations

import json
import re
from contextlib import suppress
from http import HTTPStatus
from typing import Any

SEVERITY = {"CRITICAL": 5, "ERROR": 4, "WARNING": 3, "INFO": 2, "DEBUG": 1, "UNKNOWN": 0}
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
# The names sources write for each level (upper-cased before the lookup): one letter (glog,
# logcat, MongoDB's), pino's and bunyan's numbers, Monolog's (PHP, Laravel: 100 to 600), log15's
# four letters (dbug, eror), zap's DPanic, syslog's and nginx's (alert, emerg),
# java.util.logging's (FINE, CONFIG), also in a Chinese locale, loguru's SUCCESS.
_LEVEL_NAMES = {
    name: level
    for level, names in {
        "DEBUG": "TRACE DEBUG DBG DBUG D FINE FINER FINEST 10 20 100 调试",
        "INFO": "INFO INFORMATION NOTICE CONFIG SUCCESS I 30 200 250 信息",
        "WARNING": "WARN WARNING W 40 300 警告",
        "ERROR": "ERR EROR ERROR SEVERE E 50 400 错误 严重 严重错误",
        "CRITICAL": "CRIT CRITICAL FATAL ALERT EMERG EMERGENCY PANIC DPANIC F 60 500 550 600 致命"
        " 致命错误",
    }.items()
    for name in names.split()
}
_LEVEL_IN_TEXT = re.compile(
    r"(?<![A-Za-z])(TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|SEVERE|CRITICAL|FATAL|D?PANIC"
    r"|ALERT|EMERG)(?![A-Za-z])"
)
# Where a level is written (first, in brackets, as level=), lower case and Chinese count too.
_LEVEL_MARKED = re.compile(
    r"(?:^[\[<]?|[\[<]|(?<![A-Za-z])(?:level|severity|lvl)=\"?)"
    r"((?i:trace|debug|dbug|info|notice|warn(?:ing)?|err(?:or)?|eror|severe|crit(?:ical)?"
    r"|fatal|d?panic|alert|emerg)|调试|信息|警告|错误|严重错误|严重|致命错误|致命)(?!\w)"
)
# Serilog's compact JSON (CLEF) writes @t, @l, @m (or only the template @mt); ECS log.level.
MESSAGE_FIELDS = (
    *("message", "msg", "content", "log", "text", "body", "__CONTENT__", "@m", "@mt"),
    "short_message",  # GELF (Graylog; Docker's gelf driver)
    "event",  # structlog's
    # .NET's JSON console logger (Message) and Serilog's JsonFormatter (RenderedMessage; its
    # MessageTemplate is the template, not the line): PascalCase names
    *("Message", "RenderedMessage"),
    "textPayload",  # Google Cloud Logging's entry of a text line
    "Body",  # OpenTelemetry's log record (OTLP, which CLS takes in) as its exporters write it
)
# A record of one field besides its level and time, named so, is an error's (zap's, logrus's
# "error"): its value is the message, said at ERROR when no level field says otherwise.
ERROR_ALONE = ("error", "err", "exception")
# A message one object down, when none is at the top: Rust's tracing-subscriber JSON
# ({"fields": {"message": ...}, "target": ...}), as ECS's level is read from "log".
NESTED_MESSAGE_FIELDS = ("message", "msg")
LEVEL_FIELDS = (
    "level", "severity", "lvl", "loglevel", "log_level", "levelname", "level_name", "__LEVEL__",
    "log.level", "@l",
    # OpenTelemetry's log record (OTLP JSON, its collector's exporters), camelCase loggers'
    "severityText", "severity_text", "SeverityText", "logLevel",
)  # fmt: skip
# OpenTelemetry's SeverityNumber, 1-24 in six bands of four, when its text is left out.
SEVERITY_NUMBER_FIELDS = ("severityNumber", "severity_number", "SeverityNumber")
_SEVERITY_BANDS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
# Fields a record carries beside what it says, left out of a message made of its fields: CLS's
# metadata (__TAG__.pod_name, __SOURCE__, __FILENAME__) and a trace's ids and resource.
_NOT_SAID = re.compile(
    r"__\w+__(?:\..*)?|__TAG__.*|(?i:trace_?id|span_?id|trace_?flags|dropped_?attributes_?count"
    r"|observed_?time_?unix_?nano|time_?unix_?nano)"
)
# A trace's resource and scope (its service, its library), not the event; its attributes
# may hold the event's own words (exception.message): kept.
_NOT_SAID_OBJECTS = {"resource", "scope", "instrumentationscope"}


def _said_field(key: str, value: Any) -> bool:
    """Whether a field is part of what a record says, when its message is made of them."""
    if _NOT_SAID.fullmatch(key):
        return False
    return not (isinstance(value, dict) and key.lower() in _NOT_SAID_OBJECTS)


# .NET's JSON console logger and Serilog's JsonFormatter: a level's name ("Information"). Read
# only as one, and not in CLEF (`@t`), whose events' properties are top-level keys: a "Level"
# there is the message's (a tank's, a game's: 60 was read as CRITICAL), its level `@l`.
NAMED_LEVEL_FIELDS = ("LogLevel", "Level")
TIME_FIELDS = (
    *("time", "timestamp", "@timestamp", "ts", "datetime", "date", "__TIMESTAMP__", "@t"),
    # log4j2's JsonLayout, python-json-logger, nginx's $time_iso8601, a Kubernetes event
    *("instant", "timeMillis", "asctime", "time_iso8601", "eventTime"),
    "Timestamp",  # .NET's JSON console logger (with a TimestampFormat), Serilog's JsonFormatter
    "t",  # log15 (go-ethereum's log): t=, lvl=, msg=
    # journald's JSON export: when the program logged it, else when the journal received it
    # (microseconds, as a string)
    *("_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"),
    # a Kubernetes Event's last and first time (its eventTime is mostly null); Envoy's
    # (Istio's) JSON access log
    *("lastTimestamp", "firstTimestamp", "start_time"),
    "time_local",  # nginx's $time_local in a JSON log_format: 22/Nov/2026:10:00:00 +0800
)
# An HTTP status an access log written as JSON (nginx's, Envoy's) keeps: its level when the
# line writes none (status_level).
STATUS_FIELDS = ("status", "status_code", "statusCode", "response_code")
# A syslog priority's severity (the priority mod 8) as a level: 0 emerg ... 7 debug.
SYSLOG_SEVERITIES = (
    "CRITICAL",
    "CRITICAL",
    "CRITICAL",
    "ERROR",
    "WARNING",
    "INFO",
    "INFO",
    "DEBUG",
)


EVENT_TYPES = {"Warning": "WARNING", "Normal": "INFO"}
# An access log written as JSON (nginx's log_format, CLS's parsed nginx fields, Envoy's): its
# request as nginx writes it ("GET /api/orders/7 HTTP/1.1"), or its method and path apart.
_REQUEST = re.compile(r"(?P<method>[A-Z]{3,10}) (?P<path>/\S*)(?: HTTP/[\d.]+)?")
METHOD_FIELDS = ("request_method", "method", "httpMethod", "http_method")
PATH_FIELDS = ("request_uri", "uri", "path", "request_path", "url")
ERROR_FIELDS = ("error", "err", "error_message", "errorMessage")


def access_event(method: str, path: str, status: Any) -> str:
    """An access log line's event: its method, path and status ("GET /api/orders/7 Bad
    Gateway", the path's values masked as a route's: logtemplates.Masker), as a text line's
    and a JSON line's are read alike."""
    path = path.split("?", 1)[0]
    with suppress(ValueError):
        return f"{method} {path} {HTTPStatus(int(status)).phrase}"
    return f"{method} {path} status {status}"


def _access_message(content: dict[str, Any]) -> str | None:
    """The event of an access log written as JSON with no message field (None: not one): its
    fields joined made a template of its user agent, address and sizes, 502 and 504 as one.
    Its error, when it writes one (Echo's request log), says why: kept after it."""
    status = next((content[f] for f in STATUS_FIELDS if f in content), None)
    if status is None or status_level(status) is None:
        return None
    event = None
    if isinstance(request := content.get("request"), str):
        if found := _REQUEST.fullmatch(request.strip()):
            event = access_event(found["method"], found["path"], status)
    method = next((content[f] for f in METHOD_FIELDS if isinstance(content.get(f), str)), None)
    path = next((content[f] for f in PATH_FIELDS if isinstance(content.get(f), str)), None)
    if event is None and method and path and path.startswith("/"):
        event = access_event(method.upper(), path, status)
    error = next((content[f] for f in ERROR_FIELDS if isinstance(content.get(f), str)), "")
    return f"{event}: {error}" if event and error.strip() else event


def status_level(status: Any) -> str | None:
    """An access log's level by its HTTP status: 5xx ERROR, 4xx WARNING, else INFO; None for
    what is no HTTP status (a "status": "ok", a count)."""
    with suppress(TypeError, ValueError):
        code = int(status)
        if 100 <= code <= 599 and not isinstance(status, bool | float):
            return "ERROR" if code >= 500 else "WARNING" if code >= 400 else "INFO"
    return None


# A terminal's colours (SGR: "\x1b[31mERROR\x1b[0m"), as zap's colour level encoder, Spring Boot
# with its ANSI output on and logback's %highlight write them, in a text line or inside a JSON
# line's string (winston's colorize() before json()): the level read without them.
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def without_colours(line: str) -> str:
    """``line`` without the terminal colour codes written in it."""
    return _COLOURS.sub("", line) if "\x1b" in line else line


def normal_level(raw: Any) -> str:
    """A level name from whatever a source wrote (warn, W, Error, fatal, coloured...)."""
    return _LEVEL_NAMES.get(without_colours(str(raw)).strip().upper(), "UNKNOWN")


# Half of a UTF-16 pair without its other half (a JSON "\\ud83d" cut from its pair): no text
# can be encoded with it, and the day's report failed on the first.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def level_and_message(content: dict[str, Any] | str) -> tuple[str, str]:
    """The level and the message of a record's content (JSON object or text), the message
    without a lone surrogate (replaced by U+FFFD)."""
    level, message = _level_and_message(content)
    if not message.isascii():
        message = _LONE_SURROGATE.sub("\ufffd", message)
    return level, message


def _level_and_message(content: dict[str, Any] | str) -> tuple[str, str]:
    if isinstance(content, str):
        message, raw_level = content, None
    elif "MESSAGE" in content and "PRIORITY" in content:  # journald's
        program = content.get("SYSLOG_IDENTIFIER") or content.get("_SYSTEMD_UNIT")
        return _severity_entry(content["MESSAGE"], content["PRIORITY"], program)
    elif "short_message" in content and "level" in content:  # GELF's: a syslog severity
        return _severity_entry(content["short_message"], content["level"], None)
    else:
        raw_level = next((content[f] for f in LEVEL_FIELDS if f in content), None)
        if raw_level is None and "@t" not in content:
            named = (content.get(f) for f in NAMED_LEVEL_FIELDS)
            raw_level = next(
                (v for v in named if isinstance(v, str) and normal_level(v) != "UNKNOWN"), None
            )
        if raw_level is None and isinstance(content.get("log"), dict):  # ECS nested
            raw_level = content["log"].get("level")
        if raw_level is None and "@t" in content:  # CLEF leaves out @l for Information
            raw_level = "INFO"
        if raw_level is None and isinstance(content.get("t"), dict):  # MongoDB's: "s": "E", "D2"
            raw_level = str(content.get("s"))[:1]
        if raw_level is None:
            number = next((content[f] for f in SEVERITY_NUMBER_FIELDS if f in content), None)
            if isinstance(number, int) and 1 <= number <= 24:
                raw_level = _SEVERITY_BANDS[(number - 1) // 4]
        if raw_level is None:
            status = next((content[f] for f in STATUS_FIELDS if f in content), None)
            raw_level = status_level(status) if status is not None else None
        found = next((content[f] for f in MESSAGE_FIELDS if f in content), None)
        if found is None:
            found = _nested_message(content)
        if isinstance(content.get("involvedObject"), dict) and content.get("type") in EVENT_TYPES:
            # A Kubernetes Event (an event exporter's, TKE's event store): its type the level,
            # its reason before its message.
            raw_level = EVENT_TYPES[content["type"]]
            found = f"{content.get('reason') or 'Event'}: {found}"
        if found is None:
            found = _access_message(content)
        if found is None:
            skip = {*LEVEL_FIELDS, *NAMED_LEVEL_FIELDS, *TIME_FIELDS, *SEVERITY_NUMBER_FIELDS}
            fields = [(k, v) for k, v in content.items() if k not in skip]
            # Nothing but metadata left: said whole rather than as an empty message.
            rest = [(k, v) for k, v in fields if _said_field(k, v)] or fields
            if len(rest) == 1 and isinstance(rest[0][1], str):
                # Its one field's text is its message ("=value" was read), and the field's
                # name its level when it names one ("fatal": CRITICAL, "warn", "error").
                key, found = rest[0]
                by_key = "ERROR" if key.lower() in ERROR_ALONE else normal_level(key)
                if raw_level is None and by_key != "UNKNOWN":
                    raw_level = by_key
            else:
                found = " ".join(f"{k}={v}" for k, v in rest)
        message = without_colours(found if isinstance(found, str) else str(found))
        if raw_level is None and message.startswith("{"):  # a JSON line carried whole
            with suppress(ValueError, RecursionError):  # (CLS's __CONTENT__): its fields
                inner = json.loads(message)
                if isinstance(inner, dict):
                    return level_and_message(inner)
    if raw_level is not None:
        return normal_level(raw_level), message
    # No level field: the first level word near the start of the text ("[main] ERROR c.a.Foo
    # - ..."), in capitals or where a level is written: a capital word in the message after
    # nginx's "[error]" or zap's "error" is the message's ("open() /srv/INFO.txt failed").
    found = [_LEVEL_IN_TEXT.search(message, 0, 80), _LEVEL_MARKED.search(message, 0, 80)]
    match = min((m for m in found if m), key=lambda m: m.start(1), default=None)
    if match is None:
        return "UNKNOWN", message
    if not message[: match.start()].strip(" [<"):  # a leading "ERROR" is the level, not text
        message = message[match.end() :].lstrip(" \t]>:-：")
    return normal_level(match[1]), message


def _nested_message(content: dict[str, Any]) -> str | None:
    """The message an object in ``content`` holds (`NESTED_MESSAGE_FIELDS`), the first one's."""
    for value in content.values():
        if isinstance(value, dict):
            for name in NESTED_MESSAGE_FIELDS:
                if isinstance(found := value.get(name), str):
                    return found
    return None


def _severity_entry(text: Any, severity: Any, program: Any) -> tuple[str, str]:
    """A record whose level is a syslog severity (0 emerg ... 7 debug), as journald's JSON
    export (`journalctl -o json`: MESSAGE, PRIORITY as a string, the program in
    SYSLOG_IDENTIFIER else its unit) and GELF (short_message, level) write it. A level the
    message writes wins over the severity, as over a syslog line's priority: a service's stdout
    reaches the journal at 6 (info), and Docker's gelf driver sends all of stderr at 3 (err). A
    message that is not UTF-8 comes from journald as a list of its byte values."""
    if isinstance(text, list):
        with suppress(TypeError, ValueError):
            text = bytes(text).decode("utf-8", "replace")
    level, message = level_and_message(str(text))
    if level == "UNKNOWN":
        with suppress(TypeError, ValueError):
            level = SYSLOG_SEVERITIES[int(severity) % 8]
    return level, f"{program}: {message}" if isinstance(program, str) and program else message
