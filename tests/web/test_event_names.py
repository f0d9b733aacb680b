"""The events on the dashboard are named in the page's language, not by their kinds' ids
(``watch.failing``), in the list and as they arrive live."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ambient.domain.users import Language, UserCreate
from ambient.history import EVENT_KINDS
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Event
from ambient.storage.users import UserRepository
from ambient.watches.reminders import ReminderConfig
from ambient.watches.threshold_rule import Breach
from tests.conftest import unique
from tests.support.pages import signed_in
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


async def test_a_chinese_dashboard_names_its_events_in_chinese(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name = unique("lan")
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        for kind in ("watch.failing", "watch.hit", "schedule.reminder"):
            session.add(Event(kind=kind, user=name, task="t"))
        await session.commit()
    async with signed_in(settings, token) as http:
        page = (await http.get("/app")).text
        async with http.stream("GET", "/app/events/stream", params={"after_id": 0}) as live:
            async for line in live.aiter_lines():
                if line.startswith("data:"):
                    frame = json.loads(line.removeprefix("data:"))
                    break
    shown = re.findall(r'<ul class="events".*?</ul>', page, re.S)[0]
    assert re.findall(r"<b>([^<]*)</b>", shown) == ["定时提醒", "关键词命中", "检查连续失败"]
    # The script shows the frame's name; its kind stays the id.
    assert (frame["kind"], frame["name"]) == ("watch.failing", "检查连续失败")


def _kinds_written() -> set[str]:
    """The event kinds the product records: its literal kinds and the ones it composes."""
    literal = re.compile(
        r"[\"'](?:watch|schedule|agent|delivery|briefing|remediation)\.[a-z_]+[\"']"
    )
    found = {
        match[1:-1]
        for folder in ("ambient", "activities", "workflows")
        for source in (ROOT / folder).rglob("*.py")
        for match in literal.findall(source.read_text())
    }
    actions = ReminderConfig.model_fields["action"].annotation.__args__  # type: ignore[union-attr]
    composed = {
        *(f"watch.{b.value}" for b in Breach),
        "watch.paused",
        "watch.resumed",
        *(f"schedule.{action}" for action in actions),
    }
    return found | composed


def test_every_event_kind_the_product_records_has_a_name() -> None:
    assert _kinds_written() - set(EVENT_KINDS) == set()


async def test_a_delivery_failure_still_retried_is_not_named_not_delivered(
    settings: Settings, db: Database
) -> None:
    # A `delivery.failed` that says `retrying: true` (greylisted, handed to a deliver-later
    # run) is not the end: the dashboard says it is retried, in the list and live; one that
    # ended says it was not delivered.
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name = unique("lan")
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        session.add(Event(kind="delivery.failed", user=name, task="t", payload={"retrying": True}))
        session.add(Event(kind="delivery.failed", user=name, task="t", payload={"retrying": False}))
        await session.commit()
    async with signed_in(settings, token) as http:
        page = (await http.get("/app")).text
        frames = []
        async with http.stream("GET", "/app/events/stream", params={"after_id": 0}) as live:
            async for line in live.aiter_lines():
                if line.startswith("data:"):
                    frames.append(json.loads(line.removeprefix("data:")))
                    if len(frames) == 2:
                        break
    shown = re.findall(r'<ul class="events".*?</ul>', page, re.S)[0]
    ended, retrying = "push not delivered", "push not delivered yet; retrying"
    assert re.findall(r"<b>([^<]*)</b>", shown) == [ended, retrying]
    assert [f["name"] for f in frames] == [retrying, ended]


async def test_a_voice_conversations_own_state_is_in_no_list_or_stream_of_events(
    settings: Settings, db: Database
) -> None:
    """The voice keeps a question it asked back and the tasks an answer named as events of the
    user's (read back on any replica): nothing that happened, they were listed on the
    dashboard, by /events and in both streams, by their kinds' ids."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name = unique("vox")
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        session.add(Event(kind="watch.hit", user=name, task="t"))
        session.add(Event(kind="voice.confirm_asked", user=name, payload={"asked": {}}))
        session.add(Event(kind="voice.tasks_named", user=name, payload={"tasks": ["t"]}))
        session.add(Event(kind="watch.failing", user=name, task="t"))
        await session.commit()
    bearer = {"Authorization": f"Bearer {token}"}
    async with signed_in(settings, token) as http:
        page = (await http.get("/app")).text
        listed = (await http.get("/events", headers=bearer)).json()
        streamed = {}
        for path, auth in (("/app/events/stream", {}), ("/events/stream", bearer)):
            frames = []
            async with http.stream("GET", path, params={"after_id": 0}, headers=auth) as live:
                async for line in live.aiter_lines():
                    if line.startswith("data:"):
                        frames.append(json.loads(line.removeprefix("data:"))["kind"])
                        if len(frames) == 2:
                            break
            streamed[path] = frames
    shown = re.findall(r'<ul class="events".*?</ul>', page, re.S)[0]
    assert re.findall(r"<b>([^<]*)</b>", shown) == ["checks failing", "keyword found"]
    assert [e["kind"] for e in listed] == ["watch.failing", "watch.hit"]
    assert streamed == {
        "/app/events/stream": ["watch.hit", "watch.failing"],
        "/events/stream": ["watch.hit", "watch.failing"],
    }
