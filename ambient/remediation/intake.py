"""What an alert must pass before its run starts, beyond its own shape: a cluster the
configured executor can reach, a verify URL the worker's destination guard allows."""

from __future__ import annotations

from fnmatch import fnmatchcase
from glob import escape

from ambient.clients.guard import DestinationGuard, RefusedDestinationError
from ambient.clients.kube import kubeconfig_contexts, kubeconfig_tke_clusters
from ambient.clients.kube_errors import KubeError
from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.identifiers import TKE_CLUSTER_HINT, TKE_CLUSTER_ID
from ambient.remediation.alerts import Alert
from ambient.remediation.safety import Approvers
from ambient.remediation.views import InvalidRemediationError
from ambient.settings import Settings


def check_reachable(settings: Settings, alert: Alert) -> None:
    """Refuses (InvalidRemediationError naming the field) what would fail only once it runs:
    a cluster out of the executor's reach, a verify URL the worker's guard refuses."""
    check_cluster(settings, alert.cluster_id)
    # The guard's static check (no DNS). Unread, every verification says "not resolved" and the
    # ladder climbs to its strongest rungs on a metric it never saw.
    source = alert.verify.source if alert.verify is not None else None
    url = getattr(source, "url", None)
    if url is None:
        return
    try:
        DestinationGuard(settings.fetch_allow_cidrs).check_url_static(str(url))
    except RefusedDestinationError as exc:
        raise InvalidRemediationError(
            f"alert.verify.source.url: {exc}. Nothing was started.",
            field="alert.verify.source.url",
        ) from None


def check_verify_secret(settings: Settings, alert: Alert, *, user: str, is_admin: bool) -> None:
    """A verify source's secret only if ``user`` may use it (as a threshold watch's)."""
    source = alert.verify.source if alert.verify else None
    auth = getattr(source, "auth", None)
    if auth is None:
        return
    secrets = SecretResolver(settings.secrets)
    try:
        secrets.check_use(
            auth.secret, str(getattr(source, "url", "")), user=user, is_admin=is_admin
        )
    except PermanentNotifyError as exc:
        field = "alert.verify.source.auth.secret"
        raise InvalidRemediationError(
            f"{field}: {exc}. Nothing was started.", field=field
        ) from None


def check_cluster(settings: Settings, cluster_id: str) -> None:
    """A cluster the Kubernetes executor could not reach is refused before anything starts."""
    # The executor takes a context of AMBIENT_KUBECONFIG by its name and any other id as a TKE
    # cluster (DescribeClusterKubeconfig): a name that is no TKE id can only be a context, and
    # one the kubeconfig lacks would fail the workflow only once it runs. The dry_run executor
    # reaches no cluster.
    if settings.remediation_executor != "kubernetes" or TKE_CLUSTER_ID.fullmatch(cluster_id):
        return
    try:
        contexts = kubeconfig_contexts(settings.kubeconfig)
    except KubeError as exc:
        raise InvalidRemediationError(
            f"alert.cluster_id: {exc}", field="alert.cluster_id"
        ) from None
    if cluster_id in contexts:
        return
    where = (
        f"AMBIENT_KUBECONFIG ({settings.kubeconfig}) has the contexts "
        f"{', '.join(sorted(contexts)) or 'none'}"
        if settings.kubeconfig is not None
        else "AMBIENT_KUBECONFIG is not set"
    )
    raise InvalidRemediationError(
        f"alert.cluster_id: {cluster_id!r} is not a TKE cluster id ({TKE_CLUSTER_HINT}) "
        f"nor a context of the kubeconfig: {where}. Nothing was started.",
        field="alert.cluster_id",
    )


def cluster_identity(settings: Settings, cluster_id: str) -> str:
    """The TKE cluster id a context of AMBIENT_KUBECONFIG reaches, else ``cluster_id``: the
    cluster's one name in a remediation's id, however an alert names it."""
    # A person's alert names the context, a watch's or the triage's (Cloud Monitor dimensions)
    # the TKE id: two ids were two ladders on one Deployment at once.
    return kubeconfig_tke_clusters(settings.kubeconfig).get(cluster_id, cluster_id)


def cluster_names(settings: Settings, cluster_id: str) -> frozenset[str]:
    """Every name of the cluster ``cluster_id`` names: it, its TKE id (``cluster_identity``)
    and each context of AMBIENT_KUBECONFIG that reaches that id. An alert rule's or the
    approvers' cluster glob that matches one of them is about this cluster."""
    return _names_in(kubeconfig_tke_clusters(settings.kubeconfig), cluster_id)


def _names_in(reaches: dict[str, str], cluster_id: str) -> frozenset[str]:
    """``cluster_names`` in the map of contexts to the TKE ids they reach, read once."""
    identity = reaches.get(cluster_id, cluster_id)
    return frozenset({cluster_id, identity, *(c for c, i in reaches.items() if i == identity)})


def cluster_approvers(settings: Settings) -> Approvers:
    """AMBIENT_REMEDIATION_APPROVERS with each cluster of AMBIENT_KUBECONFIG's contexts under
    all its names: whoever a glob names on the TKE id (``cls-*``) approves on a context that
    reaches it (``prod``), and the other way round. Every door reads the policy through it."""
    policy = settings.remediation_approvers
    reaches = kubeconfig_tke_clusters(settings.kubeconfig)
    if not policy or not reaches:
        return policy
    widened = {pattern: list(names) for pattern, names in policy.items()}
    for identity in set(reaches.values()):
        names = _names_in(reaches, identity)
        approvers = sorted(
            {
                user
                for pattern, users in policy.items()
                if any(fnmatchcase(name, pattern) for name in names)
                for user in users
            }
        )
        for name in names if approvers else ():
            exact = widened.setdefault(escape(name), [])
            exact.extend(user for user in approvers if user not in exact)
    return widened


def cluster_service(settings: Settings, cluster_id: str, service: str) -> tuple[str, str]:
    """The cluster's one name (``cluster_identity``) and ``service`` (``Alert.service``: the
    cluster, namespace and workload) under it: the rate limit's ledger and the breaker count
    one cluster's and one service's steps however their alerts name the cluster."""
    cluster = cluster_identity(settings, cluster_id)
    if cluster != cluster_id and service.startswith(f"{cluster_id}/"):
        service = cluster + service.removeprefix(cluster_id)
    return cluster, service
