"""The FastAPI service: REST, events, the web page, and MCP over HTTP at /mcp."""
