"""A request whose worker went silent: the voice says what it did (sent, or nothing), as the
service's answer does, not one sentence for every silent worker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ambient import temporal
from ambient.speakers import SpeakerKind
from ambient.watches.deadline import (
    APPLIED_UNREAD,
    CHECK_SENT,
    CONTROL_SENT,
    SENT_UNANSWERED,
    in_time,
    silent,
)
from ambient.watches.inputs import WorkerSilentError
from ambient.wiring import AppState
from mcp_server import voice_answer
from tests.voice.support import assert_speakable

SENT = (
    "后台的工作进程没有响应，但请求已经发出，它接手后还可能生效，稍后可以问我这个任务的状态。",
    "The background worker isn't answering, but the request was sent and may still apply:"
    " ask me about the task later.",
)
NOT_SENT = (
    "后台的工作进程没有响应，这次什么都没有发出，任务没有变。",
    "The background worker isn't answering, so nothing was sent and the task is unchanged.",
)
APPLIED = (
    "已经改好了，但后台的工作进程没有响应，现在读不到任务的状态，稍后可以再问我。",
    "It was changed, but the background worker isn't answering, so I can't read the task now:"
    " ask me later.",
)


def _out_of_time(sent: bool, words: str) -> WorkerSilentError:
    """The service's error for a request whose deadline came at a call (`in_time`)."""
    try:
        with in_time("threshold-watch/vs/shop", words):
            raise temporal.OutOfTime(sent=sent)
    except WorkerSilentError as exc:
        return exc
    raise AssertionError("in_time let it through")


def _hearing(english: bool) -> Any:
    """Who speaks: the owner, in ``english`` or Chinese."""

    async def heard(state: AppState, owner: str, speaker: str | None) -> tuple[Any, bool]:
        return SimpleNamespace(kind=SpeakerKind.OWNER, user=SimpleNamespace(name=owner)), english

    return heard


async def _said(work: Any) -> str:
    """What the voice answers a call whose ``work`` this is."""
    state = SimpleNamespace(stdio_user="vs")
    ctx: Any = SimpleNamespace(request_context=SimpleNamespace(lifespan_context=state, params={}))
    return await voice_answer.answer(ctx, None, work)


def _applied_unread() -> WorkerSilentError:
    """An update applied whose status read then found the worker silent (TaskService.update)."""
    return WorkerSilentError(f"{silent('threshold-watch/vs/shop')}; {APPLIED_UNREAD}")


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (lambda: _out_of_time(True, CONTROL_SENT), SENT),
        (lambda: _out_of_time(True, CHECK_SENT), SENT),
        (lambda: _out_of_time(True, SENT_UNANSWERED), SENT),
        (lambda: _out_of_time(False, CONTROL_SENT), NOT_SENT),
        (_applied_unread, APPLIED),
    ],
    ids=["control-sent", "check-sent", "update-sent", "nothing-sent", "applied-unread"],
)
async def test_a_request_whose_worker_went_silent_is_said_as_sent_or_not(
    error: Any, said: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pause whose signal may have reached the server and one that sent nothing were both
    "后台的工作进程没有响应，现在查不到实时状态。" (a read's words), though the service's answer
    said which: the listener could not tell whether to ask again."""

    async def work(state: AppState, user: str) -> str:
        raise error()

    answers = []
    for english in (False, True):
        monkeypatch.setattr(voice_answer, "heard", _hearing(english))
        answers.append(await _said(work))
    assert tuple(answers) == said
    for answer in answers:
        assert_speakable(answer)


async def test_a_read_whose_worker_is_silent_is_still_said_as_a_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The silent-worker words alone (a status read, nothing asked of the task): the read's
    sentence, as before."""

    async def work(state: AppState, user: str) -> str:
        raise silent("threshold-watch/vs/shop")

    monkeypatch.setattr(voice_answer, "heard", _hearing(False))
    assert await _said(work) == "后台的工作进程没有响应，现在查不到实时状态。请检查它是否在运行。"
