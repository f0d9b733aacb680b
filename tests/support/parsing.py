"""Python source parsed for the tests that read the product's code."""

from __future__ import annotations

import ast

# CPython 3.11 keeps the AST builder's recursion count per interpreter, not per thread: a parse
# racing another thread's (a worker's sandbox importing, left by an earlier test in the same
# process) can fail with "AST constructor recursion depth mismatch" (python/cpython#106905).
# The source is not at fault; parsed again, it parses.
TRIES = 5


def parsed(source: str) -> ast.Module:
    for _ in range(TRIES - 1):
        try:
            return ast.parse(source)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc):
                raise
    return ast.parse(source)
