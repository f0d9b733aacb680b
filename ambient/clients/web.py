"""Fetching web pages and metric values safely.

FetchError
 ├── RefusedAddressError   the destination guard refused it (ambient.clients.guard)
 ├── TooLargeError         the body passed the size cap
 ├── TooManyRedirectsError more redirects than allowed
 └── HttpStatusError       a non-success HTTP status
Network failures surface as FetchError with the httpx reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
from jsonpath_ng.ext import parse as jsonpath

from ambient.clients.extract import main_text
from ambient.clients.guard import (
    DestinationGuard,
    DestinationLookupError,
    PinnedRequest,
    RefusedDestinationError,
)

MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "ambient-ops/0.1 (+web monitor)"


class FetchError(Exception):
    """A page or metric could not be fetched."""


class RefusedAddressError(FetchError, RefusedDestinationError):
    """The destination guard refused the URL or the address it resolves to."""


class TooLargeError(FetchError):
    """The response body is larger than the cap."""


class TooManyRedirectsError(FetchError):
    """The redirect chain is longer than allowed."""


class HttpStatusError(FetchError):
    """The server answered with an error status."""


@dataclass
class FetchResult:
    url: str
    status: int
    not_modified: bool
    etag: str | None
    last_modified: str | None
    body: bytes
    content_type: str


class WebFetcher:
    """GET with conditional headers, a size cap, checked redirects and an SSRF guard."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        allow_cidrs: list[str] | None = None,
        max_bytes: int = MAX_BYTES,
        max_redirects: int = MAX_REDIRECTS,
        timeout: float = 20.0,
    ) -> None:
        self._http = http
        self._guard = DestinationGuard(allow_cidrs or [])
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._timeout = timeout

    async def check_destination(self, url: str) -> PinnedRequest:
        """Refuse URLs whose host resolves to a non-public address (unless allow-listed)."""
        try:
            return await self._guard.pin(url)
        except RefusedDestinationError as exc:
            raise RefusedAddressError(str(exc)) from None
        except DestinationLookupError as exc:
            raise FetchError(str(exc)) from exc

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "text/html,application/xhtml+xml,*/*;q=0.8",
    ) -> FetchResult:
        headers = {"User-Agent": USER_AGENT, "Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        for _ in range(self._max_redirects + 1):
            pinned = await self.check_destination(current)
            try:
                result = await self._get(current, pinned, {**headers, **pinned.headers})
            except httpx.HTTPError as exc:
                raise FetchError(f"{type(exc).__name__}: {exc or 'no detail'}") from exc
            if isinstance(result, str):
                current = urljoin(current, result)
                continue
            return result
        raise TooManyRedirectsError(f"more than {self._max_redirects} redirects from {url}")

    async def _get(
        self, url: str, pinned: PinnedRequest, headers: dict[str, str]
    ) -> FetchResult | str:
        """The result, or the next URL when the answer is a redirect."""
        request = self._http.build_request(
            "GET", pinned.url, headers=headers, timeout=self._timeout
        )
        response = await self._http.send(request, stream=True, follow_redirects=False)
        try:
            if response.is_redirect and "location" in response.headers:
                return response.headers["location"]
            if response.status_code == 304:
                # Read the (empty) body to its end: the connection then goes back to the
                # pool instead of being closed (a watch's next check reuses it).
                await response.aread()
                return FetchResult(
                    url,
                    304,
                    True,
                    headers.get("If-None-Match"),
                    headers.get("If-Modified-Since"),
                    b"",
                    "",
                )
            if response.status_code >= 400:
                raise HttpStatusError(f"HTTP {response.status_code} from {url}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > self._max_bytes:
                raise TooLargeError(f"{url} declares {declared} bytes (cap {self._max_bytes})")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise TooLargeError(f"{url} sent more than {self._max_bytes} bytes")
            return FetchResult(
                url,
                response.status_code,
                False,
                response.headers.get("etag"),
                response.headers.get("last-modified"),
                bytes(body),
                response.headers.get("content-type", ""),
            )
        finally:
            await response.aclose()

    async def read_json_number(self, url: str, json_path: str) -> float:
        result = await self.fetch(url, accept="application/json")
        return number_at(json.loads(result.body), json_path)

    async def read_prometheus(self, base_url: str, query: str) -> float:
        url = f"{base_url.rstrip('/')}/api/v1/query?{httpx.QueryParams(query=query)}"
        data = json.loads((await self.fetch(url, accept="application/json")).body)
        results = data.get("data", {}).get("result", [])
        if data.get("status") != "success" or len(results) != 1:
            raise FetchError(f"query must return exactly one sample, got {len(results)}: {query}")
        return float(results[0]["value"][1])


def number_at(document: Any, path: str) -> float:
    matches = [match.value for match in jsonpath(path).find(document)]
    if not matches:
        raise FetchError(f"JSONPath {path} matched nothing")
    try:
        return float(matches[0])
    except (TypeError, ValueError):
        raise FetchError(f"JSONPath {path} is not a number: {matches[0]!r}") from None


def extract_text(html: str, selector: str | None = None) -> str:
    """Main text of a page, or the text under a CSS selector (see ambient.clients.extract)."""
    return main_text(html, selector)
