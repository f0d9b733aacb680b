"""The agent facade: MCP servers per user, their tools as OpenAI functions, and the chat loop.

AgentError
 ├── UnknownToolError       a function name that maps to no listed tool
 ├── ServerUnavailableError the server could not be reached (after one reconnect)
 ├── AgentRefusedError      the caller's role does not allow it
 └── ConversationError      a chat turn could not hold its conversation (busy, gone, taken)
"""
