"""What a briefing says in text: the LLM's draft (checked against its input, else the
offline draft), the prompt it is written from, and the markdown the push and the share page
show."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ambient.briefing.draft import offline_draft
from ambient.briefing.faithfulness import Unsupported, unsupported_claims
from ambient.briefing.models import (
    BriefingContent,
    BriefingDraft,
    BriefingInputs,
    SourceNote,
    greeting,
    still_open,
)
from ambient.clients.llm import Answer, LLMClient, data_block
from ambient.render import markdown_literal

SYSTEM_PROMPT = """You are {assistant}, an operations assistant writing a team member's daily \
briefing about yesterday ({date}). You receive a reduced log report (templates with counts, \
trend, anomalies), alarm history, problems remediation fixed or could not fix, and news. \
Write in {language}. Be concrete and short; name services, counts and times. Keep facts to \
what the data says: every number, service name and error you write must appear in it, \
written as it appears there (do not translate names, add up, round or guess). spoken_text \
is about one minute of natural speech (no markdown, no lists, no URLs); start with the \
greeting "{greeting}". A data source that failed must be mentioned."""


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


def llm_prompt(inputs: BriefingInputs) -> str:
    """The user message: facts we computed, then every untrusted text inside a data block.
    Every number the briefing may say is stated here: the faithfulness check holds it to this."""
    firing = still_open(inputs.alarms)
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
    zone = ZoneInfo(inputs.timezone)
    alarms = "\n".join(
        f"- {a.time.astimezone(zone):%H:%M} {a.source} {a.name} [{a.level or '-'}] {a.status} "
        f"{a.target or ''}"
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
    """The WeCom / DingTalk card: headline, four lists, link (``literal``: escaped, for HTML)."""
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

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.extend(["", f"## {title}", *(f"- {item}" for item in items)])

    lines.append(summary_markdown(content, "#templates", literal=True).rsplit("\n", 1)[0])
    lines += [f"*generated_by: {content.generated_by}*", ""]
    lines.append(f"## {'日志模板' if zh else 'Log templates'}")
    if inputs.top_templates:
        lines += ["| level | count | template | example |", "|---|---:|---|---|"]
        for t in inputs.top_templates:
            cells = [_cell(t.template) + (" *(new)*" if t.new else ""), _cell(t.example)]
            lines.append(f"| {t.level} | {t.count} | {cells[0]} | {cells[1]} |")
    elif any(n.source == "logs" and not n.ok for n in inputs.notes):
        lines.append(
            "日志没能读取（见数据源）。" if zh else "The logs could not be read (see Sources)."
        )
    else:
        lines.append("没有日志。" if zh else "No log lines.")
    section("异常" if zh else "Anomalies", [_cell(a) for a in inputs.anomalies])
    if inputs.alarms:
        zone = ZoneInfo(inputs.timezone)
        lines += ["", f"## {'告警' if zh else 'Alarms'}"]
        lines += [f"| time ({zone}) | source | name | status | target |", "|---|---|---|---|---|"]
        for a in inputs.alarms:
            lines.append(
                f"| {a.time.astimezone(zone):%Y-%m-%d %H:%M} | {a.source} | {_cell(a.name)} "
                f"| {_cell(a.status)} | {_cell(a.target or '')} |"
            )
    lines += ["", f"## {'数据源' if zh else 'Sources'}"]
    lines += [
        f"- {n.source}: {'ok' if n.ok else 'FAILED'} — {_cell(n.detail)}" for n in inputs.notes
    ]
    section("新闻" if zh else "News", [_cell(n) for n in inputs.news])
    section("讨论" if zh else "Discussions", [_cell(d) for d in inputs.discussions])
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return markdown_literal(" ".join(text.split())[:300]).replace("|", "\\|")
