"""The eleven LingMessage tools take and answer the names of their spec, one by one.

The spec's tool list (signing / annotate / bus) as docs/discussions.md records it: the argument
names, and the answer's top-level fields.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from ambient.deps import WorkerDeps
from tests.conftest import unique
from tests.discussions.test_scoping import _server
from tests.discussions.test_tools import _users, call

POSTED = {
    "message_id",
    "discussion_id",
    "created_discussion",
    "already_posted",
    "notified",
    "notify_error",
    "action",
}
MESSAGE = {
    "id",
    "discussion_id",
    "from_id",
    "content",
    "reply_to",
    "tags",
    "source_type",
    "created_at",
}
SIGNED = {"from_id", "content", "reply_to", "tags", "source_type", "message_id"}
# tool: (arguments, required arguments, answer fields)
SPEC: dict[str, tuple[set[str], set[str], set[str]]] = {
    "send_message": (SIGNED | {"topic"}, {"from_id", "topic", "content"}, POSTED),
    "reply_message": (
        SIGNED | {"discussion_id"},
        {"discussion_id", "from_id", "content"},
        POSTED,
    ),
    "close_discussion": (
        {"discussion_id"},
        {"discussion_id"},
        {"discussion_id", "status", "already_closed"},
    ),
    # limit: ours, past the spec (a page of long messages is read in smaller pages).
    "search_messages": (
        {"keyword", "offset", "limit"},
        {"keyword"},
        {"query", "total_matches", "results", "next_offset"},
    ),
    "detect_anomalies": (
        {"discussion_id", "threshold_seconds"},
        {"discussion_id"},
        {"discussion_id", "threshold_seconds", "count", "anomalies"},
    ),
    "annotate_discussion": (
        {"discussion_id"},
        {"discussion_id"},
        {"discussion_id", "count", "changed"},
    ),
    "list_discussions": (
        {"status", "offset"},
        set(),
        {"open", "closed", "discussions", "next_offset"},
    ),
    "read_discussion": (
        {"discussion_id", "offset", "limit"},
        {"discussion_id"},
        {"discussion", "messages", "next_offset"},
    ),
    "init_store": (set(), set(), {"participants", "discussions", "messages", "seeded"}),
    "list_projects": (set(), set(), {"count", "projects"}),
    "get_stats": (
        set(),
        set(),
        {
            "discussions",
            "open",
            "closed",
            "messages",
            "participants",
            "messages_per_participant",
            "latest_activity",
            "store_bytes",
        },
    ),
}


async def test_every_tool_takes_the_spec_arguments_and_declares_the_spec_answer(
    deps: WorkerDeps,
) -> None:
    boss = unique("boss")
    await _users(deps, admin=boss)
    async with Client(_server(deps, boss)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= set(SPEC)
    for name, (arguments, required, answer) in SPEC.items():
        schema = tools[name].input_schema
        assert set(schema.get("properties", {})) == arguments, name
        assert set(schema.get("required", [])) == required, name
        assert tools[name].output_schema is not None, name
        assert set(tools[name].output_schema["properties"]) == answer, name


@pytest.mark.parametrize("tool", list(SPEC))
async def test_each_tool_answers_the_spec_fields(deps: WorkerDeps, tool: str) -> None:
    alice = unique("alice")
    await _users(deps, alice)
    async with Client(_server(deps, alice)) as client:
        opened = await call(
            client, "send_message", from_id=alice, topic=f"spec {alice}", content="rollback 50%"
        )
        disc = opened["discussion_id"]
        args: dict[str, Any] = {
            "send_message": {"from_id": alice, "topic": f"spec {alice}", "content": "again"},
            "reply_message": {"discussion_id": disc, "from_id": alice, "content": "a reply"},
            "close_discussion": {"discussion_id": disc},
            "search_messages": {"keyword": "50%"},
            "detect_anomalies": {"discussion_id": disc},
            "annotate_discussion": {"discussion_id": disc},
            "list_discussions": {},
            "read_discussion": {"discussion_id": disc},
            "init_store": {},
            "list_projects": {},
            "get_stats": {},
        }[tool]
        answer = await call(client, tool, **args)
    assert set(answer) == SPEC[tool][2]
    if tool == "search_messages":
        assert answer["query"] == "50%" and answer["total_matches"] == 1
        assert [set(m) for m in answer["results"]] == [MESSAGE]
        assert answer["results"][0]["content"] == "rollback 50%"
    if tool == "read_discussion":
        assert [set(m) for m in answer["messages"]] == [MESSAGE]
