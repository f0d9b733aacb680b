"""Workflows: deterministic orchestration only, one module per workflow (the worker's list of
them: workflows/registry.py)."""
