"""The channel interface and registry (the errors are in ``errors``: targets need them too)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.targets import TargetPolicy
from ambient.domain.notify import Message

TURN_WAIT = 30.0  # seconds a send may wait for its turns (a robot's rate limit), in all
RENEW_EVERY = 2.5  # seconds between renewals of a waiting send's lease (its margin: 5 s)


@dataclass
class SendClock:
    """A send's deadline and its row's lease (activities/notify_target.py): a wait for a turn moves
    the deadline on by the wait, so the post after it has its whole time (cut off mid-post, its
    retry would post it again), and renews the lease through it, so no other try takes the row
    meanwhile, yet one dying in the wait frees it as soon as one dying mid-post."""

    deadline: asyncio.Timeout
    hold: Callable[[float], Awaitable[None]]  # the row's lease: this many seconds from now
    waited: float = 0.0  # for turns so far (their sum is bounded: the activity's timeout)

    async def waits(self, seconds: float) -> None:
        """Wait ``seconds`` for a turn, not counted in the send's time."""
        self.waited += seconds
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        if seconds <= 0 or (when := self.deadline.when()) is None:
            return await asyncio.sleep(max(seconds, 0))
        own = when - loop.time()  # the send's own time left: the lease is kept that far ahead
        self.deadline.reschedule(when + seconds)
        # The lease already ends ``own`` + its margin from now (the claim's, or the last wait's
        # end): renewed well within that margin, the last time for the post, from the wait's end.
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(left, RENEW_EVERY))
            await self.hold(own)


SEND_CLOCK: ContextVar[SendClock | None] = ContextVar("send_clock", default=None)


class Posts(Protocol):
    """A delivery's posts sent in earlier tries: a channel goes on after them, recording each."""

    done: int
    attempt: int  # which try of the delivery's row sends (its attempts when the try took it)
    # The message went to the receiver (an email's bytes after the server's 354): a send cut
    # off after that, before the receiver's answer, may have delivered it (set by the channel).
    handed: bool
    # The message goes in several posts (set by the channel): a post handed over counts as sent,
    # so a try after a worker died posting it goes on with the next, never posting it again.
    several: bool

    async def sent(self) -> None: ...

    async def handing(self) -> None:
        """The message goes to the receiver now, past the point of no return (an email's
        DATA): recorded first, so that a try taking the row over after this one's worker died
        does not send it a second time."""
        ...

    async def refused(self) -> None:
        """The receiver refused the post ``handing`` recorded (a 503 to wait out): the row says
        the posts sent before it again, so a worker dying in the wait leaves it to be sent."""
        ...


class Channel(Protocol):
    """Sends one message to one target; returns the provider's message id if any."""

    # A channel names the arguments it uses and takes the others as ``**unused``.
    name: str

    async def send(
        self,
        user: str,
        message: Message,
        target: str,
        *,
        idempotency_key: str,
        posts: Posts,
    ) -> str | None: ...


class ChannelRegistry:
    """Channels by name and the rules of sending through them (``registry.build_channels``)."""

    def __init__(
        self,
        channels: list[Channel] | None = None,
        *,
        policy: TargetPolicy | None = None,
        target_timeout: float = 30.0,
        retry_seconds: float = 2.0,
        concurrency: int = 8,
        give_up_seconds: float = 0.0,
        later_seconds: float = 60.0,
        language: str = "zh",
        pages: str = "",
    ) -> None:
        # Who may send where (secrets, inbox, allow-listed networks): the policy in use, by
        # which every door checks targets and the notify activity sends (build_channels makes
        # it from settings). Built without one (tests): strict, nothing allow-listed, no secrets.
        self.policy = policy or TargetPolicy.strict()
        self.target_timeout = target_timeout
        self.retry_seconds = retry_seconds
        self.concurrency = concurrency
        # Deliver later (settings.notify_give_up_seconds): none for a registry built without.
        self.give_up_seconds = give_up_seconds
        self.later_seconds = later_seconds
        # What a recipient who chose no language reads (settings.default_language).
        self.language = language
        # Where people open the web pages (settings.public_base_url): a message's link to a
        # page ("/app/remediation?id=…", all a workflow knows) is sent under it.
        self.pages = pages.rstrip("/")
        self._channels = {channel.name: channel for channel in channels or []}

    async def aclose(self) -> None:
        """Let what the channels left running end (a worker's stop): the slots of robot sends
        cut off go back, bounded."""
        closing = [
            close() for c in self._channels.values() if (close := getattr(c, "aclose", None))
        ]
        await asyncio.gather(*closing)

    def get(self, name: str) -> Channel:
        if (channel := self._channels.get(name)) is None:
            known = ", ".join(sorted(self._channels)) or "none"
            raise PermanentNotifyError(f"unknown channel {name!r}; registered: {known}")
        return channel
