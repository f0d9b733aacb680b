"""Page text for web watches: a lexbor fast path for plain pages, trafilatura for the rest.

trafilatura costs ~2–3 ms of CPU per 4 KB page, most of it in its cascade of heuristics
(boilerplate xpaths, readability/jusText comparison, baseline rescue). A page made only of
headings, paragraphs and preformatted blocks, with nothing marked as chrome, has no boilerplate
for those heuristics to remove, so its text is the text of its blocks, one block a line. Such a
page is read by lexbor alone (~0.15 ms, bench/extract.py); any page the rules cannot vouch for
goes to trafilatura as before. The rules are deliberately narrow: on a plain page both paths
must give the same normalised lines, or switching path would look like a page change to a watch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from importlib.metadata import version
from itertools import pairwise
from typing import Any, NamedTuple

from selectolax.lexbor import LexborHTMLParser, LexborNode

# Watches store beside a page's hash the tag of the path that read its text: another tag means
# the rules changed, not the page. Each path has its own, so a release that changes one path's
# rules starts anew only the pages that path reads (the others' changes are told as before).
# trafilatura's own rules decide every non-plain page, so its version is part of that tag.
PAGE_EXTRACTOR = f"x7-t{version('trafilatura')}"  # a page (fast path, trafilatura), plain text
SELECTOR_EXTRACTOR = "s9"  # a CSS selector's matches
JSON_EXTRACTOR = "j8"  # a JSON answer read without a selector
FEED_EXTRACTOR = "f3"  # an Atom or RSS feed read without a selector
# The tag each path's text had in the release before, where its rules read the text the same:
# a page that hides nothing from its reader (x7 takes out what it hides) is compared with its
# text of that release, its change at the upgrade told. A selector's match (s9) is read
# otherwise wherever its source breaks a line or it holds an image, a word break, an empty
# inline element (s8 split a line there) or another match (read twice), a feed (f3) at an
# image, a word break, an empty element (f2 put a space): not told without reading each
# twice, so they start anew; so does a JSON answer (j7 read it pretty-printed).
EARLIER = {PAGE_EXTRACTOR: f"x6-t{version('trafilatura')}"}
# A fetched page whose text cannot be read: its check's stored error starts so (then why).
UNREADABLE = "cannot read the page's text: "

# Never text: code, styling, embedded documents, and the head.
DROPPED = ["head", "script", "style", "noscript", "template", "svg", "iframe"]
DROPPED_ELEMENTS = ", ".join(DROPPED)
# Never text inside a selector's match: the same, but an SVG's drawn text (a badge, a chart's
# labels) is read; what it does not draw (its scripts, styles, definitions, title and
# description, metadata, and the symbols, clip paths and masks other elements use) is not.
NOT_DRAWN = ["defs", "title", "desc", "metadata", "symbol", "clipPath", "mask"]
UNSEEN = ", ".join([tag for tag in DROPPED if tag != "svg"] + [f"svg {t}" for t in NOT_DRAWN])

# Landmarks of page chrome (menus, banners, footers, forms, dialogs such as cookie banners).
LANDMARK_TAGS = frozenset({"nav", "header", "footer", "aside", "menu", "form", "dialog"})
LANDMARK_ROLES = frozenset(
    "navigation banner contentinfo complementary search menu menubar dialog alertdialog".split()
)
# class/id words that mark chrome, or that trafilatura reads to drop a part or to pick the main
# container (its xpaths.py vocabulary, widened): if one appears, only trafilatura can say which
# text it keeps. Matched as case-insensitive substrings, as trafilatura does ("sidebar" ⊃ "bar").
CHROME_WORDS = re.compile(
    r"nav|menu|bar|header|footer|banner|crumb|button|cookie|consent|modal|popup|overlay"
    r"|comment|reply|share|shar|social|viral|related|elated|newsletter|subscri|syndication"
    r"|tag|author|byline|meta|advert|sponsor|promo|outbrain|taboola|criteo|paid|widget|embed"
    r"|premium|paywall|hidden|hide|noprint|message|rating|timestamp|user|icon|slide|viewport"
    r"|option|expand|obfuscated|blurred|teaser|caption|akismet|infinite"
    # an "ad" word on its own (ad, ads, ad-top, top_ad), not "read" or "header"
    r"|(?:^|[\s_-])ads?(?:$|[\s_-])"
    # main-container words: trafilatura keeps only the first such container
    r"|content|article|entry|post|story|main|body|text|cell|primary|column|field|single",
    re.IGNORECASE,
)
# Attributes trafilatura treats as "hidden, drop it"; lexbor would read the text.
HIDING_ATTRIBUTES = ("hidden", "aria-hidden", "style")
TELLING_ATTRIBUTES = ",".join(f"[{name}]" for name in ("role", "class", "id", *HIDING_ATTRIBUTES))

# Blocks that hold text, one line each (a <br> inside also breaks the line, as in trafilatura).
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
TEXT_BLOCKS = HEADINGS | {"p", "pre"}
# Containers of blocks; text directly inside one is "wild text" trafilatura may drop.
CONTAINERS = frozenset({"body", "article", "main", "section", "div"})
# Phrasing elements whose text stays on its block's line (each checked against trafilatura).
# Left out on purpose: links (trafilatura drops link-dense blocks by a length-dependent rule the
# fast path does not copy), <time> and <q> (trafilatura drops their text).
INLINE = [
    "b", "strong", "i", "em", "u", "s", "small", "mark", "sub", "sup", "code", "kbd",
    "samp", "var", "abbr", "cite", "dfn", "span", "bdi", "bdo",
]  # fmt: skip
INLINE_TAGS = frozenset(INLINE)
VOID = frozenset({"br", "hr"})
# What stays on its line in a selector's match and a feed entry (no trafilatura to agree with
# there): links, times and quotes too ("下午发生<a>数据库</a>故障" is one line), images and word
# breaks ("数据<wbr>库故障"), ruby and its annotation ("漢(kan)").
SELECTED_INLINE = INLINE_TAGS | {
    "a", "time", "q", "font", "del", "ins", "label", "wbr", "img", "big", "tt", "nobr", "data",
    "button", "ruby", "rt", "rp",
}  # fmt: skip
ALLOWED = TEXT_BLOCKS | CONTAINERS | VOID | INLINE_TAGS

# trafilatura's MIN_DUPLICATE_LENGTH: longer repeated blocks are dropped as duplicates.
REPEAT_CHARS = 50


# Bodies declared as text; another or none is sniffed for the control bytes that mark a file
# of bytes (WHATWG MIME Sniffing's binary data bytes): an image, an archive, a PDF read as text
# was a "change" of garbage sent to people. A text file a bucket serves as bytes is still read.
TEXT_MEDIA = re.compile(r"text/|[^;]*(?:html|xml|json|javascript)")
BINARY_BYTES = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


class NoTextError(ValueError):
    """The page, or its selector, gives nothing to watch."""


class Extracted(NamedTuple):
    text: str
    extractor: str  # the tag of the path that read it
    # The tag the release before read this same text under (EARLIER); None when it read
    # another (this page hides text, which that release read).
    earlier: str | None


def _read(text: str, extractor: str, *, changed: bool = False) -> Extracted:
    """``text`` read under ``extractor``; ``changed``: the release before read it otherwise."""
    return Extracted(text, extractor, None if changed else EARLIER.get(extractor))


# A feed: served as one (Atom, RSS, RDF) or as XML whose root is one (after comments,
# processing instructions and a DOCTYPE, as RSS 0.91's, its internal subset too).
FEED_ROOT = re.compile(
    r"\A\ufeff?\s*(?:<\?xml[^>]*\?>\s*)?"
    r"(?:<!--.*?-->\s*|<\?[^>]*\?>\s*|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>\s*)*"
    r"<(?:[\w-]+:)?(?:feed|rss|RDF)\b",
    re.S,
)
# The bytes of a body read to tell a feed served as a page (its root past the prolog).
FEED_HEAD = 4096
DECLARATION = re.compile(r"\A\ufeff?\s*<\?xml[^>]*\?>")
ENTRIES = {"entry", "item"}
ENTRY_TEXT = ("title", "summary", "content", "description", "encoded")
# A tag, in text whose feed does not say whether it is HTML (RSS): "<p>", "</b>", "<br/>",
# '<a href="…">', not the "<y then" of "if x<y then".
HTML_TAG = re.compile(r"</?[a-z][\w:-]*(?:\s+[\w:-]+\s*=[^<>]*)?\s*/?>", re.I)
MAX_FEED_ENTRIES = 500


def is_feed(media_type: str, body: str) -> bool:
    """Whether a body is read as a feed: XML, undeclared, or served as HTML or plain text (a
    PHP rss.php says text/html) whose root is a feed's."""
    kind = media_type.partition(";")[0].strip().lower()
    served = "xml" in kind or kind in (*UNDECLARED, "text/html", "text/plain")
    return served and FEED_ROOT.match(body) is not None


def feed_text(media_type: str, body: str) -> Extracted | None:
    """An Atom or RSS feed's text: its title, then each entry's title and text (HTML read as
    its text), one a line, in the feed's order; None when the body is no feed."""
    if not is_feed(media_type, body):
        return None
    from lxml import etree  # type: ignore[import-untyped]  # trafilatura's, for a feed only

    # Its text is decoded already: the declaration's encoding would be applied again. No
    # entity of the document's own DTD is expanded, nothing fetched.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    try:
        root = etree.fromstring(DECLARATION.sub("", body, count=1), parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None:
        return None
    said: list[str] = []
    channel = next((e for e in root if _local(e) == "channel"), root)
    if (title := next((e for e in channel if _local(e) == "title"), None)) is not None:
        said.append(_said(title))
    entries = [e for e in root.iter() if _local(e) in ENTRIES][:MAX_FEED_ENTRIES]
    for entry in entries:
        for name in ENTRY_TEXT:
            said += [_said(e) for e in entry if _local(e) == name]
    text = "\n".join(line for line in said if line)
    if not text:
        raise NoTextError("the feed has no entries with text")
    return _read(text, FEED_EXTRACTOR)


def _json_lines(value: Any, keys: str = "") -> Iterator[str]:
    """A JSON answer's lines: each value after the keys that lead to it, so a diff names the
    field that changed ("status.description: 数据库故障"). An item of a list adds none: one
    added beside it leaves its line as it was (JSON pretty-printed gave the old last item a
    comma, a new line whose keyword hit again). An object's keys in order, as theirs is no part
    of it (RFC 8259: an API that wrote them in another order changed at every check); a string
    as written, its lines lines ("数据库", not "\u6570\u636e\u5e93")."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from _json_lines(value[key], f"{keys}.{key}" if keys else key)
    elif isinstance(value, list) and value:
        for item in value:
            yield from _json_lines(item, keys)
    else:
        written = value if isinstance(value, str) else json.dumps(value)
        yield f"{keys}: {written}" if keys else written


def _local(element: Any) -> str:
    tag = element.tag
    return tag.rpartition("}")[2].rpartition(":")[2] if isinstance(tag, str) else ""


def _said(element: Any) -> str:
    """An element's text on one line, HTML in it (escaped or in CDATA, or XHTML) as its text."""
    written = "".join(element.itertext())
    # HTML where the feed says so (Atom's type="html"), or says nothing and a tag is written;
    # plain text (type="text") and XHTML's text are read as written: "if x&lt;y then outage"
    # read as HTML was "if x".
    kind = element.get("type", "")
    if kind in ("html", "text/html") or (not kind and HTML_TAG.search(written)):
        body = LexborHTMLParser(written).body
        if body is not None:
            # As on a page: its scripts, styles, embeds and what it hides are no text of the
            # entry (an analytics snippet's words hit keywords nobody reads), taken out before
            # its inline elements are unwrapped, its text either side one text again.
            found = body.css(f"{DROPPED_ELEMENTS}, {HIDING}")
            unseen = _outermost(node for node in found if node.tag in DROPPED or _hides(node))
            for node in unseen:
                node.decompose()
            # inline elements on their line ("正在<b>处理</b>" one word; an empty one, an
            # image, a word break taken out)
            body.unwrap_tags(list(SELECTED_INLINE), delete_empty=True)
            body.merge_text_nodes()
        written = body.text(separator=" ") if body is not None else ""
    return " ".join(written.split())


# Text types read as HTML: the rest of text/* (markdown, CSV, a log) is plain text.
MARKUP_TEXT = ("text/html", "text/xml", "text/xsl")
# Declared as bytes, or not at all: a body that opens with a tag is a page.
UNDECLARED = ("", "application/octet-stream", "binary/octet-stream")


def plain_text(media_type: str, body: str) -> bool | None:
    """Whether a body of ``media_type`` is read as plain text: True for text/plain (as the
    release before read it), False for another plain type (it read them as HTML), None for
    markup."""
    kind = media_type.partition(";")[0].strip()
    if kind == "text/plain":
        return True
    if kind.startswith("text/") and kind not in MARKUP_TEXT:
        return False
    if kind in UNDECLARED and not body.lstrip("\ufeff \t\r\n").startswith("<"):
        return False
    return None


def extractors_for(selector: str | None) -> tuple[str, ...]:
    """The tags a page's text is read under now: its selector's, else a page's, JSON's or a
    feed's."""
    return (SELECTOR_EXTRACTOR,) if selector else (PAGE_EXTRACTOR, JSON_EXTRACTOR, FEED_EXTRACTOR)


def extractor_for(selector: str | None, media_type: str, head: str = "") -> str:
    """The tag an answer of ``media_type`` whose body starts with ``head`` is read under now
    (JSON that does not parse is read as a page: a text of its tag is read anew, never taken
    as this one's)."""
    if selector:
        return SELECTOR_EXTRACTOR
    kind = media_type.lower()
    if "json" in kind:
        return JSON_EXTRACTOR
    if ("xml" in kind and "html" not in kind) or is_feed(kind, head):
        return FEED_EXTRACTOR
    return PAGE_EXTRACTOR


def main_text(html: str, selector: str | None = None, media_type: str = "") -> str:
    """Main text of a page, or the text under a CSS selector; NoTextError when there is none."""
    return extracted(html, selector, media_type).text


def extracted(html: str, selector: str | None = None, media_type: str = "") -> Extracted:
    """``main_text`` and the tag of the path that read it."""
    # A watch of a page with nothing to watch would never see a change.
    media_type = media_type.lower()
    if not TEXT_MEDIA.match(media_type) and BINARY_BYTES.search(html):
        declared = media_type.partition(";")[0].strip() or "no Content-Type"
        raise NoTextError(
            f"the page is not text ({declared}): a web monitor reads HTML, plain text or JSON"
        )
    if "json" in media_type and not selector:
        with suppress(ValueError):  # not JSON after all: read as a page
            return _read("\n".join(_json_lines(json.loads(html))), JSON_EXTRACTOR)
    if not selector and (feed := feed_text(media_type, html)) is not None:
        # An Atom or RSS feed: each entry's title and text a line of its own (read as a page,
        # the feed was one line of fields run together: an old entry's word was a hit at
        # every new entry, a new one's never found).
        return feed
    if not selector and (as_before := plain_text(media_type, html)) is not None:
        # A changelog.txt, a CHANGELOG.md, a CSV: its angle brackets are text, not tags (read
        # as HTML, a "<script>" written in it took every line after it away).
        # A NUL (a log line cut by its writer) is no text, as in a page's HTML: PostgreSQL's
        # text holds none, and there the page's snapshot was refused at every check.
        written = html.replace("\x00", "")
        if not written.strip():
            raise NoTextError("the page has no text")
        return _read(written, PAGE_EXTRACTOR, changed=not as_before or written != html)
    tree = LexborHTMLParser(html)
    if selector:
        nodes = tree.css(selector)
        if not nodes:  # a matched element may be empty (no alert today), a missing one is not
            raise NoTextError(f"the selector {selector!r} matches nothing on the page")
        _unseen_removed(nodes)
        # Each match's text, its inline elements on their line ("42 USD", not "42" and "USD");
        # a match inside an earlier one is read with it, once (its text was read twice).
        texts = [block_text(node, plain=False, selected=True) for node in _outermost(nodes)]
        return _read("\n".join(texts), SELECTOR_EXTRACTOR)
    # What the page hides from its reader is no text of it (a per-request stamp in a hidden
    # <div> was a change at every check, a word in it a keyword hit): taken out first, and
    # trafilatura given the page without it.
    if hid := _hidden_removed(tree.body):
        html = tree.html or ""
    dropped = tree.body is not None and tree.body.css_first(DROPPED_ELEMENTS) is not None
    tree.strip_tags(DROPPED, recursive=True)
    body = tree.body
    # The text either side of an element taken out is one text again, as trafilatura reads
    # it: "下午发生数据库<span hidden>7f3a</span>故障" and "Database <script>…</script>outage"
    # were two lines, a keyword across them never found. Such a page's lines are not the
    # release before's: a new baseline once.
    joined = (hid or dropped) and body is not None and _text_joined(body)
    if body is not None and not_plain_because(body) is None:
        # A short one too: below trafilatura's MIN_EXTRACTED_SIZE (250 characters) its rescue
        # cascade splits inline elements into lines ("下午发生", "数据库", "故障": a keyword
        # "数据库故障" never found), where the blocks' text keeps them on their line.
        if plain := block_text(body):
            return _read(plain, PAGE_EXTRACTOR, changed=hid or joined)
    import trafilatura  # ~60 ms to import: only a page that is not plain needs it

    text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
    if text:
        return _read(str(text), PAGE_EXTRACTOR, changed=hid)
    # trafilatura found nothing: the body's blocks, without scripts and styles
    text = block_text(body, plain=False) if body is not None else ""
    if not text:
        raise NoTextError("the page has no text (is it rendered by JavaScript?)")
    return _read(text, PAGE_EXTRACTOR, changed=hid or joined)


def _text_joined(body: LexborNode) -> bool:
    """Merge the body's adjacent text nodes; whether two holding text became one."""
    apart = body.text(separator="\0", skip_empty=True).count("\0")
    body.merge_text_nodes()
    return body.text(separator="\0", skip_empty=True).count("\0") != apart


# What a page hides from its reader: the hidden attribute, an inline style that hides. Not
# aria-hidden (on screen, only not read aloud) and not a stylesheet's rules (not read here).
HIDING = "[hidden], [style]"
HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)", re.I)


def _hides(node: LexborNode) -> bool:
    attributes = node.attributes
    return "hidden" in attributes or HIDING_STYLE.search(attributes.get("style") or "") is not None


def _has_text(node: LexborNode) -> bool:
    """Whether ``node`` holds text the release before read (not a script's, a style's)."""
    return node.tag not in DROPPED and bool(node.text(strip=True))


def _hidden_removed(root: LexborNode | None) -> bool:
    """Take out of ``root`` each element it hides (the outermost of nested ones); whether one
    holding text was."""
    if root is None:
        return False
    taken = _outermost(filter(_hides, root.css(HIDING)))
    hid = any(_has_text(node) for node in taken)
    for node in taken:
        node.decompose()
    return hid


def _outermost(nodes: Iterable[LexborNode], kept: frozenset[int] = frozenset()) -> list[LexborNode]:
    """Of ``nodes`` (in document order), those not ``kept`` and inside none taken before them:
    chosen before any is removed, as a removed element's descendants are gone with it."""
    taken: dict[int, LexborNode] = {}
    for node in nodes:
        if node.mem_id in kept or node.mem_id in taken:
            continue
        parent = node.parent
        while parent is not None and parent.mem_id not in taken:
            parent = parent.parent
        if parent is None:
            taken[node.mem_id] = node
    return list(taken.values())


def _unseen_removed(nodes: list[LexborNode]) -> None:
    """Take out of each match what no reader sees in it (UNSEEN: scripts, styles, ...; and
    what the page hides): a script's nonce changed the page at every check and its words hit
    keywords. An element the selector matched, or one holding a match, stays: the selector
    named it. The text either side of one taken out is one text again ("Database
    <script>…</script>outage" one line)."""
    kept = {node.mem_id for node in nodes}
    for node in nodes:
        parent = node.parent
        while parent is not None:
            kept.add(parent.mem_id)
            parent = parent.parent
    inside = (
        inner for node in nodes for inner in [*node.css(UNSEEN), *filter(_hides, node.css(HIDING))]
    )
    unseen = _outermost(inside, frozenset(kept))
    for inner in unseen:
        inner.decompose()
    if unseen:
        for node in nodes:
            node.merge_text_nodes()


def not_plain_because(body: LexborNode) -> str | None:
    """Why this body (with DROPPED elements removed) needs trafilatura; None when it is plain."""
    counts = {"article": 0, "main": 0}
    blocks: list[LexborNode] = []
    # elements only: walking every text node in Python would cost more than the rest together
    for node in body.traverse():
        tag = node.tag
        if tag is None or tag.startswith("-"):  # comments, doctype
            continue
        if tag in LANDMARK_TAGS:
            return f"landmark <{tag}>"
        if tag not in ALLOWED:
            return f"element <{tag}>"
        if tag in TEXT_BLOCKS:
            blocks.append(node)
        elif tag in CONTAINERS:
            if tag in counts:
                counts[tag] += 1
                if counts[tag] > 1:
                    return f"more than one <{tag}>"
            if node.text(deep=False).strip():
                return "text outside a paragraph or heading"  # trafilatura may drop wild text
        elif tag in INLINE_TAGS and _block_of(node) in CONTAINERS:
            return "text outside a paragraph or heading"
    # lexbor selects the few elements that carry telling attributes; reading every element's
    # attributes from Python would cost more than the walk above
    for node in body.css(TELLING_ATTRIBUTES):
        attributes = node.attributes
        if "role" in attributes:
            role = (attributes["role"] or "").strip().lower()
            return f"landmark role={role}" if role in LANDMARK_ROLES else f"role={role}"
        if hiding := next((name for name in HIDING_ATTRIBUTES if name in attributes), None):
            return f"{hiding} attribute"
        for name in ("class", "id"):
            value = attributes.get(name)
            if value and (match := CHROME_WORDS.search(value)):
                return f'{name} "{value}" ({match.group().strip().lower()})'
    if nested := body.css_first(NESTED_BLOCKS):
        # A <p> inside a <pre>, a <pre> inside a heading: the inner block's text would be read
        # twice, and trafilatura reads such blocks by rules of its own (a <pre> in a <pre> is
        # one line of it, a <p> in a <pre> one line with its breaks as spaces).
        outer = nested.parent
        while outer is not None and outer.tag not in TEXT_BLOCKS:
            outer = outer.parent
        return f"<{nested.tag}> inside a <{outer.tag if outer is not None else '?'}>"
    frame = "article" if counts["article"] else "main" if counts["main"] else None
    texts = [(block.tag, text) for block in blocks if (text := " ".join(block.text().split()))]
    if frame is None:
        # without a frame trafilatura gathers loose paragraphs: it skips headings and any
        # paragraph it has seen before (whole, or inside earlier text when longer than 50)
        if any(tag in HEADINGS for tag, _ in texts):
            return "headings without an <article> or <main>"
        seen: set[str] = set()
        earlier = ""
        for _, text in texts:
            if text in seen or (len(text) > REPEAT_CHARS and text in earlier):
                return "repeated text without an <article> or <main>"
            seen.add(text)
            earlier += "\n" + text
        return None
    if texts and texts[-1][0] in HEADINGS:
        return "ends with a heading"  # trafilatura drops a trailing heading
    for (_, previous), (_, text) in pairwise(texts):
        if text == previous and len(text) > REPEAT_CHARS:
            return "the same long block twice in a row"  # trafilatura keeps one
    inside = body.css_first(frame)
    if inside is not None and _visible_chars(inside) != _visible_chars(body):
        return f"text outside the <{frame}>"  # trafilatura reads only the first one
    return None


def _visible_chars(node: LexborNode) -> int:
    return len("".join(node.text().split()))


def block_text(body: LexborNode, *, plain: bool = True, selected: bool = False) -> str:
    """Text of the body (or an element), one block a line, inline elements kept on their
    block's line; ``plain``: all of its text is in blocks (``not_plain_because`` said so);
    ``selected``: a selector's match (SELECTED_INLINE inline, its written line breaks spaces
    but in a <pre>)."""
    inline = SELECTED_INLINE if selected else INLINE_TAGS
    tags = {node.tag for node in body.traverse()}
    # Blocks whose written line breaks stay lines (trafilatura keeps them): found before
    # their inline elements are unwrapped.
    keeping = not plain or (KEEPS_BREAKS.isdisjoint(tags) and "pre" not in tags)
    kept = set() if keeping else {node.mem_id for node in body.css(KEEPING)}
    # unwrapping costs one tree walk per tag: only the tags present (often none); never the
    # element itself (a selector's <span>), which would take its text away
    present = [tag for tag in tags if tag in inline and tag != body.tag]
    # Its own tag nested inside it ("42 <span>USD</span>" in a matched <span>) stays on its
    # line too: unwrapped one by one, as a walk over the tag would unwrap the element.
    own = (
        [node for node in body.css(body.tag) if node.mem_id != body.mem_id]
        if body.tag in inline
        else []
    )
    for node in own:
        node.unwrap(delete_empty=selected)
    if "-comment" in tags:
        # A comment inside a paragraph (server-rendered React writes "<!-- -->" between text
        # pieces) kept its text nodes apart: two lines where trafilatura, which drops
        # comments, reads one, and a keyword across it never found.
        for node in [node for node in body.traverse() if node.tag == "-comment"]:
            node.decompose()
    if present or own or "-comment" in tags:
        # in a match, an empty one (an icon's <i></i>), an image or a word break taken out
        body.unwrap_tags(present, delete_empty=selected)
        body.merge_text_nodes()
    # Text nodes apart (lexbor drops a NUL from a page's text: it cannot be one of them).
    text = body.text(separator="\0", skip_empty=True)
    if selected or (keeping and plain and "\n" in text):
        # A line break written inside a paragraph or heading is a space, as trafilatura reads
        # it: a paragraph wrapped at 80 columns in the source was several lines, a page
        # re-wrapped was a "change" and a phrase across the break was never found. Unwrapped
        # and merged, each text node is a whole block's text (in a match, the text between
        # two blocks: "API:\n  <b>Major outage</b>" one line).
        if selected and "pre" in tags:  # a <pre>'s breaks stay: its text nodes told one by one
            pre = {n.mem_id for p in body.css("pre") for n in p.traverse(include_text=True)}
            texts = (node for node in body.traverse(include_text=True) if node.tag == "-text")
            text = "\0".join(
                (node.text_content or "").replace("\n", "\0" if node.mem_id in pre else " ")
                for node in texts
            )
        text = "\n".join(" ".join(node.split()) for node in text.split("\0"))
    elif "\n" not in text or not plain:
        text = text.replace("\0", "\n")
    else:
        text = "\n".join(_block_lines(block, kept) for block in body.css(BLOCKS))
    return "\n".join(stripped for line in text.splitlines() if (stripped := line.strip()))


BLOCKS = ", ".join(sorted(TEXT_BLOCKS))
NESTED_BLOCKS = f":is({BLOCKS}) :is({BLOCKS})"
# trafilatura keeps the written line breaks of a <pre> and of a block holding one of these (a
# <br> is its <lb>; <code> and <s> are elements it keeps).
KEEPS_BREAKS = frozenset({"br", "code", "s"})
KEEPING = f"pre, :is({BLOCKS}):has({', '.join(sorted(KEEPS_BREAKS))})"


def _block_lines(block: LexborNode, kept: set[int]) -> str:
    """A text block's lines: at its <br>s, and at its written line breaks if it is ``kept``."""
    if block.mem_id in kept:
        return block.text(separator="\n", skip_empty=True)
    return " ".join(block.text().split())


def _block_of(node: LexborNode) -> str | None:
    """Tag of the nearest ancestor that is not an inline element."""
    parent = node.parent
    while parent is not None and parent.tag in INLINE_TAGS:
        parent = parent.parent
    return parent.tag if parent is not None else None
