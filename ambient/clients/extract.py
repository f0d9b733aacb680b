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
from collections.abc import Iterator
from contextlib import suppress
from importlib.metadata import version
from typing import Any, NamedTuple

from selectolax.lexbor import LexborHTMLParser

from ambient.clients.page_blocks import (
    DROPPED,
    DROPPED_ELEMENTS,
    HIDING,
    SELECTED_INLINE,
    block_text,
    hidden_removed,
    hides,
    not_plain_because,
    outermost,
    selected_text,
    tables_as_rows,
    unseen_removed,
)
from ambient.refusals import N_, Refusal

# Watches store beside a page's hash the tag of the path that read its text: another tag means
# the rules changed, not the page. Each path has its own, so a release that changes one path's
# rules starts anew only the pages that path reads (the others' changes are told as before).
# trafilatura's own rules decide every non-plain page, so its version is part of that tag.
PAGE_EXTRACTOR = f"x8-t{version('trafilatura')}"  # a page (fast path, trafilatura), plain text
SELECTOR_EXTRACTOR = "s10"  # a CSS selector's matches
JSON_EXTRACTOR = "j9"  # a JSON answer read without a selector
FEED_EXTRACTOR = "f3"  # an Atom or RSS feed read without a selector
# The tag each path's text had in the release before, where its rules read the text the same:
# a page or a selector's match holding no data table (x8 and s10 write a table's row on one
# line, its cells apart), a JSON answer holding no list of plain objects (j9 writes each on one
# line) is compared with its text of that release, its change at the upgrade told; one holding
# such starts anew, as a feed (f3: f2 put a space at an image, a word break, an empty element)
# did at its.
EARLIER = {
    PAGE_EXTRACTOR: f"x7-t{version('trafilatura')}",
    SELECTOR_EXTRACTOR: "s9",
    JSON_EXTRACTOR: "j8",
}
# A fetched page whose text cannot be read: its check's stored error starts so (then why),
# each why a msgid the pages say in their reader's language (``web_errors.fetch_refusal``).
UNREADABLE_BECAUSE = N_("cannot read the page's text: %(reason)s")
UNREADABLE = UNREADABLE_BECAUSE.removesuffix("%(reason)s")
NOT_TEXT = N_("the page is not text (%(kind)s): a web monitor reads HTML, plain text or JSON")
NO_TEXT = N_("the page has no text")
NO_RENDERED_TEXT = N_("the page has no text (is it rendered by JavaScript?)")
NO_FEED_TEXT = N_("the feed has no entries with text")
NOTHING_SELECTED = N_("the selector %(selector)s matches nothing on the page")
NO_TEXTS = (NOT_TEXT, NO_TEXT, NO_RENDERED_TEXT, NO_FEED_TEXT, NOTHING_SELECTED)
# The kind of a body served without a Content-Type (NOT_TEXT's, a metric's NOT_JSON).
NO_CONTENT_TYPE = N_("no Content-Type")


# Bodies declared as text; another or none is sniffed for the control bytes that mark a file
# of bytes (WHATWG MIME Sniffing's binary data bytes): an image, an archive, a PDF read as text
# was a "change" of garbage sent to people. A text file a bucket serves as bytes is still read.
TEXT_MEDIA = re.compile(r"text/|[^;]*(?:html|xml|json|javascript)")
BINARY_BYTES = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


class NoTextError(Refusal):
    """The page, or its selector, gives nothing to watch (one of ``NO_TEXTS``)."""


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
        raise NoTextError(NO_FEED_TEXT)
    return _read(text, FEED_EXTRACTOR)


def _json_lines(value: Any, keys: str = "", rows: list[str] | None = None) -> Iterator[str]:
    """A JSON answer's lines: each value after the keys that lead to it, so a diff names the
    field that changed ("status.description: 数据库故障"). An item of a list adds none: one
    added beside it leaves its line as it was (JSON pretty-printed gave the old last item a
    comma, a new line whose keyword hit again); an item that is an object of plain values is
    one line of them, its name first (``ROW_KEYS``), as a table's row is: a status API's
    "components.status: major_outage" said nothing of which component (its keys in ``rows``).
    An object's keys in order, as theirs is no part of it (RFC 8259: an API that wrote them in
    another order changed at every check); a string as written, its lines lines ("数据库",
    not "\u6570\u636e\u5e93")."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from _json_lines(value[key], f"{keys}.{key}" if keys else key, rows)
    elif isinstance(value, list) and value:
        for item in value:
            if isinstance(item, dict) and item and not any(map(_nested, item.values())):
                named = sorted(item, key=lambda key: (ROW_KEYS.get(key, len(ROW_KEYS)), key))
                # A string's line breaks are spaces in a row (a line of its own named nothing).
                fields = " | ".join(f"{k}: {' '.join(_json_value(item[k]).split())}" for k in named)
                row = f"{keys}: {fields}" if keys else fields
                if rows is not None and row != "\n".join(_json_lines(item, keys)):
                    rows.append(row)  # read otherwise by the release before (j8)
                yield row
            else:
                yield from _json_lines(item, keys, rows)
    else:
        yield f"{keys}: {_json_value(value)}" if keys else _json_value(value)


# The fields that name an item of a list, said first on its line.
ROW_KEYS = {key: rank for rank, key in enumerate(("name", "title", "id", "key"))}


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list) and bool(value)


def _json_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


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
            unseen = outermost(node for node in found if node.tag in DROPPED or hides(node))
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


def plain_text(media_type: str, body: str) -> bool:
    """Whether a body of ``media_type`` is read as plain text (text/plain, text/markdown, a
    CSV, bytes that do not start as markup), not as HTML."""
    kind = media_type.partition(";")[0].strip()
    if kind.startswith("text/") and kind not in MARKUP_TEXT:
        return True
    return kind in UNDECLARED and not body.lstrip("\ufeff \t\r\n").startswith("<")


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
        declared = media_type.partition(";")[0].strip() or NO_CONTENT_TYPE
        raise NoTextError(NOT_TEXT, kind=declared)
    if "json" in media_type and not selector:
        with suppress(ValueError):  # not JSON after all: read as a page
            rows: list[str] = []
            fields = "\n".join(_json_lines(json.loads(html), rows=rows))
            return _read(fields, JSON_EXTRACTOR, changed=bool(rows))
    if not selector and (feed := feed_text(media_type, html)) is not None:
        # An Atom or RSS feed: each entry's title and text a line of its own (read as a page,
        # the feed was one line of fields run together: an old entry's word was a hit at
        # every new entry, a new one's never found).
        return feed
    if not selector and plain_text(media_type, html):
        # A changelog.txt, a CHANGELOG.md, a CSV: its angle brackets are text, not tags (read
        # as HTML, a "<script>" written in it took every line after it away).
        # A NUL (a log line cut by its writer) is no text, as in a page's HTML: PostgreSQL's
        # text holds none, and there the page's snapshot was refused at every check.
        written = html.replace("\x00", "")
        if not written.strip():
            raise NoTextError(NO_TEXT)
        return _read(written, PAGE_EXTRACTOR)
    tree = LexborHTMLParser(html)
    if selector:
        nodes = tree.css(selector)
        if not nodes:  # a matched element may be empty (no alert today), a missing one is not
            raise NoTextError(NOTHING_SELECTED, selector=repr(selector))
        unseen_removed(nodes)
        # Each match's text, its inline elements on their line ("42 USD", not "42" and "USD");
        # a match inside an earlier one is read with it, once (its text was read twice).
        read = [selected_text(node) for node in outermost(nodes)]
        matched = "\n".join(text for text, _ in read)
        return _read(matched, SELECTOR_EXTRACTOR, changed=any(tabled for _, tabled in read))
    # What the page hides from its reader is no text of it (a per-request stamp in a hidden
    # <div> was a change at every check, a word in it a keyword hit): taken out first, and
    # trafilatura given the page without it.
    hid = hidden_removed(tree.body)
    dropped = tree.body is not None and tree.body.css_first(DROPPED_ELEMENTS) is not None
    # Text a page shows without a script (an SVG's, a declarative shadow root's, a frame's
    # page): trafilatura reads what it reads of it, as before.
    drawn = tree.body is not None and tree.body.css_first("svg, template, iframe") is not None
    # A data table's rows, a line each, whichever path reads the page (trafilatura's rescue of
    # a short page wrote each cell a line).
    if (tabled := tables_as_rows(tree.body, frozenset(DROPPED))) or hid:
        html = tree.html or ""
    tree.strip_tags(DROPPED, recursive=True)
    body = tree.body
    # The text either side of an element taken out is one text again, as trafilatura reads
    # it: "下午发生数据库<span hidden>7f3a</span>故障" and "Database <script>…</script>outage"
    # were two lines, a keyword across them never found.
    if (hid or dropped) and body is not None:
        body.merge_text_nodes()
    if body is None or not (drawn or body.text(strip=True)):
        # An app's shell (<div id="root"></div>): what trafilatura would read of it is its
        # <noscript> ("You need to enable JavaScript"), a page that never changes.
        raise NoTextError(NO_RENDERED_TEXT)
    if not_plain_because(body) is None:
        # A short one too: below trafilatura's MIN_EXTRACTED_SIZE (250 characters) its rescue
        # cascade splits inline elements into lines ("下午发生", "数据库", "故障": a keyword
        # "数据库故障" never found), where the blocks' text keeps them on their line.
        if plain := block_text(body):
            return _read(plain, PAGE_EXTRACTOR, changed=tabled)
    import trafilatura  # ~60 ms to import: only a page that is not plain needs it

    text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
    if text:
        return _read(str(text), PAGE_EXTRACTOR, changed=tabled)
    # trafilatura found nothing: the body's blocks, without scripts and styles
    return _read(block_text(body, plain=False), PAGE_EXTRACTOR, changed=tabled)
