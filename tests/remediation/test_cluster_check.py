"""A remediation whose cluster the Kubernetes executor cannot reach is refused at the start."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from ambient.clients.kube import kubeconfig_contexts
from ambient.clients.kube_errors import KubeError
from ambient.deps import WorkerDeps
from ambient.domain.users import RollbackPermission, UserCreate
from ambient.remediation.alerts import remediation_id
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.remediation.support import alert, app_state, call, error_of, mcp, remediation_settings
from tests.standins.kube_api import kubeconfig
from tests.support.servers import free_port, http_client, serve

URL = "http://127.0.0.1:9/metrics"


def _kubernetes_executor(deps: WorkerDeps, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            kubeconfig({"kind-dev": "http://127.0.0.1:9", "kind-ci": "http://127.0.0.1:9"})
        )
    )
    remediation_settings(deps, remediation_executor="kubernetes", kubeconfig=path)


async def _token(deps: WorkerDeps, name: str) -> str:
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name=name, rollback_permission=RollbackPermission.EXECUTE)
        )
        await session.commit()
    return token


async def _not_started(env: WorkflowEnvironment, workflow_id: str) -> bool:
    try:
        await env.client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        return exc.status == RPCStatusCode.NOT_FOUND
    return False


async def test_an_unknown_kubeconfig_context_is_a_tool_error_naming_the_field_and_the_contexts(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    _kubernetes_executor(deps, tmp_path)
    await _token(deps, "ops")
    unknown = alert(URL, cluster_id="kind-prod")
    async with mcp(app_state(ts_env, deps, "no-worker")) as client:
        message = await error_of(
            client, "start_remediation", alert=unknown.model_dump(mode="json"), mode="execute"
        )
    assert "alert.cluster_id" in message and "'kind-prod'" in message
    assert "kind-ci, kind-dev" in message and "Nothing was started" in message
    assert await _not_started(ts_env, remediation_id(unknown))


@pytest.mark.parametrize("cluster_id", ["kind-prod", "admin@staging"])
async def test_an_unknown_kubeconfig_context_is_a_422_naming_alert_cluster_id(
    deps: WorkerDeps, tmp_path: Path, cluster_id: str
) -> None:
    _kubernetes_executor(deps, tmp_path)
    token = await _token(deps, "ops")
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    body = {"alert": alert(URL, cluster_id=cluster_id).model_dump(mode="json"), "mode": "execute"}
    async with (
        serve(create_app(settings)) as base,
        http_client(base, timeout=30) as http,
    ):
        answer = await http.post(
            "/remediations", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    # Refused before Temporal is asked (none listens at that address): nothing was started.
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail[0]["loc"] == ["body", "alert", "cluster_id"]
    assert "kind-ci, kind-dev" in detail[0]["msg"]


async def test_a_known_context_or_a_tke_id_passes_the_check_and_the_dry_run_executor_needs_none(
    deps: WorkerDeps, tmp_path: Path
) -> None:
    from ambient.remediation.intake import check_cluster
    from ambient.remediation.views import InvalidRemediationError

    _kubernetes_executor(deps, tmp_path)
    check_cluster(deps.settings, "kind-dev")
    check_cluster(deps.settings, "cls-abcd1234")  # the executor asks TKE for its kubeconfig
    with pytest.raises(InvalidRemediationError):
        check_cluster(deps.settings, "kind-prod")
    remediation_settings(deps, remediation_executor="dry_run")
    check_cluster(deps.settings, "kind-prod")


def test_a_kubeconfig_edited_while_the_api_runs_is_read_again(tmp_path: Path) -> None:
    # The contexts are parsed once per version of the file (every alert is checked against
    # them): an added context must still be seen, an unreadable file still refused.
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"kind-dev": "http://127.0.0.1:9"})))
    assert kubeconfig_contexts(path) == {"kind-dev"}
    path.write_text(
        yaml.safe_dump(
            kubeconfig({"kind-dev": "http://127.0.0.1:9", "kind-prod": "http://127.0.0.1:9"})
        )
    )
    assert kubeconfig_contexts(path) == {"kind-dev", "kind-prod"}
    path.write_text("contexts: [")
    with pytest.raises(KubeError, match="not a readable kubeconfig"):
        kubeconfig_contexts(path)


@pytest.mark.parametrize("text", ["just a string\n", "- a list\n", "contexts: 3\n"])
def test_a_kubeconfig_that_is_no_mapping_is_refused_by_name(tmp_path: Path, text: str) -> None:
    # The alert's cluster check reads the contexts: a file that is YAML but no kubeconfig
    # answered an internal error instead of naming the file.
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(KubeError, match="not a readable kubeconfig"):
        kubeconfig_contexts(path)


@pytest.mark.parametrize("executor", ["dry_run", "kubernetes"])
async def test_a_tke_cluster_named_by_its_id_and_by_a_context_is_one_remediation(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, executor: str
) -> None:
    """The kubeconfig TKE gave for cls-abcd1234, its context renamed "prod": a person's alert
    names the context, a watch's (its TKE2 dimensions) the id. Two fingerprints made two
    ladders on one Deployment at once, restarting and rolling it back against each other."""
    config = kubeconfig({"prod": "https://cls-abcd1234.ccs.tencent-cloud.com"})
    config["clusters"][0]["name"] = "cls-abcd1234"  # as DescribeClusterKubeconfig names it
    config["contexts"][0]["context"]["cluster"] = "cls-abcd1234"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    remediation_settings(deps, remediation_executor=executor, kubeconfig=path)
    await _token(deps, "ops")
    by_context = alert(URL, cluster_id="prod").model_dump(mode="json")
    by_id = alert(URL, cluster_id="cls-abcd1234", source="threshold_watch").model_dump(mode="json")
    async with mcp(app_state(ts_env, deps, "no-worker")) as client:
        first = await call(client, "start_remediation", alert=by_context)
        again = await call(client, "start_remediation", alert=by_id)
        scored = await call(client, "score_alert", alert=by_id)

    assert first["created"], first
    assert again["deduplicated"] and not again["created"], again
    assert again["remediation_id"] == first["remediation_id"] == scored["remediation_id"]
