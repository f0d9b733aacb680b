"""A chat robot keeps no record of what it was sent: a message it took whose answer never came
(late, its connection lost) may be in the group, so no try posts it again; one that never
reached it (a dead address) is tried again as before."""

import asyncio
from dataclasses import dataclass

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deliveries import HANDING, delivery_key
from activities.notify import NotifyActivities
from ambient.clients.notify.errors import TransientNotifyError
from ambient.clients.notify.registry import build_channels
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.wecom import WeComChannel
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.storage.models import Delivery
from ambient.storage.repositories import DeliveryRepository
from tests.conftest import unique
from tests.notify.standins import WECOM_KEY, PushEndpoints
from tests.notify.test_delivery import _user
from tests.support.servers import free_port

DEADLINE = 3.0  # the send's deadline (AMBIENT_NOTIFY_TARGET_TIMEOUT), seconds


def _notify(deps: WorkerDeps, base: str) -> NotifyActivities:
    settings = deps.settings.model_copy(
        update={"wecom_base_url": base, "notify_target_timeout": DEADLINE}
    )
    return NotifyActivities(deps.db, build_channels(settings, deps.db, deps.http))


def _request(name: str) -> NotifyRequest:
    return NotifyRequest(
        user="alice",
        message=Message(title="Disk 91%", body="node-3"),
        targets=[Target(type="wecom", target=WECOM_KEY)],
        idempotency_key=unique(name),
    )


async def _try(notify: NotifyActivities, request: NotifyRequest) -> None:
    """One try of the notify activity, as Temporal runs it (a transient failure raises)."""
    try:
        await ActivityEnvironment().run(notify.notify, request)
    except ApplicationError as exc:
        assert exc.type == "TransientNotifyError"


async def test_a_robot_post_taken_but_answered_too_late_is_not_posted_again(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    """The robot showed the message in its group, its answer came after the send's deadline:
    each of Temporal's tries posted it again (five alerts in the group for one)."""
    state, base = endpoints
    await _user(deps.db, "alice")
    state.failures["wecom"] = ["late"]
    notify, request = _notify(deps, base), _request("robot-late")
    for _ in range(3):
        await _try(notify, request)
    assert len(state.received) == 1, state.received
    key = delivery_key(request.idempotency_key, "wecom", WECOM_KEY)
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
    assert row is not None and row.status == DeliveryStatus.FAILED.value, row
    assert (row.error or "").startswith("permanent:"), row.error
    assert "may have been delivered; not sent again" in (row.error or ""), row.error


async def test_a_part_a_robot_never_answers_fails_the_message_and_is_not_said_sent(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    """A robot (or a gateway before it) that takes every post and answers none: counting each
    unanswered part as posted moved one part on per try, and the row ended `sent` with none of
    them answered. The part in doubt fails the message for good, as a single post does; none
    is posted twice."""
    state, base = endpoints
    await _user(deps.db, "alice")
    state.failures["wecom"] = ["ok"] + ["late"] * 5
    notify = _notify(deps, base)
    request = _request("robot-late-part").model_copy(
        # Three parts of WeCom's 4,096 bytes (the first its heading and 4,055 of the x's).
        update={"message": Message(title="Logs", body="x" * 9000)}
    )
    for _ in range(4):
        await _try(notify, request)
    parts = [body["markdown"]["content"][-5:] for _, body in state.received]
    assert parts == ["(1/3)", "(2/3)"], parts
    key = delivery_key(request.idempotency_key, "wecom", WECOM_KEY)
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
    assert row is not None and row.status == DeliveryStatus.FAILED.value, row
    assert "may have been delivered; not sent again" in (row.error or ""), row.error


async def test_a_robot_post_that_reached_no_one_is_posted_by_the_next_try(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    """Nothing listening at the robot's address (its connection refused): nothing was sent, so
    the next try posts it, once."""
    state, base = endpoints
    await _user(deps.db, "alice")
    request = _request("robot-dead")
    await _try(_notify(deps, f"http://127.0.0.1:{free_port()}"), request)
    key = delivery_key(request.idempotency_key, "wecom", WECOM_KEY)
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
    assert row is not None and (row.error or "").startswith("transient:"), row
    result = await ActivityEnvironment().run(_notify(deps, base).notify, request)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT], result
    assert len(state.received) == 1, state.received


@dataclass
class Posted:
    """A delivery's posts as a try keeps them (RowPosts without its row)."""

    done: int = 0
    attempt: int = 1
    handed: bool = False
    several: bool = False

    async def sent(self) -> None:
        self.done += 1

    async def handing(self) -> None:
        pass

    async def refused(self) -> None:
        pass


async def test_a_part_of_a_long_message_that_reached_no_robot_is_posted_by_the_next_try() -> None:
    """The first part answered, the robot then unreachable: the part after it was said "may
    have been delivered" (the first part's post left it so) and failed for good, the rest
    never posted. It is tried again, from that part."""
    answered: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                b":"
            )[1]
        )
        answered.append(await reader.readexactly(length))
        body = b'{"errcode": 0, "errmsg": "ok"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()
        server.close()  # the robot gone after its first answer: the next connect is refused

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    long = Message(title="Logs", body="x" * 6000)  # parts of WeCom's 4,096 bytes
    posts = Posted()
    async with httpx.AsyncClient() as http:
        channel = WeComChannel(http, SecretResolver({}), f"http://127.0.0.1:{port}", timeout=5)
        with pytest.raises(TransientNotifyError, match=r"part 2 of \d not posted"):
            await channel.send("alice", long, WECOM_KEY, idempotency_key="k", posts=posts)
    assert len(answered) == 1 and posts.done == 1


async def test_a_robot_post_refused_for_now_leaves_its_row_to_be_sent_while_it_waits(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    """A 503 asking for two seconds: while the send waits them out its row said the message
    was being handed over, so a worker dying in the wait left it failed for good, "may have
    been delivered", for a message the robot had refused."""
    state, base = endpoints
    await _user(deps.db, "alice")
    state.failures["wecom"] = ["busy"]
    notify, request = _notify(deps, base), _request("robot-busy")
    key = delivery_key(request.idempotency_key, "wecom", WECOM_KEY)
    sending = asyncio.create_task(ActivityEnvironment().run(notify.notify, request))

    async def row() -> Delivery | None:
        async with deps.db.session() as session:
            return await DeliveryRepository(session).get(key)

    # Read while the send waits out the 503 (the stand-in took its "busy" as the post came,
    # before the answer reached the send: "handing" until then), never after its next post.
    until = asyncio.get_running_loop().time() + 30
    while (now := await row()) is None or state.failures["wecom"] or now.provider_id == HANDING:
        assert not state.received and not sending.done(), (
            "the send went on while its row still said it was handing the message over"
        )
        assert asyncio.get_running_loop().time() < until, "the send never waited out the 503"
        await asyncio.sleep(0.02)
    assert not state.received, "read after the send's next post, not while it waited"
    result = await sending
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT], result
    assert len(state.received) == 1
