"""A tool name or a task id guessed wrong is steered to the nearest right one: tools/call
"delete_tasks" answered "Unknown tool: delete_tasks" and no more, get_task "briefing/alice" a
bare "no task", create_background_task {"type": "daily_briefing"} the four types it takes."""

from __future__ import annotations

from ambient.wiring import AppState
from tests.watches.test_tasks_mcp import app, call, error_of, mcp  # noqa: F401  (fixture)

FINDER = "(find_tools searches every tool)"


async def test_an_unknown_tool_is_refused_naming_the_nearest_tools(
    app: AppState,  # noqa: F811
) -> None:
    """A tool error (isError), which a model reads as the call's result: the spec's -32602
    protocol error is dropped unsaid by 小智's relays and xiaozhi-server."""
    async with mcp(app) as client:
        said = {}
        for guess in ("delete_tasks", "list_task", "create_monitor", "xyzzy"):
            refused = await client.call_tool(guess, {})
            assert refused.is_error, refused
            said[guess] = " ".join(getattr(c, "text", "") for c in refused.content)
    assert said["delete_tasks"].endswith(
        f"Unknown tool: delete_tasks; did you mean delete_task? {FINDER}"
    )
    assert "Unknown tool: list_task; did you mean list_tasks" in said["list_task"]
    assert "create_web_monitor" in said["create_monitor"] and FINDER in said["create_monitor"]
    assert said["xyzzy"].endswith(f"Unknown tool: xyzzy; tools/list names the tools {FINDER}")


async def test_a_near_miss_task_id_is_answered_with_the_nearest_of_your_ids(
    app: AppState,  # noqa: F811
) -> None:
    user = app.stdio_user
    config = {"urls": ["https://example.com/n"], "check_interval_minutes": 60}
    async with mcp(app) as client:
        briefing = (await call(client, "create_daily_briefing", timezone="Asia/Shanghai"))[
            "task_id"
        ]
        news = (await call(client, "create_web_monitor", config=config, name="news"))["task_id"]
        guessed = {
            guess: await error_of(client, "get_task", task_id=guess)
            for guess in (f"briefing/{user}", f"web_monitor/{user}/news", "nothing/like/it")
        }
        paused = await error_of(client, "pause_task", task_id=f"web-monitor/{user}/newz")
        for task_id in (briefing, news):
            await call(client, "delete_task", task_id=task_id)
    assert f"did you mean {briefing!r}?" in guessed[f"briefing/{user}"], guessed
    assert f"did you mean {news!r}" in guessed[f"web_monitor/{user}/news"], guessed
    assert "did you mean" not in guessed["nothing/like/it"], guessed
    assert "call list_tasks to see your task ids" in guessed["nothing/like/it"], guessed
    assert f"did you mean {news!r}" in paused, paused


async def test_a_daily_briefing_asked_of_the_generic_create_names_its_own_tool(
    app: AppState,  # noqa: F811
) -> None:
    async with mcp(app) as client:
        said = await error_of(client, "create_background_task", type="daily_briefing", config={})
    assert "type" in said and "create_daily_briefing" in said, said
