"""A small stateful Kubernetes API server stand-in for lightkube, served on loopback.

Deployments, their ReplicaSets (with `deployment.kubernetes.io/revision`) and pods. A
minimal deployment controller makes a new ReplicaSet revision whenever a deployment's pod
template changes, as kube-controller-manager would; scale patches change replicas only.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REVISION = "deployment.kubernetes.io/revision"


def _status(code: int, reason: str, message: str) -> Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }
    return JSONResponse(body, status_code=code)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@dataclass
class KubeApi:
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    replicasets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    version: int = 1
    requests: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/apis/apps/v1/deployments", self.list_all_deployments),
                Route("/apis/apps/v1/namespaces/{ns}/deployments", self.list_deployments),
                Route(
                    "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                    self.deployment,
                    methods=["GET", "PATCH"],
                ),
                Route(
                    "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
                    self.scale,
                    methods=["GET", "PATCH"],
                ),
                Route("/apis/apps/v1/namespaces/{ns}/replicasets", self.list_replicasets),
                Route("/api/v1/namespaces/{ns}/pods", self.list_pods),
            ]
        )

    # --- state helpers -------------------------------------------------------------
    def add_deployment(self, namespace: str, name: str, image: str, replicas: int = 2) -> None:
        labels = {"app": name}
        self.deployments[(namespace, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {},
                "generation": 1,
                "uid": f"uid-{name}",
                "resourceVersion": str(self.version),
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"containers": [{"name": name, "image": image}]},
                },
            },
            "status": {},
        }
        self._reconcile(namespace, name)

    def _reconcile(self, namespace: str, name: str) -> None:
        """The deployment controller: one ReplicaSet per distinct template, newest active."""
        deployment = self.deployments[(namespace, name)]
        template = deployment["spec"]["template"]
        digest = hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        owned = [
            rs
            for (ns, _), rs in self.replicasets.items()
            if ns == namespace and rs["metadata"]["ownerReferences"][0]["name"] == name
        ]
        revisions = [int(rs["metadata"]["annotations"][REVISION]) for rs in owned]
        current = next(
            (rs for rs in owned if rs["metadata"]["labels"]["pod-template-hash"] == digest), None
        )
        if current is None:
            current = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{digest}",
                    "namespace": namespace,
                    "labels": {**template["metadata"]["labels"], "pod-template-hash": digest},
                    "annotations": {},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": deployment["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "template": copy.deepcopy(template),
                    "selector": deployment["spec"]["selector"],
                },
                "status": {},
            }
            current["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] = digest
            self.replicasets[(namespace, current["metadata"]["name"])] = current
        latest = max(revisions, default=0)
        annotations = current["metadata"]["annotations"]
        # A new template, or an old one brought back by a rollback, becomes the newest revision.
        if current not in owned or int(annotations[REVISION]) < latest:
            annotations[REVISION] = str(latest + 1)
        replicas = deployment["spec"]["replicas"]
        for rs in [*owned, current]:
            rs["spec"]["replicas"] = replicas if rs is current else 0
            rs["status"] = {
                "replicas": rs["spec"]["replicas"],
                "readyReplicas": rs["spec"]["replicas"],
            }
        for key in [
            k
            for k, pod in self.pods.items()
            if k[0] == namespace and pod["metadata"]["labels"].get("app") == name
        ]:
            del self.pods[key]
        for i in range(replicas):
            pod_name = f"{current['metadata']['name']}-{i}"
            self.pods[(namespace, pod_name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": namespace,
                    "labels": current["metadata"]["labels"],
                },
                "spec": {"containers": template["spec"]["containers"], "nodeName": f"node-{i % 3}"},
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "ready": True,
                            "restartCount": 0,
                            "image": c["image"],
                            "imageID": "",
                            "started": True,
                        }
                        for c in template["spec"]["containers"]
                    ],
                },
            }
        deployment["metadata"]["annotations"][REVISION] = current["metadata"]["annotations"][
            REVISION
        ]
        self.version += 1
        deployment["metadata"]["resourceVersion"] = str(self.version)
        deployment["status"] = {
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "observedGeneration": deployment["metadata"]["generation"],
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }

    @staticmethod
    def _list(kind: str, items: list[dict[str, Any]]) -> Response:
        return JSONResponse(
            {
                "apiVersion": "v1",
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        )

    @staticmethod
    def _selected(obj: dict[str, Any], selector: str | None) -> bool:
        if not selector:
            return True
        labels = obj["metadata"].get("labels", {})
        return all(
            labels.get(k) == v for k, v in (part.split("=", 1) for part in selector.split(","))
        )

    # --- routes --------------------------------------------------------------------
    async def list_all_deployments(self, request: Request) -> Response:
        return self._list("Deployment", list(self.deployments.values()))

    async def list_deployments(self, request: Request) -> Response:
        ns = request.path_params["ns"]
        return self._list("Deployment", [d for (n, _), d in self.deployments.items() if n == ns])

    async def deployment(self, request: Request) -> Response:
        key = (request.path_params["ns"], request.path_params["name"])
        self.requests.append((request.method, request.url.path))
        if key not in self.deployments:
            return _status(404, "NotFound", f'deployments.apps "{key[1]}" not found')
        if request.method == "PATCH":
            deployment = self.deployments[key]
            patch = json.loads(await request.body())
            before = json.dumps(deployment["spec"]["template"], sort_keys=True)
            _merge(deployment, {k: v for k, v in patch.items() if k in ("spec", "metadata")})
            if json.dumps(deployment["spec"]["template"], sort_keys=True) != before:
                deployment["metadata"]["generation"] += 1
            self._reconcile(*key)
        return JSONResponse(self.deployments[key])

    async def scale(self, request: Request) -> Response:
        key = (request.path_params["ns"], request.path_params["name"])
        if key not in self.deployments:
            return _status(404, "NotFound", f'deployments.apps "{key[1]}" not found')
        deployment = self.deployments[key]
        if request.method == "PATCH":
            patch = json.loads(await request.body())
            deployment["spec"]["replicas"] = int(patch["spec"]["replicas"])
            self._reconcile(*key)
        return JSONResponse(
            {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": key[1], "namespace": key[0]},
                "spec": {"replicas": deployment["spec"]["replicas"]},
                "status": {"replicas": deployment["status"].get("replicas", 0)},
            }
        )

    async def list_replicasets(self, request: Request) -> Response:
        ns, selector = request.path_params["ns"], request.query_params.get("labelSelector")
        items = [
            rs
            for (n, _), rs in self.replicasets.items()
            if n == ns and self._selected(rs, selector)
        ]
        return self._list("ReplicaSet", items)

    async def list_pods(self, request: Request) -> Response:
        ns, selector = request.path_params["ns"], request.query_params.get("labelSelector")
        return self._list(
            "Pod", [p for (n, _), p in self.pods.items() if n == ns and self._selected(p, selector)]
        )
