"""Log template mining: mask the variable parts of a message, then cluster with Drain.

One configuration serves every source (no per-source tuning):

1. `mask` replaces numbers, ids (uuid, hex, trace ids, anything ASCII with a digit in it),
   hashes, IPv4/IPv6 with ports, URLs, paths, durations and sizes, e-mails, timestamps and
   quoted values with `<*>` in one pass of one compiled regular expression.
2. Many lines are identical once masked, so the masked text is looked up in a cache before
   Drain is asked at all: Drain (pure Python) sees each distinct masked text once.
3. `tokens` splits for Drain: whitespace for Latin text, and CJK runs kept as single tokens
   with CJK punctuation and `<*>` as tokens of their own (Chinese has no spaces, so
   `连接数据库失败，重试<*>次` becomes `连接数据库失败 ， 重试 <*> 次`).
4. Drain3's `Drain` (the clustering core, not its `TemplateMiner` wrapper, whose masking and
   persistence we do not need) groups the token sequences.

Pure: no I/O, no clock; safe inside activities and tests.
"""

from __future__ import annotations

import hashlib
import re

from drain3.drain import Drain

WILDCARD = "<*>"

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_PUNCT = "\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"

# Order matters: the longest, most specific shapes first, so a URL is masked whole before
# its digits would be masked one by one.
_MASKS = [
    r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>，。；）)\]]+",  # URL
    r"[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+",  # e-mail
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",  # time
    # IPv6 in full or :: form (also catches hh:mm:ss, which is as variable)
    r"(?<![\w:])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)(?:[0-9A-Fa-f]{1,4}|:)(?:[0-9A-Fa-f]{0,4}:){1,7}"
    r"[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])",
    r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])",  # IPv4[:port]
    r"(?<![\w/.])(?:[A-Za-z]:)?(?:[/\\][\w.@%+~\-]+){2,}[/\\]?",  # path (two segments or more)
    r"\"[^\"\n]{0,300}\"",  # "quoted"
    r"(?<![\w])'[^'\n]{0,300}'(?![\w])",  # 'quoted' (not the apostrophe of "can't")
    r"“[^”\n]{0,300}”|「[^」\n]{0,300}」",  # Chinese quotes
    # numbers with their unit (12ms, 3.5s, 10MB, 42%), ids and hashes (uuid, 0x1f, a1b2c3,
    # req-7f3a...): any ASCII word that contains a digit; CJK around it stays as it is.
    r"(?<![A-Za-z0-9_])[A-Za-z_\-]*\d[A-Za-z0-9_\-]*(?:\.\d[A-Za-z0-9_\-]*)*%?",
]
MASK = re.compile("|".join(f"(?:{m})" for m in _MASKS))
_TOKEN = re.compile(rf"<\*>|[{_CJK}]+|[{_CJK_PUNCT}]|[^\s{_CJK}{_CJK_PUNCT}]+")
_JOIN_CJK = re.compile(rf"(?<=[{_CJK}{_CJK_PUNCT}]) | (?=[{_CJK}{_CJK_PUNCT}])")

# Drain parameters. depth 4 and max_children 100 are Drain's defaults; a similarity threshold
# of 0.5 (default 0.4) keeps templates that differ in one constant word of a short message
# apart, since masking already turned most variables into wildcards before Drain sees them.
DRAIN_DEPTH = 4
DRAIN_SIM_TH = 0.5
DRAIN_MAX_CHILDREN = 100
MAX_MESSAGE_CHARS = 1000
MAX_CACHED = 200_000


def mask(message: str) -> str:
    """The message with its variable parts replaced by `<*>`."""
    return MASK.sub(WILDCARD, message)


def tokens(masked: str) -> list[str]:
    """Tokens for clustering: whitespace-separated words, CJK runs and CJK punctuation apart."""
    return _TOKEN.findall(masked)


def display(template: str) -> str:
    """A template as people read it: no spaces that tokenising put between CJK tokens."""
    return _JOIN_CJK.sub("", template)


def first_line(message: str) -> str:
    """The part of a message that names its template: the first line, bounded."""
    cut = message.split("\n", 1)[0]
    return cut[:MAX_MESSAGE_CHARS].strip()


def template_id(level: str, template: str) -> str:
    """A stable id of a (level, template) pair: the same on every run and every machine."""
    digest = hashlib.blake2b(f"{level}\x00{template}".encode(), digest_size=5).hexdigest()
    return f"t{digest}"


class TemplateMiner:
    """Assigns each message a cluster; templates are read at the end (clusters generalise)."""

    def __init__(self, *, sim_th: float = DRAIN_SIM_TH, depth: int = DRAIN_DEPTH) -> None:
        self._drain = Drain(
            depth=depth,
            sim_th=sim_th,
            max_children=DRAIN_MAX_CHILDREN,
            param_str=WILDCARD,
            parametrize_numeric_tokens=True,
        )
        self._by_masked: dict[str, int] = {}

    def add(self, message: str) -> int:
        """The cluster id of a message (its first line, masked)."""
        masked = MASK.sub(WILDCARD, first_line(message))
        found = self._by_masked.get(masked)
        if found is not None:
            return found
        words = _TOKEN.findall(masked)
        # Drain cannot cluster an empty token list; one placeholder keeps such lines together.
        cluster, _ = self._drain.add_log_message(" ".join(words) if words else "<empty>")
        if len(self._by_masked) < MAX_CACHED:
            self._by_masked[masked] = cluster.cluster_id
        return int(cluster.cluster_id)

    def template(self, cluster_id: int) -> str:
        """The current template of a cluster, as people read it."""
        cluster = self._drain.id_to_cluster.get(cluster_id)
        if cluster is None:
            raise KeyError(f"no cluster {cluster_id}")
        return display(cluster.get_template())

    @property
    def cluster_count(self) -> int:
        return len(self._drain.id_to_cluster)
