"""Daily briefing activities: plan the day, prepare (gather, reduce, write), record, push.

Preparation never fails because one source did: each source's failure becomes a note the
briefing speaks ("the log source could not be read"), and the day goes on. Everything it
writes is keyed by (user, local date), so a retried or repeated preparation replaces, never
duplicates.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ambient.clients.llm import LLMClient, data_block
from ambient.clients.logs import FileLogSource, parse_line
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.clients.tencent.ops import MAX_SEARCH_LOGS, list_alarms, search_logs
from ambient.discussions.access import members_see
from ambient.discussions.views import DiscussionError
from ambient.domain.briefing import (
    AlarmLine,
    BriefingContent,
    BriefingDraft,
    BriefingInputs,
    ClsLogSpec,
    DayPlan,
    FileLogSpec,
    GreetingRecord,
    PlanRequest,
    PreparedBriefing,
    PrepareRequest,
    PushRequest,
    SourceNote,
    TemplateLine,
    finish,
    offline_draft,
    plan_day,
)
from ambient.domain.faithfulness import Unsupported, unsupported_claims
from ambient.domain.logreport import (
    ERROR_LEVELS,
    LogBaseline,
    LogReducer,
    LogReport,
    render_markdown,
    update_baseline,
)
from ambient.domain.notify import Message, NotificationKind
from ambient.render import markdown_html, markdown_literal
from ambient.settings import Settings
from ambient.sharing import ShareLinkRepository
from ambient.storage import Database
from ambient.storage.briefings import BaselineRepository, BriefingRepository, BroadcastRepository
from ambient.storage.models import Discussion, DiscussionMessage
from ambient.storage.repositories import EventRepository

# Sources whose broadcasts were solved without a person (remediation resolved them).
FIXED_SOURCES = ("remediation_fixed", "remediation.resolved")

SYSTEM_PROMPT = """You are {assistant}, an operations assistant writing a team member's morning \
briefing about yesterday ({date}). You receive a reduced log report (templates with counts, \
trend, anomalies), alarm history, problems remediation fixed or could not fix, and news. \
Write in {language}. Be concrete and short; name services, counts and times. Keep facts to \
what the data says: every number, service name and error you write must appear in it, \
written as it appears there (do not translate names, add up, round or guess). spoken_text \
is about one minute of natural speech (no markdown, no lists, no URLs); start with a \
greeting. A data source that failed must be mentioned."""


@dataclass
class WrittenBriefing:
    """The draft to store and speak, who wrote it, and what the model wrote if it was refused."""

    draft: BriefingDraft
    generated_by: str
    llm_draft: BriefingDraft | None = None
    unsupported: list[Unsupported] = field(default_factory=list)


async def write_briefing(llm: LLMClient, inputs: BriefingInputs) -> WrittenBriefing:
    """The model's briefing if it is valid and states nothing its input does not; else offline.

    A refused draft leaves a failed "llm" source note saying why (what it made up, or that the
    server could not be reached): the note is stored with the briefing and shown with it.
    """
    if llm.offline:
        return WrittenBriefing(offline_draft(inputs), "offline")
    prompt = llm_prompt(inputs)
    outcome = await llm.answer(
        system=SYSTEM_PROMPT.format(
            assistant="小智" if inputs.language == "zh" else "the assistant",
            date=inputs.date,
            language="Simplified Chinese" if inputs.language == "zh" else "English",
        ),
        user=prompt,
        schema=BriefingDraft,
        # Room for the longest valid draft: ~1,200 characters spoken plus the four lists.
        max_tokens=2048,
    )
    draft = outcome.value
    if draft is None:
        detail = f"the LLM gave no valid briefing ({outcome.failure}); written offline instead"
        inputs.notes.append(SourceNote(source="llm", ok=False, detail=detail))
        return WrittenBriefing(offline_draft(inputs), "offline")
    unsupported = unsupported_claims(draft_text(draft), prompt)
    if unsupported:
        claims = ", ".join(map(str, unsupported[:8]))
        more = f" and {len(unsupported) - 8} more" if len(unsupported) > 8 else ""
        detail = (
            f"the LLM's briefing stated what its input does not ({claims}{more}); "
            "the offline briefing is spoken instead"
        )
        inputs.notes.append(SourceNote(source="llm", ok=False, detail=detail))
        return WrittenBriefing(offline_draft(inputs), "offline", draft, unsupported)
    return WrittenBriefing(draft, llm.model, draft)


def draft_text(draft: BriefingDraft) -> str:
    """Every sentence of a draft a person reads or hears, one per line."""
    return "\n".join(
        [
            draft.headline,
            *draft.what_happened,
            *draft.needs_attention,
            *draft.fixed_automatically,
            *draft.needs_a_person,
            draft.spoken_text,
        ]
    )


class LogFileError(Exception):
    """The configured log file cannot be read."""


def resolve_log_path(path: str, log_dir: Path | None) -> Path:
    """A file source path; confined to AMBIENT_LOG_DIR when that is set."""
    candidate = Path(path).expanduser()
    if log_dir is None:
        return candidate
    base = log_dir.expanduser().resolve()
    resolved = (base / candidate).resolve() if not candidate.is_absolute() else candidate.resolve()
    if resolved != base and base not in resolved.parents:
        raise LogFileError(f"log_source.path: {path!r} is outside AMBIENT_LOG_DIR ({base})")
    return resolved


class BriefingActivities:
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
        return plan_day(request.now, request.config, request.after)

    @activity.defn
    async def prepare_briefing(self, request: PrepareRequest) -> PreparedBriefing:
        """Gather yesterday, reduce it, write the briefing (LLM or offline), store it."""
        notes: list[SourceNote] = []
        day = request.day
        report, baseline_before = await self._reduce_logs(request, notes)
        zone = ZoneInfo(request.config.timezone)
        inputs = BriefingInputs(
            date=day.date,
            language=request.config.language,
            report_markdown=render_markdown(report, tz=zone) if report else "",
            news=request.news,
            notes=notes,
        )
        if report is not None:
            fill_from_report(inputs, report)
        await self._alarms(day, inputs)
        await self._discussions(request.user, day, inputs)
        broadcast_ids = await self._broadcasts(request.user, day.date, inputs)
        draft, generated_by = await self._write(request, inputs)
        content = finish(draft, inputs, generated_by)
        report_md = full_report_markdown(content, inputs)
        now = datetime.now(UTC)
        async with self._db.session() as session:
            row = await BriefingRepository(session).save(
                request.user,
                day.date,
                content=content.model_dump(mode="json"),
                report_markdown=report_md,
                generated_by=generated_by,
                prepared_at=now,
            )
            await BroadcastRepository(session).mark_broadcast(broadcast_ids, day.date)
            await EventRepository(session).add(
                "briefing.prepared",
                user=request.user,
                task=request.task_id,
                payload={
                    "date": day.date,
                    "version": row.version,
                    "generated_by": generated_by,
                    "headline": content.headline,
                    "failed_sources": [n.source for n in inputs.notes if not n.ok],
                },
                idempotency_key=f"{request.task_id}/{day.date}/prepared/v{row.version}",
            )
            if report is not None:
                baseline = update_baseline(baseline_before, report)
                await BaselineRepository(session).save(
                    request.user, day.date, baseline.model_dump(mode="json")
                )
            await session.commit()
            version = row.version
        return PreparedBriefing(
            date=day.date,
            version=version,
            generated_by=generated_by,
            headline=content.headline,
            spoken_text=content.spoken_text,
            spoken_segments=content.spoken_segments,
            sources=inputs.notes,
        )

    async def _reduce_logs(
        self, request: PrepareRequest, notes: list[SourceNote]
    ) -> tuple[LogReport | None, LogBaseline | None]:
        spec = request.config.log_source
        day = request.day
        async with self._db.session() as session:
            row = await BaselineRepository(session).get(request.user)
        baseline = LogBaseline.model_validate(row.data) if row and row.data else None
        if baseline is not None:
            # Preparing a day again compares against the days before it, not itself.
            ordinal = day.logs_from.astimezone(UTC).date().toordinal()
            baseline = LogBaseline(days=[d for d in baseline.days if d.get("__day__", 0) < ordinal])
        if spec is None:
            notes.append(SourceNote(source="logs", ok=True, detail="no log source configured"))
            return None, baseline
        reducer = LogReducer()
        label = (
            f"log file {spec.path}"
            if isinstance(spec, FileLogSpec)
            else f"CLS topic {spec.topic_id}"
        )
        try:
            read = await self._with_heartbeat(
                read_log_source(
                    spec,
                    day.logs_from,
                    day.logs_to,
                    reducer,
                    log_dir=self._settings.log_dir,
                    tencent=self._tencent,
                )
            )
        except (OSError, LogFileError, TencentCloudError) as exc:
            activity.logger.warning("log source of %s failed: %s", request.user, exc)
            notes.append(SourceNote(source="logs", ok=False, detail=f"{label}: {exc}"))
            return None, baseline
        notes.append(SourceNote(source="logs", ok=True, detail=f"{label}: {read}"))
        report = reducer.report(baseline=baseline, start=day.logs_from, end=day.logs_to)
        return report, baseline

    async def _with_heartbeat(self, work: Any) -> str:
        task = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({task}, timeout=5)
            if done:
                result: str = task.result()
                return result
            activity.heartbeat("reading logs")

    async def _alarms(self, day: DayPlan, inputs: BriefingInputs) -> None:
        if not self._tencent.configured:
            inputs.notes.append(
                SourceNote(
                    source="alarms",
                    ok=False,
                    detail="Tencent Cloud is not configured: no Cloud Monitor or CLS alarm history",
                )
            )
            return
        try:
            alarms = await list_alarms(self._tencent, day.logs_from, day.logs_to)
        except TencentCloudError as exc:
            inputs.notes.append(SourceNote(source="alarms", ok=False, detail=str(exc)))
            return
        inputs.alarms_configured = True
        inputs.alarms = [
            AlarmLine(
                source=a.source,
                name=a.name,
                status=a.status,
                level=a.level,
                target=a.target,
                time=a.time,
            )
            for a in alarms[:50]
        ]
        inputs.notes.append(SourceNote(source="alarms", ok=True, detail=f"{len(alarms)} alarms"))

    async def _discussions(self, user: str, day: DayPlan, inputs: BriefingInputs) -> None:
        """The user's discussions active during the day (links to read them)."""
        async with self._db.session() as session:
            try:
                theirs = await members_see(session, user, self._settings.remediation_approvers)
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

    async def _write(
        self, request: PrepareRequest, inputs: BriefingInputs
    ) -> tuple[BriefingDraft, str]:
        written = await write_briefing(self._llm, inputs)
        if written.unsupported:
            activity.logger.warning(
                "briefing of %s: the LLM's draft was not faithful to its input: %s",
                request.user,
                "; ".join(map(str, written.unsupported)),
            )
        return written.draft, written.generated_by

    @activity.defn
    async def record_greeting(self, record: GreetingRecord) -> None:
        """Store when (and through what) the day's briefing was spoken."""
        async with self._db.session() as session:
            await BriefingRepository(session).mark_given(
                record.user, record.date, record.given_at, record.via
            )
            task = f"daily-briefing/{record.user}"
            await EventRepository(session).add(
                "briefing.given",
                user=record.user,
                task=task,
                payload={
                    "date": record.date,
                    "given_at": record.given_at.isoformat(),
                    "via": record.via,
                },
                idempotency_key=f"{task}/{record.date}/given",
            )
            await session.commit()

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
            title = f"{'每日简报' if content.language == 'zh' else 'Daily briefing'} {row.date}"
            _, token = await ShareLinkRepository(
                session, self._settings.secret_key.get_secret_value()
            ).create(
                request.user,
                "briefing",
                title,
                row.report_markdown,
                days=self._settings.share_link_days,
                key=f"briefing/{request.user}/{row.date}/v{row.version}",
            )
            await session.commit()
        base = self._settings.public_url or (
            f"http://{self._settings.api_host}:{self._settings.api_port}"
        )
        link = f"{base}/share/{token}"
        return Message(
            title=title,
            body=summary_markdown(content, link),
            html=markdown_html(row.report_markdown) + f'<p><a href="{link}">{link}</a></p>',
            kind=NotificationKind.BRIEFING,
            link=link,
        )

    @activity.defn
    async def record_briefing_push(self, request: PushRequest) -> None:
        async with self._db.session() as session:
            await BriefingRepository(session).mark_pushed(
                request.user, request.date, request.at or datetime.now(UTC)
            )
            await EventRepository(session).add(
                "briefing.pushed",
                user=request.user,
                task=f"daily-briefing/{request.user}",
                payload={"date": request.date, "reason": request.reason},
                idempotency_key=f"{request.key}/recorded",
            )
            await session.commit()


async def read_log_source(
    spec: FileLogSpec | ClsLogSpec,
    start: datetime,
    end: datetime,
    reducer: LogReducer,
    *,
    log_dir: Path | None,
    tencent: TencentCloud,
) -> str:
    """Feed the source's lines in [start, end) to ``reducer``; returns what was read."""
    if isinstance(spec, FileLogSpec):
        source = FileLogSource(resolve_log_path(spec.path, log_dir))
        return await asyncio.to_thread(_read_files, source, start, end, reducer)
    result = await search_logs(
        tencent, spec.topic_id, spec.query, start, end, limit=MAX_SEARCH_LOGS, region=spec.region
    )
    for record in result.logs:
        reducer.add_record(record)
    suffix = "" if result.complete else f" (capped at {MAX_SEARCH_LOGS}; CLS paging limit)"
    return f"{len(result.logs)} lines read{suffix}"


def _read_files(source: FileLogSource, start: datetime, end: datetime, reducer: LogReducer) -> str:
    # Streamed: a day of logs never sits in memory as records.
    count = skipped = 0
    for path in source.files():
        for number, line in enumerate(source.lines(path), 1):
            record = parse_line(line, f"{path.name}:{number}")
            if record is None:
                if line.strip():
                    skipped += 1
                continue
            if start <= record.time < end:
                reducer.add_record(record)
                count += 1
    reducer.unreadable = skipped
    return f"{count} lines read" + (f", {skipped} unreadable" if skipped else "")


def fill_from_report(inputs: BriefingInputs, report: LogReport) -> None:
    inputs.log_lines = report.total
    inputs.errors = sum(n for lvl, n in report.by_level.items() if lvl in ERROR_LEVELS)
    inputs.warnings = report.by_level.get("WARNING", 0)
    inputs.top_templates = [
        TemplateLine(
            level=t.level, template=t.template, count=t.count, example=t.example[:300], new=t.new
        )
        for t in report.templates[:20]
    ]
    inputs.anomalies = [
        f"{a.kind} [{a.level}] {a.template or ''}: {a.detail}" for a in report.anomalies[:10]
    ]
    change = report.trend.get("errors_change_pct")
    if change is not None and report.trend.get("baseline_days"):
        zh = inputs.language == "zh"
        inputs.trend = (
            f"错误数比前 {report.trend['baseline_days']} 天平均{'增加' if change >= 0 else '减少'}"
            f" {abs(change):.0f}%"
            if zh
            else f"errors {change:+.0f}% against the previous {report.trend['baseline_days']} days"
        )


def llm_prompt(inputs: BriefingInputs) -> str:
    """The user message: facts we computed, then every untrusted text inside a data block.

    Every number the briefing may say is stated here (the faithfulness check holds the draft
    to this text): totals the offline briefing says are computed here, not left to the model.
    """
    firing = [a for a in inputs.alarms if a.status.lower() not in ("ok", "resolved", "0")]
    facts = (
        f"Date: {inputs.date}. Log lines: {inputs.log_lines}, errors: {inputs.errors}, "
        f"warnings: {inputs.warnings}. Trend: {inputs.trend or 'no baseline yet'}. "
        f"Alarm history available: {'yes' if inputs.alarms_configured else 'no'}"
        + (
            f", {len(inputs.alarms)} alarms ({len(firing)} not resolved)."
            if inputs.alarms_configured
            else "."
        )
    )
    sources = "\n".join(
        f"- {n.source}: {'ok' if n.ok else 'FAILED'} {n.detail}" for n in inputs.notes
    )
    alarms = "\n".join(
        f"- {a.time:%H:%M} {a.source} {a.name} [{a.level or '-'}] {a.status} {a.target or ''}"
        for a in inputs.alarms
    )
    parts = [
        facts,
        "Source status:\n" + (sources or "- none"),
        data_block("reduced log report", inputs.report_markdown or "(no logs)"),
        data_block("alarms", alarms or "(none)"),
        data_block("fixed automatically", "\n".join(inputs.fixed) or "(none)"),
        data_block("needs a person", "\n".join(inputs.needs_person) or "(none)"),
    ]
    if inputs.news:
        parts.append(data_block("news", "\n".join(inputs.news)))
    if inputs.discussions:
        parts.append(data_block("team discussions", "\n".join(inputs.discussions)))
    parts.append("Write the briefing as the JSON object the response format asks for.")
    return "\n\n".join(parts)


def summary_markdown(content: BriefingContent, link: str, *, literal: bool = False) -> str:
    """The markdown card for WeCom / DingTalk: headline, the four lists, the share link.

    ``literal``: escape markdown in the texts (for HTML rendering; chat robots show escapes).
    """
    zh = content.language == "zh"
    text = markdown_literal if literal else str
    lines = [f"**{text(content.headline)}**", ""]
    sections = [
        ("发生了什么" if zh else "What happened", content.what_happened),
        ("需要关注" if zh else "Needs attention", content.needs_attention),
        ("已自动修复" if zh else "Fixed automatically", content.fixed_automatically),
        ("需要人工处理" if zh else "Needs a person", content.needs_a_person),
    ]
    for title, items in sections:
        if items:
            # A blank line first: markdown starts a list only after one.
            lines += [f"**{title}**", ""]
            lines += [f"- {text(item)}" for item in items]
            lines.append("")
    lines.append(f"[{'完整报告' if zh else 'Full report'}]({link})")
    return "\n".join(lines)


def full_report_markdown(content: BriefingContent, inputs: BriefingInputs) -> str:
    """The full report (email HTML and the share page): summary, the template table, sources."""
    zh = content.language == "zh"
    lines = [f"# {'每日简报' if zh else 'Daily briefing'} {content.date}", ""]
    lines.append(summary_markdown(content, "#templates", literal=True).rsplit("\n", 1)[0])
    lines.append(f"*generated_by: {content.generated_by}*")
    lines.append("")
    lines.append(f"## {'日志模板' if zh else 'Log templates'}")
    if inputs.top_templates:
        lines.append("| level | count | template | example |")
        lines.append("|---|---:|---|---|")
        for t in inputs.top_templates:
            cells = [_cell(t.template) + (" *(new)*" if t.new else ""), _cell(t.example)]
            lines.append(f"| {t.level} | {t.count} | {cells[0]} | {cells[1]} |")
    else:
        lines.append("没有日志。" if zh else "No log lines.")
    if inputs.anomalies:
        lines.append("")
        lines.append(f"## {'异常' if zh else 'Anomalies'}")
        lines += [f"- {_cell(a)}" for a in inputs.anomalies]
    if inputs.alarms:
        lines.append("")
        lines.append(f"## {'告警' if zh else 'Alarms'}")
        lines.append("| time (UTC) | source | name | status | target |")
        lines.append("|---|---|---|---|---|")
        for a in inputs.alarms:
            lines.append(
                f"| {a.time:%Y-%m-%d %H:%M} | {a.source} | {_cell(a.name)} | {_cell(a.status)} "
                f"| {_cell(a.target or '')} |"
            )
    lines.append("")
    lines.append(f"## {'数据源' if zh else 'Sources'}")
    lines += [
        f"- {n.source}: {'ok' if n.ok else 'FAILED'} — {_cell(n.detail)}" for n in inputs.notes
    ]
    if inputs.news:
        lines.append("")
        lines.append(f"## {'新闻' if zh else 'News'}")
        lines += [f"- {_cell(n)}" for n in inputs.news]
    if inputs.discussions:
        lines.append("")
        lines.append(f"## {'讨论' if zh else 'Discussions'}")
        lines += [f"- {_cell(d)}" for d in inputs.discussions]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return markdown_literal(" ".join(text.split())[:300]).replace("|", "\\|")
