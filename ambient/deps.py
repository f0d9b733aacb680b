"""What the worker's activities are built with; made once by the entry point, passed down."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from ambient.clients.notify import ChannelRegistry
from ambient.settings import Settings
from ambient.storage import Database


@dataclass
class WorkerDeps:
    settings: Settings
    db: Database
    channels: ChannelRegistry
    http: httpx.AsyncClient
