"""Tencent Cloud writes the assistant makes on request: the exact request, a lookup by name, a send.

Each create is split in three so a dry run can show exactly what would be sent and a retried
create can find what the first attempt made: ``*_request`` builds the `CloudRequest` (pure),
``find_*`` looks the resource up by its name (a read), and `send` makes the one write.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from ambient.clients.tencent.client import TencentCloud


class CloudRequest(BaseModel):
    """One Tencent Cloud API call, exactly as it would be sent."""

    product: str = Field(description="cls, tke, monitor")
    action: str = Field(description="API action, e.g. CreateLogset")
    region: str | None = Field(default=None, description="None: the configured region")
    params: dict[str, Any] = Field(description="the JSON body of the call")

    @property
    def cam_action(self) -> str:
        return f"{self.product}:{self.action}"

    def idempotency_key(self) -> str:
        """Same request, same key: the audit trail ties a retry to its first attempt."""
        canonical = json.dumps(
            [self.product, self.action, self.region, self.params], sort_keys=True
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def node_pool_request(
    *,
    cluster_id: str,
    name: str,
    vpc_id: str,
    subnet_ids: list[str],
    instance_type: str,
    minimum: int,
    maximum: int,
    desired: int,
    disk_type: str,
    disk_size: int,
    security_group_ids: list[str],
    labels: dict[str, str],
    os_name: str | None,
    region: str | None,
) -> CloudRequest:
    # TKE takes the scaling group and launch configuration as JSON strings (AS API shapes).
    scaling = {
        "AutoScalingGroupName": name,
        "MaxSize": maximum,
        "MinSize": minimum,
        "DesiredCapacity": desired,
        "VpcId": vpc_id,
        "SubnetIds": subnet_ids,
    }
    launch: dict[str, Any] = {
        "InstanceType": instance_type,
        "SystemDisk": {"DiskType": disk_type, "DiskSize": disk_size},
        "InstanceChargeType": "POSTPAID_BY_HOUR",
    }
    if security_group_ids:
        launch["SecurityGroupIds"] = security_group_ids
    params: dict[str, Any] = {
        "ClusterId": cluster_id,
        "Name": name,
        "AutoScalingGroupPara": json.dumps(scaling, sort_keys=True),
        "LaunchConfigurePara": json.dumps(launch, sort_keys=True),
        "InstanceAdvancedSettings": {},
        "EnableAutoscale": True,
    }
    if labels:
        params["Labels"] = [{"Name": k, "Value": v} for k, v in sorted(labels.items())]
    if os_name:
        params["NodePoolOs"] = os_name
    return CloudRequest(product="tke", action="CreateClusterNodePool", region=region, params=params)


def logset_request(*, name: str, region: str | None) -> CloudRequest:
    return CloudRequest(
        product="cls", action="CreateLogset", region=region, params={"LogsetName": name}
    )


def topic_request(
    *, logset_id: str, name: str, period: int, partitions: int, region: str | None
) -> CloudRequest:
    return CloudRequest(
        product="cls",
        action="CreateTopic",
        region=region,
        params={
            "LogsetId": logset_id,
            "TopicName": name,
            "PartitionCount": partitions,
            "Period": period,
            "StorageType": "hot",
        },
    )


def alarm_notice_request(
    *, name: str, webhook_url: str | None, receiver_uids: list[int], region: str | None
) -> CloudRequest:
    params: dict[str, Any] = {"Name": name, "Type": "All"}
    if receiver_uids:
        params["NoticeReceivers"] = [
            {
                "ReceiverType": "Uin",
                "ReceiverIds": receiver_uids,
                "ReceiverChannels": ["Email", "Sms"],
            }
        ]
    if webhook_url:
        params["WebCallbacks"] = [{"Url": webhook_url, "CallbackType": "Http", "Method": "POST"}]
    return CloudRequest(product="cls", action="CreateAlarmNotice", region=region, params=params)


def alarm_request(
    *,
    name: str,
    topic_id: str,
    logset_id: str,
    query: str,
    condition: str,
    period_minutes: int,
    window_minutes: int,
    trigger_count: int,
    notice_ids: list[str],
    level: int,
    region: str | None,
) -> CloudRequest:
    return CloudRequest(
        product="cls",
        action="CreateAlarm",
        region=region,
        params={
            "Name": name,
            "AlarmTargets": [
                {
                    "TopicId": topic_id,
                    "Query": query,
                    "Number": 1,
                    "StartTimeOffset": -window_minutes,
                    "EndTimeOffset": 0,
                    "LogsetId": logset_id,
                    "SyntaxRule": 1,
                }
            ],
            "MonitorTime": {"Type": "Period", "Time": period_minutes},
            "Condition": condition,
            "AlarmLevel": level,
            "TriggerCount": trigger_count,
            "AlarmPeriod": 15,
            "AlarmNoticeIds": notice_ids,
            "Status": True,
        },
    )


def scheduled_sql_request(
    *,
    name: str,
    source_topic_id: str,
    target_topic_id: str,
    sql: str,
    start_ms: int,
    period_minutes: int,
    window: str,
    region: str | None,
    default_region: str,
) -> CloudRequest:
    # The task names its topics' region explicitly (SrcTopicRegion is required, and CLS does
    # not deliver across regions): the region the call goes to, never an empty string.
    topic_region = region or default_region
    return CloudRequest(
        product="cls",
        action="CreateScheduledSql",
        region=region,
        params={
            "SrcTopicId": source_topic_id,
            "SrcTopicRegion": topic_region,
            "Name": name,
            "EnableFlag": 1,
            "DstResource": {"TopicId": target_topic_id, "Region": topic_region, "BizType": 0},
            "ScheduledSqlContent": sql,
            "ProcessStartTime": start_ms,
            "ProcessType": 1,
            "ProcessPeriod": period_minutes,
            "ProcessTimeWindow": window,
            "ProcessDelay": 60,
            "SyntaxRule": 1,
        },
    )


# --- lookups by name (a retried create finds what the first attempt made) -------------------
def _named(items: list[dict[str, Any]], field: str, name: str, id_field: str) -> str | None:
    for item in items:
        if item.get(field) == name:
            found = item.get(id_field)
            return str(found) if found else None
    return None


async def find_node_pool(
    tc: TencentCloud, cluster_id: str, name: str, *, region: str | None
) -> str | None:
    page = await tc.call(
        "tke", "DescribeClusterNodePools", {"ClusterId": cluster_id}, region=region
    )
    return _named(page.get("NodePoolSet") or [], "Name", name, "NodePoolId")


async def find_logset(tc: TencentCloud, name: str, *, region: str | None) -> str | None:
    filters = {"Filters": [{"Key": "logsetName", "Values": [name]}]}
    items = await tc.paged("cls", "DescribeLogsets", filters, "Logsets", region=region)
    return _named(items, "LogsetName", name, "LogsetId")


async def find_topic(
    tc: TencentCloud, logset_id: str, name: str, *, region: str | None
) -> str | None:
    filters = {
        "Filters": [
            {"Key": "topicName", "Values": [name]},
            {"Key": "logsetId", "Values": [logset_id]},
        ]
    }
    items = await tc.paged("cls", "DescribeTopics", filters, "Topics", region=region)
    mine = [t for t in items if t.get("LogsetId") in (None, logset_id)]
    return _named(mine, "TopicName", name, "TopicId")


async def logset_of_topic(tc: TencentCloud, topic_id: str, *, region: str | None) -> str | None:
    """The logset a topic belongs to (an alarm target names both)."""
    filters = {"Filters": [{"Key": "topicId", "Values": [topic_id]}]}
    items = await tc.paged("cls", "DescribeTopics", filters, "Topics", region=region)
    return _named(items, "TopicId", topic_id, "LogsetId")


async def find_alarm_notice(tc: TencentCloud, name: str, *, region: str | None) -> str | None:
    filters = {"Filters": [{"Key": "name", "Values": [name]}]}
    items = await tc.paged("cls", "DescribeAlarmNotices", filters, "AlarmNotices", region=region)
    return _named(items, "Name", name, "AlarmNoticeId")


async def find_alarm(tc: TencentCloud, name: str, *, region: str | None) -> str | None:
    filters = {"Filters": [{"Key": "name", "Values": [name]}]}
    items = await tc.paged("cls", "DescribeAlarms", filters, "Alarms", region=region)
    return _named(items, "Name", name, "AlarmId")


async def find_scheduled_sql(tc: TencentCloud, name: str, *, region: str | None) -> str | None:
    items = await tc.paged(
        "cls", "DescribeScheduledSqlInfo", {"Name": name}, "ScheduledSqlTaskInfos", region=region
    )
    return _named(items, "Name", name, "TaskId")


# The id each create answers with.
CREATED_ID = {
    "CreateClusterNodePool": "NodePoolId",
    "CreateLogset": "LogsetId",
    "CreateTopic": "TopicId",
    "CreateAlarmNotice": "AlarmNoticeId",
    "CreateAlarm": "AlarmId",
    "CreateScheduledSql": "TaskId",
}


# What each create answers when the name is already taken (each action's documented error
# code; CLS says InvalidParameter.*Conflict). A create with no entry has no unique name: TKE
# node pools and scheduled SQL tasks may share one, so a race there can make two.
NAME_TAKEN = {
    "CreateLogset": "InvalidParameter.LogsetConflict",
    "CreateTopic": "InvalidParameter.TopicConflict",
    "CreateAlarmNotice": "InvalidParameter.AlarmNoticeConflict",
    "CreateAlarm": "InvalidParameter.AlarmConflict",
}


def name_taken(request: CloudRequest, code: str) -> bool:
    """True when ``code`` is the API's answer to a create whose name another caller took."""
    return NAME_TAKEN.get(request.action) == code


async def send(tc: TencentCloud, request: CloudRequest) -> str | None:
    """Make the one write; the created resource's id (None if the action names none)."""
    answer = await tc.call(request.product, request.action, request.params, region=request.region)
    found = answer.get(CREATED_ID.get(request.action, ""))
    return str(found) if found else None
