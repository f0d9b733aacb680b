"""Where targets enter (push config, task configs): the form, who may use it, where it points.

`TargetPolicy.problem` is the one entry check: the target's form (ambient.domain.push),
inbox only to the caller, `secret:NAME` only if the caller may use that secret, and the
destination guard's static check on user-aimed URLs (webhooks, HTTP Apprise URLs). The
same rules run again when a message is sent, with DNS, so nothing relies on entry alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ambient.clients.guard import DestinationGuard, RefusedDestinationError
from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.apprise_urls import (
    APPRISE_HOSTED,
    APPRISE_HTTP,
    apprise_disabled,
    apprise_http_url,
)
from ambient.domain.notify import Target
from ambient.domain.push import SECRET_PREFIX, target_problem
from ambient.refusals import Refusal
from ambient.settings import Settings

log = logging.getLogger(__name__)


class TargetError(ValueError):
    """The target ``field[index]`` is refused; the message starts with that field."""

    def __init__(self, field: str, index: int, problem: str | Refusal) -> None:
        super().__init__(f"{field}[{index}]: {problem}")
        self.problem = problem
        # The rules of use are the target's (its type passed the form's check).
        self.loc: tuple[str | int, ...] = (field, index, "target")  # as a 422 names it


class TargetPolicy:
    """The entry rules for notification targets, built once from settings."""

    def __init__(self, guard: DestinationGuard, secrets: SecretResolver) -> None:
        self.guard = guard
        self.secrets = secrets

    @classmethod
    def strict(cls) -> TargetPolicy:
        """No allow-listed networks and no server secrets."""
        return cls(DestinationGuard(), SecretResolver({}))

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetPolicy:
        return cls(DestinationGuard(settings.fetch_allow_cidrs), SecretResolver(settings.secrets))

    def problem(self, target: Target, *, user: str, is_admin: bool) -> str | Refusal | None:
        """Why ``user`` may not send to ``target``, or None (no DNS; see the module doc)."""
        value = target.target.strip()
        if (problem := target_problem(target)) is not None:
            warn_if_disabled(target)
            return problem
        if target.type == "inbox" and value not in ("", user):
            return Refusal(
                "an inbox target is your own inbox (%(user)s or empty), not %(value)s",
                user=repr(user),
                value=repr(value),
            )
        if value.startswith(SECRET_PREFIX):
            try:
                self.secrets.check_access(value.partition("?")[0], user=user, is_admin=is_admin)
            except PermanentNotifyError as exc:
                # Its Refusal as it is, for a page to say in its language.
                said = exc.args[0] if exc.args else None
                return said if isinstance(said, Refusal) else str(exc)
            return None
        if (url := aimed_url(target)) is not None:
            try:
                self.guard.check_url_static(url)
            except RefusedDestinationError as exc:
                return exc
        return None

    def check_all(
        self, targets: Sequence[Target], *, user: str, is_admin: bool, field: str
    ) -> None:
        """TargetError naming ``field[i]`` of the first target ``user`` may not use."""
        for index, target in enumerate(targets):
            if (problem := self.problem(target, user=user, is_admin=is_admin)) is not None:
                raise TargetError(field, index, problem)


def warn_if_disabled(target: Target) -> None:
    """Tell the operator an Apprise target's plugin is disabled here (the user reads only that
    it is not available): where a URL is checked for use, a secret's once resolved."""
    scheme = target.target.strip().partition("://")[0].lower()
    checked = APPRISE_HOSTED | APPRISE_HTTP  # the schemes refused as disabled
    if target.type == "apprise" and scheme in checked and apprise_disabled(scheme):
        log.warning(
            "Apprise %s:// is disabled on this system (its plugin lacks a requirement)", scheme
        )


def aimed_url(target: Target) -> str | None:
    """The http(s) URL a user aims with this target, if any (secrets resolved elsewhere)."""
    value = target.target.strip()
    if target.type == "webhook":
        return value
    if target.type == "apprise":
        scheme = value.partition("://")[0].lower()
        if scheme in ("http", "https"):
            return value
        if scheme in APPRISE_HTTP:
            return apprise_http_url(value)
    return None
