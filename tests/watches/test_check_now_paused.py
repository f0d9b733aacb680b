"""Check now while a page's server asked us to wait (429 with Retry-After), on the dev server:
the page is not asked again, every door says so and when, and the check is made as soon as the
pause ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ambient.deps import WorkerDeps
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.support.mcp_as import mcp_as
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.watches.site import article
from tests.watches.test_lifecycle_service import monitor, service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)

# The registered user's zone (the users table's default): the note's time is said in it.
ZONE = "Asia/Shanghai"


class Busy:
    """A page whose server answers 429 (Retry-After: ``pause`` s) to ``busy`` requests after
    its first ``ok_first``, the page to the others; it keeps the time and status of every
    request."""

    def __init__(self, pause: int, busy: int, ok_first: int = 0) -> None:
        self.pause, self.busy, self.ok_first = pause, busy, ok_first
        self.requests: list[tuple[float, int]] = []

    async def page(self, request: Request) -> Response:
        if self.ok_first <= len(self.requests) < self.ok_first + self.busy:
            self.requests.append((time.time(), 429))
            return Response("slow down", 429, headers={"retry-after": str(self.pause)})
        self.requests.append((time.time(), 200))
        return Response(article("The page."), media_type="text/html")


@pytest_asyncio.fixture
async def busy() -> AsyncIterator[tuple[Busy, str]]:
    page = Busy(pause=600, busy=1_000)
    async with serve(Starlette(routes=[Route("/news", page.page)])) as base:
        yield page, base


def said_wait(until: str) -> str:
    """What check now says of the loopback page paused until ``until`` (its ``not_before``)."""
    local = datetime.fromisoformat(until).astimezone(ZoneInfo(ZONE))
    return (
        f"127.0.0.1 asked us to wait, so it was not checked now: checked again after "
        f"{local:%H:%M} ({ZONE})"
    )


async def paused_watch(tasks: TaskService, base: str) -> tuple[str, str, str]:
    """A web monitor (hourly) whose first check got a 429: its id, url and ``not_before``."""
    ref = await tasks.create(USER, "web_monitor", monitor(base, "/news"), unique("busy"))
    url = f"{base}/news"
    assert ref.baseline is not None and "429" in ref.baseline["urls"][url]["error"]
    status = await tasks.get(USER, ref.task_id)
    until = status.detail["urls"][url]["not_before"]  # type: ignore[index]
    assert isinstance(until, str)
    return ref.task_id, url, until


async def test_check_now_during_a_pause_asks_nothing_and_says_when_at_the_service(
    service: TaskService,  # noqa: F811
    busy: tuple[Busy, str],
) -> None:
    """The check was silently not done: the signal went, the answer said nothing of it."""
    page, base = busy
    task_id, url, until = await paused_watch(service, base)
    ref = await service.trigger(USER, task_id)
    assert ref.model_dump(include={"note", "waits", "state"}) == {
        "state": "active",
        "note": said_wait(until),
        "waits": [{"url": url, "site": "127.0.0.1", "until": datetime.fromisoformat(until)}],
    }
    assert [status for _, status in page.requests] == [429]  # not asked again
    await service.delete(USER, task_id)


async def test_a_pause_the_asked_check_itself_meets_is_said_by_its_answer(
    service: TaskService,  # noqa: F811
    busy: tuple[Busy, str],
) -> None:
    """The page answered at creation; the check asked for is the one the 429 answers. A status
    read right after a signal predates that check's hand-back: the answer said nothing. Then
    it said the page was not checked now, which it was: what it found is the 429."""
    page, base = busy
    page.ok_first = 1
    ref = await service.create(USER, "web_monitor", monitor(base, "/news"), unique("later"))
    assert ref.baseline is not None
    checked = await service.trigger(USER, ref.task_id)
    assert [status for _, status in page.requests] == [200, 429]
    assert checked.waits == [] and checked.note is None, checked
    assert checked.checked is not None
    (found,) = checked.checked["urls"].values()
    assert found == {"outcome": "error", "error": "HTTP 429 (Retry-After: 600 s)"}, found
    await service.delete(USER, ref.task_id)


async def test_a_check_asked_during_a_pause_is_made_as_soon_as_the_pause_ends(
    service: TaskService,  # noqa: F811
    busy: tuple[Busy, str],
) -> None:
    """The watch checks hourly: without the ask remembered, the page would wait an hour."""
    page, base = busy
    page.pause, page.busy = 8, 1
    task_id, url, until = await paused_watch(service, base)
    ref = await service.trigger(USER, task_id)
    assert ref.note == said_wait(until)

    async def checked() -> dict[str, Any] | None:
        seen = (await service.get(USER, task_id)).detail["urls"][url]  # type: ignore[index]
        return seen if seen["last_outcome"] == "changed" or seen["failures"] == 0 else None

    seen = await eventually(checked, "the page checked after its pause")
    assert seen["not_before"] is None and seen["last_error"] is None
    (first, _), (second, answered) = page.requests
    assert answered == 200 and second >= datetime.fromisoformat(until).timestamp()
    assert second - first < 60  # at the pause's end (8 s), not at the next hourly check
    # The checked_now update and the check made when the pause ended, for the replay.
    await save_history(service.client.get_workflow_handle(task_id), "web_monitor_check_after_pause")
    await service.delete(USER, task_id)


async def test_trigger_task_through_mcp_says_the_wait(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    busy: tuple[Busy, str],
) -> None:
    page, base = busy
    task_id, url, until = await paused_watch(service, base)
    async with mcp_as(loopback_deps, USER, temporal=service.client) as client:
        result = await client.call_tool("trigger_task", {"task_id": task_id})
    assert not result.is_error, result.content
    answer = result.structured_content
    assert answer is not None
    assert answer["note"] == said_wait(until)
    assert [(w["url"], w["site"]) for w in answer["waits"]] == [(url, "127.0.0.1")]
    assert [status for _, status in page.requests] == [429]
    await service.delete(USER, task_id)
