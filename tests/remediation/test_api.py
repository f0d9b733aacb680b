"""The /remediations API on the dev server: start, approve, follow, audit, search attributes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.remediation.service import RemediationService
from ambient.remediation.views import (
    InvalidRemediationError,
    RemediationError,
    RemediationNotFoundError,
    RemediationRefusedError,
    RemediationStateError,
)
from ambient.setting_types import ServerSecret
from ambient.settings import Settings
from api.app import create_app
from api.errors import feature_error, install_error_mapping
from api.routers import remediations
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, alert, error_rate, remediation_settings
from tests.support.admins import admin_headers
from tests.support.api_worker import api_over_worker
from tests.support.servers import http_client, serve
from tests.support.waits import eventually, until_equal


@asynccontextmanager
async def api_with_no_worker(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, user: str, **update: object
) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the dev server with no worker on its queue (settings ``update``d), and a
    client signed in as ``user``, registered by an admin."""
    settings = deps.settings.model_copy(
        update={
            **update,
            "temporal_task_queue": unique("tq"),
            "temporal_address": dev_env.client.service_client.config.target_host,
        }
    )
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        registered = await http.post("/users", json={"name": user}, headers=admin)
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        yield http


async def test_remediations_api_scores_starts_approves_and_shows_the_audit(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    user = unique("api-ops")
    async with (
        error_rate(healthy_from=2) as (_, url),
        running_worker(dev_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
            }
        )
        async with (
            serve(create_app(settings)) as base,
            http_client(base) as http,
        ):
            admin = await admin_headers(settings)
            registered = await http.post("/users", json={"name": user}, headers=admin)
            assert registered.status_code == 201, registered.text
            http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
            # A distinct workload per run: the dev server is shared by the whole session.
            subject = alert(url, workload=user, settle_seconds=0).model_dump(mode="json")

            bad = await http.post("/remediations", json={"alert": {**subject, "workload": "X Y"}})
            assert bad.status_code == 422 and "workload" in bad.text
            bad = await http.post("/remediations", json={"alert": {**subject, "source": "a\x00"}})
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "source"
            for cluster in ("http://evil/", "cls-test"):
                bad = await http.post(
                    "/remediations", json={"alert": {**subject, "cluster_id": cluster}}
                )
                assert bad.status_code == 422 and "cls- and 8 lowercase" in bad.text
                assert bad.json()["detail"][0]["loc"][-1] == "cluster_id"
            assert (await http.get("/remediations")).json() == []  # nothing was started

            scored = await http.post("/remediations/score", json={"alert": subject})
            assert scored.status_code == 200 and scored.json()["budget"] == 4

            started = await http.post("/remediations", json={"alert": subject, "mode": "dry_run"})
            assert started.status_code == 201, started.text
            rid = started.json()["remediation_id"]
            fingerprint = rid.removeprefix("remediation/")
            # The same alert again joins the live run: nothing was created, so no 201.
            again = await http.post("/remediations", json={"alert": subject, "mode": "dry_run"})
            assert again.status_code == 200, again.text
            assert again.json()["created"] is False and again.json()["remediation_id"] == rid

            async def state() -> str:
                shown = await http.get(f"/remediations/{fingerprint}")
                assert shown.status_code == 200, shown.text
                return str(shown.json()["state"])

            await until_equal(state, "waiting_approval", "the remediation waiting_approval")
            approved = await http.post(
                f"/remediations/{fingerprint}/approval", json={"approve": True, "reason": "go"}
            )
            assert approved.status_code == 200, approved.text
            # The step answered and that it is a dry run, as the voice says them.
            answer = approved.json()
            assert (answer["rung"], answer["approve"], answer["remediation_id"]) == (1, True, rid)
            assert (answer["rung_name"], answer["mode"], answer["dry_run"]) == (
                "restart",
                "dry_run",
                True,
            )
            assert answer["step"] == "step 1 (restart, a dry run)", answer
            await until_equal(state, "resolved", "the remediation resolved")
            shown = (await http.get(f"/remediations/{fingerprint}")).json()
            listed = (await http.get("/remediations")).json()
            stats = (await http.get("/remediations/stats")).json()
            missing = await http.get("/remediations/0000000000000000")

    assert shown["state"] == "resolved"
    assert [a["rung"] for a in shown["attempts"]] == [1]
    approvals = [a for a in shown["audit"] if a["action"] == "approval"]
    assert approvals[0]["actor"] == user and approvals[0]["detail"]["reason"] == "go"
    # The door's record of the answer says which door it came through.
    (sent,) = [a for a in shown["audit"] if a["action"] == "approve"]
    assert (sent["actor"], sent["detail"]["via"]) == (user, "api")
    assert [r["remediation_id"] for r in listed] == [rid]
    assert (stats["dry_runs"], stats["resolved"]) == (1, 0)  # a dry run changed nothing
    assert missing.status_code == 404
    query = f"{temporal.KIND.name} = 'remediation' AND {temporal.USER.name} = {json.dumps(user)}"

    async def listed_resolved() -> list[Any] | None:
        found = [w async for w in dev_env.client.list_workflows(query)]
        resolved = found and found[0].typed_search_attributes.get(temporal.STATE) == "resolved"
        return found if resolved else None

    found = await eventually(listed_resolved, "the run listed as resolved")
    assert [w.id for w in found] == [rid]
    attributes = found[0].typed_search_attributes
    assert attributes.get(temporal.CLUSTER) == "cls-test0001"
    assert attributes.get(temporal.STATE) == "resolved"


async def test_the_list_shows_a_running_remediation_where_it_is_not_where_it_was_planned(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Rung 1 is tried without asking and does not heal; rung 2 waits for an approval.
    remediation_settings(deps, remediation_approval_from_rung=2)
    user = unique("api-list")
    async with (
        error_rate(healthy_from=None) as (_, url),
        api_over_worker(dev_env, deps) as (settings, http),
    ):
        admin = await admin_headers(settings)
        registered = await http.post("/users", json={"name": user}, headers=admin)
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        subject = alert(url, workload=user, settle_seconds=0).model_dump(mode="json")
        started = await http.post("/remediations", json={"alert": subject, "mode": "execute"})
        assert started.status_code == 201, started.text
        fingerprint = started.json()["remediation_id"].removeprefix("remediation/")

        async def waiting() -> dict[str, Any] | None:
            # A worker busy past the query's timeout answers 503: asked again, not a failure.
            answer = await http.get(f"/remediations/{fingerprint}")
            ok = answer.status_code == 200 and answer.json()["state"] == "waiting_approval"
            return cast(dict[str, Any], answer.json()) if ok else None

        shown = await eventually(waiting, "the run waits for approval")
        assert len(shown["attempts"]) == 1

        async def listed_waiting() -> list[dict[str, Any]] | None:
            # get asks the run; the list's state of a running run is its AmbientState in the
            # server's list (a visibility query, eventually consistent): a moment later.
            at = (await http.get("/remediations", params={"state": "waiting_approval"})).json()
            return cast(list[dict[str, Any]], at) or None

        waiting = await eventually(listed_waiting, "the run listed as waiting for approval")
        listed = (await http.get("/remediations")).json()
        planned = (await http.get("/remediations", params={"state": "planned"})).json()

    # The row was written when the run was planned; the list tells where the run is now.
    # ...and how it acts: asked to execute, a member with dry_run runs a dry run.
    assert [(r["state"], r["attempts"], r["mode"]) for r in listed] == [
        ("waiting_approval", 1, "dry_run")
    ]
    assert [r["remediation_id"] for r in waiting] == [f"remediation/{fingerprint}"]
    assert planned == []


async def test_another_user_gets_nothing_of_a_remediation_through_the_api_or_the_web_form(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner, stranger = unique("api-owner"), unique("api-stranger")
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
            }
        )
        async with (
            serve(create_app(settings)) as base,
            http_client(base) as http,
        ):
            admin = await admin_headers(settings)
            tokens = {}
            for name in (owner, stranger):
                registered = await http.post("/users", json={"name": name}, headers=admin)
                assert registered.status_code == 201, registered.text
                tokens[name] = registered.json()["token"]
            as_owner = {"Authorization": f"Bearer {tokens[owner]}"}
            as_stranger = {"Authorization": f"Bearer {tokens[stranger]}"}
            subject = alert("http://127.0.0.1:9/metrics", workload=owner).model_dump(mode="json")
            started = await http.post("/remediations", json={"alert": subject}, headers=as_owner)
            assert started.status_code == 201, started.text
            rid = started.json()["remediation_id"]
            fingerprint = rid.removeprefix("remediation/")

            async def state() -> str:
                shown = await http.get(f"/remediations/{fingerprint}", headers=as_owner)
                assert shown.status_code == 200, shown.text
                return str(shown.json()["state"])

            await until_equal(state, "waiting_approval", "the remediation waiting_approval")

            again = await http.post("/remediations", json={"alert": subject}, headers=as_stranger)
            path = f"/remediations/{fingerprint}"
            answers = {
                "get": await http.get(path, headers=as_stranger),
                "approve": await http.post(
                    f"{path}/approval", json={"approve": True}, headers=as_stranger
                ),
                "refuse": await http.post(
                    f"{path}/approval", json={"approve": False}, headers=as_stranger
                ),
                "abort": await http.post(f"{path}/abort", json={}, headers=as_stranger),
                "report": await http.post(f"{path}/report", headers=as_stranger),
            }
            # The web page's form posts with the session cookie, from the same origin.
            form = await http.post(
                "/app/remediation/action",
                data={"remediation_id": rid, "action": "refuse", "reason": "mine now"},
                cookies={"ambient_token": tokens[stranger]},
                headers={"Origin": base},
            )
            # Nor its page, nor a line of it on the list page.
            stranger_pages = {"ambient_token": tokens[stranger]}
            shown = await http.get("/app/remediation", params={"id": rid}, cookies=stranger_pages)
            listed = await http.get("/app/remediations", cookies=stranger_pages)
            after = (await http.get(path, headers=as_owner)).json()
            aborted = await http.post(f"{path}/abort", json={}, headers=as_owner)
            await until_equal(state, "aborted", "the remediation aborted")
            # A run that has ended: answering or aborting it is a conflict with its state.
            late = [
                await http.post(f"{path}/approval", json={"approve": True}, headers=as_owner),
                await http.post(f"{path}/abort", json={}, headers=as_owner),
            ]

    assert {door: r.status_code for door, r in answers.items()} == dict.fromkeys(answers, 404)
    assert [r.status_code for r in late] == [409, 409], [r.text for r in late]
    assert "not waiting for approval (state aborted)" in late[0].json()["detail"]
    assert "already finished (state aborted)" in late[1].json()["detail"]
    assert form.status_code == 303
    assert "not%20one%20of%20yours" in form.headers["location"]
    assert shown.status_code == 303 and "not%20one%20of%20yours" in shown.headers["location"]
    assert listed.status_code == 200 and fingerprint not in listed.text and owner not in listed.text
    assert after["state"] == "waiting_approval" and after["approvals"] == []
    assert [a["actor"] for a in after["audit"] if a["action"] == "deduplicated"] == [stranger]
    assert again.json()["deduplicated"] is True and again.json()["state"] is None
    assert "by its owner" in again.json()["message"]
    assert aborted.status_code == 200, aborted.text


@pytest.mark.parametrize(
    ("error", "status", "loc"),
    [
        (RemediationNotFoundError("no remediation/x"), 404, None),
        (RemediationRefusedError("not yours"), 403, None),
        (RemediationStateError("already finished"), 409, None),
        (InvalidRemediationError("invalid alert — service: required"), 422, ["body", "alert"]),
        (InvalidRemediationError("not waiting", field="approve"), 422, ["body", "approve"]),
        (
            InvalidRemediationError("not a cluster", field="alert.cluster_id"),
            422,
            ["body", "alert", "cluster_id"],
        ),
        # The id is the path's fingerprint (an over-long one is refused before it is looked up);
        # the list's filters are the query's.
        (
            InvalidRemediationError("remediation_id: at most 255", field="remediation_id"),
            422,
            ["path", "fingerprint"],
        ),
        (InvalidRemediationError("days: 1 to 365", field="days"), 422, ["query", "days"]),
        (RemediationError("the cluster answered 500"), 502, None),
    ],
)
async def test_every_route_answers_a_remediation_error_the_same_way(
    error: RemediationError, status: int, loc: list[str] | None
) -> None:
    """One mapping for the whole router (api.errors): a route raises, the app answers."""
    app = FastAPI()
    install_error_mapping(app)
    app.add_exception_handler(RemediationError, feature_error(remediations.http_error))

    @app.get("/raise")
    async def raising() -> None:
        raise error

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        answer = await http.get("/raise")
    assert answer.status_code == status
    if loc is None:
        assert answer.json()["detail"] == str(error)
    else:
        assert answer.json()["detail"][0]["loc"] == loc
        assert answer.json()["detail"][0]["msg"] == str(error)


@pytest.mark.parametrize(
    "labels",
    [
        {"runbook": "x" * 3_000_000},
        {f"label{i}": "v" for i in range(100_000)},
        {"k" * 100_000: "v"},
    ],
    ids=["huge value", "many labels", "huge key"],
)
async def test_an_alert_with_huge_labels_is_a_422_naming_labels_and_nothing_starts(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, labels: dict[str, str]
) -> None:
    user = unique("api-labels")
    async with api_with_no_worker(dev_env, deps, user) as http:
        subject = alert("http://127.0.0.1:9/metrics", workload=user).model_dump(mode="json")
        answer = await http.post("/remediations", json={"alert": {**subject, "labels": labels}})
        listed = (await http.get("/remediations")).json()

    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["detail"][0]["loc"][:3] == ["body", "alert", "labels"]
    assert listed == []


async def test_an_alert_whose_verify_has_huge_conditions_is_a_422_naming_them_and_nothing_starts(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user = unique("api-healthy")
    async with api_with_no_worker(dev_env, deps, user, fetch_allow_cidrs=["127.0.0.1/32"]) as http:
        subject = alert("http://127.0.0.1:9/metrics", workload=user).model_dump(mode="json")
        # ~3 MB of conditions: past Temporal's 2 MB limit on the workflow's input.
        healthy = [{"op": "below", "value": 0.05}] * 100_000
        subject["verify"]["healthy"] = healthy
        answer = await http.post("/remediations", json={"alert": subject})
        listed = (await http.get("/remediations")).json()

    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["detail"][0]["loc"][:4] == ["body", "alert", "verify", "healthy"]
    assert listed == []


async def test_a_verify_source_the_worker_may_not_read_is_a_422_naming_its_url(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Unread, the verification says "not resolved" after every change: the ladder would
    # climb to its strongest rungs on a metric it can never see.
    user = unique("api-verify")
    async with api_with_no_worker(dev_env, deps, user) as http:
        subject = alert("http://10.0.0.5:9090/metrics", workload=user).model_dump(mode="json")
        answer = await http.post("/remediations", json={"alert": subject})
        listed = (await http.get("/remediations")).json()

    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "alert", "verify", "source", "url"]
    assert "refused destination 10.0.0.5" in error["msg"]
    assert "AMBIENT_FETCH_ALLOW_CIDRS" in error["msg"]
    assert listed == []


async def test_a_verify_source_naming_a_secret_not_the_callers_is_a_422_and_nothing_starts(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The same rule as a threshold watch's source: a member names only the secrets the
    # operator lists for them, or it reads with an admin's credentials.
    user = unique("api-secret")
    secrets = {"ops": SecretStr("admins-only")}
    async with api_with_no_worker(
        dev_env, deps, user, secrets=secrets, fetch_allow_cidrs=["127.0.0.1/32"]
    ) as http:
        subject = alert("http://127.0.0.1:9/metrics", workload=user).model_dump(mode="json")
        subject["verify"]["source"]["auth"] = {"type": "bearer", "secret": "secret:ops"}
        answer = await http.post("/remediations", json={"alert": subject})
        listed = (await http.get("/remediations")).json()

    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "alert", "verify", "source", "auth", "secret"]
    assert f"secret 'ops' is not available to {user}" in error["msg"]
    assert "admins-only" not in answer.text
    assert listed == []


async def test_a_verify_source_at_an_origin_its_secret_does_not_list_is_a_422(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Listed on the secret, the member still does not choose where its value goes.
    user = unique("api-origin")
    listed = ServerSecret(value=SecretStr("tok"), users=[user], origins=["https://prom.example"])
    async with api_with_no_worker(
        dev_env, deps, user, secrets={"prom": listed}, fetch_allow_cidrs=["127.0.0.1/32"]
    ) as http:
        subject = alert("http://127.0.0.1:9/metrics", workload=user).model_dump(mode="json")
        subject["verify"]["source"]["auth"] = {"type": "bearer", "secret": "secret:prom"}
        answer = await http.post("/remediations", json={"alert": subject})

    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "alert", "verify", "source", "auth", "secret"]
    assert "secret 'prom' may not be sent to http://127.0.0.1:9:" in error["msg"]


async def test_another_users_remediation_is_not_found_in_the_same_words_as_none_at_all(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Different words told a stranger which alerts (a guessable hash) were being remediated.
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner, stranger = unique("api-owner"), unique("api-prober")
    async with api_over_worker(dev_env, deps) as (settings, http):
        admin = await admin_headers(settings)
        headers = {}
        for name in (owner, stranger):
            registered = await http.post("/users", json={"name": name}, headers=admin)
            headers[name] = {"Authorization": f"Bearer {registered.json()['token']}"}
        subject = alert("http://127.0.0.1:9/metrics", workload=owner).model_dump(mode="json")
        started = await http.post("/remediations", json={"alert": subject}, headers=headers[owner])
        fingerprint = started.json()["remediation_id"].removeprefix("remediation/")
        absent = "0123456789abcdef"
        answers = {}
        for which, fp in (("theirs", fingerprint), ("none", absent)):
            answers[which] = [
                await http.get(f"/remediations/{fp}", headers=headers[stranger]),
                await http.post(
                    f"/remediations/{fp}/approval",
                    json={"approve": True},
                    headers=headers[stranger],
                ),
                await http.post(f"/remediations/{fp}/abort", json={}, headers=headers[stranger]),
                await http.post(f"/remediations/{fp}/report", headers=headers[stranger]),
            ]
        await dev_env.client.get_workflow_handle(f"remediation/{fingerprint}").terminate()

    theirs = [
        (r.status_code, r.json()["detail"].replace(fingerprint, "FP")) for r in answers["theirs"]
    ]
    none = [(r.status_code, r.json()["detail"].replace(absent, "FP")) for r in answers["none"]]
    assert theirs == none
    assert theirs[0] == (
        404,
        "no remediation 'remediation/FP' among yours; call list_remediations to see yours",
    )


async def test_a_stranger_is_refused_another_users_run_before_its_worker_is_asked_anything(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # A query goes to the run's worker: asked before the refusal, a stranger's look at a run
    # that exists took the worker's time (or its timeout, with the worker busy or down) where
    # one at no run was refused at once, which told the stranger the run existed.
    remediation_settings(deps)
    owner, stranger = unique("api-owner"), unique("api-prober")
    settings = deps.settings.model_copy(
        update={
            "temporal_task_queue": unique("no-worker"),  # nobody polls it: no query is answered
            "temporal_address": dev_env.client.service_client.config.target_host,
        }
    )
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        headers = {}
        for name in (owner, stranger):
            registered = await http.post("/users", json={"name": name}, headers=admin)
            headers[name] = {"Authorization": f"Bearer {registered.json()['token']}"}
        subject = alert("http://127.0.0.1:9/metrics", workload=owner).model_dump(mode="json")
        started = await http.post("/remediations", json={"alert": subject}, headers=headers[owner])
        assert started.status_code == 201, started.text
        rid = started.json()["remediation_id"]
        path = f"/remediations/{rid.removeprefix('remediation/')}"
        try:
            answers = [
                await http.get(path, headers=headers[stranger]),
                await http.post(
                    f"{path}/approval", json={"approve": True}, headers=headers[stranger]
                ),
                await http.post(f"{path}/abort", json={}, headers=headers[stranger]),
            ]
        finally:
            await dev_env.client.get_workflow_handle(rid).terminate()
    refused = f"no remediation {rid!r} among yours; call list_remediations to see yours"
    assert [(a.status_code, a.json()["detail"]) for a in answers] == [(404, refused)] * 3


async def test_the_remediation_list_pages_on_through_the_api_and_mcp(
    settings: Settings, deps: WorkerDeps
) -> None:
    """The list stopped at its ``limit`` newest (at most 500) with no way past them: the page
    paged, the API and MCP did not. ``offset`` goes on, each run once."""
    from ambient.domain.users import UserCreate
    from ambient.storage.users import UserRepository
    from ambient.wiring import AppState
    from tests.remediation.support import run_row
    from tests.tencent.test_cloud_tools import call, client

    name = unique("pager")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        for i in range(5):
            session.add(
                run_row(f"remediation/{unique('fp')}", name, state="resolved", service=f"s{i}")
            )
        await session.commit()
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        http.headers["Authorization"] = f"Bearer {token}"
        pages = [
            (await http.get("/remediations", params={"limit": 2, "offset": at})).json()
            for at in (0, 2, 4)
        ]
        refused = await http.get("/remediations", params={"offset": -1})
        too_far = await http.get("/remediations", params={"offset": 10**20})
    assert [len(page) for page in pages] == [2, 2, 1]
    services = [run["service"] for page in pages for run in page]
    assert sorted(services) == [f"s{i}" for i in range(5)]
    assert refused.status_code == 422 and "offset" in refused.text
    assert too_far.status_code == 422 and too_far.json()["detail"][0]["loc"] == ["query", "offset"]
    state = AppState(settings=settings, db=deps.db, temporal=None, channels=deps.channels)  # type: ignore[arg-type]
    state.stdio_user = name
    async with client(state, name) as c:
        _, second = await call(c, "list_remediations", limit=2, offset=2)
        failed, said = await call(c, "list_remediations", offset=10**20)
    assert failed and "offset: 0 to" in said, said
    assert [run["service"] for run in second["remediations"]] == services[2:4]


async def test_a_named_approver_lists_the_runs_on_their_cluster_at_every_door(
    settings: Settings, deps: WorkerDeps
) -> None:
    """A named approver asked to approve another's run could open it by id, but the list held
    their own runs only: they could not find it there. It holds the runs they may see (their
    own, and those on the clusters the policy names them for), paged in the query; a member
    named nowhere still lists only their own."""
    from ambient.domain.users import UserCreate
    from ambient.storage.users import UserRepository
    from ambient.wiring import AppState
    from tests.remediation.support import run_row
    from tests.support.pages import signed_in
    from tests.tencent.test_cloud_tools import call, client

    owner, lead, bystander = unique("owner"), unique("lead"), unique("bystander")
    cluster = unique("cls-pay")
    settings = settings.model_copy(update={"remediation_approvers": {f"{cluster}*": [lead]}})
    tokens: dict[str, str] = {}
    async with deps.db.session() as session:
        for name in (owner, lead, bystander):
            _, tokens[name] = await UserRepository(session).create(UserCreate(name=name))
        # Oldest first: the lead's own run, the owner's on the lead's cluster, one elsewhere
        # (ended: no run is asked where it is now).
        runs = [(lead, "cls-lead", "lead"), (owner, f"{cluster}-1", "pay"), (owner, "cls-w", "web")]
        for who, where, service in runs:
            rid = f"remediation/{unique('fp')}"
            session.add(run_row(rid, who, cluster_id=where, service=service, state="resolved"))
        await session.commit()
    state = AppState(settings=settings, db=deps.db, temporal=None, channels=deps.channels)  # type: ignore[arg-type]
    listed = {
        name: [r.service for r in (await state.remediations.list_page(name)).runs]
        for name in (owner, lead, bystander)
    }
    second = (await state.remediations.list_page(lead, limit=1, offset=1)).runs
    # The stats are of the same runs.
    counted = {n: (await state.remediations.stats(n)).total for n in (owner, lead, bystander)}
    async with serve(create_app(settings)) as base, http_client(base) as http:
        api = {
            name: [
                r["service"]
                for r in (
                    await http.get(
                        "/remediations", headers={"Authorization": f"Bearer {tokens[name]}"}
                    )
                ).json()
            ]
            for name in (lead, bystander)
        }
    mcp: dict[str, list[str]] = {}
    for name in (lead, bystander):
        async with client(state, name) as c:
            _, answer = await call(c, "list_remediations")
        mcp[name] = [r["service"] for r in answer["remediations"]]
    async with signed_in(settings, tokens[lead]) as http:
        page = (await http.get("/app/remediations")).text
    assert listed == {owner: ["web", "pay"], lead: ["pay", "lead"], bystander: []}
    assert [r.service for r in second] == ["lead"]
    assert counted == {owner: 2, lead: 2, bystander: 0}
    assert api == mcp == {lead: ["pay", "lead"], bystander: []}
    # Whose run it is, on the page of someone who is not its owner.
    cards = page[page.index('id="remediations"') :]
    assert ">pay</a>" in cards and owner in cards and ">web</a>" not in cards


async def test_an_approval_naming_the_rung_it_saw_is_a_409_once_the_run_waits_on_the_next(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    user, admin = unique("api-rung"), unique("api-lead")
    await add_user(deps, admin, role="admin")
    async with (
        error_rate(healthy_from=None) as (_, url),
        api_over_worker(dev_env, deps) as (settings, http),
    ):
        registered = await http.post(
            "/users", json={"name": user}, headers=await admin_headers(settings)
        )
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        subject = alert(url, workload=user, settle_seconds=0).model_dump(mode="json")
        started = await http.post("/remediations", json={"alert": subject})
        path = "/remediations/" + started.json()["remediation_id"].removeprefix("remediation/")

        async def waits_on(rung: int) -> dict[str, Any] | None:
            shown = (await http.get(path)).json()
            return shown if (shown.get("waiting") or {}).get("rung") == rung else None

        seen = await eventually(lambda: waits_on(1), "rung 1 waits for approval")
        # A rung that has not come yet is not called one that no longer waits.
        early = await http.post(
            f"{path}/approval", json={"approve": True, "run_key": seen["run_key"], "rung": 2}
        )
        # While the user reads rung 1's request, an admin approves it and rung 2 comes up.
        remediations = RemediationService(dev_env.client, settings, deps.db)
        await remediations.approve(admin, seen["remediation_id"], True, "go", via="api")
        await eventually(lambda: waits_on(2), "rung 2 waits for approval")
        late = await http.post(
            f"{path}/approval", json={"approve": True, "run_key": seen["run_key"], "rung": 1}
        )
        # The admin's same answer again: its update's id was the first's, whose result
        # Temporal gave back ("approved rung 1", 200) with the run waiting on rung 2.
        with pytest.raises(RemediationStateError, match=r"rung 1 of .* no longer waits"):
            await remediations.approve(admin, seen["remediation_id"], True, "go", rung=1, via="api")
        after = (await http.get(path)).json()

    assert early.status_code == 409, early.text
    assert "rung 2" in early.json()["detail"] and "not come yet" in early.json()["detail"]
    assert "no longer" not in early.json()["detail"]
    assert late.status_code == 409, late.text
    assert "rung 1" in late.json()["detail"] and "rung 2" in late.json()["detail"]
    assert "no longer waits" in late.json()["detail"]
    assert [(a["rung"], a["approver"]) for a in after["approvals"]] == [(1, admin)]
    assert after["state"] == "waiting_approval"
