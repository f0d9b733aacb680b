"""A long line a container runtime wrote in parts, read back as the one line it was."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

# A container's line as the kubelet keeps it (CRI): the runtime's time, the stream, a tag (P: a
# part of a long line, F: its last part or a whole line), then the line as the container wrote it.
CRI_LINE = re.compile(r"(\d{4}-\d{2}-\d{2}T\S+ (stdout|stderr) )([PF]) (.*)", re.DOTALL)
MAX_JOINED = 1 << 20  # characters of a line joined from parts
# Docker's json-file: the daemon copies a container's output through a 16 KiB buffer, and a
# longer line is written as records of one full buffer each (their "log" without the line's
# newline), the last piece ending it. A piece cut inside a UTF-8 character reads longer.
DOCKER_PIECE = 16 * 1024


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


# The characters kept of a field a cut JSON line ends inside (a message's start still says it).
CUT_FIELD = 2000
_SPACE = re.compile(r"\s*")


def cut_json(line: str) -> str | None:
    """A JSON object's line read only to its first MiB (a request dump, a long trace in a
    field): the fields read whole before the cut, and the start of a string cut in it, as a
    JSON line (its level, time and message are read as any line's). None: not an object, or
    no field was read whole."""
    decoder = json.JSONDecoder()
    fields: dict[str, Any] = {}
    at = _SPACE.match(line).end()  # type: ignore[union-attr]
    if not line.startswith("{", at):
        return None
    at += 1
    while True:
        at = _SPACE.match(line, at).end()  # type: ignore[union-attr]
        if not line.startswith('"', at):
            break
        try:
            key, at = decoder.raw_decode(line, at)
        except ValueError:
            break
        at = _SPACE.match(line, at).end()  # type: ignore[union-attr]
        if not line.startswith(":", at):
            break
        at = _SPACE.match(line, at + 1).end()  # type: ignore[union-attr]
        try:
            fields[key], at = decoder.raw_decode(line, at)
        except ValueError:  # the cut is inside this value: a string's start is kept
            if line.startswith('"', at):
                fields[key] = _cut_string(line[at + 1 : at + 1 + CUT_FIELD])
            break
        at = _SPACE.match(line, at).end()  # type: ignore[union-attr]
        if not line.startswith(",", at):
            break
        at += 1
    return json.dumps(fields, ensure_ascii=False) if fields else None


def _cut_string(text: str) -> str:
    """The start of a JSON string, its escapes read (\\n, \\u8ba2): one cut in half is left out."""
    for end in range(len(text), max(len(text) - 6, -1), -1):
        part = text[:end]
        if part.endswith("\\") and (len(part) - len(part.rstrip("\\"))) % 2:
            continue  # an escape's backslash without what it escapes
        try:
            value = json.loads(f'"{part}"')
        except ValueError:
            continue
        return value if isinstance(value, str) else part
    return text
