"""Share links: `{id}.{expiry}.{signature}` tokens that open a report without logging in.

The signature (HMAC-SHA256 with AMBIENT_SECRET_KEY) makes a token unforgeable and its
expiry untamperable; the database row makes it revocable.

ShareLinkError
 ├── InvalidShareLinkError   malformed or forged (answer 404: say nothing more)
 ├── ExpiredShareLinkError   past its expiry (410)
 ├── RevokedShareLinkError   revoked by its owner (410)
 └── ShareLinkLimitError     its maker made as many as an hour allows (429, Retry-After)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import math
import secrets
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.domain.events import clipped
from ambient.refusals import Refusal
from ambient.render import markdown_html
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.db import Repository, take_turn
from ambient.storage.models import ShareLink

# A link's page while its report renders (create_link stores the link first); one pending
# this long after was left by a process that died rendering it.
PENDING = ""
LEFT = timedelta(minutes=5)


class ShareLinkError(Exception):
    """A share link cannot be opened."""


class InvalidShareLinkError(ShareLinkError):
    """The token is malformed or its signature does not match."""


class ExpiredShareLinkError(ShareLinkError):
    """The link is past its expiry."""


class RevokedShareLinkError(ShareLinkError):
    """The owner revoked the link."""


class ShareLinkLimitError(ShareLinkError):
    """The user made as many links as an hour allows; ``retry_after``: seconds until one more."""

    def __init__(self, said: Refusal, retry_after: int) -> None:
        super().__init__(said)
        self.retry_after = retry_after


def _signature(secret: str, token_id: str, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"{token_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _token(secret: str, row: ShareLink) -> str:
    expires = int(row.expires_at.timestamp())
    return f"{row.token_id}.{expires}.{_signature(secret, row.token_id, expires)}"


def _signed(secret: str, token: str) -> tuple[str, int]:
    """The token id and expiry of a token we signed."""
    try:
        token_id, expires_text, signature = token.split(".")
        expires = int(expires_text)
    except ValueError:
        raise InvalidShareLinkError("malformed share token") from None
    # As bytes: compare_digest refuses str with non-ASCII (a pasted link's trailing "。").
    expected = _signature(secret, token_id, expires).encode()
    if not hmac.compare_digest(signature.encode(), expected):
        raise InvalidShareLinkError("bad share token signature")
    return token_id, expires


# Hex digits of a keyed link's id its key names (the rest, to 32, random).
KEY_NAMED = 16


class ShareLinkRepository(Repository):
    def __init__(self, session: AsyncSession, secret: str) -> None:
        super().__init__(session)
        self.secret = secret

    async def create(self, *args: Any, **options: Any) -> tuple[ShareLink, str]:
        """``store``'s link (its arguments) with its token instead of whether it is new."""
        row, _ = await self.store(*args, **options)
        return row, _token(self.secret, row)

    async def store(
        self,
        user: str,
        kind: str,
        title: str,
        html: str,
        *,
        days: int,
        key: str | None = None,
        per_hour: int = 0,
        now: datetime | None = None,
    ) -> tuple[ShareLink, bool]:
        """A new link to ``html`` (or, with the same ``key``, the one made before: retries are
        safe), and whether it is new; refused past ``per_hour`` new links in the last hour (0:
        no limit)."""
        now = now or datetime.now(UTC)
        token_id, row = await self.made(user, key, per_hour, now)
        if row is not None:
            return row, False
        new = ShareLink(
            token_id=token_id,
            user=user,
            kind=kind,
            # A remediation's names its workload's service (a Deployment's name alone may be
            # 253 characters): PostgreSQL refused a longer title, a 500 (SQLite kept it).
            title=clipped(title, 255),
            html=html,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        # The same key asked for at once (a push and its owner sharing one report): the
        # link the other stored first, not the unique key's refusal.
        row = await self._insert_once(new, partial(self._by_token, token_id))
        return row, row is new

    async def made(
        self, user: str, key: str | None, per_hour: int, now: datetime
    ) -> tuple[str, ShareLink | None]:
        """The live link made before with ``key``, or the token id for a new one if ``user``
        made fewer than ``per_hour`` in the hour before ``now`` (0: no limit)."""
        token_id, row = (
            (secrets.token_hex(16), None) if key is None else await self._keyed(key, now)
        )
        if row is not None or per_hour == 0:
            return token_id, row
        await take_turn(self.session, f"share/{user}")  # two at once count each other
        since = now - timedelta(hours=1)
        in_hour = sorted(
            await self.session.scalars(
                select(ShareLink.created_at).where(
                    ShareLink.user == user, ShareLink.created_at > since
                )
            )
        )
        if (count := len(in_hour)) >= per_hour:
            # One more once count - per_hour + 1 of them aged out (the push's are never
            # refused, and the setting may have been lowered: count may be over the limit).
            frees = in_hour[count - per_hour]
            wait = max(1, math.ceil((frees - since).total_seconds()))
            said = Refusal(
                "share link limit: %(count)s made in the last hour (max %(max)s); "
                "try again in %(minutes)s min",
                count=count,
                max=per_hour,
                minutes=math.ceil(wait / 60),
            )
            raise ShareLinkLimitError(said, retry_after=wait)
        return token_id, None

    async def _keyed(self, key: str, now: datetime) -> tuple[str, ShareLink | None]:
        """The live link made before with ``key``, or the token id for a new one: a key's
        links expire and are revoked, and asking again must then give a link that opens.

        The key names an id's first half only, its second half random: an id that was the
        key's hash whole let whoever holds the signing secret (a leaked key, the development
        default) open another user's briefing by its date, never given a link to it. The
        ids of the release before (the hash whole) are found by their first half alike."""
        await take_turn(self.session, f"share-key/{key}")  # two at once make one link
        for generation in itertools.count():
            seed = key if generation == 0 else f"{key}#{generation}"
            named = hashlib.sha256(seed.encode()).hexdigest()[:KEY_NAMED]
            row = await self.session.scalar(
                select(ShareLink).where(ShareLink.token_id.startswith(named)).limit(1)
            )
            if row is None:
                return named + secrets.token_hex(16 - KEY_NAMED // 2), None
            # A page pending long after its render should have ended was left by a process
            # that died rendering it (create_link): a link that opens is made again.
            left = row.html == PENDING and row.created_at.timestamp() < (now - LEFT).timestamp()
            if row.revoked_at is None and now.timestamp() < row.expires_at.timestamp() and not left:
                return row.token_id, row
        raise AssertionError("unreachable")

    async def _by_token(self, token_id: str) -> ShareLink | None:
        return await self.session.scalar(select(ShareLink).where(ShareLink.token_id == token_id))

    async def open(self, token: str, now: datetime | None = None) -> ShareLink:
        token_id, expires = _signed(self.secret, token)
        moment = (now or datetime.now(UTC)).timestamp()
        if moment >= expires:
            raise ExpiredShareLinkError("this link has expired")
        if (row := await self._by_token(token_id)) is None:
            raise InvalidShareLinkError("unknown share link")
        # The stored expiry decides: a key that leaked (or the development default) signs any.
        if moment >= row.expires_at.timestamp():
            raise ExpiredShareLinkError("this link has expired")
        if row.revoked_at is not None:
            raise RevokedShareLinkError("this link was revoked")
        return row

    async def links(
        self, user: str, *, limit: int, before_id: int | None = None
    ) -> list[ShareLink]:
        """``user``'s links, newest first (revoked and expired too), older ones by ``before_id``:
        what they have given out, and what someone with their token may have (revoke those)."""
        query = select(ShareLink).where(ShareLink.user == user)
        if before_id is not None:
            query = query.where(ShareLink.id < before_id)
        return list(await self.session.scalars(query.order_by(ShareLink.id.desc()).limit(limit)))

    async def revoke(
        self, user: str, link: int | str, now: datetime | None = None, *, admin: bool = False
    ) -> bool:
        """Revoke ``user``'s link (``admin``: anyone's), named by its id or by its token (a link
        a workflow sent shows its owner nothing else); False when it is no link of theirs. One
        revoked already keeps the time it was revoked."""
        if isinstance(link, int):
            row = await self.session.get(ShareLink, link)
        else:
            try:
                token_id, _ = _signed(self.secret, link)
            except InvalidShareLinkError:
                return False
            row = await self._by_token(token_id)
        if row is None or (row.user != user and not admin):
            return False
        row.revoked_at = row.revoked_at or now or datetime.now(UTC)
        await self.session.flush()
        return True


class ReportLink(BaseModel):
    url: str
    expires_at: datetime


async def create_link(
    db: Database,
    settings: Settings,
    user: str,
    kind: str,
    title: str,
    markdown: str,
    *,
    days: int | None = None,
    key: str | None = None,
    per_hour: int | None = None,
) -> tuple[ShareLink, str]:
    """A link to the rendered ``markdown`` (see ``ShareLinkRepository.create``); ``per_hour``
    defaults to the setting, ``days`` too."""
    secret, now = settings.secret_key.get_secret_value(), datetime.now(UTC)
    per_hour = settings.share_links_per_hour if per_hour is None else per_hour
    # The link is stored, its page pending, before the render, which may take seconds: the
    # hour's count then holds the renders under way too, so requests at once render no more
    # than the limit. The render runs off the event loop and outside any write transaction
    # (on SQLite one holds the database's one write lock); the page is stored after it.
    async with db.writing() as session:
        row, new = await ShareLinkRepository(session, secret).store(
            user,
            kind,
            title,
            PENDING,
            days=days or settings.share_link_days,
            key=key,
            per_hour=per_hour,
            now=now,
        )
        token = _token(secret, row)
    if new:
        try:
            row.html = await asyncio.to_thread(markdown_html, markdown)
        except BaseException:  # cancelled too: no link is left to a page that never comes
            await asyncio.shield(_page(db, row.id, None))
            raise
        await _page(db, row.id, row.html)
    return row, token


async def _page(db: Database, link_id: int, html: str | None) -> None:
    """A pending link's page stored, or (None) the link dropped."""
    async with db.writing() as session:
        found = ShareLink.id == link_id
        done = delete(ShareLink) if html is None else update(ShareLink).values(html=html)
        await session.execute(done.where(found))


async def share_report(
    db: Database,
    settings: Settings,
    user: str,
    kind: str,
    title: str,
    markdown: str,
    key: str,
    *,
    per_hour: int | None = None,
) -> ReportLink:
    """A link to the report for the configured days; the same ``key`` gives the same link."""
    row, token = await create_link(
        db, settings, user, kind, title, markdown, key=key, per_hour=per_hour
    )
    return ReportLink(url=f"{settings.public_base_url}/share/{token}", expires_at=row.expires_at)
