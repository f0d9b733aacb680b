"""A small stateful Kubernetes API server stand-in for lightkube, served on loopback.

Objects: Deployments (with the scale subresource), their ReplicaSets and pods, Services,
ConfigMaps and NetworkPolicies; StatefulSets and DaemonSets as seeded (no controller). Writes
behave as the real API server's do where the remediation executor depends on it:

- PATCH in the three content types lightkube sends (JSON patch, JSON merge patch, strategic
  merge patch: a list merges only by the patchMergeKey k8s.io/api declares for it, any other
  list is replaced), PUT and POST, `dryRun=All`;
- optimistic concurrency: a write whose object carries a `metadata.resourceVersion` other
  than the stored one is refused with 409 Conflict; every accepted write that changes the
  object bumps it (a write that changes nothing leaves it, as the real API server does);
- `metadata.generation` counts spec changes; the deployment controller below reports
  `observedGeneration`, `updatedReplicas`, `readyReplicas` and `availableReplicas`.

The deployment controller is kube-controller-manager's in miniature: one ReplicaSet per
distinct pod template (named by `pod-template-hash`), the deployment's revision annotation
copied from the active ReplicaSet; a new template gets the next revision, and going back to an
old template re-uses that ReplicaSet and gives it the next revision (the old number moves to
its `deployment.kubernetes.io/revision-history`).
Rollouts finish at once, or after `ready_after_reads` reads of the deployment; pods of an
image in `failing_images` never become ready (a bad release).

Every request is logged in `calls`; `writes()` lists the mutations that reached the store.
`interfere(...)` changes an object just before the next write to it (a concurrent writer);
`on_write` runs after a mutation is stored and before the answer is sent (a crash hook; it
may raise `AnswerLost` to make the client see a 504 for a stored write).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
TEMPLATE_HASH = "pod-template-hash"
WRITES = ("POST", "PUT", "PATCH", "DELETE")

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

# plural -> (kind, apiVersion, URL prefix before /namespaces)
KINDS: dict[str, tuple[str, str, str]] = {
    "deployments": ("Deployment", "apps/v1", "/apis/apps/v1"),
    "replicasets": ("ReplicaSet", "apps/v1", "/apis/apps/v1"),
    "statefulsets": ("StatefulSet", "apps/v1", "/apis/apps/v1"),
    "daemonsets": ("DaemonSet", "apps/v1", "/apis/apps/v1"),
    "pods": ("Pod", "v1", "/api/v1"),
    "services": ("Service", "v1", "/api/v1"),
    "configmaps": ("ConfigMap", "v1", "/api/v1"),
    "secrets": ("Secret", "v1", "/api/v1"),
    "networkpolicies": ("NetworkPolicy", "networking.k8s.io/v1", "/apis/networking.k8s.io/v1"),
    "horizontalpodautoscalers": (
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
        "/apis/autoscaling/v2",
    ),
}

Key = tuple[str, str]
Obj = dict[str, Any]


class PatchError(Exception):
    """The patch document cannot be applied (the API server answers 422)."""


class AnswerLost(Exception):
    """Raised by an ``on_write`` hook: the write is stored, the client gets a 504 instead."""


def _status(code: int, reason: str, message: str, details: Obj | None = None) -> Response:
    """A metav1.Status as the API server sends it (``details``: name, group, kind)."""
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=code)


def _invalid(plural: str, name: str, causes: list[tuple[str, str, str]]) -> Response:
    """422 Invalid as field validation words it: one cause a field (field, value, why)."""
    said = ", ".join(f"{f}: Invalid value: {v}: {why}" for f, v, why in causes)
    kind = ".".join(filter(None, (KINDS[plural][0], group_of(plural))))
    return _status(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {said}',
        {
            "name": name,
            "group": group_of(plural),
            "kind": KINDS[plural][0],
            "causes": [
                {"reason": "FieldValueInvalid", "message": f"Invalid value: {v}: {why}", "field": f}
                for f, v, why in causes
            ],
        },
    )


def _validated(plural: str, name: str, obj: Obj, current: Obj | None = None) -> Response | None:
    """What apps/v1 validation refuses of a Deployment (ValidateDeployment and its update):
    a negative or non-integer replica count, a selector its template's labels do not match, a
    selector changed after creation. Other kinds are taken as written."""
    if plural != "deployments":
        return None
    spec = obj.get("spec") or {}
    causes: list[tuple[str, str, str]] = []
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(("spec.replicas", json.dumps(replicas), "must be greater than or equal to 0"))
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(("spec.selector", "{}", "empty selector is invalid for deployment"))
    elif any(labels.get(k) != v for k, v in selector.items()):
        causes.append(
            (
                "spec.template.metadata.labels",
                json.dumps(labels),
                "`selector` does not match template `labels`",
            )
        )
    if current is not None and spec.get("selector") != current["spec"].get("selector"):
        causes.append(("spec.selector", json.dumps(spec.get("selector")), "field is immutable"))
    return _invalid(plural, name, causes) if causes else None


async def _not_served(request: Request, exc: Exception) -> Response:
    """A path no route serves (a group, version or resource the cluster does not have): the
    API server's NotFound Status, with empty details."""
    return _status(404, "NotFound", "the server could not find the requested resource", {})


def group_of(plural: str) -> str:
    """The API group of a resource plural ("" for the core group)."""
    api_version = KINDS[plural][1]
    return api_version.split("/")[0] if "/" in api_version else ""


def qualified(plural: str) -> str:
    """The resource as the API server names it in messages: plural.group."""
    group = group_of(plural)
    return f"{plural}.{group}" if group else plural


PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, "application/apply-patch+yaml")


class _Refusals(BaseHTTPMiddleware):
    """What the API server refuses before a handler sees the request: a group version it does
    not serve (404), a dryRun other than All (400) and a PATCH body in a media type it has no
    patcher for (415)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        token = getattr(request.app.state, "token", None)
        if token is not None and request.headers.get("authorization") != f"Bearer {token}":
            return _status(401, "Unauthorized", "Unauthorized")
        unserved = request.app.state.api.unserved
        if any(request.url.path.startswith(f"/apis/{version}/") for version in unserved):
            return await _not_served(request, LookupError(request.url.path))
        dry_run = request.query_params.getlist("dryRun")
        if any(value != "All" for value in dry_run):
            return _status(400, "BadRequest", f"invalid dry run value {dry_run!r}: only All")
        media = (request.headers.get("content-type") or "").split(";")[0].strip()
        if request.method == "PATCH" and media not in PATCH_TYPES:
            return _status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format {media!r} - accepted media "
                f"types include: {', '.join(PATCH_TYPES)}",
            )
        return await call_next(request)


# --- patch semantics ---------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# The lists strategic merge patch merges, by path of field names from the object (list
# positions left out) -> their patchMergeKey in k8s.io/api ("" merges a list of scalars as a
# set). Every other list is replaced whole, as the API server does: a `name` in the items
# makes no list mergeable.
_META_KEYS = {"finalizers": "", "ownerReferences": "uid"}
_POD_SPEC_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "schedulingGates": "name",
    "resourceClaims": "name",
}
_CONTAINER_KEYS = {
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
}
MergeKeys = dict[tuple[str, ...], str]


def merge_keys(plural: str) -> MergeKeys:
    """The declared patchMergeKeys of a resource's lists (see _POD_SPEC_KEYS)."""
    keys: MergeKeys = {("metadata", f): k for f, k in _META_KEYS.items()}
    pod_spec = {"deployments": ("spec", "template"), "replicasets": ("spec", "template")}
    if plural in pod_spec or plural == "pods":
        template = pod_spec.get(plural, ())
        if template:
            keys.update({(*template, "metadata", f): k for f, k in _META_KEYS.items()})
        spec = (*template, "spec")
        keys.update({(*spec, f): k for f, k in _POD_SPEC_KEYS.items()})
        for containers in ("containers", "initContainers", "ephemeralContainers"):
            keys.update({(*spec, containers, f): k for f, k in _CONTAINER_KEYS.items()})
    if plural == "services":
        keys[("spec", "ports")] = "port"
    return keys


def strategic_merge_patch(
    target: Any, patch: Any, keys: MergeKeys | None = None, path: tuple[str, ...] = ()
) -> Any:
    """Strategic merge patch: maps merge, null deletes, lists merge only by a declared key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    keys = keys or {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        at = (*path, key)
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list) and at in keys:
            result[key] = _merge_list(result.get(key) or [], value, keys, at)
        elif isinstance(value, list):
            result[key] = copy.deepcopy(value)  # no patchMergeKey: the list is replaced
        else:
            result[key] = strategic_merge_patch(result.get(key), value, keys, at)
    return result


def _merge_list(current: list[Any], patch: list[Any], keys: MergeKeys, at: tuple[str, ...]) -> Any:
    merge_key = keys[at]
    where = ".".join(at)
    if not merge_key:  # a set of scalars (metadata.finalizers)
        return [*current, *(v for v in patch if v not in current)]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if i.get("$patch") != "replace"]
    merged = {item.get(merge_key): copy.deepcopy(item) for item in current}
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError(
                f"{where}: map: {item} does not contain declared merge key: {merge_key}"
            )
        name = item[merge_key]
        if item.get("$patch") == "delete":
            merged.pop(name, None)
        else:
            merged[name] = strategic_merge_patch(merged.get(name), item, keys, at)
    return list(merged.values())


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError):
            raise PatchError(f"path /{'/'.join(parts)} does not exist") from None
    return node


def json_patch(target: Obj, operations: list[Obj]) -> Obj:
    """RFC 6902 JSON patch (add, remove, replace, test)."""
    doc = copy.deepcopy(target)
    for op in operations:
        parts = _pointer(op["path"])
        parent, last = _parent(doc, parts), parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "remove":
                del parent[index]
            elif kind == "replace":
                parent[index] = copy.deepcopy(op["value"])
            elif kind == "test" and parent[index] != op["value"]:
                raise PatchError(f"test failed at {op['path']}")
            continue
        if not isinstance(parent, dict):
            raise PatchError(f"path {op['path']} does not exist")
        if kind in ("remove", "replace", "test") and last not in parent:
            raise PatchError(f"path {op['path']} does not exist")
        if kind in ("add", "replace"):
            parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[last]
        elif kind == "test" and parent[last] != op["value"]:
            raise PatchError(f"test failed at {op['path']}")
    return doc


def apply_patch(target: Obj, content_type: str, body: Any, keys: MergeKeys | None = None) -> Obj:
    """Apply a PATCH body the way the API server does for its content type (``keys``: the
    resource's declared patchMergeKeys, for a strategic merge patch)."""
    kind = content_type.split(";")[0].strip()
    if kind == JSON_PATCH:
        if not isinstance(body, list):
            raise PatchError("a JSON patch is a list of operations")
        return json_patch(target, body)
    if kind == MERGE_PATCH:
        result: Obj = merge_patch(target, body)
        return result
    if kind == STRATEGIC_PATCH:
        strategic: Obj = strategic_merge_patch(target, body, keys)
        return strategic
    raise PatchError(f"unsupported patch content type {content_type!r}")


def _pruned(value: Any) -> Any:
    """Empty maps and nulls removed: the API server omits them, so they never change a hash."""
    if isinstance(value, dict):
        pruned = {k: _pruned(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in pruned.items() if v != {}}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def template_hash(template: Obj) -> str:
    """The controller's name for a pod template (stable across key order and empty maps)."""
    return hashlib.sha1(json.dumps(_pruned(template), sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class ApiCall:
    method: str
    path: str
    status: int
    content_type: str | None = None
    body: Any = None
    dry_run: bool = False

    @property
    def kind(self) -> str:
        """The resource plural (or `plural/subresource`) the call addressed."""
        parts = self.path.strip("/").split("/")
        if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
            rest = parts[parts.index("namespaces") + 2 :]
            return "/".join([rest[0], *rest[2:]])
        return parts[-1]


@dataclass
class KubeApi:
    deployments: dict[Key, Obj] = field(default_factory=dict)
    replicasets: dict[Key, Obj] = field(default_factory=dict)
    # Stored as seeded (no controller runs them): what shares a Service with a Deployment.
    statefulsets: dict[Key, Obj] = field(default_factory=dict)
    daemonsets: dict[Key, Obj] = field(default_factory=dict)
    pods: dict[Key, Obj] = field(default_factory=dict)
    services: dict[Key, Obj] = field(default_factory=dict)
    configmaps: dict[Key, Obj] = field(default_factory=dict)
    secrets: dict[Key, Obj] = field(default_factory=dict)
    networkpolicies: dict[Key, Obj] = field(default_factory=dict)
    horizontalpodautoscalers: dict[Key, Obj] = field(default_factory=dict)
    # Namespaces that exist (seeding an object creates its namespace).
    namespaces: set[str] = field(default_factory=lambda: {"default"})
    version: int = 1
    lives: int = 0
    calls: list[ApiCall] = field(default_factory=list)
    # Reads of a deployment before a rollout completes (0: at once).
    ready_after_reads: int = 0
    # Images whose pods never become ready.
    failing_images: set[str] = field(default_factory=set)
    # Images whose rollout stalls past spec.progressDeadlineSeconds: under RollingUpdate with
    # maxUnavailable 0 the old ReplicaSet keeps serving, one surge pod of the new one never
    # becomes ready, and the controller reports Progressing False, ProgressDeadlineExceeded.
    stalled_images: set[str] = field(default_factory=set)
    on_write: Callable[[ApiCall], None] | None = None
    # What our credentials may not do (RBAC), answered 403: a resource plural ("configmaps":
    # every verb) or a verb and a plural ("patch configmaps": reads still allowed).
    forbidden: set[str] = field(default_factory=set)
    # Writes a validating admission webhook denies, answered 403 as the API server relays its
    # denial: a verb and a plural ("patch deployments") and the webhook's words.
    webhook_denials: dict[str, str] = field(default_factory=dict)
    # The next writes answered 503, as by an API server that is briefly down.
    unavailable_writes: int = 0
    # The next reads of a resource answered 503, by plural or by verb and plural as in
    # ``forbidden`` ("list services": 2), counted down per request.
    unavailable_reads: dict[str, int] = field(default_factory=dict)
    # API group versions the cluster does not serve, answered 404 as any unknown path is: a
    # cluster before 1.23 has no autoscaling/v2 (its HPAs are served as autoscaling/v1 and
    # v2beta2; every version since serves autoscaling/v1 as well).
    unserved: set[str] = field(default_factory=set)
    _pending: dict[Key, int] = field(default_factory=dict)
    _interference: dict[tuple[str, str, str], Callable[[Obj], None]] = field(default_factory=dict)

    def store(self, plural: str) -> dict[Key, Obj]:
        stores: dict[str, dict[Key, Obj]] = {
            "deployments": self.deployments,
            "replicasets": self.replicasets,
            "statefulsets": self.statefulsets,
            "daemonsets": self.daemonsets,
            "pods": self.pods,
            "services": self.services,
            "configmaps": self.configmaps,
            "secrets": self.secrets,
            "networkpolicies": self.networkpolicies,
            "horizontalpodautoscalers": self.horizontalpodautoscalers,
        }
        return stores[plural]

    def app(self) -> Starlette:
        routes = [
            Route("/apis/apps/v1/deployments", self.list_all_deployments),
            Route(
                "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
                self.scale,
                methods=["GET", "PATCH", "PUT"],
            ),
        ]
        # Every cluster serves its HPAs as autoscaling/v1 too (the same objects; v1 drops the
        # metrics other than CPU, which nothing here stores).
        v1 = "/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers"
        hpas = "horizontalpodautoscalers"
        routes.append(Route(v1, _as_version(self._collection(hpas), "autoscaling/v1")))
        routes.append(Route(v1 + "/{name}", _as_version(self._item(hpas), "autoscaling/v1")))
        for plural, (_, _, prefix) in KINDS.items():
            routes.append(
                Route(
                    f"{prefix}/namespaces/{{ns}}/{plural}",
                    self._collection(plural),
                    methods=["GET", "POST"],
                )
            )
            routes.append(
                Route(
                    f"{prefix}/namespaces/{{ns}}/{plural}/{{name}}",
                    self._item(plural),
                    methods=["GET", "PATCH", "PUT", "DELETE"],
                )
            )
        app = Starlette(
            routes=routes,
            middleware=[Middleware(_Refusals)],
            exception_handlers={404: _not_served},
        )
        app.state.token = None
        app.state.api = self
        self._app = app
        return app

    def require_token(self, token: str | None) -> None:
        """The bearer token the server accepts from now on (None: any request)."""
        self._app.state.token = token

    # --- what tests look at ----------------------------------------------------------
    def writes(self, kind: str | None = None) -> list[ApiCall]:
        """Mutations the server accepted and stored (dry runs and refusals excluded)."""
        return [
            c
            for c in self.calls
            if c.method in WRITES
            and c.status < 400
            and not c.dry_run
            and (kind is None or c.kind == kind)
        ]

    def interfere(
        self, plural: str, namespace: str, name: str, change: Callable[[Obj], None]
    ) -> None:
        """Another writer changes the object just before our next write to it arrives."""
        self._interference[(plural, namespace, name)] = change

    def revisions(self, namespace: str, name: str) -> dict[int, list[str]]:
        """Revision -> images of the deployment's ReplicaSets (what `rollout history` shows)."""
        return {
            int(rs["metadata"]["annotations"][REVISION]): [
                c["image"] for c in rs["spec"]["template"]["spec"]["containers"]
            ]
            for rs in self._owned(namespace, name)
        }

    # --- seeding -----------------------------------------------------------------------
    def add_deployment(
        self,
        namespace: str,
        name: str,
        image: str,
        replicas: int = 2,
        configmaps: list[str] | None = None,
    ) -> None:
        self.namespaces.add(namespace)
        labels = {"app": name}
        pod_spec: Obj = {"containers": [{"name": name, "image": image}]}
        if configmaps:
            pod_spec["containers"][0]["envFrom"] = [{"configMapRef": {"name": configmaps[0]}}]
            pod_spec["volumes"] = [
                {"name": f"config-{cm}", "configMap": {"name": cm}} for cm in configmaps[1:]
            ]
        self.deployments[(namespace, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {},
                "generation": 1,
                "uid": self._next_uid(name),
                "resourceVersion": self._next_version(),
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
            },
            "status": {},
        }
        self._reconcile(namespace, name)

    def add_service(self, namespace: str, name: str, selector: dict[str, str]) -> None:
        self.services[(namespace, name)] = self._new(
            "services",
            namespace,
            name,
            {
                "spec": {
                    "selector": dict(selector),
                    "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                }
            },
        )

    def add_deny_policy(self, namespace: str, name: str, app: str, labels: dict[str, str]) -> None:
        """A deny-all ingress NetworkPolicy selecting ``app``'s pods (an isolation's, by its
        ``labels``)."""
        self.networkpolicies[(namespace, name)] = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels),
                "resourceVersion": "1",
            },
            "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"]},
        }

    def add_workload(
        self, plural: str, namespace: str, name: str, labels: dict[str, str], image: str
    ) -> None:
        """A StatefulSet or DaemonSet whose pods carry ``labels`` (stored, not reconciled)."""
        template = {
            "metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": name, "image": image}]},
        }
        spec: Obj = {"selector": {"matchLabels": dict(labels)}, "template": template}
        if plural == "statefulsets":
            spec.update(serviceName=name, replicas=1)
        self.store(plural)[(namespace, name)] = self._new(plural, namespace, name, {"spec": spec})

    def add_autoscaler(
        self,
        namespace: str,
        name: str,
        deployment: str,
        minimum: int,
        maximum: int,
        scaled_object: str | None = None,
    ) -> None:
        """An HPA on a Deployment: its controller keeps the replicas within [minimum, maximum]
        (not one at 0 when ``minimum`` is at least 1: Kubernetes disables its scaling there).
        One KEDA made for its ScaledObject ``scaled_object`` is owned and labelled by it."""
        metadata: Obj = {}
        if scaled_object is not None:
            metadata["labels"] = {"scaledobject.keda.sh/name": scaled_object}
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "keda.sh/v1alpha1",
                    "kind": "ScaledObject",
                    "name": scaled_object,
                    "uid": f"uid-{scaled_object}",
                    "controller": True,
                }
            ]
        self.horizontalpodautoscalers[(namespace, name)] = self._new(
            "horizontalpodautoscalers",
            namespace,
            name,
            {
                "metadata": metadata,
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": deployment,
                    },
                    "minReplicas": minimum,
                    "maxReplicas": maximum,
                },
            },
        )

    def add_configmap(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.configmaps[(namespace, name)] = self._new(
            "configmaps", namespace, name, {"data": dict(data)}
        )

    def _new(self, plural: str, namespace: str, name: str, body: Obj) -> Obj:
        self.namespaces.add(namespace)
        kind, api_version, _ = KINDS[plural]
        meta = {**body.get("metadata", {}), "name": name, "namespace": namespace}
        meta.update(uid=self._next_uid(name), resourceVersion=self._next_version())
        meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
        return {**body, "apiVersion": api_version, "kind": kind, "metadata": meta}

    def _next_version(self) -> str:
        self.version += 1
        return str(self.version)

    def _next_uid(self, name: str) -> str:
        # Every life of an object has its own uid: a re-created object never gets the old one.
        self.lives += 1
        return f"uid-{name}-{self.lives}"

    # --- the deployment controller -----------------------------------------------------
    def _owned(self, namespace: str, name: str) -> list[Obj]:
        deployment = self.deployments.get((namespace, name))
        uid = deployment["metadata"]["uid"] if deployment else None
        return [
            rs
            for (ns, _), rs in self.replicasets.items()
            if ns == namespace and rs["metadata"]["ownerReferences"][0]["uid"] == uid
        ]

    def _collect_garbage(self, namespace: str, uid: str) -> None:
        """What the garbage collector does after a Deployment is deleted (background
        propagation, kubectl's default): its ReplicaSets and their pods go too."""
        for key, rs in list(self.replicasets.items()):
            if key[0] == namespace and rs["metadata"]["ownerReferences"][0]["uid"] == uid:
                del self.replicasets[key]
                for pod_key in [k for k in self.pods if k[0] == namespace]:
                    if self.pods[pod_key]["metadata"]["name"].startswith(key[1] + "-"):
                        del self.pods[pod_key]

    def _reconcile(self, namespace: str, name: str) -> None:
        """One ReplicaSet per distinct template; the active one carries the newest revision."""
        deployment = self.deployments[(namespace, name)]
        for hpa in self.horizontalpodautoscalers.values():
            target = hpa["spec"]["scaleTargetRef"]
            if hpa["metadata"]["namespace"] == namespace and (
                target["kind"],
                target["name"],
            ) == ("Deployment", name):
                # The HPA controller sets the count it computes, within its bounds.
                low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
                if deployment["spec"]["replicas"] == 0 and low > 0:
                    continue  # ScalingActive False (ScalingDisabled): a target at 0 is left there
                deployment["spec"]["replicas"] = min(max(deployment["spec"]["replicas"], low), high)
        template = deployment["spec"]["template"]
        digest = template_hash(template)
        owned = self._owned(namespace, name)
        if deployment["spec"].get("paused"):
            # A paused Deployment rolls out nothing: no ReplicaSet for a new template, the
            # running one keeps its pods; the controller only reports that it saw the spec.
            active = next(
                (rs for rs in owned if rs["metadata"]["labels"][TEMPLATE_HASH] == digest), None
            )
            status = deployment["status"]
            status["observedGeneration"] = deployment["metadata"]["generation"]
            status["updatedReplicas"] = active["status"].get("replicas", 0) if active else 0
            return
        latest = max((int(rs["metadata"]["annotations"][REVISION]) for rs in owned), default=0)
        current = next(
            (rs for rs in owned if rs["metadata"]["labels"][TEMPLATE_HASH] == digest), None
        )
        if current is None:
            current = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{digest}",
                    "namespace": namespace,
                    "labels": {**template["metadata"]["labels"], TEMPLATE_HASH: digest},
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
                    "resourceVersion": self._next_version(),
                },
                "spec": {
                    "template": copy.deepcopy(template),
                    "selector": copy.deepcopy(deployment["spec"]["selector"]),
                },
                "status": {},
            }
            current["spec"]["template"]["metadata"]["labels"][TEMPLATE_HASH] = digest
            self.replicasets[(namespace, current["metadata"]["name"])] = current
        annotations = current["metadata"]["annotations"]
        # A new template, or an old one brought back by a rollback, becomes the newest revision;
        # a brought-back ReplicaSet keeps its old numbers in revision-history.
        if REVISION not in annotations:
            annotations[REVISION] = str(latest + 1)
        elif int(annotations[REVISION]) < latest:
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, annotations[REVISION]])
            annotations[REVISION] = str(latest + 1)
        previous_ready = deployment["status"].get("availableReplicas", 0)
        replicas = deployment["spec"]["replicas"]
        ready = 0 if self._failing(template) else replicas
        for rs in self._owned(namespace, name):
            rs["spec"]["replicas"] = replicas if rs is current else 0
            count = rs["spec"]["replicas"]
            rs["status"] = {"replicas": count, "readyReplicas": ready if rs is current else 0}
        self._make_pods(namespace, name, current, ready)
        # Old ReplicaSets beyond spec.revisionHistoryLimit (10 by default) go, oldest first.
        limit = deployment["spec"].get("revisionHistoryLimit", 10)
        old = sorted(
            (rs for rs in self._owned(namespace, name) if rs is not current),
            key=lambda rs: int(rs["metadata"]["annotations"][REVISION]),
        )
        for rs in old[: max(len(old) - limit, 0)]:
            del self.replicasets[(namespace, rs["metadata"]["name"])]
        deployment["metadata"].setdefault("annotations", {})[REVISION] = annotations[REVISION]
        deployment["metadata"]["resourceVersion"] = self._next_version()
        if deployment["status"].get("observedGeneration") != deployment["metadata"]["generation"]:
            # The controller sees a new spec: a rollout starts.
            self._pending[(namespace, name)] = self.ready_after_reads
        self._report(namespace, name, previous_ready)

    def _failing(self, template: Obj) -> bool:
        return any(image in self.failing_images for image in _images(template))

    def _make_pods(self, namespace: str, name: str, rs: Obj, ready: int) -> None:
        for key in [
            k
            for k, pod in self.pods.items()
            if k[0] == namespace and pod["metadata"]["labels"].get("app") == name
        ]:
            del self.pods[key]
        containers = rs["spec"]["template"]["spec"]["containers"]
        for i in range(rs["spec"]["replicas"]):
            pod_name = f"{rs['metadata']['name']}-{i}"
            self.pods[(namespace, pod_name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": namespace,
                    "labels": rs["metadata"]["labels"],
                },
                "spec": {"containers": containers, "nodeName": f"node-{i % 3}"},
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "ready": i < ready,
                            "restartCount": 0 if i < ready else 4,
                            "image": c["image"],
                            "imageID": "",
                            "started": i < ready,
                        }
                        for c in containers
                    ],
                },
            }

    def _report(self, namespace: str, name: str, previous_ready: int = 0) -> None:
        """Deployment status as the controller reports it, mid-rollout or settled."""
        deployment = self.deployments[(namespace, name)]
        replicas = deployment["spec"]["replicas"]
        generation = deployment["metadata"]["generation"]
        if self._pending.get((namespace, name), 0) > 0:
            deployment["status"] = {
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": 0,
                "readyReplicas": previous_ready,
                "availableReplicas": previous_ready,
                "conditions": [
                    {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
                ],
            }
            return
        if any(image in self.stalled_images for image in _images(deployment["spec"]["template"])):
            deployment["status"] = {
                "observedGeneration": generation,
                "replicas": replicas + 1,
                "updatedReplicas": 1,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "unavailableReplicas": 1,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f'ReplicaSet "{name}" has timed out progressing.',
                    },
                ],
            }
            return
        ready = 0 if self._failing(deployment["spec"]["template"]) else replicas
        deployment["status"] = {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
            "conditions": [
                {"type": "Available", "status": "True" if ready >= replicas else "False"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }

    def _observe(self, namespace: str, name: str) -> None:
        """A read lets a pending rollout move on by one step."""
        key = (namespace, name)
        if self._pending.get(key, 0) > 0:
            self._pending[key] -= 1
            self._report(namespace, name, self.deployments[key]["status"].get("readyReplicas", 0))

    # --- request plumbing ------------------------------------------------------------
    @staticmethod
    def _list(kind: str, items: list[Obj]) -> Response:
        return JSONResponse(
            {
                "apiVersion": "v1",
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        )

    @staticmethod
    def _selected(obj: Obj, selector: str | None) -> bool:
        if not selector:
            return True
        labels = obj["metadata"].get("labels", {})
        return all(
            labels.get(k) == v for k, v in (part.split("=", 1) for part in selector.split(","))
        )

    @staticmethod
    def _fields(selector: str | None) -> Callable[[str, str], bool] | str:
        """A fieldSelector as which (namespace, name) it keeps (all its terms hold: ``=``,
        ``==``, ``!=``), or why the API server refuses it: every kind selects on metadata.name
        and metadata.namespace; the other fields are a kind's own, none served here."""
        terms: list[tuple[int, str, bool]] = []
        for part in selector.split(",") if selector else []:
            term = re.fullmatch(r"([^!=]+)(!=|==|=)(.*)", part)
            if term is None:
                return f"invalid selector: {part!r}"
            if term[1] not in ("metadata.namespace", "metadata.name"):
                return f"field label not supported: {term[1]}"
            terms.append((term[1] == "metadata.name", term[3], term[2] != "!="))
        return lambda *key: all((key[at] == value) is equal for at, value, equal in terms)

    async def _log(self, request: Request, status: int, body: Any = None) -> ApiCall:
        call = ApiCall(
            method=request.method,
            path=request.url.path,
            status=status,
            content_type=request.headers.get("content-type"),
            body=body,
            dry_run=request.query_params.get("dryRun") == "All",
        )
        self.calls.append(call)
        return call

    def _collection(self, plural: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            ns = request.path_params["ns"]
            kind = KINDS[plural][0]
            if self.refuses(request, plural):
                return await self._forbid(request, plural)
            if self._busy(request, plural):
                return await self._unavailable(request)
            if request.method == "POST":
                return await self._create(plural, ns, request)
            fields = self._fields(request.query_params.get("fieldSelector"))
            if isinstance(fields, str):  # a field the API server cannot select on
                await self._log(request, 400)
                return _status(400, "BadRequest", fields)
            await self._log(request, 200)
            selector = request.query_params.get("labelSelector")
            items = [
                o
                for (n, name), o in self.store(plural).items()
                if n == ns and self._selected(o, selector) and fields(n, name)
            ]
            return self._list(kind, items)

        return handle

    def _item(self, plural: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            key = (request.path_params["ns"], request.path_params["name"])
            store, kind = self.store(plural), KINDS[plural][0]
            if self.refuses(request, plural):
                return await self._forbid(request, plural)
            if self._busy(request, plural):
                return await self._unavailable(request)
            if (denial := self.webhook_denials.get(f"{self.verb(request)} {plural}")) is not None:
                await self._log(request, 403)
                said = f'admission webhook "validate.kyverno.svc-fail" denied the request: {denial}'
                return _status(403, "Forbidden", said)
            if key not in store:
                await self._log(request, 404)
                return _status(
                    404,
                    "NotFound",
                    f'{qualified(plural)} "{key[1]}" not found',
                    {"name": key[1], "group": group_of(plural), "kind": plural},
                )
            if request.method == "GET":
                await self._log(request, 200)
                if plural == "deployments":
                    self._observe(*key)
                return JSONResponse(store[key])
            if request.method == "DELETE":
                call = await self._log(request, 200)
                gone = store[key] if call.dry_run else store.pop(key)
                if plural == "deployments" and not call.dry_run:
                    self._collect_garbage(key[0], gone["metadata"]["uid"])
                return self._written(call) or JSONResponse(gone)
            body = json.loads(await request.body())
            self._interfere(plural, key)
            current = store[key]
            try:
                if request.method == "PATCH":
                    content_type = request.headers.get("content-type", "")
                    changed = apply_patch(current, content_type, body, merge_keys(plural))
                else:
                    changed = body
            except PatchError as exc:
                await self._log(request, 422, body)
                return _status(422, "Invalid", f"{kind} {key[1]}: {exc}")
            refusal = self._precondition(plural, current, changed) or _validated(
                plural, key[1], changed, current
            )
            if refusal is not None:
                await self._log(request, refusal.status_code, body)
                return refusal
            call = await self._log(request, 200, body)
            if call.dry_run:
                return JSONResponse(changed)
            self._store(plural, key, current, changed)
            return self._written(call) or JSONResponse(store[key])

        return handle

    @staticmethod
    def verb(request: Request) -> str:
        """The RBAC verb of a request (a GET of a collection is a list)."""
        if request.method == "GET":
            return "get" if "name" in request.path_params else "list"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(
            request.method, request.method.lower()
        )

    def refuses(self, request: Request, plural: str) -> bool:
        """Whether RBAC (``forbidden``) refuses this request."""
        return bool({plural, f"{self.verb(request)} {plural}"} & self.forbidden)

    async def _forbid(self, request: Request, plural: str) -> Response:
        """403 as the API server words it (forbiddenMessage in apiserver's responsewriters)."""
        await self._log(request, 403)
        name = request.path_params.get("name")
        resource = plural.partition("/")[0]  # "deployments/scale": a subresource's own rule
        group = group_of(resource)
        what = f'{qualified(resource)} "{name}"' if name else qualified(resource)
        return _status(
            403,
            "Forbidden",
            f'{what} is forbidden: User "ops" cannot {self.verb(request)} resource '
            f'"{plural}" in API group "{group}" in the namespace "{request.path_params["ns"]}"',
            {**({"name": name} if name else {}), "group": group, "kind": resource},
        )

    def _busy(self, request: Request, plural: str) -> bool:
        """Whether this request is one of the next ones answered 503 (and count it)."""
        if request.method != "GET":
            if self.unavailable_writes <= 0:
                return False
            self.unavailable_writes -= 1
            return True
        for name in (f"{self.verb(request)} {plural}", plural):
            if self.unavailable_reads.get(name, 0) > 0:
                self.unavailable_reads[name] -= 1
                return True
        return False

    async def _unavailable(self, request: Request) -> Response:
        await self._log(request, 503)
        return _status(503, "ServiceUnavailable", "the apiserver is shutting down")

    async def _create(self, plural: str, ns: str, request: Request) -> Response:
        body = json.loads(await request.body())
        name = body["metadata"]["name"]
        if ns not in self.namespaces:
            # Objects are created only in a namespace that exists (reads there just find none).
            await self._log(request, 404, body)
            return _status(
                404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
            )
        if (ns, name) in self.store(plural):
            await self._log(request, 409, body)
            return _status(
                409,
                "AlreadyExists",
                f'{qualified(plural)} "{name}" already exists',
                {"name": name, "group": group_of(plural), "kind": plural},
            )
        if (invalid := _validated(plural, name, body)) is not None:
            await self._log(request, 422, body)
            return invalid
        call = await self._log(request, 201, body)
        created = self._new(plural, ns, name, body)
        if plural == "deployments":
            created["metadata"]["generation"] = 1
            created["metadata"].setdefault("annotations", {})
            created["status"] = {}
        if not call.dry_run:
            self.store(plural)[(ns, name)] = created
            if plural == "deployments":
                self._reconcile(ns, name)
                created = self.deployments[(ns, name)]
        return self._written(call) or JSONResponse(created, status_code=201)

    def _interfere(self, plural: str, key: Key) -> None:
        change = self._interference.pop((plural, *key), None)
        if change is not None:
            change(self.store(plural)[key])
            self.store(plural)[key]["metadata"]["resourceVersion"] = self._next_version()

    @staticmethod
    def _precondition(plural: str, current: Obj, changed: Obj) -> Response | None:
        name = current["metadata"]["name"]
        meta = changed.get("metadata") or {}
        details = {"name": name, "group": group_of(plural), "kind": plural}
        if meta.get("name", name) != name:
            # checkName in the apiserver's update and patch handlers, before anything is stored.
            return _status(
                400,
                "BadRequest",
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})",
            )
        uid = meta.get("uid")
        if uid is not None and uid != current["metadata"]["uid"]:
            # ValidateObjectMetaUpdate: a write cannot make an object another life of it.
            return _invalid(plural, name, [("metadata.uid", f'"{uid}"', "field is immutable")])
        wanted = meta.get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            return _status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {qualified(plural)} "{name}": '
                "the object has been modified; please apply your changes to the latest "
                "version and try again",
                details,
            )
        return None

    def _store(self, plural: str, key: Key, current: Obj, changed: Obj) -> None:
        changed = copy.deepcopy(changed)
        meta = changed.setdefault("metadata", {})
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
        changed["status"] = current.get("status", {})
        changed["apiVersion"], changed["kind"] = current["apiVersion"], current["kind"]
        if plural == "deployments" and changed.get("spec") != current.get("spec"):
            meta["generation"] = current["metadata"]["generation"] + 1
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        if changed == current:
            # The API server stores nothing for a write that changes nothing: the object, its
            # resourceVersion and its generation stay as they were, and no controller wakes.
            return
        meta["resourceVersion"] = self._next_version()
        self.store(plural)[key] = changed
        if plural == "deployments":
            self._reconcile(*key)

    def _written(self, call: ApiCall) -> Response | None:
        """Run the write hook; an ``AnswerLost`` from it turns the answer into a 504."""
        if self.on_write is None or call.dry_run:
            return None
        try:
            self.on_write(call)
        except AnswerLost:
            return _status(504, "Timeout", "the write was stored but its answer was lost")
        return None

    # --- special routes ----------------------------------------------------------------
    async def list_all_deployments(self, request: Request) -> Response:
        await self._log(request, 200)
        return self._list("Deployment", list(self.deployments.values()))

    def _scale_view(self, key: Key) -> Obj:
        deployment = self.deployments[key]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": key[1],
                "namespace": key[0],
                "uid": deployment["metadata"]["uid"],
                "resourceVersion": deployment["metadata"]["resourceVersion"],
            },
            "spec": {"replicas": deployment["spec"]["replicas"]},
            "status": {
                "replicas": deployment["status"].get("replicas", 0),
                "selector": ",".join(
                    f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items()
                ),
            },
        }

    async def scale(self, request: Request) -> Response:
        """The scale subresource: only `spec.replicas` passes through (metadata is dropped)."""
        key = (request.path_params["ns"], request.path_params["name"])
        if self.refuses(request, "deployments/scale"):
            # RBAC names the subresource: a rule on deployments does not reach deployments/scale.
            return await self._forbid(request, "deployments/scale")
        if key not in self.deployments:
            await self._log(request, 404)
            return _status(
                404,
                "NotFound",
                f'deployments.apps "{key[1]}" not found',
                {"name": key[1], "group": "apps", "kind": "deployments"},
            )
        if request.method == "GET":
            await self._log(request, 200)
            return JSONResponse(self._scale_view(key))
        body = json.loads(await request.body())
        self._interfere("deployments", key)
        view = self._scale_view(key)
        try:
            if request.method == "PATCH":
                changed = apply_patch(view, request.headers.get("content-type", ""), body)
            else:
                changed = body
            replicas = int(changed["spec"]["replicas"])
        except (PatchError, KeyError, TypeError, ValueError) as exc:
            await self._log(request, 422, body)
            return _status(422, "Invalid", f"Scale {key[1]}: {exc}")
        if replicas < 0:
            await self._log(request, 422, body)
            return _status(
                422,
                "Invalid",
                f'Scale.autoscaling "{key[1]}" is invalid: spec.replicas: Invalid value: '
                f"{replicas}: must be greater than or equal to 0",
            )
        refusal = self._precondition("deployments", self.deployments[key], changed)
        if refusal is not None:
            await self._log(request, refusal.status_code, body)
            return refusal
        call = await self._log(request, 200, body)
        if not call.dry_run:
            current = self.deployments[key]
            spec = {**current["spec"], "replicas": replicas}
            self._store("deployments", key, current, {**current, "spec": spec})
        return self._written(call) or JSONResponse(self._scale_view(key))


def _as_version(handler: Callable[[Request], Any], api_version: str) -> Callable[[Request], Any]:
    """A GET ``handler``'s answer as another version of its group serves it (apiVersion)."""

    async def handle(request: Request) -> Response:
        response: Response = await handler(request)
        if response.status_code != 200:
            return response
        body = json.loads(bytes(response.body))
        for obj in body.get("items", [body]):
            obj["apiVersion"] = api_version
        return JSONResponse(body)

    return handle


def _images(template: Obj) -> list[str]:
    return [c.get("image") for c in template["spec"]["containers"]]


def kubeconfig(contexts: dict[str, str]) -> dict[str, Any]:
    """A kubeconfig with one context (and cluster) per name -> server URL; the first is current."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": next(iter(contexts)),
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in contexts.items()],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": "ops", "namespace": "default"}}
            for n in contexts
        ],
        "users": [{"name": "ops", "user": {"token": "test-token"}}],
    }
