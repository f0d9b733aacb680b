"""Once the workflow has spoken the day's briefing, nothing after it may fail the greeting: the
service read the user's language again after the update, and a database hiccup there was heard
as "it failed", then "already given" at the next greeting: the day's briefing was lost. What the
cleaning puts in is in the briefing's language, which the user's may no longer be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.greeting import Greeting
from ambient.briefing.greeting_answers import GreetOutcome, hello
from ambient.briefing.logreport import TemplateStat
from ambient.briefing.models import AlarmRecord, BriefingInputs
from ambient.briefing.offline import offline_draft
from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.settings import Settings
from ambient.speech import cleaned, speakable
from ambient.wiring import AppState
from mcp_server import voice_answer
from tests.briefing.test_briefing_task_door import zone_at_midday
from tests.conftest import running_worker, unique
from tests.support.waits import eventually
from tests.voice.conftest import PRODUCT_CALL_BUDGET
from tests.voice.support import voice_api, voice_client, worker_state
from tests.voice.test_voice_language import _prepared, _user

# Its first word is the one of the hour it is spoken (the window is the whole day, on the
# wall clock): any of the three.
BRIEFING_ZH = tuple(f"{word}，" for word in ("早上好", "下午好", "晚上好"))

# The whole day, in a zone where it is midday now: far from the window's end and the next day.
DAY = {"prepare_at": "00:00", "window_start": "00:00", "window_end": "23:59"}


@asynccontextmanager
async def prepared(
    env: WorkflowEnvironment, deps: WorkerDeps, name: str, language: str
) -> AsyncIterator[tuple[AppState, str]]:
    """A Chinese-speaking user (a fresh one named from ``name``) whose briefing, written in
    ``language``, is prepared and open all day, served by a worker; deleted after."""
    user = unique(name)
    await _user(deps, user, Language.ZH)
    async with running_worker(env.client, deps) as worker:
        state = worker_state(env.client, deps, worker.task_queue)
        config = {**DAY, "timezone": zone_at_midday(), "language": language}
        await state.briefings.create(user, config)
        try:
            await eventually(lambda: _prepared(state.briefings, user), "prepared")
            yield state, user
        finally:
            await state.briefings.delete(user)


async def test_a_database_hiccup_after_the_briefing_is_spoken_does_not_lose_it(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    async def chinese(self: Greeting, who: Any) -> bool:
        # The database refuses every read of the user's language from now on.
        asked.append(str(who))
        raise OperationalError("SELECT users", {}, Exception("database is locked"))

    async with prepared(dev_env, deps, "spent", "zh") as (state, user):
        with monkeypatch.context() as patched:
            patched.setattr(Greeting, "_chinese", chinese)
            (first,) = await greetings(state, user, 1)
    assert first.startswith(BRIEFING_ZH), first
    assert asked == []  # the briefing says its language: no read after it was spoken


async def test_a_briefing_is_cleaned_in_its_own_language_for_a_user_who_changed_theirs(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    async with prepared(dev_env, deps, "twolang", "en") as (state, user):
        spoken = await state.briefings.greet(user, via="voice", audio=False)
    assert spoken.outcome is GreetOutcome.SPOKEN and spoken.language == "en", spoken
    assert spoken.given_at_local is not None
    said_hello = hello(int(spoken.given_at_local[:2]), Language.EN)
    assert spoken.text.startswith(f"{said_hello}, no log source"), spoken.text


@pytest.mark.parametrize(
    ("language", "template", "heard"),
    [
        ("zh", "Request timed out. Retrying in <*> ms", "Retrying in some ms，共 40 次。"),
        ("en", "Connection closed by peer. Reconnecting!", "Reconnecting, 40 times."),
        ("zh", "连接失败。正在重试", "连接失败，正在重试，共 40 次。"),
    ],
)
def test_the_top_error_said_in_the_briefing_keeps_its_count_whatever_its_stops(
    language: str, template: str, heard: str
) -> None:
    """A log template holding a full stop ended the third spoken sentence at it: "最多的错误是：
    Request timed out." was heard, and its count never."""
    stat = TemplateStat(template_id="t1", template=template, level="ERROR", count=40, example="x")
    inputs = BriefingInputs(
        date="2026-12-03", language=language, log_lines=5000, errors=40, top_templates=[stat]
    )
    spoken = offline_draft(inputs).spoken_text
    said = speakable(cleaned(spoken, english=language == "en"), english=language == "en")
    assert heard in said, said


async def greetings(state: AppState, user: str, times: int) -> list[str]:
    """What ``times`` greetings in a row, on one voice client of ``user``'s, heard."""
    async with voice_client(state, user) as client:
        return [
            (await client.call_tool("greet", {})).content[0].text  # type: ignore[union-attr]
            for _ in range(times)
        ]


def first_greet_answered_late() -> tuple[Callable[..., Awaitable[Any]], list[bool]]:
    """``WorkflowHandle.execute_update`` whose first greeting is applied and answered a minute
    late (its answer's way back outlasts the call), and the flag that empties once it was."""
    real = WorkflowHandle.execute_update
    slow = [True]

    async def execute_update(self: WorkflowHandle[Any, Any], update: Any, *a: Any, **k: Any) -> Any:
        result = await real(self, update, *a, **k)
        if slow and getattr(update, "__name__", "") == "greet":
            slow.clear()
            await asyncio.sleep(60)
        return result

    return execute_update, slow


async def test_a_greeting_spoken_but_answered_too_late_is_heard_at_the_next_greeting(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workflow spoke the day to a greeting whose answer came back after the call's
    budget (a loaded server, a slow network): "call me again" was heard, then "already given
    at …" at the next greeting, and the day's briefing never."""
    execute_update, _ = first_greet_answered_late()
    async with prepared(dev_env, deps, "unheard", "zh") as (state, user):
        with monkeypatch.context() as patched:
            patched.setattr(WorkflowHandle, "execute_update", execute_update)
            # The product's budget (this folder's tests have three times it): the first call
            # waits all of it.
            patched.setattr(voice_answer, "CALL_BUDGET", PRODUCT_CALL_BUDGET)
            said = await greetings(state, user, 3)
    assert "再叫我一次" in said[0], said
    assert said[1].startswith(BRIEFING_ZH), said  # the briefing it was spoken
    assert "播报过了" in said[2], said  # once: then as any later greeting


async def test_a_briefing_answered_too_late_is_kept_across_a_second_greeting_cut_short(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The greeting after one answered too late was itself cut short (the worker still
    backed up: its query unanswered in time): the first greeting's request was taken and
    dropped, so the third heard "already given" and the day's briefing never."""
    real_query = WorkflowHandle.query
    execute_update, slow_update = first_greet_answered_late()
    slow_query = [True]

    async def query(self: WorkflowHandle[Any, Any], *a: Any, **k: Any) -> Any:
        if not slow_update and slow_query:  # the second greeting's first query
            slow_query.clear()
            await asyncio.sleep(60)
        return await real_query(self, *a, **k)

    async with prepared(dev_env, deps, "unheard-twice", "zh") as (state, user):
        with monkeypatch.context() as patched:
            patched.setattr(WorkflowHandle, "execute_update", execute_update)
            patched.setattr(WorkflowHandle, "query", query)
            patched.setattr(voice_answer, "CALL_BUDGET", PRODUCT_CALL_BUDGET)
            said = await greetings(state, user, 4)
    assert "再叫我一次" in said[0], said
    # Cut short too (its query's wait, or the call's budget on a loaded host): nothing decided.
    assert not said[1].startswith(BRIEFING_ZH) and "播报过了" not in said[1], said
    assert said[2].startswith(BRIEFING_ZH), said  # the briefing it was spoken
    assert "播报过了" in said[3], said


async def test_a_briefing_spoken_and_cut_off_while_stored_is_heard_at_the_next_greeting(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workflow spoke the day, and the call's budget ran out while the greeting was
    being stored (a database busy with writes): "too slow" was heard, then "already given"
    at the next greeting, and the day's briefing never."""
    from ambient.briefing import greeting

    real_store = greeting.store_given
    slow = [True]

    async def store_given(*args: Any) -> Any:
        if slow:
            slow.clear()
            await asyncio.sleep(60)  # the database busy past the call's budget
        return await real_store(*args)

    async with prepared(dev_env, deps, "cut-storing", "zh") as (state, user):
        with monkeypatch.context() as patched:
            patched.setattr(greeting, "store_given", store_given)
            patched.setattr(greeting, "STORE_GIVEN_WITHIN", 60.0)
            patched.setattr(voice_answer, "CALL_BUDGET", PRODUCT_CALL_BUDGET)
            said = await greetings(state, user, 3)
    assert not said[0].startswith(BRIEFING_ZH), said  # cut off: not heard
    assert said[1].startswith(BRIEFING_ZH), said  # the briefing it was spoken
    assert "播报过了" in said[2], said


def test_a_spoken_briefing_past_its_length_is_cut_between_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cut at SPOKEN_MAX_CHARS by character count: a speaker that reads the whole text
    (POST /voice/greeting) ended mid-word."""
    from ambient.briefing import offline

    long = "Checkout failed for customers in the east. " * 40
    monkeypatch.setattr(offline, "_spoken", lambda *args: long)
    inputs = BriefingInputs(date="2026-12-03", language="en")
    spoken = offline_draft(inputs).spoken_text
    assert len(spoken) <= offline.SPOKEN_MAX_CHARS
    assert spoken.endswith("in the east."), spoken[-40:]  # a sentence's end, not "cust"


async def test_a_device_greeting_while_preparing_is_answered_while_it_listens_and_spends_no_day(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """POST /voice/greeting (the README's call: no request id) while the briefing is still
    being prepared. The endpoint waited the service's own 25 s, past the ~10 s a device
    listens: the preparation done at 12 s, the briefing was spoken to a device long gone,
    and its next greeting heard "already given". Now the answer comes within what the device
    listens (``listens_seconds``, 8 s unless it says), and the day is kept for its next one."""
    held = asyncio.Event()
    prepare = BriefingActivities._prepare

    async def slow(self: BriefingActivities, request: Any) -> Any:
        await held.wait()  # a language model writing the briefing, a big day of CLS logs
        return await prepare(self, request)

    monkeypatch.setattr(BriefingActivities, "_prepare", slow)
    user = unique("dev")
    await _user(deps, user, Language.ZH)
    device = {"X-Device-Token": "device-secret-9"}
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        where = {
            "temporal_address": dev_env.client.service_client.config.target_host,
            "temporal_task_queue": worker.task_queue,
            "voice_device_tokens": {"kitchen": SecretStr("device-secret-9")},
        }
        async with voice_api(settings.model_copy(update=where)) as (_, http):
            await state.briefings.create(user, {**DAY, "timezone": zone_at_midday()})
            greet = {"user_id": user, "audio": False}
            try:
                # The device's own patience: a 小智's call gives up at 10 s. It says it listens
                # 4 s (the default 8 left a loaded CI host 2 s for the round trip: a flake).
                first: httpx.Response | None = await http.post(
                    "/voice/greeting",
                    json={**greet, "listens_seconds": 4},
                    headers=device,
                    timeout=10,
                )
            except httpx.TimeoutException:
                first = None
            held.set()  # prepared now, after the device stopped listening
            await eventually(lambda: _prepared(state.briefings, user), "prepared")
            again = await http.post("/voice/greeting", json=greet, headers=device, timeout=30)
            too_long, too_short = [
                await http.post(
                    "/voice/greeting", json={**greet, "listens_seconds": n}, headers=device
                )
                for n in (60, 1.5)  # past the service's bound; no time left to speak in
            ]
            await state.briefings.delete(user)
    assert first is not None, "the device stopped listening before its greeting was answered"
    assert first.status_code == 200 and first.json()["outcome"] == "preparing", first.text
    assert again.json()["outcome"] == "spoken", again.text
    for refused in (too_long, too_short):
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "listens_seconds"]


@pytest.mark.parametrize(
    ("language", "alarm_said", "needs_said"),
    [
        ("zh", "有 1 条告警未恢复，包括 cpu-high", "有 1 个问题需要人工处理：db-1 磁盘快满了"),
        (
            "en",
            "1 alarm is still open: cpu-high",
            "1 problem needs a person: db-1 disk nearly full",
        ),
    ],
)
def test_what_waits_on_someone_is_heard_in_the_three_spoken_sentences(
    language: str, alarm_said: str, needs_said: str
) -> None:
    """A day with a top error, a trend and an open alarm, of which only the newest lines were
    read: the voice keeps three sentences, and they were the greeting ("Good morning, here is
    yesterday's briefing."), the headline and the top error (or the cap's). The open alarm's
    name, what waits on a person and the page's pointer were never heard."""
    stat = TemplateStat(
        template_id="t1", template="db timeout", level="ERROR", count=40, example="x"
    )
    alarm = AlarmRecord(
        source="monitor", name="cpu-high", status="ALARM", time=datetime(2026, 12, 3, tzinfo=UTC)
    )
    need = "db-1 磁盘快满了" if language == "zh" else "db-1 disk nearly full"
    inputs = BriefingInputs(
        date="2026-12-03",
        language=language,
        log_lines=5000,
        errors=40,
        logs_capped=True,
        top_templates=[stat],
        trend="错误比前天多 50%" if language == "zh" else "Errors rose 50% on the day before",
        alarms_configured=True,
        alarms=[alarm],
    )
    english = language == "en"
    said = speakable(cleaned(offline_draft(inputs).spoken_text, english=english), english=english)
    assert said.startswith(("早上好，昨天", "Good morning, yesterday")), said
    assert "db timeout" in said and alarm_said in said, said
    pointer = (
        "详细报告已放在简报页面" if language == "zh" else "The full report is on the briefing page"
    )
    quiet = inputs.model_copy(
        update={"top_templates": [], "errors": 0, "trend": None, "logs_capped": False}
    )
    said = speakable(cleaned(offline_draft(quiet).spoken_text, english=english), english=english)
    assert alarm_said in said and pointer in said, said
    waiting = inputs.model_copy(update={"alarms": [], "needs_person": [need]})
    said = speakable(cleaned(offline_draft(waiting).spoken_text, english=english), english=english)
    assert "db timeout" in said and needs_said in said, said
