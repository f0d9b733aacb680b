"""xiaozhi.me passes no voiceprint: an owner who set a voiceprint id (for a self-hosted speaker
of theirs) still approves by voice through their 接入点, whose calls name a device, not a voice."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import RemediationStatus
from ambient.storage.users import UserRepository
from tests.bridge.test_bridge import register, runner_for, running
from tests.bridge.test_voice_devices import KITCHEN, bridged, said
from tests.bridge.test_voice_endpoint import voice_for
from tests.conftest import unique
from tests.remediation.support import add_user, remediation_settings
from tests.standins.xiaozhi_broker import running_broker
from tests.support.waits import ask
from tests.voice.test_voice_remediation import OWNER, waiting


async def test_an_owner_with_a_voiceprint_id_still_acts_through_a_xiaozhi_me_endpoint(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with deps.db.session() as session:
        row = await UserRepository(session).get(OWNER)
        assert row is not None
        row.voiceprint_id = f"vp-{OWNER}"
        await session.commit()
    token = unique("jwt")
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        app = bridged(state)
        async with (
            running_broker({token}) as broker,
            running(runner_for(app, "r1", voice_for(app))),
        ):
            await register(app, OWNER, broker.url(token))
            connection = await broker.held(token)
            done = await said(connection, KITCHEN, "approve_remediation", which="第一个")
            assert "已批准" in done and "checkout" in done, done
        status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
        assert [(a.approver, a.approve) for a in status.approvals] == [(OWNER, True)]
