"""The notify tests' shared stand-ins: the push endpoints, the mailbox, an HTTP client, two
workers' databases."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from tests.notify.standins import Mailbox, PushEndpoints
from tests.support.servers import http_client, serve


@pytest_asyncio.fixture
async def endpoints() -> AsyncIterator[tuple[PushEndpoints, str]]:
    """The robots', webhook's and Apprise's stand-ins on loopback, and their base URL."""
    state = PushEndpoints()
    async with serve(state.app()) as base:
        yield state, base


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(timeout=2) as client:
        yield client


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest_asyncio.fixture
async def two_workers(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """What two worker processes hold: a Database each, on one app database."""
    await upgrade_async(database_url)
    one, two = Database(database_url), Database(database_url)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()
