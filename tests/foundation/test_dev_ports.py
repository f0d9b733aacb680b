"""`ambient dev`'s check of its ports before it starts anything."""

from __future__ import annotations

import socket
import time

import pytest

from ambient.devstack import DevStackError, refuse_taken


def test_a_port_whose_connections_are_still_closing_is_free_and_a_listened_one_is_taken() -> None:
    """A stop with a Web UI tab open left its connections closing (TIME-WAIT) for a minute:
    the restart was refused, "taken (another ambient dev?)", with nothing listening there."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    with pytest.raises(DevStackError, match=f"port 127.0.0.1:{port} is taken"):
        refuse_taken("127.0.0.1", port, "the Temporal Web UI", "--ui-port")
    served.close()  # the server's side closes first: its end waits in TIME-WAIT
    client.recv(1)
    client.close()
    listener.close()
    time.sleep(0.1)
    refuse_taken("127.0.0.1", port, "the Temporal Web UI", "--ui-port")  # free to bind
