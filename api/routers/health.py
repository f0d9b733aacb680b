"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ambient.status import SystemStatus, system_status
from api.deps import StateDep

router = APIRouter(tags=["system"])


@router.get("/health", response_model=SystemStatus)
async def health(state: StateDep) -> JSONResponse:
    """200 when Temporal and the database answer, 503 otherwise; the body says which."""
    report = await system_status(state.settings, state.temporal, state.db)
    return JSONResponse(report.model_dump(), status_code=200 if report.healthy else 503)
