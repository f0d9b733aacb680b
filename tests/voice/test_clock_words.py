"""A reminder is found by its time said in English words or in digits ("the 8 pm reminder",
"20:00", "half past eight in the evening"), read as its label's 24-hour clock by the reader of
the Chinese ones ("晚上八点的提醒"), with the same rules: a number said finds only a whole
number of a name, an hour said bare with none at it offers the evening's and acts on nothing.
Each of these was "I found no task called …" (a Chinese speaker's ASR writes "8pm" too)."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.listing import TaskSummary
from mcp_server.voice_task_names import pick_task
from tests.conftest import running_worker, unique
from tests.support.waits import eventually
from tests.voice.support import say, voice_client, worker_state

NAMES = "standup water stretch lunch report backup walk read call pay sleep cook".split()


def _reminders(*times: str, named: bool = False) -> dict[str, TaskSummary]:
    """Reminders at ``times`` by time, their summaries as the service writes them; ``named``:
    each has a name (said by it, its time in its summary alone), else said by its summary."""
    return {
        at: TaskSummary(
            task_id=f"reminder/ops/{NAMES[n] if named else f'00112233aa{n:02d}'}",
            kind=TaskKind.SCHEDULE,
            state=TaskState.ACTIVE,
            summary=f"Reminder, daily at {at} UTC, for ops: {NAMES[n]}",
        )
        for n, at in enumerate(times)
    }


SAID = {
    "pause the 8 pm reminder": "20:00",
    "the reminder at 8pm": "20:00",
    "8:30 am reminder": "08:30",
    "20:00 reminder": "20:00",
    "eight pm": "20:00",
    "8 P.M.": "20:00",
    "the 8 a.m. reminder": "08:00",
    "eight o'clock in the evening": "20:00",
    "eight in the morning": "08:00",
    "half past eight": "08:30",
    "six pm": "18:00",
    "the 18:00 reminder": "18:00",
    "the 8 reminder": "08:00",  # a bare hour with one at it finds it, as "八点的提醒" does
    "eight o'clock reminder": "08:00",
    "晚上八点的提醒": "20:00",  # a named one's time is its summary's "20:00": read alike
}
OTHER_TIMES = {
    "half past eight in the evening": "20:30",
    "8:30 pm": "20:30",
    "the noon reminder": "12:00",
    "12 pm": "12:00",
    "the midnight reminder": "00:00",
    "12 am": "00:00",
    "twelve at night": "00:00",
    "quarter to eight": "07:45",
    "a quarter past eight": "08:15",
    "quarter to one in the afternoon": "12:45",
}


@pytest.mark.parametrize("named", [False, True], ids=["by-summary", "named"])
@pytest.mark.parametrize("english", [True, False], ids=["en", "zh"])
def test_a_time_said_in_english_or_digits_finds_its_reminder(english: bool, named: bool) -> None:
    for said_times in (SAID, OTHER_TIMES):
        at = _reminders(*sorted(set(said_times.values())), "08:30", "18:00", named=named)
        tasks = list(at.values())
        found = {said: pick_task(tasks, said, english) for said in said_times}
        assert {said: p.task and p.task.summary for said, p in found.items()} == {
            said: at[time].summary for said, time in said_times.items()
        }, {said: p.question for said, p in found.items() if p.task is None}


@pytest.mark.parametrize("english", [True, False], ids=["en", "zh"])
def test_eight_pm_never_finds_eighteen_or_eight_in_the_morning(english: bool) -> None:
    at = _reminders("08:00", "18:00", "08:30", "20:00")
    for said in ("8 pm", "the 8pm reminder", "eight pm", "eight in the evening", "8:00 pm"):
        task, question, _ = pick_task([at["08:00"], at["18:00"], at["08:30"]], said, english)
        assert task is None, (said, task)
        assert question.startswith(
            f"I found no task called “{said}”." if english else f"没找到叫“{said}”的任务。"
        ), question
        assert pick_task(list(at.values()), said, english).task is at["20:00"], said


# Times said with their part of the day, in words or digits: each found beside the one 12
# hours apart. Each was "I found no task called …" (or, "seven oh five at night", 17:00's).
WITH_PART = {
    "eight thirty pm": "20:30",
    "the eight thirty pm reminder": "20:30",
    "eight thirty in the evening": "20:30",
    "eight fifteen am": "08:15",
    "eight forty-five pm": "20:45",
    "seven oh five at night": "19:05",
    "seven o five in the morning": "07:05",
    "eleven fifty-nine pm": "23:59",
    "8.30 pm": "20:30",
    "晚上8.30": "20:30",
    "晚上8:30的提醒": "20:30",
    "晚上差一刻九点": "20:45",
}


def _later(at: str) -> str:
    return f"{int(at[:2]) + 12}:{at[3:]}"


@pytest.mark.parametrize("named", [False, True], ids=["by-summary", "named"])
@pytest.mark.parametrize("english", [True, False], ids=["en", "zh"])
@pytest.mark.parametrize(("said", "time"), WITH_PART.items())
def test_a_time_said_with_minutes_and_part_of_the_day_finds_its_reminder(
    said: str, time: str, english: bool, named: bool
) -> None:
    twin = _later(time) if time < "12:00" else f"{int(time[:2]) - 12:02d}:{time[3:]}"
    at = _reminders(time, twin, "11:11", named=named)
    picked = pick_task(list(at.values()), said, english)
    assert picked.task is at[time], picked


@pytest.mark.parametrize("english", [True, False], ids=["en", "zh"])
def test_an_english_hour_said_bare_with_none_at_it_offers_the_evenings(english: bool) -> None:
    at = _reminders("20:00", "08:30")
    label = "reminder daily at 20:00" if english else "提醒（每天 20点）"
    for said in ("the 8 reminder", "eight o'clock reminder", "the reminder at 8", "8 o'clock"):
        task, question, asked = pick_task(list(at.values()), said, english)
        assert (task, asked) == (None, [at["20:00"].task_id]), (said, question)
        assert question == (
            f"I found no task called “{said}”. Did you mean {label}?"
            if english
            else f"没找到叫“{said}”的任务。你是说{label}吗？"
        ), question


def test_an_hour_said_finds_no_name_holding_a_longer_number() -> None:
    server = TaskSummary(
        task_id="web-monitor/ops/server18", kind=TaskKind.WEB_MONITOR, state=TaskState.ACTIVE
    )
    evening = _reminders("20:00")["20:00"]
    for said in ("the 8 reminder", "8 o'clock", "8", "eight pm", "8 pm"):
        task, question, _ = pick_task([server, evening], said, english=True)
        assert task is not server, (said, question)
    assert pick_task([server, evening], "8 pm", english=True).task is evening
    assert pick_task([server, evening], "server18", english=True).task is server
    # A number after a name's word is the name's, before "reminder" too: no hour.
    backup = _reminders("09:00", "20:00", named=True)["09:00"].model_copy(
        update={"task_id": "reminder/ops/backup-2"}
    )
    assert pick_task([backup, evening], "the backup 2 reminder", english=True).task is backup


async def test_the_voice_pauses_the_reminder_at_the_time_said_in_either_language(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Through pause_task, as 小智 calls it: reminders made by the service at 8:00, 20:00,
    8:30 and 18:00, for a user whose language is en and one whose is zh."""
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for language, said, paused in (
            (Language.EN, "pause the 8 pm reminder", "OK, reminder daily at 20:00 is paused."),
            (Language.ZH, "8pm的提醒", "好的，提醒（每天 20点）已暂停。"),
        ):
            user = unique("vc")
            async with deps.db.session() as session:
                await UserRepository(session).create(UserCreate(name=user, language=language))
                await session.commit()
            made = {}
            for n, (hour, minute) in enumerate(((8, 0), (20, 0), (8, 30), (18, 0))):
                reminder = {"hour": hour, "minute": minute, "message": NAMES[n], "timezone": "UTC"}
                made[hour, minute] = await state.tasks.create(user, "schedule", reminder)

            async def listed(user: str = user) -> bool:
                return len(await state.tasks.list(user)) == 4

            await eventually(listed, "every reminder listed")
            async with voice_client(state, user) as voice:
                assert await say(voice, "pause_task", name=said) == paused
            for (hour, minute), ref in made.items():
                described = await dev_env.client.get_schedule_handle(ref.task_id).describe()
                evening = (hour, minute) == (20, 0)
                assert described.schedule.state.paused is evening, (hour, minute)


def _reminder(name: str, at: str, message: str = "") -> TaskSummary:
    summary = f"Reminder, daily at {at} UTC, for ops" + (f": {message}" if message else "")
    return TaskSummary(
        task_id=f"reminder/ops/{name}",
        kind=TaskKind.SCHEDULE,
        state=TaskState.ACTIVE,
        summary=summary,
    )


@pytest.mark.parametrize(
    ("said", "english"),
    [("早上7点的提醒", False), ("七点的提醒", False), ("7 am", True), ("the 7 am reminder", True)],
)
def test_a_time_in_a_reminders_message_is_not_its_time(said: str, english: bool) -> None:
    """The reminder at 21:00 saying "set alarm for 7 am" is not "the 7 am reminder": its
    message's time was read as its own, and the voice paused it."""
    tasks = [
        _reminder("00112233ab01", "21:00", "set alarm for 7 am"),
        _reminder("00112233ab02", "19:00", "dinner"),
    ]
    picked = pick_task(tasks, said, english)
    assert picked.task is None, (said, picked)


def test_names_holding_a_time_are_both_said_by_what_they_share() -> None:
    """standup-9am and standup-9pm: "standup 9" names both (asked back), as before times in
    names were read as a label's; each is still found by its own time."""
    tasks = [_reminder("standup-9am", "09:00"), _reminder("standup-9pm", "21:00")]
    asked = pick_task(tasks, "standup 9", True)
    assert asked.task is None and set(asked.named) == {t.task_id for t in tasks}, asked
    assert pick_task(tasks, "standup 9 pm", True).task == tasks[1]
    assert pick_task(tasks, "standup 9am", True).task == tasks[0]
