"""The Kubernetes stand-in refuses what an API server refuses, so a bug of ours that sends
such a write fails a test instead of passing against a laxer server: a rename, a negative
replica count, a changed selector, a template its selector does not match; its Conflict and
AlreadyExists name the object as the API server does; RBAC on the scale subresource is its
own rule."""

from __future__ import annotations

import httpx2

from tests.standins.kube_api import KubeApi
from tests.support.servers import serve

PATH = "/apis/apps/v1/namespaces/shop/deployments"
MERGE = {"content-type": "application/merge-patch+json"}


async def test_writes_an_api_server_refuses_are_refused_and_store_nothing() -> None:
    api = KubeApi()
    api.add_deployment("shop", "checkout", "registry/checkout:1.0")
    before = dict(api.deployments[("shop", "checkout")])
    async with serve(api.app()) as base, httpx2.AsyncClient(base_url=base) as http:
        renamed = await http.patch(
            f"{PATH}/checkout", json={"metadata": {"name": "cart"}}, headers=MERGE
        )
        assert renamed.status_code == 400, renamed.text
        assert "does not match the name on the URL (checkout)" in renamed.json()["message"]
        refused = {
            "spec.replicas": {"spec": {"replicas": -1}},
            "spec.selector": {
                "spec": {
                    "selector": {"matchLabels": {"app": "checkout", "tier": "web"}},
                    "template": {"metadata": {"labels": {"tier": "web"}}},
                }
            },
            "spec.template.metadata.labels": {
                "spec": {"template": {"metadata": {"labels": {"app": "cart"}}}}
            },
        }
        for field, patch in refused.items():
            answer = await http.patch(f"{PATH}/checkout", json=patch, headers=MERGE)
            assert answer.status_code == 422, (field, answer.text)
            status = answer.json()
            assert status["reason"] == "Invalid" and status["details"]["kind"] == "Deployment"
            assert [c["field"] for c in status["details"]["causes"]] == [field]
            assert status["message"].startswith('Deployment.apps "checkout" is invalid: ')
        scaled = await http.patch(
            f"{PATH}/checkout/scale", json={"spec": {"replicas": -2}}, headers=MERGE
        )
        assert scaled.status_code == 422, scaled.text
        assert api.writes() == [] and api.deployments[("shop", "checkout")] == before

        stale = {"metadata": {"resourceVersion": "0"}, "spec": {"replicas": 3}}
        conflict = await http.patch(f"{PATH}/checkout", json=stale, headers=MERGE)
        assert conflict.status_code == 409
        assert conflict.json()["details"] == {
            "name": "checkout",
            "group": "apps",
            "kind": "deployments",
        }
        assert 'on deployments.apps "checkout"' in conflict.json()["message"]
        again = await http.post(PATH, json=api.deployments[("shop", "checkout")])
        assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
        assert again.json()["message"] == 'deployments.apps "checkout" already exists'

        # RBAC: patching deployments is no right to their scale, and the other way round.
        api.forbidden = {"patch deployments/scale"}
        scale = await http.patch(
            f"{PATH}/checkout/scale", json={"spec": {"replicas": 3}}, headers=MERGE
        )
        assert scale.status_code == 403, scale.text
        assert 'resource "deployments/scale" in API group "apps"' in scale.json()["message"]
        api.forbidden = {"patch deployments"}
        scale = await http.patch(
            f"{PATH}/checkout/scale", json={"spec": {"replicas": 3}}, headers=MERGE
        )
        assert (
            scale.status_code == 200
            and api.deployments[("shop", "checkout")]["spec"]["replicas"] == 3
        )
