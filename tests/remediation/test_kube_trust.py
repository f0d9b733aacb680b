"""A test process's kube clients share the system's trust, and only that
(tests/support/kube_trust.py)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import certifi
import yaml

from ambient.clients.kube import client_from_kubeconfig
from tests.standins.kube_api import kubeconfig


def _context(config: dict[str, Any]) -> ssl.SSLContext:
    client = client_from_kubeconfig(yaml.safe_dump(config))
    context: ssl.SSLContext = client._client._client._transport._pool._ssl_context
    return context


def test_clients_without_a_ca_of_their_own_share_one_system_trust_and_the_others_do_not() -> None:
    plain = kubeconfig({"one": "http://127.0.0.1:1"})
    other = kubeconfig({"two": "https://127.0.0.1:2"})
    shared = _context(plain)
    assert _context(other) is shared
    assert shared.verify_mode is ssl.CERT_REQUIRED and shared.cert_store_stats()["x509_ca"] > 0

    with_ca = kubeconfig({"three": "https://127.0.0.1:3"})
    pem = base64.b64encode(Path(certifi.where()).read_bytes()).decode()
    with_ca["clusters"][0]["cluster"]["certificate-authority-data"] = pem
    insecure = kubeconfig({"four": "https://127.0.0.1:4"})
    insecure["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    own = [_context(with_ca), _context(with_ca), _context(insecure)]
    assert len({id(context) for context in [shared, *own]}) == 4
    assert own[2].verify_mode is ssl.CERT_NONE
