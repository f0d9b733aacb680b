"""The API and its pages on loopback, and a client signed in to them as a browser is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from ambient.settings import Settings
from api.app import create_app
from tests.support.api_worker import api_client
from tests.support.servers import serve


@asynccontextmanager
async def signed_in(
    settings: Settings, token: str, referer: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with ``token``'s sign-in cookie; ``referer``: the page of ours its form posts
    come from (the pages refuse a post from elsewhere)."""
    async with serve(create_app(settings)) as base:
        headers = {"referer": f"{base}{referer}"} if referer is not None else {}
        async with api_client(base, cookies={"ambient_token": token}, headers=headers) as http:
            yield http
