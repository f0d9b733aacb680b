"""The voice profile's cluster_health: how many TKE clusters run and which do not, each
failure of the Tencent Cloud read said as what to do."""

from __future__ import annotations

import asyncio
import logging

from ambient.clients.tencent.client import LIST_READS
from ambient.clients.tencent.clusters import Cluster
from ambient.clients.tencent.errors import (
    TencentAnswerError,
    TencentAuthError,
    TencentClockError,
    TencentCloudError,
    TencentListChangedError,
    TencentRetryableError,
)
from ambient.cloud.errors import temporary_keys_refused
from ambient.wiring import AppState
from mcp_server.auth import Ctx
from mcp_server.voice_answer import answer, left, say
from mcp_server.voice_approvals import VOICE_CLUSTERS
from mcp_server.voice_prompt import Spoken
from mcp_server.voice_references import spoken_name

log = logging.getLogger(__name__)

# Less of the call's budget left than this for the clusters' read is no wait for Tencent Cloud.
TENCENT_FAIR_WAIT = 0.5


async def cluster_health(ctx: Ctx, speaker: Spoken = None) -> str:
    """How many TKE clusters run, and which do not."""

    async def work(state: AppState, _: str) -> str:
        cloud = state.cloud
        if not cloud.configured:
            return say(
                "还没有配置腾讯云账号，我看不到集群。",
                "No Tencent Cloud account is set up, so I can't see any clusters.",
            )
        reads = state.cloud_reads
        # One read at a time, shared with the fixes' cluster names (`name_clusters`). It goes
        # on when this call stops waiting: "请稍后再问" is true, as the next call has its answer.
        reading = reads.tencent.shared(VOICE_CLUSTERS, reads.clusters)
        if left() < TENCENT_FAIR_WAIT:
            # The budget went on this system's own work (who speaks, the bridge's check):
            # said as this system being slow, not as Tencent Cloud not answering.
            raise TimeoutError
        try:
            # The SDK waits 30 s for an answer, a voice client 10: a silent endpoint is named
            # before the call's budget runs out (and is said as this system being slow).
            async with asyncio.timeout(left()):
                clusters = await asyncio.shield(reading)
        except TimeoutError:
            return say(
                "腾讯云没有及时回应，看不到集群状况，请稍后再问。",
                "Tencent Cloud did not answer in time, so I can't see the clusters."
                " Please ask again later.",
            )
        except (TencentClockError, TencentAuthError) as exc:
            if temporary_keys_refused(exc):  # expired, most likely: a clock off says the same
                return say(
                    "腾讯云不接受配置的临时密钥，它可能已经过期，看不到集群。请让运维换上新的临时密钥，"
                    "密钥 ID、密钥和令牌三项一起换。",
                    "Tencent Cloud refused the configured temporary keys; they may have expired,"
                    " so I can't see the clusters. Please ask an operator to set new temporary"
                    " keys, the key ID, the key and the token together.",
                )
            if isinstance(exc, TencentClockError):
                return say(
                    "这台机器的时钟和腾讯云相差超过五分钟，请求都被拒绝了。请校准系统时间。",
                    "This machine's clock is more than five minutes off Tencent Cloud's, so every"
                    " request is refused. Please set the system time right.",
                )
            # Asking again later cannot help: the keys or their CAM policy must change.
            return say(
                "腾讯云拒绝了配置的密钥，看不到集群。请检查 API 密钥和它的访问策略。",
                "Tencent Cloud refused the configured keys, so I can't see the clusters."
                " Please check the API keys and their access policy.",
            )
        except TencentAnswerError as exc:
            # Not the API's answer (an id missing, a list stopping short): asked again, the
            # same way to it (a proxy, the endpoint set) answers the same.
            log.warning("cluster_health: %s", exc)
            return say(
                "腾讯云那边的回答不是它的接口该有的样子，看不到集群。请让运维检查到腾讯云的网络代理和接口地址设置。",
                "Tencent Cloud's answer was not what its API gives, so I can't see the clusters."
                " Please ask an operator to check the proxy and endpoint set for Tencent Cloud.",
            )
        except TencentListChangedError:
            # Reached at every page: a cluster made or removed meanwhile, at each of the reads.
            return say(
                f"腾讯云的集群列表在读的时候一直在变，连读{LIST_READS}次都没读完整。请过一会儿再问。",
                f"Tencent Cloud's cluster list kept changing while I read it, {LIST_READS} times"
                " over. Please ask again in a moment.",
            )
        except TencentRetryableError:
            return say(
                "暂时连不上腾讯云，看不到集群状况，请稍后再问。",
                "I can't reach Tencent Cloud right now. Please ask again later.",
            )
        except TencentCloudError as exc:
            # Refused for good (a region out of format or not served, the account's state):
            # asking later answers the same. The API's words stay in the log.
            log.info("cluster_health refused: %s", exc)
            return say(
                "腾讯云拒绝了查询集群的请求，稍后再问也一样。请检查腾讯云的配置，比如地域。",
                "Tencent Cloud refused the cluster query, and asking later won't change that."
                " Please check the Tencent Cloud settings, such as the region.",
            )
        if not clusters:
            return say("这个账号下没有容器集群。", "This account has no container clusters.")
        bad = [c for c in clusters if c.status.lower() != "running" and not _changing(c)]
        busy = [c for c in clusters if _changing(c)]
        if not bad and not busy:
            if len(clusters) == 1:  # not "all 1 clusters"
                return say("唯一的集群在正常运行。", "The cluster is running normally.")
            return say(
                f"{len(clusters)} 个集群都在正常运行。",
                f"All {len(clusters)} clusters are running normally.",
            )
        if not bad and len(clusters) == 1:  # not "1 个集群都没有异常"
            said, said_en = _listed(busy, 1)
            return say(
                f"唯一的集群正在变化：{said}。", f"The cluster is changing state: {said_en}."
            )
        # Three named at most, each with its state; past them the list is said to go on.
        named = bad[:3]
        said, said_en = _listed(named, len(bad))
        if not bad:
            said, said_en = (
                f"{len(clusters)} 个集群都没有异常",
                f"No cluster of {len(clusters)} is unhealthy",
            )
        else:
            said = f"{len(clusters)} 个集群里有 {len(bad)} 个不正常：{said}"
            said_en = f"Unhealthy clusters, {len(bad)} of {len(clusters)}: {said_en}"
        changing, changing_en = ("", "")
        if busy and len(named) < 3:  # a sleeping or upgrading one: said as such, not unhealthy
            listed, listed_en = _listed(busy[: 3 - len(named)], len(busy))
            changing = f"；{len(busy)} 个正在变化：{listed}"
            changing_en = f"; {len(busy)} changing state: {listed_en}"
        return say(f"{said}{changing}。", f"{said_en}{changing_en}.")

    return await answer(ctx, speaker, work)


# TKE's ClusterStatus values (the DescribeClusters reference) that are a cluster on its way
# somewhere, not a failure: a sleeping (Idling) or upgrading one was "不正常".
CHANGING = {
    "trading": ("开通中", "being opened"),
    "creating": ("创建中", "being created"),
    "deleting": ("删除中", "being deleted"),
    "idling": ("闲置中", "idling"),
    "recovering": ("唤醒中", "waking up"),
    "scaling": ("规模调整中", "being resized"),
    "upgrading": ("升级中", "upgrading"),
    "waittingforconnect": ("等待注册", "waiting to be registered"),
    "nodeupgrading": ("节点升级中", "upgrading its nodes"),
    "runtimeupgrading": ("节点运行时升级中", "upgrading its node runtime"),
    "masterscaling": ("Master 扩缩容中", "scaling its masters"),
    "clusterlevelupgrading": ("调整规格中", "changing its level"),
    "resourcereverse": ("冲正中", "being reversed"),
}
# The states that are a failure, in the reference's words; any other is said as TKE says it.
FAILED = {
    "isolated": ("欠费隔离中", "isolated for an overdue bill"),
    "pause": ("升级暂停", "paused in an upgrade"),
    "resourceisolate": ("隔离中", "being isolated"),
    "resourceisolated": ("已隔离", "isolated"),
    "abnormal": ("异常", "abnormal"),
}


def _changing(cluster: Cluster) -> bool:
    return cluster.status.lower() in CHANGING


def _listed(clusters: list[Cluster], total: int) -> tuple[str, str]:
    """Clusters named with their states ("dev（闲置中）"), "等" / "and more" past them."""
    words = {**CHANGING, **FAILED}
    said, said_en = [], []
    for cluster in clusters:
        state = cluster.status
        zh, en = words.get(state.lower(), (state, state))
        name = spoken_name(cluster.name)
        said.append(f"{name}（{zh}）")
        said_en.append(f"{name} ({en})")
    more, more_en = (" 等", " and more") if total > len(clusters) else ("", "")
    return "、".join(said) + more, ", ".join(said_en) + more_en
