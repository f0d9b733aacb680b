"""TKE node pools: create one, or set its desired size (asked-for, permissioned, audited)."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from ambient.clients.tencent import writes
from ambient.clients.tencent.clusters import list_node_pools
from ambient.clients.tencent.errors import TencentCloudError
from ambient.clients.tencent.writes import CloudRequest
from ambient.cloud.audit import Mode, Region, outcome_of
from ambient.cloud.creates import CloudCreates, WriteResult
from ambient.cloud.errors import CloudOpsFailedError, CloudOpsInputError, readable
from ambient.domain.configs import UserConfig
from ambient.domain.identifiers import TKE_CLUSTER_HINT, TkeClusterId
from ambient.domain.numbers import WholeNumber

# --- what can be asked for (typed inputs shared by MCP, API and CLI) ------------------------
# A node pool's name is also its scaling group's: AS CreateAutoScalingGroup's AutoScalingGroupName
# takes Chinese, letters, digits, '_', '-' and '.', at most 55 bytes.
SCALING_GROUP_NAME = re.compile(r"[A-Za-z0-9_.\-\u4e00-\u9fff]+")


# AS SystemDisk.DiskType (its data types: 取值范围): AS refuses any other.
DiskType = Literal[
    "LOCAL_BASIC",
    "LOCAL_SSD",
    "CLOUD_BASIC",
    "CLOUD_PREMIUM",
    "CLOUD_SSD",
    "CLOUD_BSSD",
    "CLOUD_HSSD",
    "CLOUD_TSSD",
]


class NodePoolSpec(UserConfig):
    cluster_id: TkeClusterId = Field(description=f"TKE cluster: {TKE_CLUSTER_HINT}")
    name: str = Field(
        min_length=1,
        max_length=55,
        description="node pool name (unique): Chinese, letters, digits, '_', '-', '.'",
    )
    vpc_id: str = Field(max_length=64, description="VPC of the cluster, e.g. vpc-abc123")
    subnet_ids: list[str] = Field(min_length=1, max_length=20, description="subnets for nodes")
    instance_type: str = Field(max_length=64, description="CVM instance type, e.g. S5.MEDIUM4")
    minimum: WholeNumber = Field(default=0, ge=0, le=1000, description="fewest nodes")
    maximum: WholeNumber = Field(default=3, ge=0, le=1000, description="most nodes")
    desired: WholeNumber = Field(default=1, ge=0, le=1000, description="nodes to start with")
    disk_type: DiskType = Field(default="CLOUD_PREMIUM", description="system disk type")
    disk_size: WholeNumber = Field(default=50, ge=20, le=1024, description="system disk GB")
    security_group_ids: list[str] = Field(default_factory=list, max_length=5)
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes node labels")
    os_name: str | None = Field(default=None, max_length=64, description="e.g. tlinux3.1x86_64")
    autoscale: bool = Field(
        default=True,
        description="TKE's cluster autoscaler adds and removes nodes between minimum and "
        "maximum (it may undo a scale_node_pool); false keeps the size asked for",
    )
    region: Region = Field(default=None, description="region (default: configured)")

    @field_validator("name")
    @classmethod
    def _scaling_group_name(cls, value: str) -> str:
        if not SCALING_GROUP_NAME.fullmatch(value) or len(value.encode()) > 55:
            raise ValueError(
                "names the node pool's scaling group too: Chinese, letters, digits, '_', '-' "
                "and '.', at most 55 bytes in UTF-8 (18 Chinese characters)"
            )
        return value

    def request(self) -> CloudRequest:
        # TKE takes the scaling group and launch configuration as JSON strings (AS API shapes).
        scaling = {
            "AutoScalingGroupName": self.name,
            "MaxSize": self.maximum,
            "MinSize": self.minimum,
            "DesiredCapacity": self.desired,
            "VpcId": self.vpc_id,
            "SubnetIds": self.subnet_ids,
        }
        launch: dict[str, Any] = {
            "InstanceType": self.instance_type,
            "SystemDisk": {"DiskType": self.disk_type, "DiskSize": self.disk_size},
            "InstanceChargeType": "POSTPAID_BY_HOUR",
        }
        if self.security_group_ids:
            launch["SecurityGroupIds"] = self.security_group_ids
        params: dict[str, Any] = {
            "ClusterId": self.cluster_id,
            "Name": self.name,
            "AutoScalingGroupPara": json.dumps(scaling, sort_keys=True),
            "LaunchConfigurePara": json.dumps(launch, sort_keys=True),
            "InstanceAdvancedSettings": {},
            "EnableAutoscale": self.autoscale,
        }
        if self.labels:
            params["Labels"] = [{"Name": k, "Value": v} for k, v in sorted(self.labels.items())]
        if self.os_name:
            params["NodePoolOs"] = self.os_name
        return CloudRequest(
            product="tke", action="CreateClusterNodePool", region=self.region, params=params
        )


class NodePoolScaleSpec(UserConfig):
    cluster_id: TkeClusterId = Field(description=f"TKE cluster: {TKE_CLUSTER_HINT}")
    node_pool_id: str = Field(max_length=128, description="e.g. np-abc123 (see list_node_pools)")
    desired: WholeNumber = Field(ge=0, le=1000, description="desired number of nodes")
    region: Region = Field(default=None, description="region (default: configured)")


class NodePoolScaleResult(BaseModel):
    cluster_id: str
    node_pool_id: str
    previous: int | None
    desired: int
    executed: bool = Field(
        description="true when the change was sent; false for a dry run or when the pool "
        "already has that size (nothing to change)"
    )


class NodePoolWrites(CloudCreates):
    """scale_node_pool and create_node_pool."""

    async def scale_node_pool(
        self, actor: str, spec: NodePoolScaleSpec, mode: Mode = "dry_run"
    ) -> NodePoolScaleResult:
        """Set a node pool's desired size (ModifyNodePoolDesiredCapacityAboutAsg)."""
        subject = f"tke:{spec.cluster_id}/{spec.node_pool_id}"
        # The region the calls go to, named: the audit says where it acted.
        region = spec.region or self.tencent.region
        permission = await self.authorize(
            actor, "scale_node_pool", subject, mode, desired=spec.desired, region=region
        )
        detail: dict[str, Any] = {
            "mode": mode,
            "desired": spec.desired,
            "region": region,
            "permission": permission.value,
            "sent": False,
        }
        async with self.audited(actor, "scale_node_pool", subject, detail):
            with readable("tke", "DescribeClusterNodePools"):
                pools = await list_node_pools(self.tencent, spec.cluster_id, region=region)
            pool = next((p for p in pools if p.node_pool_id == spec.node_pool_id), None)
            if pool is None:
                known = ", ".join(p.node_pool_id for p in pools) or "none"
                raise CloudOpsFailedError(
                    "not_found",
                    f"no node pool {spec.node_pool_id} in {spec.cluster_id}; pools: {known}",
                )
            detail["previous"] = pool.desired
            if (
                pool.minimum is not None
                and pool.maximum is not None
                and not pool.minimum <= spec.desired <= pool.maximum
            ):
                raise CloudOpsInputError(
                    "desired",
                    f"must be within [{pool.minimum}, {pool.maximum}] for {spec.node_pool_id}",
                )
            # Already that size: nothing to send, and the audit says nothing changed.
            executed = mode == "execute" and pool.desired != spec.desired
            if executed:
                request = CloudRequest(
                    product="tke",
                    action="ModifyNodePoolDesiredCapacityAboutAsg",
                    region=region,
                    params={
                        "ClusterId": spec.cluster_id,
                        "NodePoolId": spec.node_pool_id,
                        "DesiredCapacity": spec.desired,
                    },
                )
                with readable(request.product, request.action):
                    detail["sent"] = True
                    try:
                        await writes.send(self.tencent, request)
                    except TencentCloudError as exc:
                        if not writes.answer_lost(exc):
                            raise
                        await self._resized_unanswered(spec, region, exc)
            detail["outcome"] = outcome_of(mode, changed=executed)
        return NodePoolScaleResult(
            cluster_id=spec.cluster_id,
            node_pool_id=spec.node_pool_id,
            previous=pool.desired,
            desired=spec.desired,
            executed=executed,
        )

    async def _resized_unanswered(
        self, spec: NodePoolScaleSpec, region: str, exc: TencentCloudError
    ) -> None:
        """A resize sent whose answer never came may have been made: the pool read again at
        the size asked is done; else the caller hears that it may still be (not 'try again'
        as if nothing had happened; the same size asked again changes nothing more)."""
        self.tencent.forget(region)
        # Each error said whole: its code and the RequestId Tencent's support asks for.
        checked = ""
        try:
            pools = await list_node_pools(self.tencent, spec.cluster_id, region=region)
        except TencentCloudError as again:
            checked = f"; whether it did could not be checked ({again})"
        else:
            if any(
                p.node_pool_id == spec.node_pool_id and p.desired == spec.desired for p in pools
            ):
                return
        raise CloudOpsFailedError(
            "answer_lost",
            f"ModifyNodePoolDesiredCapacityAboutAsg got no answer from Tencent Cloud ({exc}): "
            f"the pool may be resizing to {spec.desired} all the same{checked}; "
            "list_node_pools shows its desired size, and asking for the same size again "
            "changes nothing more",
        )

    async def create_node_pool(
        self, actor: str, spec: NodePoolSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        def request() -> CloudRequest:
            if not spec.minimum <= spec.desired <= spec.maximum:
                raise CloudOpsInputError(
                    "desired",
                    f"must be within [minimum, maximum] = [{spec.minimum}, {spec.maximum}]",
                )
            return spec.request()

        return await self._create_one(
            actor,
            "create_node_pool",
            f"tke:{spec.cluster_id}/nodepool:{spec.name}",
            mode,
            request,
            lambda: self._find_node_pool(spec),
            f"node pool {spec.name!r}",
        )

    async def _find_node_pool(self, spec: NodePoolSpec) -> str | None:
        """The live pool of the name: one deleted is not it (the user's new one is asked for);
        one being deleted still holds the name of its scaling group, unique in the account (AS
        CreateAutoScalingGroup), so nothing can be created until it is gone: said so."""
        pools = await list_node_pools(self.tencent, spec.cluster_id, region=spec.region)
        named = [p for p in pools if p.name == spec.name and p.state != "deleted"]
        if (live := next((p for p in named if p.state != "deleting"), None)) is not None:
            return live.node_pool_id
        if named:
            raise CloudOpsFailedError(
                "conflict",
                f"node pool {spec.name!r} ({named[0].node_pool_id}) is being deleted and holds "
                "its name until it is gone; ask again once list_node_pools no longer shows it",
            )
        return None
