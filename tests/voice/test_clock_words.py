"""A reminder is found by its time said in English words or in digits ("the 8 pm reminder",
"20:00", "half past eight in the evening"), read as its label's 24-hour clock by the reader of
the Chinese ones ("晚上八点的提醒"), with the same rules: a number said finds only a whole
number of a name; a time said without its part of the day finds the one of the morning's and
the evening's there is, and with both asks which. Each of these was "I found no task called …"
(a Chinese speaker's ASR writes "8pm" too), or the morning's taken unasked."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.speech import said_time
from ambient.storage.users import UserRepository
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.listing import TaskSummary
from ambient.watches.models import TaskRef
from ambient.wiring import AppState
from mcp_server.voice_clock import clock_as_labelled
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
    # Digits a recogniser ran together, the 24-hour clock in words, and 夜里 (at night): each
    # was "I found no task called …".
    "830 pm": "20:30",
    "晚上830": "20:30",
    "夜里八点半": "20:30",
    "夜里两点": "02:00",
    "twenty thirty": "20:30",
    "the twenty one fifteen reminder": "21:15",
}
# The same said without it, and how a Chinese speaker says them: the one of the morning's and
# the evening's there is (the evening's was only offered, "eight thirty" found neither), and
# with both, a question back (the morning's was taken).
BARE = {
    "eight thirty": "08:30",
    "the eight thirty reminder": "08:30",
    "eight fifteen": "08:15",
    "eight forty-five": "08:45",
    "seven oh five": "07:05",
    "quarter past eight": "08:15",
    "quarter to nine": "08:45",
    "half past seven": "07:30",
    "the 8 reminder": "08:00",
    "the eight reminder": "08:00",
    "eight o'clock reminder": "08:00",
    "8.30": "08:30",
    "8:30": "08:30",
    "八点半": "08:30",
    "八点一刻": "08:15",
    "八点三刻的提醒": "08:45",
    "八点三十分": "08:30",
    "差一刻九点": "08:45",
    "九点差五分": "08:55",
    "八点的提醒": "08:00",
    # Digits as a recogniser writes "eight thirty": they took the 8:30 reminder unasked beside
    # the 20:30 one, and with 20:30's alone were "没找到叫“8 30”的任务" or, "830", a place
    # ("只有 1 个任务，请说第几个。").
    "830": "08:30",
    "8 30": "08:30",
    "the 830 reminder": "08:30",
    "830的提醒": "08:30",
    "8 30的提醒": "08:30",
    "the reminder at 830": "08:30",
    "0830": "08:30",
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


@pytest.mark.parametrize("named", [False, True], ids=["by-summary", "named"])
@pytest.mark.parametrize("english", [True, False], ids=["en", "zh"])
@pytest.mark.parametrize(("said", "time"), BARE.items())
def test_a_time_said_without_part_of_the_day_finds_the_one_there_is_or_asks_which(
    said: str, time: str, english: bool, named: bool
) -> None:
    evening = _later(time)
    at = _reminders(time, evening, "11:11", named=named)
    for only in (time, evening):
        tasks = [at[only], at["11:11"]]
        picked = pick_task(tasks, said, english)
        assert picked.task is at[only], (only, picked)
    task, question, asked = pick_task(list(at.values()), said, english)
    assert (task, asked) == (None, [at[time].task_id, at[evening].task_id]), question
    first, second = (_said_at(at[t], t, english) for t in (time, evening))
    assert question == (
        f"Which one: {first} or {second}?" if english else f"你说的是哪一个：{first}还是{second}？"
    )


def _said_at(task: TaskSummary, at: str, english: bool) -> str:
    """A reminder as the question back names it: by its time, a named one by name and time."""
    clock = f"{int(at[:2])}:{at[3:]}" if english else said_time(at)
    name = task.task_id.rsplit("/", 1)[-1]
    if english:
        return f"{name} daily at {clock}" if name in NAMES else f"reminder daily at {clock}"
    return f"{name}（每天 {clock}）" if name in NAMES else f"提醒（每天 {clock}）"


@pytest.mark.parametrize("english", [True, False], ids=["en", "zh"])
def test_an_english_hour_said_bare_with_only_the_evenings_finds_it(english: bool) -> None:
    """ "the 8 reminder" with a reminder at 20:00 and none at 8:00 was answered "Did you mean
    reminder daily at 20:00?": the only reminder at eight is meant, as said with "pm"."""
    at = _reminders("20:00", "08:30")
    for said in ("the 8 reminder", "eight o'clock reminder", "the reminder at 8", "8 o'clock"):
        picked = pick_task(list(at.values()), said, english)
        assert picked.task is at["20:00"], (said, picked)


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


def test_digits_run_together_are_a_time_only_where_one_is_expected() -> None:
    """ "830" alone or before "reminder" is 8:30; inside a name it is the name's number."""
    evening = _reminders("20:30")["20:30"]
    backup = TaskSummary(
        task_id="web-monitor/ops/backup-2030", kind=TaskKind.WEB_MONITOR, state=TaskState.ACTIVE
    )
    for said, meant in (("backup 2030", backup), ("2030", evening), ("830", evening)):
        assert pick_task([backup, evening], said, english=True).task is meant, said
    assert clock_as_labelled("every 1440 min") == "every 1440 min"
    assert clock_as_labelled("log-2026") == "log-2026"
    assert clock_as_labelled("twenty-four hours") == "twenty-four hours"


def test_a_number_alone_no_reminder_has_as_its_time_finds_the_task_named_by_it() -> None:
    """ "443" was read as 4:43 and answered "没找到叫“443”的任务。你的任务有：port 443…":
    digits alone that name no reminder's time are the number of the one task holding it."""

    def web(name: str) -> TaskSummary:
        return TaskSummary(
            task_id=f"web-monitor/ops/{name}", kind=TaskKind.WEB_MONITOR, state=TaskState.ACTIVE
        )

    for name, said in (("port-443", "443"), ("api-1200", "1200"), ("order-830", "830")):
        task = web(name)
        assert pick_task([task, web("price")], said, english=False).task is task, said
    # Two tasks hold it: asked, not guessed.
    assert pick_task([web("port-443"), web("edge-443")], "443", english=False).task is None
    # A time reminders have: asked which of them, not the task named by the number.
    for named in (False, True):
        both = [*_reminders("08:30", "20:30", named=named).values(), web("order-830")]
        asked = pick_task(both, "830", english=False)
        assert asked.task is None and "20点30分" in asked.question, (named, asked)


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
            user, made = await _with_reminders(
                state, deps, language, "vc", ((8, 0), (20, 0), (8, 30), (18, 0))
            )
            async with voice_client(state, user) as voice:
                assert await say(voice, "pause_task", name=said) == paused
            for (hour, minute), ref in made.items():
                described = await dev_env.client.get_schedule_handle(ref.task_id).describe()
                evening = (hour, minute) == (20, 0)
                assert described.schedule.state.paused is evening, (hour, minute)


ASKED_BY_VOICE = [
    # (language, said, the question back or None, the answer to it, what was paused)
    (
        Language.EN,
        "pause the 8 reminder",
        "Which one: reminder daily at 8:00 or reminder daily at 20:00?",
        "the second one",
        "OK, reminder daily at 20:00 is paused.",
        (20, 0),
    ),
    (
        Language.ZH,
        "八点半的提醒",
        "你说的是哪一个：提醒（每天 8点30分）还是提醒（每天 20点30分）？",
        "第一个",
        "好的，提醒（每天 8点30分）已暂停。",
        (8, 30),
    ),
    (
        Language.EN,
        "pause the eight thirty pm reminder",
        None,
        "",
        "OK, reminder daily at 20:30 is paused.",
        (20, 30),
    ),
    (Language.ZH, "晚上8.30的提醒", None, "", "好的，提醒（每天 20点30分）已暂停。", (20, 30)),
]


async def test_the_voice_asks_which_of_the_reminders_12_hours_apart_a_bare_time_means(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Through pause_task, as 小智 calls it, with reminders at 8:00, 20:00, 8:30 and 20:30:
    "the 8 reminder" paused the one at 8:00 unasked, and "the eight thirty pm reminder" found
    none. A time said bare is asked back, the place said next picks from that question."""
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for language, said, question, answer, paused, at in ASKED_BY_VOICE:
            user, made = await _with_reminders(
                state, deps, language, "vq", ((8, 0), (20, 0), (8, 30), (20, 30))
            )
            async with voice_client(state, user) as voice:
                if question is not None:
                    assert await say(voice, "pause_task", name=said) == question
                    for ref in made.values():
                        described = await dev_env.client.get_schedule_handle(ref.task_id).describe()
                        assert not described.schedule.state.paused, (said, ref.task_id)
                    said = answer
                assert await say(voice, "pause_task", name=said) == paused
            for time, ref in made.items():
                described = await dev_env.client.get_schedule_handle(ref.task_id).describe()
                assert described.schedule.state.paused is (time == at), (said, time)


def _reminder(name: str, at: str, message: str = "") -> TaskSummary:
    summary = f"Reminder, daily at {at} UTC, for ops" + (f": {message}" if message else "")
    return TaskSummary(
        task_id=f"reminder/ops/{name}",
        kind=TaskKind.SCHEDULE,
        state=TaskState.ACTIVE,
        summary=summary,
    )


@pytest.mark.parametrize(
    ("said", "english", "found"),
    [
        ("早上7点的提醒", False, None),
        ("七点的提醒", False, "19:00"),  # said bare: the only one at seven, the evening's
        ("7 am", True, None),
        ("the 7 am reminder", True, None),
    ],
)
def test_a_time_in_a_reminders_message_is_not_its_time(
    said: str, english: bool, found: str | None
) -> None:
    """The reminder at 21:00 saying "set alarm for 7 am" is not "the 7 am reminder": its
    message's time was read as its own, and the voice paused it."""
    tasks = [
        _reminder("00112233ab01", "21:00", "set alarm for 7 am"),
        _reminder("00112233ab02", "19:00", "dinner"),
    ]
    picked = pick_task(tasks, said, english)
    assert picked.task is (tasks[1] if found else None), (said, picked)


def test_names_holding_a_time_are_both_said_by_what_they_share() -> None:
    """standup-9am and standup-9pm: "standup 9" names both (asked back), as before times in
    names were read as a label's; each is still found by its own time."""
    tasks = [_reminder("standup-9am", "09:00"), _reminder("standup-9pm", "21:00")]
    asked = pick_task(tasks, "standup 9", True)
    assert asked.task is None and set(asked.named) == {t.task_id for t in tasks}, asked
    assert pick_task(tasks, "standup 9 pm", True).task == tasks[1]
    assert pick_task(tasks, "standup 9am", True).task == tasks[0]


async def _with_reminders(
    state: AppState,
    deps: WorkerDeps,
    language: Language,
    prefix: str,
    times: tuple[tuple[int, int], ...],
) -> tuple[str, dict[tuple[int, int], TaskRef]]:
    """A new user of ``language`` with a reminder (made by the service, UTC) at each of
    ``times``, all of them listed: the user and each reminder by its time."""
    user = unique(prefix)
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user, language=language))
        await session.commit()
    made = {}
    for n, (hour, minute) in enumerate(times):
        reminder = {"hour": hour, "minute": minute, "message": NAMES[n], "timezone": "UTC"}
        made[hour, minute] = await state.tasks.create(user, "schedule", reminder)

    async def listed() -> bool:
        return len(await state.tasks.list(user)) == len(times)

    await eventually(listed, "every reminder listed")
    return user, made
