"""A test process loads the system's CA bundle once for its Kubernetes clients, not per client.

lightkube builds a TLS context for every client it makes (``verify_cluster``): for a cluster
entry that names no CA of its own, the system's bundle, loaded again each time (~40 ms of CPU
on the test machine). The worker keeps a client a cluster for its life; the suite builds a
worker, and with it a client, per test (a tenth of tests/remediation's CPU went there). That
context depends on nothing of the client's but ``trust_env``, and nothing changes it once
made unless the kubeconfig's user has a client certificate (lightkube loads it into the
context): those, and clusters with a CA or ``insecure-skip-tls-verify``, are built as before.
"""

from __future__ import annotations

import ssl
from typing import Any

from lightkube.config import client_adapter

_SHARED: dict[bool, ssl.SSLContext] = {}


def share_default_trust() -> None:
    """One system-trust context a process for the kube clients that would each load it."""
    verify = client_adapter.verify_cluster
    if getattr(verify, "shared", False):
        return

    def shared(cluster: Any, user: Any, abs_file: Any, trust_env: bool = True) -> ssl.SSLContext:
        own = cluster.certificate_auth or cluster.certificate_auth_data or cluster.insecure
        if own or user.client_cert or user.client_cert_data:
            return verify(cluster, user, abs_file, trust_env=trust_env)
        if trust_env not in _SHARED:
            _SHARED[trust_env] = verify(cluster, user, abs_file, trust_env=trust_env)
        return _SHARED[trust_env]

    shared.shared = True  # type: ignore[attr-defined]
    client_adapter.verify_cluster = shared
