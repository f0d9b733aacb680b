"""Markdown to HTML for emails and share pages; raw HTML in the text is shown as text.

Bodies carry untrusted text (page excerpts, log lines, alert messages): the parser is told
not to pass HTML through (it is escaped like any text), and links or images may only point
at http(s), mailto or our own relative paths (a ``javascript:`` or ``data:`` link on the
app's origin would run in the reader's session). The parser (markdown-it, CommonMark) takes
time linear in the text: any member's body of unmatched ``[`` or ``<`` renders in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

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


class _Markdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        # Every target parses, so that a refused link still reads as its text and a refused
        # image as its alt text (markdown-it would leave the raw "[text](url)" instead): the
        # renderer's rules below are what refuses.
        return True


def _link_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """An anchor to a target not allowed loses its href: its text stays, linking nowhere.
    In an inert text (``markdown_html``'s) every anchor does."""
    if env.get("inert") or not url_allowed(str(tokens[idx].attrGet("href") or "")):
        tokens[idx].attrs.pop("href", None)
    return renderer.renderToken(tokens, idx, options, env)


def _image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """An image from a source not allowed is shown as its alt text, where it stood; in an
    inert text every image is (none is fetched)."""
    if not env.get("inert") and url_allowed(str(tokens[idx].attrGet("src") or ""), IMAGE_SCHEMES):
        return renderer.image(tokens, idx, options, env)
    alt = renderer.renderInlineAsText(tokens[idx].children or [], options, env)
    return f"<span>{escape(alt, quote=False)}</span>"


def _markdown(breaks: bool) -> MarkdownIt:
    # CommonMark with tables ("fenced code" is CommonMark's own); "html": False escapes raw HTML.
    md = _Markdown("commonmark", {"html": False, "breaks": breaks}).enable("table")
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    return md


_MD, _MD_BREAKS = _markdown(breaks=False), _markdown(breaks=True)


def markdown_html(text: str, breaks: bool = False, inert: bool = False) -> str:
    """Markdown as HTML with raw HTML escaped and only safe link/image targets; ``breaks``:
    a single newline is a line break (``<br />``), as chat and push services show a message.
    ``inert``: no link and no image at all (their text stays), for a text whose markup a
    stranger may have written: an inbox message quotes a watched page as it was written, and
    its ``![](https://tracker/...)`` fetched on every look at the page, its links clickable
    as the product's own."""
    return (_MD_BREAKS if breaks else _MD).render(text, {"inert": inert})


_MARKDOWN_SPECIALS = str.maketrans({c: "\\" + c for c in "\\`*_[]"})
# An escape, outside code (fenced or inline): in code a backslash is itself, as markdown has it.
_ESCAPED = re.compile(r"(```.*?```|`[^`]*`)|\\([\\`*_\[\]<])", re.S)


def markdown_literal(text: str) -> str:
    """Text shown as it is inside markdown: log templates like `timeout after <*> ms` must
    not turn into emphasis or links."""
    return text.translate(_MARKDOWN_SPECIALS)


def markdown_lines(lines: list[str]) -> str:
    """Lines of text the product does not control (a watched page's), one list item each,
    shown as written: its brackets, stars and `<font>` tags escaped. In a fence they were live
    markup in WeCom's and DingTalk's markdown, which have no fenced code: a page's link, image
    or coloured text rendered as the alert's own (and a message split or cut in parts left
    the fence open)."""
    return "\n".join("- " + markdown_literal(line).replace("<", "\\<") for line in lines)


def markdown_plain(text: str) -> str:
    """A markdown body as plain channels show it (email's text, a webhook, the inbox): what
    ``markdown_literal`` escaped, as it was written."""
    return _ESCAPED.sub(lambda found: found[1] or found[2], text)
