"""Remediation tools: score an alert, start, approve, abort and inspect graded remediations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from ambient.domain.numbers import WHOLE_NUMBER
from ambient.remediation.alerts import Alert
from ambient.remediation.runs import RemediationState, RemediationStatus
from ambient.remediation.stats import RemediationStats
from ambient.remediation.views import (
    RETRY_SAFE,
    ApprovalAnswer,
    RemediationSummary,
    RemediationView,
    ScoreView,
    StartResult,
)
from ambient.sharing import ReportLink
from ambient.storage.models import next_before
from mcp_server.auth import Ctx, app_state, current_user
from mcp_server.tools.hints import CHANGE, DECIDE, READ, WRITE

AlertArg = Annotated[
    Alert,
    Field(
        description=(
            'The alert, e.g. {"source": "manual", "cluster_id": "cls-abc12345", "namespace": '
            '"prod", "workload": "checkout", "metric": "error_rate", "value": 0.12, '
            '"threshold": 0.05, "message": "5xx on checkout", "verify": {"source": {"type": '
            '"http_json", "url": "https://...", "json_path": "$.error_rate"}, "healthy": '
            '[{"op": "below", "value": 0.05}]}, "settle_seconds": 120}. cluster_id is a TKE '
            "cluster id or a context of AMBIENT_KUBECONFIG; workload is a Deployment name."
        )
    ),
]
RemediationId = Annotated[
    str,
    Field(description="the remediation_id start_remediation returned: remediation/<fingerprint>"),
]


RunKey = Annotated[
    str | None,
    Field(
        max_length=300,
        description="optional: the run_key get_remediation showed; refused if the same "
        "alert's run is another one by now",
    ),
]


class RemediationList(BaseModel):
    remediations: list[RemediationSummary]
    next_before_id: int | None = Field(
        default=None, description="pass as before_id for the next page; null on the last page"
    )
    next_offset: int | None = Field(
        default=None,
        description="(older clients) pass as offset for the next page; a run started between "
        "pages shifts it: prefer next_before_id",
    )
    states_as_stored: str | None = Field(
        default=None,
        description="why running runs show the state last stored, not where they are now "
        "(Temporal's list failed); null: each is where it is",
    )


async def score_alert(ctx: Ctx, alert: AlertArg) -> ScoreView:
    """Score an alert 0-100 (impact 40 %, severity 30 %, importance 20 %, time 10 %) with
    reasons, and show the budget and plan it would buy. Changes nothing."""
    return await app_state(ctx).remediations.score(alert)


async def start_remediation(
    ctx: Ctx,
    alert: AlertArg,
    mode: Annotated[
        Literal["dry_run", "execute"],
        Field(
            description="dry_run records what each step would patch; execute changes the "
            "cluster. The lower of this and your rollback_permission applies."
        ),
    ] = "dry_run",
    request_id: Annotated[str | None, Field(description=RETRY_SAFE)] = None,
) -> StartResult:
    """Start the graded remediation of an alert. While one runs for its workload (the same
    alert, or another source or metric on it), none starts (deduplicated: true; it joins that
    run, which stays its owner's). Returns remediation_id;
    get_remediation shows the plan, progress and audit of yours."""
    return await app_state(ctx).remediations.start(
        current_user(ctx), alert, mode, request_id=request_id
    )


async def approve_remediation(
    ctx: Ctx,
    remediation_id: RemediationId,
    approve: Annotated[bool, Field(description="true runs the waiting step; false hands over")],
    reason: Annotated[str | None, Field(max_length=1000)] = None,
    run_key: RunKey = None,
    rung: Annotated[
        int | None,
        Field(
            ge=1,
            le=6,
            description="optional: the waiting rung get_remediation showed; refused if the run "
            "waits on another by now",
        ),
    ] = None,
) -> ApprovalAnswer:
    """Answer a remediation that waits for approval (rungs from the approval rung up): its
    owner, an admin, or an approver named for its cluster."""
    return await app_state(ctx).remediations.approve(
        current_user(ctx),
        remediation_id,
        approve,
        reason or "",
        run_key=run_key,
        rung=rung,
        via="mcp",
    )


async def abort_remediation(
    ctx: Ctx,
    remediation_id: RemediationId,
    reason: Annotated[str | None, Field(max_length=1000)] = None,
    run_key: RunKey = None,
) -> RemediationStatus:
    """Stop a running remediation before its next change (changes made stay; see the audit)."""
    return await app_state(ctx).remediations.abort(
        current_user(ctx), remediation_id, reason or "", run_key=run_key, via="mcp"
    )


async def get_remediation(ctx: Ctx, remediation_id: RemediationId) -> RemediationView:
    """State, mode, score, budget, plan, attempts (with exact patches), waiting state, audit."""
    return await app_state(ctx).remediations.get(current_user(ctx), remediation_id)


async def list_remediations(
    ctx: Ctx,
    state: Annotated[
        RemediationState | None,
        Field(description="only the remediations in this state"),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=500), WHOLE_NUMBER] = 50,
    before_id: Annotated[
        int | None, Field(ge=1, description="the next page: next_before_id"), WHOLE_NUMBER
    ] = None,
    offset: Annotated[
        int, Field(ge=0, description="skip this many (older paging)"), WHOLE_NUMBER
    ] = 0,
) -> RemediationList:
    """Yours and those on clusters you are a named approver for (an admin sees everyone's),
    newest first; when next_before_id is not null, pass it as before_id for the next page."""
    # One more than asked: whether a next page exists (a last page that fills the limit
    # pointed at an empty one).
    listed = await app_state(ctx).remediations.list_page(
        current_user(ctx), state=state, limit=limit + 1, offset=offset, before_id=before_id
    )
    next_before_id = next_before(listed.runs, limit)
    return RemediationList(
        remediations=listed.runs[:limit],
        next_before_id=next_before_id,
        next_offset=offset + limit if next_before_id is not None and before_id is None else None,
        states_as_stored=listed.as_stored,
    )


async def remediation_stats(
    ctx: Ctx,
    days: Annotated[int, Field(ge=1, le=365, description="look back this far"), WHOLE_NUMBER] = 30,
) -> RemediationStats:
    """Outcomes of real runs: success rate by rung, service and alert type, time to resolve,
    budgets run out; dry runs counted apart."""
    return await app_state(ctx).remediations.stats(current_user(ctx), days=days)


async def share_remediation(ctx: Ctx, remediation_id: RemediationId) -> ReportLink:
    """A signed, expiring link to the remediation's report page (plan, attempts, audit)."""
    return await app_state(ctx).remediations.share(current_user(ctx), remediation_id)


def register(mcp: MCPServer[Any]) -> None:
    # Scoring may call the LLM, but it changes nothing anywhere.
    for read in (score_alert, get_remediation, list_remediations, remediation_stats):
        mcp.add_tool(read, annotations=READ)
    # Aborting ends the owner's run for good: the assistant asks the person before it does.
    for tool in (start_remediation, abort_remediation):
        mcp.add_tool(tool, annotations=CHANGE)
    # An approval without its rung, sent again once the run moved on, approves the next rung.
    mcp.add_tool(approve_remediation, annotations=DECIDE)
    mcp.add_tool(share_remediation, annotations=WRITE)
