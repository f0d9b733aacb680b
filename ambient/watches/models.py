"""Workflow inputs, states and status views of watch tasks (carried across continue-as-new)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from ambient.domain.configs import as_it_ran
from ambient.domain.workflow_input import WorkflowInput
from ambient.watches.configs import TaskKind, TaskState, WebMonitorConfig
from ambient.watches.threshold_config import ThresholdWatchConfig
from ambient.watches.threshold_rule import ThresholdState

# The release before kept no ``validators_from``: it sent a page's validators to the watched
# URL, also when they came from where a redirect led (another site's, leaked to it).
NOT_KNOWN = "not known"


class UrlState(BaseModel):
    hash: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    # Where the validators came from: None, the watched URL; else where a redirect led, as
    # ``validators_key`` (no signed query in history). NOT_KNOWN (a state of the release
    # before): they are sent nowhere once, and that read tells where they come from.
    validators_from: str | None = NOT_KNOWN
    last_outcome: str | None = None
    last_error: str | None = None
    failures: int = 0
    failing: bool = False
    last_checked_at: datetime | None = None
    last_change_at: datetime | None = None
    # Polling: a hash of the raw body (an identical body skips text extraction) and the
    # extraction rules the text hash was made with (a rule change is not a page change): the
    # extractor's and the page's own (``WebMonitorConfig.reading``).
    raw_hash: str | None = None
    extractor: str | None = None
    reading: str | None = None
    # A 429 or 503 with Retry-After: the page is not asked again before then (checks of it
    # meanwhile do not happen, and are not failures).
    not_before: datetime | None = None

    def shown(self) -> dict[str, Any]:
        """The state as a status shows it: where its validators came from ("not known", a
        hash) tells a reader nothing and is left out."""
        return self.model_dump(mode="json", exclude={"validators_from"})


class Failure(BaseModel):
    """The last thing that went wrong outside a check: an event or delivery that failed."""

    what: str
    error: str
    at: datetime


class WatchLife(BaseModel):
    """What every watch carries across continue-as-new besides its own results.

    Controls that arrived but were not acted on yet travel with the state, so a stop, a
    queued check or a pause event is never lost at the hand-over.
    """

    checks: int = 0
    paused: bool = False
    stop_requested: bool = False
    check_requested: bool = False
    control_events: list[str] = Field(default_factory=list)
    control_count: int = 0
    delivery_failures: int = 0
    event_failures: int = 0
    last_failure: Failure | None = None


class WebMonitorState(WatchLife):
    urls: dict[str, UrlState] = Field(default_factory=dict)
    hits_total: int = 0
    changes_total: int = 0
    # Polling: the last event the workflow recorded from a poll (events are numbered per
    # life) and when the next check is due on the watch's fixed-rate grid.
    poll_seq: int = 0
    next_due: datetime | None = None
    # The life's delivery failures that came after their poll handed back, counted so far.
    late_failures_seen: int = 0
    # Events the last poll handed back before their deliveries settled: the next poll's.
    redeliver: list[int] = Field(default_factory=list)


class WebMonitorInput(WorkflowInput):
    user: str
    task: str
    config: Annotated[WebMonitorConfig, as_it_ran(WebMonitorConfig)]
    state: WebMonitorState | None = None
    # Tests only: continue-as-new after this many checks in one run (Temporal's own
    # suggestion applies whether or not it is set).
    continue_as_new_after_checks: int | None = None
    # How long one poll may run before it hands its results to the workflow (tests and
    # benchmarks shorten it; None is the product default).
    poll_window_seconds: float | None = None
    # Tests and benchmarks only: check this often instead of every `check_interval_minutes`
    # (whose product minimum is one minute).
    check_interval_seconds: float | None = Field(default=None, gt=0)
    # Tests only: continue-as-new once the run's history has this many events (None: the
    # workflow's RUN_EVENTS; a hand-back of an uncached workflow replays the whole run).
    continue_as_new_after_events: int | None = Field(default=None, gt=0)
    # Tests only: a failed poll is tried again after this many seconds, then twice that, ...
    # (None: POLL_RETRY's 1 s).
    poll_retry_seconds: float | None = Field(default=None, gt=0)


class ThresholdWatchState(WatchLife):
    rule: ThresholdState = Field(default_factory=ThresholdState)
    failures: int = 0
    failing: bool = False
    last_error: str | None = None
    last_value: float | None = None
    last_checked_at: datetime | None = None
    # The time of the last datapoint the rule took (sources that say it: Cloud Monitor).
    last_point_at: datetime | None = None
    breaches_total: int = 0
    # A breach the owner was told of whose source an update replaced: said once, unwatched.
    left_breach: dict[str, Any] | None = None
    # The breaches, recoveries and "no longer watched" this life told so far, each recorded
    # with its number (``told``): a record that holds a lower one than an alert's was not
    # that alert (the writes between failed), one that holds the same was (a reset run).
    alerts_told: int = 0


class ThresholdWatchInput(WorkflowInput):
    user: str
    task: str
    config: Annotated[ThresholdWatchConfig, as_it_ran(ThresholdWatchConfig)]
    state: ThresholdWatchState | None = None
    continue_as_new_after_checks: int | None = None


class TaskStatus(BaseModel):
    task_id: str
    kind: TaskKind
    user: str
    state: TaskState
    checks: int
    config: dict[str, object]
    detail: dict[str, object] = Field(default_factory=dict)
    # An update's answer: set when another update replaced its config before the answer.
    note: str | None = None
    # An update's answer: the config fields it changed (dotted inside objects); None otherwise.
    changed: list[str] | None = None


class SiteWait(BaseModel):
    """A page a check now did not ask: its server asked us to wait (a 429's or 503's
    Retry-After) until ``until`` (UTC), and the watch checks it again after then."""

    url: str
    site: str
    until: datetime


class TaskRef(BaseModel):
    task_id: str
    kind: TaskKind
    state: TaskState
    created: bool = True
    # What the first check found (per URL outcome and error, or the first value), so a
    # wrong URL is reported at creation; None when it did not finish in time.
    baseline: dict[str, Any] | None = None
    # Set when a control was delivered but its worker did not confirm it in time, or (check
    # now) when a page's server asked us to wait: the ``waits`` said in a sentence.
    note: str | None = None
    # Check now: the pages it did not check since their server asked us to wait, and until
    # when; empty when every page was checked (or the control was not a check now).
    waits: list[SiteWait] = Field(default_factory=list)
    # Check now of a watch: what the check found, a web monitor's on each page it asked
    # (outcome changed, hit with the keyword ``hits``, unchanged, not_modified or error, and
    # the ``error``), a threshold watch's reading (outcome breach, within or error, the value,
    # conditions, breaching and error); None when it was not a check now or its result was not
    # in by the answer (``note``).
    checked: dict[str, Any] | None = None
