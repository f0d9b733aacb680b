from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from tests.conftest import running_worker
from tests.support.servers import free_port, http_client
from worker import metrics_runtime


async def test_worker_exposes_prometheus_metrics(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    port = free_port()
    settings = deps.settings.model_copy(update={"metrics_port": port})
    runtime = metrics_runtime(settings)
    assert runtime is not None
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        runtime=runtime,
        data_converter=dev_env.client.data_converter,
    )
    async with running_worker(client, deps):
        async with http_client() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    assert "temporal_" in response.text


def test_metrics_port_zero_turns_metrics_off(deps: WorkerDeps) -> None:
    assert metrics_runtime(deps.settings.model_copy(update={"metrics_port": 0})) is None
