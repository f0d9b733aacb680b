"""The voice profile: a handful of tools a 小智 speaker's model can use, answered in speech.

Same service layer and rights as the full server (`mcp_server.server`), but every answer is
one or two spoken sentences in ``content[0].text``: no Markdown, ids or URLs, at most
``MAX_SPOKEN`` characters. A refusal or failure is a normal answer that says what happened,
because a voice client drops the text of an ``isError`` result. No LLM on any path.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from ambient import temporal
from ambient.briefing.service import BriefingError, BriefingNotFoundError, BriefingRefusedError
from ambient.clients.tencent import ops
from ambient.clients.tencent.errors import TencentAuthError, TencentCloudError
from ambient.domain.configs import nul_at
from ambient.domain.users import Language
from ambient.remediation.views import (
    RemediationError,
    RemediationNotFoundError,
    RemediationRefusedError,
    RemediationStateError,
    RemediationSummary,
)
from ambient.settings import Settings
from ambient.status import database_problem, temporal_problem
from ambient.storage.repositories import EventRepository, UserRepository
from ambient.watches.inputs import TaskError, TaskNotFoundError, TaskStateError
from ambient.wiring import AppState, StateHolder
from ambient.xiaozhi import SpeakerKind, resolve_speaker, waiting_for
from mcp_server.auth import app_state, current_user
from mcp_server.server import server_shell
from mcp_server.tools.hints import LOOK, READ, RECORD
from mcp_server.voice_prompt import (
    DESCRIPTIONS,
    INSTRUCTIONS,
    SPEAKER_DESCRIPTION,
    Reference,
    Span,
    Spoken,
    TaskName,
)
from mcp_server.voice_speech import (
    ORDINAL_WORDS,
    ORDINALS_EN,
    counted,
    names_nothing,
    pick_remediation,
    pick_task,
    run_about,
    speakable,
    spoken_name,
    task_label,
)

log = logging.getLogger(__name__)

# Bounds well under a voice client's patience (xiaozhi.me waits 10 s for a tool call).
CALL_BUDGET = 8.0
OPEN_LISTED = 500  # open runs what_needs_me counts; past it, "500 多个"
# What a read that waits for the worker leaves of the budget, to say a silent worker as such:
# the query's timeout comes back through a busy event loop (0.5 s was not always enough on a
# loaded 2-core machine: the call's budget ran out first and "too slow" was said instead).
SAY_MARGIN = 1.0
# When the current voice call's budget runs out (the loop's clock).
_deadline: ContextVar[float] = ContextVar("voice_deadline")
# Whether the current voice call is answered in English: the speaking user's language setting
# (Chinese when they chose none, or before anyone is known), as the greeting is.
_english: ContextVar[bool] = ContextVar("voice_english", default=False)


def _say(zh: str, en: str) -> str:
    """The answer in the current call's language."""
    return en if _english.get() else zh


UNKNOWN_TOOL = "这个我还不会做。可以问我任务状态、待处理的事、最近的错误，或者暂停和恢复任务。"
UNKNOWN_TOOL_EN = (
    "I can't do that yet. Ask me about a task's status, what needs you, recent errors,"
    " or to pause or resume a task."
)
# The same, in a read-only session (`--read-only`): nothing to pause or resume there.
UNKNOWN_TOOL_READING = "这个我还不会做。可以问我任务状态、待处理的事或最近的错误。"
UNKNOWN_TOOL_READING_EN = (
    "I can't do that yet. Ask me about a task's status, what needs you, or recent errors."
)
UNKNOWN_SPEAKER = (
    "你好！我还不认识你的声音，所以不能告诉你谁的运维信息。请让主人在设置里登记你的声纹。"
)
UNKNOWN_SPEAKER_EN = (
    "Hello! I don't know your voice yet, so I can't tell you anyone's operations news."
    " Ask the owner to register your voiceprint in the settings."
)
# A read that needs a worker while none runs (ambient.temporal.QUERY_TIMEOUT): said plainly.
WORKER_SILENT = "后台的工作进程没有响应，现在查不到实时状态。请检查它是否在运行。"
WORKER_SILENT_EN = (
    "The background worker is not answering, so I can't read the live status now."
    " Please check that it is running."
)
TEMPORAL_DOWN = "后台的 Temporal 服务连不上，现在查不到也改不了任务。请检查它是否在运行。"
TEMPORAL_DOWN_EN = (
    "I can't reach the Temporal service, so I can't read or change tasks now."
    " Please check that it is running."
)
DATABASE_DOWN = "数据库连不上，现在什么都查不到。请检查它是否在运行。"
DATABASE_DOWN_EN = (
    "I can't reach the database, so I can't look anything up now. Please check that it is running."
)
BEYOND_OWNER = "这台设备主人的权限比你的小，我不能用你的身份在这里操作。请用你自己的设备。"
BEYOND_OWNER_EN = (
    "This device's owner has fewer rights than you, so I can't act as you here."
    " Please use your own device."
)
NO_ACCOUNT = "这台音箱连接时用的账号在系统里不存在，我不能替任何人回答。请检查小智配置里的用户。"
NO_ACCOUNT_EN = (
    "The account this speaker connects with does not exist, so I can't answer for anyone."
    " Please check the user in the xiaozhi settings."
)
_REFUSALS = {
    SpeakerKind.UNKNOWN: (UNKNOWN_SPEAKER, UNKNOWN_SPEAKER_EN),
    SpeakerKind.NO_ACCOUNT: (NO_ACCOUNT, NO_ACCOUNT_EN),
}
_NOT_PERMITTED = (
    "你没有这个权限，请找管理员授权。",
    "You don't have that permission: ask an admin.",
)
# A service's refusal, said by its kind (the first that fits), in Chinese and English.
REFUSED: list[tuple[type[Exception], tuple[str, str]]] = [
    (RemediationRefusedError, _NOT_PERMITTED),
    (BriefingRefusedError, _NOT_PERMITTED),
    (
        RemediationStateError,
        (
            "这个修复现在不在等审批，可能已经有人处理过了。",
            "That fix is not waiting for approval now: someone may have handled it.",
        ),
    ),
    (
        RemediationNotFoundError,
        ("没找到这个修复，可能已经结束了。", "I can't find that fix: it may have finished."),
    ),
    (
        TaskStateError,
        (
            "这个任务已经停止了，要重新创建才能再运行。",
            "That task has stopped: create it again to run it.",
        ),
    ),
    (
        TaskNotFoundError,
        ("没找到这个任务，可能已经删除了。", "I can't find that task: it may have been deleted."),
    ),
    (BriefingNotFoundError, ("还没有设置每日简报。", "No daily briefing is set up yet.")),
]
REFUSED_OTHER = ("请在网页上查看详情。", "Please see the details on the web page.")


def _in_english(state: AppState, language: str | None) -> bool:
    """A user's language, or the server's default where they chose none (as the briefing)."""
    return (language or state.settings.default_language) == Language.EN


async def _english_user(state: AppState, name: str) -> bool:
    """Whether the user ``name`` hears English (no such user: Chinese)."""
    async with state.db.session() as session:
        row = await UserRepository(session).get(name)
    return row is not None and _in_english(state, row.language)


# --- who and how ----------------------------------------------------------------------------


async def _answer(
    ctx: Context[Any, Any], speaker: str | None, work: Callable[[AppState, str], Awaitable[str]]
) -> str:
    """Resolve who speaks, run ``work`` as them, and make whatever comes out speakable."""
    try:
        state = app_state(ctx)
        # Who speaks is read from the database too: inside the budget, like the work.
        _deadline.set(asyncio.get_running_loop().time() + CALL_BUDGET)
        _english.set(False)  # until the speaker is known
        async with asyncio.timeout(CALL_BUDGET):
            owner = current_user(ctx)
            who = await resolve_speaker(state.db, owner, speaker, described_as=SPEAKER_DESCRIPTION)
            if who.user is None:
                # Nobody known speaks: the refusal is said in the device owner's language.
                if who.kind != SpeakerKind.NO_ACCOUNT:
                    _english.set(await _english_user(state, owner))
                return speakable(_say(*_REFUSALS.get(who.kind, (BEYOND_OWNER, BEYOND_OWNER_EN))))
            _english.set(_in_english(state, who.user.language))
            return speakable(await work(state, who.user.name))
    except TimeoutError as exc:
        if database_problem(exc, None) is not None:  # a connect that timed out (OSError)
            return _say(DATABASE_DOWN, DATABASE_DOWN_EN)
        return _say(
            "系统这会儿响应太慢，我没等到结果，请稍后再问。",
            "The system is slow right now and I got no answer in time. Please ask again later.",
        )
    except Exception as exc:
        # What is down is said before anything a feature made of it.
        if temporal_problem(exc, None) is not None:
            return _say(TEMPORAL_DOWN, TEMPORAL_DOWN_EN)
        if database_problem(exc, None) is not None:
            return _say(DATABASE_DOWN, DATABASE_DOWN_EN)
        if isinstance(exc, RemediationError | TaskError | BriefingError):
            if temporal.SILENT_WORKER in str(exc):
                return _say(WORKER_SILENT, WORKER_SILENT_EN)
            # The service's message is English for the API and MCP (and names fields, tools
            # and ids): the voice says what kind of refusal it was, the log keeps the message.
            log.info("voice tool refused: %s", exc)
            zh, en = next((s for kind, s in REFUSED if isinstance(exc, kind)), REFUSED_OTHER)
            return _say(f"没办法完成：{zh}", f"I couldn't do that. {en}")
        # A voice client drops error text: say something, and keep the trace in the log.
        log.warning("voice tool failed", exc_info=True)
        name = getattr(exc, "message", None) or type(exc).__name__
        return speakable(_say(f"出了点问题，没有完成。{name}", f"Something went wrong. {name}"))


# --- tools ----------------------------------------------------------------------------------


async def greet(ctx: Context[Any, Any], speaker: Spoken = None) -> str:
    """The greeting: today's briefing, spoken."""

    async def work(state: AppState, user: str) -> str:
        # The briefing is spent on the greeting it answers: only while we still listen.
        result = await state.briefings.greet(user, via="voice", audio=False, within=_left())
        # The briefing's first sentences (greeting, headline, the top error): speakable keeps three.
        return result.text

    return await _answer(ctx, speaker, work)


async def what_needs_me(ctx: Context[Any, Any], speaker: Spoken = None) -> str:
    """What waits for the user: remediations to approve, alerts still open."""

    async def work(state: AppState, user: str) -> str:
        service = state.remediations
        waiting = await waiting_for(service, user)
        runs = await service.list_runs(user, open_only=True, limit=OPEN_LISTED + 1)
        running = [r for r in runs[:OPEN_LISTED] if r.run_key not in {w.run_key for w in waiting}]
        if not waiting and not running:
            return _say("现在没有需要你处理的事，一切正常。", "Nothing needs you now. All is well.")
        parts = []
        if waiting:
            named = "；".join(
                f"第{ORDINAL_WORDS[i]}个是{run_about(r)}" for i, r in enumerate(waiting[:3])
            )
            named_en = "; ".join(
                f"{ORDINALS_EN[i]}, {run_about(r, english=True)}" for i, r in enumerate(waiting[:3])
            )
            parts.append(
                _say(
                    f"有 {len(waiting)} 个修复等你审批：{named}。可以说“批准第一个”。",
                    f"{counted(len(waiting), 'fix', 'fixes')} waiting for your approval:"
                    f" {named_en}. You can say approve the first one. ",
                )
            )
        if running:
            more = "多" if len(runs) > OPEN_LISTED else ""  # after a storm: "500 多个"
            more_en = " or more" if more else ""
            parts.append(
                _say(
                    f"另有 {len(running)} {more}个告警正在自动处理。",
                    f"Plus {counted(len(running), 'alert', 'alerts')}{more_en}"
                    " handled automatically.",
                )
            )
        return "".join(parts).strip()

    return await _answer(ctx, speaker, work)


# With two or more waiting, which one a decision names is the model's reading of the user's
# words, and a small model picks one of two for "approve it" (docs/benchmarks.md, #25 round 11).
# So the first call names the run back and asks; the same decision on the same rung of the same
# run (one life of it: its run key) within CONFIRM_WINDOW, from any replica, makes it — named
# again, or by a reference that names nothing ("批准。", "确认") right after the question. "它"
# after the question is the run asked about, for the other decision too (asked in turn). A
# decision made ends the question, so a "yes" never carries over to the run's next rung.
CONFIRM_WINDOW = timedelta(minutes=2)
CONFIRM_ASKED = "voice.confirm_asked"
_YES = frozenset({"确认", "确定", "对", "是", "是的", "好", "好的", "yes", "confirm", "ok", "sure"})


async def _last_asked(state: AppState, user: str) -> dict[str, Any] | None:
    """The decision last asked about, while the question is fresh and open."""
    async with state.db.session() as session:
        last = await EventRepository(session).list(user=user, kind=CONFIRM_ASKED, limit=1)
    fresh = last and last[0].created_at >= datetime.now(UTC) - CONFIRM_WINDOW
    return last[0].payload if fresh and "asked" in last[0].payload else None


async def _note(state: AppState, user: str, payload: dict[str, Any]) -> None:
    async with state.db.session() as session:
        await EventRepository(session).add(CONFIRM_ASKED, user=user, payload=payload)
        await session.commit()


def _names_the_asked(which: str) -> bool:
    return names_nothing(which) or which.strip(" 。.!！,，").lower() in _YES


async def _decide(
    ctx: Context[Any, Any], which: str, approve: bool, reason: str, speaker: str | None
) -> str:
    async def work(state: AppState, user: str) -> str:
        service = state.remediations
        waiting = await waiting_for(service, user)
        asked = await _last_asked(state, user) if waiting else None
        if _names_the_asked(which):
            run = next((r for r in waiting if asked and r.run_key == asked["run_key"]), None)
            if run is None:  # nothing asked, or that run waits no more: which one?
                gone = _say(
                    "刚才问的修复已经不在等你审批了。",
                    "The fix I asked about no longer waits for you. ",
                )
                return (gone if asked else "") + pick_remediation(waiting, "它", _english.get())[1]
        else:
            picked, question = pick_remediation(waiting, which, _english.get())
            if picked is None:
                return question
            run = picked
        view = await service.get(user, run.remediation_id)
        rung = int(view.waiting.rung) if view.waiting else None
        decision = {"run_key": run.run_key, "rung": rung, "approve": approve}
        confirmed = asked is not None and asked["asked"] == decision
        if len(waiting) > 1 and not confirmed:
            await _note(state, user, {"asked": decision, "run_key": run.run_key, "reason": reason})
            return _question(waiting, run, approve)
        said = reason or (asked["reason"] if asked and confirmed else "")
        made = await service.approve(user, run.remediation_id, approve, said or "by voice")
        if asked:
            await _note(state, user, {"made": decision})
        return _say(
            f"好的，已{'批准' if made.approve else '拒绝'}{run_about(run)}的修复。",
            f"OK, {'approved' if made.approve else 'refused'} the fix for"
            f" {run_about(run, english=True)}.",
        )

    return await _answer(ctx, speaker, work)


def _question(waiting: list[RemediationSummary], run: RemediationSummary, approve: bool) -> str:
    verb = "批准" if approve else "拒绝"
    i = waiting.index(run)
    place = ORDINAL_WORDS[i] if i < len(ORDINAL_WORDS) else str(i + 1)
    verb_en = "approve" if approve else "refuse"
    return _say(
        f"有 {len(waiting)} 个修复在等你审批。要{verb}第{place}个，{run_about(run)}的修复吗？"
        f"确认就再说一次{verb}。",
        f"{len(waiting)} fixes wait for your approval. {verb_en.capitalize()} number {i + 1},"
        f" the fix for {run_about(run, english=True)}? Say {verb_en} again to confirm.",
    )


async def approve_remediation(
    ctx: Context[Any, Any], which: Reference, speaker: Spoken = None
) -> str:
    """Approve the waiting remediation ``which`` names."""
    return await _decide(ctx, which, True, "", speaker)


async def refuse_remediation(
    ctx: Context[Any, Any],
    which: Reference,
    reason: Annotated[str, Field(default="", max_length=200, description="原因 / reason")] = "",
    speaker: Spoken = None,
) -> str:
    """Refuse the waiting remediation ``which`` names."""
    return await _decide(ctx, which, False, reason, speaker)


_STATE_WORDS = {"active": "正在运行", "paused": "已暂停", "stopped": "已停止"}
_STATE_WORDS_EN = {"active": "is running", "paused": "is paused", "stopped": "has stopped"}


def _worker_time() -> float:
    """Seconds a read may still wait for the worker: the budget left, at most QUERY_TIMEOUT."""
    # A slow list before it then leaves a silent worker said as one, not as a slow system.
    return max(0.5, min(temporal.QUERY_TIMEOUT.total_seconds(), _left()))


def _left() -> float:
    """Seconds of the call's budget left, less the margin kept to say the answer."""
    return _deadline.get() - asyncio.get_running_loop().time() - SAY_MARGIN


async def task_status(ctx: Context[Any, Any], name: TaskName, speaker: Spoken = None) -> str:
    """The named task's state and checks."""

    async def work(state: AppState, user: str) -> str:
        tasks = state.tasks
        # Every task: a name is only found among the tasks it is compared with.
        task, question = pick_task(list(await tasks.list(user)), name, _english.get())
        if task is None:
            return question
        status = await tasks.get(user, task.task_id, within=_worker_time())
        said = _STATE_WORDS.get(status.state.value, status.state.value)
        said_en = _STATE_WORDS_EN.get(status.state.value, status.state.value)
        return _say(
            f"{task_label(task)}{said}，已检查 {status.checks} 次。",
            f"{task_label(task, english=True)} {said_en},"
            f" checked {counted(status.checks, 'time', 'times')}.",
        )

    return await _answer(ctx, speaker, work)


async def _control(ctx: Context[Any, Any], name: str, pause: bool, speaker: str | None) -> str:
    async def work(state: AppState, user: str) -> str:
        tasks = state.tasks
        task, question = pick_task(list(await tasks.list(user)), name, _english.get())
        if task is None:
            return question
        label_en = task_label(task, english=True)
        if pause:
            await tasks.pause(user, task.task_id)
            return _say(f"好的，{task_label(task)}已暂停。", f"OK, {label_en} is paused.")
        await tasks.resume(user, task.task_id)
        return _say(f"好的，{task_label(task)}已恢复运行。", f"OK, {label_en} is running again.")

    return await _answer(ctx, speaker, work)


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
            return _say(
                "还没有配置腾讯云账号，我看不到集群。",
                "No Tencent Cloud account is set up, so I can't see any clusters.",
            )
        try:
            clusters = await ops.list_clusters(cloud)
        except TencentAuthError:
            # Asking again later cannot help: the keys or their CAM policy must change.
            return _say(
                "腾讯云拒绝了配置的密钥，看不到集群。请检查 API 密钥和它的访问策略。",
                "Tencent Cloud refused the configured keys, so I can't see the clusters."
                " Please check the API keys and their access policy.",
            )
        except TencentCloudError:
            return _say(
                "暂时连不上腾讯云，看不到集群状况，请稍后再问。",
                "I can't reach Tencent Cloud right now. Please ask again later.",
            )
        if not clusters:
            return _say("这个账号下没有容器集群。", "This account has no container clusters.")
        bad = [c for c in clusters if c.status.lower() != "running"]
        if not bad:
            return _say(
                f"{len(clusters)} 个集群都在正常运行。",
                f"All {len(clusters)} clusters are running normally."
                if len(clusters) > 1
                else "The cluster is running normally.",
            )
        names = "、".join(spoken_name(c.name) for c in bad[:3])
        return _say(
            f"{len(clusters)} 个集群里有 {len(bad)} 个不正常：{names}。",
            f"Unhealthy clusters, {len(bad)} of {len(clusters)}: {names.replace('、', ', ')}.",
        )

    return await _answer(ctx, speaker, work)


_ERROR_KINDS = ("watch.failing", "watch.poll_failed", "watch.delivery_failed", "watch.breach")
# A task created without a name is named by a digest of its config: said by its kind.
_KIND_WORDS = {"web-monitor": "网页监控", "threshold-watch": "阈值监控", "reminder": "提醒"}
_KIND_WORDS_EN = {
    "web-monitor": "a web monitor",
    "threshold-watch": "a threshold watch",
    "reminder": "a reminder",
}


def _task_said(task_id: str) -> str:
    kind, _, name = task_id.rpartition("/")
    if re.fullmatch(r"[0-9a-f]{12}", name):
        if _english.get():
            return _KIND_WORDS_EN.get(kind.split("/", 1)[0], "an unnamed task")
        return _KIND_WORDS.get(kind.split("/", 1)[0], "未命名任务")
    return spoken_name(name) or _say("未知任务", "an unknown task")


async def recent_errors(
    ctx: Context[Any, Any],
    hours: Span = 24,
    speaker: Spoken = None,
) -> str:
    """The user's tasks' errors of the last ``hours``, by task."""

    async def work(state: AppState, user: str) -> str:
        since = datetime.now(UTC) - timedelta(hours=hours)
        async with state.db.session() as session:
            counts = await EventRepository(session).count_by_task(
                user=user, kinds=_ERROR_KINDS, since=since
            )
        if not counts:
            return _say(
                f"最近 {hours} 小时没有错误。",
                f"No errors in the last {counted(hours, 'hour', 'hours')}.",
            )
        by_task: Counter[str] = Counter()
        for task, count in counts.items():
            by_task[_task_said(task or "")] += count
        top = sorted(by_task.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        named = "、".join(f"{label} {count} 次" for label, count in top)
        named_en = ", ".join(f"{label} {counted(count, 'time', 'times')}" for label, count in top)
        return _say(
            f"最近 {hours} 小时有 {by_task.total()} 个错误，主要是：{named}。",
            f"{counted(by_task.total(), 'error', 'errors')} in the last"
            f" {counted(hours, 'hour', 'hours')}, mostly: {named_en}.",
        )

    return await _answer(ctx, speaker, work)


# What each argument is, in the words of an answer that asks for it again.
_ARGUMENT_WORDS = {
    "name": "任务名",
    "which": "是哪个修复",
    "reason": "原因",
    "hours": "时间范围（一小时到一周，比如“两天”）",
    "speaker": "是谁在说话",
}
_ARGUMENT_WORDS_EN = {
    "name": "the task name",
    "which": "which fix",
    "reason": "the reason",
    "hours": "the time span, from one hour to a week, like two days",
    "speaker": "who is speaking",
}


# A voice client drops the text of an error result, and pydantic's text is no sentence to speak.
class VoiceServer(MCPServer[AppState]):
    """MCPServer whose refused arguments are answered in words too."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        # A small model fills an optional argument it has nothing for with null: left out,
        # for every argument alike (a required one left out is still asked for again).
        arguments = {key: value for key, value in (arguments or {}).items() if value is not None}
        found = nul_at(arguments) if name in self._tool_manager._tools else None
        if found is not None:
            # PostgreSQL refuses a NUL (U+0000) in text: heard again before any tool runs.
            log.info("voice tool %r: arguments refused: %s", name, [str(found[0])])
            return await self._say_again(context, [str(found[0])])
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            served = {tool.name for tool in await self.list_tools()}
            if name not in served:
                # A stale tool list, or a name a model made up.
                log.info("voice tool %r: no such tool", name)
                english = await self._english_caller(context)
                if "pause_task" in served:
                    said = UNKNOWN_TOOL_EN if english else UNKNOWN_TOOL
                else:
                    said = UNKNOWN_TOOL_READING_EN if english else UNKNOWN_TOOL_READING
                return CallToolResult(content=[TextContent(type="text", text=said)])
            if not isinstance(exc.__cause__, ValidationError):
                raise
            fields = dict.fromkeys(str(e["loc"][0]) for e in exc.__cause__.errors() if e["loc"])
            log.info("voice tool %r: arguments refused: %s", name, list(fields))
            return await self._say_again(context, list(fields))

    async def _say_again(
        self, context: Context[AppState, Any] | None, fields: list[str]
    ) -> CallToolResult:
        """Ask the speaker to say these arguments again, in the caller's language."""
        if await self._english_caller(context):
            said = " and ".join(_ARGUMENT_WORDS_EN.get(field, field) for field in fields)
            text = f"I didn't catch {said}. Please say it again."
        else:
            said = "和".join(_ARGUMENT_WORDS.get(field, field) for field in fields)
            text = f"没听清{said}，请再说一次。"
        return CallToolResult(content=[TextContent(type="text", text=text)])

    async def _english_caller(self, context: Context[AppState, Any] | None) -> bool:
        """Whether the session's user chose English; Chinese when that cannot be read now."""
        # No speaker is resolved for a call refused before its tool ran: the session's user.
        if context is None:
            return False
        try:
            async with asyncio.timeout(CALL_BUDGET / 2):
                return await _english_user(app_state(context), current_user(context))
        except Exception:
            return False


TOOLS: list[tuple[Callable[..., Awaitable[str]], ToolAnnotations]] = [
    (greet, RECORD),
    (what_needs_me, READ),
    (approve_remediation, RECORD),
    (refuse_remediation, RECORD),
    (task_status, READ),
    (pause_task, RECORD),
    (resume_task, RECORD),
    (cluster_health, LOOK),
    (recent_errors, READ),
]


def build_voice_server(
    settings: Settings,
    *,
    holder: StateHolder | None = None,
    stdio_user: str | None = None,
    http_auth: bool = False,
    read_only: bool = False,
) -> MCPServer[AppState]:
    """The voice profile: its own server over the same state, tokens and services."""
    mcp = server_shell(
        VoiceServer,
        settings,
        holder=holder,
        stdio_user=stdio_user,
        http_auth=http_auth,
        path=VOICE_PATH,
        name="ambient-voice",
        instructions=INSTRUCTIONS,
    )
    for tool, hint in TOOLS:
        if read_only and not hint.read_only_hint:
            continue
        # Plain text results: no output schema to send on every turn, nothing but the words.
        mcp.tool(
            description=DESCRIPTIONS[tool.__name__], annotations=hint, structured_output=False
        )(tool)
    return mcp


VOICE_PATH = "/mcp/voice"
# Where a 401 from /mcp/voice points clients for its protected-resource metadata (RFC 9728).
VOICE_METADATA = "/.well-known/oauth-protected-resource"


def by_path(exact: Mapping[str, ASGIApp], default: ASGIApp) -> ASGIApp:
    """One ASGI app for the root mount: these exact paths to their apps, the rest to default."""
    # Both MCP apps carry their own auth middleware, so neither can be a route of the other.

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        await exact.get(path, default)(scope, receive, send)

    return dispatch
