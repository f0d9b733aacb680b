"""Build the channel registry from settings: the one place channels are wired."""

from __future__ import annotations

from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.inbox import InboxChannel
from ambient.settings import Settings
from ambient.storage import Database


def build_channels(settings: Settings, db: Database) -> ChannelRegistry:
    """Every channel the settings make available; inbox always."""
    registry = ChannelRegistry([InboxChannel(db)])
    return registry
