"""The xiaozhi.me endpoint bridge: endpoints (who dials where), the runner (one connection per
endpoint across replicas) and MCP served over each WebSocket connection."""
