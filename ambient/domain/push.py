"""Per-user push configuration and the rules every notification target follows.

One target shape everywhere (`ambient.domain.notify.Target`). The rules here need nothing
but the target itself; who may use an address (inbox of another user, server secrets,
allow-listed networks) is decided in `ambient.clients.notify.targets`.
"""

from __future__ import annotations

import re
from datetime import time
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ambient.clients.guard import NOT_A_NAME, RefusedDestinationError, url_host
from ambient.domain.apprise_urls import (
    APPRISE_HOSTED,
    APPRISE_HTTP,
    apprise_disabled,
    apprise_http_url,
    apprise_plugin,
)
from ambient.domain.configs import STORED, M, UserConfig, reading_stored
from ambient.domain.field_errors import field_problems
from ambient.domain.notify import (
    CHANNEL_TYPES,
    MAX_TARGETS,
    ROBOT_KEYS,
    ROBOT_URL_DROPPED,
    NotificationKind,
    Target,
    is_url,
)
from ambient.domain.users import HHMM, phone_problem
from ambient.refusals import Refusal

ALL_KINDS = [NotificationKind.BRIEFING, NotificationKind.WATCH, NotificationKind.REMEDIATION]
# What a push channel's kinds say (every schema that reads one).
CHANNEL_KINDS = "briefing, watch, remediation, system (briefing, watch, remediation when omitted)"
MAX_TARGET_LENGTH = 2048
SECRET_PREFIX = "secret:"
SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
INBOX_NAME = re.compile(r"[A-Za-z0-9_.@-]{0,63}")  # an inbox target: a user's name
# What after `secret:` may be a credential pasted, not a name: a UUID (a WeCom or Feishu key) or
# a run of 32 letters or digits (a DingTalk access_token, 64 hex digits).
KEY_SHAPED = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|[A-Za-z0-9]{32}")
ROBOT_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
# DingTalk's signing secret as its robot's security settings show it: SEC and 64 hex digits
# (matched from 32 on: a secret cut short is one still).
SIGN_SECRET = re.compile(r"SEC[0-9a-fA-F]{32}")
DING_ADDRESS = re.compile(r"[A-Za-z0-9_-]{1,128}(#[A-Za-z0-9_+/=-]{1,256})?")
# The host of a vendor's robot URLs: a message goes with the key to the configured base URL
# (AMBIENT_WECOM_BASE_URL, AMBIENT_DINGTALK_BASE_URL), never to a pasted URL's own host.
ROBOT_HOSTS = {"wecom": "qyapi.weixin.qq.com", "dingtalk": "oapi.dingtalk.com"}
# Options a robot target may carry after `?` (mentions), by channel type.
ROBOT_OPTIONS = {"wecom": {"mentioned", "mobiles"}, "dingtalk": {"at"}}
# Apprise schemes with local effects on the worker machine: never a user's target.
APPRISE_LOCAL = {
    "windows", "macosx", "dbus", "kde", "qt", "glib", "gnome", "syslog", "rsyslog", "file",
}  # fmt: skip


def target_problem(target: Target) -> Refusal | None:
    """What is wrong with a target's form, or None; the text names the accepted forms."""
    kind, value = target.type, target.target.strip()
    if kind not in CHANNEL_TYPES:
        return _unknown_type(kind)
    if len(value) > MAX_TARGET_LENGTH:
        return Refusal("target longer than %(max)s characters", max=MAX_TARGET_LENGTH)
    if value.startswith(SECRET_PREFIX) and kind not in ("email", "sms"):  # these resolve none
        return _secret_problem(kind, value)
    if kind == "inbox":
        return None if INBOX_NAME.fullmatch(value) else Refusal("not a user name")
    if kind == "email":
        return None if not value else _email_problem(value)
    if kind == "sms":
        return phone_problem(value) if value else None
    if not value:
        return Refusal(
            "a %(kind)s channel needs a target (address, URL, key or secret:NAME)", kind=kind
        )
    if kind == "webhook":
        return _url_problem(value)
    if kind == "apprise":
        return _apprise_problem(value)
    return _robot_problem(kind, value)


def secret_shown(text: str) -> str:
    """What follows `secret:` as a refusal or a 422 says it: a secret name not shaped like a
    key (KEY_SHAPED) whole, its ?options as `?…`; anything else (a key, a token#SEC…) by its
    first 4 characters."""
    name, sep, _ = text.partition("?")
    if SECRET_NAME.fullmatch(name) and not KEY_SHAPED.search(name):
        return name + ("?…" if sep else "")
    return text if len(text) <= 4 else text[:4] + "…"


def _unknown_type(kind: str) -> Refusal:
    known = ", ".join(CHANNEL_TYPES)
    return Refusal("unknown channel type %(kind)s; known: %(known)s", kind=repr(kind), known=known)


def _secret_problem(kind: str, value: str) -> Refusal | None:
    name, sep, options = value[len(SECRET_PREFIX) :].partition("?")
    if not SECRET_NAME.fullmatch(name):
        # Said by its first characters: what follows `secret:` may be the credential itself.
        shown = repr(secret_shown(name))
        return Refusal("not a secret name: %(name)s (letters, digits, _ . -)", name=shown)
    if sep and kind not in ROBOT_OPTIONS:
        # The name must be exact: a suffix would be glued onto the secret's value.
        return Refusal(
            "secret:%(name)s takes no ?options on a %(kind)s target (use the exact name)",
            name=secret_shown(name),
            kind=kind,
        )
    return _options_problem(kind, options) if sep else None


def _options_problem(kind: str, query: str) -> Refusal | None:
    # A part is said by its name, a long one by its first characters: a token or the signing
    # secret pasted where options go must not be quoted into a refusal, a log or an event.
    if problem := _secret_pasted(kind, query.split("&")):
        return problem
    for name, eq, _ in (pair.partition("=") for pair in query.split("&") if pair):
        if not (name and eq):
            return Refusal("options after ? are not name=value pairs: %(part)s", part=_shown(name))
    options = parse_qs(query)
    if unknown := set(options) - ROBOT_OPTIONS[kind]:
        allowed = ", ".join(sorted(ROBOT_OPTIONS[kind]))
        return Refusal(
            "unknown %(kind)s option %(option)s; allowed: %(allowed)s",
            kind=kind,
            option=_shown(sorted(unknown)[0]),
            allowed=allowed,
        )
    for values in options.values():
        for item in (i for v in values for i in v.split(",") if i):
            if item not in ("all", "@all") and not re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", item):
                return Refusal(
                    "not a user id or phone number to mention: %(item)s", item=_shown(item)
                )
    return None


def _shown(part: str) -> str:
    return repr(part if len(part) <= 16 else part[:4] + "…")


def _email_problem(value: str) -> Refusal | None:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        # An address copied from a mail client comes with its name (`张三 <zhangsan@...>`):
        # the validator's reason asked to quote the name, and quoted it refused it too.
        name, address = parseaddr(value)
        if name and address and _email_problem(address) is None:
            return Refusal(
                "an email target is the address alone, without a name: %(address)s",
                address=repr(address),
            )
        return Refusal(
            "not an email address: %(value)s (%(reason)s)", value=repr(value), reason=str(exc)
        )
    return None


def _url_problem(value: str) -> Refusal | None:
    try:
        url_host(value)
    except RefusedDestinationError as exc:
        return exc
    return None


# Apprise reads several URLs out of one string, split at commas or white space before another
# scheme:// (its parse_urls): the guard checks the first one's host, so a target holds one URL.
_SECOND_URL = re.compile(r"[\s,]+[a-z0-9]{1,12}?://", re.IGNORECASE)


def _apprise_problem(value: str) -> Refusal | None:
    if _SECOND_URL.search(value):
        return Refusal(
            "one Apprise URL a target: this one holds another after a comma or a space; "
            "add each service as a target of its own"
        )
    scheme, sep, _ = value.partition("://")
    scheme = scheme.lower()
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        return Refusal("not a valid Apprise URL (scheme://...; see the Apprise URL docs)")
    if scheme in ("http", "https"):
        return _url_problem(value) or _native(value)
    if scheme in APPRISE_LOCAL:
        return Refusal(
            "Apprise %(scheme)s:// acts on the server itself and is not allowed", scheme=scheme
        )
    if scheme in APPRISE_HOSTED | APPRISE_HTTP and apprise_disabled(scheme):  # before it is read
        # The operator's to fix: logged where targets are checked for use (TargetPolicy).
        return Refusal(
            "Apprise %(scheme)s:// is not available on this server: use another service, or "
            "ask the operator to install what it needs",
            scheme=scheme,
        )
    if scheme in APPRISE_HTTP and (named := _unicode_host(value)) is not None:
        return named
    if scheme in APPRISE_HTTP and (aimed := apprise_http_url(value)):
        return _url_problem(aimed) or _unread(scheme, value)
    if scheme not in APPRISE_HOSTED | APPRISE_HTTP:
        # mailto, mqtt, irc, xmpp, smpp, ... reach a host of the URL's choosing by protocols the
        # destination guard cannot check.
        return Refusal(
            "Apprise %(scheme)s:// is not supported: it can reach a host the server cannot "
            "check; use a hosted service (tgram://, discord://, slack://, ...), a self-hosted "
            "HTTP one (ntfy://, gotify://, json://, ...) or a webhook target",
            scheme=scheme,
        )
    return _unread(scheme, value)


def _native(value: str) -> Refusal | None:
    """An http(s) Apprise URL is one of a service Apprise knows by its own address (Slack's,
    Discord's, WeCom's webhook URLs): any other was saved, and every send of it refused."""
    if apprise_plugin(value) is None:
        return Refusal(
            "Apprise does not read this URL as a service it knows (it reads some vendors' "
            "own webhook URLs, Slack's, Discord's or WeCom's; not Feishu's, DingTalk's or "
            "Telegram's): write it in the service's Apprise form (feishu://TOKEN, "
            "dingtalk://TOKEN, ...), or use a webhook target for a plain HTTP endpoint"
        )
    return _unread("https", value)


def _unicode_host(value: str) -> Refusal | None:
    """A self-hosted service's URL naming its host in other than ASCII (例子.测试): Apprise
    reads no host in it (ntfys://例子.测试/topic went to the public ntfy.sh), so the guard
    checked none. Its ASCII name (IDNA, as a connection names it) is said, to be written."""
    try:
        host = urlsplit(value).hostname or ""
    except ValueError:
        return None  # said as a URL Apprise cannot read
    if host.isascii():
        return None
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:
        return RefusedDestinationError(NOT_A_NAME)
    return Refusal(
        "Apprise does not read %(host)s as a host name (it would send elsewhere): write its "
        "ASCII name %(name)s instead",
        host=repr(host),
        name=name,
    )


def _unread(scheme: str, value: str) -> Refusal | None:
    # Its token is not said back: the refusal may be logged.
    if (plugin := apprise_plugin(value)) is not None:
        # A URL of several destinations (ntfy://host/a/b, tgram://bot/chat1/chat2) is sent to
        # all of them by each try: one that failed for now had each retry post to the others
        # again. Apprise counts a plugin's requests with its own retries in (its __len__).
        destinations = len(plugin) // (max(int(getattr(plugin, "retry", 0) or 0), 0) + 1)
        if destinations > 1:
            return Refusal(
                "one destination an Apprise target: this %(scheme)s:// URL names %(count)s, "
                "and a retry after one failed would send to the others again; add each "
                "destination as a target of its own",
                scheme=scheme,
                count=destinations,
            )
        return None
    return Refusal(
        "Apprise cannot read this %(scheme)s:// URL (a token or ID missing or of the wrong "
        "form): write it as that service's page in the Apprise docs shows",
        scheme=scheme,
    )


def _robot_problem(kind: str, value: str) -> Refusal | None:
    pattern = ROBOT_KEY if kind == "wecom" else DING_ADDRESS
    if is_url(value):
        return _robot_url_problem(kind, value, pattern)
    address, sep, options = value.partition("?")
    if kind == "dingtalk" and "&" in address.partition("#")[2]:
        return _after_secret("TOKEN")
    if not pattern.fullmatch(address):
        form = Refusal("the robot key") if kind == "wecom" else "ACCESS_TOKEN[#SIGN_SECRET]"
        return Refusal(
            "not a %(kind)s target: give %(form)s, the robot URL or secret:NAME",
            kind=kind,
            form=form,
        )
    return _options_problem(kind, options) if sep else None


def _robot_url_problem(kind: str, value: str, pattern: re.Pattern[str]) -> Refusal | None:
    # The robot's URL: its key and the options after it (`&mentioned=...`) are checked as in
    # the key form; unchecked, a misspelled option was saved and silently did nothing.
    parts = urlsplit(value)
    param = ROBOT_KEYS[kind]
    if (parts.hostname or "").lower() != ROBOT_HOSTS[kind]:
        # A self-hosted or private gateway's URL was taken, and its key sent to the vendor.
        return Refusal(
            "a %(kind)s robot URL is on %(host)s: messages go with its key to the address the "
            "operator set (%(setting)s), never to another host; give the robot's URL from "
            "%(kind)s or its key",
            kind=kind,
            host=ROBOT_HOSTS[kind],
            setting=f"AMBIENT_{kind.upper()}_BASE_URL",
        )
    if not (keys := parse_qs(parts.query).get(param)):
        return Refusal(
            "a %(kind)s robot URL needs its %(param)s= parameter", kind=kind, param=param
        )
    secret, _, after = parts.fragment.partition("?")  # as robot_address reads it
    if kind == "wecom" and parts.fragment:
        return Refusal("a wecom robot URL ends with its key and options: remove the # and after")
    if "&" in secret:
        return _after_secret("…")
    if not pattern.fullmatch(keys[0] + (f"#{secret}" if secret else "")):
        # Not said back: it is a credential.
        form = Refusal("the robot key") if kind == "wecom" else "ACCESS_TOKEN[#SIGN_SECRET]"
        return Refusal(
            "the %(param)s= of this %(kind)s robot URL is not %(form)s (options go after "
            "it with &, e.g. &%(option)s=...)",
            param=param,
            kind=kind,
            form=form,
            option=sorted(ROBOT_OPTIONS[kind])[0],
        )
    pairs = [*parts.query.split("&"), *after.split("&")]
    if problem := _secret_pasted(kind, pairs):  # a dropped sign=SEC… too: every send failed
        return problem
    dropped = ROBOT_URL_DROPPED[kind] | {param}
    options = "&".join(p for p in pairs if p and p.partition("=")[0] not in dropped)
    return _options_problem(kind, options) if options else None


def _after_secret(start: str) -> Refusal:
    # The hint in the form the target was written: `TOKEN#SEC…` or the URL's `…#SEC…`.
    return Refusal(
        "options after the #SIGN_SECRET go after ?, not &: %(start)s#SEC…?at=all", start=start
    )


def _secret_pasted(kind: str, pairs: list[str]) -> Refusal | None:
    # DingTalk's signing secret as an option's name or value, or in a list of mentions, as
    # written or decoded (`%2CSEC…`, `+SEC…`); by its shape, so a user id that starts with SEC
    # (`at=SECURITY01`) is still a mention.
    if kind != "dingtalk":
        return None
    for name, _, value in (pair.partition("=") for pair in pairs):
        parts = (name, *value.split(","), *re.split(r"[,\s]+", unquote_plus(value)))
        if any(SIGN_SECRET.match(p) for p in parts):
            return Refusal("the signing secret goes after #: …access_token=TOKEN#SEC…")
    return None


class QuietHours(UserConfig):
    start: HHMM = Field(description="HH:MM in the user's time zone, e.g. 22:00")
    end: HHMM = Field(description="HH:MM, e.g. 07:30 (may wrap past midnight)")
    # Remediation escalations still get through unless this is set.
    include_remediation: bool = False

    @model_validator(mode="after")
    def _some_minutes(self, info: ValidationInfo) -> QuietHours:
        # Equal ends cover no minute at all: "00:00 to 00:00" would silently hold nothing back.
        if self.start == self.end and not reading_stored(info):
            raise ValueError(
                f"start and end are the same time ({self.start}): the window would be empty; "
                "give the hours to hold pushes back, e.g. 22:00 to 07:30"
            )
        return self

    def covers(self, now: time, kind: NotificationKind) -> bool:
        if kind is NotificationKind.REMEDIATION and not self.include_remediation:
            return False
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        if start <= end:
            return start <= now < end
        return now >= start or now < end


class PushChannelSent(Target):
    """A push channel as a door reads it (API body, MCP argument), before its form is checked
    against the stored config (``keeping``): the schema says PushChannel's kinds."""

    kinds: list[NotificationKind] | None = Field(
        default_factory=lambda: list(ALL_KINDS), description=CHANNEL_KINDS
    )


class PushChannel(Target):
    """A target checked by its form where it enters (a push config); the errors name `type` or
    `target`. One sent back as it is stored (``keeping``'s context) is kept unchecked: saved
    before a rule refused it, it fails each send saying why, and must not block saving the
    others (the settings page sends every channel back). Kinds: the first three when omitted.
    A target left out is checked as an empty one: the refusal names `channels[i].target`."""

    model_config = ConfigDict(populate_by_name=True, validate_default=True)

    kinds: list[NotificationKind] | None = Field(
        default_factory=lambda: list(ALL_KINDS), description=CHANNEL_KINDS
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in CHANNEL_TYPES:
            raise _unknown_type(value)
        return value

    @field_validator("target")
    @classmethod
    def _target_form(cls, value: str, info: ValidationInfo) -> str:
        if (kind := info.data.get("type")) is None:
            return value  # the type already failed; that error is the one to read
        kept = (info.context or {}).get(KEPT, ())
        problem = target_problem(Target(type=kind, target=value))
        if problem is not None and (kind, value.strip()) not in kept:
            raise problem
        return value.strip()


class PushConfig(UserConfig):
    channels: list[PushChannel] = Field(default_factory=list, max_length=MAX_TARGETS)
    quiet_hours: QuietHours | None = None


KEPT = "kept"  # the validation context's channels stored as (type, target)


def keeping(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The validation context of a push config sent to replace the stored ``raw``."""
    return {KEPT: {(c.type, c.target.strip()) for c in stored_push_config(raw).channels}}


def fallback_address(
    kind: str, channels: list[PushChannel], email: str | None, phone: str | None
) -> str:
    """Where a ``kind`` channel without a target sends: another's target, else the profile's."""
    given = (c.target for c in channels if c.type == kind and c.target)
    return next(given, None) or {"email": email, "sms": phone}.get(kind) or ""


def stored_push_config(raw: dict[str, Any] | None, problems: list[str] | None = None) -> PushConfig:
    """A stored push config, the one reading of it for showing and for sending, even if saved
    before a rule was added: entries that no longer pass are kept as they are (sending
    reports them), never a crash on read; an entry that is no target at all and quiet hours
    that cannot be read are left out, each said in ``problems`` when given; fields it was
    saved with that were ignored then are ignored again. Kinds left out are the first three."""
    raw = raw or {}
    said = [] if problems is None else problems

    def read(model: type[M], value: Any, at: str) -> M | None:
        try:
            return model.model_validate(value, context=STORED)
        except ValidationError as exc:
            said.extend(field_problems(exc, at=(at,)))
            return None

    entries = enumerate(raw.get("channels") or [])
    targets = [read(Target, entry, f"channels[{index}]") for index, entry in entries]
    channels = [
        PushChannel.model_construct(**t.model_dump(exclude_unset=True)) for t in targets if t
    ]
    quiet = read(QuietHours, raw["quiet_hours"], "quiet_hours") if raw.get("quiet_hours") else None
    return PushConfig.model_construct(channels=channels, quiet_hours=quiet)
