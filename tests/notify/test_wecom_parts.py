"""A WeCom message too long for one post goes out in numbered parts: what the delivery records
when a later part is refused must be what the group has, and a retry must not post a part the
group already has."""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.exceptions import ApplicationError

from activities.notify import NotifyActivities
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.wecom import MARKDOWN_LIMIT, WeComChannel
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.storage.models import Delivery, Event
from tests.conftest import unique
from tests.notify.standins import WECOM_KEY, PushEndpoints
from tests.notify.test_leases import _user
from tests.support.servers import serve

LONG = Message(
    title="Error burst",
    body="\n".join(f"line {i}: order-service timeout after 3000 ms" for i in range(250)),
)


class Robot:
    """A WeCom robot taking posts until told to answer one with an error code."""

    def __init__(self) -> None:
        self.taken: list[str] = []  # each post's content, as the group shows it
        self.answers: list[int] = []  # the errcodes of the next posts (then 0)

    async def send(self, request: Request) -> JSONResponse:
        body = await request.json()
        if self.answers and (code := self.answers.pop(0)):
            return JSONResponse({"errcode": code, "errmsg": "injected"})
        self.taken.append(body[body["msgtype"]]["content"])
        return JSONResponse({"errcode": 0, "errmsg": "ok"})


@pytest_asyncio.fixture
async def robot(deps: WorkerDeps) -> AsyncIterator[tuple[Robot, NotifyActivities]]:
    state = Robot()
    app = Starlette(routes=[Route("/cgi-bin/webhook/send", state.send, methods=["POST"])])
    await _user(deps.db, "alice")
    async with serve(app) as base:
        wecom = WeComChannel(deps.http, SecretResolver({}), base, timeout=30)
        yield state, NotifyActivities(deps.db, ChannelRegistry([wecom], target_timeout=30))


def _request(key: str) -> NotifyRequest:
    target = Target(type="wecom", target="robot-key")
    return NotifyRequest(user="alice", message=LONG, targets=[target], idempotency_key=key)


async def _row_and_events(deps: WorkerDeps, key: str) -> tuple[Delivery, list[Event]]:
    async with deps.db.session() as session:
        row = (await session.scalars(select(Delivery).where(Delivery.key.startswith(key)))).one()
        events = list(await session.scalars(select(Event).where(Event.kind == "delivery.failed")))
    return row, [e for e in events if e.user == "alice"]


async def test_a_later_part_refused_for_good_says_the_group_has_the_first(
    deps: WorkerDeps, robot: tuple[Robot, NotifyActivities]
) -> None:
    """Part 2 of 3 refused for good (the robot removed from the group, a word it blocks): the
    delivery said `failed` with the robot's code alone, although the group showed part 1, so
    the user read "nothing arrived". It says what the group has now, and a retry posts none
    of it again."""
    state, notify = robot
    state.answers = [0, 93000]
    key = unique("parts")
    result = await notify.send(_request(key), heartbeat=False)
    (delivery,) = result.deliveries
    assert len(state.taken) == 1 and state.taken[0].endswith("(1/3)")
    assert delivery.status is DeliveryStatus.FAILED
    said = "part 2 of 3 not posted (the group has part 1 of 3)"
    assert said in (delivery.error or "") and "93000" in (delivery.error or "")
    row, events = await _row_and_events(deps, key)
    assert row.status == "failed" and said in (row.error or "")
    assert row.provider_id == "posts:1"
    (event,) = events
    assert said in event.payload["error"] and event.payload["retrying"] is False
    # Tried again (the same notification's retry): nothing is posted twice.
    again = await notify.send(_request(key), heartbeat=False)
    assert [d.status for d in again.deliveries] == [DeliveryStatus.FAILED]
    assert len(state.taken) == 1


async def test_a_later_part_failing_for_now_is_posted_by_the_retry_after_the_first(
    deps: WorkerDeps, robot: tuple[Robot, NotifyActivities]
) -> None:
    """Part 2 met "system busy": the retry goes on at part 2, and while it waits the delivery
    says which parts the group has."""
    state, notify = robot
    state.answers = [0, -1]
    key = unique("parts-later")
    try:
        await notify.send(_request(key), heartbeat=False)
    except ApplicationError as exc:
        assert "part 2 of 3 not posted (the group has part 1 of 3)" in str(exc)
    else:
        raise AssertionError("a busy robot's part must be retried")
    row, _ = await _row_and_events(deps, key)
    assert row.status == "failed" and (row.error or "").startswith("transient: part 2 of 3")
    result = await notify.send(_request(key), heartbeat=False)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert [part[-5:] for part in state.taken] == ["(1/3)", "(2/3)", "(3/3)"]


async def test_a_message_begun_before_quiet_hours_is_finished_not_left_half_posted(
    deps: WorkerDeps, robot: tuple[Robot, NotifyActivities]
) -> None:
    """Part 1 of 3 posted, part 2 "system busy", quiet hours begun before the retry: the
    retry held the rest back and said "held back by quiet hours ...; not sent", while the
    group showed "(1/3)" and parts 2 and 3 never came, not after quiet hours either."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ambient.storage.users import UserRepository

    state, notify = robot
    state.answers = [0, -1]
    key = unique("parts-quiet")
    try:
        await notify.send(_request(key), heartbeat=False)
    except ApplicationError:
        pass
    assert [part[-5:] for part in state.taken] == ["(1/3)"]
    async with deps.db.session() as session:
        users = UserRepository(session)
        user = await users.get("alice")
        assert user is not None
        hour = datetime.now(ZoneInfo(user.timezone)).hour
        quiet = {"start": f"{(hour - 1) % 24:02d}:00", "end": f"{(hour + 2) % 24:02d}:00"}
        await users.set_push_config(user, {"channels": [], "quiet_hours": quiet})
        await session.commit()
    result = await notify.send(_request(key), heartbeat=False, last_try=True)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert [part[-5:] for part in state.taken] == ["(1/3)", "(2/3)", "(3/3)"]
    # A message not begun is still held back in quiet hours.
    fresh = await notify.send(_request(unique("quiet-new")), heartbeat=False)
    assert [d.status for d in fresh.deliveries] == [DeliveryStatus.SUPPRESSED]
    assert len(state.taken) == 3


def _parts_said(posts: list[str]) -> str:
    """The text a group read from numbered posts, their "(i/n)" markers taken off."""
    total = len(posts)
    return "".join(post.removesuffix(f"\n({index}/{total})") for index, post in enumerate(posts, 1))


@pytest.mark.parametrize(
    "body",
    [
        # A log line pasted whole: words, no line break (about 10 kB).
        " ".join(f"order-{i} timeout after 3000 ms;" for i in range(300)),
        # Chinese, no space to cut at (3 bytes a character, about 9.6 kB).
        "订单服务超时" * 530 + "完",
    ],
    ids=["words", "chinese"],
)
async def test_a_long_message_of_one_line_goes_in_posts_each_with_its_text_none_lost(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str], body: str
) -> None:
    """A body of one long line (no line break): the first post was the heading alone, and the
    line was cut wherever its bytes ran out, mid-word. Every post carries text of the body,
    within the robot's 4,096 bytes; cut between words where the line has spaces, between
    characters where it has none; the posts together are the whole message."""
    state, base = endpoints
    await _user(deps.db, "alice")
    wecom = WeComChannel(deps.http, SecretResolver({}), base, timeout=30)
    notify = NotifyActivities(deps.db, ChannelRegistry([wecom], target_timeout=30))
    request = NotifyRequest(
        user="alice",
        message=Message(title="Reminder", body=body),
        targets=[Target(type="wecom", target=WECOM_KEY)],
        idempotency_key=unique("one-line"),
    )
    result = await notify.send(request, heartbeat=False)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    posts = [sent["markdown"]["content"] for name, sent in state.received if name == "wecom"]
    assert len(posts) == 3, [len(post.encode()) for post in posts]
    assert all(len(post.encode()) <= MARKDOWN_LIMIT for post in posts)
    assert _parts_said(posts) == f"### Reminder\n{body}"  # nothing lost, nothing twice
    texts = [post.rpartition("\n(")[0].removeprefix("### Reminder\n") for post in posts]
    assert all(text.strip() for text in texts), texts  # no post is its heading alone
    if " " in body:
        # Cut after a word's space, never inside "order-12": each post ends a word.
        assert all(text.endswith(";") or text.endswith("; ") for text in texts), texts
