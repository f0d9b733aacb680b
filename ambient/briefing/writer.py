"""What a briefing says in text: the LLM's draft (checked against its input, else the
offline draft, written without an LLM: offline.py's), the prompt it is written from, and the
stored briefing made from any draft (the draft plus its TTS segments, sources and totals);
the markdown it is shown in is report.py's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ambient.briefing.alarm_listing import left_out, listed, no_data, still_open
from ambient.briefing.faithfulness import Unsupported, contradicted, unsupported_claims
from ambient.briefing.models import (
    BriefingContent,
    BriefingDraft,
    BriefingInputs,
    SourceNote,
)
from ambient.briefing.offline import (
    alarms_unread,
    greeting,
    levels_unread,
    logs_short,
    many,
    none_read,
    offline_draft,
    skipped_said,
)
from ambient.clients.llm import Answer, LLMClient, data_block
from ambient.clients.tencent.tts import tts_segments

SYSTEM_PROMPT = """You are {assistant}, an operations assistant writing a team member's daily \
briefing about yesterday ({date}). You receive a reduced log report (templates with counts, \
trend, anomalies), alarm history, problems remediation fixed or could not fix, and news. \
Write in {language}. Be concrete and short; name services, counts and times. Keep facts to \
what the data says: every number, service name and error you write must appear in it, \
written as it appears there (do not translate names, add up, round or guess). spoken_text \
is about one minute of natural speech (no markdown, no lists, no URLs); start with the \
greeting "{greeting}" and the headline in one sentence. A voice hears only its first three \
sentences: say there what waits on someone. A data source that failed must be mentioned."""


def system_prompt(inputs: BriefingInputs) -> str:
    """What the model is told it writes: for whom, which day, in which language, its greeting."""
    return SYSTEM_PROMPT.format(
        assistant="小智" if inputs.language == "zh" else "the assistant",
        date=inputs.date,
        language="Simplified Chinese" if inputs.language == "zh" else "English",
        greeting=greeting(inputs),
    )


@dataclass
class WrittenBriefing:
    """The draft to store and speak, who wrote it, and what the model wrote if it was refused."""

    draft: BriefingDraft
    generated_by: str
    llm_draft: BriefingDraft | None = None
    unsupported: list[Unsupported] = field(default_factory=list)


async def write_briefing(
    llm: LLMClient, inputs: BriefingInputs, within: float | None = None
) -> WrittenBriefing:
    """The model's briefing if valid and faithful to its input and written ``within`` seconds;
    else offline, with a failed "llm" source note saying why (stored and shown with it)."""
    if llm.offline:
        return WrittenBriefing(offline_draft(inputs), "offline")
    prompt = llm_prompt(inputs)
    try:
        async with asyncio.timeout(within):
            outcome = await llm.answer(
                system=system_prompt(inputs),
                user=prompt,
                schema=BriefingDraft,
                # Room for the longest valid draft: ~1,200 characters spoken plus the lists.
                max_tokens=2048,
            )
    except TimeoutError:
        late = f"the LLM did not answer within {max(0, round(within or 0))} s"
        outcome = Answer(value=None, attempts=1, failure=late)
    draft = outcome.value
    if draft is None:
        detail = f"the LLM gave no valid briefing ({outcome.failure}); written offline instead"
        inputs.notes.append(SourceNote(source="llm", ok=False, detail=detail))
        inputs.llm_failed = (
            "key"
            if outcome.refused in (401, 403)
            else "refused"
            if outcome.refused
            else "invalid"
            if outcome.invalid
            else "unanswered"
        )
        return WrittenBriefing(offline_draft(inputs), "offline")
    text = draft_text(draft)
    unsupported = unsupported_claims(text, prompt) + contradicted(
        text,
        errors=inputs.errors,
        # The day's own: one firing since before it (or since midnight) began another day.
        alarms=sum(not a.ongoing for a in inputs.alarms),
        open_alarms=len(still_open(inputs.alarms)),
        trend=inputs.trend,
        errors_unknown=levels_unread(inputs),
    )
    if unsupported:
        claims = ", ".join(map(str, unsupported[:8]))
        more = f" and {len(unsupported) - 8} more" if len(unsupported) > 8 else ""
        detail = (
            f"the LLM's briefing stated what its input does not ({claims}{more}); "
            "the offline briefing is spoken instead"
        )
        inputs.notes.append(SourceNote(source="llm", ok=False, detail=detail))
        inputs.llm_failed = "unfaithful"
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


def llm_prompt(inputs: BriefingInputs) -> str:
    """The user message: facts we computed, then every untrusted text inside a data block.
    Every number the briefing may say is stated here: the faithfulness check holds it to this."""
    firing, silent = still_open(inputs.alarms), no_data(inputs.alarms)
    counted = f"{many(len(inputs.alarms), 'alarm', 'alarms')}"
    # NO_DATA: the alarm's metric had too little data to tell; not firing, nor recovered.
    resolved = f"{len(firing)} not resolved" + (
        f", {len(silent)} with no data (NO_DATA: not firing, its metric had no data)"
        if silent
        else ""
    )
    unread = alarms_unread(inputs) if inputs.alarms_configured else []
    said = "; ".join(
        [f"{n.source} unread: {n.detail}" for n in unread]
        + [s.rstrip(".") for s in skipped_said(inputs, zh=False)]
    )
    if not inputs.alarms_configured:
        history = "no."
    elif none_read(unread):  # no count at all, not "0 alarms read"
        history = f"no, none could be read: {said}."
    elif said:  # a count of some sources, or some alarms skipped, is not of the day's alarms
        history = f"partly read: {said}; {counted} read ({resolved})."
    else:
        history = f"yes, {counted} ({resolved})."
    facts = (
        f"Date: {inputs.date}. Log lines"
        + (f" matching {inputs.log_filter}" if inputs.log_filter else "")
        + f": {inputs.log_lines}, errors: {inputs.errors}, "
        f"warnings: {inputs.warnings}. {_logs_read(inputs)}"
        f"Trend: {inputs.trend or 'no baseline yet'}. "
        f"Alarm history available: {history}"
    )
    sources = "\n".join(
        f"- {n.source}: {'ok' if n.ok else 'FAILED'} {n.detail}" for n in inputs.notes
    )
    zone = ZoneInfo(inputs.timezone)
    alarms = "\n".join(
        # One firing since before the day: its start is another day's, said as such.
        f"- {'since ' if a.ongoing else ''}"
        f"{a.time.astimezone(zone):{'%Y-%m-%d %H:%M' if a.ongoing else '%H:%M'}} {a.source} "
        f"{a.name} [{a.level or '-'}] {a.status} {a.target or ''}"
        for a in listed(inputs.alarms)
    )
    if more := left_out(inputs.alarms, zh=False):
        alarms += f"\n- ({more})"
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


def _logs_read(inputs: BriefingInputs) -> str:
    """Said to the model of a day whose logs were only partly read (`logs_short`), whose
    counts are of the lines read: it is not to call the day quiet (nothing when all were read).
    """
    levels = ""
    if levels_unread(inputs):
        unleveled = many(inputs.logs_unleveled, "line", "lines")
        levels = (
            f"Log levels: {unleveled} of {inputs.log_lines} carry no level, so an error among "
            "them is not counted: do not call the day quiet or free of errors; say that most "
            "lines carry no level. "
        )
    if not logs_short(inputs):
        return levels
    unread, broken = inputs.logs_unreadable, inputs.logs_broken
    why = [f"only the newest {inputs.log_lines} lines were read"] if inputs.logs_capped else []
    if unread and unread * 10 >= inputs.log_lines:
        why.append(f"{many(unread, 'line', 'lines')} could not be read")
    if broken:
        why.append(f"{many(broken, 'log file', 'log files')} could not be read to the end")
    return levels + (
        f"Logs read in full: no, {'; '.join(why)}: the counts are of the lines read, so do not "
        "call the day quiet or free of errors; say that not all logs could be read. "
    )


def finish(draft: BriefingDraft, inputs: BriefingInputs, generated_by: str) -> BriefingContent:
    """The stored briefing: the draft plus TTS segments, sources and totals."""
    return BriefingContent(
        **draft.model_dump(),
        **inputs.model_dump(include={"date", "language", "log_lines", "errors", "warnings"}),
        generated_by=generated_by,
        spoken_segments=tts_segments(draft.spoken_text),
        sources=inputs.notes,
    )
