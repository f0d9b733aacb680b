"""Kubernetes API failures as the product's errors: each says whether it may succeed later,
whether anything changed, and whether the process's kept client of the cluster is what failed."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TypeVar

import httpx2
from lightkube.core.exceptions import ApiError, ConfigError

T = TypeVar("T")


class KubeError(Exception):
    """A Kubernetes API call failed; the message carries the API's reason."""

    #: Whether the same call may succeed later (server busy, a conflicting writer).
    retryable: bool = False
    #: Whether a remediation step that failed so had changed anything (None: not known).
    changed: bool | None = None
    #: With ``changed`` False: refused at its reads, the step's stamps unread, so known of this
    #: try only (a try before it whose answer was lost may have written).
    unread: bool = False
    #: Whether the process's kept client of the cluster may be what failed, not the call:
    #: dropped, and the call made once more on the kubeconfig read again (KubeClients.using).
    stale: bool = False
    #: With ``stale``: whether the call is made once more at once (not after a connect
    #: timeout, which would double an unreachable cluster's wait: the next call reads anew).
    stale_again: bool = True
    #: Seconds the API server asked to wait before the next try (a 429's or 503's Retry-After,
    #: its Status' retryAfterSeconds); None: not asked.
    retry_after: float | None = None


class KubeNotFoundError(KubeError):
    """The named object does not exist."""


class TkeClusterNotFoundError(KubeError):
    """TKE knows no cluster of that id in the region asked (the message names the region)."""


class KubeUnauthorizedError(KubeError):
    """The API server refused our credentials (401): the kubeconfig is read again next time."""

    retryable = True
    stale = True


class KubeForbiddenError(KubeError):
    """The API server knows our credentials but RBAC does not allow the call (403)."""


class KubeRefusedError(KubeError):
    """The API server refused the request by a rule of the cluster's, not for the credentials
    (a 403 of an admission webhook or policy, a quota exceeded, a namespace being deleted):
    the same request is refused again, whatever client sends it."""


class KubeUnavailableError(KubeError):
    """The API server could not be reached or asked us to come back (5xx, 429, 409)."""

    retryable = True


class KubeUnreachableError(KubeUnavailableError):
    """No API server answered (refused, timed out, no route): may come back, or may never
    from here (an intranet address seen from outside its VPC)."""


class KubeNotConnectedError(KubeUnreachableError):
    """No connection was made, so nothing was sent (httpx's ConnectError): refused, or the
    server's certificate not trusted: the cluster re-created behind the same id (a new CA),
    or moved, since its kubeconfig was read."""

    stale = True


class KubeConnectTimeoutError(KubeNotConnectedError):
    """No connection within the timeout, so nothing was sent: the cluster moved and its old
    address drops what comes (or it is not reachable from here at all). Its client is
    dropped, but the call is not made again at once (a second wait as long)."""

    stale_again = False


def unreachable(exc: httpx2.TransportError, what: str) -> KubeUnreachableError:
    """A transport error as a KubeError: not connected (nothing sent), or unreachable."""
    error: type[KubeUnreachableError] = KubeUnreachableError
    if isinstance(exc, httpx2.ConnectTimeout):
        error = KubeConnectTimeoutError
    elif isinstance(exc, httpx2.ConnectError):
        error = KubeNotConnectedError
    # A timeout's text is empty ("reading Deployment prod/x: " was all a hand-over said).
    return error(f"{what}: {str(exc) or type(exc).__name__}")


def api_status(exc: httpx2.HTTPStatusError) -> bool:
    """Whether ``exc`` is the API server's own Status: lightkube reads any JSON answer as one,
    a gateway's `{"message": "upstream request timeout"}` too (its code None: a 504 read as
    status 0, "refused, nothing changed")."""
    return isinstance(exc, ApiError) and bool(exc.status.code)


def status_of(exc: httpx2.HTTPStatusError) -> tuple[int, str]:
    """The HTTP status and what it says: the API's Status, or the page of what answered."""
    if isinstance(exc, ApiError) and exc.status.code:  # api_status
        return exc.status.code, exc.status.message or str(exc)
    # No Kubernetes Status (a gateway's or proxy's page in front of the API server): lightkube
    # raises the httpx error as its own cause, a loop Temporal's failure converter recursed
    # on ("Failed building exception result: maximum recursion depth exceeded").
    response = exc.response
    page = " ".join(response.text.split())[:200] or "no body"
    return response.status_code, (
        f"HTTP {response.status_code} {response.reason_phrase}, not a Kubernetes API answer: {page}"
    )


def _retry_after(exc: httpx2.HTTPStatusError) -> float | None:
    """The wait a throttled answer asks for: its Status' retryAfterSeconds, else its
    Retry-After header in seconds (client-go's reading; an HTTP date is not read)."""
    details = exc.status.details if isinstance(exc, ApiError) and exc.status else None
    asked: object = details.retryAfterSeconds if details is not None else None
    if asked is None:
        asked = exc.response.headers.get("Retry-After")
    try:
        seconds = float(str(asked))
    except ValueError:
        return None
    return seconds if 0 < seconds < 86_400 else None


def kube_error(exc: httpx2.HTTPStatusError, what: str) -> KubeError:
    """The most specific KubeError for an HTTP status (an ApiError or any other answer)."""
    code, message = status_of(exc)
    if code == 401:
        # Said as what to fix: this text ends a remediation handed over once its retries
        # (each reading the kubeconfig again, KubernetesExecutor) are spent.
        return KubeUnauthorizedError(
            f"{what}: the API server refused the kubeconfig's credentials ({message}): its "
            "certificate or token is not valid for this cluster (expired or rotated)"
        )
    if code in (409, 429) or code >= 500:
        busy = KubeUnavailableError(f"{what}: {message}")
        busy.retry_after = _retry_after(exc)
        return busy
    if not api_status(exc):
        # A page of what stands before the API server (a gateway's 404, a proxy's 403): not
        # the API server saying the object is missing or the user may not.
        return KubeError(f"{what}: {message}")
    if code == 403 and RBAC_REFUSAL.search(message) is None:
        return KubeRefusedError(f"{what}: refused by the cluster: {message}")
    error = {404: KubeNotFoundError, 403: KubeForbiddenError}.get(code, KubeError)
    return error(f"{what}: {message}")


# How the API server's authorizer words a refusal (`User "u" cannot patch resource
# "deployments" in API group "apps"...`, `cannot get path "/healthz"`): any other 403 is a
# rule of the cluster's, not of the credentials.
RBAC_REFUSAL = re.compile(r'\bcannot [a-z]+ (?:resource|path) "')


# What lightkube raises when the kubeconfig's exec plugin gives no token (its command missing,
# an apiVersion it does not implement (v1), a non-zero exit), before anything is sent: it went
# out raw (retried as an unknown failure, the tools' "Error executing tool").
NO_TOKEN = (ConfigError, OSError)


def no_token(exc: Exception, what: str) -> KubeError:
    """An exec plugin's failure as the credentials' (the kubeconfig is read again next time)."""
    return KubeUnauthorizedError(
        f"{what}: the kubeconfig's credential plugin gave no token ({exc}): fix its user's exec "
        "(a command on the worker's PATH, apiVersion client.authentication.k8s.io/v1beta1)"
    )


def bare_answer(exc: KeyError) -> httpx2.HTTPStatusError:
    """The error answer lightkube was reading when it raised ``exc``: it reads an answer's
    Content-Type with [], and a proxy's bare 502 or 429 (no Content-Type) was said to the
    person a run was handed to as "KeyError: 'Content-Type'". Any other KeyError is raised."""
    if isinstance(exc.__context__, httpx2.HTTPStatusError):
        return exc.__context__
    raise exc


async def answered(call: Awaitable[T]) -> T:
    """A lightkube call whose bare error answer is raised as that answer (``bare_answer``)."""
    try:
        return await call
    except KeyError as exc:
        raise bare_answer(exc) from None


async def kube_call(what: str, call: Awaitable[T]) -> T:
    """One API call with its failure as a KubeError (an unreachable server: retryable)."""
    try:
        return await call
    except httpx2.HTTPStatusError as exc:  # ApiError and answers that are no Status
        raise kube_error(exc, what) from None
    except KeyError as exc:
        raise kube_error(bare_answer(exc), what) from None
    except httpx2.TransportError as exc:
        raise unreachable(exc, what) from None
    except NO_TOKEN as exc:
        raise no_token(exc, what) from None
