"""What a remediation step writes to Kubernetes objects, as plain data (no I/O).

The executor reads objects as dicts (what the API server sent), asks these functions what
to write, and sends the result; a dry run shows the same writes without sending them. The
isolation's pod selector (``own_pods``) and why a stopped Deployment is left alone
(``stopped_reason``) are here too.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Service
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.types import PatchType

from ambient.remediation.ladder import (
    ISOLATION_LABEL,
    STEP_ANNOTATION,
    STEP_HISTORY_ANNOTATION,
    STEP_HISTORY_LENGTH,
    Checkpoint,
    Rung,
)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
TEMPLATE_HASH = "pod-template-hash"
# Earlier revision numbers of a ReplicaSet that a rollback brought back (kube-controller-manager).
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
NOT_A_REVISION = "release is not a Deployment revision"

Obj = dict[str, Any]
Kind = type[Deployment] | type[ConfigMap] | type[Service] | type[NetworkPolicy]


@dataclass
class Change:
    """One write the step makes: exactly what is sent, or would be in a dry run."""

    resource: Kind
    namespace: str
    name: str
    verb: Literal["patch", "create", "delete"]
    body: Any = None
    patch_type: PatchType | None = None

    @property
    def object(self) -> str:
        return f"{self.resource.__name__.lower()}/{self.namespace}/{self.name}"

    def sent(self) -> Any:
        """What the audit shows for this object: the patch body, or the object made/removed."""
        if self.verb == "patch":
            return self.body  # a merge-patch map, or a list of JSON-patch operations
        if self.verb == "create":
            return {"create": self.body}
        return {"delete": True}


@dataclass
class StepPlan:
    """What a step still has to do, given what the cluster shows now."""

    changes: list[Change] = field(default_factory=list)
    # Objects that already carry this step's key (or already look as the step wants).
    done: list[str] = field(default_factory=list)
    skipped_reason: str | None = None
    stopped: bool = False  # skipped as someone stopped the workload (StepResult.stopped)
    detail: str = ""
    # What an earlier attempt of this step wrote to the ``done`` objects, by object, rebuilt
    # from our stamp on them (its resourceVersion precondition aside): the retry's audit.
    sent_before: Obj = field(default_factory=dict)


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


def step_history(obj: Obj) -> list[str]:
    """The keys of the last steps that changed the object (oldest first)."""
    try:
        keys = json.loads(annotations_of(obj).get(STEP_HISTORY_ANNOTATION) or "[]")
    except ValueError:  # someone else's edit: the last step's key is still read
        return []
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def stamped(obj: Obj, key: str) -> bool:
    return annotations_of(obj).get(STEP_ANNOTATION) == key or key in step_history(obj)


def stamp_annotations(obj: Obj, key: str) -> dict[str, str]:
    """Our key as the object's last step, added to its history of steps."""
    history = [k for k in step_history(obj) if k != key][-(STEP_HISTORY_LENGTH - 1) :]
    return {STEP_ANNOTATION: key, STEP_HISTORY_ANNOTATION: json.dumps([*history, key])}


def sent_stamp(obj: Obj, key: str) -> Obj:
    """The merge-patch metadata ``stamp`` gave an object that carries ``key``, read back from
    it (the history up to our key: later steps may have stamped it since); no resourceVersion."""
    history = step_history(obj)
    sent = history[: history.index(key) + 1] if key in history else [key]
    return {"annotations": {STEP_ANNOTATION: key, STEP_HISTORY_ANNOTATION: json.dumps(sent)}}


def stamp(obj: Obj, key: str) -> Obj:
    """Merge-patch metadata: our key, and the version we read (a precondition)."""
    return {
        "resourceVersion": obj["metadata"]["resourceVersion"],
        "annotations": stamp_annotations(obj, key),
    }


def json_stamp(obj: Obj, key: str, also: dict[str, str] | None = None) -> list[Obj]:
    """JSON-patch operations for the same precondition and stamp (and ``also`` annotations)."""
    version = obj["metadata"]["resourceVersion"]
    annotations = stamp_annotations(obj, key) | (also or {})
    stamping: list[Obj]
    if obj["metadata"].get("annotations"):
        stamping = _added(annotations)
    else:
        stamping = [{"op": "add", "path": "/metadata/annotations", "value": annotations}]
    return [{"op": "replace", "path": "/metadata/resourceVersion", "value": version}, *stamping]


def sent_json_stamp(obj: Obj, key: str) -> list[Obj]:
    """``json_stamp``'s operations on an object that carries ``key``, read back from it (as
    ``sent_stamp``); a Deployment we roll back had annotations (its revision) before."""
    return _added(sent_stamp(obj, key)["annotations"])


def _added(annotations: dict[str, str]) -> list[Obj]:
    # The annotations' names as JSON-pointer tokens: "~" and "/" escaped (RFC 6901).
    return [
        {
            "op": "add",
            "path": "/metadata/annotations/" + name.replace("~", "~0").replace("/", "~1"),
            "value": value,
        }
        for name, value in annotations.items()
    ]


def without_hash(template: Obj) -> Obj:
    """A ReplicaSet's pod template as its Deployment had it (what `rollout undo` copies)."""
    labels = {
        k: v
        for k, v in (template.get("metadata", {}).get("labels") or {}).items()
        if k != TEMPLATE_HASH
    }
    metadata = {**template.get("metadata", {}), "labels": labels}
    return {**template, "metadata": metadata}


def release_of(template: Obj) -> Obj:
    """A pod template as a release: without the restart time and the ReplicaSet's hash (a
    `rollout restart` makes a revision of the same release)."""
    bare = without_hash(template)
    annotations = {
        k: v for k, v in (bare["metadata"].get("annotations") or {}).items() if k != RESTARTED_AT
    }
    return {**bare, "metadata": {**bare["metadata"], "annotations": annotations}}


def revision_template(
    revisions: dict[int, Obj], revision: int | None, baseline: Checkpoint | None
) -> Obj | None:
    """The template of ``revision``: its ReplicaSet's, or (pruned) as the baseline recorded it."""
    if revision in revisions:
        return without_hash(revisions[revision]["spec"]["template"])
    if baseline is None or revision is None or baseline.previous_revision != revision:
        return None
    return baseline.previous_template


def isolation_value(key: str) -> str:
    """The isolation label's value for a step key (the dry-run executor predicts the same)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def isolation_policy_name(remediation_id: str) -> str:
    """The deny-all NetworkPolicy of one remediation: a readable DNS-1123 name, unique by hash."""
    slug = re.sub(r"[^a-z0-9-]+", "-", remediation_id.lower()).strip("-")[:30].strip("-")
    return f"ambient-isolate-{slug}-{hashlib.sha256(remediation_id.encode()).hexdigest()[:10]}"


def images_of(template: Obj) -> list[str]:
    return [c.get("image", "") for c in (template.get("spec") or {}).get("containers") or []]


def configmaps_of(template: Obj) -> list[str]:
    """ConfigMaps the pod template reads: volumes, projected sources, envFrom and env."""
    spec = template.get("spec") or {}
    names: list[str] = []
    for volume in spec.get("volumes") or []:
        if volume.get("configMap"):
            names.append(volume["configMap"]["name"])
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("configMap"):
                names.append(source["configMap"]["name"])
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for source in container.get("envFrom") or []:
            if source.get("configMapRef"):
                names.append(source["configMapRef"]["name"])
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                names.append(ref["name"])
    return sorted({n for n in names if n})


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """A Service selector (our isolation label aside) that picks the workload's pods."""
    own = {k: v for k, v in selector.items() if k != ISOLATION_LABEL}
    return bool(own) and all(labels.get(k) == v for k, v in own.items())


def merge_diff(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch that turns the flat map ``current`` into ``wanted``."""
    diff: dict[str, Any] = {k: None for k in current if k not in wanted}
    diff.update({k: v for k, v in wanted.items() if current.get(k) != v})
    return diff


def own_pods(deployment: Obj, running: list[Obj] | None = None) -> Obj:
    """A pod selector of the Deployment's own pods: its selector (matchExpressions too; an
    empty one would take every pod of the namespace) narrowed to its pod template's labels
    that the pods of every ReplicaSet still ``running`` (a rollout under way) carry too."""
    # Its selector alone may take other workloads' pods (tier=web: a StatefulSet's too, behind
    # the shared Service the isolation left alone), and they have no alert. The template's
    # labels satisfy the selector (the API server requires it), so its pods keep matching; an
    # older release's pods may differ in some (version=v1), and kept they would escape.
    selector = deployment["spec"]["selector"]
    labels = (deployment["spec"]["template"].get("metadata") or {}).get("labels") or {}
    for rs in running or []:
        theirs = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
        labels = {k: v for k, v in labels.items() if theirs.get(k) == v}
    chosen: Obj = {"matchLabels": {**labels, **(selector.get("matchLabels") or {})}}
    if selector.get("matchExpressions"):
        chosen["matchExpressions"] = selector["matchExpressions"]
    return chosen


def stopped_reason(
    name: str, rung: Rung = Rung.SCALE_OUT, autoscaler: str | None = None, *, asked: bool = False
) -> str:
    """Why the ladder's ``rung`` (restart, scale out), or a restart a person ``asked`` for,
    leaves a Deployment at 0 replicas alone (held there by ``autoscaler``, when one scales it)."""
    # Zero is a person's or a tool's decision (the full rollback restores it as the state
    # before the incident), and a HorizontalPodAutoscaler does not scale such a Deployment
    # either: starting pods someone stopped is no remediation of an alert. A restart would
    # only change the template of no pod.
    held = f"{name} is scaled to 0 replicas"
    fix = "scale it up by hand if it should run"
    if autoscaler is not None:
        # "Someone stopped it" and "scale it up by hand" were said of a workload its
        # autoscaler (or what drives it, as KEDA does) holds at 0: a count set by hand is undone.
        held += f" by {autoscaler} (or what drives it, such as KEDA)"
        fix = "change the autoscaler's bounds or triggers if it should run"
    if asked:
        return f"{held}: no pod runs, so there is nothing to restart ({fix})"
    if rung is Rung.RESTART:
        why = "a restart would start no pod of it"
    else:
        why = "the scale out does not start it again"
    if autoscaler is not None:
        return f"{held}, and {why} ({fix})"
    return f"{held}: someone stopped it, and {why} ({fix})"
