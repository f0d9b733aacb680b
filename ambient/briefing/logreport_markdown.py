"""A reduced day of logs as compact markdown, for an LLM prompt, an e-mail or the terminal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from ambient.briefing.logreport import Anomaly, LogReport, TemplateStat
from ambient.domain.events import clipped
from ambient.domain.loglevels import ERROR_LEVELS


def render_markdown(report: LogReport, *, max_rows: int = 30, tz: tzinfo | None = None) -> str:
    """The report as compact markdown for an LLM prompt or an e-mail: ERROR templates (up to
    120), the top `max_rows` others, anomalies, hourly rates, trend, keywords."""
    zone = tz or UTC
    lines = [f"## Logs {_when(report.start, zone, True)} – {_when(report.end, zone, True)}"]
    if report.total == 0:
        lines.append(f"No log lines in this period ({report.unreadable} unreadable).")
        return "\n".join(lines) + "\n"
    # Over more than one day an hour or a time of day says which day too.
    dated = _days(report.start, zone) != _days(report.end - _INSTANT, zone) if report.end else False
    levels = ", ".join(
        f"{lvl} {n:,} ({100 * n / report.total:.2f}%)" for lvl, n in report.by_level.items()
    )
    lines.append(
        f"{report.total:,} lines, {report.template_count} templates"
        f"{f', {report.unreadable} unreadable' if report.unreadable else ''}. {levels}."
    )
    if report.capped:
        why = f": {report.stopped}" if report.stopped else " (the source's limit)"
        lines.append(f"Read only the newest {report.total:,} lines{why}.")
    trend = report.trend
    if trend.get("baseline_days") and report.partly_read:
        # Its counts are of the lines read, floors: a rise is one, a fall or its rate is not.
        lines.append(
            f"Against the previous {trend['baseline_days']} days, not all lines read: "
            f"lines {_floor(trend.get('total_change_pct'))}, "
            f"errors {_floor(trend.get('errors_change_pct'), report.trend.get('errors'))}."
        )
    elif trend.get("baseline_days"):
        lines.append(
            f"Against the previous {trend['baseline_days']} days: "
            f"lines {_pct(trend.get('total_change_pct'))}, "
            f"errors {_pct(trend.get('errors_change_pct'))}, error rate "
            f"{_rate(trend.get('error_rate'))} (usual {_rate(trend.get('error_rate_mean_7d'))})."
        )
    if report.anomalies:
        lines.append("### Anomalies")
        for a in report.anomalies:
            detail = anomaly_detail(a, zone, dated)
            lines.append(f"- {a.kind} {a.level}: {detail} — {_cut(a.template, 140)}")
    all_errors = [t for t in report.templates if t.level in ERROR_LEVELS]
    errors = all_errors[:120]
    others = [t for t in report.templates if t.level not in ERROR_LEVELS][:max_rows]
    lines.append("### Templates (level, lines, first–last seen unless all along: template)")
    for t in [*errors, *others]:
        span = (
            ""
            if _all_along(t, report)
            else f" {_when(t.first_seen, zone, dated)}–{_when(t.last_seen, zone, dated)}"
        )
        mark = " (new)" if t.new else ""
        lines.append(f"- {t.level} {t.count:,}{span}{mark}: {_cut(t.template, 160)}")
    if len(all_errors) > len(errors):
        rest = all_errors[len(errors) :]
        lines.append(f"- ({len(rest)} more error templates, {sum(t.count for t in rest):,} lines)")
    hidden = report.template_count - len(all_errors) - len(others)
    if hidden > 0:
        lines.append(f"- ({hidden} rarer templates not listed)")
    if report.hours:
        # One day: every hour; longer periods: the hours with errors or warnings, bounded.
        many = len(report.hours) > 24
        shown = [h for h in report.hours if h.errors or h.warnings][:48] if many else report.hours
        stamp = "%m-%d %H" if dated else "%H"
        lines.append(f"### Hours ({zone}) lines/errors/warnings")
        lines.append(
            " ".join(
                f"{h.hour.astimezone(zone):{stamp}}h {h.total}/{h.errors}/{h.warnings}"
                for h in shown
            )
        )
    if report.keywords:
        lines.append("Keywords: " + ", ".join(f"{w} {n}" for w, n in report.keywords))
    return "\n".join(lines) + "\n"


def anomaly_detail(anomaly: Anomaly, zone: tzinfo, dated: bool = False) -> str:
    """The anomaly's detail, a burst's run first, said in ``zone`` (with its day if ``dated``)."""
    run = _run(anomaly, zone, dated)
    return f"{run}, {anomaly.detail}" if run else anomaly.detail


def _run(anomaly: Anomaly, zone: tzinfo, dated: bool = False) -> str:
    """A burst's run, "HH:MM–HH:MM" in ``zone`` (with its day if ``dated``); "" for others."""
    if anomaly.start is None or anomaly.end is None:
        return ""
    return f"{_when(anomaly.start, zone, dated)}–{_when(anomaly.end, zone, dated)}"


# An anomaly said in a Chinese briefing: its kind and level.
_KIND_ZH = {"burst": "短时突增", "spike": "比平时多", "new_error": "新出现的错误"}
_LEVEL_ZH = {
    "CRITICAL": "严重",
    "ERROR": "错误",
    "WARNING": "警告",
    "INFO": "信息",
}


def anomaly_said(anomaly: Anomaly, zone: tzinfo, zh: bool) -> str:
    """One anomaly as a briefing lists and speaks it, in its language (the template as logged)."""
    if not zh:  # the kind in words: "new error", not "new_error"
        kind = anomaly.kind.replace("_", " ")
        return f"{kind} [{anomaly.level}] {anomaly.template or ''}: {anomaly_detail(anomaly, zone)}"
    run = _run(anomaly, zone)
    if anomaly.kind == "burst" and anomaly.peak is not None and anomaly.usual is not None:
        detail = f"{anomaly.lines} 行，5 分钟最多 {anomaly.peak} 行（平时 {anomaly.usual:.1f} 行）"
    elif anomaly.kind == "new_error" and anomaly.days is not None:
        detail = f"{anomaly.lines} 行，前 {anomaly.days} 天没有出现"
    elif anomaly.kind == "spike" and anomaly.days is not None and anomaly.usual is not None:
        detail = f"{anomaly.lines} 行，前 {anomaly.days} 天平均每天 {anomaly.usual:.0f} 行"
    else:  # one reduced before these numbers were kept
        detail = anomaly.detail
    kind = _KIND_ZH.get(anomaly.kind, anomaly.kind)
    level = _LEVEL_ZH.get(anomaly.level or "", anomaly.level or "")
    return f"{kind}（{level}）{anomaly.template or ''}：{run}{'，' if run else ''}{detail}"


def _all_along(stat: TemplateStat, report: LogReport) -> bool:
    """Seen from the first tenth of the period to its last tenth."""
    if not (stat.first_seen and stat.last_seen and report.start and report.end):
        return False
    tenth = (report.end - report.start) / 10
    return stat.first_seen <= report.start + tenth and stat.last_seen >= report.end - tenth


_INSTANT = timedelta(microseconds=1)  # a period's end is not in it (midnight is the next day)


def _days(value: datetime | None, zone: tzinfo) -> date | None:
    return None if value is None else value.astimezone(zone).date()


def _when(value: datetime | None, zone: tzinfo, long: bool = False) -> str:
    if value is None:
        return "?"
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M}" if long else f"{value.astimezone(zone):%H:%M}"


def _cut(text: str | None, width: int) -> str:
    return clipped((text or "").replace("\n", " "), width)


def _floor(pct: float | int | None, count: float | int | None = None) -> str:
    """A change of a count that is a floor: a rise at least as said, else none said."""
    if pct is not None and pct > 0:
        return f"at least {_pct(pct)}"
    return f"{f'at least {count}, ' if count is not None else ''}not compared (not all lines read)"


def _pct(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:+.0f}%"


def _rate(value: float | int | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
