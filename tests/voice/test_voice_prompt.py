"""The role prompt the product publishes for 小智: what a voice model is told about the tools."""

from __future__ import annotations

from pathlib import Path

from mcp_server.voice import TOOLS
from mcp_server.voice_prompt import INSTRUCTIONS

XIAOZHI_DOC = Path(__file__).parents[2] / "docs" / "xiaozhi.md"


def test_the_role_prompt_says_when_to_call_each_voice_tool_and_when_to_call_none() -> None:
    missing = [f.__name__ for f, _ in TOOLS if f.__name__ not in INSTRUCTIONS]
    assert missing == []
    # Chit-chat gets words and an unnamed task gets a question back, not a guessed call.
    assert "不调用工具" in INSTRUCTIONS and "先问是哪一个" in INSTRUCTIONS


def test_the_role_prompt_to_paste_into_xiaozhi_is_the_one_the_server_publishes() -> None:
    assert INSTRUCTIONS in XIAOZHI_DOC.read_text(encoding="utf-8")


def test_the_greet_example_in_the_doc_is_what_the_tool_says() -> None:
    """docs/xiaozhi.md showed "已经在 08:12 播报过了", the clock as written, after 928dc50."""
    from ambient.briefing.greeting_answers import GreetOutcome, greeting_text

    said = greeting_text(GreetOutcome.ALREADY_GIVEN, "zh", hhmm="08:12")
    assert f"| {said} |" in XIAOZHI_DOC.read_text(encoding="utf-8")
