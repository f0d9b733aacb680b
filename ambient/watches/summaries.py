"""A task's one-line summary: stored in English (its memo or schedule note, as list_tasks and the
Temporal Web UI show it), read back on a page as the Refusal it was made from, in the reader's
language."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ambient.refusals import N_, Refusal, read_back
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.threshold_config import Condition, ThresholdWatchConfig

if TYPE_CHECKING:
    from ambient.briefing.config import BriefingConfig

REMINDER_DAILY = N_("Reminder, daily at %(time)s %(zone)s, for %(user)s")
REMINDER_WEEKLY = N_("Reminder, weekly on %(days)s at %(time)s %(zone)s, for %(user)s")
REMINDER_CRON = N_("Reminder, cron %(cron)s %(zone)s, for %(user)s")
# A reminder's summary with what it reminds of (its message's start, one line): a list, the
# Web UI and the voice find "the stand-up reminder" by it. Read back before those without.
SAYING = N_("%(summary)s: %(message)s")
SAID_AT_MOST = 40
DIGEST_DAILY = N_("News digest of %(count)s page(s), daily at %(time)s %(zone)s, for %(user)s")
DIGEST_WEEKLY = N_(
    "News digest of %(count)s page(s), weekly on %(days)s at %(time)s %(zone)s, for %(user)s"
)
DIGEST_CRON = N_("News digest of %(count)s page(s), cron %(cron)s %(zone)s, for %(user)s")
WEB_MONITOR = N_("Web monitor of %(count)s URL(s) every %(minutes)s min for %(user)s")
THRESHOLD_WATCH = N_("Threshold watch %(metric)s: %(rules)s")
BRIEFING = N_(
    "Daily briefing for %(user)s: prepare %(prepare)s, greeting window %(start)s–%(end)s (%(zone)s)"
)
# A threshold watch's lines as its summary says them ("above 100 any below 10"), word by word.
RULE_WORDS = {"above": N_("above"), "below": N_("below"), "any": N_("or"), "all": N_("and")}
SUMMARIES = (
    REMINDER_DAILY,
    REMINDER_WEEKLY,
    REMINDER_CRON,
    DIGEST_DAILY,
    DIGEST_WEEKLY,
    DIGEST_CRON,
    WEB_MONITOR,
    THRESHOLD_WATCH,
    BRIEFING,
)
_REMINDERS = (REMINDER_DAILY, REMINDER_WEEKLY, REMINDER_CRON)
_SCHEDULES = {
    ("reminder", "daily"): REMINDER_DAILY,
    ("reminder", "weekly"): REMINDER_WEEKLY,
    ("reminder", "cron"): REMINDER_CRON,
    ("news_digest", "daily"): DIGEST_DAILY,
    ("news_digest", "weekly"): DIGEST_WEEKLY,
    ("news_digest", "cron"): DIGEST_CRON,
}


def schedule_summary(
    action: str,
    type: str,
    *,
    user: str,
    zone: str,
    count: int,
    time: str,
    days: str,
    cron: str,
    message: str = "",
) -> Refusal:
    """A reminder's or a news digest's summary (``count`` pages of a digest), with the start
    of a reminder's ``message`` when it has one."""
    summary = Refusal(
        _SCHEDULES[action, type],
        count=count,
        time=time,
        days=days,
        cron=cron,
        zone=zone,
        user=user,
    )
    said = " ".join(message.split())
    if not said:
        return summary
    cut = said if len(said) <= SAID_AT_MOST else said[: SAID_AT_MOST - 1] + "…"
    return Refusal(SAYING, summary=summary, message=cut)


def watch_summary(config: WebMonitorConfig | ThresholdWatchConfig, user: str) -> str:
    """A watch's summary of its ``config``: at its start, and again at each update (the
    workflow keeps its memo's summary the lines or interval it watches now)."""
    if isinstance(config, WebMonitorConfig):
        minutes = f"{config.check_interval_minutes:g}"
        return str(Refusal(WEB_MONITOR, count=len(config.urls), minutes=minutes, user=user))
    metric = config.metric or (config.source.type if config.source else "")
    return str(
        Refusal(THRESHOLD_WATCH, metric=metric, rules=rules_of(config.conditions, config.combine))
    )


def briefing_summary(config: BriefingConfig, user: str) -> str:
    """A daily briefing's summary of its ``config``: its start's, and the first line of each
    run's Current Details (a run continued as new, every day, has no Summary of its own)."""
    return str(
        Refusal(
            BRIEFING,
            user=user,
            prepare=config.prepare_at,
            start=config.window_start,
            end=config.window_end,
            zone=config.timezone,
        )
    )


def rules_of(conditions: Sequence[Condition], combine: str) -> str:
    """A threshold watch's lines as its summary says them (its messages too)."""
    return f" {combine} ".join(f"{c.op} {c.value:.15g}" for c in conditions)


def rules_in(rules: str, words: Callable[[str], str]) -> str:
    """Lines as ``rules_of`` says them, in the language of ``words`` (a catalog's gettext)."""
    return " ".join(words(RULE_WORDS[w]) if w in RULE_WORDS else w for w in rules.split(" "))


def summary_said(summary: str) -> Refusal | None:
    """A stored summary as the Refusal it was made from; None: none of these (an older
    release's, or another's words)."""
    # A reminder's with its message (SAYING) first: its own summary holds no ": ", the
    # message may (read whole, a cron's %(cron)s took the message's words for its own); a
    # threshold watch's and a briefing's ": " head no reminder's summary.
    head, _, message = summary.partition(": ")
    if message and (inner := read_back(head, _REMINDERS)) is not None:
        return Refusal(SAYING, summary=inner, message=message)
    return read_back(summary, SUMMARIES)
