"""Errors of the agent facade (tree in the package docstring)."""

from __future__ import annotations


class AgentError(Exception):
    """Something the agent could not do; the message says what and what to try."""


class UnknownToolError(AgentError):
    """The function name maps to no tool of the registered servers."""


class ServerUnavailableError(AgentError):
    """The MCP server did not answer, also after reconnecting once."""


class AgentRefusedError(AgentError):
    """The caller's role does not allow it (an API door answers 403)."""


class ConversationError(AgentError):
    """The turn could not hold its conversation (another turn has it, or it is no longer kept);
    nothing more was run."""
