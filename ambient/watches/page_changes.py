"""What changed on a page: its text normalised, its new lines and keyword hits.

Pure and deterministic (no clock, no I/O): the polls and the digests' checks use it.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from ambient.domain.checks import MORE_CHANGED, MORE_HITS, ONLY_MOVED
from ambient.domain.events import clipped
from ambient.watches.configs import compile_user_regex

# What an event shows of one line (a diff line or a keyword hit). Matching reads the whole
# line; a page of few, huge lines (text without blocks, up to the fetch cap) must not put
# megabytes into an event, a message and the poll's result (one history event).
MAX_SHOWN_LINE = 1000
# The diff lines an event shows at most.
EXCERPT_LINES = 12
HIT_LINES = 5  # a keyword's new lines shown, then how many more


# Format characters (Unicode category Cf, as of Unicode 14): a soft hyphen, zero-width spaces
# and joiners, a word joiner, a BOM, bidi marks show nothing, and "Data&shy;base" or
# "数据&#8203;库" hid the word from a keyword.
UNSHOWN = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)


def matched_text(text: str) -> str:
    """``text`` as a keyword reads it: without the format characters no reader sees."""
    return text if text.isascii() else UNSHOWN.sub("", text)


@functools.lru_cache(maxsize=4096)
def keyword_patterns(keywords: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """Matchers per keyword (each has ``search``): user regexes in RE2, plain words escaped."""
    # A watch matches the same keywords at every change: compiled once per keyword set.
    compiled: list[tuple[str, Any]] = []
    for keyword in keywords:
        if keyword.startswith("re:"):
            source = matched_text(keyword[3:])
            compiled.append((keyword, compile_user_regex(source, ignore_case=True)))
        else:
            # Its whitespace collapsed as a page's is: "a  b" or "a\tb" pasted is "a b"; its
            # format characters dropped as the line's are (a word pasted with a soft hyphen).
            folded = " ".join(matched_text(unicodedata.normalize("NFKC", keyword)).split())
            compiled.append((keyword, re.compile(_plain(folded), re.I)))
    return tuple(compiled)


# A letter or digit of a script that puts spaces between words (not Han, Kana: Chinese and
# Japanese run words together, and English words stand right beside them).
SPACED = r"[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"


def _plain(keyword: str) -> str:
    """Whole words where words are spaced ("AI" not in "said", but in "使用AI技术"), a Chinese
    keyword anywhere; an escaped literal cannot backtrack, so Python's engine is safe."""
    head = rf"(?<!{SPACED})" if re.match(SPACED, keyword) else ""
    tail = rf"(?!{SPACED})" if re.match(SPACED, keyword[-1:]) else ""
    return head + re.escape(keyword) + tail


def normalise(text: str, ignore_patterns: list[str]) -> list[str]:
    """Lines of text without ignored parts, whitespace collapsed, empty lines dropped."""
    lines = _shown(text)
    for pattern in ignore_patterns:  # each reads what the ones before it left, collapsed
        kept, removed = _ignored(pattern).subn("", "\n".join(lines))
        lines = _shown(kept) if removed else lines
    return lines


@functools.lru_cache(maxsize=4096)
def _ignored(pattern: str) -> Any:
    # A user writes a pattern from the lines a diff shows (stripped, no "\r"), and "^" and "$"
    # are such a line's start and end, a match within one (a keyword is matched line by line
    # too): the lines are matched joined, in one call, but no pattern matches a line break.
    return compile_user_regex(f"(?m){pattern}")


def _shown(text: str) -> list[str]:
    lines = (re.sub(r"\s+", " ", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


# Lines of the old page times lines of the new (past their common head and tail) up to which
# the excerpt is difflib's (2,000 by 2,000: about a quarter of a second).
MAX_DIFF_CELLS = 4_000_000


class PageDiff(BaseModel):
    changed: bool
    added: list[str]
    hits: dict[str, list[str]] = Field(
        description="keyword -> new lines that mention it (at most 5, then '… N more lines')"
    )
    excerpt: str
    # New ("+") lines of the diff past the excerpt's: a digest tells every new line it shows,
    # then how many more there are (the excerpt's own notice counts removed lines too).
    more_added: int = 0


def beyond(lines: list[str], other: list[str]) -> list[str]:
    """The lines of ``lines`` that ``other`` does not have, a line written n times more often
    in ``lines`` counted n times (its later ones): a status page's new incident repeats the
    template line ("Status: Investigating") of one already there, and it is new text."""
    if len(set(lines)) == len(lines):  # each line once: the same as "not in other" (faster)
        there = set(other)
        return [line for line in lines if line not in there]
    left = Counter(other)
    kept = []
    for line in lines:
        if left[line]:
            left[line] -= 1
        else:
            kept.append(line)
    return kept


def diff_pages(old: list[str] | None, new: list[str], keywords: list[str]) -> PageDiff:
    """What changed between two normalised pages; keyword hits count only on new text."""
    if old is None:  # first sight: a baseline, nothing is "new"
        return PageDiff(changed=False, added=[], hits={}, excerpt="")
    added = beyond(new, old)
    hits: dict[str, list[str]] = {}
    # A plain keyword reads letters and digits in either width (ＡＩ is AI: NFKC), as the
    # Chinese pages that write them full-width mean them; any keyword reads a line without its
    # format characters (matched_text), the line shown as the page wrote it. The stored text
    # and its hash keep them: a page's hash is as before.
    unshown = [matched_text(line) for line in added] if keywords else []
    folded = [unicodedata.normalize("NFKC", line) for line in unshown]
    for keyword, pattern in keyword_patterns(tuple(keywords)):
        texts = unshown if keyword.startswith("re:") else folded
        found = [line for line, text in zip(added, texts, strict=True) if pattern.search(text)]
        if found:
            hits[keyword] = [clipped(line, MAX_SHOWN_LINE) for line in found[:HIT_LINES]]
        if len(found) > HIT_LINES:
            hits[keyword].append(MORE_HITS.format(len(found) - HIT_LINES))
    # The lines both pages start and end with are not in a diff without context: leave
    # them out of the matcher, whose cost grows with the lines it is given.
    limit = min(len(old), len(new))
    head = 0
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    before, after = old[head : len(old) - tail], new[head : len(new) - tail]
    body: Iterable[str]
    if Counter(before) == Counter(after):
        # Lines that only moved: said so (`ONLY_MOVED`), not each added and removed again.
        body = ()
    elif len(before) * len(after) > MAX_DIFF_CELLS:
        # difflib's matcher is quadratic: past this size its excerpt is the lines each side
        # lacks, in order (a page of 10,000 lines, every third changed, held the worker's
        # loop and the database's write lock 11 s; 56,000 lines, minutes).
        body = itertools.chain(  # the new text first
            (f"+{line}" for line in beyond(after, before)),
            (f"-{line}" for line in beyond(before, after)),
        )
    else:
        diff = difflib.unified_diff(before, after, lineterm="", n=0)
        # Past the two file headers, only hunk headers start with "@@" ("--- x" is "-- x"
        # removed).
        body = (line for line in itertools.islice(diff, 2, None) if not line.startswith("@@"))
    # The new text first: a hunk lists its removed lines before its added ones, so a page
    # rewritten at length showed only "-" lines, and a digest (its "+" lines) nothing.
    shown: dict[str, list[tuple[int, str]]] = {"+": [], "-": []}
    count = more_added = 0
    for count, line in enumerate(body, start=1):
        if len(kept := shown[line[0]]) < EXCERPT_LINES:
            kept.append((count, clipped(line, MAX_SHOWN_LINE)))
        elif line[0] == "+":
            more_added += 1
    lines = sorted(shown["+"] + shown["-"][: EXCERPT_LINES - len(shown["+"])])
    excerpt = [line for _, line in lines]
    if count > len(excerpt):
        excerpt.append(MORE_CHANGED.format(count - len(excerpt)))
    if not excerpt and old != new:  # lines that only moved
        excerpt = [ONLY_MOVED]
    return PageDiff(
        changed=old != new,
        added=added,
        hits=hits,
        excerpt="\n".join(excerpt),
        more_added=more_added,
    )
