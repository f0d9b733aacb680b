"""A page's sign-in lookup gives its pooled connection back before the page's work."""

from __future__ import annotations

from starlette.requests import Request

from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.users import UserRepository
from api.routers.pages import COOKIE, page_user


async def test_the_pages_sign_in_lookup_ends_its_read_transaction(db: Database) -> None:
    # Its open transaction held a pooled connection through the page's Temporal round trips
    # (the task list, a create's first check, a trigger): a few people on those pages at
    # once left the others waiting for the pool. The API's lookup already ended it.
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="pool"))
        await session.commit()
    cookie = f"{COOKIE}={token}".encode()
    request = Request({"type": "http", "headers": [(b"cookie", cookie)]})
    async with db.session() as session:
        user = await page_user(request, session)
        assert user is not None and user.name == "pool"
        assert not session.in_transaction()
        assert user.name == "pool"  # still loaded after the transaction ended
