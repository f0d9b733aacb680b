"""Tencent Cloud writes the assistant makes on request: the exact request, a lookup by name, a send.

Each create is split in three so a dry run can show exactly what would be sent and a retried
create can find what the first attempt made: the spec's ``request()`` builds the `CloudRequest`
(pure, in ambient/cloud/), ``find_*`` looks the resource up by its name (a read), and `send`
makes the one write.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from ambient.clients.tencent.client import TencentCloud, field
from ambient.clients.tencent.errors import (
    TencentAnswerError,
    TencentCloudError,
    TencentNotFoundError,
)


class CloudRequest(BaseModel):
    """One Tencent Cloud API call, exactly as it would be sent."""

    product: str = Field(description="cls, tke, monitor")
    action: str = Field(description="API action, e.g. CreateLogset")
    region: str | None = Field(default=None, description="None: the configured region")
    params: dict[str, Any] = Field(description="the JSON body of the call")

    def idempotency_key(self) -> str:
        """Same request, same key: the audit trail ties a retry to its first attempt."""
        canonical = json.dumps(
            [self.product, self.action, self.region, self.params], sort_keys=True
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


# --- lookups by name (a retried create finds what the first attempt made) -------------------
async def _listed(
    tc: TencentCloud, action: str, items: str, region: str | None, **values: str
) -> list[dict[str, Any]]:
    """Every item of a CLS list whose Filters match: each key its one value."""
    filters = [{"Key": key, "Values": [value]} for key, value in values.items()]
    return await tc.paged("cls", action, {"Filters": filters}, items, _IDS[action], region=region)


def _named(
    items: list[dict[str, Any]], by: str, name: str, id_field: str, action: str
) -> str | None:
    """``id_field`` of the item whose ``by`` is ``name``; without it the answer is not the
    API's (`field`): "not found" would create a duplicate."""
    found = next((item for item in items if item.get(by) == name), None)
    return None if found is None else str(field(found, id_field, action))


async def find_logset(tc: TencentCloud, name: str, *, region: str | None) -> str | None:
    items = await _listed(tc, "DescribeLogsets", "Logsets", region, logsetName=name)
    return _named(items, "LogsetName", name, "LogsetId", "DescribeLogsets")


async def find_topic(
    tc: TencentCloud, logset_id: str, name: str, *, region: str | None
) -> str | None:
    items = await _listed(
        tc, "DescribeTopics", "Topics", region, topicName=name, logsetId=logset_id
    )
    mine = [t for t in items if t.get("LogsetId") in (None, logset_id)]
    found = _named(mine, "TopicName", name, "TopicId", "DescribeTopics")
    if found is None:
        await must_exist(tc, "logset", logset_id, region=region)
    return found


# What a create names that must exist: its lookup, and the create's answer when it does not.
_NAMED = {
    "logset": ("DescribeLogsets", "logsetId", "Logsets", "LogsetId", "LogsetNotExist"),
    "topic": ("DescribeTopics", "topicId", "Topics", "TopicId", "TopicNotExist"),
    "notice": (
        "DescribeAlarmNotices",
        "alarmNoticeId",
        "AlarmNotices",
        "AlarmNoticeId",
        "AlarmNoticeNotExist",
    ),
}
# Each CLS list's item id (its API reference), which tells its pages' items apart (`paged`).
_IDS = {action: ident for action, _, _, ident, _ in _NAMED.values()} | {"DescribeAlarms": "AlarmId"}


async def must_exist(tc: TencentCloud, what: str, ident: str, *, region: str | None) -> None:
    """A dry run must not promise a create naming a logset, topic or notice that is not there: the
    create's own answer, given before anything is sent."""
    await _of(tc, what, ident, _NAMED[what][3], region=region)


async def _of(tc: TencentCloud, what: str, ident: str, field: str, *, region: str | None) -> str:
    """``field`` of the logset, topic or notice ``ident``; not there: the create's answer."""
    action, key, listed, id_field, code = _NAMED[what]
    items = await _listed(tc, action, listed, region, **{key: ident})
    if (value := _named(items, id_field, ident, field, action)) is None:
        missing = TencentNotFoundError(
            f"ResourceNotFound.{code}",
            f"{what} {ident} does not exist in region {region or tc.region}",
        )
        # Named by the lookup that found nothing, whichever tool looked (as a refused read is).
        missing.call = ("cls", action)
        raise missing
    return value


async def logset_of_topic(tc: TencentCloud, topic_id: str, *, region: str | None) -> str:
    """The logset a topic belongs to (an alarm target names both)."""
    return await _of(tc, "topic", topic_id, "LogsetId", region=region)


async def alarm_notice_named(
    tc: TencentCloud, name: str, *, region: str | None
) -> dict[str, Any] | None:
    """The notice of that name as listed (its receivers and callbacks), or None."""
    items = await _listed(tc, "DescribeAlarmNotices", "AlarmNotices", region, name=name)
    found = next((item for item in items if item.get("Name") == name), None)
    if found is not None:
        field(found, "AlarmNoticeId", "DescribeAlarmNotices")  # the API's answer, or said
    return found


def notice_destinations(notice: dict[str, Any]) -> tuple[set[str], set[int]]:
    """Where a notice sends: its callbacks' URLs and its Uin receivers' ids, its rules'
    (a notice made in the console keeps them in NoticeRules) as well as its own."""
    parts = [notice, *(notice.get("NoticeRules") or [])]
    urls = {
        str(hook.get("Url"))
        for part in parts
        for hook in part.get("WebCallbacks") or []
        if hook.get("Url")
    }
    uids = {
        int(uid)
        for part in parts
        for receiver in part.get("NoticeReceivers") or []
        if receiver.get("ReceiverType") == "Uin"
        for uid in receiver.get("ReceiverIds") or []
    }
    return urls, uids


async def find_alarm(tc: TencentCloud, name: str, *, region: str | None) -> str | None:
    items = await _listed(tc, "DescribeAlarms", "Alarms", region, name=name)
    return _named(items, "Name", name, "AlarmId", "DescribeAlarms")


async def find_scheduled_sql(
    tc: TencentCloud, name: str, source_topic_id: str, target_topic_id: str, *, region: str | None
) -> str | None:
    items = await tc.paged(
        "cls",
        "DescribeScheduledSqlInfo",
        {"Name": name},
        "ScheduledSqlTaskInfos",
        "TaskId",
        region=region,
    )
    # Task names are not unique: one of that name reading another topic, or writing to
    # another, is another task (taken for this one, nothing was ever written where asked).
    mine = [
        t
        for t in items
        if t.get("SrcTopicId") == source_topic_id
        and (t.get("DstResource") or {}).get("TopicId") == target_topic_id
    ]
    found = _named(mine, "Name", name, "TaskId", "DescribeScheduledSqlInfo")
    if found is None:
        for topic in (source_topic_id, target_topic_id):
            await must_exist(tc, "topic", topic, region=region)
    return found


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
# codes; CLS says InvalidParameter.*Conflict, and for logsets FailedOperation.LogsetConflict
# too). A create with no entry has no unique name: TKE node pools and scheduled SQL tasks may
# share one, so a race there can make two.
NAME_TAKEN = {
    "CreateLogset": ("InvalidParameter.LogsetConflict", "FailedOperation.LogsetConflict"),
    # FailedOperation.TopicCreating (Topic 创建中): another create of the name under way.
    "CreateTopic": ("InvalidParameter.TopicConflict", "FailedOperation.TopicCreating"),
    "CreateAlarmNotice": ("InvalidParameter.AlarmNoticeConflict",),
    "CreateAlarm": ("InvalidParameter.AlarmConflict",),
}


def name_taken(action: str, code: str) -> bool:
    """True when ``code`` is the API's answer to a create whose name another caller took."""
    return code in NAME_TAKEN.get(action, ())


# Refusals that may be a name taken, among other causes: AsCommon is any error creating a node
# pool's scaling group (伸缩组资源创建报错; a retry after a lost answer meets it too). A lookup
# tells whether a pool of the name is listed, not whose it is: found, it is said unconfirmed.
MAYBE_TAKEN = {"CreateClusterNodePool": ("FailedOperation.AsCommon", "InternalError.AsCommon")}


def maybe_taken(action: str, code: str) -> bool:
    return name_taken(action, code) or code in MAYBE_TAKEN.get(action, ())


# The API's own timeout (cls errorcodes: 操作超时; CreateAlarmNotice documents it): the
# request reached CLS, which did not say whether it was carried out.
TIMED_OUT = ("FailedOperation.Timeout",)


def answer_lost(exc: TencentCloudError) -> bool:
    """True when a write may have been carried out although it failed: it was sent and no
    answer came (``unanswered``: a read timeout, a reset, a gateway's 502/504), or CLS timed
    out on its side."""
    return exc.unanswered or exc.code in TIMED_OUT


async def send(tc: TencentCloud, request: CloudRequest) -> str | None:
    """Make the one write; the created resource's id (None if the action names none)."""
    answer = await tc.call(request.product, request.action, request.params, region=request.region)
    # The next list shows what was just made, not the one cached before it.
    tc.forget(request.region)
    if (named := CREATED_ID.get(request.action)) is None:
        return None
    try:
        return str(field(answer, named, request.action))
    except TencentAnswerError as exc:
        # Sent and answered, but not as the API answers: whether it was made is for a lookup
        # by its name to say (as for an answer lost); never "made, with no id", which sent a
        # dry run's placeholder in the alarm that was to use it.
        exc.unanswered = True
        raise
