"""Secrets referenced by name: targets say `secret:ops-bot`, settings hold the value.

Workflow history, events and logs then carry only the name. Server secrets are defined by
the operator (AMBIENT_SECRETS). A plain `{"NAME": "value"}` is for admins only; an entry
`{"NAME": {"value": "...", "users": ["alice"]}}` is also usable by the users it lists.
A reference is the exact name: `secret:hook?extra=1` is refused, never glued onto the value.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from ambient.clients.notify.errors import PermanentNotifyError, SecretOriginError
from ambient.domain.push import SECRET_PREFIX, secret_shown
from ambient.refusals import N_, Refusal
from ambient.setting_types import ServerSecret, url_origin

# Refused at use as at creation: a metric source's at every read (its error stored, read back by
# its msgid to be said in the reader's language: metric_reads.said_refusal, the voice's words).
NOT_AVAILABLE = N_(
    "secret %(secret)s is not available to %(user)s: server secrets are for admins unless the "
    "operator lists the user in AMBIENT_SECRETS (%(example)s)"
)
NOT_TO_ORIGIN = N_(
    "secret %(secret)s may not be sent to %(origin)s: the operator lists the origins a secret "
    "may go to in AMBIENT_SECRETS (%(example)s)"
)
UNKNOWN = N_("unknown secret %(secret)s: the operator defines it in AMBIENT_SECRETS")
NOT_EXACT = N_(
    "%(secret)s: a secret is referenced by its exact name (secret:NAME), nothing may follow it"
)
REFUSALS = (NOT_AVAILABLE, NOT_TO_ORIGIN, UNKNOWN)


def origin_example(name: str, origin: str) -> str:
    """NOT_TO_ORIGIN's example: the AMBIENT_SECRETS entry letting ``name`` go to ``origin``."""
    return f'{{"{name}": {{"value": "...", "origins": ["{origin}"]}}}}'


class SecretResolver:
    def __init__(self, secrets: Mapping[str, SecretStr | ServerSecret]) -> None:
        self._secrets = {
            name: entry if isinstance(entry, ServerSecret) else ServerSecret(value=entry)
            for name, entry in secrets.items()
        }

    def check_access(self, value: str, *, user: str, is_admin: bool) -> None:
        """Refuse a `secret:NAME` reference the user may not use."""
        name = value[len(SECRET_PREFIX) :]
        entry = self._secrets.get(name)
        if entry is not None and (is_admin or user in entry.users):
            return
        if is_admin or "?" in name or "#" in name:
            self._name(value)  # refused as unknown, or as no exact name
        # A name nobody defined is refused in the same words as another's: "unknown" told a
        # member which names the operator defined, one guess at a time.
        example = '{"NAME": {"value": "...", "users": ["' + user + '"]}}'
        raise PermanentNotifyError(
            Refusal(NOT_AVAILABLE, secret=repr(secret_shown(name)), user=user, example=example)
        )

    def check_use(self, value: str, url: str, *, user: str, is_admin: bool) -> None:
        """Refuse a source's `secret:NAME` ``user`` may not send to ``url``."""
        self.check_access(value, user=user, is_admin=is_admin)
        self.check_origin(value, url)

    def check_origin(self, value: str, url: str) -> None:
        """Refuse sending the `secret:NAME` to ``url`` as a metric source's credentials: only
        to an origin its entry lists (a member chooses the URL, but not where the value goes)."""
        name = self._name(value)
        origin = url_origin(url)
        if origin is None or origin not in self._secrets[name].origins:
            shown = secret_shown(name)
            example = origin_example(shown, origin or url)
            raise SecretOriginError(
                Refusal(NOT_TO_ORIGIN, secret=repr(shown), origin=origin or url, example=example)
            )

    def usable(self, value: str, *, user: str, is_admin: bool) -> str:
        """``resolve``d if ``user`` may use it, else ``value`` as written (refused at send)."""
        if not value.startswith(SECRET_PREFIX):
            return value
        try:
            self.check_access(value, user=user, is_admin=is_admin)
            return self.resolve(value)
        except PermanentNotifyError:
            return value

    def resolve(self, value: str) -> str:
        """The value itself, or the named secret's value for an exact `secret:NAME`."""
        if not value.startswith(SECRET_PREFIX):
            return value
        return self._secrets[self._name(value)].value.get_secret_value()

    def _name(self, value: str) -> str:
        name = value[len(SECRET_PREFIX) :]
        if name not in self._secrets:
            if "?" in name or "#" in name:
                shown = repr(SECRET_PREFIX + secret_shown(name))
                raise PermanentNotifyError(Refusal(NOT_EXACT, secret=shown))
            raise PermanentNotifyError(Refusal(UNKNOWN, secret=repr(secret_shown(name))))
        return name
