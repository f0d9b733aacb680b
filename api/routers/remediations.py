"""Remediations: the same operations as the MCP remediation tools, for the calling user."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import Field

from ambient.domain.configs import UserConfig
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.remediation.alerts import Alert
from ambient.remediation.runs import RemediationState, RemediationStatus
from ambient.remediation.stats import RemediationStats
from ambient.remediation.views import (
    RETRY_SAFE,
    ApprovalAnswer,
    InvalidRemediationError,
    RemediationError,
    RemediationNotFoundError,
    RemediationRefusedError,
    RemediationStateError,
    RemediationSummary,
    RemediationView,
    ScoreView,
    StartResult,
)
from ambient.sharing import ReportLink
from ambient.storage.models import MAX_ID
from api.deps import CurrentUser, StateDep, created_or_found
from api.errors import answers, refusal, unprocessable

STATUSES = {RemediationNotFoundError: 404, RemediationRefusedError: 403, RemediationStateError: 409}

router = APIRouter(
    prefix="/remediations", tags=["remediations"], responses=answers(*STATUSES.values(), 502)
)


class RemediationStart(UserConfig):
    alert: Alert
    mode: Literal["dry_run", "execute"] = Field(
        default="dry_run", description="the lower of this and your rollback_permission applies"
    )
    # Its form is the service's to check (one rule at every door): no bound here.
    request_id: str | None = Field(default=None, description=RETRY_SAFE)


RUN_KEY = (
    "optional: the run_key of the run you looked at (get_remediation); if the same alert's "
    "run is another one by now, the request is refused (409) instead of deciding for it"
)


RUNG = (
    "optional: the rung whose approval you looked at (waiting.rung); refused (409) if the run "
    "waits on another by now"
)


class ApprovalBody(UserConfig):
    approve: bool
    reason: str | None = Field(default=None, max_length=1000)
    run_key: str | None = Field(default=None, max_length=300, description=RUN_KEY)
    rung: int | None = Field(default=None, ge=1, le=6, description=RUNG)


class AbortBody(UserConfig):
    reason: str | None = Field(default=None, max_length=1000)
    run_key: str | None = Field(default=None, max_length=300, description=RUN_KEY)


# Where a route takes a field the service names; the others are the body's.
FIELD_PLACES = {
    "remediation_id": ("path", "fingerprint"),
    "state": ("query", "state"),
    "days": ("query", "days"),
    "offset": ("query", "offset"),
    "before_id": ("query", "before_id"),
}

# The refusals no field is to blame for; any other RemediationError is a 503 (Temporal down)
# or a 502.


def http_error(exc: RemediationError) -> Exception:
    if isinstance(exc, InvalidRemediationError):
        where, field = FIELD_PLACES.get(exc.field or "alert", ("body", exc.field or "alert"))
        return unprocessable((field.split("."), str(exc)), where=where)
    return refusal(exc, STATUSES)


# An alert whose workload has a live run starts nothing: it joins that run.
JOINED: dict[int | str, dict[str, Any]] = {
    200: {"description": "the workload's live run was joined (`created: false`)"}
}


# A path parameter cannot hold "/": routes take the fingerprint, ids are remediation/<it>.
def _rid(fingerprint: str) -> str:
    return f"remediation/{fingerprint}"


@router.post("/score")
async def score(body: RemediationStart, user: CurrentUser, state: StateDep) -> ScoreView:
    """Score an alert and show the budget and plan it buys; nothing runs."""
    return await state.remediations.score(body.alert)


@router.post("", status_code=status.HTTP_201_CREATED, responses=JOINED)
async def start(
    body: RemediationStart, user: CurrentUser, state: StateDep, response: Response
) -> StartResult:
    """Start the alert's remediation (201), or join the one running for its workload (200)."""
    return created_or_found(
        await state.remediations.start(
            user.name, body.alert, body.mode, request_id=body.request_id
        ),
        response,
    )


@router.get("")
async def list_remediations(
    user: CurrentUser,
    state: StateDep,
    response: Response,
    state_: Annotated[RemediationState | None, Query(alias="state")] = None,
    limit: Annotated[int, Query(ge=1, le=500), WHOLE_NUMBER] = 50,
    offset: Annotated[
        int, Query(ge=0, description="skip this many (older paging)"), WHOLE_NUMBER
    ] = 0,
    before_id: Annotated[
        int | None,
        Query(ge=1, le=MAX_ID, description="the next page: the last id seen"),
        WHOLE_NUMBER,
    ] = None,
) -> list[RemediationSummary]:
    """Running runs show where they are now; when Temporal's list failed, where they were last
    stored, and the header ``X-States-As-Stored`` says why."""
    listed = await state.remediations.list_page(
        user.name, state=state_, limit=limit, offset=offset, before_id=before_id
    )
    if listed.as_stored:
        # A header's text is Latin-1: the reason as ASCII, on one line.
        said = " ".join(listed.as_stored.split()).encode("ascii", "replace").decode()
        response.headers["X-States-As-Stored"] = said
    return listed.runs


@router.get("/stats")
async def stats(
    user: CurrentUser, state: StateDep, days: Annotated[int, Query(ge=1, le=365), WHOLE_NUMBER] = 30
) -> RemediationStats:
    return await state.remediations.stats(user.name, days=days)


@router.get("/{fingerprint}")
async def get(fingerprint: str, user: CurrentUser, state: StateDep) -> RemediationView:
    return await state.remediations.get(user.name, _rid(fingerprint))


@router.post("/{fingerprint}/approval")
async def approve(
    fingerprint: str, body: ApprovalBody, user: CurrentUser, state: StateDep
) -> ApprovalAnswer:
    return await state.remediations.approve(
        user.name,
        _rid(fingerprint),
        body.approve,
        body.reason or "",
        run_key=body.run_key,
        rung=body.rung,
        via="api",
    )


@router.post("/{fingerprint}/abort")
async def abort(
    fingerprint: str, body: AbortBody, user: CurrentUser, state: StateDep
) -> RemediationStatus:
    return await state.remediations.abort(
        user.name, _rid(fingerprint), body.reason or "", run_key=body.run_key, via="api"
    )


@router.post("/{fingerprint}/report")
async def share(fingerprint: str, user: CurrentUser, state: StateDep) -> ReportLink:
    """A signed, expiring link to the remediation's report page."""
    return await state.remediations.share(user.name, _rid(fingerprint))
