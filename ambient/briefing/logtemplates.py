"""Log template mining: mask the variable parts of a message, then cluster with Drain.

One configuration for every source (docs/briefing.md, "Template mining"): `Masker` turns
variables into `<*>` word by word (one regex over whole lines kept 1M lines from fitting in
10 s); a masked text seen before skips Drain; `tokens` splits CJK runs and punctuation apart;
Drain3's `Drain` core (not its `TemplateMiner` wrapper) clusters with its defaults; and
wildcards Drain put where a cluster holds a few constant words split it (`TemplateMiner`).

Pure: no I/O, no clock; safe inside activities and tests.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator

from drain3.drain import Drain, LogCluster

from ambient.log_redaction import (
    AUTH_SCHEME,
    MASKED,
    SECRET_HINT,
    SECRET_LEAD,
    hide_secrets,
)

WILDCARD = MASKED
# Drain's own wildcard, apart from the mask: Drain does not count its wildcards as similar
# tokens, and a masked value is a known shape that should count (as Drain3's `<NUM>`-style
# masks do). Shown as `<*>` like the masks.
DRAIN_WILDCARD = "<~>"

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_PUNCT = "\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"

# Masks that span spaces (quoted values) run on the whole message, and only when it has a
# quote character; every other mask runs on one whitespace-separated word at a time, so a
# word seen before (most words are constants) costs a dictionary lookup, not a regex scan.
# A quoted phrase that opens with an upper-case keyword ("GET /v2/servers HTTP/1.1",
# 'SELECT * FROM t WHERE ...') keeps that keyword: it names the kind of request or
# statement (GET and POST are different events), the rest is the value. The keyword is
# captured by group 1 or 2 (one per quote style); an unmatched group is replaced by "".
_KEYWORD = r"([A-Z][A-Z_]+ (?=[^\s\"']))?"
_QUOTED = re.compile(
    # "quoted", its escaped quotes inside it (klog's err="failed to \"StartContainer\" …"),
    # ending where a value ends; else as written ("C:\logs\" ends at its quote)
    rf"\"{_KEYWORD}(?:[^\"\\\n]|\\[^\n]){{0,300}}\"(?=[\s,;)\]}}]|$)|\"[^\"\n]{{0,300}}\""
    rf"|(?<![\w])'{_KEYWORD}[^'\n]{{0,300}}'(?![\w])"  # 'quoted' (not the apostrophe of "can't")
    r"|“[^”\n]{0,300}”|「[^」\n]{0,300}」|‘[^’\n]{0,300}’"
)
_QUOTED_AS = rf"\1\2{WILDCARD}"
# Order matters: the longest, most specific shapes first, so a URL is masked whole before
# its digits would be masked one by one.
_MASKS = [
    r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>，。；）)\]]+",  # URL
    r"[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+",  # e-mail
    # the value of key=value, whole, when it holds a digit: "rhost=5.36.59.76.dsl.example.net"
    # is one value, not an address and some words; it ends at a separator or closing bracket
    # (Chinese ones too: "商品ID=3，库存扣减失败" keeps its words)
    r"(?<==)[^\s,;&=()\[\]{}，；。、（）【】]*\d[^\s,;&=()\[\]{}，；。、（）【】]*?"
    r"(?=[.:!?。：！？]?(?:[\s,;&()\[\]{}，；。、（）【】]|$))",
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",  # time
    r"(?<![A-Za-z0-9_])[a-fA-F]{8,}(?![A-Za-z0-9_])",  # hex id that happens to have no digit
    # month and weekday names: the words of dates written out ("Sun Jul  3 04:02:15 2005")
    r"(?<![A-Za-z])(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|January|February"
    r"|March|April|June|July|August|September|October|November|December"
    r"|Mon|Tue|Wed|Thu|Fri|Sat|Sun|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
    r"(?![A-Za-z])",
    # IPv6 in full or :: form (also catches hh:mm:ss, which is as variable)
    r"(?<![\w:])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)(?:[0-9A-Fa-f]{1,4}|:)(?:[0-9A-Fa-f]{0,4}:){1,7}"
    r"[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])",
    r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])",  # IPv4[:port]
    r"(?<![\w/.])(?:[A-Za-z]:)?(?:[/\\][\w.@%+~\-]+){2,}[/\\]?",  # path (two segments or more)
    # numbers with their unit (12ms, 3.5s, 10MB, 42%), ids and hashes (uuid, 0x1f, a1b2c3,
    # req-7f3a...): any ASCII word that contains a digit; CJK around it stays as it is.
    r"(?<![A-Za-z0-9_])[A-Za-z_\-]*\d[A-Za-z0-9_\-]*(?:\.\d[A-Za-z0-9_\-]*)*%?",
]
_WORD_MASK = re.compile("|".join(f"(?:{m})" for m in _MASKS))
# Without "@" or "://" in the word the URL and e-mail shapes cannot match; leaving them out
# saves the e-mail shape's backtracking over every position of every word.
_WORD_MASK_LOCAL = re.compile("|".join(f"(?:{m})" for m in _MASKS[2:]))
# A word made only of these characters and holding a digit is a variable as a whole
# (numbers with units, versions, uuids, hashes, IPs with ports, host-12): the common case,
# decided without the regex scan.
_PLAIN_VARIABLE = re.compile(r"[A-Za-z0-9_.:%+\-]+(?:,[A-Za-z0-9_.:%+\-]+)*")
_DIGIT = re.compile(r"\d")
# ...and the same shape holding a digit, not ending in punctuation ("10.0.0.1:80:" is not).
# A name with one digit (below) is not one of them: the lookahead fails at once on the
# usual value, which starts with a digit, so the common case stays one match.
_PLAIN_NUMERIC = re.compile(
    r"(?!(?![a-fA-F]{5,}\d)[A-Za-z]{2,}\d\Z)"
    r"[A-Za-z_.:%+\-]*+\d(?:[A-Za-z0-9_.:%+,\-]*[A-Za-z0-9_%])?"
)
# A name with one digit at its end (SOCKS5, IPv6, eth0, wl0, sda1) is not masked: the digit
# gives it at most ten values, so it is a constant more often than not (a protocol, an
# interface), and where it does vary Drain puts a wildcard there and the few-values split
# below decides, from the counts, whether it is a constant. Five hex letters and a digit
# ("fedcb3", "abcdef01"'s kin) are more likely a short hash than a name, and stay masked.
_NAME_WITH_DIGIT = re.compile(r"[(\[{]?(?![a-fA-F]{5,}\d)[A-Za-z]{2,}\d[,;:.)\]}]?")
_LEADING_PUNCT = "([{<"
_TRAILING_PUNCT = ",;:.)]}>!?"
# Brackets stay on the CJK run they enclose, so "[订单服务]" is one token like
# "[OrderService]" is (Drain keys its tree on the first token).
_TOKEN = re.compile(
    rf"[(\[{{]*[{_CJK}]+[)\]}}]*|[{_CJK_PUNCT}]"
    rf"|(?:[^\s{_CJK}{_CJK_PUNCT}(\[{{]|[(\[{{](?![(\[{{]*[{_CJK}]))+"
)
# Tokenising put spaces around CJK runs; for display, take out those between CJK text and
# CJK text or punctuation (a wildcard too), keep those beside Latin words ("连接 Redis 失败").
_ANY_CJK = f"{_CJK}{_CJK_PUNCT}"
_JOIN_CJK = re.compile(rf"(?<=[{_ANY_CJK}]) (?=[^\w\s]|[{_ANY_CJK}])|(?<=[^\w\s]) (?=[{_ANY_CJK}])")

# A value is often written in more than one word: a number and its unit apart ("5.2 KB",
# "3 sec"), a bound ("<1 sec"), a restatement in parentheses ("1190 bytes (1.16 KB)",
# "from 10.0.0.1 (host-1.example.com)", or empty: "from 10.0.0.2 ()").
# Joined into one `<*>` the same message has the same tokens whichever form a line took.
# This runs on each distinct masked text once (see `TemplateMiner.add_masked`), not per line.
_UNITS = "B|[KMGTP]i?B|bytes?|[mµun]s|s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?|days?"
_SIGNED_VALUE = re.compile(rf"(?<![^\s(\[{{=:,])[<>~≤≥]=?(?={re.escape(WILDCARD)})")
_VALUE_AND_UNIT = re.compile(rf"{re.escape(WILDCARD)} (?:{_UNITS})(?=[\s,;:.)\]}}]|$)")
_VALUE_AND_RESTATED = re.compile(rf"{re.escape(WILDCARD)} \((?:{re.escape(WILDCARD)})?\)")

# Drain's own defaults (depth 4, similarity 0.4, 100 children): what masking and the split of
# few-valued wildcards add around Drain is what makes one configuration fit every source.
DRAIN_DEPTH = 4
DRAIN_SIM_TH = 0.4
DRAIN_MAX_CHILDREN = 100
MAX_MESSAGE_CHARS = 1000
MAX_MESSAGE_WORDS = 100  # of a long line, masked (then cut to MAX_MESSAGE_CHARS)
MAX_CACHED = 200_000
# Drain compares a new message with every cluster of its leaf: messages that share no template
# (search terms, chat, prompts) make that quadratic, and a day of them never finished. Past this
# many clusters, a new shape is grouped by its length and first two words instead.
MAX_CLUSTERS = 2_000
MAX_CACHED_WORDS = 100_000
SPLIT_MAX_VALUES = 3
SPLIT_MIN_LINES = 2  # per value: a rare template's three lines may well show three users
# Words at one wildcard that go one-to-one with the words at another are parts of different
# messages ("failed to connect to redis" and "failed to decode response body"), not values:
# split up to this many of them. A route (`route`) is its own event: up to this many routes.
SPLIT_MAX_SHAPES = 20
SPLIT_MAX_ROUTES = 100


# A request written "GET /api/orders/7 ...": its path is the route it asked for, the event,
# not a value; only its segments holding a digit, a long hex run or an escape are (ids,
# hashes, versions), or 20 characters (a token, as log_redaction's TOKEN_SEGMENT), and its
# query. Masked whole as a path, every request read "GET <*>".
HTTP_METHODS = frozenset("GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH".split())
_VARIABLE_SEGMENT = re.compile(r"\d|[0-9a-fA-F]{16}|%|[^/]{20}")


def route(path: str) -> str:
    """A request's path with its values masked: "/api/orders/7?x=1" -> "/api/orders/<*>?<*>"."""
    path, query, _ = path.partition("?")
    segments = [WILDCARD if _VARIABLE_SEGMENT.search(s) else s for s in path.split("/")]
    return "/".join(segments) + (f"?{WILDCARD}" if query else "")


class Masker:
    """Masks messages, remembering the words that contain no digit (constants, mostly)."""

    def __init__(self) -> None:
        self._words: dict[str, str] = {}
        self._leads: set[str] = set()  # words seen that a secret follows ("password:")

    def __call__(self, message: str) -> str:
        if "'" in message or '"' in message or "“" in message or "「" in message or "‘" in message:
            if '\\"' in message and SECRET_HINT.search(message.lower()):
                # JSON inside a string ({\"password\":\"x\"}): its quotes, escaped, would
                # be read as quoted runs around the secret, which no later pass then sees.
                message = hide_secrets(message)
            message = _QUOTED.sub(_QUOTED_AS, message)
        known = self._words.get
        words = message.split()
        masked = [known(word) or self._new_word(word) for word in words]
        if len(words) > 1 and words[0] in HTTP_METHODS and words[1][:1] == "/":
            masked[1] = route(words[1])
        if self._leads and not self._leads.isdisjoint(words):
            hide = False
            for index, word in enumerate(words):
                if hide and AUTH_SCHEME.fullmatch(word) is None:
                    masked[index], hide = WILDCARD, False
                else:
                    hide = hide or word in self._leads
        return " ".join(masked)

    def _new_word(self, word: str) -> str:
        if _PLAIN_NUMERIC.fullmatch(word) is not None:
            return WILDCARD  # the common case, decided by one linear match
        if _NAME_WITH_DIGIT.fullmatch(word) is not None:
            return self._remember(word, word)
        if ("=" in word or ":" in word or "：" in word) and SECRET_HINT.search(word.lower()):
            masked = self._scan(word)
            hidden = hide_secrets(masked)
            if hidden != masked:
                return hidden  # not remembered: the secret's value varies
        if _DIGIT.search(word) is not None:
            return self._variable(word)  # not remembered: mostly unique values
        if SECRET_LEAD.search(word) is not None:
            self._leads.add(word)
        return self._remember(word, self._scan(word))

    def _remember(self, word: str, masked: str) -> str:
        if len(self._words) < MAX_CACHED_WORDS:
            self._words[word] = masked
        return masked

    @classmethod
    def _variable(cls, word: str) -> str:
        """A word with a digit in it; punctuation around it ("(42)", "10.0.0.1:80:") stays."""
        start = len(word) - len(word.lstrip(_LEADING_PUNCT))
        end = len(word.rstrip(_TRAILING_PUNCT))
        if start >= end or _PLAIN_VARIABLE.fullmatch(word, start, end) is None:
            return cls._scan(word)
        return f"{word[:start]}{WILDCARD}{word[end:]}"

    @staticmethod
    def _scan(word: str) -> str:
        if "@" in word or "://" in word:
            return _WORD_MASK.sub(WILDCARD, word)
        return _WORD_MASK_LOCAL.sub(WILDCARD, word)


def mask_line(message: str, masker: Masker) -> str:
    """What `TemplateMiner.add` masks: the message's first line, masked, bounded."""
    if "\n" not in message and len(message) <= MAX_MESSAGE_CHARS:
        return masker(message)
    # The part of a message that names its template: the first line's first words, masked,
    # bounded. Cut at a number of characters before masking, the cut moved with the width of
    # the values before it (an order id one digit longer), and one message's lines made as
    # many templates as its values had widths.
    first = message.split("\n", 1)[0][: MAX_MESSAGE_CHARS * 8]  # a line of few, long words
    masked = masker(" ".join(first.split(maxsplit=MAX_MESSAGE_WORDS)[:MAX_MESSAGE_WORDS]))
    if len(masked) <= MAX_MESSAGE_CHARS:
        return masked
    # Not a wildcard cut in two ("<*"): a partial one is no word of the line.
    return masked[:MAX_MESSAGE_CHARS].removesuffix(WILDCARD[:2]).removesuffix(WILDCARD[:1]).rstrip()


def tokens(masked: str) -> list[str]:
    """Tokens for clustering: whitespace-separated words, CJK runs and CJK punctuation apart,
    a value written in several words (`<*> KB`, `<<*> sec`, `<*> (<*>)`, `<*> ()`) as one."""
    if WILDCARD in masked:
        masked = _SIGNED_VALUE.sub("", masked)
        masked = _VALUE_AND_UNIT.sub(WILDCARD, masked)
        masked = _VALUE_AND_RESTATED.sub(WILDCARD, masked)
    return _TOKEN.findall(masked)


def display(template: str) -> str:
    """A template as people read it: no spaces that tokenising put between CJK tokens."""
    return _JOIN_CJK.sub("", template)


def template_id(level: str, template: str) -> str:
    """A stable id of a (level, template) pair: the same on every run and every machine."""
    return "t" + hashlib.blake2b(f"{level}\x00{template}".encode(), digest_size=5).hexdigest()


def _constant_words(values: Counter[str]) -> bool:
    """Whether the few words seen at one wildcard position can be constants: plain words, or
    key=value words whose keys differ (`mCount=<*>` and `record.mDone=false`, `(uid=<*>)`
    and `LOGIN(uid=<*>)` name different things). A masked value without a key is a value;
    one key with different values (`rhost=<*>`, `rhost=db.example.org`) is a variable."""
    if not any(WILDCARD in value for value in values):
        return True
    if all(value[:1] == "/" for value in values):  # routes (`route`): each is its own event
        return True
    keys = {value.split("=", 1)[0] for value in values if "=" in value}
    return len(keys) == len(values)


def _split(
    template: list[str],
    shapes: list[int],
    words: dict[int, list[str]],
    lines: list[int],
    *,
    whole: bool = True,
) -> Iterator[tuple[int, list[str]]]:
    """Each shape of one Drain cluster (``words``: its tokens, those of the template's length)
    and its template: the cluster's, its wildcards taken back as constants where they hold
    words of the message (docs/briefing.md, 6.), split by them, and each part split again by
    the words of its messages and its routes. (A few words at a wildcard are judged over the
    ``whole`` cluster only: in a part, a user name's three values would be taken for words.)"""
    values = {
        position: [words[shape][position] for shape in shapes]
        for position, token in enumerate(template)
        if token == DRAIN_WILDCARD
    }
    seen: dict[int, Counter[str]] = {}
    for position, found in values.items():
        seen[position] = Counter()
        for shape, word in zip(shapes, found, strict=True):
            seen[position][word] += lines[shape]

    def few(position: int, most: int) -> bool:
        counted = seen[position]
        return (
            2 <= len(counted) <= most
            and _constant_words(counted)
            and sum(counted.values()) >= SPLIT_MIN_LINES * len(counted)
        )

    def pairs(p: int, q: int) -> int:
        return len(set(zip(values[p], values[q], strict=True)))

    routes = {p for p, counted in seen.items() if all(word[:1] == "/" for word in counted)}
    split_at = {p for p in routes if few(p, SPLIT_MAX_ROUTES)}
    if whole:
        split_at.update(p for p in seen if few(p, SPLIT_MAX_VALUES))
    # Words that go one-to-one with the words at the wildcard beside them are a phrase of the
    # message's own ("connect to", "decode response"): the cluster is split by them, and by
    # each word that goes with them (one per message). Apart, they are values that go
    # together (a deployment and its namespace, a user and their team), not split.
    shaped = [p for p in seen if few(p, SPLIT_MAX_SHAPES)]
    for p in shaped:
        if any(abs(q - p) == 1 and pairs(p, q) == len(seen[p]) == len(seen[q]) for q in shaped):
            split_at.add(p)
            split_at.update(
                q
                for q in seen
                if q != p and _constant_words(seen[q]) and pairs(p, q) == len(seen[p])
            )
    if not split_at:
        for shape in shapes:
            yield shape, template
        return
    at = sorted(split_at)
    parts: dict[tuple[str, ...], list[int]] = {}
    for index, shape in enumerate(shapes):
        parts.setdefault(tuple(values[p][index] for p in at), []).append(shape)
    for key, members in parts.items():
        own = list(template)
        for position, word in zip(at, key, strict=True):
            own[position] = word
        yield from _split(own, members, words, lines, whole=False)


class TemplateMiner:
    """Assigns each message a *shape* (its masked text at its level); templates are read at
    the end. Each level has a Drain of its own: a warning's words never become wildcards of an
    error's template (docs/briefing.md, "Level is part of the key"), as one nginx [warn] line
    made of an [error] template's. (A level token in one Drain counted as a word alike in
    every comparison, and merged messages of the same level that share too few words.)

    Drain merges short messages differing in one word ("Cache hit for key <*>", "Cache miss
    for key <*>") under a wildcard. A wildcard Drain introduced with at most `SPLIT_MAX_VALUES`
    words, each over `SPLIT_MIN_LINES` lines, is a constant and splits the cluster; a real
    variable (user names, table names) shows more values, or about as many as lines. Words
    that go one-to-one with another wildcard's, and routes, split it too (`_split`)."""

    def __init__(self, *, max_shapes: int = MAX_CACHED, max_clusters: int = MAX_CLUSTERS) -> None:
        self._max_shapes, self._max_clusters = max_shapes, max_clusters
        self._drains: dict[str, Drain] = {}  # by level
        # A cluster's id here (its index + 1) -> its level's Drain and its id there.
        self._clusters: list[tuple[Drain, int]] = []
        self._cluster_of: dict[tuple[str, int], int] = {}
        self._mask = Masker()
        self._shape_of: dict[str, dict[str, int]] = {}  # level -> masked text -> shape
        self._shape_text: list[str | None] = []  # None: overflow shape, the whole cluster
        self._shape_cluster: list[int] = []
        self._lines: list[int] = []  # lines per shape
        self._overflow: dict[int, int] = {}  # cluster id -> its overflow shape
        # Past max_clusters: (length, first two words) -> a cluster id below 0, and its tokens.
        self._coarse: dict[tuple[int | str, ...], int] = {}
        self._coarse_tokens: dict[int, list[str]] = {}
        self._drain_keys: set[tuple[int | str, ...]] = set()  # (length, first words) seen by Drain
        self._templates: list[str] | None = None

    def add(self, message: str, level: str = "") -> int:
        """The shape id of a message (its first line, masked) at ``level``."""
        return self.add_masked(mask_line(message, self._mask), level)

    def add_masked(self, masked: str, level: str = "") -> int:
        """The shape id of a message masked already (by `mask_line`, e.g. in another process)."""
        self._templates = None  # counts change what is split: resolve again when asked
        shapes = self._shape_of.get(level)
        if shapes is None:
            shapes = self._shape_of[level] = {}
        found = shapes.get(masked)
        if found is not None:
            self._lines[found] += 1
            return found
        # Drain cannot cluster an empty token list; one placeholder keeps such lines together.
        words = tokens(masked) or ["<empty>"]
        key: tuple[int | str, ...] = (level, len(words), *words[:2])
        drain = self._drains.get(level)
        if drain is None:
            drain = self._drains[level] = _drain()
        if len(self._clusters) < self._max_clusters:
            self._drain_keys.add(key)
            cluster_id = self._cluster(drain, level, drain.add_log_message(" ".join(words))[0])
        else:
            # A new value of a template Drain knows (a user name the masks leave) still joins
            # it, looked up only where a message of its length and first words went before.
            known = drain.match(" ".join(words)) if key in self._drain_keys else None
            cluster_id = (
                self._cluster(drain, level, known) if known else self._coarse_cluster(level, words)
            )
        if len(self._shape_text) >= self._max_shapes:  # memory bound: later shapes share one
            shape = self._overflow.get(cluster_id)
            if shape is None:
                shape = self._overflow[cluster_id] = self._new_shape(None, cluster_id)
        else:
            shape = shapes[masked] = self._new_shape(masked, cluster_id)
        self._lines[shape] += 1
        return shape

    def _cluster(self, drain: Drain, level: str, cluster: LogCluster) -> int:
        """Our id of a cluster of ``level``'s Drain."""
        found = self._cluster_of.get((level, cluster.cluster_id))
        if found is None:
            self._clusters.append((drain, cluster.cluster_id))
            found = self._cluster_of[level, cluster.cluster_id] = len(self._clusters)
        return found

    def _coarse_cluster(self, level: str, words: list[str]) -> int:
        lead = words[:2]
        found = self._coarse.get((level, len(words), *lead))
        if found is None and len(self._coarse) >= self._max_shapes:  # memory bound: length only
            lead = []
            found = self._coarse.get((level, len(words)))
        if found is None:
            found = self._coarse[(level, len(words), *lead)] = -1 - len(self._coarse)
            self._coarse_tokens[found] = lead + [DRAIN_WILDCARD] * (len(words) - len(lead))
        return found

    def _new_shape(self, text: str | None, cluster_id: int) -> int:
        self._shape_text.append(text)
        self._shape_cluster.append(cluster_id)
        self._lines.append(0)
        return len(self._shape_text) - 1

    def template(self, shape: int) -> str:
        """The final template of a shape, as people read it (read after the last line)."""
        if self._templates is None:
            self._templates = self._resolve()
        return self._templates[shape]

    def _resolve(self) -> list[str]:
        members: dict[int, list[int]] = {}
        for shape, cluster_id in enumerate(self._shape_cluster):
            members.setdefault(cluster_id, []).append(shape)
        resolved = [""] * len(self._shape_text)
        for cluster_id, shapes in members.items():
            coarse = self._coarse_tokens.get(cluster_id)
            if coarse is None:
                drain, its_id = self._clusters[cluster_id - 1]
                coarse = drain.id_to_cluster[its_id].log_template_tokens
            template = list(coarse)
            words: dict[int, list[str]] = {}
            for shape in shapes:
                own = self._shape_tokens(shape)
                if own is not None and len(own) == len(template):
                    words[shape] = own
                else:  # another length (a cut line, a coarse group): the cluster's template
                    resolved[shape] = display(" ".join(template).replace(DRAIN_WILDCARD, WILDCARD))
            for shape, tokens_ in _split(template, list(words), words, self._lines):
                resolved[shape] = display(" ".join(tokens_).replace(DRAIN_WILDCARD, WILDCARD))
        return resolved

    def _shape_tokens(self, shape: int) -> list[str] | None:
        text = self._shape_text[shape]
        return None if text is None else tokens(text) or ["<empty>"]


def _drain() -> Drain:
    return Drain(
        depth=DRAIN_DEPTH,
        sim_th=DRAIN_SIM_TH,
        max_children=DRAIN_MAX_CHILDREN,
        param_str=DRAIN_WILDCARD,
        parametrize_numeric_tokens=True,
    )
