"""The pages' two languages: a gettext catalog per language, and whose language a page speaks.

The English text in the templates and page routers is the msgid; Chinese comes from
api/locale/zh/LC_MESSAGES/messages.po, compiled in memory on first use (no .mo file to build
or commit, so `make run` just works). A signed-in user's page speaks their `language`; one who
has not chosen, and every anonymous page, follows the browser's Accept-Language when it names
zh or en, else the server's AMBIENT_DEFAULT_LANGUAGE.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from gettext import NullTranslations
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context

from ambient.clients.metric_reads import said_refusal
from ambient.domain.notify import Message
from ambient.domain.users import Language
from ambient.refusals import Refusal
from ambient.render import markdown_plain
from ambient.watches.summaries import rules_in

LOCALE = Path(__file__).resolve().parent / "locale"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def catalog_path(language: Language) -> Path:
    return LOCALE / language.value / "LC_MESSAGES" / "messages.po"


@cache
def translations(language: Language) -> NullTranslations:
    """The language's catalog; English is the msgids themselves."""
    if language == Language.EN:
        return NullTranslations()
    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language.value)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out: they read as English
    compiled.seek(0)
    return Translations(compiled)


class Words:
    """What a page router says: ``_("Created %(task)s", task=...)`` in the page's language."""

    def __init__(self, language: Language) -> None:
        self._gettext: Callable[[str], str] = translations(language).gettext

    def __call__(self, message: str, /, **values: Any) -> str:
        text = self._gettext(message)
        return text % values if values else text


def in_words(refusal: str | Refusal, _: Words) -> str:
    """A refusal in the page's language where the catalog has its words; else its English."""
    if not isinstance(refusal, Refusal) or _(refusal.msgid) == refusal.msgid:
        return str(refusal)
    values = {k: in_words(v, _) if isinstance(v, Refusal) else v for k, v in refusal.values.items()}
    return _(refusal.msgid, **values)


def error_words(error: str, _: Words) -> str:
    """A check's stored error (English) in the language of ``_`` where it reads back as one
    the catalog words (``said_refusal``: an HTTP status, a metric's answer); else as stored."""
    return in_words(said_refusal(error) or error, _)


def in_reader_words(message: Message, language: str) -> Message:
    """``message`` with the parts its Chinese wording says (a check's error, a threshold
    watch's lines) in the catalog's words, as the pages say them, for a reader of
    ``language`` (another reads the English, as written)."""
    zh = message.zh
    if language != Language.ZH or zh is None or (zh.reason is None and zh.rules is None):
        return message
    _ = Words(Language.ZH)
    said = {
        "reason": error_words(zh.reason, _) if zh.reason is not None else None,
        "rules": rules_in(zh.rules, _) if zh.rules is not None else None,
    }
    return message.model_copy(update={"zh": zh.model_copy(update=said)})


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
    return Jinja2Templates(env=env)
