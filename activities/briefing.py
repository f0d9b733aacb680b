"""Daily briefing activities: plan the day, prepare (gather, reduce, write), record, push.

Preparation never fails because one source did: each source's failure becomes a note the
briefing speaks ("the log source could not be read"), and the day goes on. Everything it
writes is keyed by (user, local date), so a retried or repeated preparation replaces, never
duplicates.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from ambient import activity_attempts
from ambient.activity_attempts import heartbeating
from ambient.briefing import records
from ambient.briefing.config import ClsLogSpec, DayPlan, midnight_ending, plan_day
from ambient.briefing.logreport import (
    LogBaseline,
    LogReducer,
    LogReport,
    update_baseline,
)
from ambient.briefing.logreport_markdown import render_markdown
from ambient.briefing.logs import LogFileError, fill_from_report, read_log_source, source_name
from ambient.briefing.models import (
    ALARMS_NOT_CONFIGURED,
    PREPARE_ATTEMPTS,
    PREPARE_TIMEOUT,
    BriefingContent,
    BriefingInputs,
    CarriedGreeting,
    GreetingRecord,
    PlanRequest,
    PreparedBriefing,
    PrepareRequest,
    PushRequest,
    ReplacedRun,
    SourceNote,
    briefing_link,
)
from ambient.briefing.records import store_given
from ambient.briefing.report import full_report_markdown, summary_markdown
from ambient.briefing.unprepared import DATABASE_FAILED
from ambient.briefing.writer import finish, write_briefing
from ambient.clients.llm import LLMClient
from ambient.clients.tencent.alarms import AlarmHistory, list_alarms
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError, TencentRetryableError
from ambient.cloud.errors import (
    BUSY,
    NO_INDEX,
    NOT_REACHED,
    QUERY_REFUSED,
    SEARCH_MEMORY,
    TOPIC_ISOLATED,
    failure,
    read_refusal,
    told,
)
from ambient.discussions.access import members_see
from ambient.discussions.views import DiscussionError
from ambient.domain.notify import Message, NotificationKind
from ambient.remediation.intake import cluster_approvers
from ambient.render import markdown_html
from ambient.settings import Settings
from ambient.sharing import share_report
from ambient.status import database_down
from ambient.storage import Database
from ambient.storage.briefings import BaselineRepository, BriefingRepository, BroadcastRepository
from ambient.storage.models import Discussion, DiscussionMessage
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.storage.users import UserRepository
from ambient.watches.configs import task_id_for

# Sources whose broadcasts were solved without a person (remediation resolved them).
FIXED_SOURCES = ("remediation_fixed", "remediation.resolved")
# A log source's failure, by failure()'s sentence, as the briefing tells it apart.
_LOG_KINDS = {
    BUSY: "busy",
    SEARCH_MEMORY: "search_memory",
    NOT_REACHED: "unreachable",
    QUERY_REFUSED: "query",
    NO_INDEX: "no_index",
    TOPIC_ISOLATED: "isolated",
}


class BriefingActivities:
    # The preparation's bound, from its start: the model's answer gets what is left of it.
    prepare_timeout = PREPARE_TIMEOUT

    def __init__(
        self, db: Database, llm: LLMClient, tencent: TencentCloud, settings: Settings
    ) -> None:
        self._db = db
        self._llm = llm
        self._tencent = tencent
        self._settings = settings

    @activity.defn
    async def plan_briefing_day(self, request: PlanRequest) -> DayPlan:
        """The next local day to brief (time zones and DST resolved here, not in the sandbox)."""
        return plan_day(request.now, request.config, request.after, request.after_midnight)

    @activity.defn
    async def prepare_briefing(self, request: PrepareRequest) -> PreparedBriefing:
        """Gather yesterday, reduce it, write the briefing (LLM or offline), store it."""
        # Heartbeats through every step, not the log read alone: the model's answer may take
        # longer than the heartbeat timeout, and a missed heartbeat starts another attempt.
        async with heartbeating():
            try:
                return await self._prepare(request)
            except (SQLAlchemyError, OSError) as exc:
                # Its own type, so the user is told the database failed, in their words; the
                # message stays the driver's (the status and the log show it). A log file
                # that cannot be read is a source's note, not this (caught where it is read).
                if not isinstance(exc, SQLAlchemyError) and not database_down(exc):
                    raise
                raise ApplicationError(str(exc), type=DATABASE_FAILED) from exc

    async def _prepare(self, request: PrepareRequest) -> PreparedBriefing:
        clock = asyncio.get_running_loop().time
        # The briefing is stored before the activity's timeout, not started again from scratch.
        written_by = clock() + self.prepare_timeout.total_seconds() * 0.9
        notes: list[SourceNote] = []
        day, spec = request.day, request.config.log_source
        query = spec.query.strip() if isinstance(spec, ClsLogSpec) else "*"
        # The alarms before the logs: their passing failure fails this attempt before a day's
        # logs are read, not after, and the next attempt reads them again, not the logs twice.
        alarm_notes: list[SourceNote] = []
        history = await self._alarms(day, alarm_notes)
        report, baseline_before = await self._reduce_logs(request, notes)
        zone = ZoneInfo(request.config.timezone)
        inputs = BriefingInputs(
            date=day.date,
            **request.config.model_dump(include={"language", "timezone", "window_start"}),
            logs_configured=spec is not None,
            log_filter=None if query in ("", "*") else query,
            report_markdown=render_markdown(report, tz=zone) if report else "",
            news=request.news,
            notes=notes,
        )
        if report is not None:
            fill_from_report(inputs, report)
        inputs.notes += alarm_notes
        # Configured, read or not: the notes say which sources were read.
        inputs.alarms_configured = self._tencent.configured
        if history is not None:  # its skipped alarms said by source, not a source unread
            inputs.alarms, inputs.alarms_skipped = history.alarms, history.unreadable_by
        await self._discussions(request.user, day, inputs)
        broadcast_ids = await self._broadcasts(request.user, day.date, inputs)
        written = await write_briefing(self._llm, inputs, within=written_by - clock())
        if written.unsupported:
            activity.logger.warning(
                "briefing of %s: the LLM's draft was not faithful to its input: %s",
                request.user,
                "; ".join(map(str, written.unsupported)),
            )
        content = finish(written.draft, inputs, written.generated_by)
        report_md = full_report_markdown(content, inputs)
        if await _replaced():
            # A new config's run prepares its own: this one's would overwrite it.
            raise ApplicationError(
                "the daily briefing was replaced while this was prepared: not stored",
                type="BriefingReplaced",
                non_retryable=True,
            )
        async with self._db.session() as session:
            row = await BriefingRepository(session).save(
                request.user,
                day.date,
                content=content.model_dump(mode="json"),
                report_markdown=report_md,
                generated_by=written.generated_by,
                prepared_at=datetime.now(UTC),
                day_ended=day.logs_to,
            )
            await BroadcastRepository(session).mark_broadcast(broadcast_ids, day.date)
            await EventRepository(session).add(
                "briefing.prepared",
                user=request.user,
                task=request.task_id,
                payload={
                    "date": day.date,
                    "version": row.version,
                    "generated_by": written.generated_by,
                    "headline": content.headline,
                    "failed_sources": [n.source for n in inputs.notes if not n.ok],
                },
                idempotency_key=f"{request.task_id}/{day.date}/prepared/v{row.version}",
            )
            # A day partly read (or not at all) is no day of the baseline: its low counts
            # would make the next days' errors "rise" against it.
            if report is not None and not report.partly_read:
                baseline = update_baseline(baseline_before, report, log_day(request))
                await BaselineRepository(session).save(
                    request.user, day.date, baseline.model_dump(mode="json")
                )
            await session.commit()
            version, given_at, given_via = row.version, row.given_at, row.given_via
        # The stored content's date, writer, text and sources, with the version just stored.
        kept = content.model_dump(include=PreparedBriefing.model_fields.keys() - {"version"})
        return PreparedBriefing(**kept, version=version, given_at=given_at, given_via=given_via)

    async def _reduce_logs(
        self, request: PrepareRequest, notes: list[SourceNote]
    ) -> tuple[LogReport | None, LogBaseline | None]:
        spec = request.config.log_source
        day = request.day
        async with self._db.session() as session:
            row = await BaselineRepository(session).get(request.user)
            owner = await UserRepository(session).get(request.user)
        baseline = LogBaseline.model_validate(row.data) if row and row.data else None
        if spec is None:
            notes.append(SourceNote(source="logs", ok=True, detail="no log source configured"))
            return None, baseline
        source = spec.model_dump_json()
        if baseline is None or baseline.source not in (None, source):
            baseline = LogBaseline()  # another source's days: none of this one's
        # Preparing a day again compares against the days before it, not itself.
        ordinal = log_day(request).toordinal()
        baseline.days = [d for d in baseline.days if d.get("__day__", 0) < ordinal]
        baseline.source = source  # one stored before sources were named: taken as this one
        reducer = LogReducer()
        label = source_name(spec)
        zone = ZoneInfo(request.config.timezone)
        try:
            read = await read_log_source(
                spec,
                day.logs_from,
                day.logs_to,
                reducer,
                log_dir=self._settings.log_dir,
                # Read with the owner's role today: a demoted member's file stops here.
                admin=owner is not None and owner.is_admin,
                tencent=self._tencent,
                zone=zone,
            )
        except (OSError, LogFileError, TencentCloudError) as exc:
            _read_again_if_passing(exc, label)
            activity.logger.warning("log source of %s failed: %s", request.user, exc)
            # Said as the cloud doors say it: what to fix (a CAM permission, the keys), not the
            # API's code alone; a busy API (a wait) and one never reached (a way to check), both
            # "unavailable" to the cloud doors, by the sentence failure() said.
            kind = ""
            if isinstance(exc, TencentCloudError):
                failed = failure(exc)
                said = read_refusal(str(failed))
                kind = _LOG_KINDS.get(said.msgid, failed.kind) if said else failed.kind
            note = SourceNote(source="logs", ok=False, detail=f"{label}: {told(exc)}", kind=kind)
            notes.append(note)
            return None, baseline
        # The day in its own zone: the report's hours are its clock's (India's, Nepal's begin
        # off UTC's), not UTC's.
        start, end = day.logs_from.astimezone(zone), day.logs_to.astimezone(zone)
        report = reducer.report(baseline=baseline, start=start, end=end)
        if report.all_unread:  # no trend of a day not read ("errors fell 100%")
            report = reducer.report(start=start, end=end)
        if report.unreadable and not reducer.timed:
            # Lines there were, none in a format read here: not a quiet day, nor a baseline day.
            unknown = "no line has a time in a format the briefing reads"
            notes.append(SourceNote(source="logs", ok=False, detail=f"{label}: {read}: {unknown}"))
            return None, baseline
        notes.append(SourceNote(source="logs", ok=True, detail=f"{label}: {read}"))
        return report, baseline

    async def _alarms(self, day: DayPlan, notes: list[SourceNote]) -> AlarmHistory | None:
        """The day's alarms (None: not configured, or neither source read), noted in ``notes``."""
        if not self._tencent.configured:
            notes.append(SourceNote(source="alarms", ok=False, detail=ALARMS_NOT_CONFIGURED))
            return None
        try:
            # Also the alarms still firing that began before yesterday: the day's open problems.
            # A day read failing for now on an attempt not the last fails it, nothing more read.
            history = await list_alarms(
                self._tencent,
                day.logs_from,
                day.logs_to,
                ongoing=True,
                said=told,
                fail_fast=not activity_attempts.last_attempt(PREPARE_ATTEMPTS),
                # And those begun since midnight and firing as it is prepared (a day on at most).
                firing_until=min(datetime.now(UTC), day.logs_to + timedelta(days=1)),
            )
        except TencentCloudError as exc:
            _read_again_if_passing(exc, "alarm history")
            notes.append(SourceNote(source="alarms", ok=False, detail=told(exc)))
            return None
        for unread in history.unread:
            if unread.retryable:
                _read_again_if_passing(TencentRetryableError(unread.source, unread.error), "alarms")
        count = len(history.alarms)
        read = f"{count} alarm{'' if count == 1 else 's'}"  # "1 alarm" in the report's sources
        read += f", {history.unreadable} unreadable" if history.unreadable else ""
        notes.append(SourceNote(source="alarms", ok=True, detail=read))
        # One source failed, the other answered: its alarms are listed, the failed one said.
        notes += [
            SourceNote(source=f"alarms.{u.source}", ok=False, detail=u.error)
            for u in history.unread
        ]
        return history

    async def _discussions(self, user: str, day: DayPlan, inputs: BriefingInputs) -> None:
        """The user's discussions active during the day (links to read them)."""
        async with self._db.session() as session:
            try:
                theirs = await members_see(session, user, cluster_approvers(self._settings))
            except DiscussionError:
                return  # not a registered user: no discussions of theirs to link
            rows = (
                await session.execute(
                    select(Discussion, func.count(DiscussionMessage.id))
                    .join(DiscussionMessage, DiscussionMessage.discussion_id == Discussion.id)
                    .where(
                        DiscussionMessage.created_at >= day.logs_from,
                        DiscussionMessage.created_at < day.logs_to,
                        theirs,
                    )
                    .group_by(Discussion.id)
                    .order_by(Discussion.updated_at.desc())
                    .limit(20)
                )
            ).all()
        for discussion, count in rows:
            inputs.discussions.append(
                f"{discussion.topic} — {count} message(s), {discussion.status} "
                f"(/app/discussion?id={discussion.id})"
            )
        if rows:  # no bus activity: nothing to say (the bus is optional)
            inputs.notes.append(
                SourceNote(source="discussions", ok=True, detail=f"{len(rows)} discussion(s)")
            )

    async def _broadcasts(self, user: str, date: str, inputs: BriefingInputs) -> list[int]:
        async with self._db.session() as session:
            repo = BroadcastRepository(session)
            rows = [*await repo.carried_on(user, date), *await repo.pending(user)]
        for row in rows:
            line = f"{row.title}: {row.body}" if row.body else row.title
            (inputs.fixed if row.source in FIXED_SOURCES else inputs.needs_person).append(line)
        return [row.id for row in rows if row.broadcast_on is None]

    @activity.defn
    async def record_greeting(self, record: GreetingRecord) -> None:
        """Store when (and through what) the day's briefing was spoken."""
        await store_given(self._db, record.user, record.date, record.given_at, record.via)

    @activity.defn
    async def greeting_after_hand_over(self, request: ReplacedRun) -> CarriedGreeting | None:
        """The greeting the run a new config replaced spoke after ``given_after`` (the status
        its new run was started with), read from its history, which needs no worker, and
        stored on the day's briefing; None when it spoke none since. Its history not read in
        time: failed, and tried again."""
        seen = await records.greeting(activity.client(), request.task_id, request.run_id)
        if seen is None:
            raise ApplicationError(f"the history of run {request.run_id} could not be read")
        run, at, via = seen
        # No door (via None): its carry's greeting, not one it spoke.
        if at is None or via is None or (request.given_after and at <= request.given_after):
            return None
        date = at.astimezone(ZoneInfo(run.config.timezone)).date().isoformat()
        try:
            await store_given(self._db, request.user, date, at, via)
        except (SQLAlchemyError, OSError) as exc:  # the greeting's own door stored it too
            activity.logger.warning("storing the replaced run's greeting failed: %r", exc)
        midnight = midnight_ending(date, run.config)
        return CarriedGreeting(date=date, midnight=midnight, given_at=at, via=via)

    @activity.defn
    async def compose_briefing_push(self, request: PushRequest) -> Message:
        """The push message: HTML report for email, markdown summary + share link for bots."""
        async with self._db.session() as session:
            row = await BriefingRepository(session).get(request.user, request.date)
            if row is None:
                raise ApplicationError(
                    f"no briefing for {request.user} on {request.date}",
                    type="BriefingNotFound",
                    non_retryable=True,
                )
        content = BriefingContent.model_validate(row.content)
        title, key = briefing_link(request.user, row.date, row.version, content.language)
        # The day's push is the product's, not a link its user asked for: never refused (it is
        # still one of the user's links of the hour, the one their own share of it gives).
        shared = await share_report(
            self._db,
            self._settings,
            request.user,
            "briefing",
            title,
            row.report_markdown,
            key,
            per_hour=0,
        )
        link = shared.url
        report = await asyncio.to_thread(markdown_html, row.report_markdown)  # off the loop
        return Message(
            title=title,
            body=summary_markdown(content, link),
            html=report + f'<p><a href="{link}">{link}</a></p>',
            kind=NotificationKind.BRIEFING,
            link=link,
        )

    @activity.defn
    async def record_briefing_push(self, request: PushRequest) -> None:
        """Mark the day pushed, if one of the push's deliveries was sent (the inbox copy)."""
        async with self._db.session() as session:
            deliveries = await DeliveryRepository(session).under(request.user, request.key)
            if not any(row.status == "sent" for row in deliveries):
                return  # nothing reached the user: the day is not pushed (the status says why)
            await BriefingRepository(session).mark_pushed(
                request.user, request.date, request.at or datetime.now(UTC)
            )
            await EventRepository(session).add(
                "briefing.pushed",
                user=request.user,
                task=task_id_for(request.user),
                payload={"date": request.date, "reason": request.reason},
                idempotency_key=f"{request.key}/recorded",
            )
            await session.commit()


def log_day(request: PrepareRequest) -> date:
    """The local date of the day whose logs are read (yesterday, in the briefing's zone): its
    key in the baseline. Its UTC date was: around spring's clock change a zone at UTC+0 in
    winter (London, Lisbon, Dublin) gave two days the same one, and the second replaced the
    first."""
    return request.day.logs_from.astimezone(ZoneInfo(request.config.timezone)).date()


def _read_again_if_passing(exc: Exception, source: str) -> None:
    """A passing Tencent Cloud failure (network, a back end, a rate limit) fails an attempt that
    is not the preparation's last: the next reads the source again, rather than the day's
    briefing going without it. The last attempt notes it and prepares without the source."""
    if isinstance(exc, TencentRetryableError) and not activity_attempts.last_attempt(
        PREPARE_ATTEMPTS
    ):
        raise ApplicationError(f"{source}: {exc}", type="SourceUnavailable") from exc


async def _replaced() -> bool:
    """Whether a new run (a new config) replaced the run this activity prepares for."""
    info = activity.info()
    try:
        client = activity.client()
    except RuntimeError:  # run outside a worker (ActivityEnvironment): no run to be replaced
        return False
    if info.workflow_id is None:
        return False
    try:
        current = await client.get_workflow_handle(info.workflow_id).describe()
    except RPCError:
        return False  # not known: stored, as before the check (the next preparation corrects it)
    return current.run_id != info.workflow_run_id
