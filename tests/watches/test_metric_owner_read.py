"""A threshold watch's reads carry its owner: the worker checks at every read that the owner
may still use the secret its source names (activities/watches.py ``_credentials``). A run
started before the operator took the owner off the secret's users reads with it no more."""

from __future__ import annotations

from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.setting_types import ServerSecret
from ambient.watches.models import TaskStatus
from ambient.watches.threshold_config import ThresholdWatchConfig
from tests.conftest import running_worker
from tests.watches.test_metric_auth import (  # noqa: F401  (fixture)
    PASSWORD,
    StrictPrometheus,
    prometheus,
    secrets_for,
)
from tests.watches.test_workflows import USER, loopback_deps, start_threshold  # noqa: F401


async def test_a_watch_run_whose_owner_the_secret_no_longer_lists_reads_the_refusal(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    prometheus: tuple[StrictPrometheus, str, StrictPrometheus],  # noqa: F811
) -> None:
    """Started around the service (a run created before the operator changed the list): the
    service's check at create is not there; the worker's, at the read, is."""
    source, base, _ = prometheus
    secrets = secrets_for(base)
    secrets["prom"] = ServerSecret(
        value=SecretStr(f"reader:{PASSWORD}"), users=["bob"], origins=[base]
    )
    loopback_deps.settings = loopback_deps.settings.model_copy(update={"secrets": secrets})
    config = ThresholdWatchConfig.model_validate(
        {
            "source": {
                "type": "prometheus",
                "url": base,
                "query": "sum(up)",
                "auth": {"type": "basic", "secret": "secret:prom"},
            },
            "threshold": 1000,
            "check_interval_minutes": 5,
        }
    )
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start_threshold(dev_env, worker.task_queue, config)
        first = await handle.execute_update("baseline", result_type=TaskStatus)
        await handle.terminate()

    assert first.detail["last_value"] is None
    assert first.detail["last_error"].startswith(
        f"secret 'prom' is not available to {USER}: server secrets are for admins unless the "
        "operator lists the user in AMBIENT_SECRETS"
    )
    assert source.seen == []  # no request, with the credentials or without
