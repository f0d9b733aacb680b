"""What the worker's activities are built with; made once by the entry point, passed down."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client

from ambient.clients.http1 import PageClient
from ambient.clients.llm import LLMClient
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.web import FETCH_TIMEOUT
from ambient.remediation.ladder import RemediationExecutor
from ambient.settings import Settings
from ambient.storage import Database


@dataclass
class WorkerDeps:
    settings: Settings
    db: Database
    channels: ChannelRegistry
    http: httpx.AsyncClient
    # Keep-alive connections for the GETs of pages and metric values (closed by the owner).
    pages: PageClient = field(default_factory=PageClient)
    # One fetch's deadline (a create waits PAST_FETCH beyond it: ambient.watches.reads).
    fetch_timeout: float = FETCH_TIMEOUT
    # Built from settings (and the environment's credentials) unless given, e.g. by tests.
    tencent: TencentCloud | None = field(default=None)
    # The OpenAI-compatible LLM (offline without a key); built from settings unless given.
    llm: LLMClient | None = field(default=None)
    # Remediation executors by name ("dry_run", "kubernetes"); built from settings unless given.
    executors: dict[str, RemediationExecutor] | None = field(default=None)
    # What runs beside the worker while it runs (the poll leases' upkeep), given its client;
    # filled by build_activities, started and cancelled by the entry point.
    upkeep: list[Callable[[Client], Coroutine[Any, Any, None]]] = field(default_factory=list)
