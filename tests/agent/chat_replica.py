"""A chat replica in a process of its own, for a test that kills it mid-turn.

`python -m tests.agent.chat_replica CONFIG` (CONFIG a JSON object: database_url, llm_url,
mcp_url, user, conversation_id, confirm_id, lease_seconds) approves the confirm of the stored
conversation, its calls going to the MCP server at mcp_url (as the person's added server
"remote"), and prints each event as a JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from openai import AsyncOpenAI

from ambient.agent.chat import ChatAgent
from ambient.agent.conversations import ConversationStore
from ambient.agent.facade import AgentFacade
from ambient.agent.hub import McpServerSpec, client_for
from ambient.clients.guard import DestinationGuard
from ambient.storage import Database
from tests.standins.llm_api import API_KEY


async def approve(config: dict[str, Any]) -> None:
    spec = McpServerSpec(name="remote", transport="http", url=config["mcp_url"])
    loopback = DestinationGuard(["127.0.0.0/8"])
    facade = AgentFacade(timeout_seconds=60)
    facade.add_server("remote", lambda: client_for(spec, timeout=60, guard=loopback))
    model = AsyncOpenAI(api_key=API_KEY, base_url=config["llm_url"], max_retries=0)
    async with Database(config["database_url"]) as db:
        store = ConversationStore(db, lease_seconds=config["lease_seconds"])
        agent = ChatAgent(model, "standin", facade, system="be brief")
        conversation = await store.open(config["user"], config["conversation_id"])
        steps = agent.turn(conversation, None, approve=True, confirm_id=config["confirm_id"])
        async for event in steps:
            print(event.model_dump_json(exclude_none=True), flush=True)
    await facade.close()


if __name__ == "__main__":
    asyncio.run(approve(json.loads(sys.argv[1])))
