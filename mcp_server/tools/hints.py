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


# Each set of hints more than one tool shares, spelled once.
# Reads of the product's own records: the one annotation most tools share.
READ = hints(read_only=True, open_world=False)
# Looking changes nothing; the answer comes from outside (Tencent Cloud, a vision model).
LOOK = hints(read_only=True, open_world=True)
# Writes to the product's own records: a retry changes nothing more.
RECORD = hints(read_only=False, open_world=False)
# Creates and steering that reach outside (workflows, deliveries, the cloud): a retry changes
# nothing more (a create finds the existing one by name).
WRITE = hints(read_only=False, open_world=True)
# Each call acts again: a post, a check, a send.
AGAIN = hints(read_only=False, open_world=True, idempotent=False)
# Changes that replace or end what runs: the assistant asks the person before it does.
CHANGE = hints(read_only=False, open_world=True, destructive=True)
# Answers to a remediation that a repeated call carries further: the voice's approval asks back
# first and the same call again makes it; one without its rung approves the run's next rung
# once it moved on; a reply in a discussion answers as the person. Not idempotent: a client
# or relay retrying one would turn a question into an approval.
DECIDE = hints(read_only=False, open_world=True, destructive=True, idempotent=False)
# Replacing settings (the person's push channels, another user's role or permission): what
# was there is gone, so the assistant asks first, as for CHANGE (a page or a news item may ask
# the model for it).
REPLACE = hints(read_only=False, open_world=False, destructive=True)
