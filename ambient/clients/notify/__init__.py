"""Notification channels behind one interface, looked up by name in a registry."""

from ambient.clients.notify.base import Channel, ChannelRegistry
from ambient.clients.notify.errors import (
    NotifyError,
    PermanentNotifyError,
    TransientNotifyError,
    UnknownChannelError,
)

__all__ = [
    "Channel",
    "ChannelRegistry",
    "NotifyError",
    "PermanentNotifyError",
    "TransientNotifyError",
    "UnknownChannelError",
]
