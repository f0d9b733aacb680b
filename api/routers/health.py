"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ambient.status import PublicStatus, system_status
from api.deps import StateDep

router = APIRouter(tags=["system"])


@router.get("/health", response_model=PublicStatus)
async def health(state: StateDep) -> JSONResponse:
    """200 when Temporal and the database answer, 503 otherwise; the body says which (where
    they are and why not: `ambient status`, the MCP get_status tool to an admin)."""
    report = await system_status(state.settings, state.temporal, state.db)
    return JSONResponse(report.public().model_dump(), status_code=200 if report.healthy else 503)
