"""Markdown to HTML for emails and share pages; raw HTML in the text is escaped.

Bodies carry untrusted text (page excerpts, log lines, alert messages): markdown would pass
their HTML through, so it is escaped first (at the cost of `>` blockquotes), and links or
images may only point at http(s), mailto or our own relative paths (a ``javascript:`` or
``data:`` link on the app's origin would run in the reader's session).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import escape

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})
# Browsers drop ASCII whitespace and control characters inside a scheme ("java\tscript:").
_IGNORED_BY_BROWSERS = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")


def url_allowed(url: str, schemes: frozenset[str] = LINK_SCHEMES) -> bool:
    """True for a URL with one of ``schemes``, or a relative one (no scheme, not ``//host``)."""
    cleaned = _IGNORED_BY_BROWSERS.sub("", url).lower()
    if cleaned.startswith(("//", "\\\\", "/\\", "\\/")):
        return False  # protocol-relative: another host
    if (match := _SCHEME.match(cleaned)) is None:
        # No scheme before the first "/", "?" or "#": a path, a query or a fragment.
        return ":" not in cleaned.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return match.group(1) in schemes


class _SafeLinks(Treeprocessor):
    """Unlinks anchors and drops images whose target is not an allowed URL."""

    def run(self, root: ET.Element) -> None:
        for parent in root.iter():
            for child in list(parent):
                if child.tag == "a" and not url_allowed(child.get("href", "")):
                    child.attrib.pop("href", None)
                elif child.tag == "img" and not url_allowed(child.get("src", ""), IMAGE_SCHEMES):
                    # Keep the alt text where the image was.
                    index = list(parent).index(child)
                    span = ET.Element("span")
                    span.text, span.tail = child.get("alt", ""), child.tail
                    parent.remove(child)
                    parent.insert(index, span)


class _SafeLinksExtension(Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:
        # After "inline" (20), which makes the <a>/<img> elements.
        md.treeprocessors.register(_SafeLinks(md), "safe_links", 15)


def markdown_html(text: str) -> str:
    """Markdown as HTML with raw HTML escaped and only safe link/image targets."""
    return markdown.markdown(
        escape(text, quote=False),
        extensions=["tables", "fenced_code", _SafeLinksExtension()],
    )


_MARKDOWN_SPECIALS = str.maketrans({c: "\\" + c for c in "\\`*_[]"})
# An escape, outside code (fenced or inline): in code a backslash is itself, as markdown has it.
_ESCAPED = re.compile(r"(```.*?```|`[^`]*`)|\\([\\`*_\[\]])", re.S)


def markdown_literal(text: str) -> str:
    """Text shown as it is inside markdown: log templates like `timeout after <*> ms` must
    not turn into emphasis or links."""
    return text.translate(_MARKDOWN_SPECIALS)


def markdown_plain(text: str) -> str:
    """A markdown body as plain channels show it (email's text, a webhook, the inbox): what
    ``markdown_literal`` escaped, as it was written."""
    return _ESCAPED.sub(lambda found: found[1] or found[2], text)
