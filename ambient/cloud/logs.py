"""CLS writes: logsets, topics, alarm policies (with a new notice), scheduled SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, field_validator

from ambient.clients.guard import RefusedDestinationError, url_host
from ambient.clients.tencent import writes
from ambient.clients.tencent.writes import CloudRequest
from ambient.cloud.audit import Mode, Region, Row, interrupted
from ambient.cloud.creates import CloudCreates, WriteResult, WriteStep
from ambient.cloud.errors import CloudOpsFailedError, CloudOpsInputError, readable
from ambient.domain.configs import UserConfig
from ambient.domain.numbers import WholeNumber
from ambient.storage.models import as_utc
from ambient.storage.users import user_named

# What the CLS API references refuse in a name, so a dry run does not promise such a create:
# '|' in any name, alarm and notice names past 255 bytes ("最大支持255个字节"), a webhook URL past
# 1024 bytes, and the topic names CLS keeps for its own logs.
RESERVED_TOPIC_NAMES = (
    "cls_service_log",
    "cls_service_metric",
    "loglistener_alarm",
    "loglistener_business",
    "loglistener_status",
)


def _bytes_at_most(most: int) -> AfterValidator:
    def check(value: str) -> str:
        if len(value.encode()) > most:
            raise ValueError(f"must be at most {most} bytes in UTF-8 (a Chinese character is 3)")
        return value

    return AfterValidator(check)


def _no_pipe(value: str) -> str:
    if "|" in value:
        raise ValueError("must not contain '|' (CLS refuses it in names)")
    return value


ClsName = Annotated[str, AfterValidator(_no_pipe)]
ClsAlarmName = Annotated[ClsName, _bytes_at_most(255)]


class LogsetSpec(UserConfig):
    name: ClsName = Field(min_length=1, max_length=255, description="logset name (unique)")
    region: Region = Field(default=None, description="region (default: configured)")

    def request(self) -> CloudRequest:
        params = {"LogsetName": self.name}
        return CloudRequest(product="cls", action="CreateLogset", region=self.region, params=params)


KEPT_FOR_EVER = 3640  # CreateTopic's Period for logs kept for ever


class TopicSpec(UserConfig):
    logset_id: str = Field(max_length=64, description="the logset the topic belongs to")
    name: ClsName = Field(min_length=1, max_length=255, description="topic name (unique in logset)")
    period: WholeNumber = Field(
        default=30, ge=1, le=KEPT_FOR_EVER, description="retention days: 1-3600, or 3640 for ever"
    )
    partitions: WholeNumber = Field(default=1, ge=1, le=10, description="partition count")
    region: Region = Field(default=None, description="region (default: configured)")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_TOPIC_NAMES:
            raise ValueError(f"is kept by CLS for its own logs ({', '.join(RESERVED_TOPIC_NAMES)})")
        return value

    @field_validator("period")
    @classmethod
    def _days_or_for_ever(cls, value: int) -> int:
        # CreateTopic's Period: 1 to 3600 days; 3640 keeps the logs for ever (永久保存).
        if 3600 < value < KEPT_FOR_EVER:
            raise ValueError(f"1 to 3600 days, or {KEPT_FOR_EVER} to keep the logs for ever")
        return value

    def request(self) -> CloudRequest:
        params = {
            "LogsetId": self.logset_id,
            "TopicName": self.name,
            "PartitionCount": self.partitions,
            "Period": self.period,
            "StorageType": "hot",
        }
        return CloudRequest(product="cls", action="CreateTopic", region=self.region, params=params)


# A create's refusal that says nothing was made (its input, a permission, the account, a
# quota): a notice made for the alarm refused is deleted (create_cls_alarm).
NOTHING_MADE = frozenset({"invalid_parameter", "not_found", "auth", "account", "quota"})


class AlarmSpec(UserConfig):
    name: ClsAlarmName = Field(
        min_length=1, max_length=255, description="alarm policy name (unique)"
    )
    topic_id: str = Field(max_length=64, description="CLS topic the query runs on")
    logset_id: str | None = Field(
        default=None, max_length=64, description="the topic's logset (default: looked up)"
    )
    query: str = Field(
        min_length=1, max_length=4000, description="e.g. 'level:ERROR | select count(*) as n'"
    )
    condition: str = Field(
        min_length=1, max_length=1000, description="trigger, e.g. '$1.n > 10' ($1 = the query)"
    )
    period_minutes: WholeNumber = Field(default=5, ge=1, le=1440, description="how often it runs")
    window_minutes: WholeNumber = Field(default=15, ge=1, le=1440, description="minutes searched")
    # CreateAlarm's TriggerCount: 1 to 2000 periods (its AlarmInfo's read-back says 10: not
    # what the request takes).
    trigger_count: WholeNumber = Field(
        default=1, ge=1, le=2000, description="periods the condition holds before it fires"
    )
    level: WholeNumber = Field(default=1, ge=0, le=2, description="0 warning, 1 info, 2 critical")
    notice_ids: list[str] = Field(
        default_factory=list, max_length=10, description="existing notice ids (notice-...)"
    )
    notice_name: ClsAlarmName | None = Field(
        default=None, max_length=255, description="create (or reuse) a notice of this name"
    )
    notice_webhook: Annotated[str, _bytes_at_most(1024)] | None = Field(
        default=None, max_length=1024, description="webhook URL the new notice calls"
    )
    notice_uids: list[WholeNumber] = Field(
        default_factory=list,
        max_length=20,
        description="CAM sub-users to email/SMS, by their Uid (as CAM's user list shows it), "
        "not their UIN: CLS takes Uids",
    )
    region: Region = Field(default=None, description="region (default: configured)")

    @field_validator("notice_webhook")
    @classmethod
    def _http_webhook(cls, value: str | None) -> str | None:
        # CLS posts to it (CallbackType Http): anything but an http(s) URL can never be called.
        if value is not None:
            try:
                url_host(value)
            except RefusedDestinationError as exc:
                raise ValueError(str(exc)) from None
        return value

    def notice_request(self, name: str) -> CloudRequest:
        params: dict[str, Any] = {"Name": name, "Type": "All"}
        if self.notice_uids:
            receivers = {"ReceiverType": "Uin", "ReceiverIds": self.notice_uids}
            channels = {"ReceiverChannels": ["Email", "Sms"]}
            # The reference marks the hours a receiver takes notices in "必填": all day.
            hours = {"StartTime": "00:00:00", "EndTime": "23:59:59"}
            params["NoticeReceivers"] = [receivers | channels | hours]
        if self.notice_webhook:
            hook = {"Url": self.notice_webhook, "CallbackType": "Http", "Method": "POST"}
            params["WebCallbacks"] = [hook]
        return CloudRequest(
            product="cls", action="CreateAlarmNotice", region=self.region, params=params
        )

    def request(self, logset_id: str, notice_ids: list[str]) -> CloudRequest:
        target = {
            "TopicId": self.topic_id,
            "Query": self.query,
            "Number": 1,
            "StartTimeOffset": -self.window_minutes,
            "EndTimeOffset": 0,
            "LogsetId": logset_id,
            "SyntaxRule": 1,
        }
        params = {
            "Name": self.name,
            "AlarmTargets": [target],
            "MonitorTime": {"Type": "Period", "Time": self.period_minutes},
            "Condition": self.condition,
            "AlarmLevel": self.level,
            "TriggerCount": self.trigger_count,
            "AlarmPeriod": 15,
            "AlarmNoticeIds": notice_ids,
            "Status": True,
        }
        return CloudRequest(product="cls", action="CreateAlarm", region=self.region, params=params)


class ScheduledSqlSpec(UserConfig):
    name: str = Field(min_length=1, max_length=255, description="task name (unique)")
    source_topic_id: str = Field(max_length=64, description="topic the SQL reads")
    target_topic_id: str = Field(max_length=64, description="topic the results go to")
    sql: str = Field(min_length=1, max_length=4000, description="e.g. '* | select count(*)'")
    period_minutes: WholeNumber = Field(
        default=60, ge=1, le=1440, description="run every N minutes"
    )
    window: str = Field(
        default="@m-1h,@m", max_length=64, description="time window of each run, CLS syntax"
    )
    start: datetime | None = Field(default=None, description="first run (default: now)")
    region: Region = Field(default=None, description="region (default: configured)")

    def request(self, start_ms: int, default_region: str) -> CloudRequest:
        # The task names its topics' region explicitly (SrcTopicRegion is required, and CLS
        # does not deliver across regions): the region the call goes to, never an empty string.
        topic_region = self.region or default_region
        params = {
            "SrcTopicId": self.source_topic_id,
            "SrcTopicRegion": topic_region,
            "Name": self.name,
            "EnableFlag": 1,
            "DstResource": {"TopicId": self.target_topic_id, "Region": topic_region, "BizType": 0},
            "ScheduledSqlContent": self.sql,
            "ProcessStartTime": start_ms,
            "ProcessType": 1,
            "ProcessPeriod": self.period_minutes,
            "ProcessTimeWindow": self.window,
            "ProcessDelay": 60,
            "SyntaxRule": 1,
        }
        return CloudRequest(
            product="cls", action="CreateScheduledSql", region=self.region, params=params
        )


class ClsWrites(CloudCreates):
    """create_logset, create_log_topic, create_cls_alarm and create_scheduled_sql."""

    async def create_logset(
        self, actor: str, spec: LogsetSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        return await self._create_one(
            actor,
            "create_logset",
            f"cls:logset:{spec.name}",
            mode,
            spec.request,
            lambda: writes.find_logset(self.tencent, spec.name, region=spec.region),
            f"logset {spec.name!r}",
        )

    async def create_log_topic(
        self, actor: str, spec: TopicSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        return await self._create_one(
            actor,
            "create_log_topic",
            f"cls:{spec.logset_id}/topic:{spec.name}",
            mode,
            spec.request,
            lambda: writes.find_topic(self.tencent, spec.logset_id, spec.name, region=spec.region),
            f"log topic {spec.name!r}",
        )

    async def create_cls_alarm(
        self, actor: str, spec: AlarmSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        subject = f"cls:alarm:{spec.name}"
        await self.authorize(actor, "create_cls_alarm", subject, mode)
        # The input, the policy and the target first: bad input leaves its audit row (kind
        # "invalid"), and a policy of that name (made before, its answer lost), a missing topic
        # or notice or another logset must not leave a new notice behind.
        find_alarm = partial(writes.find_alarm, self.tencent, spec.name, region=spec.region)
        checking = {"mode": mode, "sent": False}
        async with self.failures_audited(actor, "create_cls_alarm", subject, checking):
            if not spec.notice_ids and not spec.notice_name:
                raise CloudOpsInputError(
                    "notice_ids", "name an existing notice or give notice_name to create one"
                )
            if spec.notice_name and not (spec.notice_webhook or spec.notice_uids):
                raise CloudOpsInputError(
                    "notice_webhook", "a new notice needs notice_webhook or notice_uids"
                )
            # Each lookup's error names its own call (TencentCloudError.call).
            with readable("cls", "DescribeAlarms"):
                looked = [await find_alarm()]
                for notice_id in [] if looked[0] else spec.notice_ids:
                    await writes.must_exist(self.tencent, "notice", notice_id, region=spec.region)
                logset_id = await writes.logset_of_topic(
                    self.tencent, spec.topic_id, region=spec.region
                )
                # The notice's look is its create's own too (as the policy's is).
                noticed = [] if looked[0] else [await self._same_notice(spec, spec.notice_name)]
            if spec.logset_id not in (None, "", logset_id):
                raise CloudOpsInputError(
                    "logset_id",
                    f"topic {spec.topic_id} is in logset {logset_id}, not {spec.logset_id}",
                )
        exists = looked[0] is not None

        async def find_policy() -> str | None:
            # The look above is the create's own: a policy made since answers CreateAlarm with
            # its conflict code, and the look after that adopts it.
            return looked.pop() if looked else await find_alarm()

        steps: list[WriteStep] = []
        notice_ids = list(spec.notice_ids)
        if spec.notice_name and not exists:
            notice_name = spec.notice_name

            async def find_notice() -> str | None:
                if noticed:
                    return noticed.pop()
                got = await writes.alarm_notice_named(self.tencent, notice_name, region=spec.region)
                return None if got is None else str(got["AlarmNoticeId"])

            made: dict[str, Any] = {}

            def stopped() -> list[Row]:
                # Stopped in its notice's step (or its row), the call leaves its own row too,
                # saying how far the notice got: made, it is what asking again finds.
                got = {"mode": mode, "step": "create_cls_alarm_notice", "sent": made["sent"]}
                row = interrupted({**got, "notice_id": made.get("resource_id")})
                return [("create_cls_alarm", subject, row)]

            notice = await self._create(
                actor,
                "create_cls_alarm_notice",
                f"cls:notice:{notice_name}",
                mode,
                spec.notice_request(notice_name),
                find_notice,
                made,
                stopped,
            )
            steps.append(notice)
            # In a dry run a new notice has no id yet: the placeholder says where it comes from.
            notice_ids.append(notice.resource_id or f"<id of new notice {notice_name!r}>")
        request = spec.request(logset_id, notice_ids)
        try:
            steps.append(
                await self._create(actor, "create_cls_alarm", subject, mode, request, find_policy)
            )
        except CloudOpsFailedError as exc:
            ours = steps[0] if steps and steps[0].sent and not steps[0].existing else None
            if ours is None or ours.resource_id is None or exc.kind not in NOTHING_MADE:
                raise
            raise await self._unmake_notice(actor, spec, ours.resource_id, exc) from None
        return self._result("create_cls_alarm", mode, steps, f"alarm policy {spec.name!r}")

    async def _unmake_notice(
        self, actor: str, spec: AlarmSpec, notice_id: str, refused: CloudOpsFailedError
    ) -> CloudOpsFailedError:
        """The alarm refused (its condition, a permission): the notice this call made for it
        is deleted, so bad input leaves nothing behind; the alarm's refusal, saying so."""
        request = CloudRequest(
            product="cls",
            action="DeleteAlarmNotice",
            region=spec.region,
            params={"AlarmNoticeId": notice_id},
        )
        subject = f"cls:notice:{spec.notice_name}"
        detail: dict[str, Any] = {"mode": "execute", "request": request.model_dump()}
        try:
            async with self.audited(actor, "delete_cls_alarm_notice", subject, detail):
                with readable("cls", "DeleteAlarmNotice"):
                    await writes.send(self.tencent, request)
                detail["outcome"] = "executed"
        except CloudOpsFailedError as again:
            return CloudOpsFailedError(
                refused.kind,
                f"{refused}; the notice {spec.notice_name!r} ({notice_id}) made for it could not "
                f"be deleted ({again}): give notice_ids=[{notice_id!r}] when asking again, or "
                "delete it in the CLS console",
            )
        return CloudOpsFailedError(
            refused.kind,
            f"{refused}; the notice {spec.notice_name!r} ({notice_id}) made for it was deleted: "
            "nothing was left behind",
        )

    async def _same_notice(self, spec: AlarmSpec, name: str | None) -> str | None:
        """The id of the notice of ``name``, if there is one: taken only if it sends where
        this asks (the alarm went to its old webhook or people, the ones asked for never
        told)."""
        if name is None:
            return None
        notice = await writes.alarm_notice_named(self.tencent, name, region=spec.region)
        if notice is None:
            return None
        urls, uids = writes.notice_destinations(notice)
        wanted = ({spec.notice_webhook} if spec.notice_webhook else set(), set(spec.notice_uids))
        if (urls, uids) != wanted:
            hosts = sorted(urlsplit(url).netloc or "?" for url in urls)  # a path may be a key
            sends = ", ".join([*(f"a webhook at {h}" for h in hosts), *map(str, sorted(uids))])
            raise CloudOpsInputError(
                "notice_name",
                f"a notice named {name!r} exists ({notice['AlarmNoticeId']}) and sends to "
                f"{sends or 'no one'}, not to what this asks: to alarm through it as it is, "
                f"give notice_ids=[{notice['AlarmNoticeId']!r}] without notice_name; else "
                "choose another notice_name",
            )
        return str(notice["AlarmNoticeId"])

    async def create_scheduled_sql(
        self, actor: str, spec: ScheduledSqlSpec, mode: Mode = "dry_run"
    ) -> WriteResult:
        start = spec.start or datetime.now(UTC)
        if start.tzinfo is None:
            # A first run written without an offset is in the caller's time zone (their
            # profile), as search_logs reads its times: it was read as UTC, 8 hours late in
            # Shanghai. CLS takes an absolute time (ProcessStartTime, ms).
            user = await user_named(self.db, actor)
            zone = ZoneInfo(user.timezone) if user is not None and user.timezone else UTC
            start = start.replace(tzinfo=zone)
        start = as_utc(start)
        # Whole minutes: a retry a few seconds later builds the same request (same key).
        start_ms = int(start.replace(second=0, microsecond=0).timestamp()) * 1000

        def request() -> CloudRequest:
            if spec.source_topic_id == spec.target_topic_id:
                raise CloudOpsInputError("target_topic_id", "must differ from source_topic_id")
            return spec.request(start_ms, self.tencent.region)

        return await self._create_one(
            actor,
            "create_scheduled_sql",
            f"cls:scheduled_sql:{spec.name}",
            mode,
            request,
            lambda: writes.find_scheduled_sql(
                self.tencent,
                spec.name,
                spec.source_topic_id,
                spec.target_topic_id,
                region=spec.region,
            ),
            f"scheduled SQL {spec.name!r}",
        )
