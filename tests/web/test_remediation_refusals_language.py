"""A remediation answered from a page that no longer matches the run is refused in the page's
language."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserSettings
from ambient.remediation.runs import FINAL_STATES
from ambient.remediation.service import RemediationService
from ambient.storage.repositories import UserRepository
from api.app import create_app
from tests.briefing.harness import eventually
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, alert, error_rate, remediation_settings
from tests.support.servers import HANG, serve


def said(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    return unquote(answer.headers["location"].partition("msg=")[2])


async def test_a_second_approve_and_an_abort_of_a_finished_run_are_said_in_chinese(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("fang")
    await add_user(deps, name, permission="dry_run")
    async with deps.db.session() as session:
        users = UserRepository(session)
        user = await users.get(name)
        assert user is not None
        await users.update(user, UserSettings(language=Language.ZH))
        token = await users.rotate_token(user)
        await session.commit()
    async with (
        error_rate(healthy_from=1) as (_, metric_url),
        running_worker(dev_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
            }
        )
        remediations = RemediationService(dev_env.client, settings, deps.db)
        started = await remediations.start(
            name, alert(metric_url, workload=name, settle_seconds=0), mode="dry_run"
        )
        rid = started.remediation_id

        async def in_state(*states: str) -> bool:
            return (await remediations.get(name, rid)).state in states

        await eventually(lambda: in_state("waiting_approval"), "the run waits for approval")
        async with (
            serve(create_app(settings)) as base,
            httpx.AsyncClient(
                timeout=HANG,
                base_url=base,
                trust_env=False,
                cookies={"ambient_token": token},
                headers={"referer": f"{base}/app/remediation?id={rid}"},
            ) as http,
        ):
            form = {"remediation_id": rid, "action": "approve"}
            assert said(await http.post("/app/remediation/action", data=form)) == "已批准"
            await eventually(lambda: in_state(*FINAL_STATES), "the approved run ends")
            # The same button again (a double click, a second tab): the step is answered.
            again = said(await http.post("/app/remediation/action", data=form))
            assert again == f"{rid} 现在没有在等待批准：这一步已经答复过，或这次处置已经结束"
            form["action"] = "abort"
            aborted = said(await http.post("/app/remediation/action", data=form))
            assert aborted == f"{rid} 已经结束：不能再中止"
