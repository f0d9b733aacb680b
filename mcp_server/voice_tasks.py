"""The voice profile's task tools: a task's status, pause and resume, each naming the task by
a spoken name (`voice_task_names.pick_task`), the list an answer asked back with kept for a
place said next ("第二个")."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ambient.briefing.models import DayPushed
from ambient.briefing.pushed import day_pushed, named_channels
from ambient.controls_in_flight import ALREADY_SO, DELIVERED_UNCONFIRMED
from ambient.request_deadline import request_deadline
from ambient.storage.briefings import BriefingRepository
from ambient.storage.repositories import EventRepository
from ambient.storage.users import user_named
from ambient.watches.configs import TaskKind
from ambient.watches.inputs import TASK_NAME, WorkerSilentError
from ambient.watches.listing import TaskSummary
from ambient.watches.models import TaskStatus
from ambient.watches.pauses import site_waits
from ambient.wiring import AppState
from mcp_server import voice_sentences as sentences
from mcp_server.auth import Ctx
from mcp_server.voice_answer import answer, device, english, left, say, worker_time
from mcp_server.voice_failures import failed_clause
from mcp_server.voice_prompt import Spoken, TaskName
from mcp_server.voice_references import (
    PAUSE_VERBS,
    RESUME_VERBS,
    counted,
    names_a_place,
    without_verb,
)
from mcp_server.voice_task_labels import task_label, unnamed
from mcp_server.voice_task_names import pick_task

# The tasks a user's last asking answer named ("有 2 个任务符合：A、B"), in its order: "第二个"
# said next is a place in that list. A voice call carries no history of its own and the next
# one may reach another API replica, or one restarted since: the list is an event of the user's
# (a replica's own memory counted "第二个" among the user's first four tasks there), kept with
# the device that heard it: "第二个" said at another of the user's speakers is not that list's.
TASKS_NAMED = "voice.tasks_named"
# How long an answer's list is what a place refers to: the question it asked is pending that
# long on that device (or until an answer names another list, or none: what_needs_me,
# recent_errors), and a place said meanwhile ("第二个", or 2 as a model sends it) answers it
# before any task's name; a task picked from it leaves it pending ("第一个" said next too).
NAMED_FOR = timedelta(minutes=5)
NAMED_READ = 50  # the user's latest lists read to find the calling device's


async def _which_task(
    state: AppState, user: str, name: str, verbs: tuple[str, ...] = ()
) -> tuple[TaskSummary | None, str, tuple[str, str]]:
    """The user's task ``name`` names (the tool's ``verbs`` a model copied before it left
    out), or None and the question asked back (its list kept); and the task's label in
    Chinese and English, as said among the user's tasks."""
    # The list is read for a place alone only, and written by an answer that asks back; a
    # place said while it is kept answers it before any name ("2" is its second, not a task
    # named "2" nor backup-2).
    place = names_a_place(without_verb(name, verbs))
    named = await _named_lately(state, user) if place else []
    if not named and (task := await _named_as_written(state, user, name)) is not None:
        return task, "", (task_label(task, False), task_label(task, True))
    # Every task: a name is only found among the tasks it is compared with.
    tasks = list(await state.tasks.list(user))
    picked = pick_task(tasks, name, english.get(), named=named, verbs=verbs)
    if picked.named:
        await said_tasks(state, user, picked.named)
    if picked.task is None:
        return None, picked.question, ("", "")
    label = task_label(picked.task, False, tasks), task_label(picked.task, True, tasks)
    return picked.task, picked.question, label


async def said_tasks(state: AppState, user: str, tasks: list[str]) -> None:
    """Keep ``tasks`` as the list the user's device was last told (a place said next counts
    in it); none: an answer that named no list of tasks, so one heard before is not the list a
    place said now refers to ("暂停第二个" after what needs me paused a task of a list heard
    minutes before)."""
    async with state.db.session() as session:
        await EventRepository(session).add(
            TASKS_NAMED, user=user, payload={"tasks": tasks, "device": device.get()}
        )
        await session.commit()


async def _named_as_written(state: AppState, user: str, name: str) -> TaskSummary | None:
    """The one task whose name ``name`` says as written (its words joined by '-', '_', '.' or
    nothing), said by that name alone; else None. Read by id: every task's row read to find
    it took 0.2 s with 200 tasks and 2 s with 2,000, past a voice call's budget under load."""
    words = name.lower().split()
    written = {sep.join(words) for sep in ("-", "_", ".", "")}
    names = [n for n in written if TASK_NAME.fullmatch(n) and not unnamed(n)]
    if not names:
        return None
    # A task said by its summary (unnamed, the briefing) is labelled among the others.
    found = await state.tasks.named(user, names)
    return found[0] if len(found) == 1 else None


async def _named_lately(state: AppState, user: str) -> list[str]:
    """The tasks the user's last asking answer on this device named, if within NAMED_FOR;
    else none."""
    since = datetime.now(UTC) - NAMED_FOR
    async with state.db.session() as session:
        lists = await EventRepository(session).list(
            user=user, kind=TASKS_NAMED, since=since, limit=NAMED_READ
        )
    # A list stored before lists named their device is any device's.
    at = device.get()
    here = next((e.payload for e in lists if e.payload.get("device", at) == at), {})
    return list(here.get("tasks") or [])


async def task_status(ctx: Ctx, name: TaskName, speaker: Spoken = None) -> str:
    """The named task's state and checks."""

    async def work(state: AppState, user: str) -> str:
        tasks = state.tasks
        task, question, (label, label_en) = await _which_task(state, user, name)
        if task is None:
            return question
        with request_deadline(worker_time()):
            status = await tasks.get(user, task.task_id)
        said = sentences.STATE_WORDS.get(status.state.value, status.state.value)
        said_en = sentences.STATE_WORDS_EN.get(status.state.value, status.state.value)
        async with state.db.session() as session:
            # A watch failing its checks now (as what_needs_me tells it) runs all the same.
            failing = await EventRepository(session).failing_pages(user=user, task=task.task_id)
        but, but_en = failed_clause(status, failing)
        if task.kind == TaskKind.DAILY_BRIEFING:
            # Its runs are counted when a day's greeting window ends: "已执行 0 次" was said
            # right after the day's briefing was spoken. Said instead: the latest one's state.
            latest, latest_en = await _latest_briefing(state, user)
            return say(f"{label}{said}，{latest}。", f"{label_en} {said_en}; {latest_en}.")
        n, times = status.checks, counted(status.checks, "time", "times")
        # Only a watch checks something: a reminder, a digest or the briefing runs. None yet is
        # said so ("已执行 0 次", ran 0 times, was said of a reminder before its first time).
        done, done_en = (
            (
                (f"已检查 {n} 次", f", checked {times}")
                if n
                else ("还没有检查过", " and has not been checked yet")
            )
            if task.kind in (TaskKind.WEB_MONITOR, TaskKind.THRESHOLD_WATCH)
            else (
                (f"已执行 {n} 次", f", run {times} so far")
                if n
                else ("还没有执行过", " and has not run yet")
            )
        )
        wait, wait_en = await _site_wait(state, user, status)
        over, over_en = _over_line(status) if not but else ("", "")
        return say(
            f"{label}{said}，{done}{over}{but}{wait}。",
            f"{label_en} {said_en}{done_en}{over_en}{but_en}{wait_en}.",
        )

    return await answer(ctx, speaker, work)


def _over_line(status: TaskStatus) -> tuple[str, str]:
    """A threshold watch over its line now, with its last value ("checked 19 times" was all
    that was said of one in breach); empty otherwise."""
    if status.kind is not TaskKind.THRESHOLD_WATCH or status.detail.get("breaching") is not True:
        return "", ""
    value = status.detail.get("last_value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"，现在越过了阈值，最新的值是 {value:.6g}", f", and is over its line at {value:.6g}"
    return "，现在越过了阈值", ", and is over its line"


async def _site_wait(state: AppState, user: str, status: TaskStatus) -> tuple[str, str]:
    """A web monitor's page whose server asked us to wait (a check now then checks nothing),
    said short with when the wait ends in the user's zone; empty without one."""
    waits = site_waits(status, datetime.now(UTC)) if status.kind is TaskKind.WEB_MONITOR else []
    if not waits:
        return "", ""
    row = await user_named(state.db, user)
    try:
        zone = ZoneInfo(row.timezone if row is not None else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    until = f"{max(w.until for w in waits).astimezone(zone):%H:%M}"
    return (
        f"；网站要求我们稍等，{until}之后再检查",
        f"; its site asked us to wait: checked again after {until}",
    )


async def _latest_briefing(state: AppState, user: str) -> tuple[str, str]:
    """The latest briefing's day and whether it was given, in Chinese and English: the day's
    greeting, stored when its window ends, read from the run until then."""
    async with state.db.session() as session:
        rows = await BriefingRepository(session).list(user, limit=1)
    if not rows:
        return "还没有准备过简报", "no briefing has been prepared yet"
    row = rows[0]
    given = row.given_at is not None
    if not given:
        with request_deadline(worker_time()):
            live = await state.briefings.read_status(user, quiet=True)
        given = bool(live and live.day and live.day.date == row.date and live.given_at)
    day = date.fromisoformat(row.date)
    if given:
        state_zh, state_en = "已播报", "has been given"
    elif row.pushed_at is not None:
        # Pushed: its inbox copy stored. "已推送" was said when no push channel took it.
        state_zh, state_en = _pushed_state(await day_pushed(state.db, user, row.date))
    else:
        state_zh, state_en = "已准备好，还没播报", "is ready, not given yet"
    return (
        f"最新一期是 {day.month} 月 {day.day} 日的，{state_zh}",
        f"the latest, of {day.day} {day:%B}, {state_en}",
    )


def _pushed_state(pushed: DayPushed) -> tuple[str, str]:
    """A pushed briefing's state as said: sent to the channels that took it, else in the inbox.
    No time is said, so a channel that took only a later send is one it was sent to too."""
    if not pushed.took:
        return "没有推送渠道收到，在你的收件箱里", "is in your inbox: no push channel took it"
    if pushed.all_took:
        return "已推送到你的消息渠道", "has been sent to your channels"
    zh = named_channels(pushed.took, chinese=True)
    en = named_channels(pushed.took, chinese=False)
    return f"已推送到你的{zh}", f"has been sent to your {en}"


async def _control(ctx: Ctx, name: str, pause: bool, speaker: str | None) -> str:
    async def work(state: AppState, user: str) -> str:
        tasks = state.tasks
        verbs = PAUSE_VERBS if pause else RESUME_VERBS
        task, question, (label, label_en) = await _which_task(state, user, name, verbs)
        if task is None:
            return question
        verb, verb_en = ("暂停", "pause") if pause else ("恢复", "resume")
        # Within the call's budget, all of it (a silent worker: said as sent or not).
        control = tasks.pause if pause else tasks.resume
        try:
            with request_deadline(left()):
                note = (await control(user, task.task_id)).note
        except WorkerSilentError as exc:
            if exc.sent is None:  # a read's: said as one
                raise
            if not exc.sent:
                return say(
                    f"{verb}{label}的指令没有发出，它没有变。请稍后再说一次。",
                    f"I couldn't send the {verb_en}, so {label_en} is unchanged."
                    " Please ask again in a moment.",
                )
            note = DELIVERED_UNCONFIRMED  # sent, and may still apply: as a note says it
        if note == DELIVERED_UNCONFIRMED:
            # Handed over, but its worker (or Temporal) did not answer since: it applies when
            # the worker takes it, so "已暂停" would say more than is known.
            return say(
                f"已发出{verb}{label}的指令，还没得到确认，稍后可以问我它的状态。",
                f"I asked {label_en} to {verb_en}, but it isn't confirmed yet;"
                " ask me about it later.",
            )
        if note == ALREADY_SO:  # nothing was sent: "好的，已暂停" said it had just been
            if pause:
                return say(f"{label}本来就是暂停的。", f"{label_en} was already paused.")
            return say(f"{label}本来就在运行。", f"{label_en} was already running.")
        if pause:
            return say(f"好的，{label}已暂停。", f"OK, {label_en} is paused.")
        return say(f"好的，{label}已恢复运行。", f"OK, {label_en} is running again.")

    return await answer(ctx, speaker, work)


async def pause_task(ctx: Ctx, name: TaskName, speaker: Spoken = None) -> str:
    """Pause the named task."""
    return await _control(ctx, name, True, speaker)


async def resume_task(ctx: Ctx, name: TaskName, speaker: Spoken = None) -> str:
    """Resume the named task."""
    return await _control(ctx, name, False, speaker)
