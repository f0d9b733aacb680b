"""Which of our tools fits a request: BM25 over each tool's name, description and arguments.

A desktop agent holds the full tool list; a smaller model does better when it is handed the few
tools a request needs (`find_tools`). No model and no network: tokens are English words (names
split on `_` and camel case, a light suffix strip; a misspelt word also reads as the tool words
one edit away, a shortened one as those it begins) and the characters and character bigrams of
Chinese runs (spoken forms read as written ones: 啥 → 什么), and the product's bilingual word map
and its synonyms grouped by meaning (ambient/domain/tool_words.py, tool_synonyms.py) add the
tool words an everyday request implies. A quoted value is left out and one after a colon counts
little. Tools that read the same thing (list_tasks, get_task) come up together. Pure
functions; the MCP tool and `bench.find_tools` feed it the server's list.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ambient.domain.tool_synonyms import implied, written
from ambient.domain.tool_words import STOPWORDS, TOOL_WORDS, WORDS

# BM25's usual constants (a sweep on the tuning split moved recall@1 by one case at most):
K1 = 1.2
B = 0.75
# A word of the tool's name says more than one of its description or arguments (on the tuning
# split 3 and 4 tie, 2 loses a case; weighting descriptions over arguments lost cases too).
NAME_WEIGHT = 3
# ...and adds its IDF over the names alone, times this (tune split: recall@3 0.987 → 0.996 at
# 0.5; 1 gives one more first place but loses a third one, 2 and 3 lose a case at 5).
NAME_BONUS = 0.5
# A tool's everyday words (tool_words.TOOL_WORDS): 2 on the tuning split lifts recall@1 from
# 0.870 to 0.893 over 1 (3 ties 2); recall@5 is 1.000 at all three.
TOOL_WORDS_WEIGHT = 2
# A word of five letters or more that no tool uses is read as the tool words one edit away
# ("bitcon" → bitcoin, "notifcations" → notification); shorter words have too many neighbours.
TYPO_MIN = 5
# ...and one of four or more as the tool words it begins ("regen", "perms", "config"). On the
# tune split: recall@1 0.827 → 0.832, 5 ties 4.
PREFIX_MIN = 4
# Reading tools, by verb: list_X and get_X/read_X read the same thing, and a request for one
# ("what's the bitcoin watch at" — the list or the one?) is often worded like the other.
READ_VERBS = ("list", "get", "read")
# The words after a colon are the value ("回他一句：收到，马上处理"), but sometimes say what is
# wanted ("the bus statistics: how many messages per participant?"): they count at this weight.
VALUE_WEIGHT = 0.3

_RUN = re.compile(r"[A-Za-z0-9]+|[\u3400-\u9fff]+")
# An id's random part ("7kq2m0ab" of cls-7kq2m0ab, a hash): letters and digits mixed, six or
# more. It names a thing, not a tool, and would match the tool whose argument example it is.
_ID = re.compile(r"(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{6,}", re.IGNORECASE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# "pause the bitcoin watch and show me the HN monitor": each clause asks for its own tool.
# "在讨论里搜一下“超时”": a quoted span is the value the person wants used (what to search for,
# what to post), not words about which tool; left in, "超时" would pull search_logs first.
# A single-quoted span counts only between a space (or the start) and a space, punctuation or
# the end, so an apostrophe (don't, today's) never opens one: "look for 'kubernetes' instead".
_QUOTED = re.compile(
    r'“[^”]*”|「[^」]*」|『[^』]*』|"[^"]*"|‘[^’]*’|(?:(?<=\s)|^)\'[^\'\n]+\'(?=[\s,.;:!?，。]|$)'
)
# "回他一句：收到，马上处理", "answer in that thread: looks good to me": after a colon comes the
# value (what to post, the alert to score), not words about which tool. Not a time (10:30), a
# URL (https://), nor in a request of several lines (pasted YAML: "kind: Deployment").
_SAID = re.compile(r"：|(?<![\d\s/]):(?=[ \t]|$)")
# An id names a thing, and its words are the thing's, not the request's: the words of
# "threshold-watch/dev/disk-usage" pulled the metric tools into "… disk-usage keeps waking me
# up, shut it up" (pause_task). Each id reads as the kind of thing it names (a UUID as nothing:
# a topic's and a logset's look the same; a cluster id stays: its "cls" is in the examples of
# every tool that takes one).
_NAMED = (
    (
        re.compile(r"\b(?:web-monitor|threshold-watch|reminder|news-digest|daily-briefing)/\S+"),
        "task",
    ),
    (re.compile(r"\bremediation/[0-9a-f]{6,}\b"), "remediation"),
    (re.compile(r"\bdisc_[a-z0-9_]+"), "discussion"),
    (re.compile(r"\bnp-[a-z0-9]+\b"), "node pool"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), ""),
)
# A question about what is ("what watches do I have?", "有没有报警？") wants a tool that reads,
# not one that changes: the tools named for reading count QUESTION_READS times as much. A
# polite command ("can you pause…", "帮我…") is no such question.
_QUESTION = re.compile(
    r"^\s*(?:what|which|how many|how much|who|whom|when|where|is|are|was|were|did|does|"
    r"do i|do we|have i|have we|has|any|anything)\b|[?？]\s*$|有没有|是不是|吗[?？]?\s*$|几个|多少",
    re.IGNORECASE,
)
_POLITE = re.compile(
    r"\b(?:can|could|would|will) you\b|\bplease\b|帮我|帮忙|给我|请|麻烦", re.IGNORECASE
)
# A command to show what is ("show me all my threshold watches", "列个表", "给我看看") asks to
# read as a question does, however politely put.
_SHOW = re.compile(
    r"^\s*(?:(?:can|could|would) you\s+|please\s+)?(?:show|list|display)\b"
    r"|给我看看|列个表|列一下|列出来",
    re.IGNORECASE,
)
READING = frozenset({"list", "get", "read", "search", "whoami", "stats", "status"})
QUESTION_READS = 1.5
_CLAUSES = re.compile(r"[,，。;；？?!！\n]|\band\b|\bthen\b|然后|并且|并|同时")


def _shape(word: str) -> str:
    """c/v per letter (y is a vowel after a consonant), as Porter's stemmer reads a word."""
    out = ""
    for i, ch in enumerate(word):
        vowel = ch in "aeiou" or (ch == "y" and i > 0 and out[-1] == "c")
        out += "v" if vowel else "c"
    return out


def _measure(word: str) -> int:
    """Porter's m: how many vowel-consonant sequences the word has."""
    return _shape(word).replace("cc", "c").count("vc") if word else 0


def _short(word: str) -> bool:
    """Ends consonant-vowel-consonant, the last not w/x/y (hop, stat, clos): a one-syllable
    stem whose final e is not silent ("state" is not "stats", "close" is not "clos")."""
    return len(word) >= 3 and _shape(word)[-3:] == "cvc" and word[-1] not in "wxy"


def _stem(word: str) -> str:
    """pause/pauses/paused/pausing → paus, approve/approved → approv, close/closed → close:
    plural and verb endings and a silent final e, by Porter's rules for them (steps 1a, 1b
    and 5a), enough for tool words; a full stemmer would over-merge them."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if suffix == "ies":
                return word + "y"
            if suffix != "s" and _measure(word) == 1 and _short(word):
                word += "e"
            break
    if word.endswith("e") and len(word) > 3:
        stem = word[:-1]
        if _measure(stem) > 1 or (_measure(stem) == 1 and not _short(stem)):
            return stem
    return word


def _terms(text: str) -> Iterator[tuple[str, str]]:
    """Each term of the text with the words it was read from (for `why`)."""
    for run in _RUN.findall(text):
        if run[0] >= "\u3400":
            # Single characters too: spoken Chinese often asks with one (删了吧, 读给我听, 去修),
            # and a bigram across it and its neighbour (给我, 去修) is no word of the tool.
            yield from ((ch, ch) for ch in run)
            for i in range(len(run) - 1):
                yield run[i : i + 2], run[i : i + 2]
            continue
        if _ID.fullmatch(run):
            continue
        for word in _CAMEL.sub(" ", run).lower().split():
            # "whats", "hows": a stopword typed without its apostrophe is still one.
            if len(word) > 1 and word not in STOPWORDS and (stem := _stem(word)) not in STOPWORDS:
                yield stem, word


def tokens(text: str) -> list[str]:
    """English words (split, stemmed, no stopwords), CJK characters and bigrams."""
    return [term for term, _ in _terms(text)]


@dataclass(frozen=True)
class ToolDoc:
    """What a client sees of one tool: the text the index reads."""

    name: str
    description: str
    input_schema: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    tool: ToolDoc
    score: float
    why: list[str]


def _schema_text(schema: Any) -> Iterator[str]:
    """Every property name and description at any depth (nested configs, $defs), and the
    string values of an enum ("paused" of list_tasks' state)."""
    if isinstance(schema, dict):
        for name, prop in (schema.get("properties") or {}).items():
            yield name
            if isinstance(prop, dict) and isinstance(prop.get("description"), str):
                yield prop["description"]
        if isinstance(schema.get("enum"), list):
            yield from (v for v in schema["enum"] if isinstance(v, str))
        for value in schema.values():
            yield from _schema_text(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _schema_text(item)


def _doc_terms(tool: ToolDoc) -> Counter[str]:
    terms = Counter(tokens(tool.name.replace("_", " ")) * NAME_WEIGHT)
    terms.update(tokens(TOOL_WORDS.get(tool.name, "")) * TOOL_WORDS_WEIGHT)
    terms.update(tokens(tool.description))
    terms.update(t for text in _schema_text(tool.input_schema) for t in tokens(text))
    return terms


# The particle of a phrasal verb: "shut up", "roll back", "kick off" are also said with what
# they act on in between ("shut it up", "roll that back", "kick the check off").
PARTICLES = frozenset({"up", "down", "off", "on", "out", "back", "over", "away"})
# How many words may stand between the verb and its particle.
PARTICLE_GAP = 2


def _split_phrase(phrase: str) -> re.Pattern[str] | None:
    """A verb and its particle ("shut up") → a pattern that also reads "shut it up" and
    "shut the watch up" (at most PARTICLE_GAP words between); None for any other phrase."""
    words = phrase.split()
    if len(words) != 2 or words[1] not in PARTICLES or not phrase.isascii():
        return None
    verb, particle = (re.escape(w) for w in words)
    return re.compile(rf"\b{verb}(?:\s+[a-z0-9'-]+){{1,{PARTICLE_GAP}}}\s+{particle}\b")


@dataclass(frozen=True)
class _Entry:
    """A map key with its stem when it is one English word (else matched as a substring, or
    as a verb and its particle apart), and the terms it implies, read once."""

    phrase: str
    stem: str | None
    apart: re.Pattern[str] | None
    tool_words: list[tuple[str, str]]

    def said(self, lowered: str, words: set[str]) -> bool:
        if self.stem is not None:
            return self.stem in words
        return self.phrase in lowered or bool(self.apart and self.apart.search(lowered))


def _map_entry(phrase: str, tool_words: str) -> _Entry:
    one_word = phrase.isalnum() and phrase.isascii()
    return _Entry(
        phrase,
        _stem(phrase) if one_word else None,
        None if one_word else _split_phrase(phrase),
        list(_terms(tool_words)),
    )


# The word map and the synonyms grouped by meaning (tool_synonyms.py), read once.
_MAP = [_map_entry(phrase, tool_words) for phrase, tool_words in implied(WORDS).items()]
# A word the map reads means what the map says: it is not a misspelling of a tool word
# ("stale" is not "scale", "cycle" is not "close").
_MAPPED = frozenset(entry.stem for entry in _MAP if entry.stem)


def query_terms(request: str) -> dict[str, str]:
    """Each term of the request → how it came in (itself, or "暂停→pause" via the word map)."""
    terms: dict[str, str] = {}
    for term, word in _terms(request):
        terms.setdefault(term, word)
    lowered = request.lower()
    # One English word matches its other forms too ("notifications" for "notification").
    words = {_stem(w) for w in re.findall(r"[a-z0-9]+", lowered)}
    for entry in _MAP:
        if entry.said(lowered, words):
            for term, word in entry.tool_words:
                terms.setdefault(term, f"{entry.phrase}→{word}")
    return terms


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _reads(name: str) -> bool:
    """A tool named for reading: list_…, get_…, read_…, search_…, whoami, …_stats, …_status."""
    return not READING.isdisjoint(name.split("_"))


def _family(name: str) -> str | None:
    """get_task and list_tasks → "task": the thing a reading tool reads (None for others)."""
    verb, _, thing = name.partition("_")
    return thing.removesuffix("s") if verb in READ_VERBS and thing else None


class ToolIndex:
    """BM25 over a fixed tool list, built once; `search` ranks it for one request."""

    def __init__(self, tools: Iterable[ToolDoc]) -> None:
        self.tools = list(tools)
        self._terms = [_doc_terms(t) for t in self.tools]
        # Every term and its one-letter deletions → the term: a word one edit (a letter added,
        # dropped, changed, or two swapped) from a term shares a key with it (symmetric delete).
        self._near: dict[str, set[str]] = {}
        for term in {t for terms in self._terms for t in terms}:
            if term.isascii() and len(term) >= TYPO_MIN - 1:
                for key in (term, *_deletions(term)):
                    self._near.setdefault(key, set()).add(term)
        self._ascii_terms = sorted({t for terms in self._terms for t in terms if t.isascii()})
        self._families = {t.name: f for t in self.tools if (f := _family(t.name))}
        # The tools named for reading, by position: what a question favours.
        self._reading = frozenset(i for i, t in enumerate(self.tools) if _reads(t.name))
        lengths = [sum(terms.values()) for terms in self._terms]
        self._average = (sum(lengths) / len(lengths)) if lengths else 0.0
        frequency = Counter(term for terms in self._terms for term in terms)
        n = len(self.tools)
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        # A word of a tool's name also counts by how few names hold it ("inbox" names one tool,
        # though many tools' arguments mention an inbox): the mentions must not drown the name.
        names = [set(tokens(t.name.replace("_", " "))) for t in self.tools]
        named = Counter(term for terms in names for term in terms)
        # Each term → (tool, its BM25 share) for the tools that hold it: a request's score is
        # then a sum over its own few terms' postings, not a pass over every tool's terms.
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for i, (terms, length) in enumerate(zip(self._terms, lengths, strict=True)):
            norm = K1 * (1 - B + B * length / self._average)
            for term, count in terms.items():
                share = self._idf[term] * count * (K1 + 1) / (count + norm)
                if term in names[i]:
                    held = named[term]
                    share += NAME_BONUS * math.log(1 + (n - held + 0.5) / (held + 0.5))
                self._postings.setdefault(term, []).append((i, share))

    def search(self, request: str, limit: int = 5) -> list[Hit]:
        """The best ``limit`` tools for the request, best first; none when no term matches.

        A request of several clauses first gets each clause's best tool (a two-step request
        needs both) and the whole request's best, in the whole request's order, then the rest;
        a reading tool brings its siblings right after it."""
        request = written(request)
        for shape, kind in _NAMED:
            request = shape.sub(f" {kind} ", request)
        unquoted = _QUOTED.sub(" ", request)
        # A request that is all quotes ("“pause”") still means its words.
        request = unquoted if tokens(unquoted) else request
        request, value = self._asked(request)
        wanted, weights = self._read(request), {}
        for term, source in self._read(value).items():
            if term not in wanted:
                wanted[term], weights[term] = source, VALUE_WEIGHT
        asks = bool(_QUESTION.search(request)) and not _POLITE.search(request)
        asks = asks or bool(_SHOW.search(request))
        ranked = self._rank(wanted, weights, favoured=self._reading if asks else frozenset())
        clauses = [c for c in _CLAUSES.split(request) if c.strip()]
        if len(clauses) < 2:
            return self._with_family(ranked)[:limit]
        by_name = {h.tool.name: h for h in ranked}
        first: list[Hit] = []
        for clause in clauses:
            best = self._rank(self._read(clause))[:1]
            if best and best[0].tool.name in by_name and by_name[best[0].tool.name] not in first:
                first.append(by_name[best[0].tool.name])
        if ranked and ranked[0] not in first:
            first.append(ranked[0])
        # Every clause's best is kept in the top, in the whole request's order: a clause that
        # only gives context ("payments 延迟告警，让系统自己去修") must not outrank the tool the
        # whole request scores best.
        first.sort(key=lambda h: (-h.score, h.tool.name))
        return self._with_family(first + [h for h in ranked if h not in first])[:limit]

    @staticmethod
    def _asked(request: str) -> tuple[str, str]:
        """The words that ask for a tool, and the value after a colon (what to post, the
        alert to score). Pasted text of several lines (YAML) is all asking."""
        if "\n" in request.strip():
            return request, ""
        asked, *value = _SAID.split(request, maxsplit=1)
        return (asked, value[0]) if value and tokens(asked) else (request, "")

    def _read(self, request: str) -> dict[str, str]:
        """The request's terms; a word no tool uses also brings the tool words one edit away
        and those it begins. A number is a value (a threshold, a count), never a typo."""
        terms = query_terms(request)
        for term, source in list(terms.items()):
            if term in self._idf or not term.isascii() or term.isdigit() or term in _MAPPED:
                continue
            # A typo is judged on the word as typed too: "delte" is stemmed to "delt", too
            # short to correct, though "delte" is one swap from "delete".
            for probe in dict.fromkeys((term, source) if source.isalpha() else (term,)):
                if len(probe) < TYPO_MIN:
                    continue
                for key in (probe, *_deletions(probe)):
                    for known in sorted(self._near.get(key, ())):
                        terms.setdefault(known, f"{source}~{known}")
            if len(term) >= PREFIX_MIN:
                for known in self._ascii_terms:
                    if known.startswith(term):
                        terms.setdefault(known, f"{source}~{known}")
        return terms

    def _with_family(self, ranked: list[Hit]) -> list[Hit]:
        """Each reading tool followed at once by its matched siblings that read the same thing
        (list_tasks, then get_task): which of the two a request wants is where word scores
        are least sure, and a client's model tells them apart easily once both are offered."""
        placed: dict[str, Hit] = {}
        for hit in ranked:
            family = self._families.get(hit.tool.name)
            siblings = [h for h in ranked if family and self._families.get(h.tool.name) == family]
            for h in [hit, *siblings]:
                placed.setdefault(h.tool.name, h)
        return list(placed.values())

    def _rank(
        self,
        wanted: dict[str, str],
        weights: dict[str, float] | None = None,
        favoured: frozenset[int] = frozenset(),
    ) -> list[Hit]:
        """Tools by BM25 over the wanted terms (a ``favoured`` one's x QUESTION_READS)."""
        scores: dict[int, float] = {}
        whys: dict[int, list[str]] = {}
        for term, source in wanted.items():
            weight = weights.get(term, 1.0) if weights else 1.0
            for i, share in self._postings.get(term, ()):
                scores[i] = scores.get(i, 0.0) + share * weight
                whys.setdefault(i, []).append(source)
        for i in favoured & scores.keys():
            scores[i] *= QUESTION_READS
        hits = [Hit(tool=self.tools[i], score=score, why=whys[i]) for i, score in scores.items()]
        hits.sort(key=lambda h: (-h.score, h.tool.name))
        return hits
