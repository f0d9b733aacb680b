"""A page's text read from its HTML blocks by lexbor: what is never text, what a page hides,
a selector's matches, and the rules that say when a page is plain enough to be read without
trafilatura (``not_plain_because``)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from itertools import pairwise

from selectolax.lexbor import LexborHTMLParser, LexborNode

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


# What a page hides from its reader: the hidden attribute, an inline style that hides. Not
# aria-hidden (on screen, only not read aloud) and not a stylesheet's rules (not read here).
HIDING = "[hidden], [style]"
HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)", re.I)


def hides(node: LexborNode) -> bool:
    attributes = node.attributes
    return "hidden" in attributes or HIDING_STYLE.search(attributes.get("style") or "") is not None


def _has_text(node: LexborNode) -> bool:
    """Whether ``node`` holds text the release before read (not a script's, a style's)."""
    return node.tag not in DROPPED and bool(node.text(strip=True))


def hidden_removed(root: LexborNode | None) -> bool:
    """Take out of ``root`` each element it hides (the outermost of nested ones); whether one
    holding text was."""
    if root is None:
        return False
    taken = outermost(filter(hides, root.css(HIDING)))
    hid = any(_has_text(node) for node in taken)
    for node in taken:
        node.decompose()
    return hid


def outermost(nodes: Iterable[LexborNode], kept: frozenset[int] = frozenset()) -> list[LexborNode]:
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


def unseen_removed(nodes: list[LexborNode]) -> None:
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
        inner for node in nodes for inner in [*node.css(UNSEEN), *filter(hides, node.css(HIDING))]
    )
    unseen = outermost(inside, frozenset(kept))
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


# What makes a table one of layout, not of data: a block in a cell (its text stays as it was).
CELL_BLOCKS = ", ".join(
    ["table", "div", "ul", "ol", "dl", "blockquote", "section", *sorted(TEXT_BLOCKS)]
)
# A table's parts whose rows a selector may match as they are (a <tbody>: its rows).
ROW_GROUPS = frozenset({"table", "thead", "tbody", "tfoot"})


def row_line(row: LexborNode) -> str:
    """A table row's cells on one line, apart, as trafilatura writes a table it keeps."""
    cells = [" ".join(cell.text(separator=" ").split()) for cell in row.css("td, th")]
    return f"| {' | '.join(cells)} |" if any(cells) else ""


def table_lines(table: LexborNode) -> list[str] | None:
    """A data table's (or row group's) lines: its caption, then a line a row (None: a table of
    layout)."""
    if any(node.mem_id != table.mem_id for node in table.css(CELL_BLOCKS)):
        return None
    caption = table.css_first("caption")
    lines = [" ".join(caption.text(separator=" ").split())] if caption is not None else []
    return [line for line in [*lines, *map(row_line, table.css("tr"))] if line]


def _read_as_is(table: LexborNode, root: LexborNode, unread: frozenset[str]) -> bool:
    """Whether ``table`` is left as it is: inside another table (a layout's cell, which
    trafilatura reads whole) or inside what is no text (``unread``)."""
    node = table.parent
    while node is not None and node.mem_id != root.mem_id:
        if node.tag == "table" or node.tag in unread:
            return True
        node = node.parent
    return False


def tables_as_rows(root: LexborNode | None, unread: frozenset[str] = frozenset()) -> bool:
    """Each data table below ``root`` (its cells holding no block, no table around it) as
    paragraphs, a row's cells on one line, what is no text in it (``unread``: a script, a
    style) left out: a status page's cells were a line each, and a change was said "Degraded
    performance" without the service it was of. True: one was."""
    if root is None:
        return False
    done = False
    for table in root.css("table"):
        if table.mem_id == root.mem_id or _read_as_is(table, root, unread):
            continue
        if unread:
            for node in table.css(", ".join(sorted(unread))):
                node.decompose()
        if (lines := table_lines(table)) is None:
            continue
        paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
        rows = LexborHTMLParser(f"<div>{paragraphs}</div>").css_first("div")
        if rows is not None:
            table.replace_with(rows)
            done = True
    return done


def selected_text(node: LexborNode) -> tuple[str, bool]:
    """A selector's match's text (``block_text``), a data table's rows a line each (a matched
    row its line, a matched row group its rows); True: it held a data table."""
    if node.tag == "tr":
        return row_line(node), True
    if node.tag in ROW_GROUPS and (lines := table_lines(node)) is not None:
        return "\n".join(lines), True
    tabled = tables_as_rows(node)
    return block_text(node, plain=False, selected=True), tabled
