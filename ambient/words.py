"""The product's words in a reader's language: a gettext catalog per language.

The English text is the msgid; Chinese comes from api/locale/zh/LC_MESSAGES/messages.po,
compiled in memory on first use (no .mo file to build or commit, so `make run` just works).
The pages (api/i18n.py) and the worker's messages (a check's error, a threshold watch's lines
in a Chinese reader's alert) read the same catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from gettext import NullTranslations
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from ambient.clients.metric_reads import said_refusal
from ambient.domain.notify import Message
from ambient.domain.users import Language
from ambient.refusals import Refusal
from ambient.watches.summaries import rules_in

LOCALE = Path(__file__).resolve().parents[1] / "api" / "locale"


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
