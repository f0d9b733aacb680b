"""A task as the voice names it in an answer: by its name, or, unnamed (and the daily
briefing), by its summary said in the listener's language as one phrase ("提醒（每天 8点30分）");
tasks said alike numbered by when each was created ("第二个提醒（每天 8点30分）"), kept together
in a list said; two of one name told apart by their kinds, and a name said with when it runs.
Which task a spoken name picks is `voice_task_names`. Deterministic, no LLM.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from ambient.speech import speakable
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.listing import TaskSummary
from mcp_server.voice_references import ORDINALS_EN, ordinal_word, spoken_name
from mcp_server.voice_sentences import KIND_WORDS
from mcp_server.voice_summaries import spoken_summary

# What ends an item of a list said aloud, or a sentence, inside a label someone wrote: a comma
# or semicolon between words (not "1,000") and a sentence's end in English, "、" and the sentence
# ends in Chinese (whose shapes hold "，" inside their brackets, which ends no item of "、").
_LABEL_BREAKS = (
    re.compile(r"\s*(?:[、；;。！？]|[!?](?=\s|$))\s*"),
    re.compile(r"\s*(?:[,;](?!\d)|[.!?](?=\s|$)|[、，；。！？])\s*"),
)


# The name a task created without one gets (12 hex digits of a hash): digits among them, as a
# hash has; a name of the letters a-f alone ("deadbeefcafe") is one a person gave.
_DERIVED_NAME = re.compile(r"(?=[a-f]*\d)[0-9a-f]{12}")


def unnamed(name: str) -> bool:
    """Whether a task's ``name`` is the one derived for a task created without a name."""
    return _DERIVED_NAME.fullmatch(name) is not None


def task_label(task: TaskSummary, english: bool = False, among: Sequence[TaskSummary] = ()) -> str:
    """The task as the voice names it (`task_labels`), among ``among`` (the user's tasks)."""
    others = (t for t in among if t.task_id != task.task_id)
    return task_labels([task, *others], english)[task.task_id]


def task_labels(tasks: Sequence[TaskSummary], english: bool = False) -> dict[str, str]:
    """Each task's label by its id, as the voice names it among ``tasks``: by its name, or by
    its summary; one said by its summary as another is ("提醒（每天 8点30分）" for two reminders
    at 8:30) with its place among them by when each was created: "第二个提醒（每天 8点30分）",
    "the second reminder daily at 8:30" (a deleted one as it is said alone)."""
    labels, groups = said_alike(tasks, english)
    for group in groups:
        for i, task in enumerate(group):
            labels[task.task_id] = _numbered(labels[task.task_id], i, english)
    return labels


def said_order(listed: Sequence[TaskSummary], alike: list[list[TaskSummary]]) -> list[TaskSummary]:
    """``listed`` in the order a list says them: the tasks said alike (``alike``, each group in
    its numbered order, `said_alike`) together, in that order, ahead of the others (each group,
    and the others, as ``listed`` has them), so that a place said alone ("第二个") is the task
    its label numbers so ("第二个提醒…"); listed newest first, "第二个" was the first reminder."""
    number = {t.task_id: (g, i) for g, group in enumerate(alike) for i, t in enumerate(group)}
    first: dict[int, int] = {}  # each group's first place in ``listed``
    for j, task in enumerate(listed):
        if task.task_id in number:
            first.setdefault(number[task.task_id][0], j)

    def key(j: int) -> tuple[int, int, int]:
        if (g_i := number.get(listed[j].task_id)) is None:
            return (1, j, 0)
        return (0, first[g_i[0]], g_i[1])

    return [listed[j] for j in sorted(range(len(listed)), key=key)]


def said_alike(
    tasks: Sequence[TaskSummary], english: bool
) -> tuple[dict[str, str], list[list[TaskSummary]]]:
    """Each task's label said alone, by its id; and the live tasks said alike by their
    summary, each group by when they were created (a creation not known: first)."""
    labels: dict[str, str] = {}
    alike: defaultdict[str, list[TaskSummary]] = defaultdict(list)
    for task in tasks:
        said = _summary_label(task, english)
        labels[task.task_id] = said or spoken_name(task.task_id.rsplit("/", 1)[-1])
        if said is not None and task.state is not TaskState.STOPPED:
            alike[said].append(task)
    groups = [
        sorted(group, key=lambda t: (t.started_at or _LONG_AGO, t.task_id))
        for group in alike.values()
        if len(group) > 1
    ]
    return labels, groups


def _numbered(said: str, i: int, english: bool) -> str:
    """A label said with its place (from 0) among labels said alike."""
    if not english:
        return f"第{ordinal_word(i)}个{said}"
    return f"the {ORDINALS_EN[i]} {said}" if i < len(ORDINALS_EN) else f"{said} number {i + 1}"


_LONG_AGO = datetime.min.replace(tzinfo=UTC)  # a task whose creation is not known: first


def _summary_label(task: TaskSummary, english: bool) -> str | None:
    """The label of a task said by its summary; None for one said by its name."""
    name = task.task_id.rsplit("/", 1)[-1]
    # Unnamed, or the daily briefing (`daily-briefing/{user}`: its name is the user's).
    if not (unnamed(name) or task.kind is TaskKind.DAILY_BRIEFING):
        return None
    return summary_phrase(task.summary, task.kind, english)


@lru_cache(maxsize=1024)  # many tasks share a summary: read once for thousands of them
def summary_phrase(summary: str | None, kind: TaskKind, english: bool) -> str:
    """A task's summary (else its kind) as a label says it: speakable, in one phrase."""
    said = speakable(
        spoken_summary(summary, english) or kind.value.replace("_", " "), 60, english=english
    )
    # One phrase: labels are said in lists ("; " between English items, "、" between
    # Chinese ones), and a comma or a sentence's end inside one would be heard as the end
    # of an item, or of the answer's sentences (and is where xiaozhi-server splits for TTS).
    return _LABEL_BREAKS[english].sub(" ", said).strip()


def kind_word(task: TaskSummary, english: bool) -> str:
    """The word for the task's kind ("网页监控", "web monitor"); empty for one said by none."""
    zh, en = KIND_WORDS.get(task.task_id.split("/", 1)[0], ("", ""))
    return en.removeprefix("a ") if english else zh


def answer_labels(tasks: list[TaskSummary], english: bool, among: Mapping[str, str]) -> list[str]:
    """The tasks as an answer names them (``among``: `task_labels` of the user's tasks; a
    deleted one as said alone): two of one name
    ("reborn", a web monitor and a threshold watch) by their kinds too ("网页监控 reborn"),
    as they can be asked for."""
    plain = [among.get(t.task_id) or task_label(t, english) for t in tasks]
    return [
        f"{kind_word(t, english)} {label}".strip() if plain.count(label) > 1 else label
        for t, label in zip(tasks, plain, strict=True)
    ]


def with_time(task: TaskSummary, label: str, english: bool) -> str:
    """A task named by its name with when it runs as its summary says it ("standup（每天 8点）",
    "standup daily at 8:00"); a label said by its summary says it already."""
    if _summary_label(task, english) is not None:
        return label
    kind = kind_word(task, english)
    when = summary_phrase(task.summary, task.kind, english).removeprefix(kind).strip()
    if not (task.summary and kind and when):
        return label
    return f"{label} {when}" if english else f"{label}{when}"
