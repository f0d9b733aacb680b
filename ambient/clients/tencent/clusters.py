"""TKE clusters and their node pools."""

from __future__ import annotations

from pydantic import BaseModel

from ambient.clients.tencent.client import TencentCloud, field


class Cluster(BaseModel):
    cluster_id: str
    name: str
    status: str
    version: str | None = None
    nodes: int | None = None


class NodePool(BaseModel):
    node_pool_id: str
    name: str
    state: str | None = None
    desired: int | None = None
    minimum: int | None = None
    maximum: int | None = None


async def list_clusters(tc: TencentCloud, *, region: str | None = None) -> list[Cluster]:
    async def load() -> list[Cluster]:
        # Every page: a cluster left off the list reads as a cluster that does not exist.
        clusters = await tc.paged(
            "tke", "DescribeClusters", {}, "Clusters", "ClusterId", region=region
        )
        return [
            Cluster(
                cluster_id=field(c, "ClusterId", "DescribeClusters"),
                name=c.get("ClusterName", ""),
                status=c.get("ClusterStatus", ""),
                version=c.get("ClusterVersion"),
                nodes=c.get("ClusterNodeNum"),
            )
            for c in clusters
        ]

    return await tc.cached(("clusters", region or tc.region), load)


async def list_node_pools(
    tc: TencentCloud, cluster_id: str, *, region: str | None = None
) -> list[NodePool]:
    answer = await tc.call(
        "tke", "DescribeClusterNodePools", {"ClusterId": cluster_id}, region=region
    )
    return [
        NodePool(
            node_pool_id=field(p, "NodePoolId", "DescribeClusterNodePools"),
            name=p.get("Name", ""),
            state=p.get("LifeState"),
            desired=p.get("DesiredNodesNum"),
            minimum=p.get("MinNodesNum"),
            maximum=p.get("MaxNodesNum"),
        )
        for p in answer.get("NodePoolSet") or []
    ]
