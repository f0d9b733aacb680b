"""Every activity the worker registers (an activity class's methods, bound to its clients)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.briefing import BriefingActivities
from activities.discussions import DiscussionActivities
from activities.event_agent import EventAgentActivities
from activities.events import EventActivities
from activities.notify import NotifyActivities
from activities.polling import PagePoller
from activities.remediation import RemediationActivities
from activities.remediation_records import RemediationRecordActivities
from activities.watches import WatchActivities
from ambient.clients.llm import LLMClient
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.web import WebFetcher
from ambient.deps import WorkerDeps
from ambient.remediation.dry_run import default_executors


def build_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to clients built once by the entry point."""
    events = EventActivities(deps.db)
    notify = NotifyActivities(deps.db, deps.channels, model=deps.settings.llm_mode != "offline")
    cidrs, timeout = deps.settings.fetch_allow_cidrs, deps.fetch_timeout
    fetcher = WebFetcher(deps.pages, allow_cidrs=cidrs, timeout=timeout)
    tencent = deps.tencent or TencentCloud.from_settings(deps.settings)
    watches = WatchActivities(deps.db, fetcher, tencent, SecretResolver(deps.settings.secrets))
    poller = PagePoller(
        deps.db, fetcher, notify, dead_after=deps.settings.worker_dead_after_seconds
    )
    deps.upkeep.append(poller.upkeep)
    llm = deps.llm or LLMClient(deps.settings)
    remediation = RemediationActivities(
        deps.db,
        deps.settings,
        llm,
        deps.executors or default_executors(deps.settings, tencent),
        tencent,
    )
    records = RemediationRecordActivities(deps.db)
    briefing = BriefingActivities(deps.db, llm, tencent, deps.settings)
    event_agent = EventAgentActivities(deps.db, llm)
    discussions = DiscussionActivities(deps.db, deps.settings)
    return [
        events.record_event,
        events.recorded_kinds,
        notify.notify,
        notify.notify_later,
        notify.notify_given_up,
        watches.check_page,
        watches.read_metric,
        poller.poll_pages,
        poller.end_poll,
        poller.lost_poll_alive,
        remediation.open_remediation,
        remediation.check_remediation_permission,
        remediation.check_start_permission,
        remediation.check_remediation_gates,
        remediation.take_remediation_checkpoint,
        remediation.read_rollout,
        remediation.apply_remediation_step,
        remediation.release_remediation_slot,
        remediation.read_remediation_opening,
        remediation.join_remediation,
        remediation.verify_remediation,
        records.audit_remediation,
        records.verify_approval,
        records.hand_over_remediation,
        records.record_remediation,
        remediation.collect_unresolved_alarms,
        briefing.plan_briefing_day,
        briefing.prepare_briefing,
        briefing.record_greeting,
        briefing.greeting_after_hand_over,
        briefing.compose_briefing_push,
        briefing.record_briefing_push,
        event_agent.collect_unseen_events,
        event_agent.decide_digest,
        discussions.post_to_discussion,
    ]
