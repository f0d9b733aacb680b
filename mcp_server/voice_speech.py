"""Speech in and out of the voice tools: text a TTS engine reads well, and the spoken
references ("第一个", "the bitcoin watch") resolved to one remediation or task, or a question
back. Deterministic, no LLM.
"""

from __future__ import annotations

import json
import re

from ambient.remediation.views import RemediationSummary
from ambient.watches.reads import TaskSummary

MAX_SPOKEN = 300

_URL = re.compile(r"(?:https?|wss?)://\S+")
_PATH_ID = re.compile(r"\b[\w.-]+/[\w.@/-]+")  # remediation/abc…, web-monitor/alice/x
_HEX = re.compile(r"\b[0-9a-f]{8,}\b", re.IGNORECASE)
_CLOUD_ID = re.compile(r"\b(?:cls|np|ins|lb|vpc|subnet|sg)-[0-9a-z]{4,}\b", re.IGNORECASE)
_MARKDOWN = re.compile(r"[*_`#<>|\[\]]+")
# Log templates name their variable parts <*>: said as "某值" (some value), not as symbols.
_PLACEHOLDER = re.compile(r"<\*>")
_SENTENCE_END = "。！？.!?；;"


def speakable(text: str, limit: int = MAX_SPOKEN) -> str:
    """Text a TTS engine reads well: no Markdown, URLs or ids; cut at a sentence end."""
    text = _URL.sub("", text)
    text = _PLACEHOLDER.sub("某值", text)
    text = _PATH_ID.sub("", text)
    text = _CLOUD_ID.sub("", text)
    text = _HEX.sub("", text)
    text = _MARKDOWN.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([，。！？,.!?:：;；])", r"\1", text)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(c) for c in _SENTENCE_END)
    return cut[: end + 1] if end >= limit // 3 else cut[: limit - 1] + "…"


def verbatim_response(text: str) -> str:
    """The form xiaozhi-server's `mcp_endpoint` relay speaks as is, with no second LLM turn."""
    return json.dumps({"action": "RESPONSE", "response": text}, ensure_ascii=False)


def spoken_name(raw: str) -> str:
    return raw.replace("-", " ").replace("_", " ").replace(".", " ").strip()


def run_about(run: RemediationSummary) -> str:
    # service is cluster/namespace/workload: the workload is what a person calls it.
    workload = run.service.rsplit("/", 1)[-1]
    return f"{spoken_name(workload)} 的 {spoken_name(run.alert_type)}"


ORDINAL_WORDS = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]
_ORDINALS: dict[str, int] = {
    **{w: i for i, w in enumerate(ORDINAL_WORDS)},
    **{str(i + 1): i for i in range(10)},
    "first": 0,
    "second": 1,
    "third": 2,
    "fourth": 3,
    "fifth": 4,
    "last": -1,
    "最后": -1,
}


def pick_remediation(
    runs: list[RemediationSummary], said: str
) -> tuple[RemediationSummary | None, str]:
    """The run ``said`` refers to, or None and the question to ask back (deterministic)."""
    if not runs:
        return None, "现在没有等你审批的修复。"
    text = said.strip().lower()
    ordinal = re.search(
        r"第\s*([一二三四五六七八九十\d]+)|\b(first|second|third|fourth|fifth|last)\b|最后|^\s*(\d+)\s*$",
        text,
    )
    if ordinal:
        word = next((g for g in ordinal.groups() if g), None) or "最后"
        index = _ORDINALS.get(word)
        if index is not None and -len(runs) <= index < len(runs):
            return runs[index], ""
        return None, f"只有 {len(runs)} 个修复在等你审批，请说第几个。"
    words = re.sub(r"[\s_.-]+", "", text)
    matches = [
        r
        for r in runs
        if words
        and (
            words in re.sub(r"[\s_.-]+", "", r.service.lower())
            or words in re.sub(r"[\s_.-]+", "", r.alert_type.lower())
        )
    ]
    if len(matches) == 1:
        return matches[0], ""
    if not matches:
        listed = "、".join(run_about(r) for r in runs[:3])
        return None, f"没找到“{said}”。等你审批的有：{listed}。请说服务名或第几个。"
    listed = "、".join(f"第{ORDINAL_WORDS[runs.index(r)]}个{run_about(r)}" for r in matches[:3])
    return None, f"有 {len(matches)} 个符合：{listed}。请说第几个。"


def task_label(task: TaskSummary) -> str:
    name = task.task_id.rsplit("/", 1)[-1]
    if re.fullmatch(r"[0-9a-f]{12}", name):
        return speakable(task.summary or task.kind.value.replace("_", " "), 60)
    return spoken_name(name)


def pick_task(tasks: list[TaskSummary], said: str) -> tuple[TaskSummary | None, str]:
    """The task whose name (or summary) ``said`` names; ask back when none or several."""
    key = re.sub(r"[\s_.-]+", "", said.lower())
    if not tasks:
        return None, "你还没有任何任务。"

    def flat(value: str | None) -> str:
        return re.sub(r"[\s_.-]+", "", (value or "").lower())

    exact = [t for t in tasks if flat(t.task_id.rsplit("/", 1)[-1]) == key]
    if len(exact) == 1:
        return exact[0], ""
    found = exact or [
        t
        for t in tasks
        if key and (key in flat(t.task_id.rsplit("/", 1)[-1]) or key in flat(t.summary))
    ]
    if len(found) == 1:
        return found[0], ""
    if not found:
        listed = "、".join(task_label(t) for t in tasks[:4])
        return None, f"没找到叫“{said}”的任务。你的任务有：{listed}。"
    listed = "、".join(task_label(t) for t in found[:4])
    return None, f"有 {len(found)} 个任务符合：{listed}。请说完整的名字。"
