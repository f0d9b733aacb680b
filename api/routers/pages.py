"""The small server-rendered web page."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from ambient.status import system_status
from api.deps import StateDep

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def index(state: StateDep) -> HTMLResponse:
    report = await system_status(state.settings, state.temporal, state.db)
    rows = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>"
        for name, value in report.model_dump().items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ambient-ops</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto}}
th{{text-align:left;padding-right:1rem}}</style></head>
<body><h1>ambient-ops</h1>
<p>Durable background operations on Temporal. API docs: <a href="/docs">/docs</a>;
MCP endpoint: <code>/mcp</code> (bearer token).</p>
<h2>Status</h2><table>{rows}</table></body></html>"""
    return HTMLResponse(page)
