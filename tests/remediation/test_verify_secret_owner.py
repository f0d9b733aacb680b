"""A remediation's verify read carries the run's user (a joined alert's: its sender): the worker
checks at the read that they may still use the secret the verify source names
(activities/watches.py ``_credentials``)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import JOINED, JoinInput
from ambient.setting_types import ServerSecret
from tests.conftest import running_worker
from tests.remediation.support import add_user, alert, error_rate, remediation_settings
from tests.remediation.test_workflow import USER, RecordingExecutor, start
from tests.support.record import save_history
from tests.support.servers import serve
from tests.watches.test_metric_auth import PASSWORD, StrictPrometheus


async def test_a_verify_source_whose_secret_no_longer_lists_the_runs_user_is_read_as_refused(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Started around the service (a run begun before the operator took its user off the
    secret): no verdict bought with credentials the user may no longer use, a person takes
    over."""
    executor = RecordingExecutor()
    deps.executors = {"dry_run": executor}
    await add_user(deps, USER)
    source = StrictPrometheus()
    async with serve(source.app()) as base:
        secret = ServerSecret(value=SecretStr(f"reader:{PASSWORD}"), users=["bob"], origins=[base])
        remediation_settings(deps, remediation_approval_from_rung=0, secrets={"prom": secret})
        auth = {"type": "basic", "secret": "secret:prom"}
        at = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
        verify = {
            "source": at | {"auth": auth},
            "healthy": [{"op": "below", "value": 0.05}],
        }
        subject = alert(base, labels={"tier": "critical", "user_facing": "true"}, verify=verify)
        async with running_worker(ts_env.client, deps) as worker:
            handle = await start(ts_env, worker.task_queue, subject)
            status = await handle.result()

    assert source.seen == []  # no request, with the credentials or without
    assert [s.rung for s in executor.steps] == [Rung.RESTART]  # no stronger rung bought on it
    assert status.state == "handed_over"
    [restart] = status.attempts
    assert restart.verified is False
    assert f"secret 'prom' is not available to {USER}" in (restart.verification or "")


SENDER = "steerer"


@pytest.mark.parametrize(
    ("listed", "refused"), [([USER], SENDER), ([SENDER], USER), ([USER, SENDER], None)]
)
async def test_a_joined_alerts_verify_source_is_read_only_if_its_sender_and_the_runs_user_may(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, listed: list[str], refused: str | None
) -> None:
    """A joined alert's verify block was read as nobody's (owner None): the secret it names was
    sent whoever may use it, and its healthy reading let the run call itself resolved. Its
    sender (a signal's, any name) may not bring a secret the run's user may not use into the
    run, nor read one of the user's they may not use: the secret must list both."""
    executor = RecordingExecutor()
    deps.executors = {"dry_run": executor}
    for name in (USER, SENDER):
        await add_user(deps, name)
    source = StrictPrometheus()
    async with serve(source.app()) as base, error_rate(healthy_from=1) as (_, errors):
        secret = ServerSecret(value=SecretStr(f"reader:{PASSWORD}"), users=listed, origins=[base])
        remediation_settings(deps, remediation_approval_from_rung=0, secrets={"prom": secret})
        at = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
        auth = {"type": "basic", "secret": "secret:prom"}
        # Healthy as read with the credentials (42.5 above 1).
        verify = {"source": at | {"auth": auth}, "healthy": [{"op": "above", "value": 1}]}
        cpu = alert(base, source="monitor", metric="cpu_usage", verify=verify)
        async with running_worker(ts_env.client, deps) as worker:
            handle = await start(ts_env, worker.task_queue, alert(errors))
            # Joined around the service (a Web UI signal), while the run's change settles.
            await handle.signal(JOINED, JoinInput(user=SENDER, alert=cpu))
            status = await handle.result()
            if refused == USER:
                await save_history(handle, "remediation_joined_alert_read_as_its_sender")

    assert [s.rung for s in executor.steps] == [Rung.RESTART]
    assert status.attempts[0].resolved is True  # its own alert cleared
    if refused is None:  # both may: read with the credentials, healthy, resolved
        assert source.seen != []
        assert status.state == "resolved", status.outcome
        return
    assert source.seen == []  # no request, with the credentials or without
    assert status.state == "handed_over", status.outcome
    assert f"secret 'prom' is not available to {refused}" in status.outcome, status.outcome
