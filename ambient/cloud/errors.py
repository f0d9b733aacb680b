"""What an asked-for cloud operation raises, and Tencent Cloud errors as one readable sentence.

CloudOpsError
 ├── CloudOpsRefusedError   the caller's rollback_permission does not allow it
 ├── CloudOpsInputError     the input cannot work (``field`` names what to fix)
 └── CloudOpsFailedError    Tencent Cloud, the cluster or a log file answered an error (``kind``)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ambient.clients.kube import KubeError, KubeForbiddenError, TkeClusterNotFoundError
from ambient.clients.tencent import writes
from ambient.clients.tencent.errors import (
    TencentAuthError,
    TencentCloudError,
    TencentNotConfiguredError,
    TencentNotFoundError,
    TencentRetryableError,
    TencentServiceRoleError,
)

QUOTA_PREFIXES = (
    "LimitExceeded",
    "ResourceInsufficient",
    "ResourceUnavailable.Quota",
    "InternalError.Quota",
)
# The account, not the request (cls errorcodes: 账户欠费, 账户已销毁, 账户不存在).
ACCOUNT_STATES = {
    "OperationDenied.AccountIsolate": "is in arrears (overdue payment): settle it in the console",
    "OperationDenied.AccountDestroy": "has been destroyed: use the keys of a live account",
    "OperationDenied.AccountNotExists": "does not exist: check the SecretId's account",
}
INVALID_PREFIXES = (
    "InvalidParameter",
    "MissingParameter",
    "UnknownParameter",
    "OperationDenied",
    "InternalError.Param",
)


class CloudOpsError(Exception):
    """A cloud operation was refused or failed; the message is meant for the person asking."""

    kind = "failed"


class CloudOpsRefusedError(CloudOpsError):
    """The caller may not do this."""

    kind = "refused"


class CloudOpsInputError(CloudOpsError):
    """The input cannot work; ``field`` names what to fix."""

    kind = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class CloudOpsFailedError(CloudOpsError):
    """Tencent Cloud, the cluster or a log file (a ``file:`` topic) answered with an error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def lacks_permission(exc: KubeForbiddenError, done: str) -> CloudOpsFailedError:
    """A 403 from the API server: RBAC refused the credentials, not the input."""
    # The API server's message names the verb, the resource and the namespace refused.
    return CloudOpsFailedError(
        "auth",
        f"{exc}: the kubeconfig's credentials lack permission; grant it to that user (RBAC) "
        f"or use a kubeconfig that has it; {done}",
    )


@contextlib.contextmanager
def readable(product: str, action: str) -> Iterator[None]:
    """A Tencent Cloud error raised inside comes out as one readable sentence (``_sentence``)."""
    try:
        yield
    except TencentCloudError as exc:
        raise _sentence(exc, product, action) from None
    except TkeClusterNotFoundError as exc:
        # Its sentence names the region the cluster was looked for in, and what to give.
        raise CloudOpsFailedError("not_found", str(exc)) from None
    except KubeError as exc:
        # A cluster client TKE gave no kubeconfig: Tencent Cloud's answer is the reason.
        if isinstance(exc.__cause__, TencentCloudError):
            raise _sentence(exc.__cause__, product, action) from None
        raise


def _sentence(exc: TencentCloudError, product: str, action: str) -> CloudOpsFailedError:
    """One sentence per error class that says what to do about it (naming the call refused)."""
    product, action = exc.call or (product, action)
    where = f"{action} ({exc.code})"
    if isinstance(exc, TencentNotConfiguredError):
        return CloudOpsFailedError("not_configured", exc.message)
    if isinstance(exc, TencentServiceRoleError):
        # The keys are fine: the product's own role must be granted (its message says which).
        return CloudOpsFailedError("auth", f"Tencent Cloud refused {where}: {exc.message}")
    if isinstance(exc, TencentAuthError):
        return CloudOpsFailedError(
            "auth",
            f"Tencent Cloud refused {where}: check the SecretId/SecretKey and that the CAM "
            f"policy allows {product}:{action} (docs/tencent-cloud.md). {exc.message}",
        )
    if exc.code in ACCOUNT_STATES:
        return CloudOpsFailedError(
            "account",
            f"Tencent Cloud refused {where}: the account {ACCOUNT_STATES[exc.code]}; nothing "
            f"was changed. {exc.message}",
        )
    if exc.code.startswith(QUOTA_PREFIXES):
        return CloudOpsFailedError(
            "quota",
            f"Tencent Cloud quota or limit reached for {where}: remove unused resources or "
            f"raise the quota in the console. {exc.message}",
        )
    if isinstance(exc, TencentNotFoundError):
        return CloudOpsFailedError(
            "not_found", f"{where}: something the request names does not exist. {exc.message}"
        )
    if writes.name_taken(action, exc.code):
        # Only when the lookup that follows a conflict cannot see the resource either.
        return CloudOpsFailedError(
            "conflict",
            f"{where}: the name is taken but no resource of that name is visible (another "
            f"region, or no permission to list it). {exc.message}",
        )
    if exc.code.startswith(INVALID_PREFIXES):
        return CloudOpsFailedError(
            "invalid_parameter", f"Tencent Cloud rejected a parameter of {where}: {exc.message}"
        )
    if isinstance(exc, TencentRetryableError):
        return CloudOpsFailedError(
            "unavailable", f"Tencent Cloud is unavailable for {where}; try again. {exc.message}"
        )
    return CloudOpsFailedError("failed", f"{where} failed: {exc.message}")
