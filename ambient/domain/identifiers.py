"""Identifiers of clusters and Kubernetes objects, checked by their real format.

Shared by every model that names a target (alerts, Kubernetes writes), so MCP, the API, the
CLI and the pages refuse the same values with the same words:

- a TKE cluster id is ``cls-`` and 8 lowercase letters or digits (DescribeClusters' ClusterId);
- any other cluster reference is a context name of AMBIENT_KUBECONFIG, as kubectl names them
  (``kind-dev``, ``gke_p_zone_c``, ``arn:aws:eks:...:cluster/c``, ``admin@dev``), never a URL;
- a namespace is a DNS-1123 label, a workload name a DNS-1123 subdomain (Kubernetes' rules);
- a Tencent Cloud region is its API name (``ap-guangzhou``, ``na-siliconvalley``,
  ``ap-shanghai-fsi``): it is sent as the X-TC-Region header, where anything else fails.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# Checked with fullmatch: re's "$" also matches before a final "\n" ("prod\n" passed).
TKE_CLUSTER_ID = re.compile(r"^cls-[a-z0-9]{8}$")
_KUBECONFIG_CONTEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:/-]{0,127}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN_PART = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_SUBDOMAIN_PART}(\.{_DNS_SUBDOMAIN_PART})*$")

TENCENT_REGION = re.compile(r"^[a-z]{2}-[a-z]+(-[a-z0-9]+)*$")
TENCENT_REGION_EXAMPLES = "ap-guangzhou, ap-shanghai, na-ashburn"
TENCENT_REGION_HINT = f"a Tencent Cloud region name, e.g. {TENCENT_REGION_EXAMPLES}"
TKE_CLUSTER_HINT = "cls- and 8 lowercase letters or digits, e.g. cls-7kq2m0ab"


def tke_cluster_id(value: str) -> str:
    """``value`` if it is a TKE cluster id."""
    if not TKE_CLUSTER_ID.fullmatch(value):
        raise ValueError(f"must be a TKE cluster id: {TKE_CLUSTER_HINT}")
    return value


# Short names some APIs write a region as (Cloud Monitor's AlarmHistory.Region: "gz"; the
# same short names as Monitor's and CLB's region fields), by the region's API name.
TENCENT_REGION_SHORT_NAMES = {
    "gz": "ap-guangzhou",
    "sh": "ap-shanghai",
    "bj": "ap-beijing",
    "cd": "ap-chengdu",
    "cq": "ap-chongqing",
    "nj": "ap-nanjing",
    "szx": "ap-shenzhen",
    "tsn": "ap-tianjin",
    "qy": "ap-qingyuan",
    "gzopen": "ap-guangzhou-open",
    "shjr": "ap-shanghai-fsi",
    "szjr": "ap-shenzhen-fsi",
    "bjjr": "ap-beijing-fsi",
    "hk": "ap-hongkong",
    "tpe": "ap-taipei",
    "sg": "ap-singapore",
    "th": "ap-bangkok",
    "jkt": "ap-jakarta",
    "in": "ap-mumbai",
    "kr": "ap-seoul",
    "jp": "ap-tokyo",
    "usw": "na-siliconvalley",
    "use": "na-ashburn",
    "ca": "na-toronto",
    "tor": "na-toronto",
    "sao": "sa-saopaulo",
    "de": "eu-frankfurt",
    "ru": "eu-moscow",
    "hzec": "ap-hangzhou-ec",
    "jnec": "ap-jinan-ec",
    "fzec": "ap-fuzhou-ec",
    "whec": "ap-wuhan-ec",
    "csec": "ap-changsha-ec",
    "sjwec": "ap-shijiazhuang-ec",
    "hfeec": "ap-hefei-ec",
    "sheec": "ap-shenyang-ec",
    "xiyec": "ap-xian-ec",
    "xbec": "ap-xibei-ec",
    "cgoec": "ap-zhengzhou-ec",
}


def region_name(value: str | None) -> str | None:
    """The API name of a region an API wrote as its API name or its short name ("sh" is
    ap-shanghai); None for anything else (not guessed at)."""
    if not value:
        return None
    if value in TENCENT_REGION_SHORT_NAMES:
        return TENCENT_REGION_SHORT_NAMES[value]
    return value if len(value) <= 32 and TENCENT_REGION.fullmatch(value) else None


def tencent_region(value: str) -> str:
    """``value`` if it is written as a Tencent Cloud region."""
    if len(value) > 32 or not TENCENT_REGION.fullmatch(value):
        raise ValueError(f"must be {TENCENT_REGION_HINT} (not {value[:40]!r})")
    return value


def cluster_ref(value: str) -> str:
    """``value`` if it is a TKE cluster id or could name a kubeconfig context."""
    if value.startswith("cls-"):
        return tke_cluster_id(value)
    if "//" in value or not _KUBECONFIG_CONTEXT.fullmatch(value):
        raise ValueError(
            f"must be a TKE cluster id ({TKE_CLUSTER_HINT}) or a context name of "
            "AMBIENT_KUBECONFIG (letters, digits and _ . @ : / -)"
        )
    return value


def namespace_name(value: str) -> str:
    """``value`` if it is a Kubernetes namespace name."""
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            "must be a Kubernetes namespace: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def object_name(value: str, what: str = "Kubernetes object name") -> str:
    """``value`` if it is a Kubernetes object name (Deployment, Service, ...)."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"must be a {what}: lowercase letters, digits, '-' and '.', "
            "each dot-separated part starting and ending with a letter or digit, "
            "at most 253 characters"
        )
    return value


TencentRegion = Annotated[str, AfterValidator(tencent_region)]
TkeClusterId = Annotated[str, AfterValidator(tke_cluster_id)]
ClusterRef = Annotated[str, AfterValidator(cluster_ref)]
NamespaceName = Annotated[str, AfterValidator(namespace_name)]
ObjectName = Annotated[str, AfterValidator(object_name)]
