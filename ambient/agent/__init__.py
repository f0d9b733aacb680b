"""The agent facade: MCP servers per user, their tools as OpenAI functions, and the chat loop.

AgentError
 ├── UnknownToolError       a function name that maps to no listed tool
 └── ServerUnavailableError the server could not be reached (after one reconnect)
"""

from ambient.agent.errors import (
    AgentError,
    ServerUnavailableError,
    UnknownToolError,
)
from ambient.agent.facade import AgentFacade, ToolInfo
from ambient.agent.servers import McpServerSpec

__all__ = [
    "AgentError",
    "AgentFacade",
    "McpServerSpec",
    "ServerUnavailableError",
    "ToolInfo",
    "UnknownToolError",
]
