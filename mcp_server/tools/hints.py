"""Tool annotations: all four hints on every tool, spelled once."""

from __future__ import annotations

from mcp.types import ToolAnnotations


def hints(
    *, read_only: bool, open_world: bool, destructive: bool = False, idempotent: bool = True
) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


# Reads of the product's own records: the one annotation most tools share.
READ = hints(read_only=True, open_world=False)
