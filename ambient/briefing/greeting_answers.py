"""A greeting's answers, the voice trigger's: what a greeting asks (its retry-safe id, how long
its caller listens) and gets (the outcome: the briefing spoken, already given, outside the
window, still preparing, unavailable, paused), the short answers that are not the briefing itself
in Chinese and English, and the greeting word of the hour a briefing is spoken at.

Pure: no I/O, no clock; safe inside workflows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from ambient.briefing.config import Language
from ambient.briefing.models import MAX_REQUEST_ID
from ambient.briefing.unprepared import Unprepared, unprepared_greeting
from ambient.speech import said_time


class GreetOutcome(StrEnum):
    SPOKEN = "spoken"  # the first greeting inside the window: here is the briefing
    ALREADY_GIVEN = "already_given"  # given earlier today; not repeated
    OUTSIDE_WINDOW = "outside_window"  # a short answer; the day's briefing is not used up
    PREPARING = "preparing"  # not ready within the bounded wait; ask again
    UNAVAILABLE = "unavailable"  # preparation failed or no briefing task
    PAUSED = "paused"  # the user paused the briefing: nothing is spoken until resumed


class GreetRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID)
    via: str = Field(default="mcp", max_length=32, description="mcp, voice, cli, api")
    # The most the caller still listens while the briefing is prepared (None: the workflow's
    # own wait). A briefing ready after its caller gave up would be spent on nobody.
    # At most an hour (the service sends under a minute): a larger one, sent by hand, would
    # overflow the workflow's timedelta, a task failure retried forever.
    wait_seconds: float | None = Field(default=None, ge=0, le=3600)
    # When the caller stops waiting for the answer (the service's clock at send plus its wait;
    # None: one sent by hand, from the Web UI, answered as a trial that keeps the day). The
    # workflow refuses a greeting it takes up later (a worker down or backed up): applied
    # then, it would use up the day for nobody.
    answer_by: datetime | None = None


class GreetResult(BaseModel):
    outcome: GreetOutcome
    text: str
    segments: list[str] = Field(default_factory=list)
    date: str | None = None
    given_at: datetime | None = None
    given_at_local: str | None = Field(default=None, description="HH:MM in the user's zone")
    window: str | None = Field(default=None, description="HH:MM–HH:MM an outside_window names")
    generated_by: str | None = None
    language: Language | None = Field(
        default=None, description="the language a spoken briefing is written in"
    )
    unprepared: Unprepared | None = Field(
        default=None, description="why the day's briefing could not be prepared (unavailable)"
    )
    audio_mp3_b64: str | None = Field(default=None, description="Tencent TTS audio, if set up")


# The short answers that are not the briefing itself: (Chinese, English) per outcome.
_GREETINGS = {
    GreetOutcome.ALREADY_GIVEN: (
        "你好！今天的简报已经在{hhmm}播报过了，不再重复。",
        "Hello! I gave today's briefing at {hhmm}; I won't repeat it.",
    ),
    GreetOutcome.OUTSIDE_WINDOW: (
        "你好！每日简报在{start}到{end}之间的第一次问候时播报。",
        "Hello! The daily briefing is given at the first greeting between {start} and {end}.",
    ),
    GreetOutcome.PAUSED: (
        "你好！每日简报已暂停，恢复后才会播报。",
        "Hello! Your daily briefing is paused; it is given again once you resume it.",
    ),
    GreetOutcome.PREPARING: (
        "你好！今天的简报还在准备中，请稍后再叫我。",
        "Hello! Today's briefing is still being prepared; ask me again in a moment.",
    ),
    GreetOutcome.UNAVAILABLE: (
        "你好！今天的简报没能准备好，过几分钟再叫我，我会再试一次。",
        "Hello! Today's briefing could not be prepared; greet me again in a few minutes.",
    ),
}

# The greetings the workflow does not give (Chinese, English): the service says them, when
# the workflow is not there or does not answer in time.
# Where one is set up: the assistant on the web app's Tasks & events page (the voice has no
# tool that creates one; the page's empty History says the same).
NOT_SET_UP = (
    "你好！还没有设置每日简报，可以在网页的任务与事件页请助手设置。",
    "Hello! No daily briefing is set up yet; "
    "ask the assistant on the Tasks and events web page to set one up.",
)
# With no language model configured that assistant cannot chat: a voice is told who can set
# one up, an MCP client (and the CLI, in its command's words) the tool that does.
NOT_SET_UP_NO_MODEL = (
    "你好！还没有设置每日简报。这里没有配置语言模型，网页助手设置不了，请让管理员帮你设置。",
    "Hello! No daily briefing is set up yet, and with no language model configured the web "
    "assistant cannot set one up: ask your administrator to.",
)
# The administrator themselves, asking it by voice with no model: where, in words (a command,
# a path or an id is no spoken word; the CLI's help, and the README, give the command).
NOT_SET_UP_ADMIN_NO_MODEL = (
    "你好！还没有设置每日简报，这里也没有配置语言模型。你是管理员，"
    "可以在服务器的命令行里为自己创建每日简报，命令行的帮助里有做法。",
    "Hello! No daily briefing is set up yet, and no language model is configured. As the "
    "administrator, you can create your daily briefing from the server's command line; its "
    "help shows how.",
)
NOT_SET_UP_BY_TOOL = (
    "你好！还没有设置每日简报：调用 create_daily_briefing 来设置。",
    "Hello! No daily briefing is set up yet: call create_daily_briefing to set one up.",
)
NOT_IN_TIME = (
    "你好！简报这次没有及时回答，请再叫我一次。",
    "Hello! The briefing did not answer in time: greet again in a moment.",
)
NO_WORKER = (
    "你好！简报的后台程序没有在运行，请管理员启动它，然后再叫我。",
    "Hello! The briefing's worker is not running: ask your administrator to start it, then "
    "greet me again.",
)


def greeting_text(
    outcome: GreetOutcome,
    language: Language,
    *,
    hhmm: str | None = None,
    window: str = "",
    unprepared: Unprepared | None = None,
) -> str:
    """The short answers that are not the briefing itself."""
    if outcome is GreetOutcome.UNAVAILABLE and unprepared is not None:
        return unprepared_greeting(unprepared, language)
    zh, en = _GREETINGS.get(outcome, _GREETINGS[GreetOutcome.UNAVAILABLE])
    # The window "HH:MM–HH:MM" is said in words: a TTS reads the dash oddly or skips it.
    start, _, end = window.partition("–")
    said = (said_time(start, english=language != "zh"), said_time(end, english=language != "zh"))
    hhmm = hhmm and said_time(hhmm, english=language != "zh")
    return (zh if language == "zh" else en).format(hhmm=hhmm, start=said[0], end=said[1])


# A briefing's first word, per hour it is spoken (up to 12, up to 18, the rest): (zh, en).
_HELLOS = (
    (12, "早上好", "Good morning"),
    (18, "下午好", "Good afternoon"),
    (24, "晚上好", "Good evening"),
)


def hello(hour: int, language: Language) -> str:
    """The greeting word for ``hour`` (local), in ``language``."""
    zh, en = next((zh, en) for upto, zh, en in _HELLOS if hour < upto)
    return zh if language == "zh" else en


def greeted_at(text: str, hhmm: str | None) -> str:
    """A briefing written ahead (its first word for its window's start) as spoken at ``hhmm``:
    its greeting word the one of that hour."""
    if not hhmm or not hhmm[:2].isdigit():
        return text
    for _, zh, en in _HELLOS:
        for word, language in ((zh, "zh"), (en, "en")):
            if text.startswith(word):
                return hello(int(hhmm[:2]), language) + text[len(word) :]  # type: ignore[arg-type]
    return text
