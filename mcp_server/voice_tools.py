"""The voice profile's tools (approvals apart, in ``voice_approvals``): greet, what needs the
user, a task's status, pause and resume, cluster health, recent errors."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server.mcpserver import Context

from ambient.clients.tencent.client import LIST_READS
from ambient.clients.tencent.errors import (
    TencentAnswerError,
    TencentAuthError,
    TencentClockError,
    TencentCloudError,
    TencentListChangedError,
    TencentRetryableError,
)
from ambient.controls_in_flight import ALREADY_SO
from ambient.remediation.views import RemediationSummary
from ambient.request_deadline import request_deadline
from ambient.speech import MAX_SPOKEN, cleaned
from ambient.storage.briefings import BriefingRepository
from ambient.storage.repositories import EventRepository
from ambient.storage.users import user_named
from ambient.watches.configs import TaskKind
from ambient.watches.inputs import TASK_NAME, WorkerSilentError
from ambient.watches.models import TaskStatus
from ambient.watches.pauses import site_waits
from ambient.watches.reads import TaskSummary
from ambient.watches.service import DELIVERED_UNCONFIRMED
from ambient.wiring import AppState
from ambient.xiaozhi_context import failing_in_a_row, waiting_for
from mcp_server import voice_sentences as sentences
from mcp_server.voice_answer import answer, device, english, left, say, worker_time
from mcp_server.voice_approvals import VOICE_CLUSTERS, name_clusters
from mcp_server.voice_errors import alike_once, labels_of, task_said
from mcp_server.voice_failures import failed_clause
from mcp_server.voice_prompt import Spoken, TaskName
from mcp_server.voice_speech import (
    LIST_SEP_EN,
    ORDINALS_EN,
    counted,
    names_a_place,
    ordinal_word,
    pick_task,
    run_about,
    spoken_name,
    task_label,
    unnamed,
)

log = logging.getLogger(__name__)

OPEN_LISTED = 500  # open runs what_needs_me counts; past it, "500 多个"


# --- tools ----------------------------------------------------------------------------------


async def greet(ctx: Context[Any, Any], speaker: Spoken = None) -> str:
    """The greeting: today's briefing, spoken."""

    async def work(state: AppState, user: str) -> str:
        # The briefing is spent on the greeting it answers: only while we still listen.
        result = await state.briefings.greet(user, via="voice", audio=False, within=left())
        # The briefing's first sentences (greeting, headline, the top error): speakable keeps
        # three; any other answer is the service's, in the user's words.
        return result.text

    return await answer(ctx, speaker, work)


async def what_needs_me(ctx: Context[Any, Any], speaker: Spoken = None) -> str:
    """What waits for the user: remediations to approve, alerts still open, watches failing."""

    async def work(state: AppState, user: str) -> str:
        service = state.remediations
        waiting = await waiting_for(service, user)
        await name_clusters(state, waiting)
        runs = await service.list_runs(user, open_only=True, limit=OPEN_LISTED + 1)
        running = [r for r in runs[:OPEN_LISTED] if r.run_key not in {w.run_key for w in waiting}]
        async with state.db.session() as session:
            pages = await EventRepository(session).failing(user=user)
        failing = list(dict.fromkeys(task for task, _, _ in pages))  # a watch, however many pages
        if not waiting and not running and not failing:
            return say("现在没有需要你处理的事，一切正常。", "Nothing needs you now. All is well.")
        storm = len(runs) > OPEN_LISTED
        labels = await labels_of(state, user, failing)
        named = [task_said(task, labels) for task in failing]
        return needs_answer(waiting, running, storm, named, failing_in_a_row(pages))

    return await answer(ctx, speaker, work)


# How many fixes and watches an answer names, tried in turn until it is short enough to say:
# the first fix is named as long as any name is (the answer asks to approve it).
_NAMED = [(3, 3), (2, 3), (2, 2), (1, 2), (1, 1), (1, 0), (0, 0)]


def needs_answer(
    waiting: list[RemediationSummary],
    running: list[RemediationSummary],
    storm: bool,
    failing: list[str],
    in_a_row: tuple[str, str] = ("", ""),
) -> str:
    """What needs the user (``failing``: the watches failing now, as said). Every count said
    whole: past what an answer holds, how badly the watches fail
    (``in_a_row``, `failing_in_a_row`) goes first, then names (``_NAMED``), not the sentences
    after them (``storm``: more alerts are open than were listed)."""
    for fixes, watches in _NAMED:
        for row in dict.fromkeys((in_a_row, ("", ""))):
            text = _needs_said(waiting, running, storm, failing, fixes, watches, row)
            if len(cleaned(text, english=english.get())) <= MAX_SPOKEN:
                return text
    return text


def _needs_said(
    waiting: list[RemediationSummary],
    running: list[RemediationSummary],
    storm: bool,
    failing: list[str],
    fixes: int,
    names: int,
    in_a_row: tuple[str, str],
) -> str:
    """What needs the user, every count said, naming ``fixes`` fixes and ``names`` watches at
    most (``storm``: more alerts are open than were listed)."""
    parts = []
    if waiting:
        named = "；".join(
            f"第{ordinal_word(i)}个是{run_about(r, among=waiting)}"
            for i, r in enumerate(waiting[:fixes])
        )
        named_en = LIST_SEP_EN.join(
            f"{ORDINALS_EN[i]}, {run_about(r, english=True, among=waiting)}"
            for i, r in enumerate(waiting[:fixes])
        )
        said, said_en = (f"：{named}", f": {named_en}") if named else ("", "")
        # "The first one" only once it was named: unnamed, the listener asks which.
        hint, hint_en = (
            ("可以说“批准第一个”。", "You can say approve the first one. ") if named else ("", "")
        )
        parts.append(
            say(
                f"有 {len(waiting)} 个修复等你审批{said}。{hint}",
                f"{counted(len(waiting), 'fix', 'fixes')} waiting for your approval"
                f"{said_en}. {hint_en}",
            )
        )
    # The watches failing: a clause of the alerts' sentence, or a sentence after the fixes'
    # (three sentences at most).
    watches, watches_en = _failing_said(failing, names)
    watches, watches_en = watches + in_a_row[0], watches_en + in_a_row[1]
    if running:
        more = "多" if storm else ""  # after a storm: "500 多个"
        more_en = " or more" if more else ""
        alerts = f"{counted(len(running), 'alert', 'alerts')}{more_en}"
        also, also_en = (f"，还有 {watches}", f", and {watches_en}") if failing else ("", "")
        if waiting:
            parts.append(
                say(
                    f"另有 {len(running)} {more}个告警正在自动处理{also}。",
                    f"Plus {alerts} handled automatically{also_en}.",
                )
            )
        else:  # nothing before it to be "besides"
            being = "is" if len(running) == 1 and not more else "are"
            parts.append(
                say(
                    f"没有等你审批的修复，有 {len(running)} {more}个告警正在自动处理{also}。",
                    f"No fixes wait for your approval; {alerts} {being} being handled"
                    f" automatically{also_en}.",
                )
            )
    elif failing and waiting:
        parts.append(say(f"另有 {watches}。", f"Also, {watches_en}."))
    elif failing:
        parts.append(
            say(
                f"没有等你审批的修复，但有 {watches}。",
                f"No fixes wait for your approval, but {watches_en}.",
            )
        )
    return "".join(parts).strip()


def _failing_said(tasks: list[str], most: int) -> tuple[str, str]:
    """The watches failing now (``tasks``: each as said), counted, with ``most`` names at
    most, in Chinese and English."""
    # Said alike (unnamed, their labels not read): once, with how many ("网页监控（2 个）").
    alike = Counter(tasks)
    names = [name if alike[name] == 1 else alike_once(name, alike[name]) for name in alike]
    shown, more = names[:most], len(names) > most
    keeps = "keeps failing its" if len(tasks) == 1 else "keep failing their"
    listed, listed_en = (
        (
            f"：{'、'.join(shown)}{' 等' if more else ''}",
            f": {', '.join(shown)}{' and more' if more else ''}",
        )
        if shown
        else ("", "")
    )
    return (
        f"{len(tasks)} 个监控一直检查失败{listed}",
        f"{counted(len(tasks), 'watch', 'watches')} {keeps} checks{listed_en}",
    )


# The tasks a user's last asking answer named ("有 2 个任务符合：A、B"), in its order: "第二个"
# said next is a place in that list. A voice call carries no history of its own and the next
# one may reach another API replica, or one restarted since: the list is an event of the user's
# (a replica's own memory counted "第二个" among the user's first four tasks there), kept with
# the device that heard it: "第二个" said at another of the user's speakers is not that list's.
TASKS_NAMED = "voice.tasks_named"
NAMED_FOR = timedelta(minutes=5)  # how long an answer's list is what a place refers to
NAMED_READ = 50  # the user's latest lists read to find the calling device's


async def _which_task(
    state: AppState, user: str, name: str
) -> tuple[TaskSummary | None, str, tuple[str, str]]:
    """The user's task ``name`` names, or None and the question asked back (its list kept);
    and the task's label in Chinese and English, as said among the user's tasks."""
    if (task := await _named_as_written(state, user, name)) is not None:
        return task, "", (task_label(task, False), task_label(task, True))
    # Every task: a name is only found among the tasks it is compared with.
    tasks = list(await state.tasks.list(user))
    # The list is read for a place alone only, and written by an answer that asks back.
    named = await _named_lately(state, user) if names_a_place(name) else []
    picked = pick_task(tasks, name, english.get(), named=named)
    if picked.named:
        async with state.db.session() as session:
            await EventRepository(session).add(
                TASKS_NAMED, user=user, payload={"tasks": picked.named, "device": device.get()}
            )
            await session.commit()
    if picked.task is None:
        return None, picked.question, ("", "")
    label = task_label(picked.task, False, tasks), task_label(picked.task, True, tasks)
    return picked.task, picked.question, label


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


async def task_status(ctx: Context[Any, Any], name: TaskName, speaker: Spoken = None) -> str:
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
        return say(
            f"{label}{said}，{done}{but}{wait}。",
            f"{label_en} {said_en}{done_en}{but_en}{wait_en}.",
        )

    return await answer(ctx, speaker, work)


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
    state_zh, state_en = (
        ("已播报", "has been given")
        if given
        else ("已推送", "has been sent")
        if row.pushed_at is not None
        else ("已准备好，还没播报", "is ready, not given yet")
    )
    return (
        f"最新一期是 {day.month} 月 {day.day} 日的，{state_zh}",
        f"the latest, of {day.day} {day:%B}, {state_en}",
    )


async def _control(ctx: Context[Any, Any], name: str, pause: bool, speaker: str | None) -> str:
    async def work(state: AppState, user: str) -> str:
        tasks = state.tasks
        task, question, (label, label_en) = await _which_task(state, user, name)
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


async def pause_task(ctx: Context[Any, Any], name: TaskName, speaker: Spoken = None) -> str:
    """Pause the named task."""
    return await _control(ctx, name, True, speaker)


async def resume_task(ctx: Context[Any, Any], name: TaskName, speaker: Spoken = None) -> str:
    """Resume the named task."""
    return await _control(ctx, name, False, speaker)


async def cluster_health(ctx: Context[Any, Any], speaker: Spoken = None) -> str:
    """How many TKE clusters run, and which do not."""

    async def work(state: AppState, _: str) -> str:
        cloud = state.cloud
        if not cloud.configured:
            return say(
                "还没有配置腾讯云账号，我看不到集群。",
                "No Tencent Cloud account is set up, so I can't see any clusters.",
            )
        reads = state.cloud_reads
        # One read at a time, shared with the fixes' cluster names (`name_clusters`). It goes
        # on when this call stops waiting: "请稍后再问" is true, as the next call has its answer.
        reading = reads.tencent.shared(VOICE_CLUSTERS, reads.clusters)
        try:
            # The SDK waits 30 s for an answer, a voice client 10: a silent endpoint is named
            # before the call's budget runs out (and is said as this system being slow).
            async with asyncio.timeout(left()):
                clusters = await asyncio.shield(reading)
        except TimeoutError:
            return say(
                "腾讯云没有及时回应，看不到集群状况，请稍后再问。",
                "Tencent Cloud did not answer in time, so I can't see the clusters."
                " Please ask again later.",
            )
        except TencentClockError:
            return say(
                "这台机器的时钟和腾讯云相差超过五分钟，请求都被拒绝了。请校准系统时间。",
                "This machine's clock is more than five minutes off Tencent Cloud's, so every"
                " request is refused. Please set the system time right.",
            )
        except TencentAuthError:
            # Asking again later cannot help: the keys or their CAM policy must change.
            return say(
                "腾讯云拒绝了配置的密钥，看不到集群。请检查 API 密钥和它的访问策略。",
                "Tencent Cloud refused the configured keys, so I can't see the clusters."
                " Please check the API keys and their access policy.",
            )
        except TencentAnswerError as exc:
            # Not the API's answer (an id missing, a list stopping short): asked again, the
            # same way to it (a proxy, the endpoint set) answers the same.
            log.warning("cluster_health: %s", exc)
            return say(
                "腾讯云那边的回答不是它的接口该有的样子，看不到集群。请让运维检查到腾讯云的网络代理和接口地址设置。",
                "Tencent Cloud's answer was not what its API gives, so I can't see the clusters."
                " Please ask an operator to check the proxy and endpoint set for Tencent Cloud.",
            )
        except TencentListChangedError:
            # Reached at every page: a cluster made or removed meanwhile, at each of the reads.
            return say(
                f"腾讯云的集群列表在读的时候一直在变，连读{LIST_READS}次都没读完整。请过一会儿再问。",
                f"Tencent Cloud's cluster list kept changing while I read it, {LIST_READS} times"
                " over. Please ask again in a moment.",
            )
        except TencentRetryableError:
            return say(
                "暂时连不上腾讯云，看不到集群状况，请稍后再问。",
                "I can't reach Tencent Cloud right now. Please ask again later.",
            )
        except TencentCloudError as exc:
            # Refused for good (a region out of format or not served, the account's state):
            # asking later answers the same. The API's words stay in the log.
            log.info("cluster_health refused: %s", exc)
            return say(
                "腾讯云拒绝了查询集群的请求，稍后再问也一样。请检查腾讯云的配置，比如地域。",
                "Tencent Cloud refused the cluster query, and asking later won't change that."
                " Please check the Tencent Cloud settings, such as the region.",
            )
        if not clusters:
            return say("这个账号下没有容器集群。", "This account has no container clusters.")
        bad = [c for c in clusters if c.status.lower() != "running"]
        if not bad:
            if len(clusters) == 1:  # not "all 1 clusters"
                return say("唯一的集群在正常运行。", "The cluster is running normally.")
            return say(
                f"{len(clusters)} 个集群都在正常运行。",
                f"All {len(clusters)} clusters are running normally.",
            )
        names = "、".join(spoken_name(c.name) for c in bad[:3])
        return say(
            f"{len(clusters)} 个集群里有 {len(bad)} 个不正常：{names}。",
            f"Unhealthy clusters, {len(bad)} of {len(clusters)}: {names.replace('、', ', ')}.",
        )

    return await answer(ctx, speaker, work)
