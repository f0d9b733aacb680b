"""One user's speakers on one endpoint connection (an agent's devices share it; each call names
its device by the broker's ``clientId``): what one device's answer asked or listed is that
device's conversation, not the other's."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from temporalio.client import Client as TemporalClient
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import RemediationStatus
from ambient.wiring import AppState
from tests.bridge.test_bridge import register, runner_for, running
from tests.bridge.test_voice_endpoint import voice_for
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, remediation_settings
from tests.standins.xiaozhi_broker import ToolConnection, running_broker
from tests.support.waits import ask
from tests.voice.support import assert_speakable
from tests.voice.test_voice_named_tasks import _reminders, _said, _shared
from tests.voice.test_voice_remediation import OWNER, waiting

KITCHEN, STUDY = "client-kitchen", "client-study"


def bridged(state: AppState) -> AppState:
    """``state`` as the API's bridge holds it: the broker stand-in listens on loopback."""
    update = {"fetch_allow_cidrs": ["127.0.0.1/32"], "xiaozhi_bridge": False}
    return replace(state, settings=state.settings.model_copy(update=update))


def worker_app(deps: WorkerDeps, client: TemporalClient, task_queue: str) -> AppState:
    settings = deps.settings.model_copy(update={"temporal_task_queue": task_queue})
    return bridged(AppState(settings=settings, db=deps.db, temporal=client, channels=deps.channels))


async def said(connection: ToolConnection, device: str, tool: str, **args: Any) -> str:
    """A device's call through the broker: a speakable answer, never an error result."""
    answer = await connection.call_tool(tool, args, client_id=device)
    assert not answer["result"].get("isError"), answer
    text: str = answer["result"]["content"][0]["text"]
    assert_speakable(text)
    return text


async def test_a_place_said_on_another_device_is_not_one_the_first_devices_answer_named(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The kitchen heard "two match: first, last"; "第二个" said in the study is not "last"
    (the study heard no list: it is asked which, the tasks named)."""
    user, token = unique("vd"), unique("jwt")
    async with running_worker(dev_env.client, deps) as worker:
        app = worker_app(deps, dev_env.client, worker.task_queue)
        async with (
            running_broker({token}) as broker,
            running(runner_for(app, "r1", voice_for(app))),
        ):
            await register(app, user, broker.url(token))
            first, other, last = await _reminders(app, user)
            connection = await broker.held(token)
            asked = await said(connection, KITCHEN, "task_status", name=_shared(first, last))
            assert asked == f"有 2 个任务符合：{_said(first)}、{_said(last)}。请说完整的名字。"
            there = await said(connection, STUDY, "task_status", name="第二个")
            assert there.startswith("你说的是哪一个任务？你的任务有：") and _said(other) in there
            here = await said(connection, KITCHEN, "task_status", name="第二个")
            assert here.startswith(_said(last)), here


async def test_a_question_asked_on_one_device_is_confirmed_there_only(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Two fixes wait; the kitchen was asked "approve payments?". A yes in the study is refused
    in words and decides nothing; the study's own question is its own; the kitchen's yes makes
    the decision the kitchen heard."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    token = unique("jwt")
    async with waiting(ts_env, deps, "checkout", "payments") as (state, handles):
        app = bridged(state)

        async def approvals(workload: str) -> list[tuple[str, bool]]:
            status = await ask(handles[workload], "status", result_type=RemediationStatus)
            return [(a.approver, a.approve) for a in status.approvals]

        async with (
            running_broker({token}) as broker,
            running(runner_for(app, "r1", voice_for(app))),
        ):
            await register(app, OWNER, broker.url(token))
            connection = await broker.held(token)
            asked = await said(connection, KITCHEN, "approve_remediation", which="payments")
            assert "payments" in asked and "吗" in asked
            refused = await said(connection, STUDY, "approve_remediation", which="确认")
            assert "另一台" in refused and "已批准" not in refused, refused
            assert await approvals("payments") == [] and await approvals("checkout") == []
            # The study's own question is answered by the study's yes.
            theirs = await said(connection, STUDY, "approve_remediation", which="checkout")
            assert "checkout" in theirs and "吗" in theirs
            # The kitchen's yes is to the kitchen's question, asked before the study's.
            done = await said(connection, KITCHEN, "approve_remediation", which="确认")
            assert "已批准" in done and "payments" in done, done
            assert await approvals("payments") == [(OWNER, True)]
            assert await approvals("checkout") == []
