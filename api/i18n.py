"""The pages' two languages: a gettext catalog per language, and whose language a page speaks.

The English text in the templates and page routers is the msgid; Chinese comes from
api/locale/zh/LC_MESSAGES/messages.po, compiled in memory on first use (no .mo file to build
or commit, so `make run` just works). A signed-in user's page speaks their `language`; one who
has not chosen, and every anonymous page, follows the browser's Accept-Language when it names
zh or en, else the server's AMBIENT_DEFAULT_LANGUAGE.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from ambient.domain.users import Language
from ambient.render import markdown_html, markdown_plain, url_allowed
from ambient.words import (  # noqa: F401  (the pages' words, as the worker's)
    Words,
    catalog_path,
    error_words,
    in_words,
    translations,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"


def from_accept_language(header: str | None) -> Language | None:
    """The first of zh / en the browser asks for (by its q order), or None."""
    asked: list[tuple[float, int, Language]] = []
    for index, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-", 1)[0]
        if quality > 0 and primary in ("zh", "en"):
            asked.append((-quality, index, Language(primary)))
    return min(asked)[2] if asked else None


def in_zone(moment: datetime, zone: str | None) -> datetime:
    """A stored time (UTC) in the time zone ``zone`` names; UTC without one."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(ZoneInfo(zone)) if zone else moment
    except (ZoneInfoNotFoundError, ValueError):
        return moment


@pass_context
def local_time(context: Context, moment: datetime, format: str) -> str:
    """``{{ event.created_at | local("%H:%M") }}``: in the page user's time zone (a setting)."""
    return in_zone(moment, getattr(context.get("user"), "timezone", None)).strftime(format)


@cache
def templates(language: Language) -> Jinja2Templates:
    """The pages in one language: Jinja2's i18n extension over that language's catalog."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, extensions=["jinja2.ext.i18n"]
    )
    # newstyle: `{{ _("Hello %(name)s", name=x) }}` formats and escapes like {% trans %}.
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = language.value
    env.filters["local"] = local_time
    env.filters["plain"] = markdown_plain  # a markdown text shown as plain text
    # A markdown text rendered (its raw HTML escaped, only safe links): a report, a message.
    # Whether a link may be an anchor's href (http(s), mailto or our own relative paths).
    env.filters["link_allowed"] = url_allowed
    env.filters["markdown"] = lambda text, breaks=False, inert=False: Markup(
        markdown_html(text, breaks, inert)
    )
    return Jinja2Templates(env=env)
