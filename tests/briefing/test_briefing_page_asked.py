"""The briefings page's "Prepare again" its worker took and did not finish in time: said asked
(a second ask is a second preparation), and the form sent again is done once."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import no_answer
from ambient.briefing import service as briefing_service
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from tests.briefing.harness import held_preparations
from tests.conftest import running_worker, unique
from tests.foundation.test_silent_worker import at_rest
from tests.support.pages import signed_in

BUDGET = timedelta(seconds=2)


async def test_a_prepare_again_taken_and_unfinished_is_said_asked_and_sent_again_done_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Said "try again in a moment": a try again prepared again (another LLM run)."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    monkeypatch.setattr(briefing_service, "UPDATE_WAIT", 2 * BUDGET)
    name = unique("page-asked")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    shown: list[str] = []
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
            }
        )
        briefings = BriefingService(dev_env.client, settings, deps.db)
        task_id = (await briefings.create(name, {"timezone": "Asia/Shanghai"})).task_id
        await at_rest(dev_env.client.get_workflow_handle(task_id))
        reasons, held = held_preparations(monkeypatch)
        try:
            async with signed_in(settings, token, "/app/briefings") as http:
                page = (await http.get("/app/briefings")).text
                ids = re.findall(r'name="request_id" value="([0-9a-f]{32})"', page)
                assert len(ids) == 2 and ids[0] == ids[1], ids  # one per render, both forms
                for language in ("en", "zh"):  # the same form sent again
                    posted = await asyncio.wait_for(
                        http.post(
                            "/app/briefings/action",
                            data={"action": "regenerate", "request_id": ids[0]},
                            headers={"accept-language": language},
                        ),
                        30,
                    )
                    shown.append(unquote(posted.headers["location"]).partition("msg=")[2])
        finally:
            held.set()
    assert reasons == ["regenerate"]  # prepared once
    assert shown == [
        "Your briefing was asked and may still finish (its worker is busy or stopped); "
        "check the briefing before asking again.",
        "你的简报已收到请求，可能仍会完成（它的 worker 正忙或已停止）；再次请求前请先查看简报。",
    ]
