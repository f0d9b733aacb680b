"""The MCP server: a thin adapter from tools to workflows, the database and the clients."""
