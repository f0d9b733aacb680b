"""Applying YAML to a cluster: parse, preview by a server-side dry run with diffs, then apply.

Server-side apply with our field manager: applying the same YAML again changes nothing, and
a document that one refuses in the preview stops them all before any is applied.
"""

from __future__ import annotations

import copy
import difflib
from importlib.metadata import version
from typing import Any, Literal

import httpx2
import msgspec
import yaml
from lightkube import AsyncClient, codecs
from lightkube.core.exceptions import ApiError, LoadResourceError
from lightkube.core.resource import NamespacedResource
from pydantic import BaseModel, Field, PrivateAttr

from ambient.clients.kube import FIELD_MANAGER
from ambient.clients.kube_errors import (
    KubeForbiddenError,
    KubeUnauthorizedError,
    answered,
    kube_error,
    status_of,
)
from ambient.cloud.audit import Mode, Region
from ambient.cloud.errors import (
    CloudOpsError,
    CloudOpsFailedError,
    CloudOpsInputError,
    lacks_permission,
)
from ambient.domain.configs import UserConfig
from ambient.domain.identifiers import ClusterRef, NamespaceName, namespace_name


# --- Kubernetes: apply YAML, scale, restart -------------------------------------------------
class ApplySpec(UserConfig):
    cluster_id: ClusterRef = Field(description="TKE cluster id or a context of AMBIENT_KUBECONFIG")
    documents: str = Field(
        min_length=1, max_length=500_000, description="YAML: one or more documents (---)"
    )
    namespace: NamespaceName = Field(default="default", description="for documents that name none")
    region: Region = Field(
        default=None, description="the TKE cluster's region (default: configured)"
    )


class DocumentChange(BaseModel):
    index: int = Field(description="1-based position in the YAML")
    kind: str
    name: str
    namespace: str | None
    change: Literal["create", "update", "unchanged"]
    diff: str = Field(description="unified diff of the live object against the applied one")
    applied: bool = Field(description="true when applying it changed the object in the cluster")
    # The live object's resourceVersion at the preview (None: it did not exist). The API server
    # bumps it only for a write that changes something, so an equal one after the apply means
    # the apply was a no-op (someone else made the same change in between, say).
    _live_version: str | None = PrivateAttr(default=None)


class ApplyResult(BaseModel):
    mode: Mode
    cluster_id: str
    documents: list[DocumentChange]
    idempotency_key: str
    summary: str


# What the API server fills in: left out of a diff so it shows only what the YAML changes.
_SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields")


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _resource_version(obj: dict[str, Any] | None) -> str | None:
    if obj is None:
        return None
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version is not None else None


# kubectl apply keeps the whole object it applied here: for a Secret, its values.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _masked(obj: dict[str, Any], other: dict[str, Any] | None, side: str) -> dict[str, Any]:
    """A Secret with its values as kubectl diff shows them: ``***``, marked where they change.

    The marks are kubectl diff's: a changed value must show (the document is an "update" and
    is applied), so whether a value differs is told either way; the values never are."""
    # A preview is a dry_run user's: the diff must not read the cluster's secrets out to them.
    if obj.get("kind") != "Secret":
        return obj

    def hide(values: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
        return {k: "***" if theirs.get(k) == v else f"*** ({side})" for k, v in values.items()}

    masked = dict(obj)
    for field in ("data", "stringData"):
        if values := obj.get(field) or {}:
            masked[field] = hide(values, (other or {}).get(field) or {})
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if _LAST_APPLIED in annotations:
        theirs = ((other or {}).get("metadata") or {}).get("annotations") or {}
        shown = {**annotations, **hide({_LAST_APPLIED: annotations[_LAST_APPLIED]}, theirs)}
        masked["metadata"] = {**masked["metadata"], "annotations": shown}
    return masked


def _diff(label: str, live: dict[str, Any] | None, applied: dict[str, Any]) -> str:
    before = (
        yaml.safe_dump(_masked(_comparable(live), applied, "before"), sort_keys=True)
        if live is not None
        else ""
    )
    after = yaml.safe_dump(_masked(_comparable(applied), live, "after"), sort_keys=True)
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{label} (live)" if live is not None else "/dev/null",
            tofile=f"{label} (applied)",
        )
    )


# YAML aliases share one object when loaded but are copied when it is serialised: a few KB
# of nested aliases are gigabytes of JSON. Hand-written manifests use a few, if any.
MAX_ALIASES = 100


class _TooManyAliases(yaml.YAMLError):
    """The YAML uses more than MAX_ALIASES aliases."""


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that counts aliases over all the documents and stops past the limit."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooManyAliases
        return super().compose_node(parent, index)


def _name_problem(name: Any, namespace: Any) -> str | None:
    """What is wrong with a document's metadata.name or metadata.namespace, if anything."""
    # Both go into the request path unescaped: a '/' would address another object or a
    # subresource (.../deployments/web/status), so they are checked before anything is sent.
    # The API server validates the rest of a name by kind (RBAC names may hold ':').
    if (
        not isinstance(name, str)
        or len(name) > 253
        or name in (".", "..")
        or any(c in name for c in "/%")
    ):
        return (
            f"metadata.name {str(name)[:60]!r} must be text of at most 253 characters, "
            "without '/' or '%' (lowercase letters, digits, '-' and '.' for most kinds)"
        )
    if namespace is not None:
        try:
            namespace_name(str(namespace))
        except ValueError as exc:
            return f"metadata.namespace {str(namespace)[:60]!r} {exc}"
    return None


def _unusable(what: str) -> CloudOpsInputError:
    return CloudOpsInputError("documents", f"{what}; nothing was applied")


def _check_kind(index: int, api_version: str, kind: str) -> None:
    """A kind no Kubernetes API group of that version has (a kubeconfig's ``kind: Config``,
    apiVersion v1), an old or mistyped version of a built-in group (batch/v1beta1, app/v1), or
    a group none of the built-in ones is (a CRD's, cert-manager.io/v1), is refused as such:
    lightkube said "Cannot find resource kind 'Config' in module lightkube.resources.core_v1",
    or "... If using a CRD, ensure a generic resource is defined", its own words (the objects
    are its typed resources: no generic ones)."""
    try:
        codecs.resource_registry.load(api_version, kind)
    except LoadResourceError as exc:
        group = api_version.split("/")[0] if "/" in api_version else ""
        said = f"document {index} is of kind {kind} (apiVersion {api_version}), which is not "
        if isinstance(exc.__cause__, AttributeError):  # the group's module, without the kind
            said += "a Kubernetes resource the cluster serves"
        elif "." in group and not group.endswith(".k8s.io"):  # as lightkube tells a CRD's
            said += "one this product can apply: custom resources are not supported"
        else:
            said = (
                f"document {index}: apiVersion {api_version} has no kind {kind} this product "
                "knows (an old or mistyped version of a built-in API group: current ones are "
                "listed by `kubectl api-resources`)"
            )
        raise _unusable(said) from None


# The Kubernetes version whose fields the typed objects know (lightkube-models' 1.37.x).
MODELS_VERSION = ".".join(version("lightkube-models").split(".")[:2])


def _unknown_fields(written: Any, read: Any, path: str = "") -> list[str]:
    """The fields of ``written`` (a document) that its typed object ``read`` lost: lightkube
    drops a key its model lacks, so a misspelt field (``replicaz``), one at the wrong depth or
    one newer than the models was applied as if never written."""
    if isinstance(written, dict) and isinstance(read, dict):
        return [
            found
            for key, value in written.items()
            if value is not None
            for found in (
                _unknown_fields(value, read[key], f"{path}.{key}" if path else str(key))
                if key in read
                else [f"{path}.{key}" if path else str(key)]
            )
        ]
    if isinstance(written, list) and isinstance(read, list):
        return [
            found
            for index, (value, kept) in enumerate(zip(written, read, strict=False))
            for found in _unknown_fields(value, kept, f"{path}[{index}]")
        ]
    return []


def parse_documents(text: str, namespace: str) -> list[tuple[int, Any]]:
    """lightkube objects for each non-empty document; the first bad one is named."""
    try:
        raw = list(yaml.load_all(text, Loader=_Loader))
    except _TooManyAliases:
        raise _unusable(
            f"more than {MAX_ALIASES} YAML aliases (*name): write the repeated parts out"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CloudOpsInputError("documents", f"not valid YAML{where}: {exc}") from None
    found: list[tuple[int, Any]] = []
    for index, doc in enumerate(raw, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not all(
            doc.get(key) and isinstance(doc[key], str) for key in ("apiVersion", "kind")
        ):
            raise _unusable(f"document {index} needs apiVersion and kind (text)")
        _check_kind(index, doc["apiVersion"], doc["kind"])
        label = f"document {index} ({doc['kind']}"
        metadata = doc.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise _unusable(f"{label}): metadata must be a mapping (name: ...)")
        name = metadata.get("name")
        if not name:
            raise _unusable(f"{label}) needs metadata.name")
        problem = _name_problem(name, metadata.get("namespace"))
        if problem is not None:
            raise _unusable(f"{label}): {problem}")
        try:
            obj = codecs.from_dict(doc)
        except (LoadResourceError, msgspec.ValidationError) as exc:
            raise _unusable(f"{label} {name}): {exc}") from None
        if unknown := _unknown_fields(doc, obj.to_dict()):
            more = f" and {len(unknown) - 5} more" if unknown[5:] else ""
            shown = ", ".join(unknown[:5]) + more
            fields = "field" if len(unknown) == 1 else "fields"
            raise _unusable(
                f"{label} {name}): unknown {fields} {shown}: not of {doc['apiVersion']} "
                f"{doc['kind']} as Kubernetes {MODELS_VERSION} defines it (check its spelling "
                "and indentation)"
            )
        meta = obj.metadata
        if isinstance(obj, NamespacedResource) and meta is not None and not meta.namespace:
            meta.namespace = namespace
        found.append((index, obj))
    if not found:
        raise CloudOpsInputError("documents", "no documents in the YAML")
    return found


# A request sent whole whose answer did not come: the cluster may have done what it asked.
ANSWER_LOST = (httpx2.ReadError, httpx2.ReadTimeout, httpx2.RemoteProtocolError)


def _refused(
    exc: httpx2.HTTPStatusError | httpx2.TransportError,
    index: int,
    obj: Any,
    done: str,
    writing: bool = False,
) -> CloudOpsError:
    """The cluster's refusal of one document, for the preview and the apply (``writing``)
    alike (``done``)."""
    label = f"document {index} ({obj.kind} {obj.metadata.name})"
    if isinstance(exc, httpx2.TransportError):
        # Not connected (nothing was sent, perhaps to where the cluster no longer is: after a
        # connect timeout the next request reads the kubeconfig again, not this one), or, for
        # an apply, sent and its answer lost: audited as kind answer_lost. A timeout's text is
        # empty: its type is said.
        timed_out = isinstance(exc, httpx2.ConnectTimeout)
        stale = timed_out or isinstance(exc, httpx2.ConnectError)
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        kind, said = "unavailable", f"{label}: {why}; {done}; try again"
        if writing and isinstance(exc, ANSWER_LOST):
            kind, said = "answer_lost", f"{label}: its answer was lost ({why}): it may have been "
            said += f"applied; {done}"
        return CloudOpsFailedError(kind, said, stale=stale, stale_again=not timed_out)
    refused = kube_error(exc, label)  # an ApiError, or a gateway's page (no Status)
    code, message = status_of(exc)
    # The credentials, not the document: the same words as scale and restart.
    if isinstance(refused, KubeForbiddenError):
        return lacks_permission(refused, done)
    if isinstance(refused, KubeUnauthorizedError):
        return CloudOpsFailedError("auth", f"{refused}; {done}", stale=True)
    if refused.retryable and code != 409:
        # The cluster could not answer now (5xx, 429), as a transport error.
        return CloudOpsFailedError("unavailable", f"{refused}; {done}; try again")
    if code == 404 and isinstance(exc, ApiError):
        # Server-side apply creates what is missing: a 404 is the namespace (the Status
        # details name it) or a kind the cluster does not serve (empty details).
        details = exc.status.details
        if details is not None and details.kind == "namespaces":
            return CloudOpsInputError(
                "documents",
                f'{label}: namespace "{details.name}" does not exist in the cluster; create '
                f"it first or set metadata.namespace to one that exists; {done}",
            )
        return CloudOpsInputError(
            "documents",
            f"{label}: the cluster does not serve {obj.apiVersion} {obj.kind} (kubectl "
            f"api-resources lists what it does); {done}",
        )
    return CloudOpsFailedError(
        "invalid_document",
        f"{label} was refused by the cluster: {message}; {done}",
    )


# Where a document bound for a namespace that an earlier one creates is validated.
CHECKED_IN = "default"
# A 422 of admission, not of the document's schema: a policy or webhook may answer for
# ``default`` alone what it would not for the document's own namespace.
ADMISSION = ("admission webhook", "ValidatingAdmissionPolicy")


def _invalid_document(exc: ApiError) -> bool:
    """The API server's own validation refusing the document (StatusReasonInvalid with its
    fields' causes), which holds in any namespace."""
    status = exc.status
    causes = (status.details.causes if status.details else None) or []
    admission = any(word in (status.message or "") for word in ADMISSION)
    return status.code == 422 and not admission and any(c.field for c in causes)


async def _checked_elsewhere(client: AsyncClient, index: int, obj: Any) -> None:
    """The server dry-runs nothing into a namespace that does not exist yet: a dry-run create
    of the document in ``default`` has the cluster validate it, so that one its schema refuses
    stops the apply before the namespace is made. Anything else there (a policy or webhook,
    the name taken, RBAC, no such namespace) leaves it to be checked when applied."""
    probe = copy.deepcopy(obj)
    probe.metadata.namespace = CHECKED_IN
    try:
        await answered(client.create(probe, dry_run=True))
    except ApiError as exc:
        if _invalid_document(exc):
            done = f"nothing was applied (checked by a dry run in namespace {CHECKED_IN})"
            raise _refused(exc, index, obj, done) from None
    except (httpx2.HTTPStatusError, httpx2.TransportError):
        pass


async def preview(client: AsyncClient, objects: list[tuple[int, Any]]) -> list[DocumentChange]:
    """A server-side dry run of every document first: one refused, none is applied."""
    changes: list[DocumentChange] = []
    # Namespaces an earlier document creates: the server dry-runs nothing into them (404),
    # so what goes there is shown as written and checked when applied, after its namespace.
    creating: set[str] = set()
    for index, obj in objects:
        kind, name, namespace = obj.kind, obj.metadata.name, obj.metadata.namespace
        try:
            try:
                live = (await answered(client.get(type(obj), name, namespace=namespace))).to_dict()
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                live = None
            applying = client.apply(obj, field_manager=FIELD_MANAGER, force=True, dry_run=True)
            after = await answered(applying)
        except (httpx2.HTTPStatusError, httpx2.TransportError) as exc:
            details = exc.status.details if isinstance(exc, ApiError) else None
            if namespace not in creating or details is None or details.kind != "namespaces":
                raise _refused(exc, index, obj, "nothing was applied") from None
            await _checked_elsewhere(client, index, obj)
            after = obj
        if kind == "Namespace" and live is None:
            creating.add(name)
        diff = _diff(f"{kind}/{name}", live, after.to_dict())
        document = DocumentChange(
            index=index,
            kind=kind,
            name=name,
            namespace=namespace,
            change="create" if live is None else ("update" if diff else "unchanged"),
            diff=diff,
            applied=False,
        )
        document._live_version = _resource_version(live)
        changes.append(document)
    return changes


async def apply_documents(
    client: AsyncClient, objects: list[tuple[int, Any]], changes: list[DocumentChange]
) -> None:
    # Server-side apply is idempotent: applying the same YAML again changes nothing, so
    # unchanged documents are skipped and a retry after a partial failure completes it.
    # A document counts as applied only if the cluster changed: the API server bumps an
    # object's resourceVersion only for a write that changes it, so the version after our
    # apply is compared with the newest one we know (the preview's read, or an earlier
    # document of this YAML naming the same object).
    known: dict[tuple[str, str | None, str], str | None] = {}
    sent: list[int] = []
    for (index, obj), change in zip(objects, changes, strict=True):
        if change.change == "unchanged":
            continue
        try:
            after = await answered(client.apply(obj, field_manager=FIELD_MANAGER, force=True))
        except (httpx2.HTTPStatusError, httpx2.TransportError) as exc:
            done = ", ".join(map(str, sent)) or "none"
            raise _refused(
                exc,
                index,
                obj,
                f"documents applied before it: {done} (apply the same YAML again to finish)",
                writing=True,
            ) from None
        sent.append(index)
        key = (change.kind, change.namespace, change.name)
        before = known[key] if key in known else change._live_version
        version = _resource_version(after.to_dict())
        known[key] = version
        change.applied = before is None or version != before
