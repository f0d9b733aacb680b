"""A day of logs reduced to what a person (or an LLM prompt) can read: templates with counts,
rates per hour, the trend against the previous days, new templates and anomalies.

`LogReducer` streams lines in (the CLI feeds it lines, including lines without a time) and
makes the report. `update_baseline` folds a report into the
per-user baseline of the previous days; `logreport_markdown` writes the compact report.

Pure: no I/O, no clock (times come from the records); safe inside activities.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

from pydantic import BaseModel, Field

from ambient.briefing.logtemplates import WILDCARD, TemplateMiner, template_id
from ambient.domain.loglevels import ERROR_LEVELS, SEVERITY
from ambient.log_redaction import hide_secrets, template_secrets_hidden

BUCKET_SECONDS = 300  # bursts are judged per 5 minutes
BASELINE_DAYS = 7
BASELINE_MAX_KEYS = 5000  # per day: templates beyond these (the rarest) are not remembered
# A report travels as an activity result (Temporal payloads are limited to a few MB): when
# masking fails on some source and every line looks new, these bounds keep it small.
MAX_ERROR_TEMPLATES = 1000
MAX_COUNTED_TEMPLATES = 10_000
_TOTAL, _ERRORS, _WARNINGS, _DAY = "__total__", "__errors__", "__warnings__", "__day__"


class TemplateStat(BaseModel):
    template_id: str
    template: str
    level: str
    count: int
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    example: str
    new: bool = False


class HourRate(BaseModel):
    hour: datetime  # when the hour began, an hour of the report's start's zone
    total: int
    errors: int
    warnings: int


class Anomaly(BaseModel):
    kind: str = Field(description="burst | spike | new_error")
    template_id: str | None = None
    template: str | None = None
    level: str | None = None
    score: float
    detail: str
    at: datetime | None = None
    # A burst's run, said by whoever knows the reader's zone (anomaly_detail): not in detail.
    start: datetime | None = None
    end: datetime | None = None
    # detail's numbers, for saying it in another language (anomaly_said): lines in the burst's
    # run or the day; a burst's busiest 5 minutes and its usual 5 minutes; a spike's usual day;
    # the days of the baseline.
    lines: int | None = None
    peak: int | None = None
    usual: float | None = None
    days: int | None = None


# The fields an anomaly of one template takes from it.
_OF_TEMPLATE = {"template_id", "template", "level"}


class LogBaseline(BaseModel):
    """Counts of the previous ≤ 7 days, newest last: template id -> count, the day's totals
    (`__total__`, `__errors__`, `__warnings__`) and its ordinal `__day__` (folded in once)."""

    days: list[dict[str, int]] = Field(default_factory=list)
    # The log source the days were read from: another one's days are no baseline of it.
    source: str | None = None


class LogReport(BaseModel):
    start: datetime | None = None
    end: datetime | None = None
    total: int = 0
    unreadable: int = 0
    # Only the newest lines were read (a CLS search pages up to 10,000): counts are of those.
    capped: bool = False
    # Why the read stopped short of its end, when not at the source's limit.
    stopped: str | None = None
    # Files not read to their end (a rotated .gz broken off): what is in them is not counted.
    broken: list[str] = Field(default_factory=list)
    by_level: dict[str, int] = Field(default_factory=dict)
    templates: list[TemplateStat] = Field(
        default_factory=list,
        description="by severity then count; every ERROR/CRITICAL template (up to 1,000), "
        "others bounded",
    )
    template_count: int = Field(default=0, description="distinct templates before bounding")
    hours: list[HourRate] = Field(default_factory=list)
    trend: dict[str, float | int | None] = Field(default_factory=dict)
    anomalies: list[Anomaly] = Field(default_factory=list)
    new_templates: list[str] = Field(default_factory=list, description="template ids")
    keywords: list[tuple[str, int]] = Field(default_factory=list)
    counts: dict[str, int] = Field(
        default_factory=dict,
        description="template id -> count, every template up to 10,000 (for the baseline)",
    )

    @property
    def all_unread(self) -> bool:
        """Whether lines there were and none was read (files broken off, lines without a time
        read here): no day of the baseline, nor one compared with it."""
        return not self.total and bool(self.broken or self.unreadable)

    @property
    def partly_read(self) -> bool:
        """Whether a part of the logs that may hold errors was not read (`read_short`): no day
        of the baseline, whose counts later days are compared with."""
        return read_short(self.total, self.unreadable, len(self.broken), self.capped)


def read_short(total: int, unreadable: int, broken: int, capped: bool) -> bool:
    """Whether a part of a day's logs that may hold errors was not read: a tenth or more of
    its lines without a time read here, a file not read to its end, or only the newest lines
    read (a CLS search at its cap, or stopped by CLS). Such a day is not said quiet."""
    return broken > 0 or capped or (unreadable > 0 and unreadable * 10 >= total)


_NEVER = math.inf


@dataclass(slots=True)
class _Group:
    """Lines of one level and masked shape; first/last: epoch seconds (±inf until timed)."""

    index: int
    level: str
    shape: int
    example: str
    count: int = 0
    first: float = _NEVER
    last: float = -_NEVER


class LogReducer:
    """Streams lines into groups (level, masked shape) with 5-minute counts, made templates and
    hourly rates by the report; per line only dict lookups (a million lines a day)."""

    def __init__(self, miner: TemplateMiner | None = None) -> None:
        self.miner = miner or TemplateMiner()
        self.unreadable = 0
        self.timed = True  # a line of the source had a time read here (files say)
        self.capped = False
        self.stopped: str | None = None  # why the read stopped short, when not at the limit
        self.broken: list[str] = []  # files not read to their end
        self._keys: dict[tuple[str, int], _Group] = {}
        self._groups: list[_Group] = []
        self._buckets: Counter[int] = Counter()  # 5-min bucket << 24 | group number

    def add(self, when: datetime | None, level: str, message: str) -> int:
        """Counts one line; returns its group number (see `group_template_id`)."""
        return self.add_many(((when, level, message),))[0]

    def add_many(
        self,
        lines: Iterable[tuple[datetime | None, str, str]],
        masked: Iterable[str] | None = None,
    ) -> list[int]:
        """Counts (time, level, message) lines (`masked`: their `mask_line` results, made
        elsewhere); their group numbers in order. The hot path: names bound to locals."""
        keys, groups, buckets = self._keys, self._groups, self._buckets
        add, add_masked = self.miner.add, self.miner.add_masked
        next_masked = iter(masked).__next__ if masked is not None else None
        out: list[int] = []
        append = out.append
        for when, level, message in lines:
            shape = add(message, level) if next_masked is None else add_masked(next_masked(), level)
            group = keys.get((level, shape))
            if group is None:
                group = keys[(level, shape)] = _Group(len(groups), level, shape, message[:500])
                groups.append(group)
            group.count += 1
            if when is not None:
                stamp = when.timestamp()
                if stamp < group.first:
                    group.first = stamp
                if stamp > group.last:
                    group.last = stamp
                buckets[int(stamp) // BUCKET_SECONDS << 24 | group.index] += 1
            append(group.index)
        return out

    def group_template_id(self, index: int) -> str:
        """The template id of a group, as the report names it (read after the last line)."""
        group = self._groups[index]
        return template_id(group.level, self.miner.template(group.shape))

    def report(
        self,
        *,
        baseline: LogBaseline | None = None,
        max_templates: int = 60,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> LogReport:
        """The report of everything added so far."""
        stats, members = self._stats()
        first = min((g.first for g in self._groups), default=_NEVER)
        last = max((g.last for g in self._groups), default=-_NEVER)
        zone = start.tzinfo if start is not None and start.tzinfo is not None else UTC
        start = start or _dt(first)
        end = end or _dt(last + 1)
        levels: Counter[str] = Counter()
        for group in self._groups:
            levels[group.level] += group.count
        days = (baseline.days if baseline else [])[-BASELINE_DAYS:]
        known: set[str] = set().union(*(d.keys() for d in days)) if days else set()
        for stat in stats:
            stat.new = bool(days) and stat.template_id not in known
        errors = sum(n for lvl, n in levels.items() if lvl in ERROR_LEVELS)
        warnings = levels.get("WARNING", 0)
        total = sum(levels.values())
        anomalies = self._bursts(stats, members, first, last) + _against_baseline(stats, days)
        anomalies.sort(key=lambda a: (-SEVERITY.get(a.level or "", 0), -a.score))
        return LogReport(
            start=start,
            end=end,
            total=total,
            unreadable=self.unreadable,
            capped=self.capped,
            stopped=self.stopped,
            broken=self.broken,
            by_level=dict(sorted(levels.items(), key=lambda kv: -SEVERITY[kv[0]])),
            templates=_bounded(stats, max_templates),
            template_count=len(stats),
            hours=self._hours(zone),
            trend=_trend(total, errors, warnings, days),
            anomalies=anomalies[:20],
            new_templates=[s.template_id for s in stats if s.new],
            keywords=_keywords(stats),
            # Stats are sorted by severity then count: errors and the most frequent first.
            counts={s.template_id: s.count for s in stats[:MAX_COUNTED_TEMPLATES]},
        )

    def _stats(self) -> tuple[list[TemplateStat], dict[str, list[int]]]:
        """One stat per (level, template); groups whose clusters ended with the same text merge."""
        by_id: dict[str, TemplateStat] = {}
        members: dict[str, list[int]] = {}
        for index, group in enumerate(self._groups):
            # A secret the words' masking did not see ("password = x", three words) is
            # hidden here, before the template names anything (its id, keywords, anomalies).
            level, text = group.level, template_secrets_hidden(self.miner.template(group.shape))
            tid = template_id(level, text)
            members.setdefault(tid, []).append(index)
            stat = by_id.get(tid)
            first, last = _dt(group.first), _dt(group.last)
            if stat is None:
                by_id[tid] = TemplateStat(
                    template_id=tid,
                    template=text,
                    level=level,
                    count=group.count,
                    first_seen=first,
                    last_seen=last,
                    example=group.example,
                )
                continue
            stat.count += group.count
            stat.first_seen = min((t for t in (stat.first_seen, first) if t), default=None)
            stat.last_seen = max((t for t in (stat.last_seen, last) if t), default=None)
        return sorted(by_id.values(), key=lambda s: (-SEVERITY[s.level], -s.count)), members

    def _hours(self, zone: tzinfo) -> list[HourRate]:
        """Lines per hour of ``zone``'s clock: India's (UTC+5:30), Nepal's (+5:45) hours begin
        off UTC's, and a day its clock changes has 23 or 25 of them."""
        per_hour: dict[int, list[int]] = {}
        began: dict[int, int] = {}  # a bucket -> when its hour of the clock began (epoch s)
        for packed, n in self._buckets.items():
            level = self._groups[packed & 0xFFFFFF].level
            bucket = packed >> 24
            if (hour := began.get(bucket)) is None:
                hour = began[bucket] = _hour_began(bucket * BUCKET_SECONDS, zone)
            row = per_hour.setdefault(hour, [0, 0, 0])
            row[0] += n
            if level in ERROR_LEVELS:
                row[1] += n
            elif level == "WARNING":
                row[2] += n
        return [
            HourRate(hour=datetime.fromtimestamp(h, UTC), total=v[0], errors=v[1], warnings=v[2])
            for h, v in sorted(per_hour.items())
        ]

    def _bursts(
        self,
        stats: list[TemplateStat],
        members: dict[str, list[int]],
        first: float,
        last: float,
    ) -> list[Anomaly]:
        if first == _NEVER:
            return []
        span = int(last) // BUCKET_SECONDS - int(first) // BUCKET_SECONDS + 1
        per_group: dict[int, dict[int, int]] = {}
        for packed, n in self._buckets.items():
            per_group.setdefault(packed & 0xFFFFFF, {})[packed >> 24] = n
        found: list[Anomaly] = []
        for stat in stats:
            floor = 10 if SEVERITY[stat.level] >= SEVERITY["WARNING"] else 100
            if stat.count < floor:
                continue
            series: Counter[int] = Counter()
            for index in members[stat.template_id]:
                series.update(per_group.get(index, {}))
            burst = find_burst(series, span, floor)
            if burst is None:
                continue
            peak_at, peak, run_start, run_end, run_total, mean = burst
            found.append(
                Anomaly(
                    kind="burst",
                    **stat.model_dump(include=_OF_TEMPLATE),
                    score=round((peak - mean) / math.sqrt(mean + 1), 1),
                    detail=f"{run_total} lines, peak {peak} in 5 min (usual {mean:.1f} per 5 min)",
                    at=_dt(peak_at * BUCKET_SECONDS),
                    start=_dt(run_start * BUCKET_SECONDS),
                    end=_dt((run_end + 1) * BUCKET_SECONDS),
                    lines=run_total,
                    peak=peak,
                    usual=round(mean, 1),
                )
            )
        return found


def _hour_began(seconds: int, zone: tzinfo) -> int:
    """When the hour of ``zone``'s clock holding the epoch ``seconds`` began (epoch s)."""
    offset = datetime.fromtimestamp(seconds, zone).utcoffset()
    return seconds - (seconds + int(offset.total_seconds() if offset else 0)) % 3600


def most_frequent_error(templates: Iterable[TemplateStat]) -> TemplateStat | None:
    """The error template a briefing names as the day's most frequent: the most counted of the
    ones with a word left beside the wildcards (one of wildcards alone says nothing)."""
    worded = [
        t
        for t in templates
        if t.level in ERROR_LEVELS and t.template.replace(WILDCARD, "").strip(" .,:;-")
    ]
    return max(worded, key=lambda t: t.count, default=None)


def find_burst(
    series: dict[int, int], span: int, floor: int
) -> tuple[int, int, int, int, int, float] | None:
    """The strongest burst of a 5-minute count series over `span` buckets, if any:
    (peak bucket, peak count, run start, run end, lines in run, mean per bucket).

    A burst is a bucket with at least `floor` lines, three times the mean of the series and
    five Poisson standard deviations above it; the run around it is the neighbouring buckets
    that stay at least three times the mean."""
    if not series:
        return None
    mean = sum(series.values()) / max(span, 1)
    peak_at, peak = max(series.items(), key=lambda kv: (kv[1], -kv[0]))
    if peak < max(floor, 3 * mean, mean + 5 * math.sqrt(mean) + 5):
        return None
    high = max(3 * mean, 1.0)
    run_start = run_end = peak_at
    while series.get(run_start - 1, 0) >= high:
        run_start -= 1
    while series.get(run_end + 1, 0) >= high:
        run_end += 1
    run_total = sum(series.get(b, 0) for b in range(run_start, run_end + 1))
    return peak_at, peak, run_start, run_end, run_total, mean


def _against_baseline(stats: list[TemplateStat], days: list[dict[str, int]]) -> list[Anomaly]:
    if not days:
        return []
    found: list[Anomaly] = []
    for stat in stats:
        history = [d.get(stat.template_id, 0) for d in days]
        if stat.level in ERROR_LEVELS and not any(history):
            kind, score, usual = "new_error", float(stat.count), None
            lines = "1 line" if stat.count == 1 else f"{stat.count} lines"
            past = "day" if len(days) == 1 else f"{len(days)} days"
            detail = f"{lines}; not seen in the previous {past}"
        elif len(days) >= 3 and stat.count >= 10:
            mean = sum(history) / len(history)
            spread = math.sqrt(sum((h - mean) ** 2 for h in history) / len(history))
            z = (stat.count - mean) / max(spread, math.sqrt(mean), 1.0)
            if z < 3 or stat.count < 2 * mean:
                continue
            kind, score, usual = "spike", round(z, 1), round(mean)
            detail = (
                f"{stat.count} lines against {mean:.0f} a day on average "
                f"over {len(days)} days (z = {z:.1f})"
            )
        else:
            continue
        found.append(
            Anomaly(
                kind=kind,
                **stat.model_dump(include=_OF_TEMPLATE),
                score=score,
                detail=detail,
                at=stat.first_seen,
                lines=stat.count,
                usual=usual,
                days=len(days),
            )
        )
    return found


def _bounded(stats: list[TemplateStat], max_templates: int) -> list[TemplateStat]:
    """Every ERROR/CRITICAL template (to a safety bound), then others up to `max_templates`."""
    errors = [s for s in stats if s.level in ERROR_LEVELS][:MAX_ERROR_TEMPLATES]
    others = [s for s in stats if s.level not in ERROR_LEVELS]
    kept = errors + others[: max(0, max_templates - len(errors))]
    # The example is a line as it was written: a secret in it is hidden (the template's is).
    return [s.model_copy(update={"example": hide_secrets(s.example)}) for s in kept]


def _trend(
    total: int, errors: int, warnings: int, days: list[dict[str, int]]
) -> dict[str, float | int | None]:
    rate = errors / total if total else None
    trend: dict[str, float | int | None] = {
        "baseline_days": len(days),
        "total": total,
        "errors": errors,
        "warnings": warnings,
        "error_rate": round(rate, 6) if rate is not None else None,
    }
    for name, today in (("total", total), ("errors", errors), ("warnings", warnings)):
        past = [d.get(f"__{name}__", 0) for d in days]
        mean = sum(past) / len(past) if past else None
        trend[f"{name}_mean_7d"] = round(mean, 1) if mean is not None else None
        trend[f"{name}_change_pct"] = round(100 * (today - mean) / mean, 1) if mean else None
    rates = [d.get(_ERRORS, 0) / d[_TOTAL] for d in days if d.get(_TOTAL)]
    trend["error_rate_mean_7d"] = round(sum(rates) / len(rates), 6) if rates else None
    return trend


_WORD = re.compile(r"[A-Za-z][A-Za-z_\-]{2,}|[\u4e00-\u9fff]{2,}")
_STOP = frozenset(
    "the and for with from that this was were are has have not but into out to of in on at by "
    "after before while when then than will would could should can cannot did does done is be "
    "been being via per its it all any other".split()
)


def _keywords(stats: list[TemplateStat]) -> list[tuple[str, int]]:
    """Words of WARNING-and-worse templates, weighted by how many lines carry them."""
    weights: Counter[str] = Counter()
    for stat in stats:
        if SEVERITY[stat.level] < SEVERITY["WARNING"]:
            continue
        for word in set(_WORD.findall(stat.template.replace(WILDCARD, " "))):
            if word.lower() not in _STOP:
                weights[word] += stat.count
    return weights.most_common(15)


def update_baseline(
    baseline: LogBaseline | None, report: LogReport, day: date | None = None
) -> LogBaseline:
    """The baseline with the report's ``day`` (its local date: by default the UTC date of its
    start) added or replaced, keeping the newest seven days."""
    day = day or (report.start or report.end or datetime(1970, 1, 1, tzinfo=UTC)).date()
    entry = {
        **dict(sorted(report.counts.items(), key=lambda kv: -kv[1])[:BASELINE_MAX_KEYS]),
        _TOTAL: report.total,
        _ERRORS: sum(n for lvl, n in report.by_level.items() if lvl in ERROR_LEVELS),
        _WARNINGS: report.by_level.get("WARNING", 0),
        _DAY: day.toordinal(),
    }
    days = [d for d in (baseline.days if baseline else []) if d.get(_DAY) != entry[_DAY]]
    days.append(entry)
    days.sort(key=lambda d: d.get(_DAY, 0))
    return LogBaseline(days=days[-BASELINE_DAYS:], source=baseline.source if baseline else None)


def _dt(stamp: float | None) -> datetime | None:
    return None if stamp is None or math.isinf(stamp) else datetime.fromtimestamp(stamp, UTC)
