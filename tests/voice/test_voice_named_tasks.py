"""A place said after an answer that asked back ("第二个") is one that answer named, whichever
API replica or process takes the next call: the list is kept in the app database."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import event, select
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.models import Event
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from mcp_server.voice_tasks import NAMED_FOR, TASKS_NAMED
from tests.conftest import running_worker, unique
from tests.support.api_replicas import api_env, api_replica
from tests.support.servers import HANG, serve
from tests.support.waits import eventually
from tests.voice.support import assert_speakable, say, voice_client, worker_state

# Three reminders, each two words of three: any two of them share a word that names both and
# no third ("oak" names oak-pine and oak-elm), so an answer can be made to ask back naming the
# first and the last of the user's list, whose second is then one it did not name.
NAMES = ("oak-pine", "oak-elm", "pine-elm")


async def _user(deps: WorkerDeps, name: str) -> str:
    """A Chinese-speaking user; their API token."""
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    return token


async def _reminders(state: AppState, user: str) -> list[str]:
    """NAMES as the user's reminders, once all are listed: their names in the list's order."""
    for name in NAMES:
        await state.tasks.create(user, "schedule", {"hour": 9, "message": name}, name=name)

    async def listed() -> list[str] | None:
        names = [t.task_id.rsplit("/", 1)[-1] for t in await state.tasks.list(user)]
        return names if len(names) == len(NAMES) else None

    return await eventually(listed, "every reminder listed")


def _shared(first: str, last: str) -> str:
    """The word two of NAMES share: said, it names both and asks which."""
    (word,) = set(first.split("-")) & set(last.split("-"))
    return word


def _said(name: str) -> str:
    return name.replace("-", " ")


async def _paused(env: WorkflowEnvironment, user: str) -> set[str]:
    """The user's reminders whose schedule is paused, read from Temporal."""
    paused = set()
    for name in NAMES:
        described = await env.client.get_schedule_handle(f"reminder/{user}/{name}").describe()
        if described.schedule.state.paused:
            paused.add(name)
    return paused


async def _call(url: str, token: str, tool: str, **args: Any) -> str:
    """One voice call to the replica at ``url`` (xiaozhi's client: streamable HTTP, a token)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(timeout=HANG, headers=headers, trust_env=False) as http,
        Client(streamable_http_client(f"{url}/mcp/voice", http_client=http)) as client,
    ):
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    text = getattr(result.content[0], "text", "")
    assert_speakable(text)
    return text


async def test_a_place_said_to_another_api_replica_or_after_a_restart_is_one_the_answer_named(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """An API process and another on one app database, as behind a load balancer: the answer
    that asked back came from one, "第二个" reached the other, which paused the second of the
    user's first four tasks, one the answer had not named. A restart lost the list too. The
    other process is this test's own voice (a second `ambient api` cost seconds of CPU to start
    and proved no more: a list in a process's memory is not in this one's either)."""
    user = unique("vn")
    token = await _user(deps, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        order = await _reminders(state, user)
        first, other, last = order  # the answer names first and last; "第二个" is last
        env = api_env(deps.settings.resolved_database_url, dev_env, worker.task_queue, tmp_path)
        async with api_replica(env, tmp_path / "api-1.log") as one:
            asked = await _call(one, token, "pause_task", name=_shared(first, last))
            assert asked == f"有 2 个任务符合：{_said(first)}、{_said(last)}。请说完整的名字。"
            async with voice_client(state, user) as two:
                paused = await say(two, "pause_task", name="第二个")
            assert paused == f"好的，{_said(last)}已暂停。", paused
        assert await _paused(dev_env, user) == {last}
        # The process that wrote the list stopped, the list is only where a restarted one
        # would look: a voice of this process's own, new, still finds it.
        async with voice_client(state, user) as again:
            status = await say(again, "task_status", name="第二个")
        assert status == f"{_said(last)}已暂停，还没有执行过。", (status, other)


async def test_a_place_said_after_another_answer_is_not_one_of_a_list_heard_before(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """ "有 2 个任务符合：A、C", then "有什么要我处理" (naming no list of tasks), then
    "暂停第二个": C was paused, from the list heard before the answer the user heard last."""
    user = unique("vw")
    await _user(deps, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        first, _, last = await _reminders(state, user)
        async with voice_client(state, user) as voice:
            asked = await say(voice, "task_status", name=_shared(first, last))
            assert asked.startswith("有 2 个任务符合："), asked
            async with deps.db.session() as session:  # a watch failing, named by both answers
                watch = f"web-monitor/{user}/shop"
                await EventRepository(session).add(
                    "watch.failing", user=user, task=watch, payload={"url": "https://shop.test/"}
                )
                await session.commit()
            needs = await say(voice, "what_needs_me")
            assert "shop" in needs, needs
            again = await say(voice, "pause_task", name="第二个")
            assert again.startswith("你说的是哪一个任务？你的任务有："), again
            assert "shop" in await say(voice, "recent_errors")
            assert (await say(voice, "pause_task", name="第二个")).startswith("你说的是哪一个")
    assert await _paused(dev_env, user) == set()


async def test_a_list_named_more_than_named_for_ago_or_to_another_user_is_not_used(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Past NAMED_FOR, or for someone else, a list is not the user's to count in: a place
    alone is asked about, naming the tasks (it picked one of the user's first four, a task
    the user never heard named). The list costs one write an answer that asks back, and one
    read a call that says a place alone; a call naming a task reads nothing of it."""
    ann, bo = unique("ann"), unique("bo")
    for name in (ann, bo):
        await _user(deps, name)
    statements: list[str] = []

    def noted(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if TASKS_NAMED in str(parameters):  # a read or a write of the list
            statements.append(statement.split(None, 1)[0])

    event.listen(deps.db.engine.sync_engine, "before_cursor_execute", noted)
    try:
        async with running_worker(dev_env.client, deps) as worker:
            state = worker_state(dev_env.client, deps, worker.task_queue)
            order = await _reminders(state, ann)
            theirs = await _reminders(state, bo)
            first, other, last = order
            async with voice_client(state, ann) as voice, voice_client(state, bo) as bo_voice:
                asked = await say(voice, "task_status", name=_shared(first, last))
                assert asked == f"有 2 个任务符合：{_said(first)}、{_said(last)}。请说完整的名字。"
                assert statements == ["INSERT"]
                status = await say(voice, "task_status", name="第二个")
                assert status == f"{_said(last)}正在运行，还没有执行过。", status
                assert statements == ["INSERT", "SELECT"]
                named = await say(voice, "task_status", name=other)
                assert named.startswith(f"{_said(other)}正在运行"), named
                assert statements == ["INSERT", "SELECT"]

                # bo heard no list: asked which, his own tasks named (then counted in).
                asked = await say(bo_voice, "task_status", name="第二个")
                said = "、".join(map(_said, theirs))
                assert asked == f"你说的是哪一个任务？你的任务有：{said}。", asked
                status = await say(bo_voice, "task_status", name="第二个")
                assert status == f"{_said(theirs[1])}正在运行，还没有执行过。", status

                # The answer given NAMED_FOR and a second ago.
                async with deps.db.session() as session:
                    rows = await session.scalars(
                        select(Event).where(Event.user == ann, Event.kind == TASKS_NAMED)
                    )
                    for row in rows:
                        row.created_at -= NAMED_FOR + timedelta(seconds=1)
                    await session.commit()
                asked = await say(voice, "task_status", name="第二个")
                assert asked == f"你说的是哪一个任务？你的任务有：{'、'.join(map(_said, order))}。"
    finally:
        event.remove(deps.db.engine.sync_engine, "before_cursor_execute", noted)


async def test_a_place_said_alone_is_the_task_its_numbered_label_names(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Two reminders at 8:30 are "第一个提醒" and "第二个提醒" by creation, but the answer
    listed them as the user's tasks are listed, newest first ("第二个提醒…、第一个提醒…"):
    "第二个" said next paused the first reminder, as "the second one" did. A list said keeps
    tasks said alike together, in their numbered order, ahead of the others."""
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for language in (Language.ZH, Language.EN):
            english = language is Language.EN
            user = unique("va")
            async with deps.db.session() as session:
                await UserRepository(session).create(UserCreate(name=user, language=language))
                await session.commit()
            for message in ("standup", "stretch"):  # the first made, then the second
                reminder = {"hour": 8, "minute": 30, "message": message, "timezone": "UTC"}
                await state.tasks.create(user, "schedule", reminder)
            await state.tasks.create(user, "schedule", {"hour": 9, "message": "x"}, name="backup")

            async def listed(user: str = user) -> list[str] | None:
                tasks = list(await state.tasks.list(user))
                return [t.task_id for t in tasks] if len(tasks) == 3 else None

            order = await eventually(listed, "every reminder listed")
            tasks = {t.task_id: t for t in await state.tasks.list(user)}
            made = sorted(order, key=lambda i: tasks[i].started_at or datetime.min)
            assert order == made[::-1], "the tasks are listed newest first"
            first, second = made[:2]
            label = "reminder daily at 8:30" if english else "提醒（每天 8点30分）"
            one, two = (
                (f"the first {label}", f"the second {label}")
                if english
                else (f"第一个{label}", f"第二个{label}")
            )
            async with voice_client(state, user) as voice:
                asked = await say(voice, "pause_task", name="reminder" if english else "提醒")
                assert asked == (
                    f"3 tasks fit: {one}; {two}; backup. Please say the full name."
                    if english
                    else f"有 3 个任务符合：{one}、{two}、backup。请说完整的名字。"
                ), asked
                paused = await say(voice, "pause_task", name="second" if english else "第二个")
                assert paused == (f"OK, {two} is paused." if english else f"好的，{two}已暂停。")
                # Asked which with nothing named: the same order, and a place the same task.
                asked = await say(voice, "task_status", name="it" if english else "它")
                assert (f"{one}; {two}; backup" if english else f"{one}、{two}、backup") in asked
                status = await say(voice, "task_status", name="第一个")
                assert status.startswith(one), status
            schedules = dev_env.client.get_schedule_handle
            assert (await schedules(second).describe()).schedule.state.paused
            assert not (await schedules(first).describe()).schedule.state.paused


async def test_a_reminder_is_found_by_what_it_reminds_of(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """ "暂停站会的提醒" found nothing: a reminder was known by its time only ("提醒（每天
    9点30分）"), however its message read. Its summary says the message's start now, and the
    voice finds it by that, in either language."""
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for language, said, standup, other in (
            (Language.ZH, "站会的提醒", "站会开始了，带上电脑", "喝水"),
            (Language.EN, "the standup reminder", "Standup", "drink water"),
        ):
            user = unique("vr")
            async with deps.db.session() as session:
                await UserRepository(session).create(UserCreate(name=user, language=language))
                await session.commit()
            refs = {}
            for message in (
                "站会开始了，带上电脑" if language is Language.ZH else "Standup",
                other,
            ):
                reminder = {"hour": 9, "minute": 30, "message": message, "timezone": "UTC"}
                refs[message] = await state.tasks.create(user, "schedule", reminder)

            async def listed(user: str = user) -> bool:
                return len(await state.tasks.list(user)) == 2

            await eventually(listed, "both reminders listed")
            async with voice_client(state, user) as voice:
                answer = await say(voice, "pause_task", name=said)
            assert answer.startswith(("好的", "OK")), answer
            standup, water = refs.values()
            schedules = dev_env.client.get_schedule_handle
            assert (await schedules(standup.task_id).describe()).schedule.state.paused
            assert not (await schedules(water.task_id).describe()).schedule.state.paused


async def test_a_kind_said_alone_finds_the_one_task_of_it_said_so_among_named_ones(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """what_needs_me said a failing unnamed watch among named ones by its kind ("shop home、
    网页监控、billing"), and "网页监控" said back was asked about ("有 3 个任务符合…"): the
    name the user heard found nothing (a review). Said alone, a watch's kind is its one
    unnamed watch. Nothing says a reminder so: "提醒" paused the unnamed one of three
    without asking, where the user meant standup's as much; it asks which."""
    from tests.watches.site import Site, article

    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site()
    site.pages["/a"] = article("A page.")
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        user = unique("vk")
        async with deps.db.session() as session:
            await UserRepository(session).create(UserCreate(name=user, language=Language.ZH))
            await session.commit()
        for hour, name in ((8, "standup"), (9, "water"), (10, None)):
            reminder = {"hour": hour, "message": f"m{hour}", "timezone": "UTC"}
            await state.tasks.create(user, "schedule", reminder, name)
        for name in ("shop", "docs", None):
            await state.tasks.create(user, "web_monitor", {"urls": [f"{base}/a"]}, name)

        async def listed() -> bool:
            return len(await state.tasks.list(user)) == 6

        await eventually(listed, "three reminders and three web monitors listed")
        async with voice_client(state, user) as voice:
            watch = await say(voice, "task_status", name="网页监控")
            reminder = await say(voice, "task_status", name="提醒")
    assert "符合" not in watch and watch.startswith("网页监控"), watch
    assert "符合" in reminder, reminder


async def test_a_place_sent_as_a_number_after_a_question_pauses_the_task_it_asked_about(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Asked which of the reminders at 8:30 and 20:30, the user said "第二个" and a small model
    called pause_task(name=2): "好的，backup 2已暂停。", a task the question never named. The
    question's list is read first, so the place answers it; a name said in full is the name's."""
    user = unique("vq")
    await _user(deps, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        stretch = await state.tasks.create(
            user, "schedule", {"hour": 8, "minute": 30, "message": "stretch"}
        )
        water = await state.tasks.create(
            user, "schedule", {"hour": 20, "minute": 30, "message": "water"}
        )
        await state.tasks.create(user, "schedule", {"hour": 9, "message": "b"}, name="backup-2")

        async def listed() -> bool:
            return len(await state.tasks.list(user)) == 3

        await eventually(listed, "every reminder listed")
        async with voice_client(state, user) as voice:
            asked = await say(voice, "pause_task", name="the eight thirty reminder")
            assert asked == "你说的是哪一个：提醒（每天 8点30分）还是提醒（每天 20点30分）？"
            paused = await say(voice, "pause_task", name=2)
            assert paused == "好的，提醒（每天 20点30分）已暂停。", paused
            status = await say(voice, "task_status", name="backup 2")
            assert status.startswith("backup 2正在运行"), status
    schedules = dev_env.client.get_schedule_handle
    assert (await schedules(water.task_id).describe()).schedule.state.paused
    assert not (await schedules(stretch.task_id).describe()).schedule.state.paused
    described = await schedules(f"reminder/{user}/backup-2").describe()
    assert not described.schedule.state.paused


async def test_the_verb_a_model_copied_into_the_name_is_left_out(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """resume_task(name="恢复第二个"), as a small model copies the whole utterance, was
    "没找到叫“恢复第二个”的任务…": the tool's own verb is left out, and the place is one in
    the list the question named. Said to the other tool, it is no reference."""
    user = unique("vv")
    await _user(deps, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        first, _, last = await _reminders(state, user)
        async with voice_client(state, user) as voice:
            asked = await say(voice, "pause_task", name=_shared(first, last))
            assert asked == f"有 2 个任务符合：{_said(first)}、{_said(last)}。请说完整的名字。"
            paused = await say(voice, "pause_task", name="暂停第二个")
            assert paused == f"好的，{_said(last)}已暂停。", paused
            resumed = await say(voice, "resume_task", name="恢复第二个")
            assert resumed == f"好的，{_said(last)}已恢复运行。", resumed
            paused = await say(voice, "pause_task", name=f"pause the {_said(first)}")
            assert paused == f"好的，{_said(first)}已暂停。", paused
            wrong = await say(voice, "pause_task", name="恢复第二个")
            assert wrong == "我听到的是恢复，不是暂停，所以没有改动。", wrong
    assert await _paused(dev_env, user) == {first}


async def test_a_place_after_the_other_tools_verb_changes_nothing_and_says_what_was_heard(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The voice asked which of two tasks and the user said "恢复2" (resume 2); the model sent
    it to pause_task, which paused the list's second task: a place after any tool's verb was
    read as a place. A name after it too: "pause oak elm" sent to resume_task resumed oak elm
    (the verb left out as a word that only says what it is). The other tool's verb changes
    nothing and is said back; the list stays asked, and the tool's own verb acts on it."""
    user = unique("vo")
    await _user(deps, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        first, _, last = await _reminders(state, user)
        async with voice_client(state, user) as voice:
            asked = await say(voice, "pause_task", name=_shared(first, last))
            assert asked == f"有 2 个任务符合：{_said(first)}、{_said(last)}。请说完整的名字。"
            heard = [
                await say(voice, "pause_task", name=said)
                for said in ("恢复2", "继续第二个", "resume the second", "resume 2")
            ]
            assert await _paused(dev_env, user) == set(), heard
            paused = await say(voice, "pause_task", name="暂停2")  # the list still asked
            assert paused == f"好的，{_said(last)}已暂停。", paused
            by_place = await say(voice, "resume_task", name="暂停2")
            by_name = await say(voice, "resume_task", name=f"pause {_said(last)}")
            assert await _paused(dev_env, user) == {last}, (by_place, by_name)
    assert heard == ["我听到的是恢复，不是暂停，所以没有改动。"] * 4, heard
    assert by_place == by_name == "我听到的是暂停，不是恢复，所以没有改动。", (by_place, by_name)
