"""Robot targets (WeCom, DingTalk): the robot's key and mention options, however given.

A target is the key, `secret:NAME`, or the robot's webhook URL as the vendor shows it,
each optionally followed by `?options`. Only the key is taken from a URL: messages always
go to the operator's configured base URL, so a robot target cannot aim the worker anywhere.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlencode

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ambient.clients.notify.base import SEND_CLOCK, TURN_WAIT, Posts
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
)
from ambient.clients.notify.http_errors import post_json
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.notify import robot_address
from ambient.domain.push import SECRET_PREFIX, secret_shown
from ambient.render import markdown_literal
from ambient.storage.db import Database, dialect_insert
from ambient.storage.models import RobotWindow
from ambient.storage.users import hash_token

SYSTEM_BUSY = -1  # both vendors' "系统繁忙": their documented advice is to retry shortly
# What ends a message cut to fit a robot's limit.
CUT_NOTE = "\n\n……(内容过长，已截断 / cut: too long for the robot)"
PER_MINUTE = 20  # messages a minute per robot, both vendors' documented limit
# Seconds a cut send waits for its slot's give-back (which goes on after), and a worker's stop
# for those in flight: well within the 5 s a delivery keeps to record its outcome after a cut
# (activities/deliveries.py LEASE_MARGIN).
GIVE_BACK_WAIT = 2.0
LEFT_TAKEN = "it may be left taken until its minute ends"  # a slot not known to be given back
# The errcodes that mean "over the rate limit", with the seconds the vendor's docs say the robot
# refuses after it (None: they do not say): retried sooner, every try is refused again.
WECOM_LIMITED: dict[int, float | None] = {45009: 60.0, 45033: None}  # its minute ends by then
DINGTALK_LIMITED: dict[int, float | None] = {130101: 600.0, 410100: None}  # held off 10 minutes

# DingTalk refuses what its robot's security settings do not allow with one errcode, its errmsg
# naming one cause (keywords not in content, sign not match, ip not in whitelist): said whole,
# with where the signing secret is set on the path sent by (``secret``).
SETTINGS_REFUSED = {
    # A key or token the vendor does not know (mistyped, cut, or its robot removed): WeCom's
    # "invalid webhook url", DingTalk's "token is not exist". Through Apprise too (wecombot://).
    **dict.fromkeys(
        [("wecom", 93000), ("wecombot", 93000), ("dingtalk", 300001)],
        "no robot has this key: copy the robot's webhook URL again from the group's robot "
        "settings and {update} (a robot removed from its group needs a new one)",
    ),
    # Feishu's and Lark's 签名校验 (sign check): Apprise's feishu:// and lark:// cannot sign, and
    # a secret given in the URL is dropped by it. Said, not left as "sign match fail".
    **dict.fromkeys(
        [("feishu", 19021), ("lark", 19021)],
        "the bot checks a signature (签名校验), which this target cannot send: turn the "
        "signature check off in the bot's security settings and use a custom keyword or an IP "
        "list instead",
    ),
    ("dingtalk", 310000): (
        "the robot's security settings refused the message: check them in the group's robot "
        "settings (a custom keyword must be in every message, {secret} must be the robot's "
        "signing secret, this server's public IP must be in its IP list)"
    ),
}
SIGNED_BY = "the target's #SEC... secret"  # a dingtalk target's (`RobotChannel`)

log = logging.getLogger(__name__)


UPDATE_TARGET = "update this target"  # a robot target holds the webhook URL or its key


def held_in_secret(target: str) -> str | None:
    """How a key held in a server secret (``target`` is `secret:NAME`) is put in again: only the
    operator changes AMBIENT_SECRETS. None for a target that holds its own."""
    if not target.strip().startswith(SECRET_PREFIX):
        return None
    name = secret_shown(target.strip().removeprefix(SECRET_PREFIX))
    return f"ask the operator to put it in the server secret {name!r} (AMBIENT_SECRETS)"


def refused(
    robot: str, code: int, said: object, secret: str = SIGNED_BY, update: str = UPDATE_TARGET
) -> str:
    """A robot's refusal (``code`` and its message ``said``) and what to check, if known;
    ``secret``: where its signing secret is set; ``update``: how its key is put in again."""
    why = SETTINGS_REFUSED.get((robot, code))
    return f"{code}: {said}" + (f"; {why.format(secret=secret, update=update)}" if why else "")


class RateLimiter:
    """A sliding one-minute window per robot; a send waits for its slots up to ``max_wait``
    seconds in all. The windows are this process's: ``SharedRateLimiter`` keeps them where
    every worker takes its slots."""

    def __init__(
        self,
        per_minute: int = PER_MINUTE,
        max_wait: float = TURN_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_minute = per_minute
        self._max_wait = max_wait
        self._clock = clock
        self._sent: dict[str, deque[float]] = defaultdict(deque)

    async def acquire(self, robot: str) -> None:
        # The slot is taken at once and waited for after, so a robot over its limit never
        # holds up the other robots' sends.
        send = SEND_CLOCK.get()
        now, slot, freed = await self._take(robot, self._max_wait - (send.waited if send else 0.0))
        wait = max(0.0, slot - now)
        try:
            await (send.waits(wait) if send is not None else asyncio.sleep(wait))
        except BaseException:
            # Cut off (or the lease not kept) before posting: the window is as if it never
            # asked (unless a later send was already given the slot after this one: that one
            # simply waits its turn).
            await self._give_back(robot, slot, freed)
            raise

    async def hold(self, robot: str, seconds: float) -> None:
        """The robot refused a message as over its limit and takes none for ``seconds`` (DingTalk
        holds it ten minutes): its window is full until then, so the next sends to it wait or
        are deferred to that time instead of each posting once more to be refused."""
        now = self._clock()
        self._sent[robot] = held(self._sent.get(robot, deque()), now + seconds, self._per_minute)

    async def _take(self, robot: str, longest: float) -> tuple[float, float, float | None]:
        """(now, the slot taken, the slot it pushed out of the window) in this process's
        window (no await until it is taken: no other send runs meanwhile)."""
        now = self._clock()
        # Forget the robots without a send this minute (their last slot may lie ahead).
        for quiet in [r for r, sent in self._sent.items() if not sent or now - sent[-1] >= 60]:
            del self._sent[quiet]
        return (now, *self._place(self._sent[robot], now, longest))

    async def _give_back(self, robot: str, slot: float, freed: float | None) -> None:
        _unplace(self._sent.get(robot, deque()), slot, freed)

    async def aclose(self) -> None:
        """Nothing left running: a slot goes back at once."""

    def _place(
        self, window: deque[float], now: float, longest: float
    ) -> tuple[float, float | None]:
        """Take the next slot in ``window`` (changed): it and the slot it pushed out."""
        while window and now - window[0] >= 60:
            window.popleft()
        slot, freed = now, None
        if len(window) >= self._per_minute:
            slot = window[0] + 60
            if slot - now > longest:
                # Its turn comes then: later, past this send's waits.
                over = f"robot over {self._per_minute}/min"
                raise DeferredNotifyError(over, retry_after=slot - now)
            freed = window.popleft()  # out of the window by the time this slot comes
        window.append(slot)
        return slot, freed


def held(window: deque[float], until: float, per_minute: int) -> deque[float]:
    """``window`` full until ``until``: each of its ``per_minute`` slots a minute before then (a
    slot given back leaves it full), and the slots taken after that kept."""
    return deque([until - 60.0] * per_minute + [slot for slot in window if slot > until - 60.0])


def _unplace(window: deque[float], slot: float, freed: float | None) -> deque[float]:
    if slot in window:
        window.remove(slot)
        if freed is not None:
            window.insert(bisect.bisect(window, freed), freed)
    return window


class SharedRateLimiter(RateLimiter):
    """The robots' windows in the app database: the sends of every worker (and API replica)
    to one robot keep its limit together. Past DingTalk's a robot is held off for ten
    minutes, so two workers with a window each could silence it in a burst.

    A slot is taken in one write transaction on the robot's row (locked on PostgreSQL, the
    write lock on SQLite), keyed by the sha256 of the robot's key. Times are the processes'
    clocks (epoch seconds): keep them in sync (NTP), as the workers' beats already need. A
    send cut off before its take commits writes nothing; once the commit began, or while
    waiting for its slot, it gives the slot back, in a task that runs to its end (the send
    waits for it at most GIVE_BACK_WAIT, a worker's stop as long again). A process killed
    meanwhile (or a database that does not answer by the stop, or a commit that fails: on
    PostgreSQL it may have landed) leaves it taken until its minute ends, logged: a robot
    loses a message's worth of its minute, never goes past its limit."""

    def __init__(
        self,
        db: Database,
        per_minute: int = PER_MINUTE,
        max_wait: float = TURN_WAIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(per_minute, max_wait, clock)
        self._db = db
        self._giving: set[asyncio.Future[None]] = set()  # cut sends' slots going back

    async def _take(self, robot: str, longest: float) -> tuple[float, float, float | None]:
        key = hash_token(robot)  # its row: the key is a credential, never stored
        async with contextlib.AsyncExitStack() as stack:
            # Cut before its commit (waiting for the write turn or the row), a take writes nothing.
            session = await stack.enter_async_context(self._db.writing())
            conn = await session.connection()
            window = await _locked_window(conn, key)
            # Read once the row is held: a send that queued for it posts now, not when it asked.
            now = self._clock()
            slot, freed = self._place(window, now, longest)
            # The rows of robots quiet for a minute hold nothing: gone, as they go in memory.
            # One another take holds is skipped, not waited for: that take's clean-up may be
            # waiting for this robot's row (a deadlock on PostgreSQL); a later take removes it.
            quiet = select(RobotWindow.robot).where(
                RobotWindow.until <= now - 60, RobotWindow.robot != key
            )
            gone = quiet.with_for_update(skip_locked=True).scalar_subquery()
            await conn.execute(delete(RobotWindow).where(RobotWindow.robot.in_(gone)))
            await _store(conn, key, window)
            # Its commit (``writing``'s end) runs to its end even if the send is cut meanwhile.
            landing = asyncio.ensure_future(stack.pop_all().aclose())
        try:
            await asyncio.shield(landing)
        except asyncio.CancelledError:
            await self._give_back(robot, slot, freed, landing)  # acquire never had it: once
            raise
        return now, slot, freed

    async def hold(self, robot: str, seconds: float) -> None:
        key = hash_token(robot)
        try:  # the clock read once the row is held, as a take's
            await self._rewrite(key, lambda w: held(w, self._clock() + seconds, self._per_minute))
        except Exception as exc:  # the database away: the refusal is said all the same
            log.warning("robot limiter: a robot's hold not kept (%r): its next sends post", exc)

    async def _give_back(
        self,
        robot: str,
        slot: float,
        freed: float | None,
        landing: asyncio.Future[None] | None = None,
    ) -> None:
        """Give ``slot`` back (``freed`` with it), once ``landing``, the commit that took it, has
        landed (nothing if it failed), in a task of its own that runs to its end: the cut send
        waits for it at most GIVE_BACK_WAIT, a second cut not at all; ``aclose`` drains it."""
        key = hash_token(robot)

        async def give_back() -> None:
            try:
                if landing is not None:
                    try:
                        await asyncio.shield(landing)
                    except asyncio.CancelledError:  # the stop: the commit ends with it, not after
                        landing.cancel()
                        await asyncio.gather(landing, return_exceptions=True)
                        raise
                    except Exception as exc:  # PostgreSQL's may have landed (dropped after it)
                        log.warning(
                            "robot limiter: a slot's commit failed (%r): %s", exc, LEFT_TAKEN
                        )
                        return
                await self._rewrite(key, lambda window: _unplace(window, slot, freed))
            except Exception as exc:  # the database away: the slot lapses with its minute
                log.warning("robot limiter: a slot not given back (%r): %s", exc, LEFT_TAKEN)

        giving = asyncio.ensure_future(give_back())
        self._giving.add(giving)  # held: the loop keeps weak references
        giving.add_done_callback(self._giving.discard)
        await asyncio.wait({giving}, timeout=GIVE_BACK_WAIT)

    async def _rewrite(self, key: str, change: Callable[[deque[float]], deque[float]]) -> None:
        """The robot's window rewritten by ``change``, called once its row is locked."""
        async with self._db.writing() as session:
            conn = await session.connection()
            await _store(conn, key, change(await _locked_window(conn, key)))

    async def aclose(self) -> None:
        """Let the slots of cut sends go back, for at most GIVE_BACK_WAIT (a worker's stop): one
        the database has not taken back by then is cut off (a commit it waits for with it),
        said."""
        if not self._giving:
            return
        _, left = await asyncio.wait(set(self._giving), timeout=GIVE_BACK_WAIT)
        for giving in left:
            giving.cancel()
            log.warning("robot limiter: a slot not given back by the stop: %s", LEFT_TAKEN)
        await asyncio.gather(*left, return_exceptions=True)


async def _locked_window(conn: AsyncConnection, key: str) -> deque[float]:
    """The robot's window, its row created if new and locked until the transaction ends."""
    created = dialect_insert(conn.dialect.name, RobotWindow).values(robot=key, slots=[], until=0.0)
    # Made or locked in one statement (an update that changes nothing locks the row): between
    # an insert that found the row and a SELECT FOR UPDATE, another take's clean-up of quiet
    # robots could remove it.
    taken = created.on_conflict_do_update(
        index_elements=[RobotWindow.robot], set_={"until": RobotWindow.until}
    )
    return deque((await conn.execute(taken.returning(RobotWindow.slots))).scalar_one())


async def _store(conn: AsyncConnection, key: str, window: deque[float]) -> None:
    stored = update(RobotWindow).where(RobotWindow.robot == key)
    await conn.execute(stored.values(slots=list(window), until=window[-1] if window else 0.0))


@dataclass
class RobotChannel:
    """A vendor's group robot: the key from the target, messages posted to the base URL."""

    name = ""  # each robot's channel name
    path: ClassVar[str]  # the send endpoint below the base URL
    key_param: ClassVar[str]  # the key's query parameter, in robot URLs and on the endpoint
    rate_limited: ClassVar[dict[int, float | None]]  # WECOM_LIMITED, DINGTALK_LIMITED

    http: httpx.AsyncClient
    secrets: SecretResolver
    base_url: str
    timeout: float = 15.0
    # Per robot, in this worker: a burst waits for its slots rather than tripping the limit.
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def address(self, target: str) -> tuple[str, dict[str, list[str]]]:
        """(key, options) of a robot target; a URL's fragment (DingTalk #SIGN_SECRET) is kept."""
        return robot_address(target, self.name, self.secrets.resolve)

    async def aclose(self) -> None:
        """Let the slots of sends cut off go back (a worker's stop)."""
        await self.limiter.aclose()

    def endpoint(self, key: str) -> str:
        """The send URL for the robot ``key`` (always below the configured base URL)."""
        return f"{self.base_url.rstrip('/')}{self.path}?{urlencode({self.key_param: key})}"

    async def post(
        self,
        url: str,
        payload: dict[str, object],
        *,
        robot: str,
        update: str = UPDATE_TARGET,
        posts: Posts | None = None,
    ) -> None:
        """POST to the robot ``robot`` (its key) once its rate limit has a slot; its ``errcode``
        answer as a notify error (rate limits: transient)."""
        await self.limiter.acquire(robot)
        response = await post_json(
            self.http, url, payload, request_timeout=self.timeout, posts=posts
        )
        try:
            body = response.json()
            code = int(body["errcode"])
        except (ValueError, TypeError, KeyError):  # not JSON, or JSON without an errcode
            setting = f"AMBIENT_{self.name.upper()}_BASE_URL"
            raise PermanentNotifyError(
                f"{self.name}: HTTP {response.status_code} but not the robot's JSON answer "
                f"(errcode): check {setting} ({response.text[:100]!r})"
            ) from None
        if code in self.rate_limited:
            if (seconds := self.rate_limited[code]) is not None:
                await self.limiter.hold(robot, seconds)
            raise over_limit(self.name, code, seconds)
        if code == SYSTEM_BUSY:
            raise TransientNotifyError(f"{self.name} system busy ({code}): try again shortly")
        if code != 0:
            raise PermanentNotifyError(
                f"{self.name} errcode {refused(self.name, code, body.get('errmsg'), update=update)}"
            )


def over_limit(robot: str, code: int, held: float | None) -> DeferredNotifyError:
    """A robot's "over the rate limit": tried again when it takes messages again, if said."""
    said = f"{robot} rate limit ({code})"
    if held is not None:
        said += f": the robot takes messages again within {held:g} s"
    return DeferredNotifyError(said, retry_after=held)


EVERYONE = "@all"  # a mention of the whole group, written `all` or `@all` (both accepted)


def listed(options: dict[str, list[str]], name: str) -> list[str]:
    """The comma-separated values of an option, flattened; `all` and `@all` are EVERYONE."""
    items = (item for value in options.get(name, []) for item in value.split(",") if item)
    return [EVERYONE if item in ("all", EVERYONE) else item for item in items]


def heading(title: str) -> str:
    """A message's title as the markdown heading of a robot's message: its text as written, on
    one line (a title is someone's words, not markdown: no link, emphasis or new heading)."""
    return "### " + markdown_literal(" ".join(title.split()))


def cut_to_fit(body: str, fits: Callable[[str], bool]) -> str:
    """``body`` if it ``fits``, else the longest start of it that fits with CUT_NOTE after it,
    cut at a line's end (a robot's limit, measured as the robot counts it)."""
    if fits(body):
        return body
    keep, over = 0, len(body)  # the longest start known to fit, the shortest known not to
    while over - keep > 1:
        middle = (keep + over) // 2
        if fits(body[:middle] + CUT_NOTE):
            keep = middle
        else:
            over = middle
    kept = body[:keep]
    return (kept.rpartition("\n")[0] or kept) + CUT_NOTE
