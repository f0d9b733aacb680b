"""Notification channels behind one interface, looked up by name in a registry."""
