"""A run that does not answer (its worker busy or stopped) is shown as recorded, said to be so:
not "unavailable", and not a "waiting for approval" with buttons that cannot be answered."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import unquote

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import no_answer
from ambient.deps import WorkerDeps
from ambient.storage.audit import AuditRepository
from tests.conftest import unique
from tests.remediation.support import (
    add_user,
    alert,
    new_token,
    remediation_settings,
    remediations_on_dev,
)
from tests.support.pages import signed_in
from tests.support.waits import eventually
from tests.web.test_remediation_page_lives import decide_form


async def test_a_run_whose_worker_is_stopped_is_shown_as_recorded_and_answers_nothing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each read below waits out the query's budget: 1 s, not the product's 5.
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("kai")
    await add_user(deps, name, permission="dry_run")
    token = await new_token(deps, name)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        rid = (
            await remediations.start(name, alert(metric_url, workload=name), mode="dry_run")
        ).remediation_id

        async def waiting() -> str | None:
            view = await remediations.get(name, rid)
            return view.run_key if view.waiting and view.waiting.what == "approval" else None

        run_key = await eventually(waiting, "rung 1 waits for approval")
        async with signed_in(settings, token, f"/app/remediation?id={rid}") as http:
            form = decide_form((await http.get("/app/remediation", params={"id": rid})).text)
    # The worker has stopped: nothing polls the run's task queue, so no query is answered.
    async with signed_in(settings, token, f"/app/remediation?id={rid}") as http:
        page = await http.get("/app/remediation", params={"id": rid})
        api = await http.get(
            f"/remediations/{rid.removeprefix('remediation/')}",
            headers={"Authorization": f"Bearer {token}"},
        )
        approved = await http.post("/app/remediation/action", data={**form, "action": "approve"})
        # An approval that names no rung (the API's, the MCP tool's, a voice's may omit it).
        unnamed = await http.post(
            f"/remediations/{rid.removeprefix('remediation/')}/approval",
            json={"approve": True},
            headers={"Authorization": f"Bearer {token}"},
        )
        aborted = await http.post("/app/remediation/action", data={**form, "action": "abort"})
    async with deps.db.session() as session:
        answers = await AuditRepository(session).list(subject=run_key, action="approve")

    # The page: its state as the run last set it, what was recorded, and why the rest is not
    # shown; no approve button (which rung waits is the run's to say), the abort is there.
    assert page.status_code == 200, page.headers.get("location")
    text = page.text
    assert 'id="unanswered"' in text and "did not answer in time" in text
    assert "waiting for approval" in text
    assert "Approve restart" not in text and 'value="abort"' in text
    assert "rollout restart (new pods, same release)" in text  # the plan, from its audit
    assert "Not known until the run answers." in text
    assert "<b>planned</b>" in text and "<b>permission</b>" in text  # the audit
    # The API says the same.
    assert api.status_code == 200, api.text
    shown = api.json()
    assert shown["unanswered"] == no_answer.silent_worker()
    assert (shown["run_key"], shown["state"], shown["waiting"], shown["mode"]) == (
        run_key,
        "waiting_approval",
        None,
        "dry_run",
    )
    assert [s["rung"] for s in shown["plan"]][:1] == [1] and shown["attempts"] == []
    assert [a["action"] for a in shown["audit"]][:2] == ["scored", "planned"]
    # An approval is not taken on a state the run did not confirm: nothing was answered.
    said = unquote(approved.headers["location"].partition("msg=")[2])
    # Said as what it is (the feature is not down): the run's worker did not answer.
    assert said == (
        "The run did not answer in time (its worker is busy or stopped); try again in a moment."
    ), said
    assert unnamed.status_code == 502, unnamed.text
    assert "did not answer" in unnamed.text and "try again" in unnamed.text, unnamed.text
    assert answers == []
    # An abort is a signal the server keeps for the run: it is taken.
    assert unquote(aborted.headers["location"].partition("msg=")[2]) == "Abort requested"
