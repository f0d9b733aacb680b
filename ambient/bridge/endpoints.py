"""Xiaozhi endpoints: register, list and remove the 接入点 URLs the bridge dials.

The URL carries the endpoint's token (a JWT naming the agent): it is stored encrypted and shown
and logged masked. Every permission is checked here, so the API and the CLI decide alike.

EndpointError
 ├── EndpointInputError      a bad URL or user (says which field)
 ├── EndpointNotFoundError   no such endpoint (or not the caller's)
 └── EndpointPermissionError the caller may not act for that user
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from ambient.clients.guard import (
    AMBIGUOUS,
    DestinationGuard,
    DestinationLookupError,
    RefusedDestinationError,
)
from ambient.domain.configs import UserConfig, holds_nul
from ambient.domain.events import clipped
from ambient.domain.users import OPERATOR
from ambient.refusals import N_, Refusal, read_back
from ambient.settings import Settings
from ambient.storage.audit import AuditRepository
from ambient.storage.db import take_turn
from ambient.storage.models import User, XiaozhiEndpoint, utcnow
from ambient.storage.users import UserRepository, not_registered, user_subject

MASK = "***"
# A broker's token is URL-safe text (a JWT's base64url, or base64 percent-encoded): anything
# else in it came with the copy (a "。", "，", a zero-width space or a byte order mark).
TOKEN_STRAY = re.compile(r"[^A-Za-z0-9._~+/=-]")
MASKED_LENGTH = 2048  # XiaozhiEndpoint.url_masked
NONCE_BYTES = 12
MAX_ENDPOINTS_PER_USER = 10
NOT_HELD = N_("no bridge holds it now (the API process that held it stopped): is the API running?")
NOT_HELD_SINCE = N_(
    "no bridge holds it now (the API process that held it stopped): is the API running? "
    "(last error: %(reason)s)"
)
# The bridge could not read the endpoint it was to dial: no broker was asked.
UNREAD = N_("cannot read the endpoint from the product's database: %(reason)s")
UNSEALED = N_(
    "cannot decrypt the stored URL and its token (was AMBIENT_SECRET_KEY changed?): "
    "add the endpoint again"
)
# A dial whose scheme the broker does not speak (ambient/bridge/runner.py `describe`).
PLAIN_BROKER = N_(
    "cannot connect to the broker: %(reason)s (does it speak TLS? for a broker that does not, "
    "the address starts ws://)"
)
TLS_BROKER = N_("%(reason)s (a broker that speaks only TLS wants an address starting wss://)")
# An endpoint's last error as the bridge writes it (English: the CLI and MCP show it so), read
# back by a page to say it in its reader's language: a wrong token (the broker's 401, or the
# relay's 1008 close), an endpoint unreachable, a refusal. Any other is shown as written.
# No process of this deployment dials endpoints (settings.xiaozhi_bridge off): said instead of
# "not dialed yet", which would wait forever.
BRIDGE_OFF = N_(
    "no process dials 接入点 here: the bridge is off (AMBIENT_XIAOZHI_BRIDGE=false); "
    "ask the operator to turn it on"
)
# Taken over from a bridge that stopped renewing its lease: the broker may still hold that
# bridge's connection, so this one waits for it to be let go (``BridgeRunner._opened``).
TAKING_OVER = N_(
    "taking over from a bridge that stopped: connecting in about %(seconds)s s, once the "
    "broker has let its connection go"
)
KNOWN_ERRORS = (
    N_("not dialed yet"),
    TAKING_OVER,
    BRIDGE_OFF,
    NOT_HELD,
    NOT_HELD_SINCE,
    N_("the connection ended"),
    N_("the connection dropped (no close frame)"),
    N_("closed by the broker: 1008 %(reason)s"),
    N_("closed by the broker: 1008"),
    N_("closed by the broker: %(code)s %(reason)s"),
    N_("closed by the broker: %(code)s"),
    N_("refused by the broker: HTTP 401 %(reason)s"),
    N_("refused by the broker: HTTP 401"),
    N_("refused by the broker: HTTP %(status)s %(reason)s"),
    N_("refused by the broker: HTTP %(status)s"),
    N_("the broker or a proxy before it failed: HTTP %(status)s %(reason)s"),
    N_("the broker or a proxy before it failed: HTTP %(status)s"),
    N_("no answer from the broker (timed out)"),
    PLAIN_BROKER,  # before the plain "cannot connect", which its text fits too
    TLS_BROKER,
    N_("cannot connect to the broker: %(reason)s"),
    N_("connected, then the connection was lost: %(reason)s"),
    UNREAD,
    UNSEALED,
)


def said_error(error: str) -> str | Refusal:
    """An endpoint's last error as a page says it: a Refusal when it is a known one (the last
    error of one no bridge holds too), else as written."""
    said = read_back(error, KNOWN_ERRORS)
    if said is None:
        return error
    if said.msgid == NOT_HELD_SINCE:
        return Refusal(NOT_HELD_SINCE, reason=said_error(str(said.values["reason"])))
    return said


class EndpointError(Exception):
    """A request about xiaozhi endpoints that cannot be done."""


class EndpointInputError(EndpointError):
    """The input is wrong; ``field`` names what to fix."""

    def __init__(self, field: str, message: str | Refusal) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class EndpointUserError(EndpointInputError):
    """The endpoint's user is no user: said as every command says it (``not_registered``),
    without the field its words name."""

    def __init__(self, name: str) -> None:
        super().__init__("user", not_registered(name))

    def __str__(self) -> str:
        return str(self.message)


class EndpointNotFoundError(EndpointError):
    """No endpoint with that id that the caller may see."""


class EndpointPermissionError(EndpointError):
    """Only the endpoint's user or an admin may do this."""


def mask_url(url: str) -> str:
    """The URL with its token (and any other query value) replaced by ``***``."""
    parts = urlsplit(url.strip())
    query = urlencode([(name, MASK) for name, _ in parse_qsl(parts.query)], safe="*")
    masked = urlunsplit(parts._replace(query=query))
    # Values become ***, names are escaped: many short parameters outgrow the stored column.
    return clipped(masked, MASKED_LENGTH)


def url_token(url: str) -> str:
    """The token parameter of an endpoint URL ("" when there is none)."""
    return dict(parse_qsl(urlsplit(url.strip()).query)).get("token", "")


def http_form(url: str) -> str:
    """The http(s) URL of the same host and port, for the destination guard."""
    parts = urlsplit(url.strip())
    scheme = "https" if parts.scheme.lower() == "wss" else "http"
    return urlunsplit(parts._replace(scheme=scheme, query=""))


class EndpointCipher:
    """AES-GCM for endpoint URLs, keyed from AMBIENT_SECRET_KEY (HKDF, its own purpose).

    Rotating the secret key makes stored URLs unreadable: the runner then shows the endpoint
    as retrying with "cannot decrypt", and the owner adds it again.
    """

    def __init__(self, secret_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"ambient xiaozhi endpoint url"
        ).derive(secret_key.encode())
        self._cipher = AESGCM(key)

    def seal(self, url: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        return base64.urlsafe_b64encode(
            nonce + self._cipher.encrypt(nonce, url.encode(), None)
        ).decode()

    def open(self, sealed: str) -> str:
        data = base64.urlsafe_b64decode(sealed.encode())
        return self._cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None).decode()


class EndpointCreate(UserConfig):
    user: str = Field(min_length=1, max_length=63, description="the user the endpoint acts as")
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="the 接入点 URL from the xiaozhi.me console: wss://api.xiaozhi.me/mcp/?token=...",
    )
    verbatim: bool = Field(
        default=False,
        description='wrap results as {"action":"RESPONSE","response":"..."} (mcp_endpoint relays)',
    )

    @field_validator("url")
    @classmethod
    def _endpoint_url(cls, url: str) -> str:
        """A 接入点 URL (ws:// or wss://, a host, a token parameter), stripped."""
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise Refusal("not a URL (%(error)s)", error=str(exc)) from None
        if not parts.scheme:  # blank (spaces pass the browser's check of the box) or no scheme
            raise Refusal("must start with wss:// or ws:// (got no scheme://)")
        if parts.scheme.lower() not in ("ws", "wss"):
            got = f"{parts.scheme}://"
            raise Refusal("must start with wss:// or ws:// (got %(got)s)", got=got)
        # No broker issues a token with a NUL; PostgreSQL stores no text with one either.
        decoded = [text for pair in parse_qsl(parts.query) for text in pair]
        if any(holds_nul(text) for text in (url, *decoded)):
            raise Refusal(
                "holds a NUL character (U+0000), raw or percent-encoded: copy the URL again"
            )
        if AMBIGUOUS.search(parts.query):
            # The guard checks the host and path; a space here breaks the HTTP request line.
            raise Refusal("refused URL: it contains spaces, backslashes or controls")
        if "@" in parts.netloc:
            raise Refusal("user:password@ is not accepted in the address")
        if not parts.hostname:
            raise Refusal("has no host (e.g. wss://api.xiaozhi.me/mcp/?token=...)")
        token = dict(parse_qsl(parts.query)).get("token")
        if not token:
            raise Refusal("has no token parameter: copy the whole 接入点 URL, ?token=... included")
        # As written, percent-decoded but "+" kept ("+" is a base64 token's, not a space).
        pairs = (pair.partition("=") for pair in parts.query.split("&"))
        written = "".join(unquote(value) for key, _, value in pairs if key == "token")
        if (stray := TOKEN_STRAY.search(written)) is not None:
            # A "。" or a zero-width space copied with the URL was sent as part of the token,
            # and the broker's "token wrong or expired" sent the user to copy the same again.
            raise Refusal(
                "its token holds %(char)s (U+%(code)s), which no token has: it came with the "
                "copy; copy the URL again without it",
                char=repr(stray[0]),
                code=f"{ord(stray[0]):04X}",
            )
        try:
            parse_uri(url.strip())  # what the bridge dials with: a #fragment, say, it refuses
        except InvalidURI as exc:  # its message, not its str: that quotes the token
            raise Refusal("not a URL (%(error)s)", error=exc.msg) from None
        return url.strip()

    def __repr__(self) -> str:  # never the token, even in a traceback
        return f"EndpointCreate(user={self.user!r}, url={mask_url(self.url)!r})"

    __str__ = __repr__


class EndpointPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user: str
    # A row holds it as url_masked (the URL itself is stored sealed).
    url: str = Field(
        validation_alias=AliasChoices("url", "url_masked"),
        description="the URL with its token masked",
    )
    verbatim: bool
    state: str = Field(description="connected, or retrying (see last_error)")
    last_error: str | None
    since: datetime

    @classmethod
    def of(cls, row: XiaozhiEndpoint, now: datetime, *, bridge_on: bool = True) -> EndpointPublic:
        """The row as shown: connected or retrying only while a bridge holds its lease (an API
        process that stopped, or died, leaves its row saying either); the last error is kept.
        With the bridge off, one no bridge holds says that none will."""
        public = cls.model_validate(row)
        lease = row.lease_until
        held = row.holder is not None and lease is not None and lease >= now
        if not held and not bridge_on:
            public.state, public.last_error = "retrying", BRIDGE_OFF
            return public
        # A retrying row whose lease was never taken is one not dialed yet.
        if not held and (lease is not None or public.state == "connected"):
            last = NOT_HELD_SINCE % {"reason": row.last_error} if row.last_error else NOT_HELD
            public.state, public.last_error = "retrying", last
            public.since = lease or public.since
        return public


@dataclass
class Endpoints:
    """The service: who may register, list and remove which endpoints."""

    session: AsyncSession
    cipher: EndpointCipher
    guard: DestinationGuard
    # Whether this deployment's API processes dial endpoints (settings.xiaozhi_bridge).
    bridge_on: bool = True

    @classmethod
    def of(cls, session: AsyncSession, settings: Settings) -> Endpoints:
        """The service with the settings' secret key, destination allow-list and bridge."""
        cipher = EndpointCipher(settings.secret_key.get_secret_value())
        guard = DestinationGuard(settings.fetch_allow_cidrs)
        return cls(session, cipher, guard, settings.xiaozhi_bridge)

    async def add(self, actor: User | None, data: EndpointCreate) -> EndpointPublic:
        """Register ``data`` for its user; ``actor`` None is the operator (the CLI)."""
        if actor is not None and not actor.is_admin and actor.name != data.user:
            raise EndpointPermissionError(
                f"you may register endpoints for yourself ({actor.name!r}) only; "
                "an admin may for anyone"
            )
        await UserRepository(self.session).existing(data.user, EndpointUserError(data.user))
        try:
            await self.guard.check_url(http_form(data.url))
        except RefusedDestinationError as exc:
            raise EndpointInputError("url", exc) from None
        except DestinationLookupError:
            pass  # a DNS outage now: the runner checks again before every dial
        # One add of the user's at a time (PostgreSQL), or adds at once all count the endpoints
        # stored before any of theirs and all pass.
        await take_turn(self.session, f"xiaozhi-endpoints/{data.user}")
        await self._below_limit(data.user, MAX_ENDPOINTS_PER_USER)
        await self._not_registered(actor, data.url)
        row = XiaozhiEndpoint(
            user=data.user,
            url_sealed=self.cipher.seal(data.url),
            url_masked=mask_url(data.url),
            broker_key=_digest(_broker_key(data.url)),
            verbatim=data.verbatim,
            state="retrying",
            last_error="not dialed yet",
        )
        self.session.add(row)
        try:
            await self.session.flush()
        except IntegrityError:
            # Registered at the same moment by another request: the one stored holds it.
            await self.session.rollback()
            await self._not_registered(actor, data.url)
            # ...and removed since: nothing holds it now, nothing of this request was stored.
            raise EndpointInputError(
                "url",
                Refusal(
                    "this 接入点 was registered at the same moment by another request, and "
                    "removed since: register it again"
                ),
            ) from None
        try:
            # SQLite: the count above ran before the insert took the write lock, and another
            # add may have stored one in between; counted again while no other writer can.
            await self._below_limit(data.user, MAX_ENDPOINTS_PER_USER + 1)
        except EndpointInputError:
            await self.session.rollback()
            raise
        await self._audited(actor, "xiaozhi.endpoint.add", row, token=_fingerprint(data.url))
        return EndpointPublic.of(row, utcnow(), bridge_on=self.bridge_on)

    async def _below_limit(self, user: str, refused_at: int) -> None:
        """Refuses (field ``user``) when ``user`` has ``refused_at`` endpoints or more."""
        mine = await self.session.scalar(select(func.count()).where(XiaozhiEndpoint.user == user))
        if (mine or 0) >= refused_at:
            raise EndpointInputError(
                "user", Refusal("at most %(most)s endpoints a user", most=MAX_ENDPOINTS_PER_USER)
            )

    async def _not_registered(self, actor: User | None, url: str) -> None:
        """Refuses ``url`` when an endpoint, anyone's, dials the same 接入点; it is named only
        to whoever may list it (its user, an admin, the operator)."""
        wanted = _broker_key(url)
        found = await self.session.execute(
            select(XiaozhiEndpoint.id, XiaozhiEndpoint.user).where(
                XiaozhiEndpoint.broker_key == _digest(wanted)
            )
        )
        held, user = found.first() or (None, None)
        if held is None:
            # Rows stored before the digest was kept: their sealed URL is compared instead.
            unkeyed = select(XiaozhiEndpoint).where(XiaozhiEndpoint.broker_key.is_(None))
            for row in await self.session.scalars(unkeyed):
                try:
                    stored = self.cipher.open(row.url_sealed)
                except (InvalidTag, ValueError):
                    continue  # sealed under an earlier secret key: the runner shows it failing
                if _broker_key(stored) == wanted:
                    held, user = row.id, row.user
                    break
        if held is None:
            return
        if actor is not None and not actor.is_admin and user != actor.name:
            said = Refusal(
                "this 接入点 is already registered by another user; it holds one "
                "connection: ask an admin, who sees which endpoint holds it"
            )
        else:
            said = Refusal(
                "this 接入点 is already registered (endpoint %(held)s); it holds one "
                "connection: remove that endpoint first",
                held=held,
            )
        raise EndpointInputError("url", said)

    async def list(self, actor: User | None) -> list[EndpointPublic]:
        """The caller's endpoints; an admin's (and the operator's) list holds everyone's."""
        query = select(XiaozhiEndpoint).order_by(XiaozhiEndpoint.id)
        if actor is not None and not actor.is_admin:
            query = query.where(XiaozhiEndpoint.user == actor.name)
        now = utcnow()
        rows = await self.session.scalars(query)
        return [EndpointPublic.of(row, now, bridge_on=self.bridge_on) for row in rows]

    async def remove(self, actor: User | None, endpoint_id: int) -> EndpointPublic:
        row = await self.session.get(XiaozhiEndpoint, endpoint_id)
        if row is None or (actor is not None and not actor.is_admin and row.user != actor.name):
            raise EndpointNotFoundError(f"no xiaozhi endpoint {endpoint_id}; see the list")
        gone = EndpointPublic.model_validate(row)
        await self.session.execute(delete(XiaozhiEndpoint).where(XiaozhiEndpoint.id == endpoint_id))
        await self._audited(actor, "xiaozhi.endpoint.remove", row)
        return gone

    async def _audited(
        self, actor: User | None, action: str, row: XiaozhiEndpoint, **detail: str
    ) -> None:
        """Audit ``action`` on the endpoint ``row`` (actor None: the operator), and commit."""
        await AuditRepository(self.session).append(
            actor=OPERATOR if actor is None else actor.name,
            action=action,
            subject=user_subject(row.user),
            detail={"id": row.id, "url": row.url_masked, **detail},
        )
        await self.session.commit()


def _broker_key(url: str) -> tuple[str, int | None, str, str]:
    """What names one 接入点 at its broker: host, port (None for the scheme's own), path and
    token (not the scheme's case, the host's case or other parameters)."""
    parts = urlsplit(url.strip())
    port = None if parts.port == {"ws": 80, "wss": 443}.get(parts.scheme.lower()) else parts.port
    return (parts.hostname or "", port, parts.path.rstrip("/"), url_token(url))


def _digest(key: tuple[str, int | None, str, str]) -> str:
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def _fingerprint(url: str) -> str:
    """A short hash of the token: tells two registrations apart without revealing it."""
    return hashlib.sha256(url_token(url).encode()).hexdigest()[:12]
