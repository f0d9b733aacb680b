"""Activities: the only code a workflow uses to touch the outside world."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.events import EventActivities
from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps


def build_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to clients built once by the entry point."""
    events = EventActivities(deps.db)
    notify = NotifyActivities(deps.db, deps.channels)
    return [events.record_event, notify.notify]
