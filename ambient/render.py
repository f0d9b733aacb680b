"""Markdown to HTML for emails and share pages; raw HTML in the text is escaped.

Bodies carry untrusted text (page excerpts, log lines): markdown would pass their HTML
through, so it is escaped first (at the cost of `>` blockquotes).
"""

from __future__ import annotations

from html import escape

import markdown


def markdown_html(text: str) -> str:
    return markdown.markdown(escape(text, quote=False), extensions=["tables", "fenced_code"])
