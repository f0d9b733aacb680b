"""Page text: the lexbor fast path gives trafilatura's lines on plain pages; others: trafilatura."""

from __future__ import annotations

import json
import random
import re

import pytest
import trafilatura
from selectolax.lexbor import LexborHTMLParser

from ambient.clients.extract import (
    FEED_EXTRACTOR,
    JSON_EXTRACTOR,
    PAGE_EXTRACTOR,
    SELECTOR_EXTRACTOR,
    Extracted,
    NoTextError,
    extracted,
    main_text,
)
from ambient.clients.page_blocks import DROPPED, block_text, not_plain_because
from ambient.watches.page_changes import diff_pages, normalise
from bench.site import PAGE as BENCH_PAGE

STORY = "Operations steady today: the release went out and latency stayed inside the budget. " * 4


def trafilatura_text(html: str) -> str:
    """Page text as it was before main_text's fast path (the contract to keep on plain pages)."""
    return (
        trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
        or ""
    )


def lexbor_text(html: str) -> str:
    tree = LexborHTMLParser(html)
    tree.strip_tags(DROPPED, recursive=True)
    assert tree.body is not None
    return block_text(tree.body)


def verdict(html: str) -> str | None:
    tree = LexborHTMLParser(html)
    tree.strip_tags(DROPPED, recursive=True)
    assert tree.body is not None
    return not_plain_because(tree.body)


def lines(text: str) -> list[str]:
    return normalise(text, [])


RELEASE_NOTES = (
    "<!doctype html><html><head><title>Release notes</title><style>p { color: red }</style>"
    "<script>track('view')</script></head><body><article>"
    "<h1>Release notes 2.4</h1>"
    "<p>Intro with <b>bold</b>, <em>emphasis</em>, <code>code()</code> and H<sub>2</sub>O. "
    f"{STORY}</p>"
    "<h2>Changes</h2>"
    f"<p>First change.<br>Second line of the first change. {STORY}</p>"
    "<pre>$ ambient upgrade\n  done in 3 s</pre>"
    "<div><h3>Fixed</h3><p>A fix inside a plain div.&nbsp;It keeps its line.</p></div>"
    "<hr><p>Closing words of the notes.</p>"
    "<script>late()</script><noscript>enable js</noscript>"
    "</article></body></html>"
)
CJK = (
    "<html><body><article><h1>发布说明</h1>"
    + "<p>今天我们发布了新版本，修复了若干问题，监控和告警都更加稳定。</p>" * 12
    + "<h2>已知问题</h2><p>部分页面的<b>加载</b>速度仍然较慢，我们会在下一个版本中改进。</p>"
    + "</article></body></html>"
)
LOOSE_PARAGRAPHS = (
    "<html><body><div><section>"
    + "".join(f"<p>Paragraph {i}: {STORY}</p>" for i in range(4))
    + "</section></div></body></html>"
)
CHROME = (
    "<html><body>"
    "<header><a href='/'>Acme home</a></header>"
    "<nav><ul><li><a href='/a'>Menu entry one</a></li>"
    "<li><a href='/b'>Menu entry two</a></li></ul></nav>"
    f"<main><article><h1>Outage review</h1><p>{STORY}</p><p>{STORY}</p></article></main>"
    "<aside><p>Related: other reviews you may like</p></aside>"
    "<div class='cookie-banner'><p>We use cookies to improve your experience.</p></div>"
    "<footer><p>Copyright Acme footer text</p></footer>"
    "<script>analytics()</script></body></html>"
)


@pytest.mark.parametrize(
    "html",
    [BENCH_PAGE, RELEASE_NOTES, CJK, LOOSE_PARAGRAPHS],
    ids=["bench-page", "headings-inline-pre-br", "cjk", "loose-paragraphs"],
)
def test_plain_page_takes_the_fast_path_and_gives_trafilaturas_lines(html: str) -> None:
    assert verdict(html) is None
    fast = main_text(html)
    assert fast == lexbor_text(html)
    assert lines(fast) == lines(trafilatura_text(html))
    assert lines(fast)  # not vacuously equal


def test_a_block_inside_a_block_is_read_once_as_trafilatura_reads_it() -> None:
    """A <p> inside a <pre> was read with the <pre> and again as its own paragraph: its lines
    twice, where trafilatura reads them once (a page whose nested paragraph changed showed the
    change twice)."""
    inners = [("p", "<p>inner para</p>"), ("p", "<p>inner para<br>second</p>")]
    for tag, inner in [*inners, ("pre", "<pre>c\nd</pre>")]:
        for frame in ("article", "main", "div"):
            html = (
                f"<html><body><{frame}><p>{STORY}</p><pre>$ run\n  ok{inner}</pre>"
                f"<p>{STORY} End.</p></{frame}></body></html>"
            )
            assert verdict(html) == f"<{tag}> inside a <pre>"
            assert main_text(html) == trafilatura_text(html), (inner, frame)
            assert lines(main_text(html)).count("inner para") <= 1


def test_same_inline_tag_nested_in_a_paragraph_stays_on_its_line() -> None:
    html = (
        f"<html><body><article><p>{STORY} Price <span>42 <span>USD</span> net</span> and "
        "<b>bold <b>inside</b> bold</b> today.</p></article></body></html>"
    )
    assert verdict(html) is None
    assert lines(main_text(html)) == lines(trafilatura_text(html))
    assert main_text(html).endswith("Price 42 USD net and bold inside bold today.")


def test_fast_path_keeps_inline_elements_on_their_blocks_line() -> None:
    text = main_text(RELEASE_NOTES)
    assert text.splitlines()[:2] == [
        "Release notes 2.4",
        "Intro with bold, emphasis, code() and H2O. " + STORY.strip(),
    ]
    assert "$ ambient upgrade\n done in 3 s" in text or "$ ambient upgrade\ndone in 3 s" in text


def _random_plain_page(seed: int) -> str:
    """Headings, paragraphs with inline markup, <br>, &nbsp;, <pre>, <hr>, scripts, nested divs,
    repeated blocks, in an <article>, a <main> or no frame."""
    rnd = random.Random(seed)
    words = "deploy release latency budget error steady news 发布 修复 监控 告警 系统".split()
    inline = ["b", "strong", "i", "em", "u", "s", "small", "mark", "sub", "sup", "code", "span"]

    def sentence() -> str:
        parts = []
        for _ in range(rnd.randint(3, 20)):
            word = rnd.choice(words)
            if rnd.random() < 0.1:
                tag = rnd.choice(inline)
                word = f"<{tag}>{word}</{tag}>"
            parts.append(word)
        text = " ".join(parts)
        if rnd.random() < 0.1:
            text += "<br>" + " ".join(rnd.choice(words) for _ in range(4))
        if rnd.random() < 0.05:
            text = text.replace(" ", "&nbsp;", 1)
        return text + "."

    def block(depth: int = 0) -> str:
        roll = rnd.random()
        if roll < 0.15:
            level = rnd.randint(1, 6)
            return f"<h{level}>{sentence()}</h{level}>"
        if roll < 0.2:
            return "<pre>" + "\n".join(" ".join(rnd.sample(words, 4)) for _ in range(3)) + "</pre>"
        if roll < 0.25:
            return "<hr>"
        if roll < 0.3:
            return "<script>var hidden = 'scripttext';</script><style>p{}</style>"
        if roll < 0.35 and depth < 2:
            return f"<div>{''.join(block(depth + 1) for _ in range(rnd.randint(1, 3)))}</div>"
        return f"<p>{sentence()} {sentence()}</p>"

    made: list[str] = []
    for _ in range(rnd.randint(2, 60)):
        # now and then a block again, right after itself or later
        made.append(rnd.choice(made) if made and rnd.random() < 0.04 else block())
    inner = "\n".join(made)
    frame = rnd.choice(["article", "main", "article", ""])
    if frame:
        inner = f"<{frame}>{inner}</{frame}>"
    return f"<!doctype html><html><head><title>t</title></head><body>{inner}</body></html>"


def test_generated_plain_pages_give_trafilaturas_lines_on_the_fast_path() -> None:
    plain = 0
    for seed in range(80):
        html = _random_plain_page(seed)
        if verdict(html) is not None or len(lexbor_text(html)) <= 250:
            continue
        plain += 1
        assert lines(main_text(html)) == lines(trafilatura_text(html)), f"seed {seed}"
        assert "scripttext" not in main_text(html)
    assert plain >= 30  # most generated pages are plain: the comparison is not vacuous


def _rewrapped(html: str, seed: int) -> str:
    """The page with some spaces of its text written as line breaks, as an editor wraps a
    source (a <pre> and a <script> are left as written)."""
    rnd = random.Random(seed)
    parts = re.split(r"(<pre>.*?</pre>|<script>.*?</script>)", html, flags=re.S)
    return "".join(
        part if i % 2 else re.sub(" ", lambda _: "\n    " if rnd.random() < 0.3 else " ", part)
        for i, part in enumerate(parts)
    )


def test_a_plain_page_wrapped_in_its_source_gives_trafilaturas_lines() -> None:
    """A line break inside a paragraph is a space to trafilatura; the fast path made it a line:
    a page re-wrapped was a change, and a phrase across the break was never found."""
    plain = 0
    for seed in range(80):
        html = _rewrapped(_random_plain_page(seed), seed)
        if verdict(html) is not None or len(lexbor_text(html)) <= 250:
            continue
        plain += 1
        assert lines(main_text(html)) == lines(trafilatura_text(html)), f"seed {seed}"
    assert plain >= 30


def test_a_plain_page_wrapped_in_its_source_reads_as_unwrapped() -> None:
    # trafilatura keeps the written breaks of a <pre> and of a block holding a <br>, a <code>
    # or an <s>: pages without them.
    kept = re.compile(r"<pre>.*?</pre>|<br>|</?code>|</?s>", re.S)
    plain = 0
    for seed in range(80):
        html = kept.sub(" ", _random_plain_page(seed))
        wrapped = _rewrapped(html, seed)
        if verdict(wrapped) is not None or len(lexbor_text(wrapped)) <= 250:
            continue
        plain += 1
        assert lines(main_text(wrapped)) == lines(main_text(html)), f"seed {seed}"
    assert plain >= 30


# Structures where trafilatura's text differs from the blocks' text, shown on pages long enough
# (> 2,500 characters) for trafilatura's own extractor to decide: each is not plain.
LONG = "".join(f"<p>Part {i}: {STORY}</p>" for i in range(10))
DIFFERENT = {
    "list": f"<article>{LONG}<ul><li>First item</li><li>Second item</li></ul>{LONG}</article>",
    "link-dense": f"<article>{LONG}<p><a href='/next'>Read the next story</a></p>{LONG}</article>",
    "time": f"<article>{LONG}<p>Updated <time>today</time> at noon.</p></article>",
    "trailing-heading": f"<article>{LONG}<h2>More soon</h2></article>",
    "heading-without-frame": f"<div>{LONG}<h2>Loose heading</h2>{LONG}</div>",
    "wild-div-text": (
        f"<article>{LONG}<div>Bare text in a div<div>nested</div></div>{LONG}</article>"
    ),
    "text-outside-article": f"<article>{LONG}</article><p>Outside words here.</p>",
    "text-outside-main": f"<main>{LONG}</main><p>Outside words here.</p>",
    # A block inside a block: its text was read once with the outer block and again as its own
    # ("inner para" twice), where trafilatura reads it once, by rules of its own.
    "paragraph-in-pre": (
        f"<article>{LONG}<pre>$ ambient upgrade\n  done<p>inner para\nwrapped</p>tail</pre>"
        f"{LONG}</article>"
    ),
    "pre-in-pre": f"<article>{LONG}<pre>a\nb<pre>c\nd</pre>e</pre>{LONG}</article>",
    "heading-in-pre": f"<article>{LONG}<pre>a\nb<h3>c\nd</h3>e</pre>{LONG}</article>",
    "paragraph-in-heading": (
        f"<article>{LONG}<h2>Title<p>sub <code>x</code>\npara</p></h2>{LONG}</article>"
    ),
}
REASONS = {
    "list": "element <ul>",
    "link-dense": "element <a>",
    "time": "element <time>",
    "trailing-heading": "ends with a heading",
    "heading-without-frame": "headings without an <article> or <main>",
    "wild-div-text": "text outside a paragraph or heading",
    "text-outside-article": "text outside the <article>",
    "text-outside-main": "text outside the <main>",
    "paragraph-in-pre": "<p> inside a <pre>",
    "pre-in-pre": "<pre> inside a <pre>",
    "heading-in-pre": "<h3> inside a <pre>",
    "paragraph-in-heading": "<p> inside a <h2>",
}


def test_a_data_tables_row_is_one_line_its_cells_apart_on_every_reading_path() -> None:
    """A status page's table was read a cell a line wherever the page was short (trafilatura's
    rescue, the fast path): a change was said "- Operational / + Degraded performance", the
    service it was of not in it; a long page's table was trafilatura's rows."""
    rows = (
        "<table id='components'><caption>Components</caption>"
        "<tr><th>Service</th><th>Status</th></tr><tr><td>API</td><td>Operational</td></tr>"
        "<tr><td>Database</td><td>Degraded <b>performance</b></td></tr></table>"
    )
    said = "\n".join(
        (
            "Components",
            "| Service | Status |",
            "| API | Operational |",
            "| Database | Degraded performance |",
        )
    )
    short = f"<html><body><h1>System status</h1>{rows}<p>Updated every minute.</p></body></html>"
    assert main_text(short).endswith(f"{said}\nUpdated every minute.")
    long = f"<html><body><article>{LONG}{rows}{LONG}</article></body></html>"
    assert f"\n{said}\n" in main_text(long)
    assert main_text(long).count("Part 9:") == 2  # the page's other text as trafilatura reads it
    # A selector's match: the table, one of its rows, or a block holding it.
    assert main_text(short, "#components") == said
    assert main_text(short, "tr:nth-of-type(3)") == "| Database | Degraded performance |"
    assert main_text(short, "body") == f"System status\n{said}\nUpdated every minute."
    served = "| API | Operational |\n| Database | Degraded performance |"
    assert main_text(short, "#components tr:nth-of-type(n+2)") == served
    # What is no text in a cell (a script, a style, an icon) is no text of its row.
    noisy = rows.replace("Operational", "Operational<script>track('outage')</script>")
    noisy = noisy.replace(
        "<td>API", "<td><style>.up{color:green}</style><svg><title>i</title></svg>API"
    )
    assert main_text(short.replace(rows, noisy)).endswith(f"{said}\nUpdated every minute.")
    # A table of layout (a block in a cell) is left as trafilatura reads it, and so is a data
    # table in one of its cells (its rows were run into one line of the layout's).
    layout = (
        f"<html><body><table><tr><td><p>Menu</p></td><td>{LONG}</td></tr></table></body></html>"
    )
    assert main_text(layout) == trafilatura_text(layout)
    nested = (
        f"<html><body><table><tr><td><p>Menu</p></td><td>{rows}</td></tr></table></body></html>"
    )
    assert main_text(nested) == trafilatura_text(nested)
    assert extracted(nested).earlier is not None  # read as the release before read it
    # A row group matched: its rows.
    grouped = rows.replace("<tr><th>", "<thead><tr><th>").replace(
        "</th></tr>", "</th></tr></thead>"
    )
    assert main_text(grouped, "tbody") == served
    assert main_text(grouped, "thead") == "| Service | Status |"


@pytest.mark.parametrize("name", sorted(DIFFERENT))
def test_structure_trafilatura_reads_differently_is_not_plain(name: str) -> None:
    html = f"<html><body>{DIFFERENT[name]}</body></html>"
    assert lines(lexbor_text(html)) != lines(trafilatura_text(html))  # why it cannot be plain
    assert verdict(html) == REASONS[name]
    assert main_text(html) == trafilatura_text(html)


@pytest.mark.parametrize(
    ("markup", "reason"),
    [
        ("<nav><p>Menu</p></nav>", "landmark <nav>"),
        ("<header><p>Top</p></header>", "landmark <header>"),
        ("<footer><p>Bottom</p></footer>", "landmark <footer>"),
        ("<aside><p>Side</p></aside>", "landmark <aside>"),
        ("<form><p>Search</p></form>", "landmark <form>"),
        ("<menu><p>Menu</p></menu>", "landmark <menu>"),
        ("<div role='navigation'><p>Menu</p></div>", "landmark role=navigation"),
        ("<div role='banner'><p>Top</p></div>", "landmark role=banner"),
        ("<div role='contentinfo'><p>Bottom</p></div>", "landmark role=contentinfo"),
        ("<div role='complementary'><p>Side</p></div>", "landmark role=complementary"),
        ("<div role='search'><p>Find</p></div>", "landmark role=search"),
        ("<div class='cookie-banner'><p>Cookies</p></div>", 'class "cookie-banner" (cookie)'),
        ("<div id='sidebar'><p>Side</p></div>", 'id "sidebar" (bar)'),
        ("<div class='Comments'><p>Nice</p></div>", 'class "Comments" (comment)'),
        ("<div class='share-tools'><p>Share</p></div>", 'class "share-tools" (share)'),
        ("<div class='breadcrumb'><p>Home</p></div>", 'class "breadcrumb" (crumb)'),
        ("<div class='top ads'><p>Buy</p></div>", 'class "top ads" (ads)'),
        ("<div class='entry-content'><p>Body</p></div>", 'class "entry-content" (entry)'),
        ("<p hidden>Secret</p>", "hidden attribute"),
        ("<p style='display:none'>Secret</p>", "style attribute"),
        ("<article><p>One</p></article><article><p>Two</p></article>", "more than one <article>"),
    ],
    ids=lambda value: (
        value if value.startswith(("landmark", "class", "id", "more", "h", "s")) else None
    ),
)
def test_chrome_landmarks_make_a_page_not_plain(markup: str, reason: str) -> None:
    html = f"<html><body><article><p>{STORY}</p></article>{markup}</body></html>"
    if markup.startswith("<article>"):
        html = f"<html><body>{markup}</body></html>"
    assert verdict(html) == reason


def test_neutral_class_names_keep_a_page_plain() -> None:
    html = (
        "<html><body class='home'><article class='x1'>"
        f"<p class='lead'>{STORY}</p><p id='p2'>More: {STORY}</p></article></body></html>"
    )
    assert verdict(html) is None
    assert lines(main_text(html)) == lines(trafilatura_text(html))


def test_page_with_nav_footer_and_cookie_banner_goes_through_trafilatura_without_the_chrome() -> (
    None
):
    assert verdict(CHROME) == "landmark <header>"
    text = main_text(CHROME)
    assert text == trafilatura_text(CHROME)
    assert "Outage review" in text and "latency stayed inside the budget" in text
    for chrome in ("Acme home", "Menu entry", "Related:", "cookies", "footer text", "analytics"):
        assert chrome not in text


def test_scripts_and_styles_never_appear_in_the_text() -> None:
    junk = (
        "<script>var leaked = 'SCRIPT';</script><style>.x{content:'STYLE'}</style>"
        "<noscript>NOSCRIPT</noscript><template><p>TEMPLATE</p></template>"
        "<svg><text>SVG</text></svg><iframe>IFRAME</iframe>"
    )
    head = "<head><script>head()</script><style>p { color: red }</style></head>"
    plain = f"<html>{head}<body><article>{junk}<p>{STORY}</p>{junk}</article></body></html>"
    assert verdict(plain) is None
    # the fast path drops every non-text element
    for word in ("SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "SVG", "IFRAME", "leaked", "head()"):
        assert word not in main_text(plain)
    # trafilatura drops scripts and styles itself (the rest is its own rule, as before)
    chrome = CHROME.replace("<main>", f"<main>{junk}")
    for word in ("SCRIPT", "STYLE", "leaked", "analytics"):
        assert word not in main_text(chrome)
    # trafilatura finds nothing: the body-text fallback leaves scripts and styles out too
    empty = f"<html>{head}<body><script>boom()</script><style>b{{}}</style></body></html>"
    assert trafilatura_text(empty) == ""
    with pytest.raises(NoTextError, match="the page has no text"):
        main_text(empty)


def test_repeated_blocks_that_trafilatura_collapses_are_not_plain() -> None:
    loose = f"<html><body><p>Intro words.</p>{LONG}<p>Intro words.</p></body></html>"
    assert verdict(loose) == "repeated text without an <article> or <main>"
    assert lines(lexbor_text(loose)) != lines(trafilatura_text(loose))
    framed = f"<html><body><article>{LONG}<p>{STORY}</p><p>{STORY}</p></article></body></html>"
    assert verdict(framed) == "the same long block twice in a row"
    assert lines(lexbor_text(framed)) != lines(trafilatura_text(framed))
    # short repeats (≤ 50 characters) stay: the bench page repeats one 41-character paragraph
    assert verdict(BENCH_PAGE) is None


def test_a_short_plain_page_keeps_its_inline_elements_on_their_line() -> None:
    """Below 250 characters trafilatura's rescue cascade split a Chinese line at its inline
    elements: a keyword written across them ("数据库故障") was never found."""
    html = "<html><body><article><p>Short <b>bold</b> note.</p></article></body></html>"
    assert verdict(html) is None
    assert main_text(html) == trafilatura_text(html) == "Short bold note."
    html = "<html><body><article><p>下午发生<b>数据库</b>故障。</p></article></body></html>"
    assert verdict(html) is None
    assert trafilatura_text(html) == "下午发生\n数据库\n故障。"
    assert main_text(html) == "下午发生数据库故障。"


def test_selector_gives_the_text_under_every_match_its_inline_elements_on_their_line() -> None:
    """A match's inline elements were lines of their own: "42" and "USD", "下午发生", "数据库"
    and "故障", so a keyword across them was never found and a diff showed fragments."""
    html = (
        "<html><head><title>Prices</title></head><body><nav>Menu</nav>"
        "<div id='price'>42 <b>USD</b></div>"
        "<ul><li class='item'>One</li><li class='item'>Two <i>too</i></li></ul>"
        "<div class='news'>下午发生<a href='/db'>数据库</a>故障"
        "<br>已<span class='ok'>恢<b>复</b></span></div>"
        f"<article><p>{STORY}</p></article></body></html>"
    )
    assert main_text(html, "#price") == "42 USD"
    assert main_text(html, ".item") == "One\nTwo too"
    assert main_text(html, ".news") == "下午发生数据库故障\n已恢复"
    assert main_text(html, "span.ok") == "恢复"
    # A match with an element of its own tag inside it: that element stays on its line too
    # ("42", "USD", "net" were three lines; the inner match is read with it, once).
    nested = "<html><body><p>Price <span>42 <span>USD</span> net</span> today</p></body></html>"
    assert main_text(nested, "span") == "42 USD net"
    assert main_text(nested, "p") == "Price 42 USD net today"
    bold = "<html><body><p>x <b>bold <b>inner</b> more</b> y</p></body></html>"
    assert main_text(bold, "b") == "bold inner more"
    # Matches inside matches are read with them, once, in page order.
    assert main_text(html, ".news, .ok, b") == "USD\n下午发生数据库故障\n已恢复"
    assert main_text(html, "article p") == STORY.strip()
    assert main_text(html, "title") == "Prices"
    with pytest.raises(NoTextError, match=r"the selector '\.missing' matches nothing"):
        main_text(html, ".missing")


def test_a_selectors_match_reads_its_source_line_breaks_and_word_breaks_as_the_page_shows() -> None:
    """A match was split into lines wherever the page's source broke a line, and at every
    inline element the reader did not know (an image, a word break): "API:" and "Major outage"
    were two lines, so the keyword "database outage" across a wrapped line was never found and
    a template indented anew was a change. The release before read matches otherwise: a
    selector's text started a new baseline once (the release after compares with s9)."""
    status = '<div class="status">\n  <span>API:</span>\n  <b>Major outage</b>\n</div>'
    assert extracted(status, ".status") == ("API: Major outage", SELECTOR_EXTRACTOR, "s9")
    indented = '<div class="status"><span>API:</span>\n\t\t<b>Major outage</b></div>'
    assert main_text(indented, ".status") == "API: Major outage"
    inline = (
        "<p id='s'>a <big>b</big> <tt>c</tt> <nobr>d</nobr> <data value='1'>e</data> "
        "<button>f</button> 数据<wbr>库<img src='i.png'>故障 "
        "<ruby>漢<rp>(</rp><rt>kan</rt><rp>)</rp></ruby></p>"
    )
    assert main_text(inline, "#s") == "a b c d e f 数据库故障 漢(kan)"
    # Blocks and <br> still make lines; a <pre>'s written lines stay lines.
    blocks = (
        "<div id='s'><h2>Database\n  outage</h2>\n<ul>\n <li>API:\n   up</li>\n"
        " <li>DB: <b>down</b><br>since 09:00</li>\n</ul><pre>$ run\n  <b>ok</b>\ndone</pre></div>"
    )
    read = "Database outage\nAPI: up\nDB: down\nsince 09:00\n$ run\nok\ndone"
    assert main_text(blocks, "#s") == read
    # An empty inline element (an icon) sits in no line's way either.
    assert main_text("<p id='s'>Status:<i class='icon'></i>Operational</p>", "#s") == (
        "Status:Operational"
    )


def test_a_match_inside_an_earlier_match_is_read_once_with_it() -> None:
    """A selector matching nested elements read the inner one's text again after the outer
    one's: "Database outage" was two lines of the text, a change inside it two changes and
    `div` on a page of nested divs read its deepest text as often as it is deep."""
    html = "<div class=news><div class=news>Database outage</div><div>Other</div></div>"
    assert main_text(html, ".news") == "Database outage\nOther"
    nested = "<div><div><p>Deep</p></div></div><div>Next</div>"
    assert main_text(nested, "div") == "Deep\nNext"
    # whichever order the selector names them in
    assert main_text(f"<p>x</p>{html}", "div > div, .news") == "Database outage\nOther"


def test_a_selectors_match_keeps_its_svg_text_and_a_line_an_unseen_element_sat_in() -> None:
    """A match lost its SVG's text (a status badge's, a chart's labels: drawn for every reader),
    and an element taken out of a line split it: "Database" and "outage" were two lines, so a
    keyword "database outage" was never found."""
    html = (
        "<html><body><div id='status'>"
        "<p>Database <script>track('x')</script>outage<style>b{}</style> resolved</p>"
        "<svg><defs><text>gradient</text></defs><style>.t{fill:red}</style>"
        "<script>draw()</script><text x='0'>99.9%</text><text x='9'>uptime</text></svg>"
        "</div></body></html>"
    )
    assert main_text(html, "#status") == "Database outage resolved\n99.9%\nuptime"
    assert main_text(html, "svg") == "99.9%\nuptime"


def test_a_selectors_match_reads_no_svg_text_that_is_not_drawn() -> None:
    """An SVG's title, description, metadata and its symbols, clip paths and masks (drawn
    only where another element uses them, as shapes) were read as text: a tooltip's words
    hit a keyword no reader saw on the page."""
    html = (
        "<div id='status'><svg><title>outage icon</title><desc>Red when an outage</desc>"
        "<metadata>generator 1.2</metadata><symbol id='s'><text>sym</text></symbol>"
        "<clipPath id='c'><text>clip</text></clipPath><mask id='m'><text>mask</text></mask>"
        "<text>All systems normal</text></svg></div>"
    )
    assert main_text(html, "#status") == "All systems normal"


@pytest.mark.parametrize(
    "html",
    [
        "",
        "   ",
        "plain words, no tags",
        "<<<>>>",
        "<p>unclosed <b>bold <i>italic",
        "<table><tr><td>cell",
        "\x00\xff binary-ish junk </div></div>",
        "<html><body><article>" + "<p>deep " * 300 + "</article>",
    ],
    ids=["empty", "blank", "text", "brackets", "unclosed", "table", "junk", "deep-nesting"],
)
def test_malformed_html_gives_text_or_says_it_has_none(html: str) -> None:
    for selector in (None, "p"):
        try:
            assert isinstance(main_text(html, selector), str)
        except NoTextError:
            pass


def test_each_reading_path_names_its_rules_a_pages_with_trafilaturas_version() -> None:
    # This release changed how a data table is read (a row's cells on one line): a page's or
    # a selector's text holding none names the release before's tag too (x7, s9), to be
    # compared with; one holding a table starts anew.
    assert PAGE_EXTRACTOR == f"x8-t{trafilatura.__version__}"
    assert (SELECTOR_EXTRACTOR, JSON_EXTRACTOR, FEED_EXTRACTOR) == ("s10", "j9", "f3")
    page = f"<html><body><article><p>{STORY}</p></article></body></html>"
    assert extracted(page).extractor == PAGE_EXTRACTOR
    assert extracted(CHROME).extractor == PAGE_EXTRACTOR  # trafilatura's
    assert extracted("a <b>", media_type="text/plain").extractor == PAGE_EXTRACTOR
    assert extracted(page, "p").extractor == SELECTOR_EXTRACTOR
    assert extracted('{"b": 1, "a": 2}', media_type="application/json") == (
        "a: 2\nb: 1",
        JSON_EXTRACTOR,
        "j8",
    )
    assert extracted(page).earlier == f"x7-t{trafilatura.__version__}"
    assert extracted(page, "p").earlier == "s9"
    tabled = page.replace("</article>", "<table><tr><td>API</td><td>ok</td></tr></table></article>")
    assert extracted(tabled).earlier is None and extracted(tabled, "article").earlier is None
    assert extracted(page, media_type="application/json").extractor == PAGE_EXTRACTOR


def test_a_json_answer_is_its_values_one_a_line_after_their_keys() -> None:
    """A JSON answer was read as JSON pretty-printed: an item appended to a list gave the old
    last item's line a trailing comma, so the old entry was a new line and its keyword hit
    again, and a string kept its escapes ("a\\nb" one line, its quotes as \\")."""

    def read(answer: object) -> list[str]:
        return lines(main_text(json.dumps(answer), media_type="application/json"))

    old = {"alerts": ["Database outage"], "incidents": [{"name": "DB outage", "status": "ok"}]}
    for new, added in (
        ({**old, "alerts": ["Database outage", "API slow"]}, ["alerts: API slow"]),
        ({**old, "alerts": ["API slow", "Database outage"]}, ["alerts: API slow"]),
        (
            {**old, "incidents": [*old["incidents"], {"name": "API slow", "status": "open"}]},
            ["incidents: name: API slow | status: open"],
        ),
    ):
        diff = diff_pages(read(old), read(new), ["outage"])
        assert (diff.added, diff.hits) == (added, {}), new
    incident = ["incidents: name: DB outage | status: ok"]
    assert read(old) == ["alerts: Database outage", *incident]
    # A string as written, its lines lines; keys in order; other values as JSON writes them.
    notes = '"Line one\\nsaid \\"\\u6570\\u636e\\u5e93\\""'
    answer = f'{{"notes": {notes}, "b": [true, null, 1.5, {{}}, []]}}'
    assert extracted(answer, media_type="application/json") == (
        'b: true\nb: null\nb: 1.5\nb: {}\nb: []\nnotes: Line one\nsaid "数据库"',
        JSON_EXTRACTOR,
        "j8",  # read so by the release before: its change at the upgrade is told
    )


def test_an_object_in_a_list_is_one_line_its_name_first_so_a_change_says_whose() -> None:
    """A status API's components (Statuspage's summary.json) were a line a field: a change was
    "- components.status: operational / + components.status: major_outage", the component
    nowhere in it, and a keyword naming it never hit."""
    component = {"id": "b2", "name": "Database", "status": "operational", "group_id": None}
    before = {"page": {"name": "Acme"}, "components": [{**component, "name": "API"}, component]}
    after = {**before, "components": [before["components"][0], {**component, "status": "down"}]}

    def read(answer: object) -> Extracted:
        return extracted(json.dumps(answer, ensure_ascii=False), media_type="application/json")

    diff = diff_pages(lines(read(before).text), lines(read(after).text), ["Database"])
    said = "components: name: Database | id: b2 | group_id: null | status: %s"
    assert diff.added == [said % "down"] and f"-{said % 'operational'}" in diff.excerpt
    assert diff.hits == {"Database": [said % "down"]}
    assert read(before).earlier is None  # read otherwise by the release before: anew
    # An item holding a list or an object of its own is read a field a line, as before.
    nested = {"incidents": [{"name": "DB", "page": {"id": "p1"}, "updates": ["数据库恢复"]}]}
    said = "incidents.name: DB\nincidents.page.id: p1\nincidents.updates: 数据库恢复"
    assert read(nested) == (said, JSON_EXTRACTOR, "j8")
    # An object of one plain value outside an object reads as the release before read it; a
    # string's line breaks in a row are spaces (a line of its own named no component).
    assert read([{"name": "API"}, {"name": "DB"}]) == ("name: API\nname: DB", JSON_EXTRACTOR, "j8")
    assert read({"c": [{"name": "API", "note": "a\nb"}]}).text == "c: name: API | note: a b"


def test_an_apps_shell_is_said_rendered_by_javascript_not_read_as_its_noscript() -> None:
    """create-react-app's and Vue CLI's index.html were a page whose text was their <noscript>
    ("You need to enable JavaScript to run this app."): a baseline, then "unchanged" for ever,
    the user never told the watch saw nothing of the app."""
    shell = (
        "<!doctype html><html><head><title>Shop</title></head><body><noscript>You need to "
        "enable JavaScript to run this app.</noscript><div id='root'></div>"
        "<script src='/static/js/main.js'></script></body></html>"
    )
    for page in (shell, shell.replace("id='root'", "id='app'")):
        with pytest.raises(NoTextError, match="is it rendered by JavaScript"):
            extracted(page)
    # A page with text beside its <noscript> is read as before; so is one whose text is drawn
    # (an SVG badge) or in a declarative shadow root, shown without a script.
    assert main_text(shell.replace("<div id='root'></div>", "<p>Open daily.</p>")) == "Open daily."
    badge = "<html><body><svg><text>build passing</text></svg></body></html>"
    shadow = "<html><body><div><template shadowrootmode='open'><p>All good.</p></template></div>"
    for page in (badge, shadow):
        assert extracted(page).text, page


def test_a_plain_text_page_is_read_as_it_is_written() -> None:
    # A changelog.txt or a status.txt: its angle brackets are text, not tags.
    text = "v2.1 <2026-11-25>: a < b now holds\nfixed: <script> in titles"
    assert main_text(text, media_type="text/plain; charset=utf-8") == text
    with pytest.raises(NoTextError):
        main_text(" \n", media_type="text/plain")


def test_a_comment_inside_a_paragraph_keeps_its_text_on_one_line_as_trafilatura_does() -> None:
    """Server-rendered React writes "<!-- -->" between a paragraph's text pieces: the fast path
    split the paragraph there, where trafilatura (which drops comments) reads one line, and a
    keyword across the comment was never found."""
    html = (
        "<html><body><article><!-- top --><h1>Prices</h1>"
        + "".join(
            f"<p>Price {i} today is <!-- -->42<!-- --> dollars. {STORY}</p>" for i in range(3)
        )
        + "</article></body></html>"
    )
    assert verdict(html) is None
    fast = main_text(html)
    assert "Price 1 today is 42 dollars." in fast
    assert lines(fast) == lines(trafilatura_text(html))


def test_what_a_page_hides_from_its_reader_is_not_its_text() -> None:
    # Its hidden attribute and an inline style that hides it; aria-hidden is on screen.
    hides = [
        "<p hidden>Major outage</p>",
        "<div style='display:none'>Major outage</div>",
        '<div style="color: red; DISPLAY : NONE">Major outage</div>',
        "<span style='visibility: hidden'>Major outage</span>",
    ]
    for hidden in hides:
        page = f"<html><body><p>All systems operational.</p>{hidden}</body></html>"
        assert main_text(page) == "All systems operational.", hidden
        selected = f"<html><body><div id='s'><p>All systems operational.</p>{hidden}</div>"
        assert main_text(selected + "</body></html>", "#s") == "All systems operational."
    shown = "<html><body><p>All systems operational.</p><p aria-hidden='true'>Icons</p></body>"
    assert "Icons" in main_text(shown + "</html>")
    # An element the selector names is read though the page hides it: the user asked for it.
    assert main_text("<html><body><p id='d' hidden>Draft</p></body></html>", "#d") == "Draft"


def test_a_hidden_span_or_a_script_inside_a_paragraph_does_not_split_its_line() -> None:
    """Chinese sites put hidden spans inside text against copying; the reader sees one line,
    as docs/watches.md promises `Database <script>…</script>outage` reads "Database outage"
    (trafilatura reads it so too). The fast path made two lines of it: a keyword across them
    never hit."""
    hidden = "<p>下午发生数据库<span style='display:none'>7f3a</span>故障</p>"
    scripted = "<p>Database <script>var x = 1</script><noscript>JS</noscript>outage</p>"
    for paragraph, line in ((hidden, "下午发生数据库故障"), (scripted, "Database outage")):
        read = extracted(f"<html><body>{paragraph}</body></html>")
        assert read == (line, PAGE_EXTRACTOR, f"x7-t{trafilatura.__version__}"), paragraph
    # A script beside the paragraphs splits no text: compared with the release before's.
    beside = f"<html><body><p>{STORY}</p><script>track()</script><p>Bye.</p></body></html>"
    assert extracted(beside).text == f"{STORY.strip()}\nBye."
    assert extracted(beside).earlier == f"x7-t{trafilatura.__version__}"
    assert lines(main_text(beside)) == lines(trafilatura_text(beside))


def test_a_text_file_served_as_markdown_csv_or_bytes_is_read_as_written() -> None:
    """Only text/plain was read as text: a CHANGELOG.md (text/markdown), a CSV, a file served
    as application/octet-stream was parsed as HTML, and a "<script>" written in it took every
    line after it away (a release added below it was no change)."""
    changelog = (
        "# Changelog\n\n## 2.4.1\n- Security: escape <script> in titles\n\n"
        "## 2.4.0\n- URGENT: database migration required\n"
    )
    for kind in ("text/markdown; charset=utf-8", "text/csv", "application/octet-stream", ""):
        read = extracted(changelog, media_type=kind)
        assert "database migration" in read.text and "<script>" in read.text, kind
        assert read.earlier == f"x7-t{trafilatura.__version__}"  # read so by the release before
    # A page served as bytes is still a page.
    page = "<!doctype html><html><body><p>All quiet.</p><script>x()</script></body></html>"
    assert main_text(page, media_type="application/octet-stream") == "All quiet."


def _atom(*entries: tuple[str, str]) -> str:
    body = "".join(
        f"<entry><title>{title}</title><link href='https://status.example/{i}'/><id>{i}</id>"
        f"<updated>2024-05-0{i}T10:00:00Z</updated><summary>{summary}</summary></entry>"
        for i, (title, summary) in enumerate(entries, 1)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Status</title>{body}</feed>"
    )


async def test_a_feeds_entries_are_lines_so_a_new_entry_is_the_change_and_its_hit() -> None:
    """An Atom feed was read as one line of its fields run together ("Database down1 2024-…"):
    any new entry made that line "added", so a word of an old entry hit again, and a word of
    the new one that ran into the next field never did."""
    from activities.watches import read_page
    from ambient.clients.web import WebFetcher
    from ambient.watches.configs import WebMonitorConfig
    from ambient.watches.page_changes import diff_pages
    from tests.watches.test_http1 import Scripted, ok, scripted

    old = [("Scheduled maintenance", "DB maintenance on Saturday"), ("Resolved", "All good")]
    new = [("Database down", "We are investigating"), *old]
    atom = "Content-Type: application/atom+xml; charset=utf-8"
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    server = Scripted(ok(_atom(*old).encode(), atom), ok(_atom(*new).encode(), atom))
    async with scripted(server) as (_, port):
        url = f"http://127.0.0.1:{port}/history.atom"
        config = WebMonitorConfig.model_validate(
            {"urls": [url], "keywords": ["maintenance", "down"]}
        )
        before = await read_page(fetcher, url, config)
        after = await read_page(fetcher, url, config)
    await fetcher.aclose()
    diff = diff_pages(before.lines, after.lines, config.keywords)
    assert diff.added == ["Database down", "We are investigating"]
    assert set(diff.hits) == {"down"}


def test_an_rss_feeds_html_is_read_as_its_text_in_the_encoding_it_was_read_in() -> None:
    rss = (
        '<?xml version="1.0" encoding="gbk"?><rss version="2.0"><channel><title>新闻</title>'
        "<item><title>数据库故障</title><description><![CDATA[<p>正在<b>处理</b></p>]]>"
        "</description></item><item><title>B</title>"
        "<description>&lt;p&gt;escaped &amp;amp; html&lt;/p&gt;</description></item>"
        "</channel></rss>"
    )
    for kind in ("application/rss+xml", "text/xml; charset=gbk", "application/xml", ""):
        read = extracted(rss, media_type=kind)
        assert read.text == "新闻\n数据库故障\n正在处理\nB\nescaped & html", kind
        # f1 put a space at an image or a word break: a feed starts anew.
        assert read.extractor == "f3" and read.earlier is None
    # XML that is no feed is read as before.
    assert extracted("<html><body><p>x</p></body></html>", media_type="text/xml").text == "x"


def test_a_feeds_plain_text_holding_a_less_than_sign_is_read_whole() -> None:
    """A feed's text holding a "<" was read as HTML: Atom's type="text" summary "if x&lt;y
    then outage" read "if x" (a tag "<y then outage>"), so the keyword "outage" never hit.
    Text the feed calls HTML, or that holds a tag where it says nothing (RSS), still is."""
    atom = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Status</title>'
        '<entry><title type="text">x&lt;y</title>'
        '<summary type="text">if x&lt;y then outage &lt;b&gt;</summary></entry>'
        '<entry><title type="html">&lt;b&gt;Fish&lt;/b&gt; &amp;amp; chips</title>'
        '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>a&lt;b</p></div>'
        "</content></entry></feed>"
    )
    assert extracted(atom, media_type="application/atom+xml").text == (
        "Status\nx<y\nif x<y then outage <b>\nFish & chips\na<b"
    )
    rss = _rss("&lt;p&gt;Fixed &lt;b&gt;now&lt;/b&gt;&lt;/p&gt;", "if x&lt;y then outage")
    assert extracted(rss, media_type="application/rss+xml").text == (
        "Status\nentry 0\nFixed now\nentry 1\nif x<y then outage"
    )


async def test_a_feed_served_as_html_or_plain_text_is_read_as_a_feed() -> None:
    """PHP's rss.php answers text/html, a CMS's feed text/plain: read as a page, the feed was
    its fields run together, its <lastBuildDate> rebuilt at every request a change at every
    check, and a hit showed the entry's raw CDATA. Bytes read before are not read again."""
    from activities.watches import SameBytes, read_page
    from ambient.clients.web import WebFetcher
    from ambient.watches.configs import WebMonitorConfig
    from ambient.watches.models import UrlState
    from tests.watches.test_http1 import Scripted, ok, scripted

    def rss(built: str) -> str:
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>新闻'
            f"</title><lastBuildDate>{built}</lastBuildDate><item><title>数据库故障</title>"
            "<description><![CDATA[<p>正在<b>处理</b></p>]]></description></item>"
            "</channel></rss>"
        )

    for kind in ("text/html; charset=utf-8", "text/plain; charset=utf-8"):
        read = extracted(rss("Sat, 05 Dec 2026 01:00:00 +0800"), media_type=kind)
        assert read.text == "新闻\n数据库故障\n正在处理", kind
        assert read.extractor == "f3"
    # A page is still a page.
    page = "<!doctype html><html><body><p>rss feed</p></body></html>"
    assert extracted(page, media_type="text/html").extractor != "f3"
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    html = "Content-Type: text/html; charset=utf-8"
    first, second = rss("Sat, 05 Dec 2026 01:00:00 +0800"), rss("Sat, 05 Dec 2026 01:01:00 +0800")
    server = Scripted(
        ok(first.encode(), html), ok(second.encode(), html), ok(second.encode(), html)
    )
    async with scripted(server) as (_, port):
        url = f"http://127.0.0.1:{port}/rss.php"
        config = WebMonitorConfig.model_validate({"urls": [url], "keywords": ["故障"]})
        before = await read_page(fetcher, url, config)
        after = await read_page(fetcher, url, config)
        seen = {**after.fresh, "hash": after.hash, "extractor": after.extractor}
        again = await read_page(fetcher, url, config, UrlState.model_validate(seen))
    await fetcher.aclose()
    assert before.lines == after.lines == ["新闻", "数据库故障", "正在处理"]
    assert isinstance(again, SameBytes), again


def test_an_rss_091_feed_opening_with_its_doctype_is_read_as_a_feed() -> None:
    """RSS 0.91 feeds open with Netscape's DOCTYPE (some with an internal subset): read as a
    page, their entries ran together as one line, as a feed without one did before f1."""
    entries = "<item><title>A</title><description>one</description></item>"
    for doctype in (
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">',
        '<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]>',
    ):
        rss = (
            f'<?xml version="1.0" encoding="utf-8"?>\n{doctype}\n<rss version="0.91">'
            f"<channel><title>News</title>{entries}"
            "<item><title>B</title><description>two</description></item></channel></rss>"
        )
        read = extracted(rss, media_type="application/rss+xml")
        assert read.text == "News\nA\none\nB\ntwo", doctype
        assert read.extractor == "f3"


def _rss(*descriptions: str) -> str:
    items = "".join(
        f"<item><title>entry {n}</title><description>{d}</description></item>"
        for n, d in enumerate(descriptions)
    )
    channel = f"<channel><title>Status</title>{items}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'


def test_a_feed_entrys_script_and_hidden_text_are_no_text_of_it() -> None:
    """An escaped <script> in an entry's description (an embed, an analytics snippet) was read
    as words of the entry, its words hits of keywords the reader never sees; a hidden span
    inside a phrase split it. Such a feed starts a new baseline once (f1 read them)."""
    scripted = "&lt;p&gt;All systems normal.&lt;script&gt;track('outage')&lt;/script&gt;&lt;/p&gt;"
    hidden = "<![CDATA[<p>数据库<span style='display:none'>x9</span>故障</p>]]>"
    styled = "<![CDATA[<style>p{color:red}</style><p>Fine<iframe src=x>embed</iframe>.</p>]]>"
    assert extracted(_rss(scripted, hidden, styled), media_type="application/rss+xml") == (
        "Status\nentry 0\nAll systems normal.\nentry 1\n数据库故障\nentry 2\nFine.",
        "f3",
        None,
    )
