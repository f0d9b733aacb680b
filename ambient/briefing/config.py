"""A user's daily briefing config (where yesterday's logs come from, when to speak) and the
local days it plans, as UTC instants a workflow can wait for.

Pure and deterministic. ``plan_day`` uses zoneinfo, so workflows get it through a local
activity (zoneinfo fails inside the sandbox, and the recorded result keeps replays stable
even if the tz database changes later).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from datetime import date as Date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ambient.clients.tencent.logs import sql_part
from ambient.domain.configs import NewBound, UserConfig, new_region, reading_stored
from ambient.domain.users import HHMM, TimeZone
from ambient.watches.configs import Keyword, PageUrls

Language = Literal["zh", "en"]


class FileLogSpec(BaseModel):
    # A field of the other source type is refused by name, not ignored.
    model_config = ConfigDict(extra="forbid")

    type: Literal["file"] = Field(default="file", description="a log file or folder")
    # Bounded (as the CLS fields below): the config travels whole in the workflow's input
    # (Temporal's limit is 2 MB) and is said back in refusals; no path is longer than PATH_MAX.
    path: Annotated[str, NewBound(4096)] = Field(
        min_length=1, description="a log file or a folder of rotated files"
    )
    # Most services write their local time without an offset, which the briefing's own zone
    # reads; a container's clock is often UTC. Left out of the dump when not given: the log
    # baseline's key (the source as JSON) stays the one stored, and a worker of the release
    # before (which forbids a field it does not know) still decodes a run's input.
    timezone: TimeZone | None = Field(
        default=None,
        exclude_if=lambda zone: zone is None,
        description=(
            "IANA time zone the file's times without an offset are written in (a container's "
            "clock: UTC); default: the briefing's time zone"
        ),
    )


class ClsLogSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["cls"] = Field(default="cls", description="Tencent Cloud CLS")
    topic_id: Annotated[str, NewBound(64)] = Field(min_length=1, description="CLS topic id")
    region: str | None = Field(default=None, description="its region (default: the configured one)")
    # SearchLog takes at most 12 KB: no query that ever worked is longer.
    query: Annotated[str, NewBound(12_288)] = Field(
        default="*", description="CQL filter; * for everything"
    )

    _region = field_validator("region")(new_region)

    @field_validator("query")
    @classmethod
    def _lines(cls, value: str, info: ValidationInfo) -> str:
        # Whatever follows CLS's first pipe outside quotes is SQL analysis ("| select ...",
        # "|histogram(...)"): it answers rows, not log lines, and the briefing said "0 lines read".
        if sql_part(value) is not None and not reading_stored(info):
            raise ValueError(
                "the briefing reads log lines: give a search filter without '| select ...' "
                "(an SQL analysis answers rows, not lines), e.g. 'level:ERROR' or '*'"
            )
        return value


LogSourceSpec = Annotated[FileLogSpec | ClsLogSpec, Field(discriminator="type")]


class BriefingConfig(UserConfig):
    """One user's daily briefing: where yesterday's logs come from and when to speak."""

    # Described as update_task publishes them (create_daily_briefing's arguments say more).
    log_source: LogSourceSpec | None = Field(
        default=None, description="where yesterday's logs come from; null for no logs"
    )
    timezone: TimeZone = Field(default="Asia/Shanghai", description="IANA time zone")
    prepare_at: HHMM = Field(default="05:00", description="when to prepare; HH:MM, 24-hour")
    window_start: HHMM = Field(default="06:00", description="greeting window start; HH:MM")
    window_end: HHMM = Field(default="10:00", description="greeting window end; HH:MM")
    language: Language = Field(default="zh", description="spoken language")
    push_if_not_greeted: bool = Field(
        default=True, description="push through your channels when nobody greets by window end"
    )
    # Checked by the news digest's own path (check_page): its rules, as a news digest's.
    news_urls: PageUrls = Field(
        default_factory=list, max_length=20, description="news pages / RSS feeds, at most 20"
    )
    categories: list[Keyword] = Field(
        default_factory=list, max_length=20, description="news keywords / categories, at most 20"
    )

    @field_validator("log_source", mode="before")
    @classmethod
    def _source_type(cls, value: Any) -> Any:
        # With no type, the field given says which source is meant ({"path": ...} is a file).
        if isinstance(value, dict) and value.get("type") is None:
            implied = "cls" if "topic_id" in value else "file" if "path" in value else None
            if implied is not None:
                value = {**value, "type": implied}
        return value

    @model_validator(mode="after")
    def _order(self) -> BriefingConfig:
        if self.window_end <= self.window_start:
            raise ValueError(
                f"window_end: the greeting window ends ({self.window_end}) before it starts "
                f"({self.window_start}); give window_end later than window_start"
            )
        if self.prepare_at > self.window_start:
            raise ValueError(
                f"prepare_at: preparation ({self.prepare_at}) must be at or before the window "
                f"start ({self.window_start}) so the briefing is ready when the user arrives"
            )
        return self


def _at(day: Date, hhmm: str, zone: ZoneInfo) -> datetime:
    """``hhmm`` on ``day`` in ``zone``, as an instant. A time the clocks skip that day (02:30
    as they jump from 02:00 to 03:00) is the jump itself, the first moment the wall shows a
    time past it: read with the offset before the jump (Python's fold=0), 02:30 was 03:30, and
    a window 02:30–03:15 ended before it began."""
    wall = datetime.combine(day, time.fromisoformat(hhmm))
    at = wall.replace(tzinfo=zone)
    if at.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return at
    # Skipped: the jump lies between the two readings of the time, an offset change apart.
    return _change_between(wall.replace(tzinfo=zone, fold=1), at, zone).astimezone(zone)


def _change_between(earlier: datetime, later: datetime, zone: ZoneInfo) -> datetime:
    """The instant ``zone``'s offset changes, between two instants with different offsets (to
    the second: a zone changes its clocks on a whole second)."""
    low, high = earlier.astimezone(UTC), later.astimezone(UTC)
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


class DayPlan(BaseModel):
    """One local day of a user's briefing, as UTC instants a workflow can wait for."""

    date: str
    prepare_at: datetime
    window_start: datetime
    window_end: datetime
    logs_from: datetime = Field(description="yesterday 00:00 local")
    logs_to: datetime = Field(description="today 00:00 local")
    utc_offset_minutes: int = Field(description="local offset inside the window, for HH:MM")
    # The day's clock change, when it has one (its instant, and the offset from then on): an
    # instant of the day is said with the offset it had, not the window start's.
    offset_changes_at: datetime | None = None
    utc_offset_after_minutes: int | None = None

    def local_hhmm(self, instant: datetime) -> str:
        return self.local(instant).strftime("%H:%M")

    def local(self, instant: datetime) -> datetime:
        """``instant`` as a naive local time: the offset inside the window from the day's
        midnight on, before it the offset at that midnight (a zone changes its clocks in the
        night, so the evening before, and its window, had that one)."""
        utc = instant.astimezone(UTC).replace(tzinfo=None)
        if instant >= self.logs_to and self.offset_changes_at is not None:
            # A day its clocks change: the offset before the change, or the one after it.
            after = instant >= self.offset_changes_at
            midnight = datetime.fromisoformat(self.date)
            before = midnight - self.logs_to.astimezone(UTC).replace(tzinfo=None)
            return utc + (
                timedelta(minutes=self.utc_offset_after_minutes or 0) if after else before
            )
        if instant >= self.logs_to:
            return utc + timedelta(minutes=self.utc_offset_minutes)
        midnight = datetime.fromisoformat(self.date)
        return utc + (midnight - self.logs_to.astimezone(UTC).replace(tzinfo=None))

    def _local_date(self, instant: datetime) -> Date:
        # The day's midnight and the one before it decide, not an offset: between midnight
        # and a clock change in the night the window's offset is the wrong one.
        if instant >= self.logs_to:
            return Date.fromisoformat(self.date)
        if instant >= self.logs_from:
            return Date.fromisoformat(self.date) - timedelta(days=1)
        return self.local(instant).date()

    def date_of(self, instant: datetime) -> str:
        """The local date of ``instant`` (its day's midnights decide, as ``given_on``'s)."""
        return self._local_date(instant).isoformat()

    def open_at(self, now: datetime) -> bool:
        """``now`` is inside the day's greeting window."""
        return self.window_start <= now < self.window_end

    def given_on(
        self, now: datetime, given_at: datetime | None, last_given_at: datetime | None
    ) -> datetime | None:
        """When the briefing was given on ``now``'s local day, by this run or the one before
        on that date: the one "given today" rule of the greeting and the voice's context."""
        if given_at is not None:
            return given_at
        if last_given_at is not None and self._local_date(last_given_at) == self._local_date(now):
            return last_given_at
        return None


def plan_for(day: Date, config: BriefingConfig) -> DayPlan:
    zone = ZoneInfo(config.timezone)
    start = _at(day, config.window_start, zone)
    offset = start.utcoffset() or timedelta(0)
    midnight = datetime.combine(day, time(0, 0), tzinfo=zone)
    yesterday = datetime.combine(day - timedelta(days=1), time(0, 0), tzinfo=zone)
    tomorrow = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    changes_at = after = None
    if midnight.utcoffset() != tomorrow.utcoffset():
        changes_at = _change_between(midnight, tomorrow, zone)
        after = int((tomorrow.utcoffset() or timedelta(0)).total_seconds() // 60)
    return DayPlan(
        date=day.isoformat(),
        prepare_at=_at(day, config.prepare_at, zone).astimezone(UTC),
        window_start=start.astimezone(UTC),
        window_end=_at(day, config.window_end, zone).astimezone(UTC),
        logs_from=yesterday.astimezone(UTC),
        logs_to=midnight.astimezone(UTC),
        utc_offset_minutes=int(offset.total_seconds() // 60),
        offset_changes_at=changes_at,
        utc_offset_after_minutes=after,
    )


def midnight_ending(date: str, config: BriefingConfig) -> datetime:
    """The midnight that ends the local day ``date`` in ``config``'s zone (its plan's logs_to)."""
    return plan_for(Date.fromisoformat(date), config).logs_to


def plan_day(
    now: datetime,
    config: BriefingConfig,
    after: str | None = None,
    after_midnight: datetime | None = None,
) -> DayPlan:
    """The next local day to brief: its window has not ended and it is later than ``after``,
    or, when known, its midnight is later than ``after_midnight`` (that day's, in the zone it
    was briefed in: the dates of two zones do not compare)."""
    day = now.astimezone(ZoneInfo(config.timezone)).date()
    while True:
        plan = plan_for(day, config)
        if after_midnight is not None:
            later = plan.logs_to > after_midnight
        else:
            later = after is None or plan.date > after
        if later and plan.window_end > now:
            return plan
        day += timedelta(days=1)
