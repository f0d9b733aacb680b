"""Workflows: deterministic orchestration only, one module per workflow."""

from __future__ import annotations

# Every workflow the worker runs and `ambient replay` checks. Append new workflows here.
ALL_WORKFLOWS: list[type] = []
