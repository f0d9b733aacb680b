"""What the voice model reads: the role prompt 小智 is given, the voice tools' descriptions
(``DESCRIPTIONS``, registered by ``mcp_server.voice``) and their arguments'.

Worded for a 1.5B local model as much as for a large one: each change here is measured with
``bench.toolcalls.run --profile voice`` (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from mcp_server.voice_numbers import hours_said, number_said, whole_hours

# The role prompt the product publishes for 小智 (its 角色介绍, docs/xiaozhi.md), sent as the
# server's MCP instructions too. It leads with "act through tools" on purpose: a 1.5B model
# given a prompt led by when-not-to-call rules answered every request in words (held-out
# pass^1 22.9 %, docs/benchmarks.md); the tool map and the no-call rules follow it.
_HEAD = (
    "You are 小智, the user's voice operations assistant. You act through tools: prefer one "
    "precise tool call over guessing, and call the tool whenever a request matches one. "
    "Tool answers can be read aloud as they are.\n"
)
_TAIL = (
    "No tool for thanks, jokes, weather or small talk (不调用工具); when no task is named "
    "(“它”“那个”), 先问是哪一个.\n"
    "Pass the voiceprint speaker name as `speaker` only when known."
)
INSTRUCTIONS = (
    _HEAD + "- 打招呼 / greeting: greet\n"
    "- 有什么要我处理、待审批 / what needs me: what_needs_me\n"
    "- 批准、拒绝修复或回滚 / approve, refuse: approve_remediation, refuse_remediation\n"
    "- 任务怎么样、暂停、恢复 / a task: task_status, pause_task, resume_task\n"
    "- 集群 / clusters: cluster_health; 报错、失败 / errors: recent_errors\n" + _TAIL
)
# `--read-only` serves the reads alone: a model told to call greet or pause_task, which it
# was not given, answered from nothing (or called a tool that is not there).
READ_ONLY_INSTRUCTIONS = (
    _HEAD + "- 有什么要我处理、待审批 / what needs me: what_needs_me\n"
    "- 任务怎么样 / a task's state: task_status\n"
    "- 集群 / clusters: cluster_health; 报错、失败 / errors: recent_errors\n"
    "这里只能查看：简报、批准、拒绝、暂停、恢复都做不了，直接这样告诉用户（不调用工具）。"
    " / This server only reads: say that briefings, approvals, pauses and resumes are not "
    "possible here, without a tool call.\n" + _TAIL
)

# Models filled "小智" or "unknown" when told only "optional": say what it is and when to
# leave it out. A value copied from this text is no speaker (ambient.speakers.names_no_speaker).
SPEAKER_DESCRIPTION = "声纹认出的人名，不知道就不填 / a voiceprint name, else leave out"


def _as_text(value: object) -> object:
    """A scalar where words go read as its text: which=2 for "第二个", a voiceprint named 1001,
    a refusal's reason=5 or a model's true. Refused, it came back the same however often it was
    said again (and a refusal never ran for its optional reason)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


# Every text argument of the voice tools is read so.
AsText = BeforeValidator(_as_text)
Spoken = Annotated[str | None, AsText, Field(default=None, description=SPEAKER_DESCRIPTION)]


def _said(description: str) -> Any:
    """A thing as the user said it: 1 to 100 characters."""
    return Field(min_length=1, max_length=100, description=description)


TaskName = Annotated[str, AsText, _said("用户说出的任务名 / the task's spoken name")]
Reference = Annotated[str, AsText, _said("用户说出的服务名 / the service the user named")]

MOST_HOURS = 168
DEFAULT_HOURS = 24
# "最近有报错吗" copied as said: "recently" alone names no span, so it is the one unsaid.
_RECENTLY = re.compile(r"\s*(?:最近|近期|近来|recent(?:ly)?|lately)[\s。.?？!！]*", re.IGNORECASE)
SPAN_DESCRIPTION = (
    "时间范围，照用户原话带单位写（两天、一周、3 hours）/ the span as said, with its unit"
)


def _hours(said: object) -> int:
    """The hours a span argument means: a number of hours or the user's words, a week at most.

    Past a week is the week, however it is written (500, "500", 500.0, "两百小时"): the
    answer says the week it read, rather than asking again for a span it understood."""
    # A number alone is hours, in digits or in words ("12", "十二", "twelve").
    number: float | None = None
    if isinstance(said, int | float) and not isinstance(said, bool):
        number = said
    elif isinstance(said, str):
        number = number_said(said)
    if number is not None:
        if not number > 0:  # no span (NaN too)
            raise ValueError(f"hours is a span of more than 0 hours, {MOST_HOURS} (a week) at most")
        return whole_hours(number, MOST_HOURS)
    hours = hours_said(said, MOST_HOURS) if isinstance(said, str) else None
    if hours is None and isinstance(said, str) and _RECENTLY.fullmatch(said):
        return DEFAULT_HOURS
    if hours is None:
        raise ValueError(f"say a time span, like “两天” or “6 hours”, not {said!r}")
    return hours


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# A 1.5B model turns "最近两天" into hours=24 and "这一周" into hours=1, but copies the words
# well (docs/benchmarks.md, round 9): the argument takes hours or the words, read by hours_said.
Span = Annotated[
    int,
    BeforeValidator(_hours),
    WithJsonSchema({"type": "string"}),
    # No default shown: the 1.5B model copied a shown "24 小时" into every call.
    Field(default=DEFAULT_HOURS, description=SPAN_DESCRIPTION, json_schema_extra=_no_default),
]


# Each voice tool's description: Chinese first (what people say), then a few English words.
DESCRIPTIONS: dict[str, str] = {
    "greet": "用户问好（你好、早上好）时调用，播报今日简报。Greeting: today's briefing.",
    "what_needs_me": "现在需要我处理什么：待我审批的修复和未结束的告警。What needs me now.",
    "approve_remediation": "批准一个等我审批的修复，按服务名。Approve a waiting remediation.",
    "refuse_remediation": "拒绝一个等我审批的修复。Refuse a waiting remediation.",
    "task_status": "某个任务或监控现在怎么样、还在跑吗，按名字。"
    "A task's status by its spoken name.",
    "pause_task": "暂停（停掉、先停一下）一个任务，按名字。Pause a task by its spoken name.",
    "resume_task": "恢复（继续、重新打开）一个暂停的任务，按名字。Resume a task, turn it back on.",
    "cluster_health": "容器集群（Kubernetes）健康状况。Kubernetes cluster health.",
    "recent_errors": "最近的错误，一句话。Recent errors of my tasks in one sentence.",
}
