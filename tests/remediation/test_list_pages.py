"""list_remediations pages by the last run seen: by offset over a newest-first list, a run
started between two pages was listed twice (or one finished between them skipped), and a last
page that filled its limit pointed at an empty one."""

from __future__ import annotations

from ambient.deps import WorkerDeps
from tests.briefing.harness import make_user
from tests.remediation.support import run_row
from tests.support.mcp_as import mcp_as


async def test_a_run_started_between_pages_is_listed_once_and_the_last_page_says_so(
    deps: WorkerDeps,
) -> None:
    await make_user(deps.db, "ops")
    async with deps.db.session() as session:
        for i in range(4):
            session.add(run_row(f"r{i}", "ops", state="resolved", service=f"svc{i}"))
        await session.commit()
    async with mcp_as(deps, "ops") as client:
        first = (await client.call_tool("list_remediations", {"limit": 2})).structured_content
        assert first is not None and first["next_before_id"] is not None
        async with deps.db.session() as session:
            session.add(run_row("r4", "ops", state="resolved", service="svc4"))
            await session.commit()
        asked = {"limit": 2, "before_id": first["next_before_id"]}
        second = (await client.call_tool("list_remediations", asked)).structured_content
        assert second is not None
    ids = [r["remediation_id"] for r in first["remediations"] + second["remediations"]]
    assert ids == ["r3", "r2", "r1", "r0"]
    # The last page filled its limit: nothing after it to ask for.
    assert second["next_before_id"] is None and second["next_offset"] is None
