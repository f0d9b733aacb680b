"""search_logs on file topics: real paths only, inside AMBIENT_LOG_DIR, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ambient.settings import Environment, Settings
from ambient.storage.migrate import upgrade_async
from mcp_server.server import build_server
from tests.support.servers import free_port

LINE = '{"time": "2026-11-22T08:00:00Z", "level": "ERROR", "msg": "%s"}\n'
WINDOW = {"start": "2026-11-22T00:00:00Z", "end": "2026-11-23T00:00:00Z"}


def _text(result: Any) -> str:
    return " ".join(getattr(part, "text", "") for part in result.content)


@pytest.fixture
def log_tree(tmp_path: Path) -> Path:
    """logs/ with one file of its own, and symlinks that lead out of it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.log").write_text(LINE % "outside secret")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text(LINE % "inside line")
    (logs / "escape.log").symlink_to(outside / "secret.log")
    (logs / "elsewhere").symlink_to(outside, target_is_directory=True)
    (logs / "inner").mkdir()
    (logs / "inner" / "back.log").symlink_to(logs / "app.log")
    return logs


async def test_file_topics_stay_inside_the_log_folder(
    tmp_path: Path, log_tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    settings = Settings(
        environment=Environment.TEST,
        data_dir=tmp_path,
        log_dir=log_tree,
        temporal_address=f"127.0.0.1:{free_port()}",
        metrics_port=None,
        _env_file=None,  # type: ignore[call-arg]
    )
    await upgrade_async(settings.resolved_database_url)
    async with Client(build_server(settings, stdio_user="ops")) as client:

        async def search(topic: str) -> tuple[bool, Any]:
            result = await client.call_tool(
                "search_logs", {"topic_id": topic, "query": "*", **WINDOW}
            )
            return bool(result.is_error), result.structured_content or _text(result)

        for topic in ("file:", "file:.", "file:./"):
            failed, found = await search(topic)
            assert not failed, found
            assert [r["content"]["msg"] for r in found["logs"]] == ["inside line"], topic
        failed, found = await search("file:inner/back.log")  # a symlink that stays inside
        assert not failed and found["logs"][0]["content"]["msg"] == "inside line"

        for topic in (
            "file:escape.log",
            "file:elsewhere",
            "file:elsewhere/secret.log",
            "file:../outside/secret.log",
            f"file:{tmp_path / 'outside' / 'secret.log'}",
        ):
            failed, text = await search(topic)
            assert failed and "inside AMBIENT_LOG_DIR" in text, (topic, text)
            assert "outside secret" not in text

        failed, text = await search("file:app\x00.log")
        assert failed and "topic_id: holds a NUL character" in text, text
        failed, text = await search("file:" + "a" * 5000)
        assert failed and "at most 1024 characters" in text
        failed, text = await search("file:" + "/".join(["a" * 250] * 4))
        assert failed and text.startswith("Error executing tool search_logs: ") and len(text) > 40
