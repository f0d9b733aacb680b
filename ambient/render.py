"""Markdown to HTML for emails and share pages; raw HTML in the text is escaped.

Bodies carry untrusted text (page excerpts, log lines): markdown would pass their HTML
through, so it is escaped first (at the cost of `>` blockquotes).
"""

from __future__ import annotations

from html import escape

import markdown


def markdown_html(text: str) -> str:
    return markdown.markdown(escape(text, quote=False), extensions=["tables", "fenced_code"])


_MARKDOWN_SPECIALS = str.maketrans({c: "\\" + c for c in "\\`*_[]"})


def markdown_literal(text: str) -> str:
    """Text shown as it is inside markdown: log templates like `timeout after <*> ms` must
    not turn into emphasis or links."""
    return text.translate(_MARKDOWN_SPECIALS)
