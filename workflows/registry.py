"""Every workflow the worker runs and `ambient replay` checks."""

from __future__ import annotations

from workflows.daily_briefing import DailyBriefingWorkflow
from workflows.deliver_later import DeliverLaterWorkflow
from workflows.discussions import DiscussionNotifyWorkflow
from workflows.event_agent import EventDigestWorkflow
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_triage import AlertTriageWorkflow
from workflows.reminder import ReminderWorkflow
from workflows.threshold_watch import ThresholdWatchWorkflow
from workflows.web_monitor import WebMonitorWorkflow

# Append new workflows here.
ALL_WORKFLOWS: list[type] = [
    WebMonitorWorkflow,
    ThresholdWatchWorkflow,
    ReminderWorkflow,
    GradedRemediationWorkflow,
    AlertTriageWorkflow,
    DailyBriefingWorkflow,
    EventDigestWorkflow,
    DiscussionNotifyWorkflow,
    DeliverLaterWorkflow,
]
