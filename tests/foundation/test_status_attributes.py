"""A Temporal namespace without our search attributes is no healthy deployment: `ambient status`,
/health and get_status said all was well while every task's start and list failed."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from ambient.settings import Settings
from ambient.status import system_status
from ambient.storage import Database
from tests.conftest import unique
from tests.support.waits import eventually


async def test_a_namespace_without_our_search_attributes_is_said_unhealthy_and_how_to_mend(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    client = dev_env.client
    namespace = unique("bare")
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    bare = settings.model_copy(update={"temporal_namespace": namespace})

    async def said() -> object:
        report = await system_status(bare, client, db)
        return report if report.search_attributes_missing else None

    report = await eventually(said, "the new namespace read")
    assert report.search_attributes_missing == [
        "AmbientKind",
        "AmbientUser",
        "AmbientCluster",
        "AmbientState",
    ]
    assert not report.healthy
    assert any("--type Keyword" in error for error in report.errors), report.errors
    assert any("not set up" in p for p in report.told(operator=False).problems)
    ours = await system_status(settings, client, db)  # the test server's: all registered
    assert ours.search_attributes_missing == [] and ours.healthy
