"""The voice profile's fixed sentences, in Chinese and English: what the voice tools say
when they cannot answer (an unknown tool or speaker, a service down, a refusal by its kind) and
the words they put into answers (task states, task kinds, metrics, arguments asked for
again).
"""

from __future__ import annotations

from ambient.briefing.errors import BriefingNotFoundError, BriefingRefusedError
from ambient.remediation.views import (
    RemediationNotFoundError,
    RemediationRefusedError,
    RemediationStateError,
)
from ambient.speakers import SpeakerKind
from ambient.watches.inputs import TaskNotFoundError, TaskStateError

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
# Said to a voice no one here may be heard as: a stranger, or a user who has not allowed
# this speaker. The owner can do nothing for the second (their consent is their own), so the
# way on is said for both.
UNKNOWN_SPEAKER = (
    "你好！我还不认识你的声音，所以不能告诉你谁的运维信息。"
    "如果你在这里有账号，请在自己的设置里登记声纹并允许这台音箱。"
)
UNKNOWN_SPEAKER_EN = (
    "Hello! I don't know your voice yet, so I can't tell you anyone's operations news."
    " If you have an account here, set your voiceprint and allow this speaker in your own"
    " settings."
)
# A read that needs a worker while none runs (ambient.no_answer.QUERY_TIMEOUT): said plainly.
WORKER_SILENT = "后台的工作进程没有响应，现在查不到实时状态。请检查它是否在运行。"
WORKER_SILENT_EN = (
    "The background worker is not answering, so I can't read the live status now."
    " Please check that it is running."
)
# Nothing found to say while no worker runs: nothing is checked, so that is no "all is well".
NO_WORKER_NEEDS = (
    "后台的工作进程没有在运行，任务没有在检查，说不准有没有事要你处理。请管理员启动它。"
)
NO_WORKER_NEEDS_EN = (
    "The background worker is not running, so nothing is being checked and I can't tell"
    " whether anything needs you. Please ask your administrator to start it."
)
NO_WORKER_ERRORS = "后台的工作进程没有在运行，任务没有在检查，所以没有记录到错误。请管理员启动它。"
NO_WORKER_ERRORS_EN = (
    "The background worker is not running, so nothing is being checked and no errors are"
    " recorded. Please ask your administrator to start it."
)
# The same while Temporal cannot be reached (refused, or its connection gone): no task runs.
TEMPORAL_DOWN_NEEDS = (
    "没有记录到需要你处理的事，但后台的 Temporal 服务连不上，现在任务没有在检查。"
    "请检查它是否在运行。"
)
TEMPORAL_DOWN_NEEDS_EN = (
    "Nothing needing you is recorded, but I can't reach the Temporal service, so nothing is"
    " being checked right now. Please check that it is running."
)
# Said with the span asked about (" 24 小时", "两天"; "24 hours", "hour").
TEMPORAL_DOWN_ERRORS = (
    "最近{span}没有记录到错误，但后台的 Temporal 服务连不上，现在任务没有在检查。"
    "请检查它是否在运行。"
)
TEMPORAL_DOWN_ERRORS_EN = (
    "No errors recorded in the last {span}, but I can't reach the Temporal service, so nothing"
    " is being checked right now. Please check that it is running."
)
# The same while whether anything checks is not known: Temporal did not say in time (a loaded
# host, not one down) or refused to say.
UNCONFIRMED_NEEDS = "没有记录到需要你处理的事，不过我这会儿没能确认任务是否在检查。"
UNCONFIRMED_NEEDS_EN = (
    "Nothing needing you is recorded, but I couldn't confirm right now that your tasks are"
    " being checked."
)
UNCONFIRMED_ERRORS = "最近{span}没有记录到错误，不过我这会儿没能确认任务是否在检查。"
UNCONFIRMED_ERRORS_EN = (
    "No errors recorded in the last {span}, but I couldn't confirm right now that your tasks"
    " are being checked."
)
WORKER_FAILING = "后台的工作进程一直在这件事上出错，现在查不到也改不了。请让运维看一下它的日志。"
WORKER_FAILING_EN = (
    "The background worker keeps failing on this, so I can't read or change it now."
    " Please ask an operator to look at its log."
)
TEMPORAL_DOWN = "后台的 Temporal 服务连不上，现在查不到也改不了任务。请检查它是否在运行。"
TEMPORAL_DOWN_EN = (
    "I can't reach the Temporal service, so I can't read or change tasks now."
    " Please check that it is running."
)
TEMPORAL_NOT_SET_UP = (
    "后台的 Temporal 服务还没有设置好，现在查不到也改不了任务。请让管理员完成设置。"
)
TEMPORAL_NOT_SET_UP_EN = (
    "The Temporal service is not set up for me yet, so I can't read or change tasks now."
    " Please ask your administrator to finish its set-up."
)
DATABASE_DOWN = "数据库连不上，现在什么都查不到。请检查它是否在运行。"
DATABASE_DOWN_EN = (
    "I can't reach the database, so I can't look anything up now. Please check that it is running."
)
# A failure of no kind said above: what it was is in the server's log.
FAILED = "出了点问题，没有完成。原因记在服务器的日志里。"
FAILED_EN = "Something went wrong and it was not done. The reason is in the server's log."
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
# What a speaker nobody may answer for hears, by their kind.
# A voiceprint's "未知" / "主人" where the owner's device answers others and the owner has no
# voiceprint id (SpeakerKind.UNMATCHED): reads are the owner's, acting is not. Said to whoever
# speaks, so it tells the owner what ends it.
UNMATCHED_ACTS = (
    "我分不清这是主人还是别人的声音，所以不能替主人操作。"
    "主人请在设置里填上自己的声纹 ID，或者收回别人对你设备的允许。"
)
UNMATCHED_ACTS_EN = (
    "I can't tell whether this is the owner's voice, so I can't act for the owner."
    " Owner: set your voiceprint id in your settings, or withdraw the others' consent on your"
    " devices."
)
# No speaker named where the owner set a voiceprint id (SpeakerKind.UNNAMED): their voice comes
# by that name, so this may be one the voiceprint did not match. Reads are the owner's. An owner
# whose xiaozhi-server has no voiceprint is never named: clearing the id is their way out.
UNNAMED_ACTS = (
    "我没听出是谁在说话，所以不能替主人操作。"
    "主人请再说一次；服务器没开声纹的话，可在设置里清空声纹 ID。"
)
UNNAMED_ACTS_EN = (
    "I didn't hear whose voice this is, so I can't act for the owner."
    " Owner: say it again; if your server has no voiceprint, clear your voiceprint id in your"
    " settings."
)
# Who reads as the owner but may not act, and what they hear when they try.
MAY_NOT_ACT = {
    SpeakerKind.UNMATCHED: (UNMATCHED_ACTS, UNMATCHED_ACTS_EN),
    SpeakerKind.UNNAMED: (UNNAMED_ACTS, UNNAMED_ACTS_EN),
}
REFUSALS = {
    SpeakerKind.UNKNOWN: (UNKNOWN_SPEAKER, UNKNOWN_SPEAKER_EN),
    SpeakerKind.BEYOND: (BEYOND_OWNER, BEYOND_OWNER_EN),
    SpeakerKind.NO_ACCOUNT: (NO_ACCOUNT, NO_ACCOUNT_EN),
}
NOT_PERMITTED = (
    "你没有这个权限，请找管理员授权。",
    "You don't have that permission: ask an admin.",
)
# A service's refusal, said by its kind (the first that fits), in Chinese and English.
REFUSED: list[tuple[type[Exception], tuple[str, str]]] = [
    (RemediationRefusedError, NOT_PERMITTED),
    (BriefingRefusedError, NOT_PERMITTED),
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

STATE_WORDS = {"active": "正在运行", "paused": "已暂停", "stopped": "已停止"}
STATE_WORDS_EN = {"active": "is running", "paused": "is paused", "stopped": "has stopped"}
# A task created without a name is named by a digest of its config: said by its kind.
KIND_WORDS = {
    "web-monitor": ("网页监控", "a web monitor"),
    "threshold-watch": ("阈值监控", "a threshold watch"),
    "reminder": ("提醒", "a reminder"),
}

# An alert's metric is named as its source writes it ("error_rate", Cloud Monitor's "CPUUsage",
# TKE's "K8sWorkloadPodRestartTotal"): the common ones are said in the listener's words, so a
# Chinese answer does not switch to English mid-sentence ("checkout 的 error rate") and what the
# listener says back ("checkout 的错误率") names the fix (`voice_fix_names.metric_said`; by its
# words, lowercased, TKE's "K8sWorkload" left out). Others are said as written.
METRIC_WORDS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("error rate", "error ratio", "err rate"), ("错误率", "error rate")),
    # A plain "cpu", "memory" or "disk" may be a count or bytes: said plainly, not as a ratio.
    **dict.fromkeys(("cpu usage", "cpu utilization", "cpu util"), ("CPU 使用率", "cpu usage")),
    "cpu": ("CPU", "cpu"),
    "memory": ("内存", "memory"),
    "disk": ("磁盘", "disk"),
    **dict.fromkeys(("cpu core used", "cpu used"), ("CPU 用量", "cpu used")),
    "rate cpu core used cluster": ("CPU 占集群的比例", "cpu share of the cluster"),
    **dict.fromkeys(
        ("mem usage", "memory usage", "memory utilization", "mem util"),
        ("内存使用率", "memory usage"),
    ),
    **dict.fromkeys(
        ("mem usage bytes", "mem no cache bytes", "memory used"), ("内存用量", "memory used")
    ),
    **dict.fromkeys(("memory high", "high memory"), ("内存过高", "high memory")),
    **dict.fromkeys(("disk usage", "disk utilization"), ("磁盘使用率", "disk usage")),
    **dict.fromkeys(
        ("pod restart total", "pod restarts", "restarts", "restart count"),
        ("重启次数", "restarts"),
    ),
    **dict.fromkeys(("pod crashloop", "crashloop", "crash loop"), ("反复崩溃", "crash loop")),
    **dict.fromkeys(("oom killed", "oom"), ("内存不足被终止", "out of memory")),
    **dict.fromkeys(("latency", "response time"), ("延迟", "latency")),
    **dict.fromkeys(("high latency", "latency high"), ("延迟过高", "high latency")),
    **{f"p{n} latency": (f"P{n} 延迟", f"p{n} latency") for n in (50, 90, 95, 99)},
    **dict.fromkeys(("qps", "requests per second"), ("每秒请求数", "requests per second")),
    "deployment unavailable": ("部署不可用", "deployment unavailable"),
}
# A call none of whose words could be read (its arguments no object).
SAY_AGAIN = ("没听清你的意思，请再说一次。", "I didn't catch that. Please say it again.")
# What each argument is, in the words of an answer that asks for it again.
ARGUMENT_WORDS = {
    "name": ("任务名", "the task name"),
    "which": ("是哪个修复", "which fix"),
    "reason": ("原因", "the reason"),
    "hours": (
        "时间范围（一小时到一周，比如“两天”）",
        "the time span, from one hour to a week, like two days",
    ),
    "speaker": ("是谁在说话", "who is speaking"),
}
