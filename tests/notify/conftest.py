"""The notify tests' shared stand-ins: the push endpoints, the mailbox, an HTTP client."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

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
