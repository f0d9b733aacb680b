"""An Apprise send reaches only hosts the destination guard lets through, the hosts a service's
answer names included (Matrix's server discovery)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.apprise import AppriseChannel
from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.notify import Message
from bench.certs import certificate

# What a Matrix homeserver answers to each request of a login, a join and a message.
HOMESERVER = {
    "versions": ["v1.11"],
    "access_token": "t",
    "user_id": "@bot:example",
    "home_server": "example",
    "room_id": "!room:example",
    "event_id": "$event",
}


class Host:
    """An HTTPS host on a loopback address, answering every request with ``answer`` and
    keeping what it was asked."""

    def __init__(self, address: str, answer: dict[str, object], tls: ssl.SSLContext) -> None:
        self.asked: list[tuple[str, str, bytes]] = []
        asked, body = self.asked, json.dumps(answer).encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                asked.append((self.command, self.path, self.rfile.read(size)))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls(tmp_path: Path) -> ssl.SSLContext:
    cert, key = certificate("matrix.test", tmp_path, ips=("127.0.0.1", "127.0.0.2", "127.0.0.3"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def hosts(tls: ssl.SSLContext) -> Iterator[dict[str, Host]]:
    """A homeserver on 127.0.0.1 (loopback to the guard) and one on 127.0.0.3 (allowed)."""
    made = {address: Host(address, HOMESERVER, tls) for address in ("127.0.0.1", "127.0.0.3")}
    yield made
    for host in made.values():
        host.close()


@pytest.mark.parametrize("homeserver", ["127.0.0.1", "127.0.0.3"])
async def test_a_matrix_discovery_leading_inside_is_refused_and_nothing_is_sent_there(
    tls: ssl.SSLContext, hosts: dict[str, Host], homeserver: str
) -> None:
    """The guard checked the host a matrixs:// URL names; its `.well-known` file named another
    homeserver, and every later request (the password's login, the message) went there,
    unchecked: a user's target reached any inside HTTPS service as a delivered message."""
    inside = hosts[homeserver]
    named = {"m.homeserver": {"base_url": f"https://{homeserver}:{inside.port}"}}
    public = Host("127.0.0.2", named, tls)  # the host the URL names (allow-listed: "public")
    guard = DestinationGuard(["127.0.0.2/32", "127.0.0.3/32"])
    channel = AppriseChannel(SecretResolver({}), guard)
    target = f"matrixs://bot:secret@127.0.0.2:{public.port}/#room?verify=no"
    message = Message(title="disk", body="disk almost full")
    try:
        if homeserver == "127.0.0.1":
            with pytest.raises(PermanentNotifyError, match=r"refused destination 127\.0\.0\.1"):
                await channel.send("alice", message, target)
            assert inside.asked == []
        else:  # discovery to a host the guard lets through works as before
            await channel.send("alice", message, target)
            assert any("disk almost full" in body.decode() for _, _, body in inside.asked)
        # The host the URL names was asked for its discovery file only (again after a refusal).
        assert {path for _, path, _ in public.asked} == {"/.well-known/matrix/client"}
    finally:
        public.close()
