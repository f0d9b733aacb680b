"""What the daily briefing refuses, and the checks of what it is given (config, request ids,
dates) that `ambient.briefing.service` runs before it changes anything.

BriefingError
 ├── InvalidBriefingError    bad config or arguments: nothing was changed
 ├── BriefingRefusedError    another user's briefing, without the admin role
 ├── BriefingUnavailableError  the server could not do it now (its preparation failed)
 ├── BriefingUnanswered      a regenerate or send its worker did not answer in time
 └── BriefingNotFoundError   no daily briefing (or no briefing of that date) for this user
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ambient.briefing.config import BriefingConfig
from ambient.briefing.models import MAX_REQUEST_ID
from ambient.domain.configs import NUL_REFUSED
from ambient.domain.field_errors import Refused, field_errors, field_problems
from ambient.no_answer import refused_request, silent_worker
from ambient.refusals import Refusal, said_back


class BriefingError(Exception):
    """A briefing operation failed; the message says what to do."""


class InvalidBriefingError(BriefingError):
    """The request was invalid; nothing changed. ``field`` names the offending field,
    ``given`` the value refused there (echoed as FastAPI's 422s do)."""

    def __init__(self, message: str | Refusal, field: str | None = None, given: Any = None) -> None:
        super().__init__(message)
        self.field = field or field_of(str(message))
        self.given = given


class BriefingStartedError(BriefingError):
    """A new config is running (the update applied), but a control sent while it was being
    changed was lost: send it again."""


class BriefingReplacedError(BriefingError):
    """The run an update was taken up by ended under it (a new config, a stop): do it again."""


class BriefingUnavailableError(BriefingError):
    """Nothing in the request was wrong: the server could not do it now (a regenerate's
    preparation failed: the database away, a source down); try again in a few minutes."""


class BriefingUnanswered(BriefingError):
    """A regenerate or send (``what``) its worker did not answer by the request's deadline.
    ``sent``: the server may hold it (it may still run); ``taken``: its worker is at it."""

    def __init__(self, what: str, *, sent: bool, taken: bool) -> None:
        did = "was taken and may still finish" if taken else "was asked for and may still run"
        said = f"the {what} {did}: call get_task later to see the briefing's status"
        super().__init__(
            f"{refused_request(silent_worker())}; {said if sent else 'nothing was sent'}"
        )
        self.sent, self.taken = sent, taken


class BriefingRefusedError(BriefingError):
    """The caller may not do this to another user's briefing (it needs the admin role)."""


class BriefingNotFoundError(BriefingError):
    """No daily briefing task, or no briefing of that date, for the caller."""


def parse_config(config: dict[str, Any]) -> BriefingConfig:
    """A validated config; errors name the field."""
    try:
        return BriefingConfig.model_validate(config)
    except ValidationError as exc:
        raise invalid_config(field_errors(exc, BriefingConfig), exc.errors()[0]["input"]) from None


def invalid_config(errors: Sequence[Refused], given: Any = None) -> InvalidBriefingError:
    problems = "; ".join(field_problems(errors))
    first = ".".join(str(part) for part in errors[0][0])
    return InvalidBriefingError(f"invalid briefing config — {problems}", first, given)


def field_of(message: str) -> str | None:
    match = re.search(r"(?:— |^)(?:Value error, )?([a-z_][a-z0-9_.]*): ", message)
    return match[1] if match else None


def request_id_of(given: str | None) -> str:
    """The caller's retry-safe id (refused empty or past its bound, naming it), or a fresh one
    when none is given."""
    if given is not None and not 1 <= len(given) <= MAX_REQUEST_ID:
        raise InvalidBriefingError(f"request_id: 1-{MAX_REQUEST_ID} characters", field="request_id")
    if given is not None and "\x00" in given:  # the doors refuse it before; a key cannot hold it
        raise InvalidBriefingError(f"request_id: {NUL_REFUSED}", field="request_id")
    return uuid.uuid4().hex if given is None else given


def update_id_of(kind: str, key: str) -> str:
    """The Temporal update id of a request: the same key is applied once."""
    return f"{kind}/" + hashlib.sha256(key.encode()).hexdigest()[:32]


def check_date(value: str) -> str:
    """The date as briefings are stored (YYYY-MM-DD): strptime also reads '2026-1-5'."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").date().isoformat()
    except ValueError:
        day = said_back(value, 40)  # as far as a date could go
        raise InvalidBriefingError(
            Refusal("date: %(day)s is not a date as YYYY-MM-DD", day=day)
        ) from None
