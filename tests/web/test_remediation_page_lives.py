"""A remediation page answers the run it showed: the same alert remediated again later is a new
run, and a button on a page of the earlier one does not decide for it; a run that starts while
the list is read does not move its next page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import unquote

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import RemediationRecord
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.remediation.support import (
    RunKeys,
    add_user,
    alert,
    new_token,
    remediation_settings,
    remediations_on_dev,
    two_runs,
    waiting_dry_run,
)
from tests.support.pages import signed_in
from tests.support.servers import free_port
from tests.support.waits import eventually

HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def decide_form(page: str) -> dict[str, str]:
    """The hidden fields of the page's approve/refuse/abort form, as a browser posts them."""
    form = page.partition('id="decide"')[2].partition("</form>")[0]
    assert form, "the page shows no form to decide with"
    return {name: unescape(value) for name, value in HIDDEN.findall(form)}


async def test_an_approve_button_of_an_earlier_run_does_not_approve_the_next_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("kai")
    await add_user(deps, name, permission="dry_run")
    token = await new_token(deps, name)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        same_alert = alert(metric_url, workload=name, settle_seconds=0)
        rid = (await remediations.start(name, same_alert, mode="dry_run")).remediation_id

        runs = RunKeys(remediations, name, rid)
        first = await eventually(runs.waiting, "the first run waits for approval")
        async with signed_in(settings, token, f"/app/remediation?id={rid}") as http:
            # Kai opens the first run's page, and leaves it open.
            page = (await http.get("/app/remediation", params={"id": rid})).text
            form = decide_form(page)
            # Meanwhile the first run is aborted (another tab, the API), the same alert comes
            # again, and its new run waits for approval of a step Kai has not looked at.
            await remediations.abort(name, rid, "not now", via="web")
            await eventually(lambda: runs.ended(first), "the first run ends")
            await remediations.start(name, same_alert, mode="dry_run")
            second = await eventually(runs.waiting, "the second run waits for approval")
            assert second != first

            for action in ("approve", "abort"):
                answer = await http.post("/app/remediation/action", data={**form, "action": action})
                assert answer.status_code == 303, answer.text
                said = unquote(answer.headers["location"].partition("msg=")[2])
                assert said.startswith(f"This is about an earlier run of {rid}"), said
            view = await remediations.get(name, rid)
            assert (view.run_key, view.state, view.attempts) == (second, "waiting_approval", [])


async def test_an_approve_button_of_one_rung_does_not_approve_the_next_rung(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    name, admin = unique("kai"), unique("ops")
    await add_user(deps, name, permission="dry_run")
    await add_user(deps, admin, permission="dry_run", role="admin")
    token = await new_token(deps, name)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        subject = alert(metric_url, workload=name, settle_seconds=0)
        rid = (await remediations.start(name, subject, mode="dry_run")).remediation_id

        async def waits_on() -> int | None:
            view = await remediations.get(name, rid)
            return (
                int(view.waiting.rung)
                if view.waiting and view.state == "waiting_approval"
                else None
            )

        assert await eventually(waits_on, "rung 1 waits for approval") == 1
        async with signed_in(settings, token, f"/app/remediation?id={rid}") as http:
            # Kai opens the page: its button approves rung 1 (restart), and he leaves it open.
            page = (await http.get("/app/remediation", params={"id": rid})).text
            assert "Approve restart" in page
            form = decide_form(page)
            # Meanwhile an admin approves rung 1, it is applied and not enough: rung 2 (scale
            # out) now waits for an approval Kai has not looked at.
            await remediations.approve(admin, rid, True, "go", via="web")
            assert await eventually(lambda: _past(waits_on, 1), "rung 2 waits") == 2

            answer = await http.post("/app/remediation/action", data={**form, "action": "approve"})
            assert answer.status_code == 303, answer.text
            said = unquote(answer.headers["location"].partition("msg=")[2])
            view = await remediations.get(name, rid)

    assert "rung 1" in said and "rung 2" in said, said
    assert view.state == "waiting_approval" and view.waiting and int(view.waiting.rung) == 2
    assert [(int(a.rung), a.approver) for a in view.approvals] == [(1, admin)]


async def _past(waits_on: Any, rung: int) -> int | None:
    now = await waits_on()
    return now if now is not None and now != rung else None


async def test_an_approve_clicked_twice_says_approved_and_abort_asks_first(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A double click: the first submit's approval was taken, the browser showed the
    second's answer, "not waiting for approval (state resolved)", and the person could not
    tell whether theirs counted. Abort stopped a run at one tap, with no question."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("dbl")
    await add_user(deps, name, permission="dry_run")
    token = await new_token(deps, name)
    async with remediations_on_dev(dev_env, deps, healthy_from=1) as (url, settings, runs):
        rid = await waiting_dry_run(runs, name, url)
        async with signed_in(settings, token, f"/app/remediation?id={rid}") as http:
            page = (await http.get("/app/remediation", params={"id": rid})).text
            assert 'value="abort" class="danger" data-confirm="Abort ' in page
            # Approve asks too; Enter in the reason field submits the disabled button before it.
            assert f'data-confirm="Approve restart for {rid}? The run takes this step."' in page
            assert page.index('<button type="submit" disabled hidden') < page.index('name="reason"')
            assert 'name="reason" maxlength="1000"' in page
            form = {**decide_form(page), "action": "approve"}
            said = []
            for _ in range(2):
                answer = await http.post("/app/remediation/action", data=form)
                assert answer.status_code == 303, answer.text
                said.append(unquote(answer.headers["location"].partition("msg=")[2]))
            refused = await http.post("/app/remediation/action", data={**form, "action": "refuse"})
            other = unquote(refused.headers["location"].partition("msg=")[2])
    assert said == ["Approved step 1 (restart, a dry run)"] * 2, said
    assert not other.startswith("Refused"), (
        other
    )  # an answer not given is still said refused as it was


def _stored_run(user: str, n: int) -> RemediationRecord:
    """A finished run's row, started ``n`` minutes into the day."""
    started = datetime(2026, 3, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=n)
    return RemediationRecord(
        run_key=f"remediation/{user}/r{n}@run{n}",
        remediation_id=f"remediation/{user}/r{n}",
        user=user,
        cluster_id="cls-1",
        service=f"svc-{n:03d}",
        alert_type="cpu",
        source="test",
        mode="dry_run",
        score=50,
        budget=3,
        state="resolved",
        attempts=1,
        started_at=started,
        finished_at=started + timedelta(seconds=30),
    )


async def test_the_remediation_lists_more_link_shows_no_run_twice_when_one_starts_between_pages(
    settings: Settings, db: Database
) -> None:
    """51 runs: the first page shows 50, More the last. A run started while the first page was
    read pushed its last run onto the next page (More counted an offset), listed twice."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name = unique("pager")
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.EN))
        session.add_all(_stored_run(name, n) for n in range(51))
        await session.commit()
    async with signed_in(settings, token) as http:
        first = await http.get("/app/remediations")
        assert first.status_code == 200
        more = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert more, "no More link on a list of 51"
        # A new alert's run starts while the first page is read.
        async with db.session() as session:
            session.add(_stored_run(name, 99))
            await session.commit()
        second = await http.get(unescape(more[1]))
        # A link of the old shape (?offset=) still opens its page.
        old = await http.get("/app/remediations", params={"offset": 50})
    assert second.status_code == 200 and old.status_code == 200

    def ids(page: str) -> list[str]:
        return [unquote(i) for i in re.findall(r'href="/app/remediation\?id=([^"&]+)[&"]', page)]

    shown_first, shown_second = ids(first.text), ids(second.text)
    assert len(shown_first) == 50
    assert not set(shown_first) & set(shown_second), "a run listed twice"
    assert set(shown_first) | set(shown_second) == {f"remediation/{name}/r{n}" for n in range(51)}
    assert ids(old.text) == [f"remediation/{name}/r1", f"remediation/{name}/r0"]
    assert 'rel="next"' not in second.text


async def test_each_run_in_the_list_opens_its_own_page(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The list has a row a run; every row linked the remediation's id, whose page is its
    latest run: Monday's resolved row opened Wednesday's run waiting for approval (its state,
    its audit, its buttons), and Monday's run could not be opened at all."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("lin")
    await add_user(deps, name, permission="dry_run")
    token = await new_token(deps, name)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        sent = alert(metric_url, workload=name, settle_seconds=0)
        _, first, second = await two_runs(remediations, name, sent)
        async with signed_in(settings, token) as http:
            listed = (await http.get("/app/remediations")).text
            links = re.findall(r'<a class="id" href="([^"]+)">', listed)
            assert len(links) == 2, listed
            pages = [(await http.get(unescape(link))).text for link in links]
    states = [re.search(r'<span class="state">([^<]*)</span>', p) for p in pages]
    assert [s[1] if s else None for s in states] == ["waiting for approval", "aborted"], states
    # The older run's page is that run's: no button to decide for the newer one, but a
    # pointer to it (an old push's link led to "aborted" alone, the run waiting unsaid).
    assert 'id="decide"' in pages[0] and 'id="decide"' not in pages[1]
    assert first.partition("@")[2] in links[1] and second.partition("@")[2] in links[0], links
    newer = re.search(r'<p class="notice" id="newer">(.*?)</p>', pages[1], re.S)
    assert newer is not None and "its newer run goes on (waiting for approval)" in newer[1]
    assert 'href="/app/remediation?id=remediation' in newer[1], newer[1]
    assert 'id="newer"' not in pages[0]


async def test_an_approval_replied_in_the_runs_discussion_says_its_step_on_the_page(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A reply tagged approve on the discussion page flashed "Posted: done", the step it
    approved (and that it was a dry run) not said, where the run's own page says it."""
    from tests.discussions.test_run_lives import rung_one_asked_minutes_ago

    remediation_settings(deps, remediation_approval_from_rung=1)
    owner = unique("dsc")
    await add_user(deps, owner, permission="dry_run")
    token = await new_token(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        rid, _, discussion = await rung_one_asked_minutes_ago(deps, remediations, owner, url)
        async with signed_in(settings, token, f"/app/discussion?id={discussion}") as http:
            page = (await http.get("/app/discussion", params={"id": discussion})).text
            [message_id] = re.findall(r'name="message_id" value="([^"]+)"', page)
            form = {"discussion_id": discussion, "content": "go ahead", "tags": "approve"}
            said = []
            # A double click sends the form's message id twice: the second said as the first
            # (it was "approval not accepted: rung 1 … no longer waits for approval").
            for _ in range(2):
                answer = await http.post(
                    "/app/discussions/post", data={**form, "message_id": message_id}
                )
                said.append(unquote(answer.headers["location"].partition("msg=")[2]))
        view = await remediations.get(owner, rid)
    assert said == ["Posted: Approved step 1 (restart, a dry run)"] * 2, said
    assert [(int(d.rung), d.approve) for d in view.approvals] == [(1, True)]


async def test_an_ended_runs_page_opens_when_the_alerts_newer_run_is_someone_elses(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The page of an ended run pointed at the alert's newer run by reading it as the reader:
    another owner's run of the same workload was "not one of yours", and the reader's own
    page was refused with it."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    ann, bob = unique("ann"), unique("bob")
    await add_user(deps, ann, permission="dry_run")
    await add_user(deps, bob, permission="dry_run")
    token = await new_token(deps, ann)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        sent = alert(metric_url, workload=ann, settle_seconds=0)
        rid = (await remediations.start(ann, sent, mode="dry_run")).remediation_id
        anns = RunKeys(remediations, ann, rid)
        first = await eventually(anns.waiting, "ann's run waits")
        await remediations.abort(ann, rid, "not now", via="api")
        await eventually(lambda: anns.ended(first), "ann's run ends")
        await remediations.start(bob, sent, mode="dry_run")
        second = await eventually(RunKeys(remediations, bob, rid).waiting, "bob's run waits")
        assert second != first
        async with signed_in(settings, token) as http:
            page = await http.get(
                "/app/remediation", params={"id": rid, "run": first.partition("@")[2]}
            )
    assert page.status_code == 200, unquote(page.headers.get("location") or "")
    assert 'id="newer"' not in page.text  # bob's run is not ann's to see
