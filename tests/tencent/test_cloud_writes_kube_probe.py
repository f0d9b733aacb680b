"""apply_yaml's check of a document bound for a namespace the YAML creates: a dry-run create
in ``default`` stops the apply only on the API server's own validation (422 with its fields'
causes), never on what ``default`` alone answers (a policy, RBAC, a name taken there, no
``default`` at all)."""

from __future__ import annotations

import pytest

from ambient.wiring import AppState
from tests.tencent.test_cloud_tools import call, client
from tests.tencent.test_cloud_writes_kube import (
    BROKEN,
    CONFIG,
    ApplyingKubeApi,
    cluster,
    standins,
)

__all__ = ["cluster", "standins"]  # the fixtures, shared

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: payments}\n---\n"
INTO_PAYMENTS = NAMESPACE + CONFIG.replace("namespace: shop", "namespace: payments")


ANSWERED = {"policy": 422, "page": 502, "rbac": 403, "taken": 409, "no_default": 404}


def _only_default_answers(kube: ApplyingKubeApi, how: str) -> None:
    if how == "policy":  # a ValidatingAdmissionPolicy: no workloads in default
        kube.denied_in = {"default": "no-workloads-in-default"}  # type: ignore[attr-defined]
    elif how == "page":  # not the API server's answer (httpx2.HTTPStatusError)
        kube.paged_in = {"default"}  # type: ignore[attr-defined]
    elif how == "rbac":
        kube.forbidden = {"create configmaps"}
    elif how == "taken":
        kube.configmaps[("default", "checkout-settings")] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "checkout-settings", "namespace": "default", "uid": "u-1"},
            "data": {},
        }
    else:
        kube.namespaces.discard("default")


@pytest.mark.parametrize("how", ["policy", "page", "rbac", "taken", "no_default"])
async def test_a_valid_document_refused_only_in_default_is_applied_to_its_namespace(
    cluster: tuple[ApplyingKubeApi, AppState], how: str
) -> None:
    """A ValidatingAdmissionPolicy answering 422 for ``default`` alone refused a valid document
    bound for payments ('was refused by the cluster ... nothing was applied'); RBAC, the name
    taken in default, no default or a proxy's page there leave it to its apply."""
    kube, state = cluster
    _only_default_answers(kube, how)
    apply = {"cluster_id": "cls-abcd1234", "documents": INTO_PAYMENTS}
    async with client(state, "ops") as c:
        failed, done = await call(c, "apply_yaml", apply=apply, mode="execute")
    assert not failed, done
    probes = [c for c in kube.calls if c.method == "POST" and "/namespaces/default/" in c.path]
    assert len(probes) == 1 and probes[0].status == ANSWERED[how], kube.calls
    assert "payments" in kube.namespaces
    assert kube.configmaps[("payments", "checkout-settings")]["data"] == {"TIMEOUT": "30"}


async def test_a_document_the_schema_refuses_says_where_it_was_checked(
    cluster: tuple[ApplyingKubeApi, AppState],
) -> None:
    kube, state = cluster
    documents = NAMESPACE + BROKEN.replace("namespace: shop", "namespace: payments")
    apply = {"cluster_id": "cls-abcd1234", "documents": documents}
    async with client(state, "ops") as c:
        failed, message = await call(c, "apply_yaml", apply=apply, mode="execute")
    assert failed and "checked by a dry run in namespace default" in message, message
    assert kube.writes() == [] and "payments" not in kube.namespaces
