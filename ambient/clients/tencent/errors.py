"""Tencent Cloud errors, mapped from SDK exceptions to what a caller can act on.

TencentCloudError
 ├── TencentNotConfiguredError  no credentials: says what to set
 ├── TencentRetryableError      network, server, rate limits, InternalError
 │    └── TencentListChangedError  a list that changed at each of its reads (ListChanged)
 └── TencentRequestError        the request itself is wrong or not allowed (and the InternalError
      │                         codes TKE documents for such causes: .Param, .Quota*, ...)
      ├── TencentAuthError       AuthFailure*, UnauthorizedOperation*, InternalError.CamNoAuth,
      │    │                     OperationDenied.ACLFailed, TTS UnsupportedOperation.Authorization*,
      │    │                     a CVM role without keys
      │    └── TencentServiceRoleError  CLS InternalError.IllegalRole: its service role to grant
      ├── TencentClockError      AuthFailure.SignatureExpire: this machine's clock, not the keys
      └── TencentNotFoundError   ResourceNotFound*, InternalError.*NotFound, *.ClusterNotFound
"""

from __future__ import annotations

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException


class TencentCloudError(Exception):
    """A Tencent Cloud API call failed."""

    # The (product, action) that answered it: a create's lookups are reads, refused by name.
    call: tuple[str, str] | None = None
    # The CVM role whose temporary keys signed it (AMBIENT_TENCENTCLOUD_CVM_ROLE), if any.
    role: str | None = None
    # Signed by temporary keys of the environment (TENCENTCLOUD_TOKEN set), which expire.
    temporary: bool = False
    # Sent, and no answer came back (a read timeout, the connection reset, a gateway's 502 or
    # 504): it may have been carried out. Not so for a connection never made (refused, DNS,
    # TLS, a proxy's refusal) or a request never signed (no CVM role keys).
    unanswered: bool = False

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(
            f"{code}: {message}" + (f" (RequestId {request_id})" if request_id else "")
        )
        self.code, self.message, self.request_id = code, message, request_id


class TencentNotConfiguredError(TencentCloudError):
    """No credentials are configured."""

    def __str__(self) -> str:
        return self.message  # nothing was sent: no API code to name


class TencentRetryableError(TencentCloudError):
    """Worth retrying with backoff."""


class TencentListChangedError(TencentRetryableError):
    """A paged list that changed while it was read (an item left it, and a later one may have
    been skipped), at each of its reads: asking again later may find it still."""


LIST_CHANGED = "ListChanged"  # its code: no API code answered it


class TencentRequestError(TencentCloudError):
    """Retrying the same request cannot help."""


class TencentAuthError(TencentRequestError):
    """Credentials rejected or the CAM policy does not allow the action."""


class TencentServiceRoleError(TencentAuthError):
    """The service role a product acts with is missing or lacks a policy; the message names it."""


class TencentClockError(TencentRequestError):
    """This machine's clock is too far from Tencent Cloud's for its signatures to be accepted."""


# Common error codes: "签名过期。Timestamp 和服务器时间相差不得超过五分钟" — the keys are fine.
CLOCK_SKEW = "AuthFailure.SignatureExpire"
CLOCK_HINT = "this machine's clock is more than 5 minutes off; set it right (NTP)"


class TencentAnswerError(TencentRequestError):
    """An answer that is not what the API reference documents (an item without its id, a list
    whose pages stop short of its TotalCount): not retried, as the same way to the API (a
    proxy, the endpoint set) answers the same, and a lookup said "none" would create twice."""


ANSWER = "ClientError.NotTheApiAnswer"  # its code: no API code answered it


class TencentNotFoundError(TencentRequestError):
    """The named resource does not exist."""


# Rate limits: the same request passes once other callers' requests are done. CLS answers a
# search past 15 concurrent ones on a topic with LimitExceeded.LogSearch (cls errorcodes:
# "并发查询超过限制，单topic并发最大值15"), a rate limit despite its LimitExceeded prefix, and
# its own read and tag-service limits as FailedOperation.ReadQpsLimit / .TagQpsLimit (读qps超过
# 限制, 请求标签服务限频); TTS its rate limit as LimitExceeded.AccessLimit (请求超过限制频率);
# Cloud Monitor its own as LimitExceeded.LimitedAccess (请求受限 ... 触发限频等限制操作): backed
# off, not said as a quota to raise.
RATE_LIMITS = (
    "RequestLimitExceeded",
    "LimitExceeded.LogSearch",
    "FailedOperation.ReadQpsLimit",
    "FailedOperation.TagQpsLimit",
    "LimitExceeded.AccessLimit",
    "LimitExceeded.LimitedAccess",
)
RETRYABLE_PREFIXES = (
    "ClientNetworkError",
    "ServerNetworkError",
    "InternalError",
    # Common error codes: "当前服务暂时不可用" — every product may answer it, for a while.
    "ServiceUnavailable",
    # CLS: a search or an operation that timed out on its side (搜索超时, 操作超时).
    "FailedOperation.SearchTimeout",
    "FailedOperation.Timeout",
    # Cloud Monitor: its query back ends failed or timed out (数据查询失败, 数据库查询失败,
    # 查询分析数据失败, 内部服务错误, 后端服务超时); its rate limit is in RATE_LIMITS.
    "FailedOperation.DataQueryFailed",
    "FailedOperation.DbQueryFailed",
    "FailedOperation.DruidQueryFailed",
    "FailedOperation.InternalError",
    "FailedOperation.DoHTTPTransferFailed",
    "FailedOperation.DoTRPCTransferFailed",
    # TKE could not reach the cluster's API server for the call (tke errorcodes: 连接用户
    # Kubernetes集群失败), under FailedOperation as under InternalError: one cause, one answer.
    "FailedOperation.KubeClientConnection",
    *RATE_LIMITS,
)
# TKE refuses a call its cluster's state does not allow (tke errorcodes: 集群状态错误, 集群状态
# 不支持该操作: creating, upgrading, scaling, abnormal), under three prefixes; its words name no
# state, so what to do is said.
CLUSTER_STATE = (
    "the cluster's state does not allow this now (being created, upgraded or scaled, or "
    "abnormal): see its state in the TKE console, and ask again once it is Running"
)


# InternalError codes TKE documents for causes a retry cannot fix (tke errorcodes: "没有权限",
# "账户未通过认证", "参数错误", "超过配额限制", "...未找到"): not retried, read as their cause.
# CLS refuses an action the caller's access does not allow as OperationDenied.ACLFailed
# (cls errorcodes: "ACL校验失败"), a permission like the codes above.
# TTS answers an authentication that failed or expired under UnsupportedOperation (tts
# errorcodes: 鉴权失败, 鉴权已过期): the keys or their access must change, as for AuthFailure.
# No keys for a CVM role from the instance's metadata service (the SDK's own code for it).
ROLE_UNAVAILABLE = "ClientError.MetadataError"
# TKE refuses a sub-account its cluster's RBAC does not authorise (tke errorcodes: 子账户RBAC权限
# 不足, 没有RBAC权限): granted in the TKE console, not by a CAM policy.
RBAC_CODES = ("FailedOperation.RBACForbidden", "UnauthorizedOperation.NoRBACPermissions")
AUTH_CODES = (
    ROLE_UNAVAILABLE,
    "InternalError.CamNoAuth",
    "InternalError.AccountUserNotAuthenticated",
    "OperationDenied.ACLFailed",
    "UnsupportedOperation.AuthorizationFailed",
    "UnsupportedOperation.AuthorizationExpired",
    # TKE's refusal of a sub-account under FailedOperation (tke errorcodes: 无该接口CAM权限).
    "FailedOperation.CamNoAuth",
    *RBAC_CODES,
)
# CLS answers InternalError.IllegalRole (cls errorcodes: 角色非法) for a call that needs its
# service role when that role is missing or lacks the policy: a set-up to fix, not retried.
SERVICE_ROLES = {
    "InternalError.IllegalRole": (
        "CLS's service role is missing or not authorised: in the CAM console grant the role "
        "CLS_QcsRole (role entity cls.cloud.tencent.com) the policy this operation needs"
    ),
}
# TKE words lasting causes as InternalError too (tke errorcodes): the account's state (余额不足,
# 未实名认证, 无支付权限), a request the cluster or its network cannot take (镜像OS不支持, 集群不
# 支持当前操作, CIDR conflicts, 资源已存在): asked again, the same answer, so not retried and not
# said as "unavailable, try again".
INTERNAL_PERMANENT = (
    "InternalError.Param",
    "InternalError.Quota",
    "InternalError.AccountUserNotAuthenticated",
    "InternalError.CamNoAuth",
    "InternalError.Cidr",
    "InternalError.ClusterUpgradeNodeVersion",  # 集群节点版本过低: the nodes must be upgraded
    "InternalError.EmptyClusterNotSupport",
    "InternalError.GatewayAlreadyAssociatedCidr",
    "InternalError.InsufficientBalance",
    "InternalError.InvalidPrivateNetworkCidr",
    "InternalError.NoPaymentAccess",
    "InternalError.NotVerified",
    "InternalError.OsNotSupport",
    "InternalError.PublicClusterOpNotSupport",
    "InternalError.ResourceExistAlready",
    "InternalError.RouteTableNotEmpty",
    "InternalError.TradeInsufficientBalance",
)
# A product not offered in the region asked: the common code (接口不支持所传地域) and CLS's
# (cls errorcodes: 当前地域不支持). Cloud Monitor's FailedOperation.RegionUnavailable (地区不可用)
# is not one: its reference does not say it lasts, and it is said as the API words it.
REGION_NOT_OFFERED = ("UnsupportedRegion", "UnsupportedOperation.UnsupportedRegion")
# A product as its console names it, for a sentence said to the user.
PRODUCT_NAMES = {"tke": "TKE", "cls": "CLS", "monitor": "Cloud Monitor", "cvm": "CVM"}


MESSAGE_CHARS = 300  # of a message read from an answer's body


def translate(exc: TencentCloudSDKException) -> TencentCloudError:
    code = str(exc.get_code() or "ClientError")
    message = exc.get_message()
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    if len(text) > MESSAGE_CHARS:  # a proxy's error page, say
        text = text[:MESSAGE_CHARS] + " …"
    request_id = exc.get_request_id() or None
    if code == CLOCK_SKEW:
        return TencentClockError(code, f"{CLOCK_HINT}. {text}", request_id)
    if code.endswith(".ClusterState"):
        text = f"{CLUSTER_STATE}. {text}"
    if code in SERVICE_ROLES:
        return TencentServiceRoleError(code, f"{SERVICE_ROLES[code]}. {text}", request_id)
    if code.startswith(("AuthFailure", "UnauthorizedOperation")) or code in AUTH_CODES:
        return TencentAuthError(code, text, request_id)
    # TKE answers a cluster it does not know under four prefixes (tke errorcodes: ResourceNotFound,
    # InternalError, InvalidParameter and FailedOperation .ClusterNotFound).
    if (
        code.startswith("ResourceNotFound")
        or code.endswith(".ClusterNotFound")
        or (code.startswith("InternalError.") and code.endswith("NotFound"))
    ):
        return TencentNotFoundError(code, text, request_id)
    if code.startswith(RETRYABLE_PREFIXES) and not code.startswith(INTERNAL_PERMANENT):
        return TencentRetryableError(code, text, request_id)
    return TencentRequestError(code, text, request_id)
