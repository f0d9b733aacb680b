"""The daily briefing in product terms: the briefing written, what the workflow exchanges and
what the service answers (the config and its days: `config`; a greeting's answers:
`greeting_answers`).

Pure: no I/O, no clock; safe inside workflows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ambient.briefing.config import BriefingConfig, DayPlan, Language
from ambient.briefing.logreport import LogReport, TemplateStat
from ambient.briefing.unprepared import (
    NOT_PUSHED,
    NOT_RECORDED,
    Unprepared,
    not_prepared,
    said_to_member,
)
from ambient.clients.tencent.alarms import AlarmRecord
from ambient.domain.configs import as_it_ran
from ambient.domain.workflow_input import WorkflowInput

# A config the workflow runs on, wherever it is read back (its input, its status, the
# requests of its activities, what a delete answers): as it ran. A rule added since refuses
# a config where one enters (``parse_config``), never a briefing already running on it.
RunningConfig = Annotated[BriefingConfig, as_it_ran(BriefingConfig)]

# About a minute of speech (Chinese ~250-300 characters, English ~160 words).
SPOKEN_MAX_CHARS = 1200


def briefing_link(user: str, date: str, version: int, language: str) -> tuple[str, str]:
    """The share link's title (in the briefing's language) and key: one per version."""
    title = f"{'每日简报' if language == 'zh' else 'Daily briefing'} {date}"
    return title, f"briefing/{user}/{date}/v{version}"


# --- what the LLM (or the offline writer) produces --------------------------------------


class BriefingDraft(BaseModel):
    """The structured briefing the LLM writes; validated, then segmented by us for TTS."""

    headline: str = Field(max_length=200, description="one sentence: the state of yesterday")
    what_happened: list[str] = Field(default_factory=list, max_length=10)
    needs_attention: list[str] = Field(default_factory=list, max_length=10)
    fixed_automatically: list[str] = Field(default_factory=list, max_length=10)
    needs_a_person: list[str] = Field(default_factory=list, max_length=10)
    spoken_text: str = Field(
        min_length=1,
        max_length=SPOKEN_MAX_CHARS,
        description="about one minute of speech in the user's language, plain sentences",
    )


# The alarms' note without Tencent Cloud: nothing failed, there is no history to read.
ALARMS_NOT_CONFIGURED = "Tencent Cloud is not configured: no Cloud Monitor or CLS alarm history"


class SourceNote(BaseModel):
    """How one source fared while preparing (a failing source is said, not hidden)."""

    source: str
    ok: bool
    detail: str = ""
    # A failed cloud read's class (ambient.cloud.errors.failure's kind: auth, unavailable,
    # invalid_parameter...): what the spoken briefing says to do about it.
    kind: str = ""


# Why the model's briefing was not given: its draft not faithful to the data, or not a valid
# one, the server's refusal of the request (of its key: 401, 403), or no answer (late, or
# unreachable).
LlmFailure = Literal["unfaithful", "invalid", "refused", "key", "unanswered"]


class BriefingInputs(BaseModel):
    """Everything preparation gathered, reduced: what the LLM sees (as data) and offline reads."""

    date: str
    language: Language = "zh"
    # The briefing's zone: the times the model reads are said in it (as its log report is).
    timezone: str = "UTC"
    # When the briefing is first spoken (HH:MM, the greeting window's start): its greeting.
    window_start: str = "06:00"
    logs_configured: bool = Field(default=True, description="a log source was set up to read")
    log_filter: str | None = Field(default=None, description="the CLS filter lines matched, not *")
    log_lines: int = 0
    logs_capped: bool = Field(default=False, description="only the newest log lines were read")
    logs_unreadable: int = Field(default=0, description="the window's lines without a read time")
    logs_broken: int = Field(default=0, description="log files not read to their end")
    logs_unleveled: int = Field(
        default=0, description="lines read with no level written (an error is not told apart)"
    )
    errors: int = 0
    warnings: int = 0
    trend: str | None = None
    top_templates: list[TemplateStat] = Field(default_factory=list)
    anomalies: list[str] = Field(default_factory=list)
    alarms: list[AlarmRecord] = Field(default_factory=list)
    alarms_configured: bool = Field(
        default=False, description="Tencent Cloud configured: read or not, as the notes say"
    )
    alarms_skipped: dict[str, int] = Field(
        default_factory=dict, description="alarms skipped unreadable, by source (monitor, cls)"
    )
    fixed: list[str] = Field(default_factory=list)
    needs_person: list[str] = Field(default_factory=list)
    news: list[str] = Field(default_factory=list)
    # The day's discussions on the team bus: "topic — N messages, status (link)".
    discussions: list[str] = Field(default_factory=list)
    notes: list[SourceNote] = Field(default_factory=list)
    report_markdown: str = ""
    llm_failed: LlmFailure | None = Field(
        default=None, description="why the model's briefing is not the one given (its note says)"
    )


class BriefingContent(BriefingDraft):
    date: str
    language: Language = "zh"
    generated_by: str = Field(description="offline, or the LLM model name")
    spoken_segments: list[str]
    sources: list[SourceNote] = Field(default_factory=list)
    log_lines: int = 0
    errors: int = 0
    warnings: int = 0


class PreparedBriefing(BaseModel):
    """What the workflow keeps of a prepared briefing (the full report stays in the database)."""

    date: str
    version: int
    generated_by: str
    headline: str
    spoken_text: str
    spoken_segments: list[str]
    sources: list[SourceNote] = Field(default_factory=list)
    # The day's greeting as stored when it was spoken: a run reset to before it (Web UI) has
    # lost it from its own state, and the greeting the reset applies again is past its answer_by.
    given_at: datetime | None = None
    given_via: str | None = None


# A caller's retry-safe id of a greeting, a send or a task's update (every door's bound).
MAX_REQUEST_ID = 128


class DayPushed(BaseModel):
    """What the push channels did with a day's briefing once pushed (``pushed_at``: its inbox
    copy stored): the channels (by type, in order) that took it, by the window's push or a
    send on request, and whether every push channel it went to did. None took it (none set
    up, or each failed): the inbox alone has it, and no door says it was sent
    (`ambient.briefing.pushed.day_pushed` reads it)."""

    model_config = ConfigDict(frozen=True)
    took: tuple[str, ...] = ()
    all_took: bool = False
    # The day's first push, the one its pushed_at times (the window's push, or a send on
    # request made before it): the channels that took it and whether every one it went to did.
    # A door says a time only of these.
    first_took: tuple[str, ...] = ()
    first_all_took: bool = False
    # The channels that took only a later push, not the first (a send at 14:00 of a day pushed
    # at 10:00): said as sent later, without a time.
    later_took: tuple[str, ...] = ()


class BriefingStatus(BaseModel):
    """The workflow's status query: the day it is on and what happened to it."""

    user: str
    task_id: str
    config: RunningConfig
    paused: bool = False
    day: DayPlan | None = None
    phase: str = "planning"
    prepared: PreparedBriefing | None = None
    prepared_at: datetime | None = None
    preparation_error: str | None = None
    # Why, in the user's terms (what the greeting says); None from a worker that did not say it.
    preparation_failure: Unprepared | None = None
    given_at: datetime | None = None
    given_via: str | None = None
    pushed_at: datetime | None = None
    # Which push channels took the day's push: read from its deliveries by the service as it
    # answers (`BriefingService.told`), never by the workflow; None unread or not pushed.
    pushed_to: DayPushed | None = None
    # The last push's channels that failed (its inbox copy is kept), until the next push.
    push_error: str | None = None
    # The day's greeting the database did not take (retries spent): "DATE: why".
    record_error: str | None = None
    days_completed: int = 0
    last_date: str | None = None
    # last_date's midnight in the zone it was briefed in (what a new config plans after).
    last_midnight: datetime | None = None
    last_given_at: datetime | None = None
    # The day the run a new config replaced had prepared (BriefingCarry.replaced_date).
    replaced_date: str | None = None
    # Stopped, still finishing (recording today's greeting): it ends without another day.
    stopping: bool = False
    # A pause or resume's answer of a briefing already so: nothing was sent (ALREADY_SO).
    note: str | None = None

    def told(self, *, operator: bool) -> BriefingStatus:
        """The status as its caller reads it: a failure's own text (a driver's, with its SQL or
        host) to an ``operator`` (an admin) alone, what failed and what to do to anyone else
        (the worker's log keeps the text), as get_status tells them."""
        if operator:
            return self
        said = {
            "preparation_error": self.preparation_error and not_prepared(self.preparation_failure),
            "record_error": said_to_member(self.record_error, NOT_RECORDED),
            "push_error": said_to_member(self.push_error, NOT_PUSHED, channels=True),
        }
        return self.model_copy(update=said)

    def at(self, now: datetime) -> tuple[bool, bool]:
        """(ready, given today) as a greeting at ``now`` decides them: ready when it would speak
        the prepared briefing (not paused, in the window, not given that local day)."""
        day = self.day
        if day is None:
            return False, False
        given = day.given_on(now, self.given_at, self.last_given_at) is not None
        ready = not self.paused and self.prepared is not None and not given and day.open_at(now)
        return ready, given


class BriefingCarry(BaseModel):
    """What one day's run hands the next through continue-as-new."""

    last_date: str | None = None
    # last_date's midnight in the zone it was briefed in (a new zone plans after it).
    last_midnight: datetime | None = None
    last_given_at: datetime | None = None
    days_completed: int = 0
    paused: bool = False
    # The last push's channels that failed for good, kept until the next push: "DATE: why".
    last_push_error: str | None = None
    last_record_error: str | None = None
    # The day the run a new config replaced had prepared: sendable while this run has not
    # prepared it (paused, it plans no day; in a new zone it plans another date).
    replaced_date: str | None = None
    # That day, when it was neither spoken nor pushed: pushed by this run if it plans another
    # date (a new zone or window in which that morning's window is already over).
    unheard_date: str | None = None
    # The run a new config replaced (its create's start terminated it): a greeting it spoke
    # after the status this carry was made of was read (a held run still answers greetings) is
    # read from its history as this run starts, before it plans (`greeting_after_hand_over`).
    replaced_run: str | None = None


class BriefingRun(WorkflowInput):
    user: str
    task_id: str
    config: RunningConfig
    carry: BriefingCarry = Field(default_factory=BriefingCarry)


class PlanRequest(BaseModel):
    now: datetime
    config: RunningConfig
    after: str | None = None
    after_midnight: datetime | None = None


# Attempts a preparation gets (its retry policy): all but the last read a source again after a
# passing Tencent Cloud failure; the last prepares without it.
PREPARE_ATTEMPTS = 3
# A preparation's bound (its start-to-close timeout), the one for the whole briefing: the
# model gets what is left of it, less a tenth to store the briefing, and past that the
# offline briefing is written. llm_timeout (3,600 s for the local model) bounds a single
# request of any caller; a briefing prepared at 05:00 must be ready at 06:00 whatever it is.
PREPARE_TIMEOUT = timedelta(minutes=10)


def news_task(task_id: str) -> str:
    """The task the briefing's news pages are stored under (one text a day: the day's
    preparations compare with the page as the day before stored it)."""
    return f"{task_id}/news"


class PrepareRequest(BaseModel):
    user: str
    task_id: str
    config: RunningConfig
    day: DayPlan
    news: list[str] = Field(default_factory=list)
    reason: str = Field(default="scheduled", description="scheduled, greeting, regenerate")


class PushRequest(BaseModel):
    user: str
    date: str
    at: datetime | None = Field(default=None, description="workflow time of the push")
    reason: str = Field(default="not greeted", description="not greeted, requested")
    key: str = Field(description="idempotency key of this push")


class GreetingRecord(BaseModel):
    user: str
    date: str
    given_at: datetime
    via: str


class ReplacedRun(BaseModel):
    """The run a new config replaced, and the last greeting the new run carries already."""

    user: str
    task_id: str
    run_id: str
    given_after: datetime | None = None


class CarriedGreeting(BaseModel):
    """A greeting a replaced run spoke after its status was read: its date and that date's
    midnight in the zone it was briefed in, when, and through what."""

    date: str
    midnight: datetime
    given_at: datetime
    via: str


# --- what the service answers ----------------------------------------------------------
KIND = "daily_briefing"


class BriefingRef(BaseModel):
    task_id: str
    kind: str = KIND
    state: str = "active"
    created: bool = True
    config: RunningConfig
    # The run this create started (None: the running one found), which an update reads by
    # its id; not said to the caller.
    _run_id: str | None = PrivateAttr(default=None)

    def of_run(self, run_id: str | None) -> BriefingRef:
        self._run_id = run_id
        return self

    @property
    def run_id(self) -> str | None:
        return self._run_id


class BriefingView(BaseModel):
    """A stored briefing as the caller sees it."""

    model_config = ConfigDict(from_attributes=True)
    date: str
    status: str
    version: int
    generated_by: str
    content: BriefingContent
    report_markdown: str
    prepared_at: datetime | None = None
    given_at: datetime | None = None
    given_via: str | None = None
    # When it was pushed (its first push): its inbox copy stored ("pushed"), whether or not a
    # push channel took it; ``pushed_to`` says which did, by that push or a later one.
    pushed_at: datetime | None = None
    pushed_to: DayPushed | None = None


class BriefingListItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # a stored briefing's row, as BriefingView
    date: str
    status: str
    headline: str
    generated_by: str
    given_at: datetime | None = None
    pushed_at: datetime | None = None
    pushed_to: DayPushed | None = None


class LogAnalysis(BaseModel):
    report: LogReport
    markdown: str
    source: str
    read: str
