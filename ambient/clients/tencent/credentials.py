"""Tencent Cloud credentials: keys from the environment, else a CVM role's temporary keys from
the instance's metadata service (said why when it gives none)."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from typing import Any

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from ambient.clients.tencent.errors import ROLE_UNAVAILABLE

# How a CVM role's keys not had from the metadata service begin (not Tencent Cloud's API).
NO_ROLE_KEYS = "no temporary keys for the CVM role"


def credential_from_env(cvm_role: str | None = None) -> Any | None:
    """Keys from the environment, else the CVM role if named; None when neither."""
    # Keys read from a file end in a newline, which the SDK's Credential refuses as a space;
    # no Tencent Cloud key holds whitespace.
    secret_id, secret_key, token = (
        (os.environ.get(name) or "").strip()
        for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_TOKEN")
    )
    if not (secret_id and secret_key) and not cvm_role:
        return None
    # With something to sign with only: the SDK's credentials load its HTTP client (requests).
    from tencentcloud.common import credential as tc_credential

    if secret_id and secret_key:
        return tc_credential.Credential(secret_id, secret_key, token or None)

    class RoleCredential(tc_credential.CVMRoleCredential):  # type: ignore[misc]
        """The SDK's, said when the instance's metadata service gave no keys: the SDK passes
        over any failure to get them, and its signing then failed on None (a TypeError, read
        as a network error and retried, no request sent)."""

        def update_credential(self) -> None:
            super().update_credential()
            if self._secret_id is None:
                raise role_unavailable(self._role_endpoint + self.role, self.role)

    return RoleCredential(cvm_role)


METADATA_TIMEOUT = 3.0  # seconds the metadata service is asked again why it gave no keys


def role_unavailable(url: str, role: str) -> TencentCloudSDKException:
    """Why the metadata service gave the CVM ``role`` no keys (the SDK does not say), asked
    once more at ``url``: a name that does not resolve (not a CVM) or an answer without keys
    (no such role bound) is for the user to fix; no answer, or a server error, may pass on the
    next try (a retryable ClientNetworkError)."""
    try:
        with urllib.request.urlopen(url, timeout=METADATA_TIMEOUT) as answer:
            body = answer.read(4096)
        # Keys now (the first ask failed on the way): the next call has them.
        lasting = b'"Success"' not in body
        why = f"it answered without keys: {body[:200]!r}" if lasting else "it answered late"
    except urllib.error.HTTPError as exc:
        why, lasting = f"it answered HTTP {exc.code}", exc.code < 500
    except urllib.error.URLError as exc:
        lasting = isinstance(exc.reason, socket.gaierror)
        why = "its name does not resolve here" if lasting else f"it did not answer ({exc.reason})"
    except OSError as exc:  # a timeout reading the answer
        why, lasting = f"it did not answer ({exc})", False
    where = "the instance's metadata service (metadata.tencentyun.com)"
    if not lasting:
        return TencentCloudSDKException(
            "ClientNetworkError", f"{NO_ROLE_KEYS} {role!r}: {where}: {why}"
        )
    return TencentCloudSDKException(
        ROLE_UNAVAILABLE,
        f"{NO_ROLE_KEYS} {role!r} from {where}: {why}; run on a CVM with "
        "that role bound to it (check the role's name), or set TENCENTCLOUD_SECRET_ID and "
        "TENCENTCLOUD_SECRET_KEY",
    )
