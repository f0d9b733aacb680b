"""The markdown a prepared briefing is shown in: the push's card (WeCom, DingTalk) and the
full report (e-mail, the share page)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ambient.briefing.alarm_listing import left_out, listed, since
from ambient.briefing.models import BriefingContent, BriefingInputs, SourceNote
from ambient.clients.tencent.alarms import ALARMS_CHANGED
from ambient.render import markdown_literal

# A failed source's detail the product words itself, in a Chinese briefing.
_DETAILS_ZH = {ALARMS_CHANGED: "告警在读取时发生了变化，这次没有列出"}


def source_detail(note: SourceNote, zh: bool) -> str:
    """A source's detail in the briefing's language."""
    return _DETAILS_ZH.get(note.detail, note.detail) if zh else note.detail


def summary_markdown(content: BriefingContent, link: str) -> str:
    """The WeCom / DingTalk card: headline, four lists, link (their texts shown as written)."""
    zh = content.language == "zh"
    lines = [f"**{markdown_literal(content.headline)}**", ""]
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
            lines += [f"- {markdown_literal(item)}" for item in items]
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

    lines.append(summary_markdown(content, "#templates").rsplit("\n", 1)[0])
    written = {"offline": "离线规则"}.get(content.generated_by, content.generated_by)
    lines += [f"*生成：{written}*" if zh else f"*generated_by: {content.generated_by}*", ""]
    lines.append(f"## {'日志模板' if zh else 'Log templates'}")
    if inputs.top_templates:
        # No column aligned: markdown writes it as a style attribute, which the share page's
        # Content-Security-Policy refuses.
        head = "| 级别 | 次数 | 模板 | 示例 |" if zh else "| level | count | template | example |"
        lines += [head, "|---|---|---|---|"]
        new = " *（新）*" if zh else " *(new)*"
        for t in inputs.top_templates:
            cells = [_cell(t.template) + (new if t.new else ""), _cell(t.example)]
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
        head = (
            f"| 时间（{zone}） | 来源 | 名称 | 状态 | 对象 |"
            if zh
            else f"| time ({zone}) | source | name | status | target |"
        )
        lines += [head, "|---|---|---|---|---|"]
        for a in listed(inputs.alarms):
            lines.append(
                f"| {a.time.astimezone(zone):%Y-%m-%d %H:%M} | {a.source} | {_cell(a.name)} "
                f"| {_cell(a.status)}{since(a, zone, zh)} | {_cell(a.target or '')} |"
            )
        if more := left_out(inputs.alarms, zh):
            lines += ["", f"*{more}*"]
    lines += ["", f"## {'数据源' if zh else 'Sources'}"]
    lines += [
        f"- {n.source}: {_READ[zh][n.ok]} — {_cell(source_detail(n, zh))}" for n in inputs.notes
    ]
    section("新闻" if zh else "News", [_cell(n) for n in inputs.news])
    section("讨论" if zh else "Discussions", [_cell(d) for d in inputs.discussions])
    return "\n".join(lines) + "\n"


# A source read or not, in the report's language.
_READ = {False: {True: "ok", False: "FAILED"}, True: {True: "正常", False: "失败"}}


def _cell(text: str) -> str:
    return markdown_literal(" ".join(text.split())[:300]).replace("|", "\\|")
