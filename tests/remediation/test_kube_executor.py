"""KubernetesExecutor through real lightkube against the stateful Kubernetes API stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.remediation import RemediationActivities
from ambient.clients.kube import KubeClients, client_from_kubeconfig, list_workloads
from ambient.clients.kube_errors import (
    KubeError,
    KubeNotFoundError,
    KubeUnauthorizedError,
    KubeUnavailableError,
    TkeClusterNotFoundError,
)
from ambient.cloud.errors import CloudOpsFailedError, readable
from ambient.deps import WorkerDeps
from ambient.remediation.changes import (
    NOT_A_REVISION,
    RESTARTED_AT,
    images_of,
    isolation_policy_name,
    isolation_value,
)
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.kube_plans import StepInputError
from ambient.remediation.kube_reads import ClusterReads, rollout_health
from ambient.remediation.ladder import (
    ISOLATION_LABEL,
    STEP_ANNOTATION,
    STEP_HISTORY_ANNOTATION,
    Checkpoint,
    Rung,
    StepRequest,
    WorkloadRef,
    step_key,
)
from ambient.remediation.storage import ActionLedger
from tests.standins.kube_api import AnswerLost, ApiCall, KubeApi, kubeconfig
from tests.support.servers import http_client, serve

V1, V2, V3 = "registry/checkout:v1", "registry/checkout:v2", "registry/checkout:v3"


@dataclass
class Cluster:
    api: KubeApi
    executor: KubernetesExecutor
    target: WorkloadRef
    kubeconfig: Path

    def step(self, remediation: str, rung: Rung, **fields: Any) -> StepRequest:
        return StepRequest(
            remediation_id=remediation,
            rung=rung,
            target=self.target,
            mode=fields.pop("mode", "execute"),
            key=step_key(remediation, rung),
            **fields,
        )

    def deployment(self) -> dict[str, Any]:
        return self.api.deployments[("shop", "checkout")]

    def images(self) -> list[str]:
        return [c["image"] for c in self.deployment()["spec"]["template"]["spec"]["containers"]]

    async def release(self, image: str) -> None:
        """A person deploys a new image (as `kubectl set image` would)."""
        client = client_from_kubeconfig(path=self.kubeconfig, context=self.target.cluster_id)
        patch = {
            "spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": image}]}}}
        }
        await client.patch(Deployment, "checkout", patch, namespace="shop")
        await client.close()


@pytest_asyncio.fixture
async def kube(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    api = KubeApi()
    api.add_configmap("shop", "checkout-env", {"MODE": "fast", "LIMIT": "10"})
    api.add_configmap("shop", "checkout-files", {"app.yaml": "retries: 3\n"})
    api.add_deployment(
        "shop", "checkout", V1, replicas=2, configmaps=["checkout-env", "checkout-files"]
    )
    api.add_service("shop", "checkout", {"app": "checkout"})
    api.add_service("shop", "cart", {"app": "cart"})
    cluster_id = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:60]
    async with serve(api.app()) as base:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig({cluster_id: base})))
        clients = KubeClients(path, None)
        executor = KubernetesExecutor(clients)
        try:
            yield Cluster(
                api,
                executor,
                WorkloadRef(cluster_id=cluster_id, namespace="shop", name="checkout"),
                path,
            )
        finally:
            await clients.aclose()


async def _client(clients: KubeClients, cluster_id: str, region: str | None = None) -> Any:
    """The cluster's kept client, as a call on it takes it."""
    return (await clients._kept(cluster_id, region)).client


def _replaced(operations: list[dict[str, Any]], path: str) -> Any:
    """The value a JSON patch (what rollbacks send) puts at ``path``."""
    [value] = [op["value"] for op in operations if op["path"] == path]
    return value


async def test_bad_release_then_restart_then_rollback_to_the_first_checkpoint_revision_restores_v1(
    kube: Cluster,
) -> None:
    kube.api.failing_images = {V2}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    assert (baseline.revision, baseline.previous_revision, baseline.images) == (2, 1, [V2])
    assert not (await kube.executor.rollout_health(kube.target)).available

    restart = await kube.executor.apply(
        kube.step("remediation/r1", Rung.RESTART, restarted_at="2026-11-22T14:00:00Z")
    )
    assert restart.applied and not restart.already_applied
    # The restart made a third revision of the same bad image: "undo to previous" would now
    # land on revision 2 (v2). The checkpoint's revision 1 is the release before the incident.
    assert kube.api.revisions("shop", "checkout") == {1: [V1], 2: [V2], 3: [V2]}

    rollback = await kube.executor.apply(
        kube.step("remediation/r1", Rung.ROLLBACK, to_revision=baseline.previous_revision)
    )
    assert rollback.applied and rollback.skipped_reason is None
    assert kube.images() == [V1]
    # The controller re-uses revision 1's ReplicaSet and gives it the next number.
    assert kube.api.revisions("shop", "checkout") == {2: [V2], 3: [V2], 4: [V1]}
    template = kube.deployment()["spec"]["template"]
    assert "pod-template-hash" not in template["metadata"]["labels"]
    assert RESTARTED_AT not in (template["metadata"].get("annotations") or {})
    assert kube.deployment()["metadata"]["annotations"][STEP_ANNOTATION] == "remediation/r1#3"
    health = await kube.executor.rollout_health(kube.target)
    assert health.available and health.ready_replicas == 2 and health.desired == 2
    # The person's release, our restart and our rollback: nothing else reached the server.
    assert [c.method for c in kube.api.writes()] == ["PATCH", "PATCH", "PATCH"]
    assert rollback.patch is not None
    assert kube.api.writes()[-1].body == rollback.patch["deployment/shop/checkout"]


async def test_a_release_a_rollback_brought_back_has_no_revision_before_it_to_roll_back_to(
    kube: Cluster,
) -> None:
    """After a run rolled v2 back to v1, v1 runs as revision 4 (its first number, 1, in its
    revision-history): a later run's checkpoint took revision 3, the bad v2 restarted, as the
    one before, and its rollback deployed the release the first run had removed."""
    await kube.release(V2)
    await kube.executor.apply(
        kube.step("remediation/r1", Rung.RESTART, restarted_at="2026-11-22T14:00:00Z")
    )
    rollback = await kube.executor.apply(kube.step("remediation/r1", Rung.ROLLBACK, to_revision=1))
    assert rollback.applied and kube.images() == [V1]
    assert kube.api.revisions("shop", "checkout") == {2: [V2], 3: [V2], 4: [V1]}
    later = await kube.executor.checkpoint(kube.target)
    assert (later.revision, later.previous_revision) == (4, None)
    # Restarted since (another run's rung 1, `kubectl rollout restart`), v1 runs as revision
    # 5, a ReplicaSet with no history: its release was first deployed as revision 1 all the
    # same, and v2 (revision 3) is still none to go back to.
    await kube.executor.apply(
        kube.step("remediation/r2", Rung.RESTART, restarted_at="2026-11-23T09:00:00Z")
    )
    restarted = await kube.executor.checkpoint(kube.target)
    assert (restarted.revision, restarted.previous_revision) == (5, None)
    # A release deployed after it has v1 before it again, not v2.
    await kube.release(V3)
    assert (await kube.executor.checkpoint(kube.target)).previous_revision == 5


async def test_a_rollback_puts_back_the_pod_fields_the_client_library_does_not_know(
    kube: Cluster,
) -> None:
    """lightkube's models (Kubernetes 1.37's) dropped every field they do not know: the
    ReplicaSet's template came back without a newer cluster's pod fields, and the rollback
    replaced the Deployment's template with that, losing them from the very release it put
    back. The checkpoint's spec (a full rollback's last resort) lost them as well."""
    pod = kube.deployment()["spec"]["template"]["spec"]
    pod["schedulingFuture"] = {"mode": "v1-mode"}  # a pod field newer than the models
    pod["containers"][0]["lifecycleFuture"] = {"stopSignal": "SIGUSR1"}
    kube.api._reconcile("shop", "checkout")
    client = client_from_kubeconfig(path=kube.kubeconfig, context=kube.target.cluster_id)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "schedulingFuture": {"mode": "v2-mode"},
                    "containers": [{"name": "checkout", "image": V2, "lifecycleFuture": None}],
                }
            }
        }
    }
    await client.patch(Deployment, "checkout", patch, namespace="shop")
    await client.close()
    baseline = await kube.executor.checkpoint(kube.target)
    assert baseline.spec["template"]["spec"]["schedulingFuture"] == {"mode": "v2-mode"}
    assert baseline.previous_template is not None
    assert baseline.previous_template["spec"]["schedulingFuture"] == {"mode": "v1-mode"}

    rollback = await kube.executor.apply(
        kube.step("remediation/rf", Rung.ROLLBACK, to_revision=baseline.previous_revision)
    )
    assert rollback.applied and kube.images() == [V1]
    pod = kube.deployment()["spec"]["template"]["spec"]
    assert pod["schedulingFuture"] == {"mode": "v1-mode"}
    assert pod["containers"][0]["lifecycleFuture"] == {"stopSignal": "SIGUSR1"}


def without_version(patch: dict[str, Any]) -> dict[str, Any]:
    """A step's patch without its resourceVersion (the precondition a retry cannot know)."""
    return {
        name: [op for op in body if op["path"] != "/metadata/resourceVersion"]
        if isinstance(body, list)  # JSON-patch operations
        else {
            **body,
            "metadata": {k: v for k, v in body["metadata"].items() if k != "resourceVersion"},
        }
        for name, body in patch.items()
    }


async def test_restart_creates_exactly_one_revision_and_a_retry_with_the_same_key_creates_none(
    kube: Cluster,
) -> None:
    step = kube.step("remediation/r2", Rung.RESTART, restarted_at="2026-11-22T14:05:00Z")
    first = await kube.executor.apply(step)
    again = await kube.executor.apply(step)
    assert (first.applied, first.already_applied) == (True, False)
    assert (again.applied, again.already_applied) == (True, True)
    # The retry's audit shows what the first attempt sent, read back from the deployment.
    assert first.patch is not None
    assert again.patch == without_version(first.patch)
    assert sorted(kube.api.revisions("shop", "checkout")) == [1, 2]
    assert len(kube.api.writes()) == 1
    annotations = kube.deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {RESTARTED_AT: "2026-11-22T14:05:00Z"}


async def test_dry_run_returns_the_exact_patch_and_sends_nothing(kube: Cluster) -> None:
    fields = {"restarted_at": "2026-11-22T14:10:00Z"}
    version = kube.deployment()["metadata"]["resourceVersion"]
    planned = await kube.executor.apply(
        kube.step("remediation/r3", Rung.RESTART, mode="dry_run", **fields)
    )
    assert not planned.applied and planned.detail.startswith("dry run: would restart")
    assert kube.api.writes() == []
    done = await kube.executor.apply(kube.step("remediation/r3", Rung.RESTART, **fields))
    assert planned.patch == done.patch
    assert planned.patch is not None
    body = planned.patch["deployment/shop/checkout"]
    assert body["spec"]["template"]["metadata"]["annotations"] == {
        RESTARTED_AT: "2026-11-22T14:10:00Z"
    }
    assert body["metadata"]["annotations"] == {
        STEP_ANNOTATION: "remediation/r3#1",
        STEP_HISTORY_ANNOTATION: '["remediation/r3#1"]',
    }
    # The resourceVersion it read is the write's precondition.
    assert body["metadata"]["resourceVersion"] == version
    sent = kube.api.writes()[0]
    assert (sent.body, sent.content_type) == (body, "application/merge-patch+json")


async def test_scale_out_sets_the_absolute_replica_count_once(kube: Cluster) -> None:
    step = kube.step("remediation/r4", Rung.SCALE_OUT, replicas=5)
    first = await kube.executor.apply(step)
    again = await kube.executor.apply(step)
    assert first.applied and first.patch is not None
    assert again.already_applied and again.patch == without_version(first.patch)
    assert kube.deployment()["spec"]["replicas"] == 5
    assert len(kube.api.pods) == 5
    # The same count asked again under another key changes nothing.
    other = await kube.executor.apply(kube.step("remediation/r4b", Rung.SCALE_OUT, replicas=5))
    assert (other.applied, other.skipped_reason) == (False, "already at 5 replicas")
    assert len(kube.api.writes()) == 1
    # Scaling keeps the template: no new revision.
    assert sorted(kube.api.revisions("shop", "checkout")) == [1]


async def test_rollback_without_an_earlier_replicaset_says_the_release_is_not_a_revision(
    kube: Cluster,
) -> None:
    baseline = await kube.executor.checkpoint(kube.target)
    assert (baseline.revision, baseline.previous_revision) == (1, None)
    for to_revision in (baseline.previous_revision, 7):
        result = await kube.executor.apply(
            kube.step("remediation/r5", Rung.ROLLBACK, to_revision=to_revision)
        )
        assert (result.applied, result.skipped_reason) == (False, NOT_A_REVISION)
    assert kube.api.writes() == []


async def test_a_retried_rollback_shows_the_patch_its_first_attempt_sent(kube: Cluster) -> None:
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r5b"
    await kube.executor.apply(kube.step(rid, Rung.RESTART, restarted_at="2026-11-22T14:10:00Z"))
    step = kube.step(rid, Rung.ROLLBACK, to_revision=baseline.previous_revision)
    first = await kube.executor.apply(step)  # the worker dies here; its retry comes later
    again = await kube.executor.apply(step)
    assert (first.applied, first.already_applied) == (True, False)
    assert (again.applied, again.already_applied) == (True, True)
    assert first.patch is not None
    assert again.patch == without_version(first.patch)
    assert len(kube.api.writes()) == 3 and kube.images() == [V1]


async def test_a_retried_isolation_shows_the_patches_its_first_attempt_sent(
    kube: Cluster,
) -> None:
    kube.api.add_service("shop", "checkout-admin", {"app": "checkout"})
    step = kube.step("remediation/r6b", Rung.ISOLATE)
    first = await kube.executor.apply(step)
    again = await kube.executor.apply(step)
    assert first.patch is not None and list(first.patch) == [
        "service/shop/checkout",
        "service/shop/checkout-admin",
    ]
    assert again.already_applied and again.patch == without_version(first.patch)
    assert again.detail.startswith("isolate: Services checkout, checkout-admin in shop select")
    assert len(kube.api.writes()) == 2
    # A deny policy (no Service selects the workload) is shown as the one created.
    for name in ("checkout", "checkout-admin"):
        del kube.api.services[("shop", name)]
    step = kube.step("remediation/r6c", Rung.ISOLATE)
    first = await kube.executor.apply(step)
    again = await kube.executor.apply(step)
    assert first.patch is not None and list(first.patch) == [
        f"networkpolicy/shop/{isolation_policy_name('remediation/r6c')}"
    ]
    assert again.already_applied and again.patch == first.patch
    assert len(kube.api.writes()) == 3


async def test_checkpoint_records_selectors_of_services_that_select_the_workload_and_its_configmaps(
    kube: Cluster,
) -> None:
    baseline = await kube.executor.checkpoint(kube.target)
    assert baseline.service_selectors == {"checkout": {"app": "checkout"}}
    assert baseline.configmaps == {
        "checkout-env": {"MODE": "fast", "LIMIT": "10"},
        "checkout-files": {"app.yaml": "retries: 3\n"},
    }
    assert (
        baseline.replicas == 2 and baseline.spec["template"]["spec"]["containers"][0]["image"] == V1
    )
    assert Checkpoint.model_validate_json(baseline.model_dump_json()) == baseline


async def test_concurrent_checkpoints_in_one_namespace_share_one_listing_of_each_kind(
    kube: Cluster,
) -> None:
    kube.api.add_deployment("shop", "cart", V1)
    client = client_from_kubeconfig(path=kube.kubeconfig, context=kube.target.cluster_id)
    checkout, cart = kube.deployment(), kube.api.deployments[("shop", "cart")]

    def listings() -> int:
        return sum(1 for c in kube.api.calls if c.path == "/api/v1/namespaces/shop/services")

    try:
        # Asked together: one listing on the wire, each caller its own Services.
        first, second = await asyncio.gather(
            ClusterReads(client).services(checkout), ClusterReads(client).services(cart)
        )
        assert [s["metadata"]["name"] for s in first] == ["checkout"]
        assert [s["metadata"]["name"] for s in second] == ["cart"]
        assert listings() == 1
        # Asked after it answered: a listing of its own (nothing stale is kept).
        kube.api.add_service("shop", "checkout-canary", {"app": "checkout"})
        later = await ClusterReads(client).services(checkout)
        assert {s["metadata"]["name"] for s in later} == {"checkout", "checkout-canary"}
        assert listings() == 2
        # One caller cancelled (its activity was): the other still gets the answer.
        cancelled = asyncio.create_task(ClusterReads(client).services(checkout))
        kept = asyncio.create_task(ClusterReads(client).services(cart))
        await asyncio.sleep(0)
        cancelled.cancel()
        assert [s["metadata"]["name"] for s in await kept] == ["cart"]
        assert listings() == 3
        # The earlier runs' isolation policies every checkpoint looks for: one listing too.
        policies = await asyncio.gather(
            *(ClusterReads(client).isolation_policies(d) for d in (checkout, cart, checkout))
        )
        assert policies == [[], [], []]
        path = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
        assert sum(1 for c in kube.api.calls if c.path == path) == 1
    finally:
        await client.close()


async def test_full_rollback_puts_a_configmaps_binary_data_back_too(kube: Cluster) -> None:
    """Full rollback restored a ConfigMap's `data` only: its `binaryData` (a keystore, a
    compressed rule file) edited during the incident stayed as edited. A checkpoint recorded
    before it kept binaryData leaves it as it is."""
    files = kube.api.configmaps[("shop", "checkout-files")]
    files["binaryData"] = {"rules.gz": "H4sIAAAAAAAAA0sEAHhZ4EUBAAAA"}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    assert baseline.configmap_binaries["checkout-files"] == files["binaryData"]
    edited = {"rules.gz": "H4sIAAAAAAAAA0sCAOKjH0QBAAAA", "extra.bin": "AAEC"}
    for checkpoint, restored in (
        (baseline.model_copy(update={"configmap_binaries": {}}), edited),  # recorded before
        (baseline, {"rules.gz": "H4sIAAAAAAAAA0sEAHhZ4EUBAAAA"}),
    ):
        files = kube.api.configmaps[("shop", "checkout-files")]
        files["binaryData"] = dict(edited)
        step = kube.step(
            f"remediation/{len(restored)}",
            Rung.FULL_ROLLBACK,
            to_revision=baseline.previous_revision,
            checkpoint=checkpoint,
        )
        assert (await kube.executor.apply(step)).applied
        files = kube.api.configmaps[("shop", "checkout-files")]
        assert files["binaryData"] == restored
        assert files["data"] == {"app.yaml": "retries: 3\n"}


async def test_isolate_then_full_rollback_restores_release_configmaps_replicas_and_selectors(
    kube: Cluster,
) -> None:
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r6"
    await kube.executor.apply(kube.step(rid, Rung.SCALE_OUT, replicas=4))
    isolated = await kube.executor.apply(kube.step(rid, Rung.ISOLATE))
    assert isolated.applied
    selector = kube.api.services[("shop", "checkout")]["spec"]["selector"]
    assert selector == {"app": "checkout", ISOLATION_LABEL: isolation_value("remediation/r6#4")}
    assert kube.api.services[("shop", "cart")]["spec"]["selector"] == {"app": "cart"}
    assert (await kube.executor.apply(kube.step(rid, Rung.ISOLATE))).already_applied
    # Someone edits the config during the incident; full rollback puts it back.
    kube.api.configmaps[("shop", "checkout-env")]["data"] = {"MODE": "slow", "DEBUG": "1"}

    full = kube.step(
        rid, Rung.FULL_ROLLBACK, to_revision=baseline.previous_revision, checkpoint=baseline
    )
    result = await kube.executor.apply(full)
    assert result.applied and not result.already_applied
    assert kube.images() == [V1]
    assert kube.deployment()["spec"]["replicas"] == 2
    assert kube.api.services[("shop", "checkout")]["spec"]["selector"] == {"app": "checkout"}
    assert kube.api.configmaps[("shop", "checkout-env")]["data"] == {"MODE": "fast", "LIMIT": "10"}
    assert kube.api.configmaps[("shop", "checkout-files")]["data"] == {"app.yaml": "retries: 3\n"}
    writes_before_retry = len(kube.api.writes())
    retry = await kube.executor.apply(full)
    assert retry.already_applied and len(kube.api.writes()) == writes_before_retry
    # release, scale, isolate, then one write each for the deployment, the edited ConfigMap
    # and the Service (the untouched ConfigMap is not written).
    assert [c.kind for c in kube.api.writes()] == [
        "deployments",
        "deployments",
        "services",
        "deployments",
        "configmaps",
        "services",
    ]
    assert (await kube.executor.rollout_health(kube.target)).available


async def test_isolation_without_a_service_is_a_deny_all_network_policy_that_full_rollback_removes(
    kube: Cluster,
) -> None:
    del kube.api.services[("shop", "checkout")]
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r7"
    assert (await kube.executor.apply(kube.step(rid, Rung.ISOLATE))).applied
    name = isolation_policy_name(rid)
    policy = kube.api.networkpolicies[("shop", name)]
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app": "checkout"}},
        "policyTypes": ["Ingress"],
    }
    assert policy["metadata"]["annotations"][STEP_ANNOTATION] == "remediation/r7#4"
    assert (await kube.executor.apply(kube.step(rid, Rung.ISOLATE))).already_applied
    full = await kube.executor.apply(kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline))
    assert full.applied and ("shop", name) not in kube.api.networkpolicies
    # The Deployment, unchanged otherwise, names the policy before it goes (a retry finds it).
    assert [(c.method, c.kind) for c in kube.api.writes()] == [
        ("POST", "networkpolicies"),
        ("PATCH", "deployments"),
        ("DELETE", "networkpolicies"),
    ]


async def test_full_rollback_restores_a_service_isolated_that_the_first_checkpoint_did_not_hold(
    kube: Cluster,
) -> None:
    """During the incident someone put a debug Service in front of the same pods: rung 4
    isolated both, rung 5 put back only the one its first checkpoint held and said it was
    done, and the debug Service selected no pod with nobody told. Rung 5 takes rung 4's key
    out of every Service it isolated, once (a retry writes nothing again); another run's
    isolation is not this run's to undo."""
    baseline = await kube.executor.checkpoint(kube.target)
    kube.api.add_service("shop", "checkout-debug", {"app": "checkout"})
    kube.api.add_service("shop", "other-run", {"app": "checkout", ISOLATION_LABEL: "0" * 16})
    rid = "remediation/r-debug"
    isolated = await kube.executor.apply(kube.step(rid, Rung.ISOLATE, checkpoint=baseline))
    assert isolated.applied and "service/shop/checkout-debug" in (isolated.patch or {})
    full = await kube.executor.apply(kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline))
    selectors = {name: s["spec"]["selector"] for (_, name), s in kube.api.services.items()}
    assert full.applied and selectors["checkout"] == {"app": "checkout"}, full.detail
    assert selectors["checkout-debug"] == {"app": "checkout"}, full.detail
    assert selectors["other-run"] == {"app": "checkout", ISOLATION_LABEL: "0" * 16}
    assert "Service checkout-debug selects its pods again" in full.detail
    written = len(kube.api.writes("services"))
    again = await kube.executor.apply(kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline))
    assert again.already_applied and len(kube.api.writes("services")) == written


async def test_a_deny_policy_selects_the_pods_of_a_deployment_selected_by_expressions_alone(
    kube: Cluster,
) -> None:
    """A Deployment may select its pods by matchExpressions (apps/v1 LabelSelector); the deny
    policy took its matchLabels alone, and an empty podSelector denies every pod in the
    namespace: isolating one workload took the whole namespace's traffic."""
    del kube.api.services[("shop", "checkout")]
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["checkout"]}]}
    kube.deployment()["spec"]["selector"] = selector
    rid = "remediation/r7x"
    assert (await kube.executor.apply(kube.step(rid, Rung.ISOLATE))).applied
    policy = kube.api.networkpolicies[("shop", isolation_policy_name(rid))]
    # The selector whole, narrowed to the pod template's labels (its own pods only).
    own = {"matchLabels": {"app": "checkout"}, **selector}
    assert policy["spec"] == {"podSelector": own, "policyTypes": ["Ingress"]}


async def test_a_concurrent_writer_makes_the_step_start_again_from_a_fresh_read(
    kube: Cluster,
) -> None:
    # An autoscaler changes the replica count between our read and our write.
    kube.api.interfere("deployments", "shop", "checkout", lambda d: d["spec"].update(replicas=3))
    result = await kube.executor.apply(
        kube.step("remediation/r8", Rung.RESTART, restarted_at="2026-11-22T14:20:00Z")
    )
    assert result.applied
    refused = [c for c in kube.api.calls if c.status == 409]
    assert len(refused) == 1 and refused[0].method == "PATCH"
    assert len(kube.api.writes()) == 1
    assert kube.deployment()["spec"]["replicas"] == 3  # the other writer's change survives

    kube.api.interfere(
        "services",
        "shop",
        "checkout",
        lambda s: s["metadata"].setdefault("labels", {}).update(team="pay"),
    )
    assert (await kube.executor.apply(kube.step("remediation/r8", Rung.ISOLATE))).applied
    service = kube.api.services[("shop", "checkout")]
    assert service["metadata"]["labels"] == {"team": "pay"}
    assert ISOLATION_LABEL in service["spec"]["selector"]


async def test_scale_out_never_lowers_a_count_raised_after_its_checkpoint(kube: Cluster) -> None:
    """Rung 2's count is chosen from the checkpoint (2 → 4); a person who scaled the Deployment
    to 6 meanwhile (the write's 409, then a fresh read) had it scaled back in to 4."""
    kube.api.interfere("deployments", "shop", "checkout", lambda d: d["spec"].update(replicas=6))
    result = await kube.executor.apply(kube.step("remediation/r8s", Rung.SCALE_OUT, replicas=4))
    assert not result.applied and result.skipped_reason == "already at 6 replicas"
    assert kube.deployment()["spec"]["replicas"] == 6
    assert kube.api.writes() == []


async def test_conflicts_that_keep_coming_are_a_retryable_error(kube: Cluster) -> None:
    def busy(deployment: dict[str, Any]) -> None:
        deployment["metadata"].setdefault("labels", {})["touched"] = "yes"
        kube.api.interfere("deployments", "shop", "checkout", busy)

    kube.api.interfere("deployments", "shop", "checkout", busy)
    with pytest.raises(KubeUnavailableError, match="conflicts kept coming") as raised:
        await kube.executor.apply(kube.step("remediation/r9", Rung.SCALE_OUT, replicas=3))
    assert raised.value.retryable
    # Every write refused 409, so nothing of it was stored: said as not changed (it had been
    # "may have been applied", the rung's slot kept).
    assert raised.value.changed is False
    assert kube.api.writes() == [] and kube.deployment()["spec"]["replicas"] == 2


async def test_rollout_health_waits_for_the_new_pods(kube: Cluster) -> None:
    kube.api.ready_after_reads = 2
    await kube.executor.apply(
        kube.step("remediation/r10", Rung.RESTART, restarted_at="2026-11-22T14:30:00Z")
    )
    # apply read the deployment before writing; the rollout started with the write.
    readings = [await kube.executor.rollout_health(kube.target) for _ in range(3)]
    assert [r.available for r in readings] == [False, True, True]
    assert readings[0].detail == "0 of 2 new replicas have been updated"

    kube.api.failing_images = {V2}
    await kube.release(V2)
    broken = await kube.executor.rollout_health(kube.target)
    while broken.detail.startswith("0 of 2 new"):
        broken = await kube.executor.rollout_health(kube.target)
    assert (broken.available, broken.ready_replicas) == (False, 0)
    assert broken.detail == "0 of 2 updated replicas are available"


async def test_bad_input_and_missing_workloads_are_clear_errors(kube: Cluster) -> None:
    with pytest.raises(StepInputError, match="restarted_at is required"):
        await kube.executor.apply(kube.step("remediation/r11", Rung.RESTART))
    with pytest.raises(StepInputError, match="replicas is required"):
        await kube.executor.apply(kube.step("remediation/r11", Rung.SCALE_OUT))
    with pytest.raises(StepInputError, match="checkpoint"):
        await kube.executor.apply(kube.step("remediation/r11", Rung.FULL_ROLLBACK))
    ghost = kube.target.model_copy(update={"name": "ghost"})
    with pytest.raises(KubeNotFoundError, match="shop/ghost not found") as raised:
        await kube.executor.checkpoint(ghost)
    assert not raised.value.retryable
    unknown = kube.target.model_copy(update={"cluster_id": "cls-unknown1"})
    with pytest.raises(KubeError, match="Tencent Cloud is not configured"):
        await kube.executor.rollout_health(unknown)
    with pytest.raises(KubeError, match="Tencent Cloud is not configured"):
        await KubernetesExecutor(KubeClients(None, None)).checkpoint(kube.target)
    assert kube.api.writes() == []


async def test_a_cluster_id_outside_the_kubeconfig_gets_its_kubeconfig_from_tke(
    kube: Cluster,
) -> None:
    from tencentcloud.common.credential import Credential

    from ambient.clients.tencent.client import TencentCloud
    from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi

    served = yaml.safe_load(kube.kubeconfig.read_text())
    cloud = TencentApi(kubeconfigs={"cls-tke00001": yaml.safe_dump(served)})
    async with serve(cloud.app()) as base:
        tencent = TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=base.removeprefix("http://"),
            protocol="http",
        )
        clients = KubeClients(kube.kubeconfig, tencent)
        executor = KubernetesExecutor(clients)
        try:
            target = kube.target.model_copy(update={"cluster_id": "cls-tke00001"})
            assert (await executor.checkpoint(target)).images == [V1]
            # The configured region named or not: one cluster, one client (a forget drops it).
            named = await _client(clients, "cls-tke00001", "ap-guangzhou")
            assert await _client(clients, "cls-tke00001") is named
            await clients._drop(await clients._kept("cls-tke00001", None))
            assert await _client(clients, "cls-tke00001", "ap-guangzhou") is not named
            with pytest.raises(KubeError, match="TKE has no cluster cls-none0001"):
                await executor.checkpoint(target.model_copy(update={"cluster_id": "cls-none0001"}))
        finally:
            await clients.aclose()


async def test_a_cluster_whose_kubeconfig_is_slow_to_come_does_not_hold_up_the_others(
    kube: Cluster,
) -> None:
    """Each cluster's client is made once; one whose TKE answer takes long (its region's API
    slow, up to the client's 30 s timeout) held every other cluster's first client behind it."""
    from tencentcloud.common.credential import Credential

    from ambient.clients.tencent.client import TencentCloud
    from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi

    served = yaml.safe_dump(yaml.safe_load(kube.kubeconfig.read_text()))
    arrived, released = asyncio.Event(), asyncio.Event()
    cloud = TencentApi(
        kubeconfigs={"cls-slow0001": served, "cls-fast0001": served},
        held_clusters={"cls-slow0001": (arrived, released)},
    )
    async with serve(cloud.app()) as base:
        tencent = TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=base.removeprefix("http://"),
            protocol="http",
        )
        clients = KubeClients(kube.kubeconfig, tencent)
        try:
            slow = asyncio.create_task(_client(clients, "cls-slow0001"))
            await arrived.wait()  # its DescribeClusterKubeconfig is on the wire, held there
            # The same cluster asked again meanwhile waits for that one call.
            again = asyncio.create_task(_client(clients, "cls-slow0001"))
            fast = await asyncio.wait_for(_client(clients, "cls-fast0001"), 60)
            held = not slow.done() and not again.done()  # the fast one came first
            released.set()
            assert await slow is await again and fast is not await slow
        finally:
            released.set()
            await clients.aclose()
    assert held, "the fast cluster's client waited for the slow cluster's"
    asked = [
        p["ClusterId"] for _, action, p in cloud.calls if action == "DescribeClusterKubeconfig"
    ]
    assert sorted(asked) == ["cls-fast0001", "cls-slow0001"]


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("AuthFailure.UnauthorizedOperation", False),  # the CAM policy lacks the action
        ("ResourceNotFound.ClusterNotFound", False),  # no such cluster in the region
        ("InternalError", True),  # TKE's own failure: may pass
    ],
)
async def test_a_tke_kubeconfig_tencent_refuses_is_a_kube_error_retried_only_if_it_may_pass(
    kube: Cluster, code: str, retryable: bool
) -> None:
    """The executor's errors are KubeErrors (the activity retries only the retryable ones): a
    Tencent Cloud error reading the cluster's kubeconfig came out as itself, which the activity
    retried for two minutes whatever it was (a CAM refusal, a cluster that does not exist)."""
    from tencentcloud.common.credential import Credential

    from ambient.clients.tencent.client import TencentCloud
    from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi

    cloud = TencentApi(failures={"DescribeClusterKubeconfig": [code]})
    async with serve(cloud.app()) as base:
        tencent = TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=base.removeprefix("http://"),
            protocol="http",
        )
        clients = KubeClients(kube.kubeconfig, tencent)
        try:
            target = kube.target.model_copy(update={"cluster_id": "cls-tke00002"})
            with pytest.raises(KubeError) as refused:
                await KubernetesExecutor(clients).checkpoint(target)
            # An asked-for workload operation still says it in Tencent Cloud's words.
            cloud.failures["DescribeClusterKubeconfig"] = [code]
            with (
                pytest.raises(CloudOpsFailedError) as said,
                readable("tke", "DescribeClusterKubeconfig"),
            ):
                await _client(clients, "cls-tke00002")
        finally:
            await clients.aclose()
    assert refused.value.retryable is retryable
    said_first = (
        "TKE has no cluster cls-tke00002 in ap-guangzhou (DescribeClusterKubeconfig: "
        if code.endswith("ClusterNotFound")
        else "TKE gave no kubeconfig for cls-tke00002 (DescribeClusterKubeconfig): "
    )
    assert str(refused.value).startswith(f"{said_first}{code}")
    kinds = {"AuthFailure": "auth", "ResourceNotFound": "not_found", "InternalError": "unavailable"}
    assert said.value.kind == kinds[code.split(".")[0]]


@pytest.mark.parametrize(
    ("code", "stops"),
    [
        ("ResourceNotFound.ClusterNotFound", True),  # the id names no cluster: nothing to plan
        ("AuthFailure.UnauthorizedOperation", False),  # not allowed to read it: from the alert
    ],
)
async def test_a_dry_run_on_a_cluster_tke_does_not_have_stops_as_execute_does(
    kube: Cluster, code: str, stops: bool
) -> None:
    """A mistyped cluster id (well-formed, unknown to TKE) was dry-run "from the alert alone":
    a whole ladder planned, approvals asked, for a cluster that does not exist. It stops at
    the first checkpoint now, as a workload that does not exist does; a cluster it may not
    read is still previewed from the alert."""
    from ambient.remediation.dry_run import DryRunExecutor
    from tests.standins.tencent_api import TencentApi
    from tests.support.tencent import standin_tencent

    cloud = TencentApi(failures={"DescribeClusterKubeconfig": [code] * 20})
    async with serve(cloud.app()) as base:
        clients = KubeClients(kube.kubeconfig, standin_tencent(base))
        try:
            target = kube.target.model_copy(update={"cluster_id": "cls-nosuch01"})
            if stops:
                with pytest.raises(
                    TkeClusterNotFoundError, match="TKE has no cluster cls-nosuch01"
                ):
                    await DryRunExecutor(clients).checkpoint(target)
            else:
                previewed = await DryRunExecutor(clients).checkpoint(target)
                assert not previewed.observed and code in previewed.detail
        finally:
            await clients.aclose()


async def test_a_write_whose_answer_was_lost_is_found_by_the_retry_and_not_sent_again(
    kube: Cluster,
) -> None:
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r12"
    await kube.executor.apply(kube.step(rid, Rung.ISOLATE))
    kube.api.configmaps[("shop", "checkout-env")]["data"] = {"MODE": "slow"}
    lost: list[str] = []

    def lose_the_configmap_answer(call: ApiCall) -> None:
        if call.kind == "configmaps" and not lost:
            lost.append(call.path)
            raise AnswerLost

    kube.api.on_write = lose_the_configmap_answer
    full = kube.step(rid, Rung.FULL_ROLLBACK, to_revision=1, checkpoint=baseline)
    with pytest.raises(KubeUnavailableError, match="answer was lost") as raised:
        await kube.executor.apply(full)
    assert raised.value.retryable
    retry = await kube.executor.apply(full)  # what the activity's retry policy does
    assert retry.applied and not retry.already_applied
    assert retry.patch is not None
    assert list(retry.patch) == ["service/shop/checkout"]
    assert "already done: deployment shop/checkout, configmap shop/checkout-env" in retry.detail
    assert [c.kind for c in kube.api.writes()][-3:] == ["deployments", "configmaps", "services"]
    assert kube.images() == [V1]
    assert kube.api.configmaps[("shop", "checkout-env")]["data"] == {"MODE": "fast", "LIMIT": "10"}
    assert kube.api.services[("shop", "checkout")]["spec"]["selector"] == {"app": "checkout"}


async def test_a_checkpoint_without_access_to_services_and_configmaps_says_what_it_lacks(
    kube: Cluster,
) -> None:
    kube.api.forbidden = {"services", "configmaps", "networkpolicies"}
    baseline = await kube.executor.checkpoint(kube.target)
    assert (baseline.revision, baseline.service_selectors, baseline.configmaps) == (1, {}, {})
    assert baseline.isolation_policies == []
    notes = baseline.detail.split("; ")
    # Each read RBAC refused is named, with the refusal, after the revision and replicas.
    assert [n.split(" (")[0] for n in notes[1:]] == [
        "Service selectors not recorded",
        "isolation NetworkPolicies not looked for",
        "ConfigMap checkout-env not recorded",
        "ConfigMap checkout-files not recorded",
    ], notes
    assert 'cannot get resource "configmaps"' in baseline.detail
    # Isolation needs the Services: refused, and not retried (not a passing condition).
    with pytest.raises(KubeError, match="forbidden") as raised:
        await kube.executor.apply(kube.step("remediation/r13", Rung.ISOLATE))
    assert not raised.value.retryable
    assert kube.api.writes() == []


async def test_full_rollback_after_the_rollback_keeps_the_release_before_the_incident(
    kube: Cluster,
) -> None:
    kube.api.failing_images = {V2}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r14"
    at = "2026-11-22T15:00:00Z"
    ladder: list[tuple[Rung, dict[str, Any]]] = [
        (Rung.RESTART, {"restarted_at": at}),
        (Rung.SCALE_OUT, {"replicas": 4}),
        (Rung.ROLLBACK, {"to_revision": baseline.previous_revision}),
        (Rung.ISOLATE, {}),
    ]
    for rung, fields in ladder:
        assert (await kube.executor.apply(kube.step(rid, rung, **fields))).applied
    # Our rollback renumbered revision 1 (v1) to 4; the controller keeps 1 in its history.
    assert kube.api.revisions("shop", "checkout") == {2: [V2], 3: [V2], 4: [V1]}
    full = await kube.executor.apply(kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline))
    assert full.applied and full.patch is not None
    operations = full.patch["deployment/shop/checkout"]
    assert [op["path"] for op in operations if op["op"] == "replace"] == [
        "/metadata/resourceVersion",
        "/spec/replicas",
    ]
    assert kube.images() == [V1] and kube.deployment()["spec"]["replicas"] == 2
    assert kube.api.revisions("shop", "checkout") == {2: [V2], 3: [V2], 4: [V1]}
    assert kube.api.services[("shop", "checkout")]["spec"]["selector"] == {"app": "checkout"}
    assert (await kube.executor.rollout_health(kube.target)).available


async def test_full_rollback_dry_run_plans_what_execute_then_does(kube: Cluster) -> None:
    """Rung 5 restores the release before the incident in both modes (not the bad release
    that was running when the remediation began)."""
    from ambient.remediation.dry_run import DryRunExecutor

    kube.api.failing_images = {V2}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r-dry-full"
    # Rung 3 first (renumbers revision 1 as 3), as the ladder does before rung 5.
    await kube.executor.apply(
        kube.step(rid, Rung.ROLLBACK, to_revision=baseline.previous_revision, checkpoint=baseline)
    )
    await kube.release(V2)  # someone redeploys the bad release in between
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    before = len(kube.api.writes())
    planned = await dry.apply(
        kube.step(rid, Rung.FULL_ROLLBACK, mode="dry_run", checkpoint=baseline)
    )
    assert planned.patch is not None
    template = _replaced(planned.patch["deployment/shop/checkout"], "/spec/template")
    assert [c["image"] for c in template["spec"]["containers"]] == [V1]
    assert len(kube.api.writes()) == before  # the dry run wrote nothing
    done = await kube.executor.apply(kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline))
    assert done.applied and kube.images() == [V1]


async def test_dry_run_checkpoint_records_the_configmaps_the_kubernetes_executor_restores(
    kube: Cluster,
) -> None:
    """One reading of a pod template for both executors: a ConfigMap mounted through a
    projected volume is recorded by the dry run too, so its rung 5 shows it being restored."""
    from ambient.remediation.dry_run import DryRunExecutor

    kube.api.add_configmap("shop", "checkout-bundle", {"ca.pem": "---"})
    pod = kube.deployment()["spec"]["template"]["spec"]
    pod["volumes"].append(
        {"name": "bundle", "projected": {"sources": [{"configMap": {"name": "checkout-bundle"}}]}}
    )
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    planned = await dry.checkpoint(kube.target)
    real = await kube.executor.checkpoint(kube.target)
    assert planned.configmaps == real.configmaps
    assert sorted(planned.configmaps) == ["checkout-bundle", "checkout-env", "checkout-files"]


async def test_dry_run_checkpoint_names_the_release_before_as_the_kubernetes_one_does(
    kube: Cluster,
) -> None:
    """A rollback renumbers the ReplicaSet it brings back: its old number is not a release
    before the one running. With the release in between gone (a revisionHistoryLimit of 0),
    both checkpoints see no earlier release; an unreadable revision annotation is no number."""
    from ambient.clients.kube import REVISION
    from ambient.remediation.dry_run import DryRunExecutor

    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    step = kube.step("remediation/r-renumbered", Rung.ROLLBACK, to_revision=1, checkpoint=baseline)
    assert (await kube.executor.apply(step)).applied
    for key, rs in list(kube.api.replicasets.items()):
        if rs["metadata"]["annotations"][REVISION] == "2":
            del kube.api.replicasets[key]
    assert kube.api.revisions("shop", "checkout") == {3: [V1]}
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))

    async def both() -> list[tuple[int | None, int | None]]:
        checkpoints = [
            await dry.checkpoint(kube.target),
            await kube.executor.checkpoint(kube.target),
        ]
        return [(c.revision, c.previous_revision) for c in checkpoints]

    assert await both() == [(3, None), (3, None)]
    for unreadable in ("three", "3²"):  # "3²" passes isdigit() and fails int()
        kube.deployment()["metadata"]["annotations"][REVISION] = unreadable
        assert await both() == [(None, None), (None, None)]


async def test_a_deployment_re_created_under_the_same_name_is_not_the_one_the_run_checkpointed(
    kube: Cluster,
) -> None:
    kube.api.failing_images = {V2}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    assert (baseline.previous_revision, baseline.uid) == (1, kube.deployment()["metadata"]["uid"])
    # A pipeline deletes checkout and creates it again (same name, a new life: its own uid and
    # its own revisions 1 and 2, of other images).
    client = client_from_kubeconfig(path=kube.kubeconfig, context=kube.target.cluster_id)
    await client.delete(Deployment, "checkout", namespace="shop")
    V3, V4 = "registry/checkout:v3", "registry/checkout:v4"
    kube.api.add_deployment("shop", "checkout", V3, replicas=1)
    await client.close()
    await kube.release(V4)
    assert kube.api.revisions("shop", "checkout") == {1: [V3], 2: [V4]}
    writes = len(kube.api.writes())
    rid = "remediation/r20"
    steps = [
        kube.step(rid, Rung.RESTART, restarted_at="2026-11-22T16:00:00Z", checkpoint=baseline),
        kube.step(rid, Rung.SCALE_OUT, replicas=4, checkpoint=baseline),
        kube.step(rid, Rung.ROLLBACK, to_revision=1, checkpoint=baseline),
        kube.step(rid, Rung.ISOLATE, checkpoint=baseline),
        kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline),
    ]
    for step in steps:
        with pytest.raises(KubeError, match="was re-created") as raised:
            await kube.executor.apply(step)
        assert not raised.value.retryable
        assert baseline.uid is not None and baseline.uid in str(raised.value)
    assert len(kube.api.writes()) == writes
    assert kube.images() == [V4] and kube.deployment()["spec"]["replicas"] == 1


async def test_a_restart_whose_stamp_another_run_overwrote_is_found_by_its_retry(
    kube: Cluster,
) -> None:
    # Two alerts on one workload (CPU and latency) are two runs; each stamps its own key.
    cpu = kube.step("remediation/cpu", Rung.RESTART, restarted_at="2026-11-22T17:00:00.125Z")
    latency = kube.step("remediation/lat", Rung.RESTART, restarted_at="2026-11-22T17:00:02.5Z")
    lost: list[str] = []

    def lose_the_first_answer(call: ApiCall) -> None:
        if not lost:
            lost.append(call.path)
            raise AnswerLost

    kube.api.on_write = lose_the_first_answer
    with pytest.raises(KubeUnavailableError, match="answer was lost"):
        await kube.executor.apply(cpu)  # the worker dies here; its retry comes later
    assert (await kube.executor.apply(latency)).applied
    retry = await kube.executor.apply(cpu)
    assert (retry.applied, retry.already_applied) == (True, True)
    # What the lost write sent, though the other run's stamp came after it.
    assert retry.patch == {
        "deployment/shop/checkout": {
            "metadata": {
                "annotations": {
                    STEP_ANNOTATION: "remediation/cpu#1",
                    STEP_HISTORY_ANNOTATION: '["remediation/cpu#1"]',
                }
            },
            "spec": {
                "template": {
                    "metadata": {"annotations": {RESTARTED_AT: "2026-11-22T17:00:00.125Z"}}
                }
            },
        }
    }
    assert "already restarted" in retry.detail
    # The original release and one restart per run: the retry restarted nothing again.
    assert sorted(kube.api.revisions("shop", "checkout")) == [1, 2, 3]
    assert len(kube.api.writes("deployments")) == 2


@pytest.mark.parametrize("unserved", [set(), {"autoscaling/v2"}], ids=["1.23+", "1.22"])
async def test_scale_out_of_a_deployment_an_autoscaler_manages_is_skipped_naming_it(
    kube: Cluster, unserved: set[str]
) -> None:
    # A cluster before 1.23 serves no autoscaling/v2: its HPAs were read as none (a 404 taken
    # as an RBAC refusal), and the count set under the HPA, which put it back.
    kube.api.unserved = unserved
    kube.api.add_autoscaler("shop", "checkout-hpa", "checkout", minimum=2, maximum=3)
    kube.api.add_autoscaler("shop", "cart-hpa", "cart", minimum=1, maximum=9)
    result = await kube.executor.apply(kube.step("remediation/r21", Rung.SCALE_OUT, replicas=4))
    # Its controller would put the count back within 2-3: the rung says so and changes nothing.
    assert (result.applied, result.patch) == (False, None)
    assert result.skipped_reason is not None
    assert "HorizontalPodAutoscaler checkout-hpa (2-3 replicas)" in result.skipped_reason
    assert kube.api.writes() == []
    assert kube.deployment()["spec"]["replicas"] == 2


async def test_scale_out_where_autoscalers_cannot_be_listed_sets_no_count_saying_why(
    kube: Cluster,
) -> None:
    # The documented Role had no autoscaling rule: HPAs unreadable were read as none, and the
    # count set under the HPA, which put it back while the metric was judged at its count.
    kube.api.forbidden = {"horizontalpodautoscalers"}
    kube.api.add_autoscaler("shop", "checkout-hpa", "checkout", minimum=2, maximum=3)
    result = await kube.executor.apply(kube.step("remediation/r21b", Rung.SCALE_OUT, replicas=4))
    assert (result.applied, result.patch) == (False, None)
    assert result.skipped_reason is not None
    assert "an autoscaler perhaps" in result.skipped_reason
    assert "forbidden" in result.skipped_reason
    assert kube.api.writes() == []


async def test_restart_and_rollback_of_a_paused_deployment_are_skipped_saying_so(
    kube: Cluster,
) -> None:
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    client = client_from_kubeconfig(path=kube.kubeconfig, context=kube.target.cluster_id)
    await client.patch(Deployment, "checkout", {"spec": {"paused": True}}, namespace="shop")
    await client.close()
    writes = len(kube.api.writes())
    rid = "remediation/r22"
    restart = kube.step(rid, Rung.RESTART, restarted_at="2026-11-22T18:00:00Z")
    rollback = kube.step(rid, Rung.ROLLBACK, to_revision=baseline.previous_revision)
    for step in (restart, rollback):
        # kubectl refuses both ("resume it first"): a paused Deployment rolls out nothing, so
        # a patched template would be reported as a restart or rollback that never happened.
        result = await kube.executor.apply(step)
        assert (result.applied, result.patch) == (False, None)
        assert result.skipped_reason is not None and "paused" in result.skipped_reason
    assert len(kube.api.writes()) == writes
    assert kube.images() == [V2]


async def test_the_ladder_s_scale_out_of_a_paused_deployment_is_skipped_saying_so(
    kube: Cluster,
) -> None:
    """Paused mid-rollout, the ladder's restart and rollback were skipped but its scale out was
    made: a rollout someone holds was grown under them. It is skipped as they are (its slot
    given back); a scale a person asks for (scale_workload) is still made."""
    client = client_from_kubeconfig(path=kube.kubeconfig, context=kube.target.cluster_id)
    await client.patch(Deployment, "checkout", {"spec": {"paused": True}}, namespace="shop")
    await client.close()
    writes = len(kube.api.writes())
    scale = kube.step("remediation/r23", Rung.SCALE_OUT, replicas=4)
    result = await kube.executor.apply(scale)
    assert (result.applied, result.patch) == (False, None)
    assert result.skipped_reason == (
        "deployment shop/checkout is paused: someone holds its rollout, and the ladder does "
        "not scale it while it is held (kubectl rollout resume)"
    )
    assert len(kube.api.writes()) == writes and kube.deployment()["spec"]["replicas"] == 2
    asked = kube.step("asked", Rung.SCALE_OUT, replicas=4, asked=True)
    assert (await kube.executor.apply(asked)).applied
    assert kube.deployment()["spec"]["replicas"] == 4


async def test_a_dry_run_on_a_namespace_the_cluster_does_not_have_says_the_workload_is_not_found(
    kube: Cluster,
) -> None:
    from ambient.remediation.dry_run import DryRunExecutor

    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    ghost = kube.target.model_copy(update={"namespace": "shopp"})
    # The cluster answered: there is no such Deployment. A plan "from the alert alone" would
    # show a restart of a workload that does not exist, as the execute mode never would.
    with pytest.raises(KubeNotFoundError, match="deployment shopp/checkout not found"):
        await dry.checkpoint(ghost)
    step = kube.step(
        "remediation/r23", Rung.RESTART, mode="dry_run", restarted_at="2026-11-22T19:00:00Z"
    )
    with pytest.raises(KubeNotFoundError, match="deployment shopp/checkout not found"):
        await dry.apply(step.model_copy(update={"target": ghost}))
    with pytest.raises(KubeNotFoundError, match="deployment shopp/checkout not found"):
        await kube.executor.checkpoint(ghost)
    assert kube.api.writes() == []


async def test_rollback_finds_the_release_before_the_incident_after_the_restart_pruned_it(
    kube: Cluster,
) -> None:
    # revisionHistoryLimit 1 keeps one old ReplicaSet: our own restart (rung 1) makes a
    # revision, and the controller deletes revision 1, the release rung 3 must go back to.
    kube.api.deployments[("shop", "checkout")]["spec"]["revisionHistoryLimit"] = 1
    kube.api.failing_images = {V2}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    assert baseline.previous_revision == 1
    rid = "remediation/r24"
    restart = kube.step(rid, Rung.RESTART, restarted_at="2026-11-22T20:00:00Z", checkpoint=baseline)
    assert (await kube.executor.apply(restart)).applied
    assert kube.api.revisions("shop", "checkout") == {2: [V2], 3: [V2]}
    rollback = kube.step(rid, Rung.ROLLBACK, to_revision=1, checkpoint=baseline)
    from ambient.remediation.dry_run import DryRunExecutor

    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    planned = await dry.apply(rollback.model_copy(update={"mode": "dry_run"}))
    assert planned.patch is not None
    assert images_of(_replaced(planned.patch["deployment/shop/checkout"], "/spec/template")) == [V1]
    result = await kube.executor.apply(rollback)
    assert result.applied and result.skipped_reason is None
    assert kube.images() == [V1]
    template = kube.deployment()["spec"]["template"]
    assert "pod-template-hash" not in template["metadata"]["labels"]
    assert kube.api.revisions("shop", "checkout") == {3: [V2], 4: [V1]}


async def test_a_dry_run_plans_the_rollback_from_its_own_checkpoint_after_pruning(
    kube: Cluster,
) -> None:
    """The dry run's checkpoint keeps the release before the incident as the Kubernetes
    executor's does: once its ReplicaSet is pruned, the planned rung 3 still shows it."""
    from ambient.clients.kube import REVISION
    from ambient.remediation.dry_run import DryRunExecutor

    await kube.release(V2)
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    baseline = await dry.checkpoint(kube.target)
    assert baseline.previous_revision == 1
    for key, rs in list(kube.api.replicasets.items()):
        if rs["metadata"]["annotations"][REVISION] == "1":
            del kube.api.replicasets[key]
    rollback = kube.step(
        "remediation/r-dry-pruned", Rung.ROLLBACK, to_revision=1, checkpoint=baseline
    )
    released = kube.api.writes()
    planned = await dry.apply(rollback.model_copy(update={"mode": "dry_run"}))
    assert planned.patch is not None, planned.detail
    assert images_of(_replaced(planned.patch["deployment/shop/checkout"], "/spec/template")) == [V1]
    assert kube.api.writes() == released


async def test_the_stand_in_refuses_what_the_api_server_refuses(kube: Cluster) -> None:
    base = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    url = f"{base}/apis/apps/v1/namespaces/shop/deployments/checkout"
    async with http_client() as http:
        bad_dry_run = await http.patch(
            url,
            params={"dryRun": "true"},
            content='{"spec": {"replicas": 5}}',
            headers={"content-type": "application/merge-patch+json"},
        )
        bad_type = await http.patch(
            url, content='{"spec": {"replicas": 5}}', headers={"content-type": "application/json"}
        )
        other_life = await http.patch(
            url,
            content='{"metadata": {"uid": "uid-someone-else"}}',
            headers={"content-type": "application/merge-patch+json"},
        )
        missing_namespace = await http.post(
            "/".join([base, "api/v1/namespaces/nowhere/configmaps"]),
            json={"metadata": {"name": "x"}, "data": {}},
        )
    assert [r.status_code for r in (bad_dry_run, bad_type, other_life, missing_namespace)] == [
        400,
        415,
        422,
        404,
    ]
    assert "field is immutable" in other_life.json()["message"]
    assert missing_namespace.json()["message"] == 'namespaces "nowhere" not found'
    assert kube.api.writes() == [] and kube.deployment()["spec"]["replicas"] == 2


async def test_rotated_credentials_are_read_again_after_the_api_server_refuses_the_old_ones(
    kube: Cluster,
) -> None:
    kube.api.require_token("test-token")
    assert (await kube.executor.checkpoint(kube.target)).images == [V1]
    # The cluster's credentials are rotated: the server takes only the new token, which the
    # kubeconfig (AMBIENT_KUBECONFIG here; TKE's DescribeClusterKubeconfig alike) does not
    # carry yet: refused after it is read again, and retryable.
    kube.api.require_token("rotated-token")
    with pytest.raises(KubeError, match="refused the kubeconfig's credentials") as raised:
        await kube.executor.checkpoint(kube.target)
    assert raised.value.retryable
    config = yaml.safe_load(kube.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "rotated-token"
    kube.kubeconfig.write_text(yaml.safe_dump(config) + "\n# rotated\n")
    # Once it does, the next attempt works without restarting the worker.
    assert (await kube.executor.checkpoint(kube.target)).images == [V1]
    step = kube.step("remediation/r25", Rung.RESTART, restarted_at="2026-11-22T21:00:00Z")
    assert (await kube.executor.apply(step)).applied


async def test_full_rollback_of_a_paused_deployment_says_its_release_is_not_put_back(
    kube: Cluster,
) -> None:
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r26"
    assert (await kube.executor.apply(kube.step(rid, Rung.SCALE_OUT, replicas=4))).applied
    client = client_from_kubeconfig(path=kube.kubeconfig, context=kube.target.cluster_id)
    await client.patch(Deployment, "checkout", {"spec": {"paused": True}}, namespace="shop")
    await client.close()
    full = await kube.executor.apply(kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline))
    assert full.applied and full.patch is not None
    assert "deployment shop/checkout is paused: its release is not put back" in full.detail
    operations = full.patch["deployment/shop/checkout"]
    assert [op["path"] for op in operations if op["op"] == "replace"] == [
        "/metadata/resourceVersion",
        "/spec/replicas",
    ]
    assert kube.images() == [V2] and kube.deployment()["spec"]["replicas"] == 2


async def _autoscaled_to(kube: Cluster, replicas: int) -> None:
    """The HPA's controller sets the Deployment's count (within its bounds)."""
    client = client_from_kubeconfig(path=kube.kubeconfig, context=kube.target.cluster_id)
    body = {"spec": {"replicas": replicas}}
    await client.patch(Deployment, "checkout", body, namespace="shop", patch_type=PatchType.MERGE)
    await client.close()


async def test_full_rollback_leaves_the_replicas_of_an_autoscaled_deployment_to_its_autoscaler(
    kube: Cluster,
) -> None:
    kube.api.add_autoscaler("shop", "checkout-hpa", "checkout", minimum=2, maximum=6)
    kube.api.failing_images = {V2}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    assert baseline.replicas == 2
    await _autoscaled_to(kube, 5)  # the load went up: the HPA scaled out
    step = kube.step("remediation/r-hpa5", Rung.FULL_ROLLBACK, checkpoint=baseline)
    planned = await kube.executor.apply(step.model_copy(update={"mode": "dry_run"}))
    done = await kube.executor.apply(step)
    assert done.applied and kube.images() == [V1]
    # The release is put back; the count stays the autoscaler's.
    assert kube.deployment()["spec"]["replicas"] == 5
    assert done.patch is not None and planned.patch == done.patch
    paths = [op["path"] for op in done.patch["deployment/shop/checkout"]]
    assert "/spec/replicas" not in paths and "/spec/template" in paths
    assert "replicas left to HorizontalPodAutoscaler checkout-hpa (2-6 replicas)" in done.detail


@pytest.mark.parametrize(
    ("minimum", "scaled_object", "held_by"),
    [
        (1, None, None),
        (0, None, "HorizontalPodAutoscaler checkout-hpa (0-6 replicas)"),
        (
            1,
            "checkout",
            "HorizontalPodAutoscaler checkout-hpa of ScaledObject checkout (1-6 replicas)",
        ),
    ],
)
async def test_full_rollback_puts_back_the_count_of_a_deployment_at_zero_a_plain_hpa_leaves(
    kube: Cluster, minimum: int, scaled_object: str | None, held_by: str | None
) -> None:
    """Scaled to 0 since the checkpoint under a plain HPA (minReplicas 1), the Deployment's
    replicas were "left to" the HPA, which does not scale a target at 0 (ScalingDisabled): the
    rollback put back a release with no pod. KEDA's HPA, or one of minReplicas 0, holds it."""
    kube.api.add_autoscaler(
        "shop", "checkout-hpa", "checkout", minimum, 6, scaled_object=scaled_object
    )
    kube.api.failing_images = {V2}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    assert baseline.replicas == 2
    await _autoscaled_to(kube, 0)  # someone (or KEDA) stopped it
    step = kube.step("remediation/r-hpa0", Rung.FULL_ROLLBACK, checkpoint=baseline)
    done = await kube.executor.apply(step)
    assert done.applied and kube.images() == [V1] and done.patch is not None
    paths = [op["path"] for op in done.patch["deployment/shop/checkout"]]
    if held_by is None:
        assert "/spec/replicas" in paths and "replicas back to 2" in done.detail, done.detail
        assert kube.deployment()["spec"]["replicas"] == 2
    else:
        assert "/spec/replicas" not in paths, paths
        assert f"replicas left to {held_by}" in done.detail, done.detail
        assert kube.deployment()["spec"]["replicas"] == 0


async def test_the_ladder_s_scale_out_leaves_a_deployment_at_zero_under_a_plain_hpa_stopped(
    kube: Cluster,
) -> None:
    """A plain HPA does not hold a Deployment at 0, so a person's scale-up there is applied;
    the ladder's own scale out still does not start what someone stopped: it hands over."""
    kube.api.add_autoscaler("shop", "checkout-hpa", "checkout", minimum=1, maximum=6)
    await _autoscaled_to(kube, 0)
    before = len(kube.api.writes())
    result = await kube.executor.apply(kube.step("remediation/r-hpa00", Rung.SCALE_OUT, replicas=2))
    assert (result.applied, result.patch, result.stopped) == (False, None, True), result
    assert result.skipped_reason == (
        "deployment shop/checkout is scaled to 0 replicas: someone stopped it, and the scale "
        "out does not start it again (scale it up by hand if it should run)"
    ), result
    assert len(kube.api.writes()) == before and kube.deployment()["spec"]["replicas"] == 0


async def test_a_dry_run_plans_no_count_on_a_deployment_an_autoscaler_manages(
    kube: Cluster,
) -> None:
    from ambient.remediation.dry_run import DryRunExecutor

    kube.api.add_autoscaler("shop", "checkout-hpa", "checkout", minimum=2, maximum=3)
    kube.api.failing_images = {V2}
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    await _autoscaled_to(kube, 3)
    before = len(kube.api.writes())
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    scale = kube.step("remediation/r-hpa-dry", Rung.SCALE_OUT, mode="dry_run", replicas=4)
    planned = await dry.apply(scale)
    executed = await kube.executor.apply(scale.model_copy(update={"mode": "execute"}))
    # What the run would do: skip the rung, naming the autoscaler.
    assert executed.skipped_reason is not None and executed.patch is None
    assert (planned.applied, planned.patch) == (False, None)
    assert planned.skipped_reason == executed.skipped_reason
    full = await dry.apply(
        kube.step("remediation/r-hpa-dry", Rung.FULL_ROLLBACK, mode="dry_run", checkpoint=baseline)
    )
    assert full.patch is not None
    paths = [op["path"] for op in full.patch["deployment/shop/checkout"]]
    assert "/spec/template" in paths and "/spec/replicas" not in paths
    assert "HorizontalPodAutoscaler checkout-hpa" in full.detail
    assert len(kube.api.writes()) == before
    assert kube.deployment()["spec"]["replicas"] == 3


async def test_a_rollout_past_its_progress_deadline_is_failed_in_both_modes(kube: Cluster) -> None:
    from ambient.remediation.dry_run import DryRunExecutor

    kube.api.stalled_images = {V2}
    await kube.release(V2)
    # The old pods still serve (2 of 2 ready), the new release will never roll out.
    stuck = "deployment shop/checkout exceeded its progress deadline (ProgressDeadlineExceeded"
    executed = await kube.executor.rollout_health(kube.target)
    dry = await DryRunExecutor(KubeClients(kube.kubeconfig, None)).rollout_health(kube.target)
    for health in (executed, dry):
        assert (health.available, health.ready_replicas, health.desired) == (False, 2, 2)
        assert health.detail.startswith(stuck), health.detail


async def test_the_stand_in_merges_only_the_lists_the_api_declares_a_merge_key_for(
    kube: Cluster,
) -> None:
    """Strategic merge patch as the API server applies it: a list merges by its declared
    patchMergeKey (containers and env by name, volumeMounts by mountPath, Service ports by
    port), any other list is replaced whole, and an item without the key is refused."""
    base = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    smp = {"content-type": "application/strategic-merge-patch+json"}
    container = {
        "name": "checkout",
        "env": [{"name": "B", "value": "2"}],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/b"}],
        "resources": {"claims": [{"name": "fpga"}]},
    }
    kube.deployment()["spec"]["template"]["spec"]["containers"][0].update(
        env=[{"name": "A", "value": "1"}],
        volumeMounts=[{"name": "cfg", "mountPath": "/etc/a"}],
        resources={"claims": [{"name": "gpu"}]},
    )
    deployment = f"{base}/apis/apps/v1/namespaces/shop/deployments/checkout"
    service = f"{base}/api/v1/namespaces/shop/services/checkout"
    async with http_client() as http:
        patched = await http.patch(
            deployment,
            json={"spec": {"template": {"spec": {"containers": [container]}}}},
            headers=smp,
        )
        ports = await http.patch(
            service, json={"spec": {"ports": [{"name": "http", "port": 81}]}}, headers=smp
        )
        keyless = await http.patch(
            service, json={"spec": {"ports": [{"name": "admin"}]}}, headers=smp
        )
    assert [r.status_code for r in (patched, ports, keyless)] == [200, 200, 422]
    [merged] = kube.deployment()["spec"]["template"]["spec"]["containers"]
    assert merged["image"] == V1
    assert merged["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert [m["mountPath"] for m in merged["volumeMounts"]] == ["/etc/a", "/etc/b"]
    assert merged["resources"] == {"claims": [{"name": "fpga"}]}  # no merge key: replaced
    assert [p["port"] for p in kube.api.services[("shop", "checkout")]["spec"]["ports"]] == [
        80,
        81,
    ]
    assert "does not contain declared merge key: port" in keyless.json()["message"]


async def test_a_full_rollback_retried_after_all_its_writes_says_what_it_did_not_that_all_was_fine(
    kube: Cluster,
) -> None:
    """The worker dies after the last write, before the activity completes: the retry's result
    (the audit row's only record of the step) names what the step changed, not 'everything is
    as at the first checkpoint'."""
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r6r"
    await kube.executor.apply(kube.step(rid, Rung.ISOLATE))
    kube.api.configmaps[("shop", "checkout-env")]["data"] = {"MODE": "slow"}
    full = kube.step(
        rid, Rung.FULL_ROLLBACK, to_revision=baseline.previous_revision, checkpoint=baseline
    )
    first = await kube.executor.apply(full)
    writes = len(kube.api.writes())
    again = await kube.executor.apply(full)
    assert first.applied and not first.already_applied
    assert again.applied and again.already_applied and len(kube.api.writes()) == writes
    assert again.detail == (
        "full rollback: already done by this step: deployment shop/checkout, "
        "configmap shop/checkout-env, service shop/checkout"
    )


async def test_a_refused_change_says_whether_the_step_had_changed_anything(kube: Cluster) -> None:
    """The activity frees the cluster's rate-limit slot of a step refused for good only when
    nothing was changed: a full rollback refused at its ConfigMap had already put back the
    release; refused at its first write, and on a retry that finds no stamp, it had not."""
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    kube.api.configmaps[("shop", "checkout-env")]["data"] = {"MODE": "slow"}
    full = kube.step(
        "remediation/r8",
        Rung.FULL_ROLLBACK,
        to_revision=baseline.previous_revision,
        checkpoint=baseline,
    )
    released = len(kube.api.writes())
    kube.api.forbidden = {"patch deployments"}
    with pytest.raises(KubeError) as first:
        await kube.executor.apply(full)
    assert first.value.changed is False and len(kube.api.writes()) == released
    kube.api.forbidden = {"patch configmaps"}
    with pytest.raises(KubeError) as second:
        await kube.executor.apply(full)
    assert [c.kind for c in kube.api.writes()[released:]] == ["deployments"]
    assert second.value.changed is True
    # The retry finds the release put back (stamped) and is refused again: still changed.
    with pytest.raises(KubeError) as retried:
        await kube.executor.apply(full)
    assert retried.value.changed is True


async def test_a_full_rollback_retried_after_removing_the_isolation_policy_says_it_did(
    kube: Cluster,
) -> None:
    """Isolated by a deny policy (no Service selects the workload), the full rollback's one
    write is the policy's removal. Retried after it (the worker died before the activity
    completed), the step said 'nothing to change', not applied: the audit row, the run's
    attempt and the hand-over read that rung 5 did nothing, and its rate-limit slot was freed."""
    del kube.api.services[("shop", "checkout")]
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r9"
    await kube.executor.apply(kube.step(rid, Rung.ISOLATE))
    full = kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline)
    first = await kube.executor.apply(full)
    writes = len(kube.api.writes())
    again = await kube.executor.apply(full)
    name = isolation_policy_name(rid)
    assert first.applied and first.patch is not None
    assert first.patch[f"networkpolicy/shop/{name}"] == {"delete": True}
    assert len(kube.api.writes()) == writes
    assert again.applied and again.already_applied and again.skipped_reason is None
    assert f"networkpolicy shop/{name}" in again.detail
    assert again.patch is not None and again.patch[f"networkpolicy/shop/{name}"] == {"delete": True}


async def test_a_full_rollback_dry_run_names_the_isolation_policy_the_real_one_removes(
    kube: Cluster,
) -> None:
    """Isolated by a deny policy, the real full rollback's writes are the Deployment naming
    the policy and the policy's removal; the dry run reported neither."""
    from ambient.remediation.dry_run import DryRunExecutor
    from ambient.remediation.ladder import REMOVED_POLICY_ANNOTATION

    del kube.api.services[("shop", "checkout")]
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r-dry-policy"
    await kube.executor.apply(kube.step(rid, Rung.ISOLATE))
    name = isolation_policy_name(rid)
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    before = len(kube.api.writes())
    planned = await dry.apply(
        kube.step(rid, Rung.FULL_ROLLBACK, mode="dry_run", checkpoint=baseline)
    )
    assert len(kube.api.writes()) == before
    real = await kube.executor.apply(kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline))
    assert planned.patch is not None and real.patch is not None
    assert planned.patch == real.patch
    assert planned.patch[f"networkpolicy/shop/{name}"] == {"delete": True}
    escaped = REMOVED_POLICY_ANNOTATION.replace("~", "~0").replace("/", "~1")
    deployment = planned.patch["deployment/shop/checkout"]
    assert _replaced(deployment, f"/metadata/annotations/{escaped}") == name
    assert f"NetworkPolicy {name}" in planned.detail


def _written(calls: list[ApiCall]) -> set[str]:
    """The objects the calls wrote, named as a step's patch names them (kind/namespace/name)."""
    singular = {"deployments": "deployment", "services": "service", "configmaps": "configmap"}
    singular["networkpolicies"] = "networkpolicy"
    parts = [c.path.strip("/").split("/") for c in calls]
    return {f"{singular[p[-2]]}/{p[p.index('namespaces') + 1]}/{p[-1]}" for p in parts}


async def test_the_dry_run_executor_lists_exactly_the_writes_the_kubernetes_executor_makes(
    kube: Cluster,
) -> None:
    """With the cluster readable, the default (dry-run) executor shows what the run would write:
    a ConfigMap or Service already as at the first checkpoint, or a count already reached, is
    not listed as a change."""
    from ambient.remediation.dry_run import DryRunExecutor

    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    rid = "remediation/r-dry-exact"
    await kube.executor.apply(kube.step(rid, Rung.ISOLATE))
    # Someone edits one ConfigMap during the incident; the other stays as it was.
    kube.api.configmaps[("shop", "checkout-env")]["data"] = {"MODE": "slow"}
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    full = kube.step(
        rid, Rung.FULL_ROLLBACK, to_revision=baseline.previous_revision, checkpoint=baseline
    )
    # Scale out to the count the Deployment already runs: the run skips it, writing nothing.
    scale = kube.step(rid, Rung.SCALE_OUT, replicas=2)
    before = len(kube.api.writes())
    planned = await dry.apply(full.model_copy(update={"mode": "dry_run"}))
    planned_scale = await dry.apply(scale.model_copy(update={"mode": "dry_run"}))
    assert len(kube.api.writes()) == before  # the dry run wrote nothing
    done = await kube.executor.apply(full)
    done_scale = await kube.executor.apply(scale)
    written = _written(kube.api.writes()[before:])
    assert written == {
        "deployment/shop/checkout",
        "configmap/shop/checkout-env",
        "service/shop/checkout",
    }
    assert planned.patch is not None and set(planned.patch) == written
    assert planned.patch == done.patch
    assert (planned_scale.patch, done_scale.patch) == (None, None)
    assert planned_scale.skipped_reason == done_scale.skipped_reason == "already at 2 replicas"


async def test_a_dry_run_of_an_isolation_another_run_made_applies_nothing_and_says_so(
    kube: Cluster,
) -> None:
    """The Services already select no pod (another remediation isolated them): the dry run has
    nothing to write, and says so as a skip, not as a change it applied."""
    from ambient.remediation.dry_run import DryRunExecutor

    assert (await kube.executor.apply(kube.step("remediation/r-iso-a", Rung.ISOLATE))).applied
    before = len(kube.api.writes())
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    planned = await dry.apply(kube.step("remediation/r-iso-b", Rung.ISOLATE, mode="dry_run"))
    assert len(kube.api.writes()) == before
    assert (planned.applied, planned.already_applied, planned.patch) == (False, False, None)
    assert planned.skipped_reason == "nothing to write, already so: service shop/checkout"


async def test_a_dry_run_of_a_change_its_step_already_made_says_it_applied_as_execute_does(
    kube: Cluster,
) -> None:
    """The Deployment carries the step's own stamp (its change was made, e.g. before a run was
    reset): the change planned in dry run before its approval is asked says it is made, as
    execute then does, not a skip the ladder would climb past unverified."""
    step = kube.step("remediation/r-made", Rung.RESTART, restarted_at="2026-11-22T14:05:00Z")
    made = await kube.executor.apply(step)
    planned = await kube.executor.apply(step.model_copy(update={"mode": "dry_run"}))
    assert len(kube.api.writes()) == 1
    assert (planned.applied, planned.already_applied, planned.skipped_reason) == (
        True,
        True,
        None,
    )
    assert made.patch is not None and planned.patch == without_version(made.patch)


async def test_a_dry_run_without_access_to_services_plans_the_configmaps_execute_restores(
    kube: Cluster,
) -> None:
    """RBAC refuses listing Services only: both checkpoints still record the ConfigMaps, so
    the dry run's rung 5 restores the one edited during the incident, as execute then does."""
    from ambient.remediation.dry_run import DryRunExecutor

    kube.api.forbidden = {"list services"}
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    planned_baseline = await dry.checkpoint(kube.target)
    baseline = await kube.executor.checkpoint(kube.target)
    assert planned_baseline.configmaps == baseline.configmaps
    assert sorted(baseline.configmaps) == ["checkout-env", "checkout-files"]
    assert "Service selectors not recorded" in planned_baseline.detail
    kube.api.configmaps[("shop", "checkout-env")]["data"] = {"MODE": "slow"}
    rid = "remediation/r-dry-rbac"
    planned = await dry.apply(
        kube.step(rid, Rung.FULL_ROLLBACK, mode="dry_run", checkpoint=planned_baseline)
    )
    done = await kube.executor.apply(kube.step(rid, Rung.FULL_ROLLBACK, checkpoint=baseline))
    assert planned.patch is not None and done.patch is not None
    assert "configmap/shop/checkout-env" in planned.patch
    assert set(planned.patch) == set(done.patch)


async def test_a_dry_run_verification_reads_the_deployment_alone_as_execute_does(
    kube: Cluster,
) -> None:
    """Rollout health is the Deployment's: refused ReplicaSets do not make it unobserved."""
    from ambient.remediation.dry_run import DryRunExecutor

    kube.api.forbidden = {"replicasets"}
    dry = DryRunExecutor(KubeClients(kube.kubeconfig, None))
    before = len(kube.api.calls)
    health = await dry.rollout_health(kube.target)
    assert [c.kind for c in kube.api.calls[before:]] == ["deployments"]
    assert health == await kube.executor.rollout_health(kube.target)
    assert health.observed and health.available


async def test_a_full_rollback_refused_after_some_writes_names_what_it_had_written(
    kube: Cluster,
) -> None:
    """Refused at its ConfigMap (403) after it had put back the release: the hand-over said
    only "rung 5 (full_rollback) could not be applied (… forbidden …)", and the person took
    it that nothing had changed while the Deployment ran the release before the incident."""
    await kube.release(V2)
    baseline = await kube.executor.checkpoint(kube.target)
    kube.api.configmaps[("shop", "checkout-env")]["data"] = {"MODE": "slow"}
    full = kube.step(
        "remediation/r8p",
        Rung.FULL_ROLLBACK,
        to_revision=baseline.previous_revision,
        checkpoint=baseline,
    )
    kube.api.forbidden = {"patch configmaps"}
    with pytest.raises(KubeError) as refused:
        await kube.executor.apply(full)
    assert [c.kind for c in kube.api.writes()][-1] == "deployments"
    assert str(refused.value).endswith(
        "; written by this step before it was refused: deployment/shop/checkout"
    ), str(refused.value)


async def test_a_deny_policy_during_a_rollout_selects_both_releases_pods(kube: Cluster) -> None:
    """Narrowed to the pod template's labels, the deny policy missed the pods of the release a
    rollout was still replacing (version=v1 where the template says v2): they kept taking
    traffic while the run counted the workload isolated."""
    del kube.api.services[("shop", "checkout")]
    await kube.release(V2)
    template = kube.deployment()["spec"]["template"]["metadata"]["labels"]
    template["version"] = "v2"
    sets = [rs for (ns, _), rs in kube.api.replicasets.items() if ns == "shop"]
    for rs in sets:
        current = rs["spec"]["template"]["spec"]["containers"][0]["image"] == V2
        rs["spec"]["template"]["metadata"]["labels"]["version"] = "v2" if current else "v1"
        rs["status"]["replicas"] = 1  # the old release's pods not all gone yet
    rid = "remediation/r7r"
    assert (await kube.executor.apply(kube.step(rid, Rung.ISOLATE))).applied
    policy = kube.api.networkpolicies[("shop", isolation_policy_name(rid))]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "checkout"}}


Gate = Callable[[Request, RequestResponseEndpoint], Awaitable[Response]]
TARGET = WorkloadRef(cluster_id="prod", namespace="shop", name="checkout")


@asynccontextmanager
async def _cluster(
    tmp_path: Path, gate: Gate | None = None, user: dict[str, Any] | None = None
) -> AsyncIterator[tuple[KubeApi, KubernetesExecutor]]:
    """A cluster with shop/checkout as kubeconfig context "prod" and its executor: behind a
    ``gate`` (what stands before the API server: its answer to each request), its user's
    credentials ``user``."""
    api = KubeApi()
    api.add_deployment("shop", "checkout", "registry/checkout:v1", replicas=2)
    app = api.app()
    if gate is not None:
        app.add_middleware(BaseHTTPMiddleware, dispatch=gate)
    async with serve(app) as base:
        config = kubeconfig({"prod": base})
        if user is not None:
            config["users"] = [{"name": "ops", "user": user}]
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        clients = KubeClients(path, None)
        try:
            yield api, KubernetesExecutor(clients)
        finally:
            await clients.aclose()


async def test_a_gateways_404_page_is_not_said_as_the_deployment_missing(tmp_path: Path) -> None:
    """A proxy or ingress before the API server answering its own 404 page: the checkpoint
    said "deployment shop/checkout not found", which ends a run as if the workload were
    gone, and the page was thrown away."""

    async def nginx(request: Request, call_next: RequestResponseEndpoint) -> Response:
        return Response(b"<html><h1>404 Not Found</h1>nginx</html>", 404, media_type="text/html")

    async with _cluster(tmp_path, nginx) as (_, executor):
        with pytest.raises(KubeError) as raised:
            await executor.checkpoint(TARGET)
    assert not isinstance(raised.value, KubeNotFoundError) and not raised.value.retryable
    said = str(raised.value)
    assert "not a Kubernetes API answer" in said and "nginx" in said, said


async def test_a_gateways_json_504_after_a_write_is_not_said_to_have_changed_nothing(
    tmp_path: Path,
) -> None:
    """A gateway before the API server answering a write it passed on with its own JSON
    (`{"message": "upstream request timeout"}`, no Kubernetes Status): lightkube reads it as
    an ApiError of code None, taken as status 0: "refused, changed nothing", and not tried
    again, though the restart was stored."""

    async def timing_out(request: Request, call_next: RequestResponseEndpoint) -> Response:
        answer = await call_next(request)
        if request.method != "PATCH":
            return answer
        return JSONResponse({"message": "upstream request timeout"}, 504)

    step = StepRequest(
        remediation_id="remediation/rgw",
        rung=Rung.RESTART,
        target=TARGET,
        mode="execute",
        key=step_key("remediation/rgw", Rung.RESTART),
        restarted_at="2026-11-22T17:00:00Z",
    )
    async with _cluster(tmp_path, timing_out) as (api, executor):
        with pytest.raises(KubeError) as raised:
            await executor.apply(step)
    assert len(api.writes("deployments")) == 1  # the restart is stored
    assert raised.value.retryable and raised.value.changed is not False, raised.value
    assert "upstream request timeout" in str(raised.value)


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_a_bare_error_answer_with_no_content_type_is_said_as_what_answered(
    tmp_path: Path, method: str
) -> None:
    """A proxy before the API server answering 502 with no body and no Content-Type: lightkube
    reads an error's Content-Type with [], and its KeyError went out as the failure: a run was
    handed over with "KeyError: 'Content-Type'". It is the gateway's answer: busy, retried."""

    async def bare(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method != method:
            return await call_next(request)
        return Response(status_code=502)

    step = StepRequest(
        remediation_id="remediation/bare",
        rung=Rung.RESTART,
        target=TARGET,
        mode="execute",
        key=step_key("remediation/bare", Rung.RESTART),
        restarted_at="2026-11-22T17:00:00Z",
    )
    async with _cluster(tmp_path, bare) as (_, executor):
        with pytest.raises(KubeError) as raised:
            await executor.apply(step)
    assert isinstance(raised.value, KubeUnavailableError) and raised.value.retryable
    assert "HTTP 502 Bad Gateway, not a Kubernetes API answer" in str(raised.value), raised.value


@pytest.mark.parametrize(
    ("api_version", "command"),
    [
        ("client.authentication.k8s.io/v1", "true"),  # lightkube implements v1beta1 at most
        ("client.authentication.k8s.io/v1beta1", "no-such-credential-helper"),
        ("client.authentication.k8s.io/v1beta1", "false"),  # exits 1
    ],
)
async def test_a_kubeconfig_credential_plugin_that_gives_no_token_is_said_as_the_credentials(
    tmp_path: Path, api_version: str, command: str
) -> None:
    """A kubeconfig user's exec plugin that gives no token: lightkube's ConfigError or the
    missing command's FileNotFoundError went out raw (the activity retried an unknown
    failure, a tool said "Error executing tool"). Now the credentials' error, naming it."""
    plugin = {"exec": {"apiVersion": api_version, "command": command}}
    async with _cluster(tmp_path, user=plugin) as (api, executor):
        with pytest.raises(KubeUnauthorizedError) as raised:
            await executor.checkpoint(TARGET)
    assert "credential plugin gave no token" in str(raised.value), raised.value
    assert api.writes() == []


async def test_a_504_for_a_stored_write_is_not_said_to_have_changed_nothing(kube: Cluster) -> None:
    """The API server answers 504 Timeout ("request did not complete within requested
    timeout") for a write it stored (the stand-in's AnswerLost). The step said it changed
    nothing (``changed`` False, as for a 4xx): the slot was given back and an abort read
    "before its change" although the Deployment was restarted. Now: it may have written."""
    lost: list[str] = []

    def lose_the_answer(call: ApiCall) -> None:
        if not lost:
            lost.append(call.path)
            raise AnswerLost

    kube.api.on_write = lose_the_answer
    restart = kube.step("remediation/r504", Rung.RESTART, restarted_at="2026-11-22T17:00:00Z")
    with pytest.raises(KubeUnavailableError) as raised:
        await kube.executor.apply(restart)
    assert len(kube.api.writes("deployments")) == 1  # the restart is stored
    assert raised.value.changed is not False, raised.value


async def test_a_last_try_answered_504_after_storing_the_restart_keeps_its_slot(
    kube: Cluster, deps: WorkerDeps
) -> None:
    """The activity's last try (attempt 8 of 8): the API server stores the restart and
    answers 504 Timeout. The activity gave the step's rate-limit slot back and told the run,
    in the failure's details, that nothing was written: the run handed over saying no change
    was made while the Deployment was restarted, and the cluster's rate limit no longer
    counted it. Now the slot is kept and the run told it may have written (None)."""
    deps.settings.remediation_executor = "kubernetes"
    activities = RemediationActivities(
        deps.db, deps.settings, None, {"kubernetes": kube.executor, "dry_run": kube.executor}
    )
    step = kube.step("remediation/r504b", Rung.RESTART, restarted_at="2026-11-22T17:00:00Z")
    async with deps.db.writing() as session:
        await ActionLedger(session).reserve(
            step.key, kube.target.cluster_id, "checkout", 1, datetime.now(UTC)
        )

    def lose_the_answer(call: ApiCall) -> None:
        raise AnswerLost

    kube.api.on_write = lose_the_answer
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, attempt=8, retry_policy=RetryPolicy(maximum_attempts=8)
    )
    with pytest.raises(ApplicationError) as raised:
        await env.run(activities.apply_remediation_step, step)
    assert len(kube.api.writes("deployments")) == 1  # restarted
    async with deps.db.session() as session:
        kept = await ActionLedger(session).reserved(step.key)
    details = tuple(raised.value.details)
    assert (kept is not None, details[:1]) == (True, (None,)), (kept, details)


async def test_list_workloads_does_not_call_a_rollout_past_its_deadline_healthy(
    kube: Cluster,
) -> None:
    """A release whose new pods never become ready under RollingUpdate (maxUnavailable 0):
    the old ReplicaSet keeps every replica ready, and the controller reports Progressing
    False, ProgressDeadlineExceeded (`kubectl rollout status` fails). list_workloads, the
    tool a person or the agent asks "is checkout healthy?", said healthy: readyReplicas >=
    spec.replicas was all it looked at. It judges by the ladder's rollout verdict now."""
    kube.api.stalled_images = {V2}
    await kube.release(V2)
    client = await _client(kube.executor._clients, kube.target.cluster_id)
    [checkout] = [w for w in await list_workloads(client, "shop") if w.name == "checkout"]
    status = kube.deployment()["status"]
    assert status["conditions"][-1]["reason"] == "ProgressDeadlineExceeded"
    assert checkout.images == [V2]
    assert not checkout.healthy, checkout
    assert "exceeded its progress deadline" in checkout.health, checkout
    # Put back to a release that rolls out: healthy again, and said so.
    kube.api.stalled_images = set()
    await kube.release(V1)
    [fine] = [w for w in await list_workloads(client, "shop") if w.name == "checkout"]
    assert fine.healthy and "successfully rolled out" in fine.health, fine


def test_rollout_health_of_a_paused_deployment_mid_rollout_says_it_is_paused() -> None:
    """What a real API server returns for a Deployment someone paused mid-rollout (`kubectl
    rollout pause` during a bad release, a common first response) and scaled 3 -> 5 (allowed
    on a paused Deployment; the controller scales both ReplicaSets proportionally): all 5
    replicas available, 2 of them of the new template, Progressing Unknown / DeploymentPaused.
    The verdict said it waited for "2 of 5 new replicas have been updated", which never
    happens while it is paused: a verification never resolved, however healthy the metric,
    and the ladder climbed on to isolating the workload. Now it is paused, and available."""
    deployment = {
        "metadata": {"namespace": "shop", "name": "checkout", "generation": 7},
        "spec": {"replicas": 5, "paused": True, "template": {}},
        "status": {
            "observedGeneration": 7,
            "replicas": 5,
            "updatedReplicas": 2,
            "readyReplicas": 5,
            "availableReplicas": 5,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {
                    "type": "Progressing",
                    "status": "Unknown",
                    "reason": "DeploymentPaused",
                    "message": "Deployment is paused",
                },
            ],
        },
    }
    health = rollout_health(deployment)
    assert "paused" in health.detail, health
    assert (
        health.detail
        == "deployment shop/checkout is paused mid-rollout (2 of 5 updated): 5/5 available"
    )
    assert health.available, health
    deployment["status"]["availableReplicas"] = 4  # one pod lost: not all serve
    health = rollout_health(deployment)
    assert not health.available and health.detail == (
        "deployment shop/checkout is paused: 4 of 5 available"
    ), health
