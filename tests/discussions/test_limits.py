"""What the bus's reads measure and how much they answer: bytes as bytes, long threads in pages."""

from __future__ import annotations

from mcp import Client

from ambient.deps import WorkerDeps
from tests.conftest import unique
from tests.discussions.test_scoping import _server
from tests.discussions.test_tools import _users, call


async def test_store_bytes_counts_the_utf8_bytes_of_chinese_messages(deps: WorkerDeps) -> None:
    ann = unique("bytes-ann")
    await _users(deps, ann)
    content = "磁盘快满了 disk"  # five characters of three bytes each, a space and four ASCII
    async with Client(_server(deps, ann)) as as_ann:
        await call(as_ann, "send_message", from_id=ann, topic=f"磁盘 {ann}", content=content)
        stats = await call(as_ann, "get_stats")
    assert stats["store_bytes"] == len(content.encode()) == 20
