"""A watch's or the triage's alert that joins a running remediation (the ``join_remediation``
activity), its write retried: a worker lost after the write, or the activity retried after it
wrote. One joined alert is one ``deduplicated`` row, however often it is tried."""

from __future__ import annotations

import dataclasses

import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.remediation import RemediationActivities
from ambient.deps import WorkerDeps
from ambient.remediation.joins import request_key
from ambient.remediation.runs import JoinRequest
from ambient.remediation.views import InvalidRemediationError
from api.app import create_app
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, alert, remediation_settings, remediations_on_dev
from tests.support.admins import admin_headers
from tests.support.servers import http_client, serve


async def test_a_joined_alert_retried_after_its_write_is_audited_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The join's audit row had no key: the activity tried again after it wrote (its answer
    lost, the name-only event's write failing) wrote a second ``deduplicated`` row, and the
    owner read two repeats of one alert."""
    owner, stranger = unique("own"), unique("mal")
    remediation_settings(deps, remediation_approval_from_rung=1)
    for name in (owner, stranger):
        await add_user(deps, name)
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        rid = (await remediations.start(owner, alert(url, workload=owner))).remediation_id
        activities = RemediationActivities(deps.db, settings, None, {})
        env = ActivityEnvironment(dev_env.client)
        # Every ask from one starter's run: its alerts differ by their key alone (the
        # ActivityEnvironment's activity id is always "test").
        env.info = dataclasses.replace(env.info, workflow_run_id=unique("run"))
        joins = []

        async def asked(request: JoinRequest, tries: int) -> None:
            for attempt in range(1, tries + 1):
                env.info = dataclasses.replace(env.info, attempt=attempt)
                joins.append(await env.run(activities.join_remediation, request))

        task = f"threshold-watch/{owner}/cpu_usage"
        theirs = alert(url, source="monitor", metric="cpu_usage", workload=owner)
        for check in ("1", "2"):  # two breaches of the owner's watch: two alerts
            request = JoinRequest(
                remediation_id=rid, user=owner, source=task, alert=theirs, key=f"{task}/{check}"
            )
            await asked(request, 3 if check == "1" else 1)  # the first tried three times
        # A starter of the release before (no key): keyed by its run and activity.
        task = f"threshold-watch/{stranger}/latency"
        theirs = alert(url, source="monitor", metric="latency", workload=owner)
        await asked(JoinRequest(remediation_id=rid, user=stranger, source=task, alert=theirs), 3)
        view = await remediations.get(owner, rid)
        await remediations.abort(owner, rid, reason="test over", via="api")

    assert joins == [True] * 7
    repeats = [(a.actor, a.detail["source"]) for a in view.audit if a.action == "deduplicated"]
    assert repeats == [
        (owner, f"threshold-watch/{owner}/cpu_usage"),
        (owner, f"threshold-watch/{owner}/cpu_usage"),
        (stranger, "watch"),
    ]
    assert view.joined_by == [owner, stranger]


async def test_an_alert_sent_again_by_a_retried_request_joins_its_run_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The API, MCP and CLI joined with no key: a request retried (its answer lost on the way)
    wrote a second ``deduplicated`` row, the owner reading two repeats of one alert. Its
    ``request_id`` keys it under the run it joined (a later run's repeat is a repeat anew)."""
    owner = unique("own")
    remediation_settings(deps)
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        sent = alert(url, workload=owner)
        rid = (await remediations.start(owner, sent)).remediation_id
        for request_id in ("r1", "r1", "r1", "r2", None, None):
            again = await remediations.start(owner, sent, request_id=request_id)
            assert again.deduplicated and again.remediation_id == rid
        view = await remediations.get(owner, rid)
        await remediations.abort(owner, rid, reason="test over", via="api")
    keys = [a.detail.get("key") for a in view.audit if a.action == "deduplicated"]
    assert keys == [request_key(owner, "r1", sent), request_key(owner, "r2", sent), None, None]
    # A digest: a stranger's request_id is text of their choosing, not put in the owner's audit.
    assert all("r1" not in (key or "").split(":")[-1] for key in keys), keys


async def test_a_start_retried_with_its_request_id_is_answered_as_started(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The start that carried the id, its answer lost and sent again, was answered as a repeat
    (created false) and wrote a ``deduplicated`` row in the owner's own run."""
    owner = unique("own")
    remediation_settings(deps)
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        sent = alert(url, workload=owner)
        for bad in ("", "x" * 129, "a\nb", "über"):
            with pytest.raises(InvalidRemediationError, match="request_id") as refused:
                await remediations.start(owner, sent, request_id=bad)
            assert refused.value.field == "request_id"
        first = await remediations.start(owner, sent, request_id="s1")
        again = await remediations.start(owner, sent, request_id="s1")
        assert first.created and not first.deduplicated
        assert again == first
        # The id reused for another alert on the run: that alert's own repeat, audited.
        other = alert(url, source="monitor", metric="latency", workload=owner)
        joined = await remediations.start(owner, other, request_id="s1")
        assert joined.deduplicated and joined.remediation_id == first.remediation_id
        view = await remediations.get(owner, first.remediation_id)
        await remediations.abort(owner, first.remediation_id, reason="test over", via="api")
    repeats = [a.detail for a in view.audit if a.action == "deduplicated"]
    assert [(r["metric"], r["key"]) for r in repeats] == [
        ("latency", request_key(owner, "s1", other))
    ]


async def test_a_join_retried_through_the_api_with_its_request_id_is_audited_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    owner = unique("api-owner")
    remediation_settings(deps, remediation_approval_from_rung=1)
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
            }
        )
        async with serve(create_app(settings)) as base, http_client(base) as http:
            registered = await http.post(
                "/users", json={"name": owner}, headers=await admin_headers(settings)
            )
            http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
            sent = alert("http://127.0.0.1:9/metrics", workload=owner)
            subject = sent.model_dump(mode="json")
            refused = await http.post(
                "/remediations", json={"alert": subject, "request_id": "a\tb"}
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"][0]["loc"] == ["body", "request_id"], refused.text
            # The first start carries the id: sent again, it is answered as started.
            body = {"alert": subject, "request_id": "first"}
            started = await http.post("/remediations", json=body)
            assert started.status_code == 201, started.text
            again = await http.post("/remediations", json=body)
            assert (again.status_code, again.json()) == (201, started.json()), again.text
            assert started.status_code == 201, started.text
            path = f"/remediations/{started.json()['remediation_id'].removeprefix('remediation/')}"
            body = {"alert": subject, "request_id": "retried"}
            for _ in range(2):
                again = await http.post("/remediations", json=body)
                assert again.status_code == 200 and again.json()["deduplicated"], again.text
            audit = (await http.get(path)).json()["audit"]
            await http.post(f"{path}/abort", json={})
    assert [a["detail"].get("key") for a in audit if a["action"] == "deduplicated"] == [
        request_key(owner, "retried", sent)
    ]
