"""Notification channels behind one interface, looked up by name in a registry."""

from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.errors import PermanentNotifyError, TransientNotifyError

__all__ = ["ChannelRegistry", "PermanentNotifyError", "TransientNotifyError"]
