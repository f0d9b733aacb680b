"""list_remediations pages by the last run seen: by offset over a newest-first list, a run
started between two pages was listed twice (or one finished between them skipped), and a last
page that filled its limit pointed at an empty one."""

from __future__ import annotations

from ambient import temporal
from ambient.deps import WorkerDeps
from tests.briefing.harness import make_user
from tests.remediation.support import run_row
from tests.support.mcp_as import mcp_as
from tests.support.servers import free_port


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


async def test_a_list_with_temporal_down_says_its_states_are_as_stored(deps: WorkerDeps) -> None:
    # A running run's row holds where it was planned: with Temporal's list failed, the MCP
    # list showed those states as the runs' own, and `state=waiting_approval` (where runs may
    # be now) answered an empty list while runs waited.
    await make_user(deps.db, "ops")
    async with deps.db.session() as session:
        session.add(run_row("r-open", "ops", state="planned", service="svc"))
        await session.commit()
    down = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    client = await temporal.connect(down, lazy=True)
    async with mcp_as(deps, "ops", temporal=client, settings=down) as mcp:
        listed = (await mcp.call_tool("list_remediations", {})).structured_content
        waiting = await mcp.call_tool("list_remediations", {"state": "waiting_approval"})
    assert listed is not None and [r["remediation_id"] for r in listed["remediations"]] == [
        "r-open"
    ]
    assert "unreachable" in listed["states_as_stored"], listed
    assert waiting.is_error
    said = waiting.content[0].text  # type: ignore[union-attr]
    assert "where the running runs are now could not be read" in said, said


async def test_a_list_given_both_a_before_id_and_an_offset_is_refused_naming_them(
    deps: WorkerDeps,
) -> None:
    """A page's answer held both next_before_id and next_offset, and a caller passing both
    skipped a run unsaid (limit 1 gave [r2]; before_id and offset 1 then gave []) (a review).
    A page asked by before_id offers no offset, and both at once are refused."""
    await make_user(deps.db, "ops")
    async with deps.db.session() as session:
        for i in range(3):
            session.add(run_row(f"r{i}", "ops", state="resolved", service=f"svc{i}"))
        await session.commit()
    async with mcp_as(deps, "ops") as client:
        first = (await client.call_tool("list_remediations", {"limit": 1})).structured_content
        assert first is not None
        asked = {"limit": 1, "before_id": first["next_before_id"]}
        second = (await client.call_tool("list_remediations", asked)).structured_content
        both = await client.call_tool(
            "list_remediations", {**asked, "offset": first["next_offset"]}
        )
    assert second is not None and second["next_offset"] is None
    assert [r["remediation_id"] for r in second["remediations"]] == ["r1"]
    assert both.is_error
    said = both.content[0].text  # type: ignore[union-attr]
    assert "give before_id (the next page) or offset, not both" in said, said
