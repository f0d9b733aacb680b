"""The CA bundle our httpx clients verify servers against, loaded once a process."""

from __future__ import annotations

import ssl
from functools import cache

import certifi


@cache
def ca_context() -> ssl.SSLContext:
    """certifi's bundle in a context, as httpx makes for a client given no ``verify``.

    httpx loads the bundle again for every client (~15 ms of CPU each); a process's clients
    (httpx's and the page client's) share one context: they all speak HTTP/1.1 (httpcore sets
    that ALPN on it at each connection too), and nothing else changes it once made.
    """
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context
