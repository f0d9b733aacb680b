"""A morning whose briefing could not be prepared, as its user is told it: what a greeting that
day hears and what is pushed at the window's end. The failure's own text stays in the worker's
log and the status (``preparation_error``) as an admin reads it; a member reads there what failed
in their terms (``BriefingStatus.told``), as the user hears it.

Pure: no I/O, no clock; safe inside workflows.
"""

from __future__ import annotations

from enum import StrEnum

from temporalio.exceptions import ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

from ambient.briefing.config import Language
from ambient.domain.notify import (
    CHANNEL_TYPES,
    Message,
    NotificationKind,
    made_here,
)
from ambient.refusals import N_

# The preparation's error type when the database failed it (activities/briefing.py).
DATABASE_FAILED = "BriefingDatabaseFailed"
# A regenerate's refusal when its preparation failed (workflows/daily_briefing_prepare_push.py).
PREPARATION_FAILED = "PreparationFailed"


class Unprepared(StrEnum):
    """Why a day's briefing could not be prepared, as its user can act on it."""

    DATABASE = "database"  # the app's database did not answer or refused the briefing
    TOO_LONG = "too_long"  # every attempt ran past its bound (or lost its worker)
    OTHER = "other"  # anything else: the status and the log say what


def unprepared_because(cause: BaseException | None) -> Unprepared:
    """What a failed preparation's cause (an ``ActivityError``'s) means to the user."""
    if isinstance(cause, ActivityTimeout):
        return Unprepared.TOO_LONG
    if isinstance(cause, ApplicationError) and cause.type == DATABASE_FAILED:
        return Unprepared.DATABASE
    return Unprepared.OTHER


# (Chinese, English) per reason: a clause that follows "could not be prepared:".
_REASONS = {
    Unprepared.DATABASE: (
        "保存简报的数据库没有响应",
        "the database that keeps the briefings did not answer",
    ),
    Unprepared.TOO_LONG: (
        "准备的时间超过了上限",
        "preparing it took longer than it may",
    ),
    Unprepared.OTHER: (
        "准备时出了内部错误，管理员可以在任务状态里看到原因",
        "an internal error stopped it; an administrator sees why in the task's status",
    ),
}


def _said(zh: str, en: str, language: Language) -> str:
    return zh if language == "zh" else en


def unprepared_greeting(why: Unprepared, language: Language) -> str:
    """A greeting's answer when the day's briefing could not be prepared: why, and that the next
    greeting tries again (the workflow prepares again at a greeting after a failure)."""
    zh, en = _REASONS[why]
    return _said(
        f"你好！今天的简报没能准备好：{zh}。过几分钟再叫我，我会再试一次。",
        f"Hello! Today's briefing could not be prepared: {en}. Greet me again in a few "
        "minutes and I'll try once more.",
        language,
    )


def unprepared_push(why: Unprepared, language: Language, date: str) -> Message:
    """The push at the window's end of a day nobody greeted whose briefing could not be
    prepared: there is no briefing to send, so the user is told that, why, and what to do."""
    zh, en = _REASONS[why]
    title = _said(f"每日简报 {date}：没能准备好", f"Daily briefing {date}: not prepared", language)

    def body(zh_logs: str, en_logs: str) -> str:
        return _said(
            f"今天早上的简报（{date}）没能准备好：{zh}。\n\n昨天的日志仍然可以查看：{zh_logs}。"
            "明天的简报照常准备；如果再次失败，请告诉管理员。",
            f"This morning's briefing ({date}) could not be prepared: {en}.\n\n"
            f"Yesterday's logs can still be read: {en_logs}. Tomorrow's briefing is prepared as "
            "usual; if it fails again, tell your administrator.",
            language,
        )

    # With no language model configured the assistant cannot chat (the notify activity knows):
    # the tool reads them without one.
    no_model = Message(
        title=title,
        body=body(
            "在 MCP 客户端里调用 analyze_logs（不需要语言模型）",
            "call analyze_logs from an MCP client (it needs no language model)",
        ),
        kind=NotificationKind.BRIEFING,
    )
    return Message(
        title=title,
        body=body(
            "请让助手分析昨天的日志（analyze_logs）",
            "ask the assistant to analyze them (analyze_logs)",
        ),
        kind=NotificationKind.BRIEFING,
        no_model=no_model,
    )


# What a member reads in the status (and a failed regenerate's answer) for a failure whose own
# text is an administrator's (a driver's names hosts and SQL): what failed, why as the greeting
# says it, and what to do. Admins read the text itself.
_NOT_PREPARED_BECAUSE = {
    Unprepared.DATABASE: N_(
        "the briefing could not be prepared: the database that keeps the briefings did not "
        "answer. Greet again or regenerate it in a few minutes, and if it fails again tell your "
        "administrator, who sees why in the task's status."
    ),
    Unprepared.TOO_LONG: N_(
        "the briefing could not be prepared: preparing it took longer than it may. Greet again "
        "or regenerate it in a few minutes, and if it fails again tell your administrator, who "
        "sees why in the task's status."
    ),
    Unprepared.OTHER: N_(
        "the briefing could not be prepared: an internal error stopped it. Greet again or "
        "regenerate it in a few minutes, and if it fails again tell your administrator, who "
        "sees why in the task's status."
    ),
}
# Why unknown: a status from a worker that did not say it (before `preparation_failure`).
NOT_PREPARED = N_(
    "the briefing could not be prepared: an internal error or the database stopped it. Greet "
    "again or regenerate it in a few minutes, and if it fails again tell your administrator, "
    "who sees why in the task's status."
)


def not_prepared(why: Unprepared | None) -> str:
    """A member's words for a failed preparation (a msgid: the pages translate it)."""
    return NOT_PREPARED if why is None else _NOT_PREPARED_BECAUSE[why]


NOT_RECORDED = (
    "the greeting was spoken but could not be recorded: the database did not take it; nothing "
    "to do, an administrator sees why in the task's status"
)
NOT_PUSHED = (
    "the push could not be sent: an internal error or the database stopped it; if it happens "
    "again tell your administrator, who sees why in the task's status"
)


# A push's failure of the member's own channels, theirs to mend: its lines ("wecom: HTTP 500"),
# or the notify activity's failure for good with them (activities/notify.py). A line the
# product made (`INTERNAL_ERROR`: a bug, the database's text) is not theirs.
CHANNELS_FAILED = (
    *(f"{channel}: " for channel in CHANNEL_TYPES),
    "transient delivery failures: ",
    "given up: ",
)


def said_to_member(error: str | None, words: str, *, channels: bool = False) -> str | None:
    """A status's "DATE: why" with ``words`` for the why; with ``channels``, a failure of the
    member's own channels (`CHANNELS_FAILED`) stays as it is, unless the product failed one
    of them (a bug, the database: `INTERNAL_ERROR`), whose text is an administrator's."""
    if error is None:
        return None
    date, _, why = error.partition(": ")
    if channels and why.startswith(CHANNELS_FAILED) and not made_here(why):
        return error
    return f"{date}: {words}"
