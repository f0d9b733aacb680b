"""CPU per render of markdown to HTML (emails, share pages): pathological bodies and a briefing.

    python -m bench.render [--against TREE] [--repeats 5] [--limit 100000]

Renders, with `ambient.render.markdown_html` of this tree and (with ``--against``) of another
checkout, e.g. a worktree of main before the switch to markdown-it: unmatched ``[`` and ``<``
as any member may send to ``POST /share``, and a typical briefing report (the offline briefing
of bench/llm_steps.py's first day, as the email and the share page render it); with ``--limit``
the worst shapes found, and the briefing repeated, at that many characters. Prints the
median over the repeats of the CPU seconds of one render (time.process_time); the trees take
turns within each repeat (the other tree in a child process of its own, its folder first on
the path), so load from other processes on this shared machine falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    '"[" x 2,000': "[" * 2_000,
    '"[" x 4,000': "[" * 4_000,
    '"<" x 32,000': "<" * 32_000,
    '"<" x 64,000': "<" * 64_000,
}
BRIEFING = "briefing report"
# The worst shapes found at the size POST /share takes (``--limit``): markdown-it's time is
# linear in each, at a cost per character up to ~30 us ("![": each rescans maxNesting labels).
LIMIT_SHAPES = {
    '"["': "[",
    '"!["': "![",
    '"*"': "*",
    '"*a"': "*a",
    '"<"': "<",
    "nested quotes": "> " * 30 + "x\n",
    "nested list": "".join("  " * i + "- x\n" for i in range(40)),
}


def at_limit(size: int, briefing: str) -> dict[str, str]:
    """Each shape repeated to ``size`` characters, and the briefing report as many times."""
    texts = {f"{name} to {size:,}": (shape * size)[:size] for name, shape in LIMIT_SHAPES.items()}
    texts[f"table rows to {size:,}"] = "|a|\n|-|\n" + ("|\n" * size)[: size - 8]
    texts[f"briefing to {size:,}"] = (briefing * (size // len(briefing) + 1))[:size]
    return texts


def briefing_report() -> str:
    """The full report of the offline briefing of a varied day (tables, lists, emphasis)."""
    from ambient.briefing.offline import offline_draft
    from ambient.briefing.report import full_report_markdown
    from ambient.briefing.writer import finish
    from bench.llm_steps import briefing_days

    inputs = briefing_days(1)[0]
    return full_report_markdown(finish(offline_draft(inputs), inputs, "offline"), inputs)


def seconds(texts: dict[str, str]) -> dict[str, float]:
    """CPU seconds of one render of each text by this interpreter's ambient.render."""
    from ambient.render import markdown_html

    markdown_html("warm *up*")
    spent = {}
    for name, text in texts.items():
        start = time.process_time()
        markdown_html(text)
        spent[name] = time.process_time() - start
    return spent


def in_tree(tree: Path, texts: dict[str, str]) -> dict[str, float]:
    """``seconds`` in a child process with ``tree`` first on the path."""
    start = (
        f"import sys, runpy; sys.path.insert(0, {str(tree)!r}); "
        f"runpy.run_path({__file__!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", start, "--child"],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
    )
    spent: dict[str, float] = json.loads(done.stdout)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout (e.g. main) to compare")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit", type=int, help="also the worst shapes at this many characters")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(seconds(json.loads(sys.stdin.read()))))
        return
    texts = {**CASES, BRIEFING: briefing_report()}
    if args.limit:
        texts |= at_limit(args.limit, texts[BRIEFING])
    here = Path(__file__).resolve().parent.parent
    trees = {"this tree": here, **({"against": args.against.resolve()} if args.against else {})}
    samples: dict[str, dict[str, list[float]]] = {t: {n: [] for n in texts} for t in trees}
    for repeat in range(args.repeats):
        for tree, path in trees.items() if repeat % 2 == 0 else reversed(trees.items()):
            for name, spent in in_tree(path, texts).items():
                samples[tree][name].append(spent)
    size = len(texts[BRIEFING])
    print(f"median CPU s of one render, {args.repeats} repeats; the briefing: {size} characters")
    print(f"{'input':<28}" + "".join(f"{tree:>14}" for tree in trees))
    for name in texts:
        medians = (statistics.median(samples[tree][name]) for tree in trees)
        print(f"{name:<28}" + "".join(f"{m:>14.4f}" for m in medians))


if __name__ == "__main__":
    main()
