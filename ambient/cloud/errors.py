"""What an asked-for cloud operation raises, and Tencent Cloud errors as one readable sentence.

CloudOpsError
 ├── CloudOpsRefusedError   the caller's rollback_permission does not allow it
 ├── CloudOpsInputError     the input cannot work (``field`` names what to fix)
 └── CloudOpsFailedError    Tencent Cloud, the cluster or a log file answered an error (``kind``)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ambient.clients.kube_errors import KubeError, KubeForbiddenError, TkeClusterNotFoundError
from ambient.clients.tencent import writes
from ambient.clients.tencent.credentials import NO_ROLE_KEYS
from ambient.clients.tencent.errors import (
    CLOCK_HINT,
    CLOCK_SKEW,
    RATE_LIMITS,
    RBAC_CODES,
    REGION_NOT_OFFERED,
    ROLE_UNAVAILABLE,
    TencentAnswerError,
    TencentAuthError,
    TencentClockError,
    TencentCloudError,
    TencentListChangedError,
    TencentNotConfiguredError,
    TencentNotFoundError,
    TencentRetryableError,
    TencentServiceRoleError,
)
from ambient.clients.tencent.metrics import AGES, NO_CURRENT_VALUE, NO_DATAPOINTS, NOT_ANSWERED
from ambient.refusals import N_, Refusal, read_back

QUOTA_PREFIXES = (
    "LimitExceeded",
    "ResourceInsufficient",
    "ResourceUnavailable.Quota",
    "InternalError.Quota",
    "FailedOperation.Quota",  # TKE's QuotaMaxNodLimit and QuotaMaxClsLimit (超过配额限制) too
)
# The account, not the request (cls errorcodes: 账户欠费, 账户已销毁, 账户不存在).
# Each a msgid of its own: said inside ACCOUNT_REFUSED, in the reader's language (read_refusal).
IN_ARREARS = N_("is in arrears (overdue payment): settle it in the console")
LOW_BALANCE = N_("has too little balance: top it up in the console")
ACCOUNT_STATES = {
    "OperationDenied.AccountIsolate": IN_ARREARS,
    "OperationDenied.AccountDestroy": N_("has been destroyed: use the keys of a live account"),
    "OperationDenied.AccountNotExists": N_("does not exist: check the SecretId's account"),
    # TKE's (tke errorcodes): 余额不足, 未实名认证, 无支付权限.
    "InternalError.InsufficientBalance": LOW_BALANCE,
    "InternalError.TradeInsufficientBalance": LOW_BALANCE,
    "InternalError.NotVerified": N_(
        "is not identity-verified (实名认证): verify it in the console"
    ),
    "InternalError.NoPaymentAccess": N_(
        "may not pay for new resources with these keys: grant the payment permission in CAM"
    ),
    # Cloud Monitor's (monitor errorcodes, GetMonitorData): 欠费, 未开通 (the API's calls past
    # its free ones a month are billed, once "API请求按量付费" is opened).
    "FailedOperation.ErrOwed": IN_ARREARS,
    "FailedOperation.ErrNotOpen": N_(
        "has not opened Cloud Monitor's API billing (API请求按量付费), which its calls past the "
        "free ones a month need: open it in the Cloud Monitor console"
    ),
}
# Codes the writes' API references document (each action's error codes) whose class alone
# would mislead: what to do about each.
DOCUMENTED = {
    # CreateAlarm: 低频不支持告警 (the topic's storage, not a parameter of the request).
    ("CreateAlarm", "OperationDenied.AlarmNotSupportForSearchLow"): (
        "invalid_parameter",
        "the topic is on low-frequency storage, which CLS alarms cannot query; alarm on a "
        "topic of standard storage",
    ),
    # CreateTopic: Topic 创建中 (another create of the name, not listed yet).
    ("CreateTopic", "FailedOperation.TopicCreating"): (
        "unavailable",
        "a topic of that name is being created by another request; ask again in a moment: "
        "the same request finds that topic and makes no second",
    ),
    # CreateClusterNodePool: 镜像OS不支持, under any of TKE's three prefixes (tke errorcodes).
    **dict.fromkeys(
        (
            ("CreateClusterNodePool", "InternalError.OsNotSupport"),
            ("CreateClusterNodePool", "FailedOperation.OsNotSupport"),
            ("CreateClusterNodePool", "InvalidParameter.OsNotSupport"),
        ),
        (
            "invalid_parameter",
            "TKE does not support the node pool's OS (`os_name`) for this cluster; ask again "
            "with an OS the cluster's node pools may run",
        ),
    ),
    # CreateScheduledSql: 无效的数据加工语句.
    ("CreateScheduledSql", "InvalidParameter.InvalidEtlContent"): (
        "invalid_parameter",
        "CLS cannot run the task's SQL (`sql`); try it on the source topic with search_logs "
        "and ask again with one that works",
    ),
    # CreateClusterNodePool: 伸缩组资源创建报错, under either prefix, its words naming a cause
    # or none (the same request may then pass later).
    **dict.fromkeys(
        (
            ("CreateClusterNodePool", "FailedOperation.AsCommon"),
            ("CreateClusterNodePool", "InternalError.AsCommon"),
        ),
        (
            "failed",
            "Auto Scaling refused the node pool's scaling group or launch configuration: if its "
            "words name a cause (a scaling group name the account already uses, a subnet, VPC "
            "or instance type, a quota), fix that and ask again; if not, try again later, check "
            "the scaling groups and launch configurations in the Auto Scaling console, and "
            "quote the RequestId to Tencent Cloud support",
        ),
    ),
    # ModifyNodePoolDesiredCapacityAboutAsg: 节点池状态不正常, a pool being created or updated.
    ("ModifyNodePoolDesiredCapacityAboutAsg", "ResourceUnavailable.NodePoolStateNotNormal"): (
        "unavailable",
        "the node pool is busy (being created or updated) and takes no new size now; ask again "
        "once list_node_pools shows it normal",
    ),
    # ModifyNodePoolDesiredCapacityAboutAsg: the node pool gone since it was read.
    ("ModifyNodePoolDesiredCapacityAboutAsg", "FailedOperation.RecordNotFound"): (
        "not_found",
        "the node pool does not exist (any more); list_node_pools names the cluster's pools",
    ),
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
    """Tencent Cloud, the cluster or a log file (a ``file:`` topic) answered with an error;
    ``stale``: the cluster's kept client may be what failed (KubeError.stale), and
    ``stale_again`` whether the request is made once more at once (KubeError.stale_again)."""

    def __init__(
        self, kind: str, message: str, *, stale: bool = False, stale_again: bool = True
    ) -> None:
        super().__init__(message)
        self.kind, self.stale, self.stale_again = kind, stale, stale_again


def lacks_permission(exc: KubeForbiddenError, done: str) -> CloudOpsFailedError:
    """A 403 from the API server: RBAC refused the credentials, not the input (stale: a
    kubeconfig read again, of the cluster re-created, may carry a user that has it)."""
    # The API server's message names the verb, the resource and the namespace refused.
    return CloudOpsFailedError(
        "auth",
        f"{exc}: the kubeconfig's credentials lack permission; grant it to that user (RBAC) "
        f"or use a kubeconfig that has it; {done}",
        stale=True,
    )


@contextlib.contextmanager
def readable(product: str, action: str) -> Iterator[None]:
    """A Tencent Cloud error raised inside comes out as one readable sentence (``failure``)."""
    try:
        yield
    except (TencentCloudError, KubeError) as exc:
        said = _readable(exc, product, action)
        if said is exc:
            raise
        raise said from None


# The SDK's code for a request that never got its answer over the network.
NETWORK_ERROR = "ClientNetworkError"


def told(exc: Exception) -> str:
    """What a door says of an error a read raised: as a write's (``readable``), so a read
    refused names what to fix and its RequestId too."""
    return str(_readable(exc))


def _readable(exc: Exception, product: str = "", action: str = "") -> Exception:
    if isinstance(exc, TencentCloudError):
        return failure(exc, product, action)
    if isinstance(exc, TkeClusterNotFoundError):
        # Its sentence names the region the cluster was looked for in, and what to give.
        return CloudOpsFailedError("not_found", str(exc))
    if isinstance(exc, KubeError) and isinstance(exc.__cause__, TencentCloudError):
        # A cluster client TKE gave no kubeconfig: Tencent Cloud's answer is the reason.
        return failure(exc.__cause__, product, action)
    return exc


# Common error codes for keys Tencent Cloud does not accept (密钥不存在, 无效的密钥, 签名错误,
# 请求头部的 Authorization 不符合腾讯云标准, Token 错误): the keys, not their CAM policy.
KEYS_REFUSED = (
    "AuthFailure.SecretIdNotFound",
    "AuthFailure.InvalidSecretId",
    "AuthFailure.SignatureFailure",
    "AuthFailure.InvalidAuthorization",
    "AuthFailure.TokenFailure",
)
TOKEN_REFUSED = "AuthFailure.TokenFailure"  # Token 错误: temporary keys' token


def temporary_keys_refused(exc: TencentCloudError) -> bool:
    """Temporary keys (STS) of the environment refused, or a token with keys of one's own:
    expired, the API no longer knows their SecretId, says their token is wrong or their
    signature expired (the clock, if they are new)."""
    return exc.code == TOKEN_REFUSED or (exc.temporary and exc.code in (*KEYS_REFUSED, CLOCK_SKEW))


# failure()'s sentences for what a read may be refused with, as msgids: a threshold watch keeps
# the English, and its page, its notification and the voice read it back (`read_refusal`).
KEYS_NOT_ACCEPTED = N_(
    "Tencent Cloud refused %(action)s (%(code)s): it does not accept the keys; check "
    "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (a key deleted or disabled in the "
    "console is refused too); a running worker and API keep the keys they started with: "
    "restart them after setting new ones. %(message)s"
)
ROLE_KEYS_NOT_ACCEPTED = N_(
    "Tencent Cloud refused %(action)s (%(code)s): it does not accept the temporary keys of the "
    "CVM role %(role)s (AMBIENT_TENCENTCLOUD_CVM_ROLE); check that this machine's clock is right "
    "(NTP), and in the CAM console that the role still exists and is bound to this instance. "
    "%(message)s"
)
TEMPORARY_KEYS_NOT_ACCEPTED = N_(
    "Tencent Cloud refused %(action)s (%(code)s): it does not accept the temporary keys "
    "(TENCENTCLOUD_TOKEN): they have expired or are not valid; get new ones (STS) and set "
    "TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and TENCENTCLOUD_TOKEN together; a running "
    "worker and API keep the keys they started with: restart them after setting new ones. "
    "%(message)s"
)
# Its message the SDK's words after the clock's hint (``CLOCK_HINT``, translate()).
TEMPORARY_KEYS_OR_CLOCK = N_(
    "Tencent Cloud refused %(action)s (%(code)s): it does not accept the temporary keys "
    "(TENCENTCLOUD_TOKEN): they have expired or are not valid; get new ones (STS) and set "
    "TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and TENCENTCLOUD_TOKEN together; a running "
    "worker and API keep the keys they started with: restart them after setting new ones; if "
    "they are new, this machine's clock is more than 5 minutes off; set it right (NTP). "
    "%(message)s"
)
CLOCK_OFF = N_(
    "Tencent Cloud refused %(action)s (%(code)s): this machine's clock is more than 5 minutes "
    "off; set it right (NTP). %(message)s"
)
CAM_REFUSED = N_(
    "Tencent Cloud refused %(action)s (%(code)s): check that the CAM policy allows "
    "%(permission)s (docs/tencent-cloud.md). %(message)s"
)
ACCOUNT_REFUSED = N_(
    "Tencent Cloud refused %(action)s (%(code)s): the account %(why)s; nothing was changed. "
    "%(message)s"
)
BUSY = N_(
    "Tencent Cloud is busy for %(action)s (%(code)s) (too many requests at once); try again in "
    "a moment. %(message)s"
)
PARAMETER_REJECTED = N_("Tencent Cloud rejected a parameter of %(action)s (%(code)s): %(message)s")
NOT_REACHED = N_(
    "Tencent Cloud's API could not be reached for %(action)s (%(code)s); try again, and if it "
    "lasts, check the way to it (DNS, a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT). %(message)s"
)
UNAVAILABLE = N_("Tencent Cloud is unavailable for %(action)s (%(code)s); try again. %(message)s")
# CLS refuses a search's query itself (cls errorcodes: FailedOperation.QueryError, as for a
# field without an index, "Cannot search on field [level] since it is not indexed", and
# FailedOperation.SyntaxError): the query to correct, not Tencent Cloud to ask again.
QUERY_CODES = ("FailedOperation.QueryError", "FailedOperation.SyntaxError")
QUERY_REFUSED = N_(
    "CLS refused the query of %(action)s (%(code)s): a field it names has no index, or its "
    "syntax is wrong; correct the query (or index the field in the topic's index "
    "configuration). %(message)s"
)


def filter_refused(exc: TencentCloudError) -> bool:
    """Whether CLS refused a filter as written: its syntax, or a field it names without an
    index. A QueryError is also a query that failed to run ("all shards failed"), which a
    filter written otherwise would meet too: no reason to refuse a config."""
    return exc.code == QUERY_CODES[1] or (
        exc.code == QUERY_CODES[0] and "index" in exc.message.lower()
    )


# cls errorcodes: ResourceNotFound.IndexNotExist, a topic with no index, which no search reads.
NO_INDEX_CODE = "ResourceNotFound.IndexNotExist"
NO_INDEX = N_(
    "CLS cannot search the log topic of %(action)s (%(code)s): it has no index; turn on its "
    "index (full text, or the fields searched) in the CLS console. %(message)s"
)


# cls errorcodes: FailedOperation.TopicIsolated, a topic CLS isolated for the account's arrears.
TOPIC_ISOLATED = N_(
    "Tencent Cloud refused %(action)s (%(code)s): CLS isolated the log topic, as the account is "
    "in arrears; settle the arrears or renew in the console. %(message)s"
)
# cls errorcodes: LimitExceeded.SearchResources (检索内存超限), no quota to raise: CLS's search
# memory, taken by this search or by many at once.
SEARCH_MEMORY = N_(
    "CLS ran out of search memory for %(action)s (%(code)s), as when many searches run at "
    "once; ask again in a few minutes, or narrow the query or the time range. %(message)s"
)
QUOTA = N_(
    "Tencent Cloud quota or limit reached for %(action)s (%(code)s): remove unused resources or "
    "raise the quota in the console. %(message)s"
)
NOT_FOUND = N_("%(action)s (%(code)s): something the request names does not exist. %(message)s")
REFUSED = N_("Tencent Cloud refused %(action)s (%(code)s): %(message)s")
FAILED = N_("%(action)s (%(code)s) failed: %(message)s")
# The same refusals as a release before the restart's words stored them (a paused watch keeps
# its last error): read back, not said any more.
KEYS_NOT_ACCEPTED_BEFORE = N_(
    "Tencent Cloud refused %(action)s (%(code)s): it does not accept the keys; check "
    "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (a key deleted or disabled in the "
    "console is refused too). %(message)s"
)
TEMPORARY_KEYS_NOT_ACCEPTED_BEFORE = N_(
    "Tencent Cloud refused %(action)s (%(code)s): it does not accept the temporary keys "
    "(TENCENTCLOUD_TOKEN): they have expired or are not valid; get new ones (STS) and set "
    "TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and TENCENTCLOUD_TOKEN together. %(message)s"
)
TEMPORARY_KEYS_OR_CLOCK_BEFORE = N_(
    "Tencent Cloud refused %(action)s (%(code)s): it does not accept the temporary keys "
    "(TENCENTCLOUD_TOKEN): they have expired or are not valid; get new ones (STS) and set "
    "TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and TENCENTCLOUD_TOKEN together; if they "
    "are new, %(message)s"
)
READ_REFUSALS = (
    KEYS_NOT_ACCEPTED,
    ROLE_KEYS_NOT_ACCEPTED,
    TEMPORARY_KEYS_NOT_ACCEPTED,
    TEMPORARY_KEYS_OR_CLOCK,
    CLOCK_OFF,
    CAM_REFUSED,
    ACCOUNT_REFUSED,
    BUSY,
    PARAMETER_REJECTED,
    NOT_REACHED,
    UNAVAILABLE,
    QUOTA,
    QUERY_REFUSED,
    NO_INDEX,
    TOPIC_ISOLATED,
    SEARCH_MEMORY,
    NOT_FOUND,
    KEYS_NOT_ACCEPTED_BEFORE,
    TEMPORARY_KEYS_NOT_ACCEPTED_BEFORE,
    TEMPORARY_KEYS_OR_CLOCK_BEFORE,
    REFUSED,
    FAILED,
    NO_DATAPOINTS,
    NO_CURRENT_VALUE,
    NOT_ANSWERED,
)


def read_refusal(error: str) -> Refusal | None:
    """A read's stored Tencent Cloud error (``failure``'s English, cut where it was kept) as
    its Refusal, an account's state one of its own (None: none of READ_REFUSALS)."""
    said = read_back(error, READ_REFUSALS, cut=True)
    state = said.values.get("why") if said is not None else None
    if said is not None and isinstance(state, str) and state in ACCOUNT_STATES.values():
        said.values["why"] = Refusal(state)
    if said is not None and said.msgid == NO_CURRENT_VALUE:  # its ages in the reader's words
        for name in ("age", "lag"):
            said.values[name] = read_back(said.values[name], AGES) or said.values[name]
    return said


def failure(exc: TencentCloudError, product: str = "", action: str = "") -> CloudOpsFailedError:
    """One sentence per error class that says what to do about it (naming the call refused),
    ending with the RequestId Tencent Cloud's support asks for."""
    kind, text = _sentence(exc, *(exc.call or (product, action)))
    if exc.request_id:
        text += f" (RequestId {exc.request_id})"
    return CloudOpsFailedError(kind, text)


def _sentence(exc: TencentCloudError, product: str, action: str) -> tuple[str, str]:
    where = f"{action} ({exc.code})" if action else exc.code
    said = {"action": action, "code": exc.code, "message": exc.message}
    if isinstance(exc, TencentNotConfiguredError):
        return "not_configured", exc.message
    if isinstance(exc, TencentAnswerError):  # not "unavailable ... try again": it answers so
        return "failed", exc.message
    if isinstance(exc, TencentListChangedError):  # worded for whoever reads it, no API code
        # Not an outage (every call was answered): the list's state changed under the reads,
        # asked again in a moment (RFC 9110's 409, as a name taken meanwhile is).
        return "conflict", exc.message
    if not action:
        # An error the client worded itself, no call made (a window whose start is after its
        # end, a region out of format, a search to narrow): its words say what to do.
        return "failed", f"{exc.code}: {exc.message}"
    if isinstance(exc, TencentServiceRoleError) or exc.code == ROLE_UNAVAILABLE:
        # The keys are fine (or there are none): its message says what to grant or run on.
        return "auth", REFUSED % said
    if exc.code in KEYS_REFUSED and exc.role:
        # No keys of the user's own: the instance's metadata service hands the role's
        # temporary keys out, and they expire by this machine's clock.
        return "auth", ROLE_KEYS_NOT_ACCEPTED % (said | {"role": repr(exc.role)})
    if temporary_keys_refused(exc):
        # Temporary keys (STS) expire, and the three go together.
        if exc.code == CLOCK_SKEW:  # the client's clock hint in the sentence, said in its words
            message = exc.message.removeprefix(f"{CLOCK_HINT}. ")
            return "auth", TEMPORARY_KEYS_OR_CLOCK % (said | {"message": message})
        return "auth", TEMPORARY_KEYS_NOT_ACCEPTED % said
    if isinstance(exc, TencentClockError):  # the client's hint said once, not twice
        message = exc.message.removeprefix(f"{CLOCK_HINT}. ")
        return "failed", CLOCK_OFF % (said | {"message": message})
    if exc.code in KEYS_REFUSED:
        return "auth", KEYS_NOT_ACCEPTED % said
    if exc.code in RBAC_CODES:
        return "auth", (
            f"Tencent Cloud refused {where}: the sub-account has no TKE RBAC authorisation on "
            "this cluster; an admin grants it in the TKE console (cluster → Authorization "
            f"management) (docs/tencent-cloud.md). {exc.message}"
        )
    if isinstance(exc, TencentAuthError):
        return "auth", CAM_REFUSED % (said | {"permission": f"{product}:{action}"})
    if exc.code in ACCOUNT_STATES:
        return "account", ACCOUNT_REFUSED % (said | {"why": ACCOUNT_STATES[exc.code]})
    if exc.code in QUERY_CODES:
        return "invalid_parameter", QUERY_REFUSED % said
    if exc.code == NO_INDEX_CODE:
        return "invalid_parameter", NO_INDEX % said
    if exc.code == "FailedOperation.TopicIsolated":
        return "account", TOPIC_ISOLATED % said
    if exc.code == "LimitExceeded.SearchResources":
        return "unavailable", SEARCH_MEMORY % said
    if (action, exc.code) in DOCUMENTED:
        kind, advice = DOCUMENTED[action, exc.code]
        return kind, f"{where}: {advice}. {exc.message}".rstrip()
    # LimitExceeded.LogSearch: too many searches at once, no quota; RequestLimitExceeded.*: its
    # kinds (per account, per address), backed off as the plain one is (client.py).
    if exc.code.startswith(RATE_LIMITS):
        return "unavailable", BUSY % said
    if exc.code.startswith(QUOTA_PREFIXES):
        return "quota", QUOTA % said
    if isinstance(exc, TencentNotFoundError):
        return "not_found", NOT_FOUND % said
    if writes.name_taken(action, exc.code):
        # Only when the lookup that follows a conflict cannot see the resource either.
        return "conflict", (
            f"{where}: the name is taken but no resource of that name is visible (another "
            f"region, or no permission to list it). {exc.message}"
        )
    if exc.code in REGION_NOT_OFFERED:  # the client's words name the region asked
        return "invalid_parameter", REFUSED % said
    if exc.code.startswith(INVALID_PREFIXES):
        return "invalid_parameter", PARAMETER_REJECTED % said
    if (
        isinstance(exc, TencentRetryableError)
        and exc.code == NETWORK_ERROR
        and not exc.unanswered
        and not exc.message.startswith(NO_ROLE_KEYS)  # the metadata service's, not the API's
    ):
        # Refused or unresolvable, never sent (not an answer lost on the way, `unanswered`): a
        # passing outage seldom, a wrong endpoint, DNS or proxy often (a retry alone was all it
        # said, and the same each time).
        return "unavailable", NOT_REACHED % said
    if isinstance(exc, TencentRetryableError):
        return "unavailable", UNAVAILABLE % said
    return "failed", FAILED % said
