"""Secrets referenced by name: targets say `secret:ops-bot`, settings hold the value.

Workflow history, events and logs then carry only the name.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from ambient.clients.notify.base import PermanentNotifyError

PREFIX = "secret:"


class SecretResolver:
    def __init__(self, secrets: Mapping[str, SecretStr]) -> None:
        self._secrets = dict(secrets)

    def resolve(self, value: str) -> str:
        """The value itself, or the named secret's value for `secret:NAME` (query kept)."""
        if not value.startswith(PREFIX):
            return value
        name, sep, query = value[len(PREFIX) :].partition("?")
        if name not in self._secrets:
            known = ", ".join(sorted(self._secrets)) or "none"
            raise PermanentNotifyError(
                f"unknown secret {name!r} (set it in AMBIENT_SECRETS); known: {known}"
            )
        return self._secrets[name].get_secret_value() + (sep + query if sep else "")
