"""An alert that comes again while its remediation runs: the run is told, nothing starts.

The intake (`RemediationService.start`) and the workflows' own repeats (a threshold watch's or
the triage's alert, through the `join_remediation` activity) join the same way. This module
names the workflow's signal instead of importing the workflow, so the activity that uses it
keeps the imports one way (workflows → activities → ambient).

Who may see and steer the run (its owner, an admin, an approver of its cluster) joins it with
their alert: the run checks it before it calls itself resolved and names it in the owner's
messages. Anyone else joins as a name (``joined_by``, the audit): an alert's fields are no
secret, and a member must not put their text in another's push and briefing, nor decide with
their own ``verify`` block whether another's run is over. The nightly triage's alarms are the
operator's own (Cloud Monitor, CLS, not a member's typing): its configured user joins with them.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from ambient import no_answer, temporal, updates
from ambient.remediation.alerts import Alert
from ambient.remediation.intake import cluster_approvers
from ambient.remediation.runs import (
    FINAL_STATES,
    JOIN,
    JOIN_TOO_LATE,
    JOINED,
    TRIAGE,
    JoinInput,
    Keyed,
)
from ambient.remediation.safety import Approvers, may_steer
from ambient.remediation.storage import append_entry
from ambient.remediation.views import RemediationStateError
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.users import user_named

# A run that took an alert and then ended as one of these ended by its own outcome, which
# read the alert (taken before it); the rest were ended from outside (a terminate, a cancel).
TAKES_TO_ITS_END = (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED)
# How long a join waits for the run's worker to take its update before it is sent as the
# signal: in a flood the run's workflow task may hold it for seconds (its local activities),
# and an alert's sender waits for the answer.
JOIN_TAKEN_WITHIN = 1.0
# The audit action of an alert sent again while its run goes on.
REPEATED = "deduplicated"
# How long an alert sent again waits for its ended run's last steps before the next run starts.
FINISHING_WAIT = 10.0
# The event a watch's or the triage's sender gets when its alert joined another's run as a name.
NAME_ONLY = "remediation.joined_as_name"
# What the sender of an alert that joined as a name may do about it (the API's answer too).
NOT_ADDED = (
    "your alert is not added to it (its owner sees that you sent one, not its text): an admin "
    "or an approver of the cluster can send it, or send it again once that run ends"
)
NAME_ONLY_WHY = f"this workload is already being remediated by its owner: {NOT_ADDED}"


class Joined(NamedTuple):
    """The run joined: its search attributes, and whether the sender may steer it (their alert
    joined with its text) or joined as a name only."""

    attributes: TypedSearchAttributes
    steers: bool


async def join(
    client: Client,
    db: Database,
    settings: Settings,
    user: str,
    workflow_id: str,
    source: str | None = None,
    alert: Alert | None = None,
    key: str | None = None,
) -> Joined | None:
    """Tell the running run its alert came again, audited; None: it ended, start the next.
    ``source``: the watch's task id or ``triage`` (None: the API, MCP, CLI); ``key``: the
    joining alert's own (its starter's run and activity), audited once however often tried."""
    # What the answer needs comes from the server's description of the run, not a query: a
    # query is answered by the worker, in a storm busy with the very runs being repeated —
    # every repeat waited for it (or timed out, unrecorded) and added a task to its load.
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
        # The run looked at, not whichever is newest by the signal: another may start meanwhile
        # (a signal to it once it has closed is NOT_FOUND: ended, below).
        run = client.get_workflow_handle(workflow_id, run_id=description.run_id)
        steers = await _steers(db, settings, user, source, description.typed_search_attributes)
        taken: bool | None = None
        if _going(description):
            if not steers:
                alert = None  # joined as a name: nothing of the alert is the owner's to read
            taken = await _told(run, JoinInput(user=user, alert=alert), key)
            if taken and (await run.describe()).status not in TAKES_TO_ITS_END:
                taken = False  # ended by a terminate or a cancel: it will read the alert no more
            if taken is None:
                # Held by the server for a worker that has not answered: taken as a signal
                # is. Ended meanwhile, the run will not look at it: the next run's, as below.
                description = await run.describe()
        if taken is False or (taken is None and not _going(description)):
            # Ended (resolved, handed over, terminated, ...), maybe its report and notices
            # still going out: the alert again is the next run's, once this one is done.
            if not await temporal.ended_within(run, FINISHING_WAIT):
                raise RemediationStateError(
                    f"{workflow_id} has just ended and is still sending its report: nothing "
                    "was started; send the alert again in a minute"
                )
            return None  # however it ended (terminated, failed): the alert starts the next run
    except RPCError as exc:
        if no_answer.not_found(exc):  # "workflow execution already completed"
            return None
        raise
    attributes = description.typed_search_attributes
    # The worker's writers queue back to back in a storm: a plain session's insert slept
    # in SQLite's busy handler and lost the lock to them ("database is locked", HTTP 500,
    # the repeat unrecorded). The write turn waits for it.
    subject = run_key_of(description)
    async with db.writing() as session:
        await _audited(
            session,
            user,
            subject,
            key,
            {
                "user": user,
                # A stranger's watch id is text of their choosing: the owner reads the door.
                "source": source if steers and source else _door(user, source),
                "state": attributes.get(temporal.STATE),
                # Which alert joined: another source or metric on the workload is one too.
                **(
                    {"alert_source": alert.source, "metric": alert.metric}
                    if alert is not None
                    else {}
                ),
            },
        )
    return Joined(attributes, steers)


async def _told(run: WorkflowHandle[Any, Any], request: JoinInput, key: str | None) -> bool | None:
    """Whether the run took the alert (True) or had decided its outcome, when it reads no
    alert again (False; it may have decided in the very workflow task that was running when
    the alert came, its description still saying it goes on). None: sent as the signal, which
    the server keeps for the run: no worker answered in time (the update may still be taken
    later, once: the run counts an alert once), or its worker is of a release before the
    update."""
    try:
        key = f"join/{key}" if key else None
        await updates.answered(run, JOIN, request, id=key, taken_within=JOIN_TAKEN_WITHIN)
        return True
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == JOIN_TOO_LATE:
            return False
        if not (isinstance(cause, ApplicationError) and "update" in str(cause).lower()):
            raise
    except updates.Unanswered:
        pass
    await run.signal(JOINED, request)
    return None


async def _audited(
    session: AsyncSession, user: str, subject: str, key: str | None, detail: dict[str, Any]
) -> None:
    """The repeat's audit row; with a ``key``, once (a retry after the write finds it)."""
    if key is None:
        await AuditRepository(session).append(
            actor=user, action=REPEATED, subject=subject, detail=detail
        )
    else:
        await append_entry(session, Keyed(run_key=subject, key=key), REPEATED, detail, user)


async def _steers(
    db: Database, settings: Settings, user: str, source: str | None, run: TypedSearchAttributes
) -> bool:
    """Whether ``user``'s alert joins with its text: they may steer the run, or it is the
    configured triage user's night (the operator's own alarms)."""
    if source == TRIAGE and user == settings.remediation_triage_user:
        return True
    account = await user_named(db, user)
    admin = account is not None and account.is_admin
    return may_steer_run(user, admin, run, cluster_approvers(settings))


def run_key_of(run: WorkflowExecution) -> str:
    """A remediation run's key (its workflow's ``run_key``): its workflow id and its first
    run's id, which a run reset in Temporal keeps."""
    return f"{run.id}@{run.raw_info.first_run_id or run.run_id}"


def may_steer_run(
    user: str, is_admin: bool, run: TypedSearchAttributes, approvers: Approvers
) -> bool:
    """``may_steer``, read from the run's search attributes (its owner and cluster)."""
    owner, cluster = run.get(temporal.USER) or "", run.get(temporal.CLUSTER) or ""
    return may_steer(user, is_admin, cluster, approvers, owner)


def _door(user: str, source: str | None) -> str:
    """The source a name-only join is audited with: the door, not the sender's text."""
    if source is None:
        return user
    return TRIAGE if source == TRIAGE else "watch"


def _going(run: WorkflowExecutionDescription) -> bool:
    """Still taking alerts: running, and not in a final state (sending its report)."""
    state = run.typed_search_attributes.get(temporal.STATE)
    return run.status is WorkflowExecutionStatus.RUNNING and state not in FINAL_STATES


def request_key(user: str, request_id: str, alert: Alert) -> str:
    """The key of a start or join sent with ``request_id``: a digest (a stranger's id is text
    of their choosing, not for the owner's audit) of the id and the alert's source and metric
    (an id reused for another alert on the run is that alert's own repeat, audited)."""
    said = "\n".join((user, request_id, alert.source, alert.metric or ""))
    return f"request:{user}:{hashlib.sha256(said.encode()).hexdigest()[:32]}"
