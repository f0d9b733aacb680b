"""Threshold watches on Cloud Monitor as a user meets them: the real SDK against the stand-in
API, a real worker on the dev server, each check asked for with check_now."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.service import BriefingService
from ambient.clients.notify.registry import build_channels
from ambient.clients.tencent.client import LIMIT_RETRIES
from ambient.deps import WorkerDeps
from ambient.watches.inputs import InvalidTaskError
from ambient.watches.models import TaskStatus
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.standins.tencent_api import TencentApi
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.tencent import standin_tencent
from tests.support.waits import ask, eventually
from tests.watches.test_workflows import USER, inbox_titles, kinds, loopback_deps  # noqa: F401
from worker import build_worker

METRIC = "CPUUsage"
INSTANCE = {"InstanceId": "ins-probe01"}


@pytest_asyncio.fixture
async def cloud(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[TencentApi, TaskService]]:
    """The stand-in API, a worker reading it, and the service the doors call."""
    # The service refuses a Cloud Monitor watch where it has no keys: it has some here.
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "test-secret-key")
    api = TencentApi()
    queue = unique("tq")
    deps = loopback_deps
    deps.settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
    async with serve(api.app()) as base:
        deps.tencent = standin_tencent(base)
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        async with build_worker(dev_env.client, deps, task_queue=queue):
            briefings = BriefingService(dev_env.client, deps.settings, deps.db)
            yield (
                api,
                TaskService(
                    dev_env.client, deps.settings, deps.db, briefings=briefings, baseline_wait=HANG
                ),
            )


def cpu(**fields: Any) -> dict[str, Any]:
    source = {"type": "tencent_monitor", "namespace": "QCE/CVM", "metric": METRIC}
    return {
        "source": {**source, "dimensions": INSTANCE, **fields.pop("source", {})},
        "threshold": 90,
        "check_interval_minutes": 60,
        **fields,
    }


# The newest datapoint `reads` served each stand-in: a test that sets an older one itself (a
# stale point) must not make the next one fall on a second already read, within a fast test.
_SERVED: dict[int, int] = {}


def reads(api: TencentApi, value: float | None) -> None:
    """The metric's next datapoint, a second after any served before (None: none reported,
    e.g. the instance stopped)."""
    last = max((t for t, _ in api.metric_points.get(METRIC, [])), default=0)
    stamp = max(last + 1, _SERVED.get(id(api), 0) + 1, int(time.time()) - 300)
    _SERVED[id(api)] = stamp
    api.metric_points[METRIC] = [] if value is None else [(stamp, value)]


async def status(service: TaskService, task_id: str) -> TaskStatus:
    return await service.get(USER, task_id)


async def check(service: TaskService, handle: WorkflowHandle[Any, Any]) -> TaskStatus:
    """One more check, asked for now and waited for to its end (its events told)."""
    before: TaskStatus = await ask(handle, "status", result_type=TaskStatus)
    await handle.signal("check_now")

    async def done() -> TaskStatus | None:
        now: TaskStatus = await ask(handle, "status", result_type=TaskStatus)
        ended = now.detail["last_checked_at"] != before.detail["last_checked_at"]
        return now if now.checks > before.checks and ended else None

    await eventually(done, "the check")
    # The update `baseline` answers once no check runs: this one's events are told.
    told: TaskStatus = await handle.execute_update("baseline", result_type=TaskStatus)
    return told


async def five_minute_watch(
    api: TencentApi, service: TaskService, now: int, **fields: Any
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """A watch of a 5-minute metric whose baseline read 50, a point 15 minutes old (as late as
    Cloud Monitor publishes one): its task id and handle."""
    api.metric_points[METRIC] = [(now - 900, 50.0)]
    task_id, baseline = await create(service, cpu(source={"period": 300}, **fields))
    assert baseline == {"value": 50.0, "error": None}
    return task_id, service.client.get_workflow_handle(task_id)


async def stopped(service: TaskService, task_id: str) -> list[str]:
    """The watch deleted and waited for to its end; the kinds of every event it recorded."""
    await service.delete(USER, task_id)
    handle = service.client.get_workflow_handle(task_id)
    await handle.result()
    return await kinds(service_deps(service), task_id)


def service_deps(service: TaskService) -> Any:
    class _Deps:
        db = service.db

    return _Deps()


async def create(service: TaskService, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = await service.create(USER, "threshold_watch", config, name=unique("cpu"))
    assert ref.baseline is not None
    return ref.task_id, ref.baseline


async def test_a_stopped_instance_is_failing_once_and_recovered_once(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """An instance stopped reports no datapoints: the reads fail, the owner hears it once
    after failure_threshold reads, and once when it reports again; nothing is said of a
    breach that never was."""
    api, service = cloud
    reads(api, None)
    task_id, baseline = await create(service, cpu(failure_threshold=3))
    assert baseline["value"] is None
    assert "no datapoints" in baseline["error"] and "InstanceId=ins-probe01" in baseline["error"]
    # Not only its dimensions and region: an instance that worked with them and stopped.
    assert "a stopped instance reports nothing" in baseline["error"], baseline["error"]
    handle = service.client.get_workflow_handle(task_id)
    for _ in range(4):
        await check(service, handle)
    failing = await status(service, task_id)
    assert failing.detail["failing"] is True and failing.checks == 5
    # For how many checks: the status says it, not only that the watch is failing.
    assert failing.detail["failures"] == 5
    reads(api, 40)
    back = await check(service, handle)
    assert back.detail["failing"] is False and back.detail["last_value"] == 40
    assert back.detail["failures"] == 0
    assert await stopped(service, task_id) == ["watch.failing", "watch.recovered", "watch.stopped"]


async def test_no_current_value_says_its_datapoints_time_in_the_owners_zone(
    cloud: tuple[TencentApi, TaskService],
    loopback_deps: WorkerDeps,  # noqa: F811
) -> None:
    """A watch's "no current value" said its newest datapoint's time as "9 min old
    (2026-11-21 00:51 UTC)", where every other time the watch tells its owner is in their
    zone. Now it is their wall time, naming the zone and its offset, as a deadline is said."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from ambient.domain.users import UserSettings
    from ambient.storage.users import UserRepository

    async with loopback_deps.db.session() as session:
        users = UserRepository(session)
        owner = await users.get(USER)
        assert owner is not None
        await users.update(owner, UserSettings(timezone="America/New_York"))
        await session.commit()
    api, service = cloud
    reads(api, 40)
    task_id, _ = await create(service, cpu(failure_threshold=1))
    handle = service.client.get_workflow_handle(task_id)
    stamp = (int(time.time()) - 9 * 60) // 60 * 60
    api.metric_points[METRIC] = [(stamp, 40.0)]
    quiet = await check(service, handle)
    error = str(quiet.detail["last_error"])
    wall = datetime.fromtimestamp(stamp, UTC).astimezone(ZoneInfo("America/New_York"))
    offset = f"{wall:%z}"
    said = f"from {wall:%Y-%m-%d %H:%M} (America/New_York, UTC{offset[:3]}:{offset[3:]}),"
    assert "no current value" in error and said in error, error
    assert "UTC)" not in error, error
    await stopped(service, task_id)


async def test_a_breach_whose_instance_stopped_reporting_is_no_current_value(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """The instance went quiet while over the line: its last datapoint, 9 minutes old, was
    still read as current (the read looks back ten periods), so the watch stayed "breaching"
    on a value nobody measured. Now it is a failed reading saying how old the newest datapoint
    is, counted as failures are, and the status keeps the time of the datapoint taken last."""
    api, service = cloud
    reads(api, 95)
    task_id, baseline = await create(service, cpu(failure_threshold=2))
    assert baseline == {"value": 95.0, "error": None}
    handle = service.client.get_workflow_handle(task_id)
    taken = (await status(service, task_id)).detail["last_datapoint_at"]
    api.metric_points[METRIC] = [(int(time.time()) - 9 * 60, 95.0)]
    quiet = await check(service, handle)
    assert "no current value" in str(quiet.detail["last_error"]), quiet.detail
    assert "9 min old" in str(quiet.detail["last_error"]), quiet.detail
    assert quiet.detail["failures"] == 1 and quiet.detail["failing"] is False
    assert quiet.detail["last_datapoint_at"] == taken
    still = await check(service, handle)
    assert still.detail["failures"] == 2 and still.detail["failing"] is True
    reads(api, 40)
    back = await check(service, handle)
    assert back.detail["breaching"] is False and back.detail["failures"] == 0
    assert await stopped(service, task_id) == [
        "watch.breach",
        "watch.failing",
        "watch.recovered",
        "watch.recovery",
        "watch.stopped",
    ]


async def test_a_deleted_instance_reads_no_datapoints_naming_its_dimensions(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """GetMonitorData answers an instance that no longer exists with no datapoints, not an
    error: the reading says which dimensions reported nothing."""
    api, service = cloud
    now = int(time.time())
    api.metric_series[METRIC] = [({"InstanceId": "ins-other01"}, [(now - 30, 50.0)])]
    _, baseline = await create(service, cpu())
    assert baseline["value"] is None
    assert "no datapoints" in baseline["error"] and "InstanceId=ins-probe01" in baseline["error"]
    # Not only its dimensions and region: an instance that worked with them and stopped.
    assert "a stopped instance reports nothing" in baseline["error"], baseline["error"]


async def test_a_period_the_metric_does_not_keep_is_said_at_creation(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    api, service = cloud
    reads(api, 50)
    _, baseline = await create(service, cpu(source={"period": 120}))
    assert baseline["value"] is None
    # Worded as the cloud tools word it (cloud.errors.failure), the API's words kept.
    assert baseline["error"].startswith(
        "Tencent Cloud rejected a parameter of GetMonitorData (InvalidParameterValue): "
        "Period 120 is not supported"
    ), baseline["error"]


async def test_a_region_typo_is_said_at_creation(cloud: tuple[TencentApi, TaskService]) -> None:
    api, service = cloud
    reads(api, 50)
    _, baseline = await create(service, cpu(source={"region": "ap-guangzhuo"}))
    assert baseline["value"] is None
    assert "no region named ap-guangzhuo; did you mean ap-guangzhou?" in baseline["error"]
    assert api.regions[-1] == "ap-guangzhuo"


async def test_crossing_staying_and_recovering_is_one_breach_and_one_recovery(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    api, service = cloud
    reads(api, 50)
    task_id, baseline = await create(service, cpu(hysteresis=5))
    assert baseline == {"value": 50.0, "error": None}
    handle = service.client.get_workflow_handle(task_id)
    # Over, over, over; back under the line but inside the margin; flapping around the line
    # inside the margin; then out of it.
    for value in (95, 97, 93, 89, 91, 88, 92, 84, 86):
        reads(api, value)
        await check(service, handle)
    after = await status(service, task_id)
    assert after.detail["breaches_total"] == 1 and after.detail["breaching"] is False
    assert await stopped(service, task_id) == ["watch.breach", "watch.recovery", "watch.stopped"]
    assert [t.split(":")[0] for t in await inbox_titles(service_deps(service))] == [
        "Breach",
        "Recovered",
    ]


# Cloud Monitor's rate limits: the common one, and its own LimitExceeded.LimitedAccess (monitor
# errorcodes: 请求受限，查询实例数受到限制或者触发限频等限制操作), which a check read once and
# counted as failed, no backing off.
@pytest.mark.parametrize("code", ["RequestLimitExceeded", "LimitExceeded.LimitedAccess"])
async def test_throttled_reads_back_off_are_counted_shown_and_the_loop_goes_on(
    cloud: tuple[TencentApi, TaskService], code: str
) -> None:
    """A rate limit: the client backs off and asks again; a check whose every try was
    refused is a failed reading that says so, counted, and the next check reads again."""
    api, service = cloud
    reads(api, 50)
    task_id, _ = await create(service, cpu(failure_threshold=3))
    handle = service.client.get_workflow_handle(task_id)
    asked = len(api.calls)
    api.failures["GetMonitorData"] = [code] * 2
    backed_off = await check(service, handle)
    assert backed_off.detail["last_value"] == 50 and backed_off.detail["last_error"] is None
    assert len(api.calls) - asked == 3
    api.failures["GetMonitorData"] = [code] * 100
    refused = await check(service, handle)
    said = str(refused.detail["last_error"])
    assert said.startswith(f"Tencent Cloud is busy for GetMonitorData ({code})"), said
    assert refused.detail["failures"] == 1 and refused.detail["failing"] is False
    api.failures["GetMonitorData"] = []
    reads(api, 60)
    again = await check(service, handle)
    assert again.detail["last_value"] == 60 and again.detail["last_error"] is None
    assert await stopped(service, task_id) == ["watch.stopped"]


async def test_refused_credentials_are_told_to_the_owner_once(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    api, service = cloud
    reads(api, 50)
    task_id, _ = await create(service, cpu(failure_threshold=3))
    handle = service.client.get_workflow_handle(task_id)
    api.failures["GetMonitorData"] = ["AuthFailure.SecretIdNotFound"] * 6
    for _ in range(6):
        refused = await check(service, handle)
    said = str(refused.detail["last_error"])
    assert "AuthFailure.SecretIdNotFound" in said
    # What to fix, as the cloud tools and the triage say it (the API's own text was all).
    assert "check TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY" in said, said
    assert await stopped(service, task_id) == ["watch.failing", "watch.stopped"]
    assert [t.split(":")[0] for t in await inbox_titles(service_deps(service))] == ["Failing"]


@pytest.mark.parametrize(
    ("code", "says"),
    [
        # monitor errorcodes (GetMonitorData): 欠费, 未开通.
        ("FailedOperation.ErrOwed", "account is in arrears"),
        ("FailedOperation.ErrNotOpen", "open it in the Cloud Monitor console"),
    ],
)
async def test_an_account_cloud_monitor_refuses_for_billing_is_told_what_to_do(
    cloud: tuple[TencentApi, TaskService], code: str, says: str
) -> None:
    """An account past GetMonitorData's free calls without its billing opened, or in arrears:
    the owner read the API's code and text alone ("FailedOperation.ErrNotOpen: ...")."""
    api, service = cloud
    reads(api, 50)
    task_id, _ = await create(service, cpu())
    handle = service.client.get_workflow_handle(task_id)
    api.failures["GetMonitorData"] = [code] * 6
    refused = await check(service, handle)
    said = str(refused.detail["last_error"])
    assert code in said and says in said, said
    assert await stopped(service, task_id) == ["watch.stopped"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": float("inf")}, "threshold"),
        ({"threshold": "90"}, "threshold"),
        ({"source": {"period": 0}}, "period"),
        ({"source": {"period": -60}}, "period"),
        ({"threshold": None, "conditions": [{"op": "over", "value": 90}]}, "op"),
        ({"source": {"dimensions": {}}}, "dimensions"),
        ({"source": {"namespace": ""}}, "namespace"),
        ({"source": {"metric": ""}}, "metric"),
        ({"source": {"dimensions": {"InstanceId": ""}}}, "dimensions"),
        ({"source": {"dimensions": {"InstanceId": "ins-probe01 "}}}, "dimensions"),
        ({"source": {"dimensions": {"": "ins-probe01"}}}, "dimensions"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_created_or_changed(
    cloud: tuple[TencentApi, TaskService], change: dict[str, Any], field: str
) -> None:
    api, service = cloud
    reads(api, 50)
    config = cpu()
    source = {**config["source"], **change.pop("source", {})}
    bad = {k: v for k, v in {**config, **change, "source": source}.items() if v is not None}
    name = unique("bad")
    with pytest.raises(InvalidTaskError) as refused:
        await service.create(USER, "threshold_watch", bad, name=name)
    assert field in str(refused.value), refused.value
    assert not [t for t in await service.list(USER) if name in t.task_id]
    # The same change to a running watch is refused by the update too, and changes nothing.
    task_id, _ = await create(service, config)
    with pytest.raises(InvalidTaskError) as refused_update:
        await service.update(USER, task_id, bad)
    assert field in str(refused_update.value), refused_update.value
    assert (await status(service, task_id)).config["conditions"] == [{"op": "above", "value": 90.0}]


async def test_a_throttled_check_asks_the_api_no_more_than_its_backoff_allows(
    cloud: tuple[TencentApi, TaskService],
    product_local_read_limit: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Under the account's rate limit every extra request is refused too and prolongs it.
    The local read (cut off after LOCAL_READ_LIMIT) backed off inside it, then the activity
    read asked all over again: 7 requests a check. Now the local read hands a refusal over
    at once and the activity backs off: the client's tries plus the first one."""
    api, service = cloud
    reads(api, 50)
    task_id, _ = await create(service, cpu())
    handle = service.client.get_workflow_handle(task_id)
    api.failures["GetMonitorData"] = ["RequestLimitExceeded"] * 100
    asked = len(api.calls)
    with caplog.at_level(logging.DEBUG, logger="temporalio.activity"):
        refused = await check(service, handle)
    assert "RequestLimitExceeded" in str(refused.detail["last_error"])
    assert len(api.calls) - asked == 1 + LIMIT_RETRIES + 1
    # The local read's planned hand-over is no warning with a traceback (a throttled hour
    # logged 143 of them); the read that failed is the check's, shown in its last_error.
    handed = [r for r in caplog.records if "RateLimited" in str(r.exc_info and r.exc_info[1])]
    assert handed and all(r.levelno == logging.DEBUG for r in handed), handed


async def test_for_checks_counts_datapoints_not_reads_of_the_same_one(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """A 5-minute metric read every minute: one datapoint over the line was read three
    times, counted as three breaching checks, and one spike was alerted as a breach that
    lasted (for_checks 3). A datapoint read again is no new check of the rule."""
    api, service = cloud
    now = int(time.time())
    # Points as late as Cloud Monitor publishes them: the newest is a current value.
    task_id, handle = await five_minute_watch(api, service, now, for_checks=3)
    api.metric_points[METRIC].append((now - 600, 95.0))
    for _ in range(3):
        spike = await check(service, handle)
    assert spike.detail["breaching"] is False
    assert [v for _, v in spike.detail["values"]] == [50.0, 95.0]  # type: ignore[attr-defined]
    for stamp, value in ((now - 300, 96.0), (now, 97.0)):
        api.metric_points[METRIC].append((stamp, value))
        lasting = await check(service, handle)
    assert lasting.detail["breaching"] is True and lasting.detail["breaches_total"] == 1
    assert await stopped(service, task_id) == ["watch.breach", "watch.stopped"]


async def test_a_datapoint_older_than_the_one_taken_is_no_new_check(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """An answer whose newest point is older than the one the rule took (the newest left out,
    a null one dropped) was judged: one spike counted twice toward for_checks (a breach told
    for it), and the pointer moved back, so the newer point was judged once more after it."""
    api, service = cloud
    now = int(time.time())
    task_id, handle = await five_minute_watch(api, service, now, for_checks=2)
    api.metric_points[METRIC] = [(now - 600, 95.0)]  # the spike: one breaching check
    await check(service, handle)
    api.metric_points[METRIC] = [(now - 800, 70.0)]  # an older point served
    older = await check(service, handle)
    assert older.detail["breaching"] is False, older.detail
    # Nor is its value the one shown: it replaced the rule's own (95) in the task's status.
    assert older.detail["last_value"] == 95.0, older.detail
    api.metric_points[METRIC] = [(now - 600, 95.0), (now - 300, 96.0)]  # a newer one: second
    lasting = await check(service, handle)
    assert lasting.detail["breaching"] is True and lasting.detail["breaches_total"] == 1
    await save_history(handle, "threshold_watch_older_datapoint_not_judged")
    assert await stopped(service, task_id) == ["watch.breach", "watch.stopped"]


async def test_new_lines_take_the_datapoint_read_last_at_the_next_check(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """A daily metric: the threshold lowered under its value is a breach at the next check,
    not a day later at the next datapoint."""
    api, service = cloud
    reads(api, 50)
    task_id, _ = await create(service, cpu(source={"period": 86400}))
    handle = service.client.get_workflow_handle(task_id)
    same = await check(service, handle)
    assert same.detail["breaching"] is False and len(same.detail["values"]) == 1  # type: ignore[arg-type]
    await service.update(USER, task_id, cpu(threshold=40, source={"period": 86400}))
    lowered = await check(service, handle)
    assert lowered.detail["breaching"] is True
    assert await stopped(service, task_id) == ["watch.breach", "watch.stopped"]


async def checked_after_update(
    service: TaskService, handle: WorkflowHandle[Any, Any], task_id: str, config: dict[str, Any]
) -> TaskStatus:
    """An update, then the check it wakes (a running watch checks at once), told."""
    before: TaskStatus = await ask(handle, "status", result_type=TaskStatus)
    await service.update(USER, task_id, config)

    async def done() -> TaskStatus | None:
        now: TaskStatus = await ask(handle, "status", result_type=TaskStatus)
        return now if now.checks > before.checks else None

    await eventually(done, "the check after the update")
    told: TaskStatus = await handle.execute_update("baseline", result_type=TaskStatus)
    return told


async def test_an_update_keeping_the_lines_counts_no_datapoint_twice(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """for_checks 2 on a 5-minute metric, one spike datapoint; the owner changes only the
    cooldown. The check the update woke read the same datapoint again and counted it as the
    second breaching check: "Breach" for one spike (and with on_breach remediate, a run)."""
    api, service = cloud
    now = int(time.time())
    task_id, handle = await five_minute_watch(api, service, now, for_checks=2)
    api.metric_points[METRIC].append((now - 600, 95.0))  # one spike, never another
    first = await check(service, handle)
    assert first.detail["breaching"] is False
    cooler = cpu(for_checks=2, cooldown_minutes=10, source={"period": 300})
    after = await checked_after_update(service, handle, task_id, cooler)
    values = [v for _, v in after.detail["values"]]  # type: ignore[attr-defined]
    assert (after.detail["breaching"], values) == (False, [50.0, 95.0])
    # New lines take the datapoint again, as one check of them: still no second.
    lowered = cpu(for_checks=2, threshold=80, cooldown_minutes=10, source={"period": 300})
    again = await checked_after_update(service, handle, task_id, lowered)
    assert again.detail["breaching"] is False
    api.metric_points[METRIC].append((now - 300, 85.0))  # over 80: the second
    lasting = await check(service, handle)
    assert lasting.detail["breaching"] is True
    assert await stopped(service, task_id) == ["watch.breach", "watch.stopped"]
    await save_history(handle, "threshold_watch_update_counts_a_datapoint_once")


async def test_a_raised_line_counts_its_breaching_checks_from_none(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """for_checks 3 on line 90: 91 and 92 counted two; the owner raises the line to 95. One
    read at 96, the first over 95, was told as a breach, as if three checks had been."""
    api, service = cloud
    reads(api, 50)
    task_id, _ = await create(service, cpu(for_checks=3))
    handle = service.client.get_workflow_handle(task_id)
    for value in (91, 92):
        reads(api, value)
        await check(service, handle)
    reads(api, 96)
    once = await checked_after_update(service, handle, task_id, cpu(for_checks=3, threshold=95))
    assert once.detail["breaching"] is False
    for _ in range(2):
        reads(api, 96)
        third = await check(service, handle)
    assert third.detail["breaching"] is True
    assert await stopped(service, task_id) == ["watch.breach", "watch.stopped"]


async def test_another_metric_is_a_new_series_and_the_breach_left_behind_is_said_once(
    cloud: tuple[TencentApi, TaskService],
) -> None:
    """An update that points the watch at another metric carried the breach over: the new
    metric over the line was never told as a breach, and the old one's recovery could never
    come. New lines keep the state; a new source starts it fresh and says, once, that the
    breach it leaves is no longer watched."""
    api, service = cloud
    reads(api, 95)
    task_id, _ = await create(service, cpu())
    handle = service.client.get_workflow_handle(task_id)
    await service.update(USER, task_id, cpu(threshold=92))
    lines = await check(service, handle)
    assert lines.detail["breaching"] is True and lines.detail["breaches_total"] == 1
    api.metric_points["MemUsage"] = [(int(time.time()) - 300, 97.0)]
    moved = await service.update(USER, task_id, cpu(source={"metric": "MemUsage"}))
    assert moved.detail["breaching"] is False and moved.detail["values"] == []
    fresh = await check(service, handle)
    assert fresh.detail["breaching"] is True and fresh.detail["breaches_total"] == 2
    assert [v for _, v in fresh.detail["values"]] == [97.0]  # type: ignore[attr-defined]
    await check(service, handle)
    assert await stopped(service, task_id) == [
        "watch.breach",
        "watch.breach_unwatched",
        "watch.breach",
        "watch.stopped",
    ]
    titles = await inbox_titles(service_deps(service))
    assert [t.split(":")[0] for t in titles] == ["Breach", "No longer watched", "Breach"]
    await save_history(handle, "threshold_watch_new_source")  # the rule started fresh
