"""The voice's recent_errors: the user's tasks' errors of a span, by task as the voice says
them (`task_said`, labels read where two are said alike), and the latest briefing's log errors."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from ambient.storage.briefings import BriefingRepository
from ambient.storage.repositories import EventRepository
from ambient.wiring import AppState
from mcp_server import voice_sentences as sentences
from mcp_server.auth import Ctx
from mcp_server.voice_answer import Checking, answer, checking, left, say
from mcp_server.voice_prompt import Span, Spoken
from mcp_server.voice_references import counted, spoken_name
from mcp_server.voice_task_labels import task_labels, unnamed
from mcp_server.voice_tasks import said_tasks

log = logging.getLogger(__name__)

_ERROR_KINDS = ("watch.failing", "watch.poll_failed", "watch.delivery_failed", "watch.breach")
LABELS_READ = 1.0  # seconds a voice answer waits for the task list its labels come from
HEX_DIGITS = "0123456789abcdef"  # how an unnamed task's name (`unnamed`) may start


async def labels_of(state: AppState, user: str, tasks: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The labels, in Chinese and English, by task id, that the task tools say the user's tasks
    by (`task_labels`), read when one of ``tasks`` is unnamed: two unnamed web monitors are
    "第一个网页监控（…）" and "第二个网页监控（…）", each one the user can say back, where
    their kind alone ("网页监控") was one word for both."""
    said = Counter(task_said(task) for task in set(tasks) if unnamed(task.rpartition("/")[2]))
    if not any(n > 1 for n in said.values()):
        return {}  # no two said alike: their kind (or name) tells them apart
    try:
        # Errors are read from the database: Temporal down, slow or refusing, they are still
        # said (by kind), and within a second of the call's budget.
        async with asyncio.timeout(min(LABELS_READ, left() / 2)):
            # Only unnamed tasks are said by their summary, and numbered among the live ones
            # said alike (`task_labels`): their names are hex digits, so the tasks whose names
            # start with one are read, not every task (past LABELS_READ with 2,000: dropped).
            starting = await state.tasks.starting(user, HEX_DIGITS)
    except Exception as exc:  # labels are a courtesy: any failure says tasks by kind
        log.info("task labels not read for %s: %r", user, exc)
        return {}
    listed = [t for t in starting if unnamed(t.task_id.rpartition("/")[2])]
    zh, en = task_labels(listed, False), task_labels(listed, True)
    return {task: (zh[task], en[task]) for task in zh}


async def watching(state: AppState, user: str) -> bool:
    """Whether the user has a task not stopped (True when that cannot be read in time: the
    answer is then said as before, not as if nothing watched)."""
    try:
        async with asyncio.timeout(min(LABELS_READ, left() / 2)):
            return bool(await state.tasks.list(user, page_size=1, without_stopped=True))
    except Exception as exc:
        log.info("tasks not read for %s: %r", user, exc)
        return True


def task_said(task_id: str, labels: Mapping[str, tuple[str, str]] | None = None) -> str:
    """A task as the voice says it: its label among the user's tasks (``labels``,
    `labels_of`), else by its name, or unnamed by its kind (a task not listed)."""
    if labels and task_id in labels:
        return say(*labels[task_id])
    kind, _, name = task_id.rpartition("/")
    if unnamed(name):
        return say(
            *sentences.KIND_WORDS.get(kind.split("/", 1)[0], ("未命名任务", "an unnamed task"))
        )
    return spoken_name(name) or say("未知任务", "an unknown task")


def _span_said(hours: int) -> tuple[str, str]:
    """The span as said back, in Chinese and English: whole days (two or more) in days, as a
    person says them ("这一周" is "最近 7 天", not "168 小时"), else in hours."""
    if hours >= 48 and hours % 24 == 0:
        days = hours // 24
        return ("两天" if days == 2 else f" {days} 天"), f"{days} days"
    return f" {hours} 小时", "hour" if hours == 1 else f"{hours} hours"


async def recent_errors(
    ctx: Ctx,
    hours: Span = 24,
    speaker: Spoken = None,
) -> str:
    """The user's tasks' errors of the last ``hours``, by task, and the log errors of the
    latest briefing prepared within them."""

    async def work(state: AppState, user: str) -> str:
        since = datetime.now(UTC) - timedelta(hours=hours)
        async with state.db.session() as session:
            counts = await EventRepository(session).count_by_task(
                user=user, kinds=_ERROR_KINDS, since=since
            )
            latest = await BriefingRepository(session).list(user, limit=1)
        # The logs' errors the briefing counted: "no errors" right after a briefing of 20 said
        # only that no task had failed; and whether it could read them at all ("no errors"
        # was said after a morning whose log read failed).
        recent = [b for b in latest if b.prepared_at is not None and b.prepared_at >= since]
        logged = sum(int(b.content.get("errors") or 0) for b in recent)
        unread = any(
            source.get("source") == "logs" and source.get("ok") is False
            for b in recent
            for source in b.content.get("sources") or []
        )
        zh, en = _span_said(hours)
        if not counts:
            if logged:
                return say(
                    f"最近{zh}你的任务没有出错，但最新的简报里，日志有 {logged} 个错误。",
                    f"No task of yours failed in the last {en}, but the latest briefing "
                    f"counted {counted(logged, 'error', 'errors')} in the logs.",
                )
            if unread:
                return say(
                    f"最近{zh}你的任务没有出错，但最新的简报没能读取日志。",
                    f"No task of yours failed in the last {en}, but the latest briefing "
                    "could not read the logs.",
                )
            if not latest and not await watching(state, user):
                # Nothing looks for errors: "no errors" alone sounds like all is well.
                return say(
                    f"最近{zh}没有错误，不过你还没有任务或每日简报在看着。",
                    f"No errors in the last {en}, but no task or daily briefing of yours "
                    "is watching yet.",
                )
            # Nothing checked, or not known to be: no errors recorded is no news.
            if (checked := await checking(state)) is Checking.NO_WORKER:
                return say(sentences.NO_WORKER_ERRORS, sentences.NO_WORKER_ERRORS_EN)
            if checked is Checking.TEMPORAL_DOWN:  # no task runs
                return say(
                    sentences.TEMPORAL_DOWN_ERRORS.format(span=zh),
                    sentences.TEMPORAL_DOWN_ERRORS_EN.format(span=en),
                )
            if checked is Checking.NOT_KNOWN:  # slow, not down: it may be checked
                return say(
                    sentences.UNCONFIRMED_ERRORS.format(span=zh),
                    sentences.UNCONFIRMED_ERRORS_EN.format(span=en),
                )
            return say(f"最近{zh}没有错误。", f"No errors in the last {en}.")
        labels = await labels_of(state, user, [task or "" for task in counts])
        await said_tasks(state, user, [])  # tasks named, but no list a place counts in
        by_task: Counter[str] = Counter()
        tasks_of: Counter[str] = Counter()  # how many tasks are said so (unnamed, not labelled)
        for task, count in counts.items():
            said = task_said(task or "", labels)
            by_task[said] += count
            tasks_of[said] += 1
        ranked = sorted(by_task.items(), key=lambda kv: (-kv[1], kv[0]))
        top = ranked[:3]
        named = "、".join(_with_count(label, tasks_of[label], count) for label, count in top)
        named_en = ", ".join(_with_count(label, tasks_of[label], count) for label, count in top)
        total = counted(by_task.total(), "error", "errors")
        # Said by what they are said: two unnamed web monitors not listed are "网页监控（2 个）",
        # and "都来自 网页监控" said one watch where two failed.
        if len(by_task) == 1:  # one said: "主要是" said there were others
            one = by_task.total() == 1
            label = top[0][0]
            alike = tasks_of[label] > 1
            said_alike = alike_once(label, tasks_of[label]) if alike else label
            said_en = _many(label, tasks_of[label]) if alike else label
            tasks = say(
                f"最近{zh}有 {by_task.total()} 个错误，{'' if one else '都'}来自 {said_alike}。",
                f"{total} in the last {en}, {'' if one else 'all '}from {said_en}.",
            )
        elif top[0][1] > top[1][1]:
            tasks = say(
                f"最近{zh}有 {by_task.total()} 个错误，主要是：{named}。",
                f"{total} in the last {en}, mostly: {named_en}.",
            )
        else:  # a tie at the top is said as one, not "mostly" the first named
            most = top[0][1]
            # Tied over all that are said (a tie of five was said as its first three alone).
            tied = [label for label, count in ranked if count == most]
            every = len(tied) == len(ranked)
            if any(tasks_of[label] > 1 for label in tied):
                tie = _tie_of_groups(tied, tasks_of, most)
            else:
                tie = _tie_of_tasks(tied, most)
            tasks = say(
                f"最近{zh}有 {by_task.total()} 个错误，{'' if every else '最多的是 '}{tie}。",
                f"{total} in the last {en}: {'' if every else 'the most from '}{tie}.",
            )
        if unread:
            return tasks + say(
                "最新的简报没能读取日志。", " The latest briefing could not read the logs."
            )
        if not logged:
            return tasks
        return tasks + say(
            f"最新的简报里，日志还有 {logged} 个错误。",
            f" The latest briefing counted {counted(logged, 'error', 'errors')} in the logs too.",
        )

    return await answer(ctx, speaker, work)


def alike_once(said: str, tasks: int) -> str:
    """``tasks`` tasks said alike (unnamed, of one kind), once: "网页监控（2 个）"."""
    return said + say(f"（{tasks} 个）", f" ({tasks})")


def _with_count(label: str, tasks: int, count: int) -> str:
    """A label and its errors: a task's own ("backup 4 次"), or the sum of ``tasks`` said alike
    ("网页监控（2 个）共 4 次", "2 web monitors, 4 times in all"), as a tie says them."""
    times = counted(count, "time", "times")
    if tasks == 1:
        return say(f"{label} {count} 次", f"{label} {times}")
    return say(f"{alike_once(label, tasks)}共 {count} 次", f"{_many(label, tasks)}, {times} in all")


def _many(label: str, tasks: int) -> str:
    """``tasks`` tasks said alike, in English: "2 web monitors" (not "a web monitor (2)")."""
    article, _, kind = label.partition(" ")
    if article in ("a", "an") and kind:
        return f"{tasks} {kind}{'es' if kind.endswith(('ch', 'sh', 's', 'x')) else 's'}"
    return f"{label} ({tasks})"  # a name said alike: no article to count by


def _tie_of_tasks(tied: list[str], most: int) -> str:
    """Tasks tied at ``most`` errors each, one a label: "A、B、C 等 4 个任务，各 2 次"."""
    names, names_en = "、".join(tied[:3]), ", ".join(tied[:3])
    if len(tied) > 3:
        names += f" 等 {len(tied)} 个任务"
        names_en += f" and {counted(len(tied) - 3, 'more task', 'more tasks')}"
    return say(f"{names}，各 {most} 次", f"{names_en}, {counted(most, 'time', 'times')} each")


def _tie_of_groups(tied: list[str], tasks_of: Mapping[str, int], most: int) -> str:
    """Labels tied at ``most`` errors, some said for several tasks: each with its count, a
    group's their sum ("网页监控（2 个）共 4 次"), where "各 4 次" said each of the two had 4."""
    said = [_with_count(label, tasks_of[label], most) for label in tied[:3]]
    rest = tied[3:]
    if not rest:
        return say("、".join(said), ", ".join(said))
    # Said by how many tasks, and what they had: each (one task: its own), or in all.
    more = sum(tasks_of[label] for label in rest)
    alone = all(tasks_of[label] == 1 for label in rest)
    sum_ = most * len(rest)
    each = "" if more == 1 else "各"
    zh = f"，还有 {more} 个任务" + (f"{each} {most} 次" if alone else f"共 {sum_} 次")
    en = f", and {counted(more, 'more task', 'more tasks')} " + (
        counted(most, "time", "times") + ("" if more == 1 else " each")
        if alone
        else f"{counted(sum_, 'time', 'times')} in all"
    )
    return say("、".join(said) + zh, ", ".join(said) + en)
