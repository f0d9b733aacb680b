"""The suite's own port picker: below the ephemeral range, one slice per test process."""

from __future__ import annotations

import itertools
import socket

import pytest

from tests.support import servers


def test_a_port_in_use_is_skipped_and_ports_stay_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ports = servers._ports()
    if ports is None:
        pytest.skip("this machine's ephemeral range leaves no room below it")
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        assert ports.stop <= int(ranges.read().split()[0])
    # From a free port of the slice on (this process's servers may hold earlier ones).
    start = ports.index(servers.free_port())
    monkeypatch.setattr(servers, "_taken", itertools.count(start))
    with socket.socket() as held:
        held.bind(("127.0.0.1", ports[start]))
        after = servers.free_port()
    assert after != ports[start] and after in ports


def test_each_test_process_has_its_own_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    slices = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(servers._ports())
    if slices[0] is None:
        pytest.skip("this machine's ephemeral range leaves no room below it")
    assert all(s is not None for s in slices)
    spans = [set(s) for s in slices if s is not None]
    assert not spans[0] & spans[1] and not spans[1] & spans[2]
