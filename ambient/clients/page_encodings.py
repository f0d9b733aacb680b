"""How a page's bytes are read as text: in the encoding it declares, as a browser reads it."""

from __future__ import annotations

import codecs
import re

# A charset declared in the page itself, in its first bytes (as a browser looks for it).
META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
# An XML document's own declaration (an RSS or Atom feed): <?xml version="1.0" encoding="…"?>.
XML_ENCODING = re.compile(rb"""\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']""")
# The encodings a page's label stands for as browsers read them (WHATWG Encoding): GB2312 and
# GBK pages are GB18030 (a superset), Big5 pages Big5 with HKSCS (written Cantonese: 嘅, 咗),
# Latin-1 pages windows-1252.
AS_BROWSERS_READ = {
    **dict.fromkeys(
        "gb2312 gbk x-gbk gb_2312 gb_2312-80 csgb2312 chinese iso-ir-58 csiso58gb231280".split(),
        "gb18030",
    ),
    # Shift_JIS as WHATWG reads it: Windows' superset (NEC and IBM extensions).
    **dict.fromkeys(
        "shift_jis shift-jis sjis x-sjis ms_kanji csshiftjis windows-31j ms932".split(), "cp932"
    ),
    **dict.fromkeys(("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"), "big5hkscs"),
    **dict.fromkeys(("iso-8859-1", "latin1", "us-ascii", "ascii"), "cp1252"),
}
# WHATWG's labels of UTF-16LE and UTF-16BE.
UTF_16_LABELS = frozenset(
    {"utf-16", "utf-16le", "utf-16be", "unicode", "unicodefeff", "unicodefffe", "ucs-2"}
    | {"csunicode", "iso-10646-ucs-2"}
)
# The same by the codec Python resolves a label to: every label of Latin-1 ("l1", "cp819",
# "iso_8859-1", …) is windows-1252 to a browser, EUC-KR windows-949, ISO-8859-9 windows-1254,
# TIS-620 and ISO-8859-11 windows-874 (WHATWG Encoding's table).
RESOLVED_AS_BROWSERS = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "euc_kr": "cp949",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}
# Python codecs no browser reads a page in: a label naming one is passed over as an unknown one.
# Not text encodings at all (base64, hex, quoted-printable, rot13, zlib, uu: decoding raised,
# and the whole poll failed), and text codecs of Python's own (UTF-7: WHATWG drops its label,
# its "+…-" runs are a filter-evasion trick; idna and undefined raise on any page).
NO_PAGE_ENCODING = frozenset(
    {"utf-7", "idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"}
)
WIDE_RUN = re.compile("[^\x00-\x7f\ufffd]{2,}")  # two or more non-ASCII characters in a row
# An undeclared page whose bytes are UTF-8 but for a few (a summary a CMS cut in the middle of
# a character): UTF-8, when its valid non-ASCII characters outnumber the invalid bytes so.
MOSTLY_UTF8 = 8


# How far a page's </head> is looked for (a <meta> charset stands before it).
HEAD_SEARCH = 65_536


def _as_browsers_read(error: UnicodeError) -> tuple[str, int]:
    """A byte no codec here reads, as a browser reads it: GB18030's lone 0x80 is the euro
    sign (WHATWG Encoding's gb18030 decoder; Windows' GBK wrote it so), which Python's codec
    refuses; anything else U+FFFD, as errors="replace" gives."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    if error.encoding == "gb18030" and error.object[error.start] == 0x80:
        return "€", error.start + 1
    return "\ufffd", error.end


BROWSERS_BYTES = "ambient-as-browsers-read"
codecs.register_error(BROWSERS_BYTES, _as_browsers_read)


def _head_end(body: bytes) -> int:
    """Where a page's <meta> charset may stand: before its </head> (in the first 64 KB), a
    browser honouring one after the head's inline scripts; else its first 2 KB."""
    end = body[:HEAD_SEARCH].lower().find(b"</head")
    return end if end != -1 else 2048


def page_text(body: bytes, content_type: str) -> str:
    """``body`` in the encoding the page declares (BOM, Content-Type, <meta>), else UTF-8,
    else GB18030 or windows-1252 (``undeclared_text``)."""
    # Read as UTF-8 always, a GBK page (many Chinese sites) was text no keyword matched.
    # A byte order mark outweighs any label (UTF-16: a page saved as Windows' "Unicode").
    for bom, marked in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(marked, errors="replace")
    # A label no codec answers to is passed over, as browsers pass over a label they do
    # not know: read as UTF-8, a GBK page labelled "windows-936" was garbage.
    encoding = declared_encoding(content_type)
    if encoding is None and (
        # A feed's XML declaration, else a page's <meta>, in its first bytes.
        (found := XML_ENCODING.match(body))
        or (found := META_CHARSET.search(body, 0, _head_end(body)))
    ):
        label = found.group(1).decode("ascii")
        # A <meta> naming UTF-16 was read as ASCII, so the page is not UTF-16: WHATWG
        # takes it as UTF-8 (a UTF-16 page has a byte order mark, read above).
        encoding = "utf-8" if label.lower() in UTF_16_LABELS else _codec(label)
    if encoding is None:
        # Declared nowhere: UTF-8 if it reads as UTF-8, else Chinese or Latin-1 by its text.
        try:
            return body.decode()
        except UnicodeDecodeError:
            pass
        text = body.decode(errors="replace")
        # JSON is UTF-8 (RFC 8259 8.1); another page mostly UTF-8 is read so, its few broken
        # bytes as U+FFFD: as GB18030, one cut character made the whole page mojibake.
        invalid = text.count("\ufffd") - body.count("\ufffd".encode())
        wide = len(text) - len(text.encode("ascii", errors="ignore")) - invalid
        if "json" in content_type.lower() or wide >= MOSTLY_UTF8 * invalid:
            return text
        return undeclared_text(body)
    return body.decode(encoding, errors=BROWSERS_BYTES)


def declared_encoding(content_type: str) -> str | None:
    """The codec a Content-Type's charset names as browsers read it (GBK: GB18030); None
    when it names none, or one no page is read in (``_codec``)."""
    declared = HEADER_CHARSET.search(content_type)
    return _codec(declared.group(1)) if declared else None


def _codec(label: str) -> str | None:
    """The codec a charset label names as browsers read it; None for one Python does not know
    or no browser reads a page in (``NO_PAGE_ENCODING``, a codec of bytes such as base64)."""
    encoding = AS_BROWSERS_READ.get(label.lower(), label)
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        return None
    if not codec._is_text_encoding or codec.name in NO_PAGE_ENCODING:
        return None
    return RESOLVED_AS_BROWSERS.get(codec.name, codec.name)


def undeclared_text(body: bytes) -> str:
    """A page that declares no encoding and is not UTF-8: GB18030 if it reads as Chinese, else
    windows-1252, as a browser guesses between an old GBK site and an old European one."""
    # Almost any bytes are GB18030, a Latin-1 page's too (Müller as M黮ler), but its accents
    # pair with the next byte into lone rare characters (or none: U+FFFD). Chinese text is
    # GB2312 characters (simplified) or runs of characters (traditional in GBK). C-speed
    # passes, no detector: charset-normalizer (locked through trafilatura) costs
    # milliseconds a page and may answer any of dozens of encodings.
    text = body.decode("gb18030", errors=BROWSERS_BYTES)
    ascii_chars = len(text.encode("ascii", errors="ignore"))
    wide = len(text) - ascii_chars
    common = (len(text.encode("gb2312", errors="ignore")) - ascii_chars) // 2
    if common < 0.8 * wide and (big5 := _big5(body)) is not None:
        return big5
    if common >= 0.8 * wide or sum(map(len, WIDE_RUN.findall(text))) >= 0.8 * wide:
        return text
    return body.decode("cp1252", errors="replace")


def _big5(body: bytes) -> str | None:
    """``body`` as Big5 (with HKSCS, as a browser reads Big5) if it is Big5 Chinese: strictly
    decoded (GBK's own lead and trail bytes past Big5's fail it), its characters mostly Big5's
    frequent ones (lead bytes A4-C6; Latin-1 accents and GBK's traditional characters decode,
    if at all, to rare ones)."""
    try:
        text = body.decode("big5hkscs")
    except UnicodeDecodeError:
        return None
    # Lead bytes A1-A3 are punctuation and symbols (，。「」): no word either way.
    leads = [char.encode("big5hkscs")[0] for char in text if char > "\x7f"]
    hanzi = [lead for lead in leads if lead > 0xA3 or lead < 0xA1]
    frequent = sum(1 for lead in hanzi if 0xA4 <= lead <= 0xC6)
    return text if hanzi and frequent >= 0.8 * len(hanzi) else None
