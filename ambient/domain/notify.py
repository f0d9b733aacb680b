"""Notification messages and targets as they cross workflow and activity boundaries."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, get_args
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ambient.domain.apprise_urls import APPRISE_HTTP, apprise_http_url
from ambient.domain.configs import UserConfig, reading_stored
from ambient.domain.users import PHONE_JUNK
from ambient.render import markdown_literal

# One try of the notify activity (its start-to-close, as every workflow runs it); a
# deliver-later run's last try ends at most this long after its give-up.
NOTIFY_TIMEOUT = timedelta(minutes=2)
# The tries of a side effect's activity (a message, a write; the workflows' NOTIFY_RETRY), and
# so of notify_given_up, where the server does not send the retry policy with the task (the
# time-skipping test server).
NOTIFY_TRIES = 5


class NotificationKind(StrEnum):
    BRIEFING = "briefing"
    WATCH = "watch"
    REMEDIATION = "remediation"
    SYSTEM = "system"


class Attachment(BaseModel):
    filename: str
    content_type: str = "application/octet-stream"
    # Base64 so the model stays JSON-safe inside workflow history.
    content_b64: str


class Wording(BaseModel):
    """A message's title and body in another language (no body: the same body)."""

    title: str
    body: str | None = None
    # Parts the body says where it names them (REASON, RULES), put in the reader's words by
    # the activity that sends it (workflow code reads no catalog; ``in_reader_words``), else
    # as written: a check's stored error (English), a threshold watch's lines as its summary
    # says them ("above 100 any below 10").
    reason: str | None = None
    rules: str | None = None

    def said_body(self) -> str | None:
        """The body with its parts said in it (a stored error as literal markdown)."""
        body = self.body
        if body is not None and self.reason is not None:
            body = body.replace(REASON, markdown_literal(self.reason))
        if body is not None and self.rules is not None:
            body = body.replace(RULES, self.rules)
        return body


# Where a message's words say its deadline (Message.deadline).
DEADLINE = "{deadline}"
# Where a wording's body says a check's stored error and a threshold watch's lines (Wording).
REASON, RULES = "{reason}", "{rules}"


def deadline_in(when: datetime, zone: str, language: str) -> str:
    """``when`` as a reader in ``zone`` reads it: the wall time there with its zone and
    offset, "2026-12-01 16:30 (Asia/Shanghai, UTC+08:00)" (zh: full-width brackets), or
    "… UTC" in UTC. A zone not known here (a stored name since dropped) is said as UTC."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, tz = "UTC", ZoneInfo("UTC")
    local = when.astimezone(tz)
    wall = f"{local:%Y-%m-%d %H:%M}"
    offset = f"{local:%z}"
    if not local.utcoffset():
        return f"{wall}（UTC）" if language == "zh" else f"{wall} UTC"
    utc = f"UTC{offset[:3]}:{offset[3:]}"
    return f"{wall}（{zone}，{utc}）" if language == "zh" else f"{wall} ({zone}, {utc})"


class Message(BaseModel):
    """One notification: a title, a markdown body and optional richer parts."""

    title: str
    body: str = Field(description="Markdown text; channels without markdown get it as plain text")
    html: str | None = None
    kind: NotificationKind = NotificationKind.SYSTEM
    link: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    # The same message in Chinese, when its builder wrote it: the notify activity sends it to
    # a recipient who reads Chinese (the workflow does not know who reads it). A message
    # without (an older payload, a briefing written in its own language) is sent as written.
    zh: Wording | None = None
    # A time to act by, said where its title or body says DEADLINE, in the recipient's time
    # zone (the workflow that writes it does not know the zone). An older payload has none:
    # its time is written in its words (in UTC).
    deadline: datetime | None = None
    # The message where no language model is configured, when it sends its reader to the
    # assistant (which cannot chat then): the notify activity, which knows, sends it instead.
    no_model: Message | None = None
    # The message for a reader with no way to speak to the product (no 小智 device, 接入点 or
    # voice token), when it names the voice as a way to answer: the notify activity, which
    # knows the reader, sends it instead.
    no_voice: Message | None = None

    def said_in(self, language: str, zone: str = "UTC", *, model: bool = True) -> Message:
        """This message in ``language`` (zh or en; as written when it has no such wording), its
        deadline told in ``zone`` (an IANA name); with no ``model``, its ``no_model`` words."""
        if not model and self.no_model is not None:
            return self.no_model.said_in(language, zone)
        alternatives = {"no_model": None, "no_voice": None}
        said = self.model_copy(update=alternatives) if self.no_model or self.no_voice else self
        if language == "zh" and self.zh is not None:
            update = {"title": self.zh.title, "body": self.zh.said_body() or self.body, "zh": None}
            said = said.model_copy(update=update)
        if self.deadline is None:
            return said
        when = deadline_in(self.deadline, zone, language)
        told = {"title": said.title.replace(DEADLINE, when), "deadline": None}
        return said.model_copy(update={**told, "body": said.body.replace(DEADLINE, when)})

    def linked_under(self, pages: str) -> Message:
        """This message with its link to a page ("/app/…") under ``pages``, the web pages'
        address (a workflow knows the page, not where it is served)."""
        if not (self.link or "").startswith("/"):
            return self
        return self.model_copy(update={"link": f"{pages}{self.link}"})

    @property
    def link_to_add(self) -> str | None:
        """The link for a channel to add after the body: none when the body already carries it
        (a briefing's summary ends with its report link)."""
        return self.link if self.link and self.link not in self.body else None


# The most targets one list holds (a push config's channels, a task's extra targets).
MAX_TARGETS = 20
# Hex digits of the hash a delivery key past its column ends with (`delivery_key`): 128 bits,
# short enough to keep a long request key whole before it.
KEY_HASH = 32

# A delivery's error made by the product, not by its receiver (a bug, the app's database):
# tagged where it is made, after its "permanent: " or "transient: ", so that a member is not
# shown a driver's text as their channel's failure (`ambient.briefing.unprepared`).
INTERNAL_ERROR = "internal error: "


def made_here(error: str | None) -> bool:
    """Whether an error is the product's own (`INTERNAL_ERROR`): its text an administrator's."""
    return INTERNAL_ERROR in (error or "")


ChannelType = Literal["email", "wecom", "dingtalk", "webhook", "apprise", "inbox", "sms"]
CHANNEL_TYPES = tuple(sorted(get_args(ChannelType)))


# Lenient about its forms on purpose: workflow inputs recorded before a rule was added must
# still load; the rules are checked where targets enter (ambient.clients.notify.targets) and
# again at send. An unknown field is refused (a misspelled "taget" would silently send to
# the default), except when a stored config is read back (ambient.domain.configs).
class Target(UserConfig):
    """Where a message goes, the same shape in tasks and push config ("channel" is accepted
    for "type")."""

    model_config = ConfigDict(populate_by_name=True)

    type: str = Field(
        validation_alias=AliasChoices("type", "channel"),
        description="one of: " + ", ".join(CHANNEL_TYPES),
    )
    target: str = Field(
        default="",
        description=(
            "email: an address (empty: your configured one); sms: a phone number in "
            "international form (+8613800000000); wecom: the robot key or its webhook URL; "
            "dingtalk: ACCESS_TOKEN[#SIGN_SECRET] or its robot URL; webhook: an http(s) URL; "
            "apprise: an Apprise URL; any of these may be secret:NAME; inbox: empty (yourself)"
        ),
    )
    kinds: list[NotificationKind] | None = Field(
        default=None, description="briefing, watch, remediation, system (all when omitted)"
    )

    @field_validator("kinds")
    @classmethod
    def _some_kinds(
        cls, value: list[NotificationKind] | None, info: ValidationInfo
    ) -> list[NotificationKind] | None:
        # An empty list wants nothing: the target would silently never be sent to.
        if value == [] and not reading_stored(info):
            raise ValueError(
                "an empty list sends nothing; name the kinds (briefing, watch, remediation, "
                "system) or leave kinds out for all of them"
            )
        return value

    def wants(self, kind: NotificationKind) -> bool:
        return self.kinds is None or kind in self.kinds

    def same_destination(self, other: Target, resolve: Callable[[str], str] = str) -> bool:
        """Both reach one place: a phone number however written, an email address in any case
        or with its domain in either script, a robot by its URL or key, a webhook URL with the
        host in any case or its default port, a robot, webhook or Apprise URL by the
        `secret:NAME` holding it (``resolve``d)."""
        return self.type == other.type and self._place(resolve) == other._place(resolve)

    def _place(self, resolve: Callable[[str], str]) -> object:
        if self.type == "sms":
            return PHONE_JUNK.sub("", self.target)
        if self.type == "email":
            return mailbox(self.target)
        if self.type in ROBOT_KEYS:
            return robot_address(self.target, self.type, resolve)
        if self.type == "webhook":
            return web_address(resolve(self.target))
        return resolve(self.target) if self.type == "apprise" else self.target


def mailbox(address: str) -> str:
    """The mailbox ``address`` reaches, one text however it is written: the domain in ASCII
    (``例子.中国`` is ``xn--fsqu00a.xn--fiqs8s``, as the mail is sent) and lower case, the
    local part case-folded (mail providers take ``Alice`` and ``alice`` as one)."""
    try:
        checked = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError:
        return address.strip()  # refused where it was saved and at the send
    return f"{checked.local_part.casefold()}@{checked.ascii_domain.lower()}"


# "Name <address>", the name perhaps in quotes (as mail clients write it), or the address alone.
NAMED = re.compile(r"(?P<name>.*?)\s*<(?P<address>[^<>]*)>", re.DOTALL)
# A host name of a relay's own network (localhost, mail.local): email_validator refuses these
# as no Internet domain, which a private relay takes.
HOST_NAME = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?",
    re.IGNORECASE,
)


def sender_mailbox(value: str) -> tuple[str, str]:
    """The display name (``""`` when none) and the address of a sender written as people write
    one: ``Ops, Beijing <ops@example.com>``, ``"Ops" <ops@example.com>`` or the address
    alone. The name is kept as written, commas, colons and brackets included (the From header
    quotes or encodes it); a value holding no one address raises ``ValueError`` saying why."""
    text = value.strip()
    name, address = "", text
    if (named := NAMED.fullmatch(text)) is not None:
        name, address = " ".join(named["name"].split()), named["address"].strip()
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1]).strip()
    if not address:
        raise ValueError("no address")
    try:
        validate_email(address, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError as exc:
        local, at, host = address.rpartition("@")
        if not (at and HOST_NAME.fullmatch(host) and _local_part(local)):
            raise ValueError(f"{address!r} is not an email address ({exc})") from None
    return name, address


def _local_part(local: str) -> bool:
    """Whether ``local`` is the part of an address before its ``@``, as email_validator reads it."""
    try:
        validate_email(f"{local}@example.com", check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


DEFAULT_PORTS = {"http": 80, "https": 443}


def web_address(url: str) -> str:
    """``url`` as the place it posts to: its scheme and host in lower case, its scheme's
    default port, an empty path and the fragment (never sent) left out
    (``https://Hooks.example.com:443`` is ``https://hooks.example.com/``); its path and query
    as written (a server may tell their case)."""
    parts = urlsplit(url.strip())
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not one: refused at the send
        return url
    scheme = parts.scheme.lower()
    if host is None or scheme not in DEFAULT_PORTS:
        return url
    user, at, _ = parts.netloc.rpartition("@")
    host = f"[{host}]" if ":" in host else host
    shown_port = "" if port in (None, DEFAULT_PORTS[scheme]) else f":{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{user}{at}{host}{shown_port}{parts.path or '/'}{query}"


ROBOT_KEYS = {"wecom": "key", "dingtalk": "access_token"}  # the key's parameter in robot URLs
# A vendor's own parameters in a pasted robot URL, dropped (the endpoint is built from the key
# alone): DingTalk's request signature, stale an hour on (each message is signed here with the
# #SEC secret), and WeCom's debug. Dropped where a URL is read, so the check, the dedup and the
# send read it alike (kept, `…&debug=1` and the key were two destinations).
ROBOT_URL_DROPPED = {"wecom": {"debug"}, "dingtalk": {"timestamp", "sign"}}


def is_url(target: str) -> bool:
    """Whether a robot target is its URL (`http://`, `https://`, the scheme in any case)."""
    return target[:8].lower().startswith(("http://", "https://"))


def robot_address(
    target: str, kind: str, resolve: Callable[[str], str] = str
) -> tuple[str, dict[str, list[str]]]:
    """(key, options) of a ``kind`` robot's target: the key, `secret:NAME` (``resolve``d) or
    the robot's URL, each optionally followed by `?options`; a URL's fragment (#SIGN_SECRET) is
    kept, its vendor's own parameters (ROBOT_URL_DROPPED) are not."""
    key_param = ROBOT_KEYS[kind]
    if is_url(target):
        reference, options = target, ""
    else:
        reference, _, options = target.partition("?")
    value = resolve(reference)
    if is_url(value):
        parts = urlsplit(value)
        query = parse_qs(parts.query)
        key = (query.pop(key_param, [""]) or [""])[0]
        # `URL#SIGN_SECRET?at=...`: the options after the secret, as in the key form (read as
        # part of the secret, every message was signed wrong).
        secret, _, after = parts.fragment.partition("?")
        if secret:
            key += "#" + secret
        options = "&".join(filter(None, (after, options)))
    else:
        key, _, inline = value.partition("?")
        query = parse_qs(inline)
    for name, values in parse_qs(options).items():
        query.setdefault(name, []).extend(values)
    for name in ROBOT_URL_DROPPED[kind] if is_url(value) else ():
        query.pop(name, None)
    return key, query


# A delivery row's provider_id while its message is handed to the receiver (`RowPosts.handing`):
# found by a later try, the one that handed it died before the receiver's answer was recorded.
HANDING = "handing"
# That try's delivery, failed for good: the receiver may have it, and another copy is worse.
HANDED_UNANSWERED = (
    "permanent: the worker sending it died after handing the message to the receiver, before "
    "its answer: it may have been delivered; not sent again"
)
# A try cancelled (its caller's cancel: a briefing deleted) after handing the message over.
HANDED_CANCELLED = (
    "permanent: its send was cancelled after the message was handed to the receiver, before "
    "its answer: it may have been delivered; not sent again"
)


def handed_ended(provider_id: str | None, cancelled: bool = False) -> str | None:
    """How a delivery left in flight ends when given up if its try was handing the message
    over (``HANDING``): failed for good, it may have been delivered, not sent again (another
    copy is worse). None for any other: the give-up fails it for now (`activities.deliveries.
    give_up`), and a briefing send's answer says so (`ambient.briefing.sent`)."""
    if provider_id != HANDING:
        return None
    return HANDED_CANCELLED if cancelled else HANDED_UNANSWERED


class DeliveryStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    # Quiet hours: recorded, not sent (the inbox copy still lands).
    SUPPRESSED = "suppressed"
    # The receiver said "try again later": handed to a deliver-later run (ambient.domain.
    # deliver_later), which retries it; ``error`` is the receiver's answer.
    DEFERRED = "deferred"


class Delivery(BaseModel):
    channel: str
    target: str
    status: DeliveryStatus
    provider_id: str | None = None
    error: str | None = None
    # A failure whose receiver said "try again later": the seconds it asked to wait (0: it
    # named none). The notify activity's own (never in a result: excluded).
    later: float | None = Field(default=None, exclude=True)


class NotifyRequest(BaseModel):
    user: str
    message: Message
    targets: list[Target]
    # A business key (workflow id + step) so a retried or replayed send is recognised.
    idempotency_key: str
    # The task the notification is about, shown with its deliveries and failure events.
    task: str | None = None
    # The attempts the caller's retry policy gives the notify activity (None: unbounded), so
    # the last one's failures say they are final.
    attempts: int | None = None
    # A give-up after the caller cancelled the send and waited for its try to end: the rows
    # that try held are nobody's now, given up under their lease (`notify_given_up`).
    cancelled: bool = False


class NotifyResult(BaseModel):
    deliveries: list[Delivery]

    @property
    def failures(self) -> list[Delivery]:
        """Deliveries that failed for good (the activity returns them rather than raising)."""
        return [d for d in self.deliveries if d.status is DeliveryStatus.FAILED]

    def failure_lines(self) -> list[str]:
        """Each failure for good as its events and errors say it: ``channel: error``."""
        return [f"{d.channel}: {d.error}" for d in self.failures]


# A target as `redact_target` shows it (a row's, shown again): a URL whose token it hid, with
# or without its fingerprint (rows written before fingerprints were shown have none).
_REDACTED = re.compile(r"[^:/?#]+://(?:…|[^/?#@]*(?:/…|(?:/[^?#]*)?\?…))(?:#[0-9a-f]{4})?")


def target_fingerprint(target: str) -> str:
    """Four hex characters of the whole target's SHA-256: two targets whose shown forms are
    alike (two Slack webhooks) are told apart, the same target always alike; 16 bits, too few
    to tell a token by."""
    return hashlib.sha256(target.encode()).hexdigest()[:4]


def redact_target(channel: str, target: str) -> str:
    """A target as results, rows, events, logs and user listings show it: no tokens, keys or
    queries (URLs lose user info, query and fragment, and a webhook's or Apprise URL's path,
    and end with `#` and `target_fingerprint` where they lost any; robot keys keep four
    characters; the rest as is). A target already shown so is shown as it is."""
    if not target or target.startswith("secret:") or channel in ("email", "sms", "inbox"):
        return target
    if "://" in target:
        if _REDACTED.fullmatch(target):
            return target
        shown = _url_shown(channel, target)
        return shown if shown == target else f"{shown}#{target_fingerprint(target)}"
    return target[:4] + "…"


def _url_shown(channel: str, target: str) -> str:
    scheme, _, rest = target.partition("://")
    end = len(re.split(r"[/?#]", rest, maxsplit=1)[0])  # a query may follow the host
    authority, tail = rest[:end].rpartition("@")[2], rest[end:]
    if channel == "apprise" and scheme.lower() not in ("http", "https"):
        # Apprise URLs carry tokens in the host (tgram://BOT_TOKEN, notica://TOKEN) and the
        # path (discord://ID/TOKEN, gotify://host/TOKEN): only a self-hosted service's host
        # is shown.
        if scheme.lower() in APPRISE_HTTP and apprise_http_url(target):
            return f"{scheme}://{authority}" + ("/…" if tail.strip("/") else "")
        return f"{scheme}://…"
    path = re.split(r"[?#]", tail, maxsplit=1)[0]
    if channel in ("webhook", "apprise") and path.strip("/"):
        # A webhook's path may be its token (Discord's /api/webhooks/ID/TOKEN, Slack's
        # /services/T/B/SECRET, Feishu's /hook/TOKEN), in Apprise's https forms too: the
        # host is kept. A robot URL's path is its vendor's (its key is in the query).
        return f"{scheme}://{authority}/…"
    return f"{scheme}://{authority}{path}" + ("?…" if path != tail else "")
