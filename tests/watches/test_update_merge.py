"""update_task (and the API's PATCH) merge the fields sent over the config in force, as a JSON
Merge Patch: "move my stand-up to 7" sent {"hour": 7} and the weekly Mon/Wed 09:30 Berlin reminder
became a daily 08:00 Shanghai one once a message was added; a web monitor's update dropped its
keywords and targets; a briefing's dropped its news pages."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.watches.inputs import ConfigError, TaskError
from ambient.watches.models import TaskStatus
from ambient.watches.service import MERGE_TRIES, TaskService
from ambient.wiring import AppState
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.api_worker import api_over_worker
from tests.support.record import save_history
from tests.watches.old_release_monitor import OldReleaseWebMonitor
from tests.watches.test_tasks_mcp import app, call, error_of, mcp  # noqa: F401  (fixture)
from worker import build_activities
from workflows.message_arguments import MessageArguments

WEEKLY = {
    "type": "weekly",
    "days": ["mon", "wed"],
    "hour": 9,
    "minute": 30,
    "timezone": "Europe/Berlin",
    "message": "stand-up in room 4",
}


async def test_a_reminder_updated_in_part_keeps_the_rest_and_says_what_changed(
    app: AppState,  # noqa: F811
) -> None:
    async with mcp(app) as client:
        task_id = (await call(client, "create_reminder", config=WEEKLY, name="standup"))["task_id"]
        moved = await call(client, "update_task", task_id=task_id, config={"hour": 7})
        assert moved["config"] == {**moved["config"], **WEEKLY, "hour": 7}
        assert moved["changed"] == ["hour"]
        # null resets a field to its default.
        reset = await call(client, "update_task", task_id=task_id, config={"minute": None})
        assert reset["config"] == {**reset["config"], **WEEKLY, "hour": 7, "minute": 0}
        assert reset["changed"] == ["minute"]
        # A merged config that is invalid is refused by its field, and nothing changes.
        said = await error_of(client, "update_task", task_id=task_id, config={"days": []})
        assert "days" in said and "at least one day" in said, said
        kept = await call(client, "get_task", task_id=task_id)
        assert kept["config"] == reset["config"] and kept["changed"] is None
        # Another type keeps what the two share (its message, zone, targets: they were lost,
        # the config taken as a new one) and drops what the new type refuses (a weekly's days).
        replaced = await call(
            client, "update_task", task_id=task_id, config={"type": "daily", "hour": 6}
        )
        daily = {**WEEKLY, "type": "daily", "hour": 6, "minute": 0, "days": []}
        assert replaced["config"] == {**replaced["config"], **daily}, replaced["config"]
        assert set(replaced["changed"]) == {"type", "days", "hour"}
        await call(client, "delete_task", task_id=task_id)


async def test_a_web_monitor_updated_in_part_keeps_its_keywords_and_targets(
    app: AppState,  # noqa: F811
) -> None:
    config = {
        "urls": ["https://example.com/a"],
        "keywords": ["AI", "re:GPT-\\d"],
        "check_interval_minutes": 60,
        "targets": [{"type": "email", "target": "ops@example.com"}],
    }
    async with mcp(app) as client:
        made = await call(client, "create_web_monitor", config=config, name="merge")
        task_id = made["task_id"]
        sent = {"urls": ["https://example.com/b"], "check_interval_minutes": 30}
        updated = await call(client, "update_task", task_id=task_id, config=sent)
        got = (await call(client, "get_task", task_id=task_id))["config"]
        for told in (updated["config"], got):
            assert told["keywords"] == config["keywords"], told
            assert told["targets"] == [{**config["targets"][0], "kinds": None}], told
            assert (told["urls"], told["check_interval_minutes"]) == (sent["urls"], 30)
        assert set(updated["changed"]) == {"urls", "check_interval_minutes"}
        # A list sent replaces the list whole.
        fewer = await call(client, "update_task", task_id=task_id, config={"keywords": ["AI"]})
        assert fewer["config"]["keywords"] == ["AI"] and fewer["changed"] == ["keywords"]
        # A map of the user's own keys is a value: sent, it replaces the stored map whole (its
        # keys were merged, so {} cleared nothing and a metric's old dimensions stayed).
        keyed = {"selectors": {"https://example.com/b": "#main"}}
        await call(client, "update_task", task_id=task_id, config=keyed)
        # A key sent null is left out (it was refused as a selector that is no string).
        nulled = {"selectors": {"https://example.com/b": None}}
        unset = await call(client, "update_task", task_id=task_id, config=nulled)
        assert unset["config"]["selectors"] == {} and unset["changed"] == ["selectors"], unset
        await call(client, "update_task", task_id=task_id, config=keyed)
        cleared = await call(client, "update_task", task_id=task_id, config={"selectors": {}})
        assert cleared["config"]["selectors"] == {}, cleared["config"]
        await call(client, "delete_task", task_id=task_id)


async def test_a_briefing_updated_in_part_keeps_its_news_pages(
    app: AppState,  # noqa: F811
) -> None:
    async with mcp(app) as client:
        task_id = (await call(client, "create_daily_briefing", timezone="Asia/Shanghai"))["task_id"]
        news = {"news_urls": ["https://techcrunch.com/"], "categories": ["ai"]}
        await call(client, "update_task", task_id=task_id, config=news)
        later = await call(client, "update_task", task_id=task_id, config={"prepare_at": "04:00"})
        assert later["config"] == {**later["config"], **news, "prepare_at": "04:00"}
        assert later["changed"] == ["prepare_at"]
        await call(client, "delete_task", task_id=task_id)


async def test_a_threshold_sent_alone_replaces_the_condition_it_stood_for(
    app: AppState,  # noqa: F811
) -> None:
    config = {"source": {"type": "http_json", "url": "https://example.com/v", "json_path": "$.v"}}
    async with mcp(app) as client:
        made = await call(
            client, "create_threshold_watch", config={**config, "threshold": 50}, name="t"
        )
        updated = await call(
            client, "update_task", task_id=made["task_id"], config={"threshold": 60}
        )
        assert updated["config"]["conditions"] == [{"op": "above", "value": 60}]
        assert updated["config"]["source"]["url"] == "https://example.com/v"
        await call(client, "delete_task", task_id=made["task_id"])


async def test_the_api_patch_merges_and_its_put_replaces(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    async with api_over_worker(dev_env, deps) as (settings, http):
        admin = await admin_headers(settings)
        registered = await http.post("/users", json={"name": "api-merge"}, headers=admin)
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        body = {"type": "schedule", "name": "standup", "config": WEEKLY}
        task_id = (await http.post("/tasks", json=body)).json()["task_id"]
        patched = await http.patch(f"/tasks/{task_id}/config", json={"hour": 7})
        assert patched.status_code == 200, patched.text
        assert patched.json()["config"] == {**patched.json()["config"], **WEEKLY, "hour": 7}
        assert patched.json()["changed"] == ["hour"]
        refused = await http.patch(f"/tasks/{task_id}/config", json={"days": []})
        assert refused.status_code == 422, refused.text
        assert "days: give at least one day" in refused.json()["detail"][0]["msg"]
        # PUT is the whole config: what it leaves out takes its default.
        put = await http.put(f"/tasks/{task_id}/config", json={"hour": 7, "message": "m"})
        assert put.status_code == 200, put.text
        assert (put.json()["config"]["type"], put.json()["config"]["days"]) == ("daily", [])
        status = (await http.get(f"/tasks/{task_id}/status")).json()
        assert status["config"] == put.json()["config"]
        await http.delete(f"/tasks/{task_id}")


async def test_a_kind_change_drops_only_the_fields_the_new_kind_has_no_use_for(
    app: AppState,  # noqa: F811
) -> None:
    """A change of a reminder's type or action drops the stored fields the new kind has no use
    for (a weekly's days, a digest's pages); a stored field the new kind keeps is kept and said
    by name when it is refused now (the first version dropped every stored field with any
    refusal, so a daily made weekly lost its targets, one of them refused since it was set)."""
    user = app.stdio_user or ""
    loopback = app.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    allowed = dataclasses.replace(app, settings=loopback)
    good = {"type": "webhook", "target": "https://example.com/hook"}
    local = {"type": "webhook", "target": "http://127.0.0.1:9/hook"}
    daily = {"message": "stand-up", "hour": 9, "targets": [good, local]}
    made = await allowed.tasks.create(user, "schedule", daily, name="standup-kind")
    weekly = {"type": "weekly", "days": ["mon"]}
    with pytest.raises(ConfigError) as refused:
        await app.tasks.update(user, made.task_id, weekly)
    assert [at[:3] for at, _ in refused.value.errors] == [("config", "targets", 1)]
    kept = await app.tasks.get(user, made.task_id)
    assert (kept.config["type"], len(kept.config["targets"])) == ("daily", 2)
    # Allowed again, the same change keeps both targets and the message.
    moved = await allowed.tasks.update(user, made.task_id, weekly)
    assert (moved.config["type"], moved.config["days"]) == ("weekly", ["mon"])
    assert (moved.config["message"], len(moved.config["targets"])) == ("stand-up", 2)
    # cron: the weekly's hour, minute and days go (shown: the cron's own time); a news
    # digest: the message goes.
    cron = await allowed.tasks.update(user, made.task_id, {"cron": "0 7 * * 1-5"})
    assert (cron.config["type"], cron.config["days"], cron.config["hour"]) == ("cron", [], 7)
    # A cron made weekly keeps its time of day (it became 08:00, the unused default).
    weekly_again = await allowed.tasks.update(user, made.task_id, {"days": ["tue"]})
    said = weekly_again.config
    assert (said["type"], said["days"], said["hour"], said["minute"]) == ("weekly", ["tue"], 7, 0)
    assert weekly_again.changed == ["type", "days", "cron"], weekly_again
    await allowed.tasks.update(user, made.task_id, {"cron": "0 7 * * 1-5"})
    # A minute sent with the change: the cron's hour stays (it became 08:15).
    quarter = await allowed.tasks.update(user, made.task_id, {"days": ["wed"], "minute": 15})
    assert (quarter.config["hour"], quarter.config["minute"]) == (7, 15), quarter.config
    await allowed.tasks.update(user, made.task_id, {"cron": "0 7 * * 1-5"})
    digest = await allowed.tasks.update(
        user, made.task_id, {"action": "news_digest", "news_urls": ["https://example.com/n"]}
    )
    assert (digest.config["action"], digest.config["message"]) == ("news_digest", "")
    assert digest.config["cron"] == "0 7 * * 1-5" and len(digest.config["targets"]) == 2
    back = await allowed.tasks.update(user, made.task_id, {"action": "reminder", "message": "m"})
    assert (back.config["news_urls"], back.config["message"]) == ([], "m")
    await app.tasks.delete(user, made.task_id)


async def test_a_cron_reminder_shows_the_time_it_runs_at_and_an_update_names_what_changed(
    app: AppState,  # noqa: F811
) -> None:
    """get_task of a cron reminder showed `"hour": 8, "minute": 0` (the unused defaults) for
    "0 7 * * 1-5", which a client read as 8:00, and a daily 07:00 reminder given a cron was
    said to have changed its hour to 8 (a tester's probe). Its hour and minute are the cron's
    own time of day, left out when it has none; `changed` names only what changed; the
    config shown, sent back whole, is taken."""
    async with mcp(app) as client:
        weekdays = {"cron": "0 7 * * 1-5", "message": "stand-up", "timezone": "UTC"}
        task_id = (await call(client, "create_reminder", config=weekdays, name="at-7"))["task_id"]
        shown = (await call(client, "get_task", task_id=task_id))["config"]
        assert (shown["type"], shown["hour"], shown["minute"]) == ("cron", 7, 0), shown
        often = {"cron": "*/30 9-17 * * 1-5", "message": "stretch", "timezone": "UTC"}
        often_id = (await call(client, "create_reminder", config=often, name="often"))["task_id"]
        shown = (await call(client, "get_task", task_id=often_id))["config"]
        assert "hour" not in shown and "minute" not in shown, shown
        daily = {"hour": 7, "message": "tea", "timezone": "UTC"}
        daily_id = (await call(client, "create_reminder", config=daily, name="tea"))["task_id"]
        moved = await call(client, "update_task", task_id=daily_id, config={"cron": "15 10 * * *"})
        assert (moved["config"]["hour"], moved["config"]["minute"]) == (10, 15), moved
        assert moved["changed"] == ["type", "hour", "minute", "cron"], moved
        same = await call(client, "update_task", task_id=task_id, config={"cron": "0 7 * * *"})
        assert same["changed"] == ["cron"], same
        daily_again = await call(client, "update_task", task_id=daily_id, config={"type": "daily"})
        assert daily_again["changed"] == ["type", "cron"], daily_again
        assert (daily_again["config"]["hour"], daily_again["config"]["minute"]) == (10, 15)
        # Another time of day than the cron's own is still refused by name.
        said = await error_of(client, "update_task", task_id=task_id, config={"hour": 9})
        assert "hour: a cron schedule takes its times from `cron`" in said, said
    # The config read, then written whole with one field changed (a GET then PUT).
    whole = {**(await app.tasks.get(app.stdio_user or "", task_id)).config, "message": "m"}
    put = await app.tasks.update(app.stdio_user or "", task_id, whole, replace=True)
    assert (put.config["hour"], put.config["minute"], put.config["message"]) == (7, 0, "m")
    for made in (task_id, often_id, daily_id):
        await app.tasks.delete(app.stdio_user or "", made)


async def test_a_digest_made_weekly_with_a_page_refused_since_says_the_page(
    app: AppState,  # noqa: F811
) -> None:
    """A digest whose stored page is refused now, made weekly: the page is said by name, not
    "a news digest needs at least one URL" (its pages were dropped as the new kind's refusal)."""
    user = app.stdio_user or ""
    loopback = app.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    allowed = dataclasses.replace(app, settings=loopback)
    digest = {"news_urls": ["http://127.0.0.1:9/news"], "hour": 7}
    made = await allowed.tasks.create(user, "news_digest", digest, name="digest-kind")
    with pytest.raises(ConfigError) as refused:
        await app.tasks.update(user, made.task_id, {"type": "weekly", "days": ["mon"]})
    assert [at[:2] for at, _ in refused.value.errors] == [("config", "news_urls")], refused.value
    assert "127.0.0.1" in str(refused.value), refused.value
    await app.tasks.delete(user, made.task_id)


class HeldAfterItsRead(TaskService):
    """A service whose first read of a task (an update's, of the config it merges over) waits
    until ``go`` is set: another update lands in between, as one sent at the same moment."""

    def __init__(self, state: AppState) -> None:
        super().__init__(state.temporal, state.settings, state.db, briefings=state.briefings)
        self.read, self.go, self.reads = asyncio.Event(), asyncio.Event(), 0

    async def get(self, user: str, task_id: str, *, operator: bool | None = None) -> TaskStatus:
        status = await super().get(user, task_id, operator=operator)
        self.reads += 1
        if self.reads == 1:
            self.read.set()
            await self.go.wait()
        return status


async def raced(
    state: AppState, task_id: str, first: dict[str, Any], second: dict[str, Any]
) -> tuple[TaskStatus, TaskStatus]:
    """``first`` read, then ``second`` sent and applied, then ``first`` written: both answers."""
    user = state.stdio_user or ""
    held = HeldAfterItsRead(state)
    late = asyncio.create_task(held.update(user, task_id, first))
    await held.read.wait()
    try:
        early = await state.tasks.update(user, task_id, second)
    finally:
        held.go.set()
    return await late, early


async def test_two_updates_of_a_reminder_at_once_both_apply(app: AppState) -> None:  # noqa: F811
    """An agent moves the stand-up to 7 while the web page changes its message: both read
    09:30 and the old message, and the later write put the old message back."""
    user = app.stdio_user or ""
    made = await app.tasks.create(user, "schedule", WEEKLY, name=unique("race"))
    late, early = await raced(app, made.task_id, {"hour": 7}, {"message": "stand-up"})
    assert early.changed == ["message"]
    kept = await app.tasks.get(user, made.task_id)
    for told in (late.config, kept.config):
        assert told == {**told, **WEEKLY, "hour": 7, "message": "stand-up"}, told
    # Said against the config it merged over at last (the other's message in it).
    assert late.changed == ["hour"] and late.note is None
    await app.tasks.delete(user, made.task_id)


async def test_two_updates_of_a_web_monitor_at_once_both_apply(app: AppState) -> None:  # noqa: F811
    user = app.stdio_user or ""
    config = {"urls": ["https://example.com/a"], "keywords": ["AI"], "check_interval_minutes": 60}
    made = await app.tasks.create(user, "web_monitor", config, name=unique("race"))
    late, early = await raced(
        app, made.task_id, {"keywords": ["GPT"]}, {"check_interval_minutes": 30}
    )
    assert early.changed == ["check_interval_minutes"]
    kept = await app.tasks.get(user, made.task_id)
    for told in (late.config, kept.config):
        assert (told["keywords"], told["check_interval_minutes"]) == (["GPT"], 30), told
    assert late.changed == ["keywords"] and late.note is None
    await app.tasks.delete(user, made.task_id)
    handle = app.temporal.get_workflow_handle(made.task_id)
    await handle.result()
    # Its updates carry the config they were merged over (a second argument).
    await save_history(handle, "web_monitor_update_merged_over_another")


async def test_two_updates_of_a_briefing_at_once_both_apply(app: AppState) -> None:  # noqa: F811
    user = app.stdio_user or ""
    made = await app.tasks.create(user, "daily_briefing", {"timezone": "Asia/Shanghai"})
    news = {"news_urls": ["https://techcrunch.com/"]}
    late, early = await raced(app, made.task_id, {"prepare_at": "04:00"}, news)
    assert early.changed == ["news_urls"]
    kept = await app.tasks.get(user, made.task_id)
    for told in (late.config, kept.config):
        assert (told["prepare_at"], told["news_urls"]) == ("04:00", news["news_urls"]), told
    assert late.changed == ["prepare_at"]
    await app.tasks.delete(user, made.task_id)


async def test_two_updates_of_a_briefing_sent_at_the_same_moment_both_apply(
    app: AppState,  # noqa: F811
) -> None:
    """Both read the same config and go on together: each handed over the same run, and the
    later start terminated the earlier one's new run, its field lost while both were told it
    applied."""
    user = app.stdio_user or ""
    made = await app.tasks.create(user, "daily_briefing", {"timezone": "Asia/Shanghai"})
    news = ["https://techcrunch.com/"]
    first, second = HeldAfterItsRead(app), HeldAfterItsRead(app)
    second.go = first.go  # both let go at once
    sent = [
        asyncio.create_task(first.update(user, made.task_id, {"prepare_at": "04:00"})),
        asyncio.create_task(second.update(user, made.task_id, {"news_urls": news})),
    ]
    await first.read.wait()
    await second.read.wait()
    first.go.set()
    moved, added = await asyncio.gather(*sent)
    # The one done first may be told of the other's run, by then in force (its note says so).
    assert "prepare_at" in (moved.changed or []) and "news_urls" in (added.changed or [])
    kept = await app.tasks.get(user, made.task_id)
    assert (kept.config["prepare_at"], kept.config["news_urls"]) == ("04:00", news)
    await app.tasks.delete(user, made.task_id)


async def test_a_briefing_update_overtaken_between_its_reads_merges_again_not_held(
    app: AppState,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another update's run started between this update's status read and its read of the
    run id: it handed over that newer run in place of the one it read, held it, and its retry
    was refused by its own hold ("being changed by another request" after 3 s, nothing else
    changing it)."""
    from ambient.briefing import records

    user = app.stdio_user or ""
    made = await app.tasks.create(user, "daily_briefing", {"timezone": "Asia/Shanghai"})
    news = ["https://techcrunch.com/"]
    described, landed = records.described, asyncio.Event()

    async def another_lands_first(client: Any, task_id: str) -> Any:
        if not landed.is_set():
            landed.set()
            await app.tasks.update(user, made.task_id, {"news_urls": news})
        return await described(client, task_id)

    monkeypatch.setattr(records, "described", another_lands_first)
    moved = await app.tasks.update(user, made.task_id, {"prepare_at": "04:00"})
    assert "prepare_at" in (moved.changed or []), moved
    kept = await app.tasks.get(user, made.task_id)
    assert (kept.config["prepare_at"], kept.config["news_urls"]) == ("04:00", news)
    await app.tasks.delete(user, made.task_id)


class OvertakenAtEachRead(TaskService):
    """A service after each of whose reads another update lands (another door, every time)."""

    def __init__(self, state: AppState) -> None:
        super().__init__(state.temporal, state.settings, state.db, briefings=state.briefings)
        self.other, self.reads = state.tasks, 0

    async def get(self, user: str, task_id: str, *, operator: bool | None = None) -> TaskStatus:
        status = await super().get(user, task_id, operator=operator)
        self.reads += 1
        await self.other.update(user, task_id, {"message": f"moved {self.reads}"})
        return status


async def test_an_update_overtaken_at_every_try_says_to_send_it_again(
    app: AppState,  # noqa: F811
) -> None:
    user = app.stdio_user or ""
    made = await app.tasks.create(user, "schedule", WEEKLY, name=unique("overtaken"))
    busy = OvertakenAtEachRead(app)
    with pytest.raises(TaskError) as gave_up:
        await busy.update(user, made.task_id, {"hour": 7})
    assert "changed by other updates during each of 5 tries" in str(gave_up.value)
    assert "send it again" in str(gave_up.value) and busy.reads == MERGE_TRIES
    kept = await app.tasks.get(user, made.task_id)
    assert (kept.config["hour"], kept.config["message"]) == (9, f"moved {MERGE_TRIES}")
    await app.tasks.delete(user, made.task_id)


async def test_a_web_monitor_on_a_worker_of_the_release_before_still_takes_an_update(
    app: AppState,  # noqa: F811
    deps: WorkerDeps,
) -> None:
    """A worker not yet upgraded (its update_config takes the config alone) refused every merged
    update as sent with two arguments: it takes the config alone, as before (no compare)."""
    user = app.stdio_user or ""
    queue = unique("old-release")
    async with Worker(
        app.temporal,
        task_queue=queue,
        workflows=[OldReleaseWebMonitor],
        activities=build_activities(deps),
        workflow_runner=temporal.workflow_runner(),
        interceptors=[MessageArguments()],
    ):
        old = dataclasses.replace(
            app, settings=app.settings.model_copy(update={"temporal_task_queue": queue})
        )
        config = {"urls": ["https://example.com/a"], "keywords": ["AI"]}
        made = await old.tasks.create(user, "web_monitor", config, name=unique("old"))
        updated = await old.tasks.update(user, made.task_id, {"keywords": ["GPT"]})
        assert (updated.config["keywords"], updated.changed) == (["GPT"], ["keywords"])
        await old.tasks.delete(user, made.task_id)
        await old.temporal.get_workflow_handle(made.task_id).result()
