"""CPU per page of text extraction: trafilatura alone vs main_text (fast path when plain).

    python -m bench.extract [--calls 200] [--repeats 9]

Prints, for the bench page and the changing page (bench/site.py; both plain), a page with
chrome (header, nav, aside, cookie banner, footer: not plain, so main_text pays its plain-page
check and then trafilatura) and a status page (a table of 12 services and a script: its rows
read a line each, then trafilatura), the median over the repeats of CPU ms per call
(time.process_time over `calls` calls), in one run; the two extractors take turns within each
repeat.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import trafilatura

from ambient.clients.extract import PAGE_EXTRACTOR, main_text
from bench.site import PAGE

# what bench/site.py's /changing/{n} serves: five headlines on top of the bench page
CHANGING_PAGE = PAGE.replace(
    "<article>",
    "<article>"
    + "".join(f"<p>Headline {i}: operations update number {i}.</p>" for i in range(42, 37, -1)),
    1,
)
STORY = "Operations steady today: the release went out and latency stayed inside the budget. "
CHROME_PAGE = (
    "<html><head><title>Outage review</title><script>analytics()</script></head><body>"
    "<header><a href='/'>Acme home</a></header>"
    "<nav><ul>"
    + "".join(f"<li><a href='/s{i}'>Section {i}</a></li>" for i in range(8))
    + "</ul></nav>"
    "<main><article><h1>Outage review</h1>"
    + "".join(f"<p>Finding {i}: {STORY * 2}</p>" for i in range(14))
    + "</article></main>"
    "<aside><h2>Related</h2><p><a href='/r'>Other reviews you may like</a></p></aside>"
    "<div class='cookie-banner'><p>We use cookies.</p><button>Accept</button></div>"
    "<footer><p>Copyright Acme</p></footer></body></html>"
)
STATUS_PAGE = (
    "<html><head><title>Status</title><script>refresh(60)</script></head><body>"
    "<h1>System status</h1><table><tr><th>Service</th><th>Status</th></tr>"
    + "".join(f"<tr><td>Service {i}</td><td>Operational</td></tr>" for i in range(12))
    + "</table><p>Updated every minute.</p></body></html>"
)


def trafilatura_only(html: str) -> str:
    """Page text as it was before main_text's fast path."""
    return (
        trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
        or ""
    )


def cpu_ms_per_call(
    extractors: list[Callable[[str], str]], html: str, calls: int, repeats: int
) -> list[float]:
    """Median over `repeats` of CPU ms per call of each extractor, each repeat timing `calls`
    calls; the extractors take turns within a repeat, so load from other processes on this
    shared machine falls on all of them alike."""
    for extract in extractors:
        extract(html)  # warm caches and lazy imports outside the timing
    samples: list[list[float]] = [[] for _ in extractors]
    for _ in range(repeats):
        for extract, sample in zip(extractors, samples, strict=True):
            start = time.process_time()
            for _ in range(calls):
                extract(html)
            sample.append((time.process_time() - start) * 1000 / calls)
    return [statistics.median(sample) for sample in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(f"extractor {PAGE_EXTRACTOR}; median of {args.repeats} x {args.calls} calls")
    print(f"{'page':<24}{'bytes':>7}{'trafilatura ms':>16}{'main_text ms':>14}{'ratio':>8}")
    pages = (
        ("bench page (plain)", PAGE),
        ("changing page (plain)", CHANGING_PAGE),
        ("page with chrome", CHROME_PAGE),
        ("status page (table)", STATUS_PAGE),
    )
    for name, html in pages:
        before, after = cpu_ms_per_call(
            [trafilatura_only, main_text], html, args.calls, args.repeats
        )
        print(f"{name:<24}{len(html):>7}{before:>16.3f}{after:>14.3f}{before / after:>7.1f}x")


if __name__ == "__main__":
    main()
