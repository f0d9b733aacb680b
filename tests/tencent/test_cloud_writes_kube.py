"""apply_yaml, scale_workload and restart_workload through the MCP tools, against the
stateful Kubernetes stand-in reached with a TKE kubeconfig from the Tencent API stand-in."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from lightkube import AsyncClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ambient.clients import kube as kube_client
from ambient.cloud.errors import CloudOpsInputError, CloudOpsRefusedError
from ambient.cloud.workloads import WorkloadSpec
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.audit import AuditRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from tests.standins.kube_api import KINDS, KubeApi, _status, _validated, merge_patch
from tests.standins.tencent_api import TencentApi
from tests.support.servers import serve
from tests.support.tencent import ops_state, standin_tencent
from tests.tencent.test_cloud_tools import call, cli_env, client
from tests.tencent.test_kube import kubeconfig

APPLY = "application/apply-patch+yaml"


def refusal(plural: str, body: dict[str, Any]) -> str | None:
    """The API server's validation for what these tests send (a subset, by kind)."""
    name = (body.get("metadata") or {}).get("name") or ""
    if len(name) > 253:
        return f'metadata.name: Invalid value: "{name}": must be no more than 253 characters'
    if plural == "deployments":
        spec = body.get("spec") or {}
        if not (spec.get("selector") or {}).get("matchLabels"):
            return "spec.selector: Required value"
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers or not all(c.get("image") for c in containers):
            return "spec.template.spec.containers[0].image: Required value"
    if plural == "configmaps":
        for key, value in (body.get("data") or {}).items():
            if not isinstance(value, str):
                return f"data.{key}: Invalid value: must be a string"
    return None


class ApplyingKubeApi(KubeApi):
    """The stand-in plus server-side apply (PATCH application/apply-patch+yaml): creates a
    missing object (in a namespace that exists), merges into an existing one, honours
    dryRun=All and RBAC (``forbidden``), validates first; and Namespaces (read and applied)."""

    def app(self) -> Starlette:
        app = super().app()
        route = Route("/api/v1/namespaces/{name}", self._namespace, methods=["GET", "PATCH"])
        app.router.routes.insert(0, route)
        return app

    async def _namespace(self, request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "GET" and name not in self.namespaces:
            await self._log(request, 404)
            details = {"name": name, "kind": "namespaces"}
            return _status(404, "NotFound", f'namespaces "{name}" not found', details)
        body = json.loads(await request.body()) if request.method == "PATCH" else None
        call = await self._log(request, 200 if name in self.namespaces else 201, body)
        if body is not None and not call.dry_run:
            self.namespaces.add(name)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        namespace["metadata"]["resourceVersion"] = "1"
        return JSONResponse(namespace, status_code=call.status)

    async def _create(self, plural: str, ns: str, request: Request) -> Response:
        # Validated first, as the API server validates a create (dry run or not).
        body = json.loads(await request.body())
        problem, name = refusal(plural, body), body["metadata"]["name"]
        if problem is not None:
            await self._log(request, 422, body)
            # StatusError of field.ErrorList: each cause names its field (NewInvalid).
            field, _, said = problem.partition(": ")
            cause = {"reason": "FieldValueInvalid", "message": said, "field": field}
            details = {"name": name, "kind": plural, "causes": [cause]}
            message = f'{KINDS[plural][0]} "{name}" is invalid: {problem}'
            return _status(422, "Invalid", message, details)
        # A proxy's page in place of the API server's answer there (``paged_in``).
        if ns in getattr(self, "paged_in", ()):
            await self._log(request, 502, body)
            return Response(b"<html>502 Bad Gateway</html>", 502, media_type="text/html")
        # A ValidatingAdmissionPolicy denying the namespace (``denied_in``), after validation:
        # 422 Invalid as the API server words it, no causes.
        if (policy := getattr(self, "denied_in", {}).get(ns)) is not None:
            await self._log(request, 422, body)
            message = (
                f"{plural} \"{name}\" is forbidden: ValidatingAdmissionPolicy '{policy}' with "
                f"binding '{policy}-binding' denied request: no workloads in {ns}"
            )
            return _status(422, "Invalid", message)
        return await super()._create(plural, ns, request)

    def _item(self, plural: str) -> Callable[[Request], Any]:
        inner = super()._item(plural)

        async def handle(request: Request) -> Response:
            kind = request.headers.get("content-type", "")
            if request.method == "PATCH" and kind.startswith(APPLY):
                return await self._server_side_apply(plural, request)
            response: Response = await inner(request)
            return response

        return handle

    async def _server_side_apply(self, plural: str, request: Request) -> Response:
        key = (request.path_params["ns"], request.path_params["name"])
        if self.refuses(request, plural):
            return await self._forbid(request, plural)
        body = json.loads(await request.body())
        if not request.query_params.get("fieldManager"):
            # As a real API server: an apply names its field manager (its fields' owner).
            await self._log(request, 400, body)
            return _status(
                400,
                "BadRequest",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
            )
        if key[0] not in self.namespaces:
            await self._log(request, 404, body)
            return _status(
                404,
                "NotFound",
                f'namespaces "{key[0]}" not found',
                {"name": key[0], "kind": "namespaces"},
            )
        problem = refusal(plural, body)
        if problem is not None:
            await self._log(request, 422, body)
            return _status(422, "Invalid", f'{KINDS[plural][0]} "{key[1]}" is invalid: {problem}')
        store = self.store(plural)
        if key not in store:
            call = await self._log(request, 201, body)
            created = self._new(plural, *key, body)
            if not call.dry_run:
                store[key] = created
            return JSONResponse(created, status_code=201)
        call = await self._log(request, 200, body)
        current = store[key]
        changed = merge_patch(copy.deepcopy(current), body)
        # A resourceVersion or uid in the applied document is a precondition, as on a write.
        if (refused := self._precondition(plural, current, body)) is not None:
            return refused
        if (invalid := _validated(plural, key[1], changed, current)) is not None:
            return invalid
        if call.dry_run:
            return JSONResponse(changed)
        self._store(plural, key, current, changed)
        return JSONResponse(store[key])


@pytest_asyncio.fixture
async def standins(
    deps: WorkerDeps,
) -> AsyncIterator[tuple[ApplyingKubeApi, TencentApi, AppState]]:
    kube = ApplyingKubeApi()
    kube.add_deployment("shop", "checkout", "registry/checkout:1.0", replicas=2)
    async with deps.db.session() as session:
        users = UserRepository(session)
        for name, permission in (("ops", "execute"), ("viewer", "dry_run"), ("guest", "none")):
            await users.create(UserCreate(name=name, rollback_permission=permission))  # type: ignore[arg-type]
        await session.commit()
    async with serve(kube.app()) as kube_base:
        cloud = TencentApi(
            kubeconfigs={
                "cls-abcd1234": kubeconfig(kube_base),
                "cls-shanghai": kubeconfig(kube_base),
            },
            cluster_regions={"cls-shanghai": "ap-shanghai"},
        )
        async with serve(cloud.app()) as base:
            tc = standin_tencent(base)
            state = ops_state(deps, tc)
            try:
                yield kube, cloud, state
            finally:
                await state.close_clusters()


@pytest.fixture
def cluster(
    standins: tuple[ApplyingKubeApi, TencentApi, AppState],
) -> tuple[ApplyingKubeApi, AppState]:
    kube, _, state = standins
    return kube, state


def _cli_env(state: AppState, deps: WorkerDeps) -> dict[str, str]:
    """The environment `ambient cloud ...` reads: the stand-in API's and the test database."""
    return cli_env(state, AMBIENT_DATABASE_URL=deps.settings.resolved_database_url, COLUMNS="300")


CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: checkout-settings
  namespace: shop
data:
  TIMEOUT: "30"
"""
NEW_IMAGE = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels: {app: checkout}
    spec:
      containers:
      - name: checkout
        image: registry/checkout:1.1
"""
BROKEN = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
  namespace: shop
spec:
  selector:
    matchLabels: {app: worker}
  template:
    metadata:
      labels: {app: worker}
    spec:
      containers:
      - name: worker
"""
WORKLOAD = {"cluster_id": "cls-abcd1234", "namespace": "shop", "name": "checkout"}


async def test_ck01_apply_previews_a_diff_then_applies_each_document_once(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    documents = f"{CONFIG}---{NEW_IMAGE}"
    async with client(state, "ops") as c:
        failed, dry = await call(
            c, "apply_yaml", apply={"cluster_id": "cls-abcd1234", "documents": documents}
        )
        assert not failed, dry
        assert kube.writes() == []  # the preview is server-side dry runs only
        _, done = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-abcd1234", "documents": documents},
            mode="execute",
        )
        _, again = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-abcd1234", "documents": documents},
            mode="execute",
        )
    assert [(d["kind"], d["change"]) for d in dry["documents"]] == [
        ("ConfigMap", "create"),
        ("Deployment", "update"),
    ]
    assert "-      - image: registry/checkout:1.0" in dry["documents"][1]["diff"]
    assert "+      - image: registry/checkout:1.1" in dry["documents"][1]["diff"]
    assert [d["applied"] for d in done["documents"]] == [True, True]
    assert [(w.method, w.kind) for w in kube.writes()] == [
        ("PATCH", "configmaps"),
        ("PATCH", "deployments"),
    ]
    assert kube.configmaps[("shop", "checkout-settings")]["data"] == {"TIMEOUT": "30"}
    image = kube.deployments[("shop", "checkout")]["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "registry/checkout:1.1"
    # The same YAML again: every document is unchanged and nothing more is written.
    assert [d["change"] for d in again["documents"]] == ["unchanged", "unchanged"]
    assert len(kube.writes()) == 2


async def test_ck02_one_invalid_document_applies_nothing_and_is_named(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    documents = f"{CONFIG}---{BROKEN}---{NEW_IMAGE}"
    unknown = "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n"
    no_selector = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n"
    async with client(state, "ops") as c:
        failed, message = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-abcd1234", "documents": documents},
            mode="execute",
        )
        unnamed, unnamed_message = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-abcd1234", "documents": f"{CONFIG}---\nkind: Service\n"},
            mode="execute",
        )
        unknown_failed, unknown_message = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-abcd1234", "documents": f"{CONFIG}---\n{unknown}"},
            mode="execute",
        )
        local, local_message = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-abcd1234", "documents": f"{CONFIG}---\n{no_selector}"},
            mode="execute",
        )
    # Refused by the cluster's own validation (server-side dry run of every document first).
    assert failed and "document 2 (Deployment worker) was refused by the cluster" in message
    assert "image: Required value" in message and "nothing was applied" in message
    # Refused before anything is sent: the object does not fit its kind's schema.
    assert local and "document 2 (Deployment d)" in local_message
    assert "selector" in local_message
    assert unnamed and "document 2" in unnamed_message and "apiVersion" in unnamed_message
    custom = (
        "document 2 is of kind Gadget (apiVersion example.com/v1), which is not one this "
        "product can apply: custom resources are not supported"
    )
    assert unknown_failed and custom in unknown_message
    assert kube.writes() == []
    assert ("shop", "checkout-settings") not in kube.configmaps
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    # Each call its one row: refused by the cluster, or before anything was sent (invalid).
    outcomes = [
        (r.detail["outcome"], r.detail["kind"]) for r in rows if r.action == "cloud.apply_yaml"
    ]
    assert sorted(outcomes) == [("failed", "invalid")] * 3 + [("failed", "invalid_document")]


async def test_ck02_yaml_refused_before_anything_is_sent_is_audited_once_as_invalid(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """YAML refused before a request went to the cluster (not YAML, a document without its
    kind, none at all) left no audit row, where a create's bad input or a scale to 0 leaves
    one (kind invalid): an admin reading the audit never saw those calls."""
    kube, state = cluster
    cases = [
        "kind: ConfigMap\nmetadata: {name: [unclosed\n",
        f"{CONFIG}---\nkind: Service\n",
        "---\n",
    ]
    async with client(state, "ops") as c:
        for documents in cases:
            failed, message = await call(
                c,
                "apply_yaml",
                apply={"cluster_id": "cls-abcd1234", "documents": documents},
                mode="execute",
            )
            assert failed and "documents" in message, message
    assert kube.calls == []
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.apply_yaml", limit=10)
    said = [(r.actor, r.detail["outcome"], r.detail["kind"], r.detail["mode"]) for r in rows]
    assert said == [("ops", "failed", "invalid", "execute")] * len(cases)


async def test_ck03_scale_and_restart_preview_then_change_once_per_key(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    keyed = {**WORKLOAD, "idempotency_key": "ticket-42"}
    async with client(state, "ops") as c:
        _, dry = await call(c, "scale_workload", workload=WORKLOAD, replicas=5)
        assert kube.writes() == [] and dry["applied"] is False and dry["patch"]
        _, scaled = await call(c, "scale_workload", workload=keyed, replicas=5, mode="execute")
        _, rescaled = await call(c, "scale_workload", workload=keyed, replicas=5, mode="execute")
        _, restarted = await call(c, "restart_workload", workload=keyed, mode="execute")
        _, again = await call(c, "restart_workload", workload=keyed, mode="execute")
    assert scaled["applied"] is True and rescaled["already_applied"] is True
    assert restarted["applied"] is True and again["already_applied"] is True
    deployment = kube.deployments[("shop", "checkout")]
    assert deployment["spec"]["replicas"] == 5
    template = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    assert "kubectl.kubernetes.io/restartedAt" in template
    assert len(kube.writes("deployments")) == 2  # one scale, one restart


def _kubeconfig_fetches(cloud: TencentApi) -> int:
    return sum(action == "DescribeClusterKubeconfig" for _, action, _ in cloud.calls)


async def test_ck03_requests_to_one_cluster_share_its_client_and_kubeconfig(
    standins: tuple[ApplyingKubeApi, TencentApi, AppState],
) -> None:
    """Each request built its own cluster client: TKE's kubeconfig fetched again (a round trip
    to the Tencent API) and a new TLS context before every change asked for."""
    kube, cloud, state = standins
    async with client(state, "ops") as c:
        _, restarted = await call(c, "restart_workload", workload=WORKLOAD, mode="execute")
        _, scaled = await call(c, "scale_workload", workload=WORKLOAD, replicas=3, mode="execute")
    async with client(state, "ops") as c:  # another session of the same process
        _, preview = await call(c, "restart_workload", workload=WORKLOAD)
    assert restarted["applied"] and scaled["applied"] and preview["applied"] is False
    assert len(kube.writes("deployments")) == 2
    assert _kubeconfig_fetches(cloud) == 1


async def test_ck03_credentials_the_cluster_refuses_are_read_again_within_the_request(
    standins: tuple[ApplyingKubeApi, TencentApi, AppState],
) -> None:
    """The kept client is dropped when the API server refuses its credentials (rotated, or
    the cluster re-created), as the worker's is, and the request asks TKE again: a rotation
    TKE knows of is taken at once, as when every request read the kubeconfig. Credentials
    still refused after that are said so."""
    kube, cloud, state = standins
    rotated = cloud.kubeconfigs["cls-abcd1234"].replace("test-token", "rotated")
    async with client(state, "ops") as c:
        await call(c, "restart_workload", workload=WORKLOAD)
        kube.require_token("rotated")
        cloud.kubeconfigs["cls-abcd1234"] = rotated
        failed, _ = await call(c, "restart_workload", workload=WORKLOAD)
        stale, scaled = await call(
            c, "scale_workload", workload=WORKLOAD, replicas=3, mode="execute"
        )
        kube.require_token("again")  # and once more, refused while applying YAML
        cloud.kubeconfigs["cls-abcd1234"] = rotated.replace("rotated", "again")
        refused, _ = await call(
            c, "apply_yaml", apply={"cluster_id": "cls-abcd1234", "documents": CONFIG}
        )
        assert _kubeconfig_fetches(cloud) == 3  # the first, and one a rotation
        kube.require_token("never")  # what TKE hands out is refused too
        denied, message = await call(c, "restart_workload", workload=WORKLOAD)
    assert not failed and not stale and not refused
    assert scaled["applied"] is True, scaled
    assert kube.deployments[("shop", "checkout")]["spec"]["replicas"] == 3
    assert denied and "refused the kubeconfig's credentials" in message, message
    assert _kubeconfig_fetches(cloud) == 4  # read again once, not in a loop


async def test_ck04_workload_changes_check_permission_and_name_missing_workloads(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    async with client(state, "guest") as c:
        refused, message = await call(c, "restart_workload", workload=WORKLOAD)
    async with client(state, "viewer") as c:
        _, preview = await call(c, "restart_workload", workload=WORKLOAD)
        refused_exec, exec_message = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-abcd1234", "documents": CONFIG},
            mode="execute",
        )
    async with client(state, "ops") as c:
        missing, missing_message = await call(
            c, "scale_workload", workload={**WORKLOAD, "name": "nope"}, replicas=2, mode="execute"
        )
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert refused and "rollback_permission 'none'" in message
    assert preview["applied"] is False and "dry run" in preview["detail"]
    assert refused_exec and "'dry_run'" in exec_message
    assert missing and "not found" in missing_message
    assert kube.writes() == []
    for name in ("apply_yaml", "scale_workload", "restart_workload"):
        hints = tools[name].annotations
        assert hints is not None and hints.destructive_hint is True
        assert hints.read_only_hint is False and hints.open_world_hint is True


async def test_ck04_a_statefulset_or_daemonset_asked_for_is_named_as_not_a_deployment(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """A restart or scale of a StatefulSet was told "deployment shop/db not found", as if
    there were no such workload: it is said to be a StatefulSet (or DaemonSet), which
    ambient-ops does not restart or scale; a name that is nothing stays "not found"."""
    kube, state = cluster
    kube.add_workload("statefulsets", "shop", "db", {"app": "db"}, "registry/db:1")
    kube.add_workload("daemonsets", "shop", "agent", {"app": "agent"}, "registry/agent:1")
    asks = {"restart_workload": {}, "scale_workload": {"replicas": 2}}
    async with client(state, "ops") as c:
        said = {
            (tool, name): await call(
                c, tool, workload={**WORKLOAD, "name": name}, mode="execute", **more
            )
            for tool, more in asks.items()
            for name in ("db", "agent", "nope")
        }
    for tool in asks:
        for name, kind in (("db", "StatefulSet"), ("agent", "DaemonSet")):
            failed, message = said[tool, name]
            assert failed and f"shop/{name} is a {kind}, not a Deployment" in message, message
            assert "ambient-ops restarts and scales only Deployments" in message, message
        failed, message = said[tool, "nope"]
        assert failed and "deployment shop/nope not found" in message, message
    assert kube.writes() == []


async def test_ck05_applying_yaml_that_changes_nothing_is_audited_as_a_no_op(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    apply = {"cluster_id": "cls-abcd1234", "documents": CONFIG}
    async with client(state, "ops") as c:
        _, first = await call(c, "apply_yaml", apply=apply, mode="execute")
        version = kube.configmaps[("shop", "checkout-settings")]["metadata"]["resourceVersion"]
        _, again = await call(c, "apply_yaml", apply=apply, mode="execute")
        # The same object twice in one YAML: the second apply finds the first's work done.
        _, twice = await call(
            c,
            "apply_yaml",
            apply={**apply, "documents": f"{NEW_IMAGE}---{NEW_IMAGE}"},
            mode="execute",
        )
    assert [d["applied"] for d in first["documents"]] == [True]
    assert [d["applied"] for d in again["documents"]] == [False]
    assert kube.configmaps[("shop", "checkout-settings")]["metadata"]["resourceVersion"] == (
        version
    )
    assert "no-op" in again["summary"]
    assert [d["change"] for d in twice["documents"]] == ["update", "update"]
    assert [d["applied"] for d in twice["documents"]] == [True, False]
    assert [w.kind for w in kube.writes()] == ["configmaps", "deployments", "deployments"]
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    outcomes = [r.detail["outcome"] for r in rows if r.action == "cloud.apply_yaml"]
    assert outcomes == ["executed", "noop", "executed"]


async def test_ck06_credentials_the_cluster_refuses_are_not_blamed_on_the_yaml(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    kube.require_token("rotated")  # the cluster's token was rotated; TKE still hands the old
    async with client(state, "ops") as c:
        failed, message = await call(
            c, "apply_yaml", apply={"cluster_id": "cls-abcd1234", "documents": CONFIG}
        )
    assert failed
    assert "refused the kubeconfig's credentials" in message, message
    assert "was refused by the cluster" not in message and "nothing was applied" in message
    assert kube.writes() == []


async def test_ck07_a_cluster_that_cannot_answer_now_is_not_blamed_on_the_yaml(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster

    async def busy(plural: str, request: Request) -> Response:
        await kube._log(request, 500)
        return _status(500, "InternalError", "etcdserver: request timed out")

    kube._server_side_apply = busy  # type: ignore[method-assign]
    async with client(state, "ops") as c:
        failed, message = await call(
            c, "apply_yaml", apply={"cluster_id": "cls-abcd1234", "documents": CONFIG}
        )
    assert failed and "etcdserver: request timed out" in message, message
    assert "was refused by the cluster" not in message and "try again" in message
    assert kube.writes() == []


async def test_ck08_a_write_rbac_refuses_is_blamed_on_the_credentials_not_the_yaml(
    standins: tuple[ApplyingKubeApi, TencentApi, AppState],
) -> None:
    kube, cloud, state = standins
    kube.forbidden = {"patch configmaps", "patch deployments"}  # may read, may not write
    async with client(state, "ops") as c:
        failed, message = await call(
            c, "apply_yaml", apply={"cluster_id": "cls-abcd1234", "documents": CONFIG}
        )
        scale_failed, scale_message = await call(
            c, "scale_workload", workload=WORKLOAD, replicas=3, mode="execute"
        )
    assert failed and "was refused by the cluster" not in message, message
    assert "document 1 (ConfigMap checkout-settings)" in message
    assert "lack permission" in message and 'cannot patch resource "configmaps"' in message
    assert 'in the namespace "shop"' in message and "nothing was applied" in message
    assert scale_failed and "lack permission" in scale_message, scale_message
    assert 'cannot patch resource "deployments"' in scale_message
    assert kube.writes() == []
    # Each request read TKE's kubeconfig again once when refused (the cluster re-created:
    # another user), and dropped the client refused again: the next request reads it.
    assert _kubeconfig_fetches(cloud) == 2 + 2


async def test_ck08_a_write_a_webhook_denies_is_said_as_the_clusters_rule_and_sent_once(
    standins: tuple[ApplyingKubeApi, TencentApi, AppState],
) -> None:
    """A Kyverno or Gatekeeper policy's 403 was said as missing RBAC ("grant it to that
    user"), and the refused PATCH was sent again on a client made anew."""
    kube, cloud, state = standins
    policy = "policy max-replicas: replicas must be at most 4"
    kube.webhook_denials = {"patch deployments": policy}
    async with client(state, "ops") as c:
        failed, message = await call(
            c, "scale_workload", workload=WORKLOAD, replicas=5, mode="execute"
        )
    assert failed and policy in message and "refused by the cluster" in message, message
    assert "lack permission" not in message and "RBAC" not in message
    assert "was not changed" in message
    assert [c.status for c in kube.calls if c.method == "PATCH"] == [403]
    assert _kubeconfig_fetches(cloud) == 1


def _failing_writes(kube: ApplyingKubeApi, fail: Callable[[], Response | None]) -> None:
    """After the first real (not dry-run) apply, ``fail()`` runs; its answer, if any, is what
    every later real apply gets."""
    applied = kube._server_side_apply
    failure: list[Response] = []

    async def apply(plural: str, request: Request) -> Response:
        if request.query_params.get("dryRun") == "All":
            return await applied(plural, request)
        if failure:
            await kube._log(request, failure[0].status_code)
            return failure[0]
        response = await applied(plural, request)
        answer = fail()
        failure.extend([answer] if answer is not None else [])
        return response

    kube._server_side_apply = apply  # type: ignore[method-assign]


async def test_ck09_a_failed_write_says_what_the_preview_would_and_what_was_applied(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    documents = f"{CONFIG}---{NEW_IMAGE}"
    apply = {"cluster_id": "cls-abcd1234", "documents": documents}
    _failing_writes(kube, lambda: _status(503, "ServiceUnavailable", "etcd leader changed"))
    async with client(state, "ops") as c:
        busy, busy_message = await call(c, "apply_yaml", apply=apply, mode="execute")
    assert busy and "etcd leader changed" in busy_message, busy_message
    assert "document 2 (Deployment checkout)" in busy_message and "try again" in busy_message
    assert "applied before it: 1" in busy_message, busy_message
    assert [w.kind for w in kube.writes()] == ["configmaps"]

    def rotate() -> Response | None:
        kube.require_token("rotated")  # the token is rotated between the two writes
        return None

    kube.configmaps.pop(("shop", "checkout-settings"))
    kube.calls.clear()
    kube._server_side_apply = ApplyingKubeApi._server_side_apply.__get__(kube)  # type: ignore[method-assign]
    _failing_writes(kube, rotate)
    async with client(state, "ops") as c:
        refused, refused_message = await call(c, "apply_yaml", apply=apply, mode="execute")
    assert refused and "refused the kubeconfig's credentials" in refused_message, refused_message
    assert "document 2 (Deployment checkout)" in refused_message
    assert "applied before it: 1" in refused_message, refused_message


KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://10.0.0.1"}
current-context: prod
"""
NOT_SERVED = (
    "document 2 is of kind Config (apiVersion v1), which is not a Kubernetes resource "
    "the cluster serves"
)


CERTIFICATE = """apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: shop-tls, namespace: shop}
spec: {secretName: shop-tls, dnsNames: [shop.example.com], issuerRef: {name: letsencrypt}}
"""
CUSTOM = (
    "document 1 is of kind Certificate (apiVersion cert-manager.io/v1), which is not one this "
    "product can apply: custom resources are not supported; nothing was applied"
)

OLD_OR_MISTYPED = (
    "apiVersion {version} has no kind {kind} this product knows (an old or mistyped version of "
    "a built-in API group: current ones are listed by `kubectl api-resources`)"
)


async def test_ck10_yaml_that_cannot_be_applied_is_refused_naming_what_to_fix(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    long_name = "a" * 254
    cron = (
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly, namespace: shop}\n"
        "spec: {schedule: '0 3 * * *', jobTemplate: {spec: {template: {spec: "
        "{restartPolicy: Never, containers: [{name: c, image: busybox}]}}}}}\n"
    )
    cases = {
        "---\n": "no documents",
        "---\n# nothing here\n---\n": "no documents",
        CONFIG.replace("checkout-settings", long_name): "253",
        CONFIG.replace("checkout-settings", "checkout/status"): "metadata.name",
        CONFIG.replace("namespace: shop", "namespace: Shop_Prod"): "metadata.namespace",
        CONFIG.replace("namespace: shop", "namespace: ghost"): 'namespace "ghost" does not exist',
        cron: "does not serve batch/v1 CronJob",
        # A kubeconfig pasted in (with a name or, as kubectl writes one, without): lightkube's
        # "Cannot find resource kind 'Config' in module lightkube.resources.core_v1" before.
        f"{CONFIG}---\n{KUBECONFIG}": NOT_SERVED,
        f"{KUBECONFIG}metadata: {{name: admin}}\n": NOT_SERVED.replace("2", "1"),
        # A CRD's kind: lightkube's "Cannot find resource Certificate of group
        # cert-manager.io/v1. If using a CRD, ensure a generic resource is defined." before.
        CERTIFICATE: CUSTOM,
        # A built-in group's old or mistyped version is no custom resource (group without a
        # dot, or ending in .k8s.io: lightkube's own test of an internal one).
        cron.replace("batch/v1", "batch/v1beta1"): OLD_OR_MISTYPED.format(
            version="batch/v1beta1", kind="CronJob"
        ),
        CONFIG.replace("apiVersion: v1\nkind: ConfigMap", "apiVersion: app/v1\nkind: Deployment"): (
            OLD_OR_MISTYPED.format(version="app/v1", kind="Deployment")
        ),
        # A misspelt field, and one at the wrong depth: lightkube's typed object dropped them,
        # and the Deployment was applied (and reported) without them.
        NEW_IMAGE.replace("replicas: 2", "replicaz: 2"): (
            "document 1 (Deployment checkout): unknown field spec.replicaz: not of apps/v1 "
            "Deployment as Kubernetes 1.37 defines it (check its spelling and indentation)"
        ),
        NEW_IMAGE.replace(
            "    spec:\n      containers:", "    spec:\n      image: x:2\n      containers:"
        ): ("unknown field spec.template.spec.image: not of apps/v1 Deployment"),
    }
    answers = {}
    async with client(state, "ops") as c:
        for documents, _ in cases.items():
            answers[documents] = await call(
                c,
                "apply_yaml",
                apply={"cluster_id": "cls-abcd1234", "documents": documents},
                mode="execute",
            )
    for documents, expected in cases.items():
        failed, message = answers[documents]
        assert failed and expected in message, (documents[:60], message)
        assert "was refused by the cluster" not in message, message
    assert kube.writes() == []
    # Names that are no path segment are refused before anything is sent.
    assert not [c for c in kube.calls if "checkout" in c.path and "status" in c.path]
    assert not [c for c in kube.calls if long_name in c.path or "Shop_Prod" in c.path]


async def test_ck11_scaling_back_within_the_minute_is_a_new_change_not_a_retry(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = state.workload_ops
    up = await ops.scale_workload("ops", spec, 5, "execute")
    down = await ops.scale_workload("ops", spec, 3, "execute")
    # 5 again, asked for within the minute: a new request, not the first one retried.
    again = await ops.scale_workload("ops", spec, 5, "execute")
    retried = await ops.scale_workload("ops", spec, 5, "execute")
    assert [up.applied, down.applied, again.applied] == [True, True, True]
    assert again.already_applied is False, again.detail
    assert kube.deployments[("shop", "checkout")]["spec"]["replicas"] == 5
    # The same request straight after changes nothing more.
    assert retried.already_applied or not retried.applied
    assert len(kube.writes("deployments")) == 3


def _clock_at(monkeypatch: pytest.MonkeyPatch, moments: Iterator[datetime]) -> None:
    """The workloads module's clock reads ``moments``, one a call."""
    import ambient.cloud.workloads as workloads

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return next(moments)

    monkeypatch.setattr(workloads, "datetime", Clock)


async def test_ck11_a_restart_retried_across_a_minute_restarts_once_a_later_one_again(
    cluster: tuple[ApplyingKubeApi, AppState], monkeypatch: Any
) -> None:
    """The derived key was the current minute: a retry after a timeout that crossed a minute
    restarted the Deployment a second time. A retry is recognised by our own restart of it
    within RESTART_RETRY_WINDOW; a request after the window restarts it again."""
    moments = iter(
        datetime(2026, 11, 27, 12, m, s, tzinfo=UTC) for m, s in ((0, 50), (1, 10), (9, 0))
    )

    _clock_at(monkeypatch, moments)
    kube, _state = cluster
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = _state.workload_ops
    first = await ops.restart_workload("ops", spec, "execute")
    retried = await ops.restart_workload("ops", spec, "execute")
    assert len(kube.writes("deployments")) == 1
    later = await ops.restart_workload("ops", spec, "execute")
    assert first.applied and retried.already_applied, retried.detail
    assert later.applied and not later.already_applied, later.detail
    assert retried.idempotency_key == first.idempotency_key != later.idempotency_key
    assert len(kube.writes("deployments")) == 2


async def test_ck11_a_restart_asked_again_at_once_says_why_nothing_was_done_and_how_to_restart(
    cluster: tuple[ApplyingKubeApi, AppState], monkeypatch: Any
) -> None:
    """A deliberate second restart within the window, or under the same key, answered
    already_applied with "deployment shop/checkout was already restarted by asked:restart_
    workload:<hash>": nothing said why it was not restarted again, nor
    how to restart it again on purpose."""
    moments = iter(datetime(2026, 11, 27, 12, 0, s, tzinfo=UTC) for s in range(10, 60, 10))

    _clock_at(monkeypatch, moments)
    kube, state = cluster
    spec = WorkloadSpec.model_validate(WORKLOAD)
    keyed = spec.model_copy(update={"idempotency_key": "friday"})
    ops = state.workload_ops
    first = await ops.restart_workload("ops", spec, "execute")
    again = await ops.restart_workload("ops", spec, "execute")
    by_key = await ops.restart_workload("ops", keyed, "execute")
    same_key = await ops.restart_workload("ops", keyed, "execute")
    assert first.applied and again.already_applied and not by_key.already_applied
    assert same_key.already_applied
    assert again.detail == (
        "Not restarted again: we restarted shop/checkout less than 5 minutes ago, so this "
        "request counts as a retry of that restart. To restart it again now, ask again with "
        "a new idempotency_key."
    )
    assert same_key.detail == (
        "Not restarted again: this idempotency_key already restarted shop/checkout, so this "
        "request counts as a retry of that restart. To restart it again now, ask again with "
        "a new idempotency_key."
    )
    assert len(kube.writes("deployments")) == 2


async def test_ck11_a_restart_retried_while_the_first_is_in_flight_restarts_once(
    cluster: tuple[ApplyingKubeApi, AppState], monkeypatch: Any
) -> None:
    """A client retries after a timeout while its slow first call is still running: both read
    the Deployment before either writes, at different moments; one restart is made."""
    moments = iter(datetime(2026, 11, 27, 12, 0, s, tzinfo=UTC) for s in (50, 59))

    _clock_at(monkeypatch, moments)
    kube, state = cluster
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = state.workload_ops
    first, retried = await asyncio.gather(
        ops.restart_workload("ops", spec, "execute"),
        ops.restart_workload("ops", spec, "execute"),
    )
    assert first.applied and retried.applied
    assert [first.already_applied, retried.already_applied].count(True) == 1
    assert len(kube.writes("deployments")) == 1


async def test_ck11_a_refused_scale_is_audited_with_the_count_asked_for(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """The refused row of a scale said who and where but not the replicas asked for (every
    other outcome's row and a refused node pool scale's row say it)."""
    kube, state = cluster
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = state.workload_ops
    with pytest.raises(CloudOpsRefusedError):
        await ops.scale_workload("viewer", spec, 7, "execute")
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    [refused] = [r.detail for r in rows if r.action == "cloud.scale_workload"]
    assert refused["outcome"] == "refused" and refused["replicas"] == 7, refused
    assert kube.writes() == []


async def test_ck11_a_scale_to_no_replicas_is_refused_and_audited(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """A scale to 0 (the CLI's whole number takes it) was refused before any audit row: the
    one call of the operation that left none."""
    kube, state = cluster
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = state.workload_ops
    with pytest.raises(CloudOpsInputError, match="replicas: must be at least 1"):
        await ops.scale_workload("ops", spec, 0, "execute")
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    [row] = [r for r in rows if r.action == "cloud.scale_workload"]
    assert row.subject == "kube:cls-abcd1234/shop/deployment/checkout"
    assert {k: row.detail[k] for k in ("outcome", "kind", "replicas")} == {
        "outcome": "failed",
        "kind": "invalid",
        "replicas": 0,
    }
    assert kube.writes() == []


async def test_ck11_a_scale_to_no_replicas_by_a_viewer_is_refused_not_judged(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """A viewer executing a scale to 0 heard "replicas: must be at least 1", audited as
    failed/invalid, instead of that they may not execute it."""
    kube, state = cluster
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = state.workload_ops
    with pytest.raises(CloudOpsRefusedError, match="'dry_run'"):
        await ops.scale_workload("viewer", spec, 0, "execute")
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    [row] = [r for r in rows if r.action == "cloud.scale_workload"]
    assert (row.detail["outcome"], row.detail["replicas"]) == ("refused", 0), row.detail
    assert kube.calls == []


async def test_ck11_a_scale_past_the_most_replicas_is_refused_at_every_door(
    cluster: tuple[ApplyingKubeApi, AppState], deps: WorkerDeps
) -> None:
    """MCP and the API refused more than 1,000 replicas by their schema, but the service did
    not: `ambient cloud scale shop checkout 10000 --execute` scaled the Deployment to 10,000."""
    from typer.testing import CliRunner

    from ambient.cli import app

    kube, state = cluster
    env = _cli_env(state, deps)
    command = ["cloud", "scale", "shop", "checkout", "10000", "--cluster", "cls-abcd1234"]
    done = await asyncio.to_thread(
        CliRunner().invoke, app, [*command, "--user", "ops", "--execute"], env=env
    )
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = state.workload_ops
    with pytest.raises(CloudOpsInputError, match="replicas: must be at most 1000"):
        await ops.scale_workload("ops", spec, 1001, "dry_run")
    assert done.exit_code != 0 and "replicas: must be at most 1000" in done.output, done.output
    assert kube.writes() == []
    assert kube.deployments[("shop", "checkout")]["spec"]["replicas"] == 2
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    outcomes = [(r.detail["outcome"], r.detail["replicas"]) for r in rows if "scale" in r.action]
    assert outcomes == [("failed", 10000), ("failed", 1001)], outcomes


async def test_ck11_a_restart_of_a_deployment_scaled_to_zero_says_no_pod_runs_and_writes_nothing(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """Restarting a Deployment at 0 replicas answered "restart deployment shop/idle" with
    applied true: it wrote a new template (a new revision) and no pod was restarted."""
    kube, state = cluster
    kube.add_deployment("shop", "idle", "registry/idle:1", replicas=0)
    idle = {**WORKLOAD, "name": "idle"}
    async with client(state, "ops") as c:
        _, preview = await call(c, "restart_workload", workload=idle)
        failed, done = await call(c, "restart_workload", workload=idle, mode="execute")
    assert not failed, done
    for answer in (preview, done):
        assert answer["applied"] is False and answer["patch"] is None, answer
        assert "0 replicas" in answer["detail"] and "no pod" in answer["detail"], answer
    assert kube.writes() == []
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    outcomes = [r.detail["outcome"] for r in rows if r.action == "cloud.restart_workload"]
    assert outcomes == ["dry_run", "noop"], outcomes


async def test_ck11_a_restart_of_a_deployment_its_autoscaler_holds_at_zero_names_it(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """A person restarting a Deployment its autoscaler holds at 0 heard "scale it up to start
    its pods", which the autoscaler would undo: the ladder's own skip already named it."""
    kube, state = cluster
    kube.add_deployment("shop", "idle", "registry/idle:1", replicas=0)
    kube.add_autoscaler("shop", "idle-hpa", "idle", minimum=0, maximum=4)
    async with client(state, "ops") as c:
        failed, done = await call(
            c, "restart_workload", workload={**WORKLOAD, "name": "idle"}, mode="execute"
        )
    assert not failed and done["applied"] is False, done
    assert done["detail"] == (
        "deployment shop/idle is scaled to 0 replicas by HorizontalPodAutoscaler idle-hpa "
        "(0-4 replicas) (or what drives it, such as KEDA): no pod runs, so there is nothing to "
        "restart (change the autoscaler's bounds or triggers if it should run)"
    ), done
    assert kube.writes() == []


@pytest.mark.parametrize(
    ("minimum", "scaled_object", "held_by"),
    [
        (1, None, None),
        (0, None, "HorizontalPodAutoscaler idle-hpa (0-4 replicas)"),
        (1, "idle", "HorizontalPodAutoscaler idle-hpa of ScaledObject idle (1-4 replicas)"),
    ],
)
async def test_ck11_a_scale_of_a_deployment_at_zero_is_refused_only_if_its_autoscaler_holds_it(
    cluster: tuple[ApplyingKubeApi, AppState],
    minimum: int,
    scaled_object: str | None,
    held_by: str | None,
) -> None:
    """A person scaling up a Deployment at 0 under a plain HPA (minReplicas 1) heard "raise
    the autoscaler's bounds": Kubernetes does not scale a target at 0 then (ScalingDisabled),
    so the count is theirs to set. KEDA's HPA, or one of minReplicas 0, does hold it at 0."""
    kube, state = cluster
    kube.add_deployment("shop", "idle", "registry/idle:1", replicas=0)
    kube.add_autoscaler("shop", "idle-hpa", "idle", minimum, 4, scaled_object=scaled_object)
    spec = WorkloadSpec.model_validate({**WORKLOAD, "name": "idle"})
    ops = state.workload_ops
    done = await ops.scale_workload("ops", spec, 2, "execute")
    replicas = kube.deployments[("shop", "idle")]["spec"]["replicas"]
    if held_by is None:
        assert done.applied, done.detail
        assert done.detail == "scale deployment shop/idle from 0 to 2 replicas", done.detail
        assert (replicas, len(kube.writes("deployments"))) == (2, 1)
    else:
        assert done.applied is False and done.detail == (
            f"deployment shop/idle is scaled by {held_by}: its controller would undo a count "
            "set on the Deployment; raise the autoscaler's bounds instead"
        ), done.detail
        assert (replicas, kube.writes()) == (0, [])


async def test_ck11_one_key_given_to_two_counts_scales_to_each(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """A caller's key named any scale of the Deployment: scaling to 3 under the key an earlier
    scale to 5 used answered already_applied with a patch of 3 replicas, and left 5."""
    kube, state = cluster
    keyed = WorkloadSpec.model_validate({**WORKLOAD, "idempotency_key": "incident-7"})
    ops = state.workload_ops
    up = await ops.scale_workload("ops", keyed, 5, "execute")
    down = await ops.scale_workload("ops", keyed, 3, "execute")
    retried = await ops.scale_workload("ops", keyed, 3, "execute")
    assert up.applied and down.applied and not down.already_applied, down.detail
    assert retried.already_applied, retried.detail
    assert kube.deployments[("shop", "checkout")]["spec"]["replicas"] == 3
    assert len(kube.writes("deployments")) == 2


async def test_ck12_a_caller_who_may_not_apply_is_refused_before_the_yaml_is_read(
    cluster: tuple[ApplyingKubeApi, AppState], deps: WorkerDeps
) -> None:
    """Whoever may not make the change hears that, not what is wrong with the YAML they sent
    (the server does not parse it for them), and the refusal is audited."""
    kube, state = cluster
    unparsable = "kind: ConfigMap\nmetadata: {name: [unclosed\n"
    async with client(state, "guest") as c:
        refused, message = await call(
            c, "apply_yaml", apply={"cluster_id": "cls-abcd1234", "documents": unparsable}
        )
    async with client(state, "viewer") as c:
        refused_exec, exec_message = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-abcd1234", "documents": BROKEN + "---\n- not a mapping\n"},
            mode="execute",
        )
    assert refused and "rollback_permission 'none'" in message and "YAML" not in message
    assert refused_exec and "'dry_run'" in exec_message and "document" not in exec_message
    assert kube.calls == []
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.apply_yaml", limit=10)
    assert sorted((r.actor, r.detail["outcome"], r.detail["mode"]) for r in rows) == [
        ("guest", "refused", "dry_run"),
        ("viewer", "refused", "execute"),
    ]


async def _viewers_secret_update(state: AppState, probe: str) -> str:
    """The viewer's dry run of ``probe`` on cls-abcd1234, an update of the live Secret: its diff."""
    async with client(state, "viewer") as c:
        failed, dry = await call(
            c, "apply_yaml", apply={"cluster_id": "cls-abcd1234", "documents": probe}
        )
    assert not failed, dry
    assert dry["documents"][0]["change"] == "update"
    diff: str = dry["documents"][0]["diff"]
    return diff


async def test_ck12_a_secrets_preview_names_its_changed_keys_never_their_values(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """A dry run is anyone's with dry_run permission: its diff of a Secret must not read the
    cluster's values out to them (as kubectl diff, values are masked; what changes is shown)."""
    kube, state = cluster
    live = {"password": "bGl2ZS1kYi1wYXNzd29yZA==", "user": "YWRtaW4="}  # live-db-password
    kube.secrets[("shop", "db")] = kube._new("secrets", "shop", "db", {"data": live})
    probe = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\n"
    probe += "data: {user: Z3Vlc3Q=}\n"
    diff = await _viewers_secret_update(state, probe)
    for value in (*live.values(), "Z3Vlc3Q="):
        assert value not in diff
    assert "-  user: '*** (before)'" in diff and "+  user: '*** (after)'" in diff
    assert "password" in diff and "-  password" not in diff  # unchanged: context only
    assert kube.writes() == []


async def test_ck12_a_secrets_preview_masks_its_last_applied_configuration(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """kubectl apply keeps the whole Secret, values included, in the annotation
    kubectl.kubernetes.io/last-applied-configuration: a preview setting it to "x" printed the
    live one on its "-" line to a dry_run member. Masked as the values are."""
    kube, state = cluster
    last = '{"data":{"password":"bGl2ZS1kYi1wYXNzd29yZA=="},"kind":"Secret"}'
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": last}
    body = {"metadata": {"annotations": annotations}, "data": {"user": "YWRtaW4="}}
    kube.secrets[("shop", "db")] = kube._new("secrets", "shop", "db", body)
    probe = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\n"
    probe += "  annotations: {kubectl.kubernetes.io/last-applied-configuration: x}\n"
    diff = await _viewers_secret_update(state, probe)
    assert "bGl2ZS1kYi1wYXNzd29yZA==" not in diff and "YWRtaW4=" not in diff, diff
    assert "last-applied-configuration: '*** (before)'" in diff, diff
    assert "last-applied-configuration: '*** (after)'" in diff, diff
    assert kube.writes() == []


async def test_ck13_a_cluster_in_another_region_is_changed_where_it_lives(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """list_workloads takes the TKE cluster's region: the writes take it the same way (the
    kubeconfig is asked for in that region), not always the configured one."""
    kube, state = cluster
    there = {**WORKLOAD, "cluster_id": "cls-shanghai", "region": "ap-shanghai"}
    async with client(state, "ops") as c:
        _, listed = await call(
            c, "list_workloads", cluster_id="cls-shanghai", namespace="shop", region="ap-shanghai"
        )
        failed, why = await call(
            c, "scale_workload", workload={**there, "region": None}, replicas=4, mode="execute"
        )
        _, scaled = await call(c, "scale_workload", workload=there, replicas=4, mode="execute")
        _, restarted = await call(c, "restart_workload", workload=there, mode="execute")
        _, applied = await call(
            c,
            "apply_yaml",
            apply={"cluster_id": "cls-shanghai", "documents": CONFIG, "region": "ap-shanghai"},
            mode="execute",
        )
    assert [w["name"] for w in listed["workloads"]] == ["checkout"]
    # Without its region the cluster is not found: the answer says where it was looked for
    # and what to give, not only "something the request names does not exist".
    assert failed and "TKE has no cluster cls-shanghai in ap-guangzhou" in why, why
    assert "give the cluster's region" in why and "ResourceNotFound.ClusterNotFound" in why
    # Said once: it read "... in ap-guangzhou (...: ... (looked for in region ap-guangzhou; if
    # it is in another region, give that region) ...): check the id, and give the cluster's region".
    assert why.count("ap-guangzhou") == 1 and why.count("give") == 1, why
    assert scaled["applied"] is True and restarted["applied"] is True
    assert applied["documents"][0]["applied"] is True
    assert kube.deployments[("shop", "checkout")]["spec"]["replicas"] == 4


@pytest.mark.parametrize(("page", "said"), [("Bad Gateway", ": Bad Gateway"), ("", ": no body")])
async def test_ck13_an_api_server_down_behind_a_gateway_is_said_as_unavailable(
    cluster: tuple[ApplyingKubeApi, AppState], monkeypatch: Any, page: str, said: str
) -> None:
    """A load balancer in front of a dead API server answers 502 with its own page, not a
    Kubernetes Status: apply_yaml's preview raised lightkube's bare HTTP error past every
    refusal it words (only ApiError was caught). It says what answered, and to try again. With
    no body and no Content-Type, lightkube's KeyError went out ("KeyError: 'Content-Type'")."""
    from starlette.responses import PlainTextResponse

    kube, state = cluster

    async def bad_gateway(plural: str, request: Request) -> Response:
        if not page:
            return Response(status_code=502)  # no Content-Type
        return PlainTextResponse(page, status_code=502)

    monkeypatch.setattr(kube, "_server_side_apply", bad_gateway)
    async with client(state, "ops") as c:
        refused, message = await call(
            c, "apply_yaml", apply={"cluster_id": "cls-abcd1234", "documents": CONFIG}
        )
    assert refused, message
    assert "document 1 (ConfigMap" in message, message
    assert f"HTTP 502 Bad Gateway, not a Kubernetes API answer{said}" in message, message
    assert "try again" in message and kube.writes() == []


async def test_ck14_a_yaml_creating_a_namespace_previews_and_applies_what_goes_into_it(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    # The server cannot dry-run an object into a namespace that does not exist yet: one an
    # earlier document creates is made first when applied, as kubectl apply does.
    kube, state = cluster
    documents = "apiVersion: v1\nkind: Namespace\nmetadata: {name: payments}\n---\n"
    documents += CONFIG.replace("namespace: shop", "namespace: payments")
    apply = {"cluster_id": "cls-abcd1234", "documents": documents}
    async with client(state, "ops") as c:
        failed, dry = await call(c, "apply_yaml", apply=apply)
        assert not failed, dry
        assert kube.writes() == [] and "payments" not in kube.namespaces
        failed, done = await call(c, "apply_yaml", apply=apply, mode="execute")
    assert not failed, done
    assert [d["change"] for d in dry["documents"]] == ["create", "create"]
    assert "TIMEOUT: '30'" in dry["documents"][1]["diff"]
    assert [d["applied"] for d in done["documents"]] == [True, True]
    assert "payments" in kube.namespaces
    assert kube.configmaps[("payments", "checkout-settings")]["data"] == {"TIMEOUT": "30"}


async def test_ck14_an_invalid_document_bound_for_a_namespace_the_yaml_creates_applies_nothing(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """A document the cluster refuses, going into a namespace an earlier document creates,
    could not be dry-run there (no such namespace yet): the apply made the namespace, then met
    the refusal: one invalid document, something applied. It is checked by a dry-run create
    where a namespace exists, and refused before anything is written."""
    kube, state = cluster
    documents = "apiVersion: v1\nkind: Namespace\nmetadata: {name: payments}\n---\n"
    documents += BROKEN.replace("namespace: shop", "namespace: payments")
    apply = {"cluster_id": "cls-abcd1234", "documents": documents}
    async with client(state, "ops") as c:
        failed, message = await call(c, "apply_yaml", apply=apply, mode="execute")
    assert failed and "document 2 (Deployment worker) was refused by the cluster" in message
    assert "image: Required value" in message and "nothing was applied" in message, message
    assert kube.writes() == [] and "payments" not in kube.namespaces


async def test_ck15_one_yaml_applied_to_two_namespaces_is_two_requests_not_a_retry(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    # The namespace given for documents that name none is part of what is applied: the same
    # YAML into staging and into prod must not read in the audit as one request retried.
    kube, state = cluster
    kube.namespaces.add("prod")
    documents = CONFIG.replace("  namespace: shop\n", "")
    keys = []
    async with client(state, "ops") as c:
        for namespace in ("shop", "prod", "shop"):
            apply = {"cluster_id": "cls-abcd1234", "documents": documents, "namespace": namespace}
            failed, dry = await call(c, "apply_yaml", apply=apply)
            assert not failed, dry
            assert dry["documents"][0]["namespace"] == namespace
            keys.append(dry["idempotency_key"])
    assert keys[0] != keys[1] and keys[0] == keys[2]


async def test_ck16_the_cli_restarts_again_under_a_new_idempotency_key(
    cluster: tuple[ApplyingKubeApi, AppState], deps: WorkerDeps
) -> None:
    """A restart asked again at once answers "ask again with a new idempotency_key", but
    `ambient cloud restart` and `ambient cloud scale` took no such key."""
    from typer.testing import CliRunner

    from ambient.cli import app

    kube, state = cluster
    env = _cli_env(state, deps)
    where = ["shop", "checkout", "--cluster", "cls-abcd1234", "--user", "ops", "--execute"]

    async def cli(verb: str, *args: str) -> str:
        command = ["cloud", verb, *args, *where[2:]]
        done = await asyncio.to_thread(CliRunner().invoke, app, command, env=env)
        assert done.exit_code == 0, done.output
        return " ".join(done.output.split())

    first = await cli("restart", *where[:2], "--idempotency-key", "friday")
    again = await cli("restart", *where[:2], "--idempotency-key", "friday")
    anew = await cli("restart", *where[:2], "--idempotency-key", "friday-2")
    restarts = len(kube.writes("deployments"))
    await cli("scale", *where[:2], "5", "--idempotency-key", "incident-7")
    await cli("scale", *where[:2], "3", "--idempotency-key", "incident-7")
    assert "friday" in first and "Not restarted again" in again and "friday-2" in anew
    assert restarts == 2, kube.writes("deployments")
    assert kube.deployments[("shop", "checkout")]["spec"]["replicas"] == 3


async def test_ck09_a_write_whose_answer_is_lost_says_it_may_have_been_applied(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """The connection drops after the cluster applied document 2 and before its answer came:
    that is no refusal of a request never sent. It said "document 2 (Deployment checkout): peer
    closed connection ...; documents applied before it: 1 ...; try again", document 2 applied
    unsaid (and a read timeout's text is empty: "(Deployment checkout): ; ...")."""
    kube, state = cluster
    apply = {"cluster_id": "cls-abcd1234", "documents": f"{CONFIG}---{NEW_IMAGE}"}

    def cut() -> Response:
        # A Content-Length the body does not reach: the server closes the connection mid-answer.
        return Response(b"{", media_type="application/json", headers={"Content-Length": "99"})

    applied = kube._server_side_apply

    async def apply_then_cut(plural: str, request: Request) -> Response:
        answer = await applied(plural, request)
        return cut() if plural == "deployments" and "dryRun" not in request.query_params else answer

    kube._server_side_apply = apply_then_cut  # type: ignore[method-assign]
    async with client(state, "ops") as c:
        failed, message = await call(c, "apply_yaml", apply=apply, mode="execute")
    assert failed and "document 2 (Deployment checkout)" in message, message
    assert "RemoteProtocolError" in message and "its answer was lost" in message, message
    assert "it may have been applied" in message and "applied before it: 1" in message
    assert [w.kind for w in kube.writes()] == ["configmaps", "deployments"]


async def test_ck09_a_write_whose_answer_times_out_says_it_may_have_been_applied_and_audits_so(
    cluster: tuple[ApplyingKubeApi, AppState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster applies document 2 and its answer never comes: the read timeout's text is
    empty, said "(ReadTimeout: )"; and the audit row's kind was "unavailable", as for a request
    never sent. The kubeconfig's client waits 5 s for an answer here (lightkube's 10 by default)."""
    kube, state = cluster
    monkeypatch.setattr(
        kube_client,
        "AsyncClient",
        functools.partial(AsyncClient, timeout=httpx2.Timeout(10.0, read=5.0)),
    )
    apply = {"cluster_id": "cls-abcd1234", "documents": f"{CONFIG}---{NEW_IMAGE}"}
    applied, answered = kube._server_side_apply, asyncio.Event()

    async def apply_then_hang(plural: str, request: Request) -> Response:
        answer = await applied(plural, request)
        if plural == "deployments" and "dryRun" not in request.query_params:
            await answered.wait()  # until the client has given up
        return answer

    kube._server_side_apply = apply_then_hang  # type: ignore[method-assign]
    try:
        async with client(state, "ops") as c:
            failed, message = await call(c, "apply_yaml", apply=apply, mode="execute")
    finally:
        answered.set()
    assert failed and "document 2 (Deployment checkout): its answer was lost (ReadTimeout)" in (
        message
    ), message
    assert "it may have been applied" in message and "applied before it: 1" in message
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    (row,) = [r.detail for r in rows if r.action == "cloud.apply_yaml"]
    assert (row["outcome"], row["kind"]) == ("failed", "answer_lost"), row


async def test_ck10_a_change_the_api_server_finds_invalid_names_the_field_and_writes_nothing(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    """A Deployment's selector is immutable and its replicas not negative: the API server's
    422 reaches the user as the field to mend, in preview and apply alike."""
    kube, state = cluster
    reselected = NEW_IMAGE.replace("{app: checkout}", "{app: checkout, tier: web}")
    cases = {
        reselected: "spec.selector",
        NEW_IMAGE.replace("replicas: 2", "replicas: -1"): "spec.replicas",
        NEW_IMAGE.replace("labels: {app: checkout}", "labels: {app: shop}"): (
            "spec.template.metadata.labels"
        ),
    }
    async with client(state, "ops") as c:
        for documents, field in cases.items():
            for mode in ("dry_run", "execute"):
                failed, message = await call(
                    c,
                    "apply_yaml",
                    apply={"cluster_id": "cls-abcd1234", "documents": documents},
                    mode=mode,
                )
                assert failed and field in message, (mode, message)
    assert kube.writes() == []
