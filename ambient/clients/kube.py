"""Kubernetes reads through lightkube: workloads with status, pods, rollout history.

The kubeconfig comes from TKE (`DescribeClusterKubeconfig`) or from a file
(`AMBIENT_KUBECONFIG`) for clusters outside TKE.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ConfigError
from lightkube.resources.apps_v1 import Deployment
from pydantic import BaseModel

from ambient.clients.kube_errors import (
    KubeError,
    KubeUnavailableError,
    KubeUnreachableError,
    TkeClusterNotFoundError,
    kube_call,
)
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError, TencentRetryableError
from ambient.domain.identifiers import TKE_CLUSTER_ID
from ambient.refusals import N_

T = TypeVar("T")
Key = tuple[str | None, str | None]  # a cluster's id (None: the current context), TKE region
FileVersion = tuple[int, int]  # a kubeconfig file's mtime (ns) and size

REVISION = "deployment.kubernetes.io/revision"
FIELD_MANAGER = "ambient-ops"
# A cluster id no kubeconfig context and no Tencent Cloud account names (a page reads it back).
NOT_A_CONTEXT = N_(
    "cluster %(cluster)s is not a context of AMBIENT_KUBECONFIG and Tencent Cloud is not "
    "configured (set TENCENTCLOUD_SECRET_ID/KEY for TKE clusters)"
)


def revision_number(value: str | None) -> int | None:
    """A revision annotation as a number; None when absent or not a number."""
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    return int(value) if value and value.isdecimal() else None


class Workload(BaseModel):
    namespace: str
    name: str
    replicas: int
    ready: int
    updated: int
    available: int
    revision: int | None
    images: list[str]
    #: Rolled out, as the remediation ladder's rollout verdict judges it (``rolled_out``).
    healthy: bool
    #: That verdict in words: what it waits for or failed on ("1 of 2 new replicas have been
    #: updated", a progress deadline exceeded, paused, scaled to 0), or rolled out.
    health: str


# What reading a kubeconfig raises for a file that is no kubeconfig (YAML of another shape
# raises AttributeError or TypeError inside lightkube).
UNREADABLE = (ConfigError, OSError, KeyError, TypeError, AttributeError, yaml.YAMLError)


def client_from_kubeconfig(
    text: str | None = None, path: Path | None = None, context: str | None = None
) -> AsyncClient:
    """An async client for a kubeconfig as YAML text (TKE) or a file, in ``context`` if given."""
    what = "TKE's kubeconfig" if text else f"AMBIENT_KUBECONFIG {path}"
    # Read errors as a KubeError naming the file: lightkube's ConfigError, a YAML error or a
    # KeyError reached a person as "Error executing tool list_workloads".
    try:
        if text:
            config = KubeConfig.from_dict(yaml.safe_load(text))
        elif path is None:
            raise KubeError("no kubeconfig: give a TKE cluster id or set AMBIENT_KUBECONFIG")
        elif not path.is_file():
            raise KubeError(f"{what} not found")
        else:
            config = KubeConfig.from_file(path)
    except UNREADABLE as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise KubeError(f"{what} is not a readable kubeconfig: {why}") from None
    if context is not None and context not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise KubeError(f"kubeconfig has no context {context!r} (contexts: {known})")
    try:
        chosen = config if context is None else config.get(context_name=context)
        return AsyncClient(config=chosen, field_manager=FIELD_MANAGER, trust_env=False)
    except OSError as exc:  # a certificate or key file it names
        named = exc.filename or "a file it names"
        raise KubeError(f"{what}: cannot read {named}: {exc.strerror or exc}") from None
    except UNREADABLE as exc:
        # A context naming a cluster or user the file does not define (lightkube: KeyError):
        # retried as a passing failure for minutes, and "Error executing tool" at MCP.
        name = f"context {context!r}" if context else "its current context"
        raise KubeError(
            f"{what}: {name} names something the file does not define ({type(exc).__name__}: {exc})"
        ) from None


def kubeconfig_contexts(path: Path | None) -> frozenset[str]:
    """Context names of the kubeconfig file (empty when there is none)."""
    # Parsed once per version of the file: the API checks every alert's cluster against it,
    # and parsing the YAML was a good part of answering an alert in a storm. One stat a call
    # (every cluster client asked for is looked up here).
    try:
        stat = path.stat() if path is not None else None
        if stat is None or not S_ISREG(stat.st_mode):
            return frozenset()
        return _contexts(str(path), stat.st_mtime_ns, stat.st_size)
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    except UNREADABLE as exc:
        raise KubeError(f"AMBIENT_KUBECONFIG {path} is not a readable kubeconfig: {exc}") from None


@functools.lru_cache(maxsize=8)
def _contexts(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    # mtime and size are the cache key: an edited file is read again.
    return frozenset(KubeConfig.from_file(path).contexts)


def kubeconfig_tke_clusters(path: Path | None) -> dict[str, str]:
    """Context name -> the TKE cluster id it reaches, for the contexts of the kubeconfig file
    that name one; empty when there is none or it cannot be read (the cluster check says so)."""
    try:
        stat = path.stat() if path is not None else None
        if stat is None or not S_ISREG(stat.st_mode):
            return {}
        return dict(_tke_clusters(str(path), stat.st_mtime_ns, stat.st_size))
    except (FileNotFoundError, NotADirectoryError, *UNREADABLE):
        return {}


@functools.lru_cache(maxsize=8)
def _tke_clusters(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    # A kubeconfig from DescribeClusterKubeconfig names its cluster entry by the cluster's id,
    # and its internet endpoint is https://<id>.ccs.tencent-cloud.com; a context renamed
    # ("prod") still points at that entry.
    config = KubeConfig.from_file(path)
    found: list[tuple[str, str]] = []
    for name, context in config.contexts.items():
        entry = config.clusters.get(context.cluster)
        host = (urlsplit(entry.server).hostname or "") if entry is not None else ""
        for candidate in (context.cluster, host.split(".", 1)[0]):
            if TKE_CLUSTER_ID.fullmatch(candidate or ""):
                found.append((name, candidate))
                break
    return tuple(found)


async def cluster_client(
    cluster_id: str,
    kubeconfig: Path | None,
    tencent: TencentCloud | None,
    *,
    region: str | None = None,
) -> AsyncClient:
    """A client for a context of ``kubeconfig`` by its name, else for the TKE cluster of that
    id (TKE's kubeconfig for its intranet access, or its internet access when
    AMBIENT_TKE_EXTRANET is set): the one rule of which cluster a reference names, for reads
    and writes alike."""
    if cluster_id in kubeconfig_contexts(kubeconfig):
        return client_from_kubeconfig(path=kubeconfig, context=cluster_id)
    if tencent is None or not tencent.configured:
        raise KubeError(NOT_A_CONTEXT % {"cluster": repr(cluster_id)})
    params = {"ClusterId": cluster_id, "IsExtranet": tencent.tke_extranet}
    try:
        answer = await tencent.call("tke", "DescribeClusterKubeconfig", params, region=region)
    except TencentCloudError as exc:
        # As the cluster's own errors: retried only when it may pass (a CAM refusal or a
        # cluster TKE does not know never does).
        error = KubeUnavailableError if isinstance(exc, TencentRetryableError) else KubeError
        if exc.code.endswith(".KubeClientConnection"):  # TKE could not reach the cluster
            error = KubeUnreachableError  # may come back; a dry run says so at once
        if exc.code.endswith("ClusterNotFound"):  # TKE's four codes for it, none retryable
            # Its code, not its message: the client's message names the region and what to give.
            answered = f"{exc.code}, RequestId {exc.request_id}" if exc.request_id else exc.code
            raise TkeClusterNotFoundError(
                f"TKE has no cluster {cluster_id} in {region or tencent.region} "
                f"(DescribeClusterKubeconfig: {answered}): check the id, and give the cluster's "
                "region"
            ) from exc
        raise error(
            f"TKE gave no kubeconfig for {cluster_id} (DescribeClusterKubeconfig): {exc}"
        ) from exc
    # Empty, it would be taken as "use AMBIENT_KUBECONFIG".
    text = str(answer.get("Kubeconfig", ""))
    if not text.strip():
        access = "internet" if tencent.tke_extranet else "intranet"
        raise KubeError(
            f"TKE returned no kubeconfig for {cluster_id!r}: enable the cluster's API server "
            f"{access} access in the TKE console (AMBIENT_TKE_EXTRANET chooses which)"
        )
    return client_from_kubeconfig(text)


@dataclass(eq=False)
class _Kept:
    """A cluster's client, the version of the file it was read from (None: TKE's), and how
    many calls are using it: one dropped is closed when the last of them is done."""

    key: Key
    client: AsyncClient
    version: FileVersion | None
    users: int = 0
    dropped: bool = False


class KubeClients:
    """One lightkube client per cluster (id and TKE region): a context of AMBIENT_KUBECONFIG
    (or its current context: no id), else TKE's; the worker's and the doors' alike."""

    def __init__(self, kubeconfig: Path | None, tencent: TencentCloud | None) -> None:
        self._kubeconfig, self._tencent = kubeconfig, tencent
        self._clients: dict[Key, _Kept] = {}
        self._dropped: set[_Kept] = set()  # still used by a call when dropped
        # One lock a cluster: its kubeconfig is asked for once, and a cluster whose TKE answer
        # is slow (up to the client's timeout) holds up no other cluster's first client.
        self._locks: dict[Key, asyncio.Lock] = {}
        self._closed = False  # aclose(): the process stops, no client is made again

    async def _kept(self, cluster_id: str | None, region: str | None, use: bool = False) -> _Kept:
        """The cluster's kept client (``use``: counted as used until its call ends). A context's is
        made again once AMBIENT_KUBECONFIG is edited: while the server it named still answers,
        nothing else tells that it is no longer the one the file names."""
        key = self._key(cluster_id, region)
        async with self._locks.setdefault(key, asyncio.Lock()):
            if self._closed:
                raise KubeUnavailableError("the cluster clients are closed: the process stops")
            # Its version before it is read: a file written in between is read again next time.
            version = self._version() if key[1] is None else None
            kept = self._clients.get(key)
            if kept is not None and kept.version != version:
                await self._drop(kept)
                kept = None
            if kept is None:
                made = (
                    client_from_kubeconfig(path=self._kubeconfig)
                    if cluster_id is None
                    else await cluster_client(
                        cluster_id, self._kubeconfig, self._tencent, region=region
                    )
                )
                kept = self._clients[key] = _Kept(key, made, version)
            kept.users += use
            return kept

    async def using(
        self,
        cluster_id: str | None,
        region: str | None,
        work: Callable[[AsyncClient], Awaitable[T]],
        unchanged: Callable[[], bool] = lambda: True,
    ) -> T:
        """``work`` on the cluster's client. A failure that says the kept client may be what
        failed (``stale``: its credentials refused, or no connection made: the cluster
        re-created with a new CA, or moved) drops it, and ``work`` is done once more on a
        client of the kubeconfig read again: what TKE or the file says now is taken at once.
        Not once ``work`` has changed something (``unchanged`` false): what it says is said.
        A client dropped (here, by another call, or for an edited file) is closed once no
        call uses it: the calls still on it end as they would have."""
        again = False
        while True:
            kept = await self._kept(cluster_id, region, use=True)
            try:
                return await work(kept.client)
            except Exception as exc:
                # A KubeError, or what a door made of one (CloudOpsFailedError keeps ``stale``).
                if not getattr(exc, "stale", False):
                    raise
                # Only the client that failed: another call's fresh one stays.
                await self._drop(kept)
                if again or not unchanged() or not getattr(exc, "stale_again", True):
                    raise
                again = True
            finally:
                kept.users -= 1
                if kept.dropped and kept.users == 0 and kept in self._dropped:
                    self._dropped.discard(kept)
                    await kept.client.close()

    async def _drop(self, kept: _Kept) -> None:
        """Drop ``kept`` if it is still its cluster's client (under the key it was kept by: the
        file's contexts may have changed since); closed now if no call uses it."""
        if self._clients.get(kept.key) is kept:
            del self._clients[kept.key]
        if kept.dropped:
            return
        kept.dropped = True
        if kept.users:
            self._dropped.add(kept)
        else:
            await kept.client.close()

    def _version(self) -> FileVersion | None:
        with contextlib.suppress(OSError):
            if self._kubeconfig is not None:
                stat = self._kubeconfig.stat()
                return stat.st_mtime_ns, stat.st_size
        return None

    def _key(self, cluster_id: str | None, region: str | None) -> Key:
        """One key per cluster: a context has no region, a TKE cluster's default is the
        configured one (else the same cluster asked both ways had two clients, and a stale
        one dropped after a rotation left the other on the old kubeconfig)."""
        with contextlib.suppress(KubeError):  # an unreadable file: the client says so
            if cluster_id is None or cluster_id in kubeconfig_contexts(self._kubeconfig):
                return cluster_id, None
        return cluster_id, region or (self._tencent.region if self._tencent else None)

    async def aclose(self) -> None:
        self._closed = True
        for lock in list(self._locks.values()):  # clients being made are closed too
            async with lock:
                pass
        kept = [*self._clients.values(), *self._dropped]
        self._clients, self._dropped = {}, set()
        for each in kept:
            await each.client.close()


async def collected(items: AsyncIterable[T]) -> list[T]:
    """Every object a lightkube list call yields."""
    return [item async for item in items]


def _images(template: Any) -> list[str]:
    containers = template.spec.containers if template and template.spec else []
    return [c.image or "" for c in containers]


def rolled_out(deployment: dict[str, Any]) -> tuple[bool, str]:
    """What `kubectl rollout status` decides of a Deployment (as the API gives it): rolled out,
    or what it waits for or failed on; one scaled to 0 is not (kubectl calls it rolled out),
    and a paused one is judged by its available replicas (its rollout goes no further)."""
    status, meta = deployment.get("status") or {}, deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False, f"waiting for the controller to observe {name}'s new spec"
    progressing: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        # The controller gave up on the rollout: old pods may still serve, the new release
        # will not roll out however long we wait.
        why = progressing.get("message") or "no progress within spec.progressDeadlineSeconds"
        return (
            False,
            f"deployment {name} exceeded its progress deadline (ProgressDeadlineExceeded: {why})",
        )
    if desired == 0:
        # Rolled out for kubectl, but no pod serves: a metric that falls now (no traffic, no
        # errors) says nothing of the change, as behind an isolation.
        return False, f"deployment {name} is scaled to 0 replicas: no pod serves"
    if spec.get("paused"):
        # Paused (`kubectl rollout pause`), it updates no more replicas until it is resumed:
        # waiting for them would never end. Its pods of both releases serve, counted together.
        if available < desired:
            return False, f"deployment {name} is paused: {available} of {desired} available"
        midway = f" mid-rollout ({updated} of {desired} updated)" if updated < desired else ""
        return True, f"deployment {name} is paused{midway}: {available}/{desired} available"
    if updated < desired:
        return False, f"{updated} of {desired} new replicas have been updated"
    if total > updated:
        return False, f"{total - updated} old replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    return True, f"{name} successfully rolled out ({available}/{desired} available)"


async def list_workloads(client: AsyncClient, namespace: str | None = None) -> list[Workload]:
    """Deployments with replica counts, current revision and a health verdict."""
    listing = client.list(Deployment, namespace=namespace or "*")
    found = await kube_call("listing deployments", collected(listing))
    workloads = []
    for d in found:
        status, spec, meta = d.status, d.spec, d.metadata
        wanted = spec.replicas if spec and spec.replicas is not None else 1
        ready = (status.readyReplicas or 0) if status else 0
        # Not ready >= wanted: a release past its progress deadline keeps its old pods ready.
        healthy, health = rolled_out(d.to_dict())
        revision = (meta.annotations or {}).get(REVISION) if meta else None
        workloads.append(
            Workload(
                namespace=meta.namespace or "" if meta else "",
                name=meta.name or "" if meta else "",
                replicas=wanted,
                ready=ready,
                updated=(status.updatedReplicas or 0) if status else 0,
                available=(status.availableReplicas or 0) if status else 0,
                revision=revision_number(revision),
                images=_images(spec.template if spec else None),
                healthy=healthy,
                health=health,
            )
        )
    return sorted(workloads, key=lambda w: (w.namespace, w.name))
