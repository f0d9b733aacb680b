"""An activity's keyed audit row is found by its key in the database's query
(ambient/remediation/storage.py ``find_entry``), not by reading every row of its run's action:
a run joined a thousand times read a thousand ``deduplicated`` rows at each repeat."""

from __future__ import annotations

from sqlalchemy import event

from ambient.deps import WorkerDeps
from ambient.remediation.runs import Keyed
from ambient.remediation.storage import append_entry, find_entry
from tests.conftest import unique


async def test_a_keyed_row_is_found_reading_that_row_alone(deps: WorkerDeps) -> None:
    run = unique("remediation/r@run")
    async with deps.db.writing() as session:
        for n in range(30):
            await append_entry(session, Keyed(run_key=run, key=f"k{n}"), "deduplicated", {"n": n})
        # Another run's row and another action under the same key are not it.
        await append_entry(session, Keyed(run_key=f"{run}x", key="k7"), "deduplicated", {})
        await append_entry(session, Keyed(run_key=run, key="k7"), "action", {})

    loaded: list[object] = []
    async with deps.db.session() as session:
        event.listen(
            session.sync_session, "loaded_as_persistent", lambda _, row: loaded.append(row)
        )
        found = await find_entry(session, Keyed(run_key=run, key="k7"), "deduplicated")
        missing = await find_entry(session, Keyed(run_key=run, key="k30"), "deduplicated")

    assert found is not None
    assert (found.subject, found.action, found.detail) == (
        run,
        "deduplicated",
        {"n": 7, "key": "k7"},
    )
    assert loaded == [found]  # that row, not the run's thirty
    assert missing is None
