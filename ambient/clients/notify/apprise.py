"""Apprise URLs for every other service (Slack, Feishu, Telegram, SMS gateways, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import urllib3
import urllib3.util.connection

from ambient.clients.guard import (
    DestinationGuard,
    DestinationLookupError,
    RefusedDestinationError,
    url_host,
)
from ambient.clients.notify.base import SEND_CLOCK
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
)
from ambient.clients.notify.http_errors import checked_destination, refusal
from ambient.clients.notify.robots import (
    DINGTALK_LIMITED,
    WECOM_LIMITED,
    RateLimiter,
    cut_to_fit,
    held_in_secret,
    over_limit,
    refused,
)
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.targets import aimed_url, warn_if_disabled
from ambient.domain.apprise_urls import apprise_plugin
from ambient.domain.notify import Message, Target
from ambient.domain.push import target_problem
from ambient.domain.users import PHONE_JUNK
from ambient.render import markdown_html, markdown_plain

if TYPE_CHECKING:
    import apprise
    import requests


@dataclass
class Pins:
    """Where a user's Apprise send may connect. Apprise connects by itself (requests, through
    urllib3), so the address cannot be put in the URL as for webhooks: the one the guard
    checked is pinned for the send instead, or Apprise's own lookup at connect time could find
    the name pointing elsewhere (DNS rebinding); the name stays in the URL (Host, TLS). Any
    other host the send reaches, one a service's answer named (Matrix's server discovery
    follows the homeserver's `.well-known` file anywhere), passes the guard at its connect,
    or is not connected to (``refused`` says why)."""

    addresses: dict[str, str]  # host name -> the address the guard checked for it
    guard: DestinationGuard
    refused: list[str] = field(default_factory=list)

    def address(self, host: str, port: int) -> str:
        """The address to connect to for ``host``; OSError (urllib3's connect error) if refused."""
        name = host.rstrip(".").lower()
        if (pinned := self.addresses.get(name)) is not None:
            return pinned
        try:
            return self.guard.check_host_blocking(name, port)[0]
        except RefusedDestinationError as exc:
            self.refused.append(str(exc))
            raise ConnectionRefusedError(str(exc)) from None
        except DestinationLookupError as exc:
            raise OSError(str(exc)) from None


# A context variable: Apprise's worker threads copy the caller's context. None: a send to the
# operator's own URL (the SMS gateway), connected to as Apprise names it.
_PINNED: contextvars.ContextVar[Pins | None] = contextvars.ContextVar("apprise_pins", default=None)
_connect = urllib3.util.connection.create_connection


@dataclass
class Connections:
    """A send's connections, which its deadline closes under it: Apprise runs in a thread no
    deadline can cancel, and a service that never finishes its answer (a byte at a time, each
    within Apprise's read timeout) kept that thread, one of the few the event loop's name
    lookups share, for good. Each is held by a duplicate of its socket: TLS takes over the
    one urllib3 made, and a number closed and reused could be another connection's."""

    _held: list[socket.socket] = field(default_factory=list)
    _cut: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def opened(self, sock: socket.socket) -> None:
        held = sock.dup()
        with self._lock:
            if not self._cut:
                self._held.append(held)
                return
        _shut(held)  # connected after the send was cut off

    def cut(self) -> None:
        """The send is over: its thread's reads and writes end now, with an error."""
        with self._lock:
            self._cut, held, self._held = True, self._held, []
        for sock in held:
            _shut(sock)

    def close(self) -> None:
        """The send ended by itself: let go of the connections (the thread closed its own)."""
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other end
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


_CONNECTIONS: contextvars.ContextVar[Connections | None] = contextvars.ContextVar(
    "apprise_connections", default=None
)


def _pinned_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """urllib3's connect, for a user's send to the address the guard checked: a name pinned
    for this send, any other host (one the service led to) checked now (``Pins.address``).
    The socket is the send's to close at its deadline."""
    host, port = address
    if (pins := _PINNED.get()) is not None:
        host = pins.address(host, port)
    sock = _connect((host, port), *args, **kwargs)
    if (connections := _CONNECTIONS.get()) is not None:
        connections.opened(sock)
    return sock


urllib3.util.connection.create_connection = _pinned_connection


@dataclass(frozen=True)
class RobotAnswer:
    """Where a chat robot's answer says whether it took the message: its code (0: taken) and
    words, and the codes that mean "over the rate limit" (with for how long, if said)."""

    code: str
    says: str
    rate_limited: dict[int, float | None]
    busy: int | None = None  # "system busy": try again shortly


# Chat robots answer a message they refuse (a wrong key, a keyword the robot requires, a
# signature that does not match, the rate limit) with HTTP 200 and a code in the body, and
# Apprise reads the status only: their answers are read here, by Apprise scheme.
_FEISHU = RobotAnswer("code", "msg", {11232: None})  # 11232: frequency limited
ROBOT_ANSWERS = {
    "feishu": _FEISHU,
    "lark": _FEISHU,
    "dingtalk": RobotAnswer("errcode", "errmsg", DINGTALK_LIMITED, busy=-1),
    "wecombot": RobotAnswer("errcode", "errmsg", WECOM_LIMITED, busy=-1),
}
# A chat robot's limit on what Apprise sends it, in bytes (its docs), and whether JSON as
# sent is counted (Apprise's, ASCII: a Chinese character is 6 bytes): WeCom's text content
# 2048; Feishu's, Lark's and DingTalk's request 20,000 (room left for the rest of it).
ROBOT_ROOM = {
    "wecombot": (2048, False),
    "feishu": (19_000, True),
    "lark": (19_000, True),
    "dingtalk": (19_000, True),
}
# Bytes of a service's answer read (decoded), more than a webhook's (http_errors.ANSWER_LIMIT):
# a service reads some answers whole for what it sends (a Telegram bot's owner is found in its
# pending updates, up to 100 messages of 4096 characters). An answer without end, or compressed
# a thousandfold, read whole took the worker's memory; past the limit, the send fails.
APPRISE_ANSWER_LIMIT = 4 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass
class Answers:
    """A send's HTTP answers as read, kept for it (Apprise's threads copy the caller's
    context), and why any was not read (Apprise says only "not sent")."""

    read: list[requests.Response] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)


_ANSWERS: contextvars.ContextVar[Answers | None] = contextvars.ContextVar(
    "apprise_answers", default=None
)


def _keep_answers() -> None:
    """Have every ``requests`` session keep its answers for the send that waits for them
    (installed once; requests is imported with Apprise, at the first send)."""
    import requests

    send = requests.Session.send
    if getattr(send, "keeps_answers", False):
        return

    def answered(
        session: requests.Session, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if (kept := _ANSWERS.get()) is None:  # not an Apprise send's request
            return send(session, request, **kwargs)
        request.headers["Accept-Encoding"] = "identity"  # its size as sent
        if _PINNED.get() is not None:
            # A user's send: to the address the guard checked, never through a proxy from the
            # environment (HTTP_PROXY), which would be checked instead and look the host up.
            kwargs["proxies"] = {}
        response = send(session, request, **(kwargs | {"stream": True}))
        if not kwargs.get("stream"):  # else the service reads it as it goes
            try:
                _read_whole(response)
            except requests.RequestException as exc:
                kept.unread.append(f"{type(exc).__name__}: {exc}")
                if not 200 <= response.status_code < 300:
                    # A refusal's status and headers say it (a 400 for good, a 429's
                    # Retry-After), its body cut or too long: kept, its body unread.
                    response.raw = urllib3.HTTPResponse(io.BytesIO(b""), preload_content=False)
                    kept.read.append(response)
                raise
        kept.read.append(response)
        return response

    answered.keeps_answers = True  # type: ignore[attr-defined]
    requests.Session.send = answered  # type: ignore[method-assign,assignment]


def _read_whole(response: requests.Response) -> None:
    """``response``'s body read (streamed) as requests reads it, its errors requests' (a
    connection dropped mid-answer: ChunkedEncodingError, not the bytes that came), no
    further than APPRISE_ANSWER_LIMIT (past it: a requests error saying so); the body read
    is the response's to read again, as a raw stream over it."""
    import requests

    reader = requests.Response()  # requests' own read, of the same stream
    reader.raw = response.raw
    body = bytearray()
    try:
        for chunk in reader.iter_content(_CHUNK):
            body += chunk
            if len(body) > APPRISE_ANSWER_LIMIT:
                limit = APPRISE_ANSWER_LIMIT // 2**20
                raise requests.RequestException(f"its answer is longer than {limit} MiB: not read")
    except requests.RequestException:
        response.raw.close()  # the rest unread: the connection is not reused
        raise
    response.raw = urllib3.HTTPResponse(io.BytesIO(body), preload_content=False)


# Where Apprise's dingtalk:// takes the robot's signing secret (its URL templates).
SIGNED = "the secret in the URL dingtalk://{secret}@{token}/"
# Where an Apprise robot URL holds what the robot's webhook URL names it by.
KEY_IN_URL = {
    "wecombot": "put the key from it into wecombot://KEY",
    "dingtalk": "put the access_token from it into dingtalk://TOKEN",
}


def robot_refusal(
    scheme: str, answers: list[requests.Response], update: str | None = None
) -> Exception | None:
    """The notify error of a robot's answer that refused the message, or None; ``update``: how
    its key is put in again, when not into the Apprise URL (KEY_IN_URL)."""
    if (robot := ROBOT_ANSWERS.get(scheme)) is None:
        return None
    for response in answers:
        try:
            body = json.loads(response.content)
            code = int(body[robot.code])
        except (ValueError, TypeError, KeyError):  # not the robot's JSON: the status decided
            continue
        if code == 0:
            continue
        if code in robot.rate_limited:
            return over_limit(scheme, code, robot.rate_limited[code])
        if code == robot.busy:
            return TransientNotifyError(f"{scheme} system busy ({code}): try again shortly")
        said = str(body.get(robot.says))[:200]
        return PermanentNotifyError(
            f"{scheme}: the robot refused the message "
            f"({refused(scheme, code, said, SIGNED, update or KEY_IN_URL.get(scheme, ''))})"
        )
    return None


def status_refusal(answers: Answers) -> Exception:
    """Why Apprise did not deliver, read from the last HTTP answer that was not a success, as
    a webhook's answer is read (``http_errors.refusal``): 429 and 503 "try again later" (with
    their Retry-After), 408 and 5xx transient, other 4xx and redirects for good. Without one
    (the connection failed, an answer not read, or a service that says no other ways) Apprise
    does not say why: transient, and bounded retries decide."""
    said = "the Apprise service did not accept the message"
    failed = [answer for answer in answers.read if not 200 <= answer.status_code < 300]
    if not failed:
        return TransientNotifyError(f"{said}: {answers.unread[-1]}" if answers.unread else said)
    return refusal(failed[-1], f"{said}: HTTP {failed[-1].status_code}")


def _notify(sender: apprise.Apprise, message: Message, scheme: str) -> bool:
    """Apprise's send, with the body in the form its services take, cut to a chat robot's
    limit (ROBOT_ROOM; ``scheme``: the service's, ``robot_scheme``) (run in a thread)."""
    import apprise

    body = message.body + (f"\n\n{message.link_to_add}" if message.link_to_add else "")
    title, given, services = message.title, apprise.NotifyFormat.MARKDOWN, list(sender)
    takes = {s.resolve_format(given) for s in services}
    # A service that takes text only (an SMS gateway) is sent the words as written: Apprise
    # passes markdown to it as it is, escapes and all (docs/notifications.md).
    if takes == {apprise.NotifyFormat.TEXT}:
        body, given = markdown_plain(body), apprise.NotifyFormat.TEXT
    # One that takes HTML gets it rendered here: Apprise's Python-Markdown took time quadratic
    # in unmatched "[" or "<" and passed raw HTML and any link through. A title Apprise blends
    # into the body (Telegram's) is rendered as it would have rendered it.
    elif takes == {apprise.NotifyFormat.HTML} and len({s.title_maxlen > 0 for s in services}) == 1:
        body, given = markdown_html(body, breaks=True), apprise.NotifyFormat.HTML
        if title and services[0].title_maxlen <= 0:
            title = markdown_html(title, breaks=True)
    if (room := ROBOT_ROOM.get(scheme)) is not None:
        # Apprise passes a longer message as it is, and counts characters: the robot refused
        # it for good (WeCom's 40058), every day a briefing was long.
        limit, as_json = room

        def fits(kept: str) -> bool:
            sent = f"{title}\r\n{kept}" if title else kept  # the title goes in its body
            size = json.dumps(sent) if as_json else sent  # Apprise's JSON: \uXXXX, 6 bytes
            return len(size.encode()) <= limit

        body = cut_to_fit(body, fits)
    return bool(sender.notify(body=body, title=title, body_format=given))


async def notify_apprise(
    url: str, message: Message, pins: Pins | None = None, update: str | None = None
) -> None:
    """Send through Apprise; ``pins``: where a user's URL may connect (None: the operator's);
    ``update``: how a robot's key is put in again (robot_refusal)."""
    import apprise  # ~25 ms to import: only a send needs it

    sender = apprise.Apprise()
    if not sender.add(url):
        raise PermanentNotifyError("not a valid Apprise URL (see the Apprise URL docs)")
    if len(sender) != 1:  # several in one string: the guard checked one (domain/push.py)
        raise PermanentNotifyError("one Apprise URL a target: add each service on its own")
    scheme = robot_scheme(url, next(iter(sender)))
    # Apprise follows 3xx by itself (and a URL's ?redirect=yes asks it to): the guard checked
    # the host the URL names, not wherever a redirect points.
    for service in sender:
        service.redirects = False
    # A connection still being made is not the send's to close yet (Connections): its wait
    # (Apprise's 4 s, or a URL's own ?cto=) ends with the send's time, not minutes after it
    # (a host that drops the connect's packets).
    send = SEND_CLOCK.get()
    if send is not None and (when := send.deadline.when()) is not None:
        left = max(when - asyncio.get_running_loop().time(), 0.1)
        for service in sender:
            service.socket_connect_timeout = min(service.socket_connect_timeout, left)
    # Apprise is synchronous: keep it off the event loop (the thread runs in a copy of this
    # context, with the pins, the list its answers are kept in and its connections).
    _keep_answers()
    answers = Answers()
    connections = Connections()
    token, kept = _PINNED.set(pins), _ANSWERS.set(answers)
    held = _CONNECTIONS.set(connections)
    try:
        ok = await asyncio.to_thread(_notify, sender, message, scheme)
    except BaseException:
        # Cut off (the send's deadline, a cancelled activity): the thread goes on, so its
        # connections are closed under it, and it ends at its next read.
        connections.cut()
        raise
    finally:
        connections.close()
        _PINNED.reset(token)
        _ANSWERS.reset(kept)
        _CONNECTIONS.reset(held)
    if pins is not None and pins.refused:  # a host a service's answer named, refused
        raise PermanentNotifyError(f"the Apprise service led to a {pins.refused[0]}")
    if (refused := robot_refusal(scheme, answers.read, update)) is not None:
        raise refused
    if not ok:
        raise status_refusal(answers)


@dataclass
class AppriseChannel:
    """A user's Apprise URL; those posting to a host the user names pass the guard first."""

    # Apprise connects by itself (requests): the check runs right before the send, and the
    # address it checked is pinned for it (notify_apprise).

    name = "apprise"

    secrets: SecretResolver
    guard: DestinationGuard
    # The robots' windows (DingTalk's, WeCom's): a robot reached through Apprise keeps the
    # limit the dingtalk and wecom channels keep for it, one robot however it is named.
    limiter: RateLimiter | None = None

    async def aclose(self) -> None:
        """Let the slots of sends cut off go back (a worker's stop)."""
        if self.limiter is not None:
            await self.limiter.aclose()

    async def send(self, user: str, message: Message, target: str, **unused: object) -> str | None:
        url = self.secrets.resolve(target)
        resolved = Target(type="apprise", target=url)
        if (problem := target_problem(resolved)) is not None:
            warn_if_disabled(resolved)  # a secret's URL: entry saw only secret:NAME
            raise PermanentNotifyError(str(problem))
        aimed = aimed_url(resolved)
        pins = Pins({}, self.guard)
        if aimed is not None:
            checked = await checked_destination(self.guard, aimed)
            if checked.address is not None:
                pins.addresses[url_host(aimed).lower()] = checked.address
        limiter, robot = self.limiter, robot_of(url)
        # A burst through dingtalk:// went out at once: past DingTalk's 20 a minute the robot
        # is held off ten minutes, for the dingtalk targets on it too.
        if limiter is not None and robot is not None:
            await limiter.acquire(robot)
        try:
            await notify_apprise(url, message, pins, held_in_secret(target))
        except DeferredNotifyError as over:  # over its limit: held as long as it said
            if over.retry_after and limiter is not None and robot is not None:
                await limiter.hold(robot, over.retry_after)
            raise
        return None


def robot_scheme(url: str, plugin: Any) -> str:
    """The scheme of the service Apprise reads ``url`` as (its ``plugin``): a vendor's own
    https robot URL is its robot's (WeCom's webhook URL is wecombot, Lark's lark), as a send
    of it is answered; else the URL's scheme."""
    scheme = url.partition("://")[0].lower()
    if scheme not in ("http", "https") or plugin is None:
        return scheme
    protocols = plugin.secure_protocol
    for protocol in (protocols,) if isinstance(protocols, str) else protocols:
        if protocol in ROBOT_ANSWERS:
            return str(protocol)
    return scheme


def robot_of(url: str) -> str | None:
    """The key of the chat robot an Apprise URL posts to (``dingtalk://``'s token,
    ``wecombot://``'s key, either robot's https URL), as the dingtalk and wecom channels name
    it; None for any other."""
    if url.partition("://")[0].lower() not in ("dingtalk", "wecombot", "http", "https"):
        return None
    plugin = apprise_plugin(url)
    scheme = robot_scheme(url, plugin)
    if scheme not in ("dingtalk", "wecombot"):
        return None
    key = getattr(plugin, "token" if scheme == "dingtalk" else "key", None)
    return key if isinstance(key, str) and key else None


@dataclass(repr=False)  # the gateway template may hold its credentials
class SmsChannel:
    """SMS through an Apprise SMS gateway URL template containing `{phone}`."""

    name = "sms"

    template: str | None
    secrets: SecretResolver

    async def send(self, user: str, message: Message, target: str, **unused: object) -> str | None:
        if not self.template:
            raise PermanentNotifyError(
                "SMS is not configured: set AMBIENT_SMS_APPRISE_URL to an Apprise SMS URL with "
                "{phone}, e.g. twilio://SID:TOKEN@+15550001111/{phone}"
            )
        # The number as accepted at entry, without its spaces, brackets, dots and dashes.
        phone = PHONE_JUNK.sub("", target)
        url = self.secrets.resolve(self.template).replace("{phone}", phone.lstrip("+"))
        short = message.model_copy(update={"body": message.body[:300]})
        await notify_apprise(url, short)
        return None
