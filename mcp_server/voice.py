"""The voice profile: a handful of tools a 小智 speaker's model can use, answered in speech.

Same service layer and rights as the full server (`mcp_server.server`), but every answer is
one or two spoken sentences in ``content[0].text``: no Markdown, ids or URLs, at most
``MAX_SPOKEN`` characters. A refusal or failure is a normal answer that says what happened,
because a voice client drops the text of an ``isError`` result. No LLM on any path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field
from starlette.types import ASGIApp, Receive, Scope, Send

from ambient.briefing.models import GreetOutcome
from ambient.briefing.service import BriefingError, BriefingService
from ambient.clients.tencent import ops
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.remediation.runs import FINAL_STATES
from ambient.remediation.service import RemediationService
from ambient.remediation.views import RemediationError, RemediationSummary
from ambient.settings import Settings
from ambient.storage.repositories import EventRepository
from ambient.watches.inputs import TaskError
from ambient.watches.reads import TaskSummary
from ambient.watches.service import TaskService
from ambient.wiring import AppState, StateHolder
from ambient.xiaozhi import Speaker, SpeakerKind, resolve_speaker, waiting_for
from mcp_server.auth import app_state, current_user
from mcp_server.server import server_shell

log = logging.getLogger(__name__)

MAX_SPOKEN = 300
# Bounds well under a voice client's patience (xiaozhi.me waits 10 s for a tool call).
CALL_BUDGET = 8.0

# The role prompt the product publishes for 小智 (its 角色介绍, docs/xiaozhi.md), sent as the
# server's MCP instructions too. It leads with "act through tools" on purpose: a 1.5B model
# given a prompt led by when-not-to-call rules answered every request in words (held-out
# pass^1 22.9 %, docs/benchmarks.md); the tool map and the no-call rules follow it.
INSTRUCTIONS = (
    "You are 小智, the user's voice operations assistant. You act through tools: prefer one "
    "precise tool call over guessing, and call the tool whenever a request matches one. "
    "Tool answers can be read aloud as they are.\n"
    "- 打招呼 / greeting: greet\n"
    "- 有什么要我处理、待审批 / what needs me: what_needs_me\n"
    "- 批准、拒绝修复或回滚 / approve, refuse: approve_remediation, refuse_remediation "
    "(which: 服务名或“第一个”)\n"
    "- 任务怎么样、暂停、恢复 / a task: task_status, pause_task, resume_task (name: 任务名)\n"
    "- 集群 / clusters: cluster_health; 报错、失败 / errors: recent_errors (hours)\n"
    "No tool for thanks, jokes, weather or small talk (不调用工具); when no task is named "
    "(“它”“那个”), 先问是哪一个.\n"
    "Pass the voiceprint speaker name as `speaker` only when known."
)

Spoken = Annotated[
    str | None,
    # Models filled "小智" or "unknown" when told only "optional": say what it is and when to
    # leave it out.
    Field(
        default=None,
        description="声纹认出的人名，不知道就不填 / a voiceprint name, else leave out",
    ),
]
TaskName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="用户说出的任务名 / the task's spoken name",
    ),
]
Reference = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="哪一个：服务名或“第一个” / which one: service name or 'the first one'",
    ),
]

READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
CLOUD = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)

UNKNOWN_SPEAKER = (
    "你好！我还不认识你的声音，所以不能告诉你谁的运维信息。请让主人在设置里登记你的声纹。"
)
BEYOND_OWNER = "这台设备主人的权限比你的小，我不能用你的身份在这里操作。请用你自己的设备。"

# --- speech ---------------------------------------------------------------------------------

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


def _spoken_name(raw: str) -> str:
    return raw.replace("-", " ").replace("_", " ").replace(".", " ").strip()


# --- who and how ----------------------------------------------------------------------------


async def _speaker(ctx: Context[Any, Any], speaker: str | None) -> Speaker:
    return await resolve_speaker(app_state(ctx).db, current_user(ctx), speaker)


async def _answer(
    ctx: Context[Any, Any], speaker: str | None, work: Callable[[str], Awaitable[str]]
) -> str:
    """Resolve who speaks, run ``work`` as them, and make whatever comes out speakable."""
    try:
        who = await _speaker(ctx, speaker)
        if who.kind is SpeakerKind.UNKNOWN or who.user is None:
            return speakable(UNKNOWN_SPEAKER if who.kind is SpeakerKind.UNKNOWN else BEYOND_OWNER)
        async with asyncio.timeout(CALL_BUDGET):
            return speakable(await work(who.user.name))
    except TimeoutError:
        return "系统这会儿响应太慢，我没等到结果，请稍后再问。"
    except (RemediationError, TaskError, BriefingError) as exc:
        return speakable(f"没办法完成：{exc}")
    except Exception as exc:
        # A voice client drops error text: say something, and keep the trace in the log.
        log.warning("voice tool failed", exc_info=True)
        name = getattr(exc, "message", None) or type(exc).__name__
        return speakable(f"出了点问题，没有完成。{name}")


def _services(state: AppState) -> tuple[BriefingService, RemediationService, TaskService]:
    return (
        BriefingService(state.temporal, state.settings, state.db, tencent=state.tencent),
        RemediationService(state.temporal, state.settings, state.db),
        TaskService(state.temporal, state.settings, state.db),
    )


# --- tools ----------------------------------------------------------------------------------


async def greet(ctx: Context[Any, Any], speaker: Spoken = None) -> str:
    """用户问好（你好、早上好）时调用，播报今日简报。谢谢、再见不用。Greeting: today's briefing."""
    state = app_state(ctx)

    async def work(user: str) -> str:
        result = await _services(state)[0].greet(user, via="voice", audio=False)
        if result.outcome is GreetOutcome.SPOKEN and len(result.text) > MAX_SPOKEN:
            lead = "".join(result.segments[:2]) if result.segments else result.text
            return speakable(lead, MAX_SPOKEN - 20) + "完整简报在你的收件箱里。"
        return result.text

    return await _answer(ctx, speaker, work)


async def _waiting(state: AppState, user: str) -> list[RemediationSummary]:
    return await waiting_for(_services(state)[1], user)


def _about(run: RemediationSummary) -> str:
    # service is cluster/namespace/workload: the workload is what a person calls it.
    workload = run.service.rsplit("/", 1)[-1]
    return f"{_spoken_name(workload)} 的 {_spoken_name(run.alert_type)}"


async def what_needs_me(ctx: Context[Any, Any], speaker: Spoken = None) -> str:
    """现在需要我处理什么：待我审批的修复和未结束的告警。What needs me now."""
    state = app_state(ctx)

    async def work(user: str) -> str:
        service = _services(state)[1]
        waiting = await waiting_for(service, user)
        running = [
            r
            for r in await service.list_runs(user, limit=50)
            if r.state not in FINAL_STATES and r.run_key not in {w.run_key for w in waiting}
        ]
        if not waiting and not running:
            return "现在没有需要你处理的事，一切正常。"
        parts = []
        if waiting:
            named = "；".join(
                f"第{_ORDINAL_WORDS[i]}个是{_about(r)}" for i, r in enumerate(waiting[:3])
            )
            parts.append(f"有 {len(waiting)} 个修复等你审批：{named}。可以说“批准第一个”。")
        if running:
            parts.append(f"另有 {len(running)} 个告警正在自动处理。")
        return "".join(parts)

    return await _answer(ctx, speaker, work)


_ORDINAL_WORDS = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]
_ORDINALS: dict[str, int] = {
    **{w: i for i, w in enumerate(_ORDINAL_WORDS)},
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
        listed = "、".join(_about(r) for r in runs[:3])
        return None, f"没找到“{said}”。等你审批的有：{listed}。请说服务名或第几个。"
    listed = "、".join(f"第{_ORDINAL_WORDS[runs.index(r)]}个{_about(r)}" for r in matches[:3])
    return None, f"有 {len(matches)} 个符合：{listed}。请说第几个。"


async def _decide(
    ctx: Context[Any, Any], which: str, approve: bool, reason: str, speaker: str | None
) -> str:
    state = app_state(ctx)

    async def work(user: str) -> str:
        run, question = pick_remediation(await _waiting(state, user), which)
        if run is None:
            return question
        decision = await _services(state)[1].approve(
            user, run.remediation_id, approve, reason or "by voice"
        )
        verb = "批准" if decision.approve else "拒绝"
        return f"好的，已{verb}{_about(run)}的修复。"

    return await _answer(ctx, speaker, work)


async def approve_remediation(
    ctx: Context[Any, Any], which: Reference, speaker: Spoken = None
) -> str:
    """批准一个等我审批的修复，按服务名或“第一个”。Approve a waiting remediation."""
    return await _decide(ctx, which, True, "", speaker)


async def refuse_remediation(
    ctx: Context[Any, Any],
    which: Reference,
    reason: Annotated[str, Field(default="", max_length=200, description="原因 / reason")] = "",
    speaker: Spoken = None,
) -> str:
    """拒绝一个等我审批的修复。Refuse a waiting remediation."""
    return await _decide(ctx, which, False, reason, speaker)


def _task_label(task: TaskSummary) -> str:
    name = task.task_id.rsplit("/", 1)[-1]
    if re.fullmatch(r"[0-9a-f]{12}", name):
        return speakable(task.summary or task.kind.value.replace("_", " "), 60)
    return _spoken_name(name)


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
        listed = "、".join(_task_label(t) for t in tasks[:4])
        return None, f"没找到叫“{said}”的任务。你的任务有：{listed}。"
    listed = "、".join(_task_label(t) for t in found[:4])
    return None, f"有 {len(found)} 个任务符合：{listed}。请说完整的名字。"


_STATE_WORDS = {"active": "正在运行", "paused": "已暂停", "stopped": "已停止"}


async def task_status(ctx: Context[Any, Any], name: TaskName, speaker: Spoken = None) -> str:
    """某个任务或监控现在怎么样、还在跑吗，按名字。A task's status by its spoken name."""
    state = app_state(ctx)

    async def work(user: str) -> str:
        tasks = _services(state)[2]
        task, question = pick_task(list(await tasks.list(user, limit=200)), name)
        if task is None:
            return question
        status = await tasks.get(user, task.task_id)
        said = _STATE_WORDS.get(status.state.value, status.state.value)
        return f"{_task_label(task)}{said}，已检查 {status.checks} 次。"

    return await _answer(ctx, speaker, work)


async def _control(ctx: Context[Any, Any], name: str, pause: bool, speaker: str | None) -> str:
    state = app_state(ctx)

    async def work(user: str) -> str:
        tasks = _services(state)[2]
        task, question = pick_task(list(await tasks.list(user, limit=200)), name)
        if task is None:
            return question
        if pause:
            await tasks.pause(user, task.task_id)
            return f"好的，{_task_label(task)}已暂停。"
        await tasks.resume(user, task.task_id)
        return f"好的，{_task_label(task)}已恢复运行。"

    return await _answer(ctx, speaker, work)


async def pause_task(ctx: Context[Any, Any], name: TaskName, speaker: Spoken = None) -> str:
    """暂停（停掉、先停一下）一个任务，按名字。Pause a task by its spoken name."""
    return await _control(ctx, name, True, speaker)


async def resume_task(ctx: Context[Any, Any], name: TaskName, speaker: Spoken = None) -> str:
    """恢复（继续、重新打开）一个暂停的任务，按名字。Resume a task, turn it back on."""
    return await _control(ctx, name, False, speaker)


async def cluster_health(ctx: Context[Any, Any], speaker: Spoken = None) -> str:
    """容器集群（Kubernetes）健康状况；任务、天气不用。Kubernetes cluster health."""
    state = app_state(ctx)

    async def work(_: str) -> str:
        cloud = state.tencent or TencentCloud.from_settings(state.settings)
        if not cloud.configured:
            return "还没有配置腾讯云账号，我看不到集群。"
        try:
            clusters = await ops.list_clusters(cloud)
        except TencentCloudError:
            return "暂时连不上腾讯云，看不到集群状况，请稍后再问。"
        if not clusters:
            return "这个账号下没有容器集群。"
        bad = [c for c in clusters if c.status.lower() != "running"]
        if not bad:
            return f"{len(clusters)} 个集群都在正常运行。"
        names = "、".join(_spoken_name(c.name) for c in bad[:3])
        return f"{len(clusters)} 个集群里有 {len(bad)} 个不正常：{names}。"

    return await _answer(ctx, speaker, work)


_ERROR_KINDS = ("watch.failing", "watch.poll_failed", "watch.delivery_failed", "watch.breach")


async def recent_errors(
    ctx: Context[Any, Any],
    hours: Annotated[
        int,
        Field(default=24, ge=1, le=168, description="小时数：一天 24，两天 48，一周 168 / hours"),
    ] = 24,
    speaker: Spoken = None,
) -> str:
    """最近的错误，一句话。Recent errors of my tasks in one sentence."""
    state = app_state(ctx)

    async def work(user: str) -> str:
        since = datetime.now(UTC) - timedelta(hours=hours)
        async with state.db.session() as session:
            events = EventRepository(session)
            found = [
                e
                for kind in _ERROR_KINDS
                for e in await events.list(user=user, kind=kind, since=since, limit=100)
            ]
        if not found:
            return f"最近 {hours} 小时没有错误。"
        by_task: dict[str, int] = {}
        for event in found:
            label = _spoken_name((event.task or "").rsplit("/", 1)[-1]) or "未知任务"
            by_task[label] = by_task.get(label, 0) + 1
        top = sorted(by_task.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        named = "、".join(f"{label} {count} 次" for label, count in top)
        return f"最近 {hours} 小时有 {len(found)} 个错误，主要是：{named}。"

    return await _answer(ctx, speaker, work)


TOOLS: list[tuple[Callable[..., Awaitable[str]], ToolAnnotations]] = [
    (greet, WRITE),
    (what_needs_me, READ),
    (approve_remediation, WRITE),
    (refuse_remediation, WRITE),
    (task_status, READ),
    (pause_task, WRITE),
    (resume_task, WRITE),
    (cluster_health, CLOUD),
    (recent_errors, READ),
]


def build_voice_server(
    settings: Settings,
    *,
    holder: StateHolder | None = None,
    stdio_user: str | None = None,
    http_auth: bool = False,
) -> MCPServer[AppState]:
    """The voice profile: its own server over the same state, tokens and services."""
    mcp = server_shell(
        MCPServer,
        settings,
        holder=holder,
        stdio_user=stdio_user,
        http_auth=http_auth,
        path=VOICE_PATH,
        name="ambient-voice",
        instructions=INSTRUCTIONS,
    )
    for function, hints in TOOLS:
        # Plain text results: no output schema to send on every turn, nothing but the words.
        mcp.tool(annotations=hints, structured_output=False)(function)
    return mcp


VOICE_PATH = "/mcp/voice"
# Where a 401 from /mcp/voice points clients for its protected-resource metadata (RFC 9728).
VOICE_METADATA = "/.well-known/oauth-protected-resource"


def by_path(exact: Mapping[str, ASGIApp], default: ASGIApp) -> ASGIApp:
    """One ASGI app for the root mount: these exact paths to their apps, the rest to default.

    Both MCP apps carry their own auth middleware, so neither can be a route of the other.
    """

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        await exact.get(path, default)(scope, receive, send)

    return dispatch
