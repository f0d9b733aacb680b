"""A page server as strict as the web's: HTTP/1.1 by h11 (RFC 9112), conditional requests as
RFC 9110 section 13 evaluates them, and a record of each validator a client sent to a page
that never issued it. That is no RFC violation (a client may send any entity tag) but a
privacy leak: behind a redirect, another site's ETag tells this site what the client saw there.
The tests hold it against the product all the same.

Each page is a ``Resource`` the test swaps between checks, named by its path (a query names the
same page, as an object store's signed URL does); every request is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import h11


@dataclass(frozen=True)
class Resource:
    """What a page is now: its bytes, type and validators, and how its server behaves."""

    body: bytes
    content_type: str = "text/html; charset=utf-8"
    etag: str | None = None  # as sent: '"v1"' (strong) or 'W/"v1"' (weak)
    last_modified: str | None = None  # an HTTP-date
    # False: the server ignores preconditions (a 200 with the whole page every time).
    conditional: bool = True
    # A redirect (no preconditions, 13.2.1) to there ("": no Location), its body as given.
    moved_to: str | None = None
    moved_status: int = 301
    also_to: str | None = None  # a second Location field beside moved_to's
    encoding: str | None = None  # its Content-Encoding, named as sent (the body: as given)


@dataclass
class Asked:
    path: str  # the request's target, its query included
    headers: dict[str, str]
    status: int


@dataclass
class StrictSite:
    pages: dict[str, Resource] = field(default_factory=dict)
    asked: list[Asked] = field(default_factory=list)
    # Validators this site gave out, per page: a client sending another leaks what it saw.
    issued: dict[str, set[str]] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # of HTTP/1.1 itself

    def answers(self, path: str) -> list[int]:
        return [a.status for a in self.asked if a.path == path]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    for data in self._answer(event):
                        writer.write(connection.send(data) or b"")
                    await writer.drain()
                elif isinstance(event, h11.EndOfMessage):
                    if connection.our_state is not h11.DONE:
                        return
                    connection.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (h11.RemoteProtocolError, ConnectionError) as exc:
            self.violations.append(f"not HTTP/1.1 a server takes: {exc!r}")
        finally:
            writer.close()

    def _answer(self, request: h11.Request) -> list[h11.Response | h11.Data | h11.EndOfMessage]:
        target = request.target.decode()
        path = target.partition("?")[0]
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
        page = self.pages.get(path)
        status = 404 if page is None else 200
        if request.method != b"GET":
            status = 405
        elif page is not None and page.moved_to is not None:
            self._modified(path, page, headers)  # sent to it or not, a 301
            self.asked.append(Asked(target, headers, page.moved_status))
            moved = [("Location", to) for to in (page.moved_to, page.also_to) if to]
            moved.append(("Content-Length", str(len(page.body))))
            said = h11.Response(status_code=page.moved_status, headers=moved)
            return [said, h11.Data(page.body), h11.EndOfMessage()]
        elif page is not None and not self._modified(path, page, headers):
            status = 304
        self.asked.append(Asked(target, headers, status))
        fields = [("Content-Type", "text/plain")] if page is None else self._validators(page)
        if page is not None:
            # RFC 9110 15.4.5: a 304 names the validators a 200 would carry now.
            self.issued.setdefault(path, set()).update(v for _, v in fields)
        if status == 304:
            return [h11.Response(status_code=304, headers=fields), h11.EndOfMessage()]
        body = b"no such page" if page is None else page.body
        if page is not None:
            fields.append(("Content-Type", page.content_type))
            fields += [("Content-Encoding", page.encoding)] if page.encoding else []
        fields.append(("Content-Length", str(len(body))))
        return [
            h11.Response(status_code=status, headers=fields),
            h11.Data(body),
            h11.EndOfMessage(),
        ]

    @staticmethod
    def _validators(page: Resource) -> list[tuple[str, str]]:
        fields = [("ETag", page.etag)] if page.etag else []
        return fields + ([("Last-Modified", page.last_modified)] if page.last_modified else [])

    def _modified(self, path: str, page: Resource, headers: dict[str, str]) -> bool:
        """RFC 9110 13.2.2: If-None-Match decides when sent (weak comparison), else
        If-Modified-Since; a validator this site never issued for the page is a leak."""
        issued = self.issued.get(path, set())
        match, since = headers.get("if-none-match"), headers.get("if-modified-since")
        for sent in [t.strip() for t in (match or "").split(",") if t.strip()]:
            if sent != "*" and sent not in issued:
                self.leaks.append(f"{path}: If-None-Match {sent} was never issued for it")
        if since is not None and since not in issued:
            self.leaks.append(f"{path}: If-Modified-Since {since} was never issued for it")
        if not page.conditional:
            return True
        if match is not None:
            tags = {_opaque(t) for t in match.split(",")}
            return not (page.etag and ("*" in tags or _opaque(page.etag) in tags))
        if since is not None and page.last_modified:
            return parsedate_to_datetime(page.last_modified) > parsedate_to_datetime(since)
        return True


def _opaque(tag: str) -> str:
    """An entity tag's opaque part, as weak comparison reads it."""
    return tag.strip().removeprefix("W/")


@asynccontextmanager
async def strict_site() -> AsyncIterator[tuple[StrictSite, str]]:
    site = StrictSite()
    server = await asyncio.start_server(site.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield site, f"http://127.0.0.1:{port}"
    finally:
        server.close()
