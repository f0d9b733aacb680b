"""A remediation's discussion belongs to one run: the same alert again later, remediated for
someone else, neither joins nor shows the earlier run's discussion."""

from __future__ import annotations

import dataclasses

from mcp import Client
from temporalio.testing import ActivityEnvironment

from activities.discussions import DiscussionActivities
from ambient.deps import WorkerDeps
from ambient.discussions.rules import AgentPost
from ambient.storage.models import RemediationRecord
from tests.conftest import unique
from tests.discussions.test_scoping import _server
from tests.discussions.test_tools import _users, call, refused


async def _run(deps: WorkerDeps, rid: str, run: str, owner: str, state: str) -> None:
    async with deps.db.session() as session:
        session.add(
            RemediationRecord(
                run_key=f"{rid}@{run}",
                remediation_id=rid,
                user=owner,
                cluster_id="cls-1",
                service="checkout",
                alert_type="error_rate",
                source="test",
                mode="dry_run",
                state=state,
            )
        )
        await session.commit()


async def _plan_posted_by_run(deps: WorkerDeps, rid: str, run: str, content: str) -> str:
    """The plan as the run's workflow posts it (the activity, in that run)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=rid, workflow_run_id=run)
    post = AgentPost(
        agent_id="remediation",
        topic="Remediation of checkout",
        content=content,
        subject=rid,
        tags=["plan"],
        message_id=unique("rem"),
    )
    acts = DiscussionActivities(deps.db, deps.settings)
    return (await env.run(acts.post_to_discussion, post)).discussion_id


async def test_the_same_alert_remediated_later_for_another_user_keeps_the_runs_apart(
    deps: WorkerDeps,
) -> None:
    carol, dave = unique("carol"), unique("dave")
    await _users(deps, carol, dave)
    rid = f"remediation/{unique('fp')}"
    await _run(deps, rid, "run-1", carol, "resolved")
    carols = await _plan_posted_by_run(deps, rid, "run-1", "plan: roll back, carol's secret")
    # The alert fires again next week; this time it is remediated for dave.
    await _run(deps, rid, "run-2", dave, "waiting_approval")
    daves = await _plan_posted_by_run(deps, rid, "run-2", "plan: restart, dave's secret")

    assert daves != carols, "the later run posted into the earlier run's discussion"
    async with (
        Client(_server(deps, carol)) as as_carol,
        Client(_server(deps, dave)) as as_dave,
    ):
        seen_by_dave = await call(as_dave, "list_discussions")
        seen_by_carol = await call(as_carol, "list_discussions")
        assert [d["id"] for d in seen_by_dave["discussions"]] == [daves]
        assert [d["id"] for d in seen_by_carol["discussions"]] == [carols]
        assert "no discussion" in await refused(as_dave, "read_discussion", discussion_id=carols)
        read = await call(as_dave, "read_discussion", discussion_id=daves)
        assert [m["content"] for m in read["messages"]] == ["plan: restart, dave's secret"]
