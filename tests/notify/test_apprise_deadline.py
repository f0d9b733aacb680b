"""Apprise is synchronous and runs in a thread, which a send's deadline cannot cancel: a
target that never finishes answering must not keep that thread, nor the worker's other
threads, past the send's time."""

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from types import FrameType

import pytest
from temporalio.exceptions import ApplicationError

from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.apprise import AppriseChannel
from ambient.clients.notify.secrets import SecretResolver
from ambient.deps import WorkerDeps
from ambient.domain.notify import Message, Target
from tests.conftest import unique
from tests.notify.test_leases import _notify, _request, _user
from tests.support.servers import HANG
from tests.support.waits import eventually

MESSAGE = Message(title="Disk 91%", body="node-3 /var is 91% full")


class Trickler:
    """An HTTP service that takes the request, then sends its answer's headers a byte every
    0.2 s, never ending them: each read gets a byte well within Apprise's read timeout, so
    the request never times out (a stuck proxy, a slowloris-like endpoint)."""

    def __init__(self) -> None:
        self.open = 0  # connections the client has not closed
        self.served = 0
        self.stopped = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.served += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n")
            while not self.stopped:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client closed it: its thread is free
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def trickling() -> AsyncIterator[tuple[Trickler, str]]:
    state = Trickler()
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield state, f"json://127.0.0.1:{port}/notify"
    finally:
        state.stopped = True  # any thread still reading gets its answer's end and ends
        server.close()
        # Their writes fail once the server's tasks are cancelled: any thread left ends.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await server.wait_closed()


async def test_a_hung_apprise_target_is_let_go_at_the_sends_deadline() -> None:
    """A send cut off by its deadline left Apprise's thread reading the endless answer: the
    connection stayed open for good, and with the loop's few default threads (cores + 4) taken
    by a handful of them, the worker's name lookups (the destination guard's, every webhook's
    and fetch's) queued behind them. The deadline now closes the send's connections: the
    thread ends, and the other threads stay free."""
    channel = AppriseChannel(SecretResolver({}), DestinationGuard(["127.0.0.1/32"]))
    async with trickling() as (state, url):
        for sent in range(1, 9):  # more than the default executor's threads on a small machine
            # The deadline comes once the send's thread is reading the endless answer: a fixed
            # 0.5 s could run out on a loaded host before the thread had connected (Apprise
            # loads its plugins at the first send), and that send never reached the service.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(HANG) as deadline:
                    sending = asyncio.ensure_future(
                        channel.send("alice", MESSAGE, url, idempotency_key="k")
                    )

                    async def connected(count: int = sent) -> bool:
                        return state.served == count

                    await eventually(connected, f"send {sent} reading its answer")
                    assert not sending.done(), sending
                    deadline.reschedule(asyncio.get_running_loop().time())
                    await sending

        async def let_go() -> bool:
            return state.served == 8 and state.open == 0

        # A thread left reading would hold its connection for good: the bound only has to end.
        await eventually(let_go, "every cut-off send's connection closed")
        # A name lookup in the loop's default threads answers at once.
        async with asyncio.timeout(10):
            await asyncio.to_thread(socket.getaddrinfo, "127.0.0.1", 80)


def _connecting() -> int:
    """Threads of this process in Apprise's connect (urllib3's, as the send pins it)."""
    count = 0
    for frame in sys._current_frames().values():
        seen: FrameType | None = frame
        while seen is not None and seen.f_code.co_name != "_pinned_connection":
            seen = seen.f_back
        count += seen is not None
    return count


async def test_a_connect_that_gets_no_answer_ends_with_the_send(deps: WorkerDeps) -> None:
    """A host dropping the connect's packets (here: a listener whose queue is full), a URL
    asking Apprise to wait 10 minutes for a connection (`?cto=600`): the thread waited that
    long, past the send's deadline, where no connection could be closed yet. Its wait ends
    with the send's time now."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(3):  # fill the listener's queue: its next connects get no answer
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        queued.append(sock)
    try:
        await _user(deps.db, "alice")
        notify = _notify(deps, "http://127.0.0.1", notify_target_timeout=1.0)
        target = Target(type="apprise", target=f"json://127.0.0.1:{port}/notify?cto=600")
        with pytest.raises(ApplicationError, match="no answer within 1s"):
            await notify.send(_request(unique("syn"), target), heartbeat=False)

        async def ended() -> bool:
            return _connecting() == 0

        # Apprise's wait was the URL's 10 minutes: the bound only has to be well short of it.
        await eventually(ended, "the send's connect given up")
    finally:
        for sock in [*queued, listener]:
            sock.close()
