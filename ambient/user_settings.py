"""Saving a user's own settings, the one way every door does it (``PATCH /users/me``, the
settings page): checked, then the running daily briefing moved to a schedule that changed,
then stored. Briefing refused or unreachable: nothing is stored, and saving again retries.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.exceptions import TemporalError

from ambient import grants
from ambient.briefing.errors import BriefingError, BriefingUnavailableError
from ambient.domain.users import UserSettings
from ambient.refusals import N_, Refusal
from ambient.settings import Settings
from ambient.status import temporal_down, temporal_not_set_up
from ambient.storage.models import User
from ambient.storage.users import UserRepository
from ambient.watches.inputs import TaskError

if TYPE_CHECKING:
    from ambient.briefing.service import BriefingService
    from ambient.watches.service import TaskService

log = logging.getLogger(__name__)

# The settings that are a daily briefing's schedule, by the names its config gives them.
SCHEDULE = {
    "timezone": "timezone",
    "briefing_prepare_at": "prepare_at",
    "briefing_window_start": "window_start",
    "briefing_window_end": "window_end",
}
TEMPORAL_AWAY = N_(
    "your settings were not saved: Temporal, which runs your daily briefing, is not reachable "
    "right now, so the briefing could not take the new schedule; save them again in a moment"
)
TEMPORAL_REFUSED = N_("Temporal refused the change")
ZONE_NOT_FOLLOWED = N_(
    "your settings were not saved: a reminder or digest in your time zone could not take the "
    "new one (%(why)s); save them again in a minute"
)
NOT_FOLLOWED = N_(
    "your settings were not saved: your daily briefing could not take the new schedule "
    "(%(why)s); save them again in a minute"
)


async def save_settings(
    session: AsyncSession,
    user: User,
    data: UserSettings,
    briefings: BriefingService,
    *,
    settings: Settings,
    tasks: TaskService,
) -> None:
    """Store ``data`` as ``user``'s settings. When it changes their schedule (time zone,
    preparation, greeting window), their running briefing takes the whole schedule the
    settings now hold, as the settings page shows it (SettingRefusedError, BriefingError:
    nothing stored). No voiceprint id that is a name ``settings`` give rights to
    (``grants.check_voiceprint``)."""
    grants.check_voiceprint(settings, data.voiceprint_id, user.name)
    users = UserRepository(session)
    await users.check(user, data)
    before = {field: getattr(user, field) for field in SCHEDULE}
    given = data.model_dump(include=set(SCHEDULE), exclude_none=True)
    if {**before, **given} != before:
        schedule = {SCHEDULE[field]: value for field, value in {**before, **given}.items()}
        # The check's read transaction ended: no pooled connection held across Temporal's
        # round trips (objects stay loaded, expire_on_commit=False).
        await session.commit()
        try:
            await briefings.follow_schedule(user.name, schedule)
        except (BriefingError, TemporalError, RuntimeError) as exc:
            if temporal_not_set_up(exc):
                raise  # said by every door as Temporal not set up: saving again never helps
            if temporal_down(exc):
                log.warning("settings of %s not saved: Temporal did not answer: %s", user.name, exc)
                raise BriefingUnavailableError(Refusal(TEMPORAL_AWAY)) from exc
            if isinstance(exc, TemporalError):
                # Temporal refused a call of the move (a start, a describe): said as the
                # briefing's refusal, not a 500; its text stays in the log.
                log.warning("settings of %s not saved: Temporal refused: %s", user.name, exc)
                raise BriefingUnavailableError(
                    Refusal(NOT_FOLLOWED, why=Refusal(TEMPORAL_REFUSED))
                ) from exc
            if not isinstance(exc, BriefingError):
                raise
            why = exc.args[0] if exc.args and isinstance(exc.args[0], Refusal) else str(exc)
            raise BriefingUnavailableError(Refusal(NOT_FOLLOWED, why=why)) from exc
    zone = given.get("timezone")
    if before["timezone"] and zone and zone != before["timezone"]:
        # Reminders and digests left in the profile's zone follow it too ("runs in the user's
        # own time zone"): they kept firing at the old zone's hour. Moved before the settings
        # are stored: one not moved stores nothing, and saving again moves the rest.
        try:
            await tasks.follow_zone(user.name, before["timezone"], zone)
        except (TaskError, TemporalError, RuntimeError) as exc:
            if temporal_not_set_up(exc):
                raise
            log.warning("settings of %s not saved: a reminder kept its zone: %s", user.name, exc)
            if temporal_down(exc):
                raise BriefingUnavailableError(Refusal(TEMPORAL_AWAY)) from exc
            raise BriefingUnavailableError(Refusal(ZONE_NOT_FOLLOWED, why=str(exc))) from exc
    await users.update(user, data)
    await session.commit()
