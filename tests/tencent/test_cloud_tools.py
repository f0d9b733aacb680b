"""Cloud MCP tools against the Tencent API stand-in and a log folder."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from mcp import Client

from ambient.clients.tencent.client import LIMIT_RETRIES, TencentCloud
from ambient.cloud.errors import CloudOpsInputError
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.audit import AuditRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi, every_period
from tests.support.mcp_as import mcp_as
from tests.support.servers import serve
from tests.support.tencent import ops_state, standin_tencent


@pytest_asyncio.fixture
async def cloud_state(
    deps: WorkerDeps, tmp_path: Path
) -> AsyncIterator[tuple[TencentApi, AppState]]:
    api = TencentApi(log_topic="t-1")  # the topic the searches here name: it exists
    api.clusters = [
        {
            "ClusterId": "cls-abcd1234",
            "ClusterName": "prod",
            "ClusterStatus": "Running",
            "ClusterNodeNum": 3,
        }
    ]
    api.node_pools["cls-abcd1234"] = [
        {
            "NodePoolId": "np-1",
            "Name": "default",
            "DesiredNodesNum": 3,
            "MinNodesNum": 1,
            "MaxNodesNum": 6,
        }
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    now = datetime.now(UTC)
    (logs / "app.log").write_text(
        json.dumps(
            {
                "time": (now - timedelta(minutes=5)).isoformat(),
                "level": "ERROR",
                "msg": "db timeout",
            }
        )
        + "\nnot a log line\n"
    )
    async with deps.db.session() as session:
        users = UserRepository(session)
        for name, permission in (("ops", "execute"), ("viewer", "dry_run"), ("guest", "none")):
            await users.create(UserCreate(name=name, rollback_permission=permission))  # type: ignore[arg-type]
        await session.commit()
    async with serve(api.app()) as base:
        tc = standin_tencent(base)
        settings = deps.settings.model_copy(update={"log_dir": logs})
        yield api, ops_state(deps, tc, settings)


def client(state: AppState, user: str) -> Client:
    return mcp_as(state, user)


def cli_env(state: AppState, **keys: str) -> dict[str, str]:
    """The environment `ambient cloud ...` reads to reach the stand-in API, with the stand-in's
    keys unless ``keys`` gives TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY (or more)."""
    assert state.tencent is not None
    return {
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "AMBIENT_TENCENTCLOUD_ENDPOINT": state.tencent._endpoint or "",
        "AMBIENT_TENCENTCLOUD_PROTOCOL": "http",
    } | keys


async def call(c: Client, tool: str, **args: Any) -> tuple[bool, Any]:
    result = await c.call_tool(tool, args)
    text = " ".join(getattr(part, "text", "") for part in result.content)
    return bool(result.is_error), result.structured_content if not result.is_error else text


async def test_read_tools_answer_from_the_cloud_and_files(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    _, state = cloud_state
    async with client(state, "viewer") as c:
        _, clusters = await call(c, "list_clusters")
        _, pools = await call(c, "list_node_pools", cluster_id="cls-abcd1234")
        _, logs = await call(c, "search_logs", topic_id="file:app.log", query="timeout")
        failed, escape = await call(c, "search_logs", topic_id="file:../../etc/passwd")
        failed_time, bad_time = await call(c, "search_logs", topic_id="t-1", start="yesterday")
        # Placed in UTC, a time on the years' first day left them ("Error executing tool").
        failed_edge, edge = await call(
            c, "search_logs", topic_id="t-1", start="0001-01-01T00:00:00+08:00"
        )
    assert clusters["clusters"][0] == {
        "cluster_id": "cls-abcd1234",
        "name": "prod",
        "status": "Running",
        "version": None,
        "nodes": 3,
    }
    assert pools["node_pools"][0]["desired"] == 3
    assert [r["content"]["msg"] for r in logs["logs"]] == ["db timeout"] and logs[
        "skipped_lines"
    ] == 1
    assert failed and "inside AMBIENT_LOG_DIR" in escape
    assert failed_time and "not an ISO time" in bad_time
    assert failed_edge and "start: must be a time from 0001-01-02 to 9999-12-30" in edge, edge


async def test_a_metric_window_shorter_than_its_period_is_refused_saying_so(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """get_metric over 1 minute of a 5-minute metric answered {"points": []}, as if the
    instance reported nothing: no 300 s datapoint lies in a 60 s window. Now it says why,
    asking nothing of the API; a window of one period answers its datapoint."""
    api, state = cloud_state
    api.metric_points["CPUUsage"] = every_period(40.0, 300)
    asked = len(api.calls)
    metric = {"namespace": "QCE/CVM", "metric": "CPUUsage", "dimensions": {"InstanceId": "ins-1"}}
    async with client(state, "viewer") as c:
        failed, said = await call(c, "get_metric", **metric, minutes=1, period=300)
        refused_asked = len(api.calls) - asked
        _, one_period = await call(c, "get_metric", **metric, minutes=5, period=300)
    assert failed, said
    assert refused_asked == 0
    assert said == (
        "Error executing tool get_metric: minutes: the window (1 min) is shorter than the "
        "metric's period (300 s), so it holds no datapoint: ask for at least 5 minutes, or a "
        "shorter period"
    )
    assert [p["value"] for p in one_period["points"]] == [40.0]


async def test_get_metric_publishes_its_period_bounds_and_refuses_one_past_them(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """get_metric published `period` as any whole number; 200000000 was refused on minutes
    ("ask for at least 3333334 minutes", past the 7 days a read takes). Its schema says
    1-86400 now (a day, Cloud Monitor's longest period), and a period past it is refused
    naming period, asking nothing of the API."""
    api, state = cloud_state
    asked = len(api.calls)
    metric = {"namespace": "QCE/CVM", "metric": "CPUUsage", "dimensions": {"InstanceId": "ins-1"}}
    async with client(state, "viewer") as c:
        tool = next(t for t in (await c.list_tools()).tools if t.name == "get_metric")
        said = [
            (await call(c, "get_metric", **metric, period=period))[1]
            for period in (200_000_000, 10**12, 0)
        ]
    bounds = tool.input_schema["properties"]["period"]
    assert (bounds["minimum"], bounds["maximum"]) == (1, 86400), bounds
    for text in said:
        assert "get_metric: invalid arguments — period: Input should be" in text, text
    assert len(api.calls) == asked


async def test_a_metric_read_cloud_monitor_rate_limits_is_said_busy_not_a_quota(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """LimitExceeded.LimitedAccess is Cloud Monitor's rate limit (请求受限 ... 限频): get_metric
    said "quota or limit reached: remove unused resources or raise the quota"."""
    api, state = cloud_state
    api.failures["GetMonitorData"] = ["LimitExceeded.LimitedAccess"] * (LIMIT_RETRIES + 1)
    metric = {"namespace": "QCE/CVM", "metric": "CPUUsage", "dimensions": {"InstanceId": "ins-1"}}
    async with client(state, "viewer") as c:
        failed, said = await call(c, "get_metric", **metric, minutes=5)
    assert failed and "(too many requests at once); try again in a moment" in said, said
    assert "quota" not in said and api.failures["GetMonitorData"] == []


@pytest.mark.timeout(60, method="signal")  # the regression hung: it fails here instead
async def test_an_epoch_too_large_for_any_time_is_refused_as_not_a_time(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """400 digits are an epoch to search_logs and infinity as a float: it was divided by 1000
    until it was seconds, which never ended, on the event loop (the whole API froze)."""
    _, state = cloud_state
    async with client(state, "viewer") as c:
        failed, said = await call(c, "search_logs", topic_id="file:app.log", start="9" * 400)
    assert failed and "not an ISO time" in said


async def test_a_start_of_epoch_digits_is_refused_as_the_schema_says_iso_time(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """search_logs' schema says "ISO time", yet "1700000000" was read as seconds after 1970
    (and "1763683200000" as milliseconds): a model's guess searched another window unsaid."""
    _, state = cloud_state
    async with client(state, "viewer") as c:
        for digits in ("1700000000", "1763683200000"):
            failed, said = await call(c, "search_logs", topic_id="file:app.log", start=digits)
            assert failed and "start: not an ISO time" in said, said


async def test_a_time_that_is_no_time_is_refused_without_saying_it_back_whole(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """A 20,000-character start or end came back whole in the refusal (a 20 KB tool error)."""
    _, state = cloud_state
    async with client(state, "viewer") as c:
        failed, said = await call(c, "search_logs", topic_id="file:app.log", end="x" * 20_000)
    assert failed and "not an ISO time: 'xxxx" in said and len(said) < 200, said


async def test_a_time_that_is_no_time_is_refused_naming_start_or_end(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """search_logs said "not an ISO time: 'yesterday'" for a bad start or end without naming
    which: a model given both could not tell which to fix. Now the refusal names its field, as
    every refused argument is named ("invalid arguments — start: ...")."""
    _, state = cloud_state
    async with client(state, "viewer") as c:
        _, start = await call(c, "search_logs", topic_id="file:app.log", start="yesterday")
        _, end = await call(
            c, "search_logs", topic_id="file:app.log", start="2026-11-21T08:00:00Z", end="noon"
        )
    assert "invalid arguments — start: not an ISO time: 'yesterday'" in start, start
    assert "invalid arguments — end: not an ISO time: 'noon'" in end, end


async def test_list_alarms_answers_monitor_alarms_and_names_a_refused_cls(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """CLS refused (AuthFailure.UnauthorizedOperation): the tool and `ambient cloud alarms`
    answered an error only, and Cloud Monitor's alarms were lost. Now both list them and say
    which source was not read, and what to fix as a read refused whole says it (it said the
    API's code and message only)."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    t = int(datetime.now(UTC).timestamp()) - 600
    api.monitor_alarms = [{"PolicyName": "cpu-high", "AlarmStatus": "ALARM", "FirstOccurTime": t}]
    api.failures["DescribeAlertRecordHistory"] = ["AuthFailure.UnauthorizedOperation"] * 2
    async with client(state, "viewer") as c:
        failed, answer = await call(c, "list_alarms", hours=1)
    assert not failed, answer
    assert [a["name"] for a in answer["alarms"]] == ["cpu-high"]
    assert [u["source"] for u in answer["unread"]] == ["cls"]
    refused = (
        "Tencent Cloud refused DescribeAlertRecordHistory (AuthFailure.UnauthorizedOperation): "
        "check that the CAM policy allows cls:DescribeAlertRecordHistory (docs/tencent-cloud.md). "
        "injected AuthFailure.UnauthorizedOperation (RequestId req-standin)"
    )
    assert answer["unread"][0]["error"] == refused
    env = cli_env(state)
    listed = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", "alarms"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "cpu-high" in listed.output, listed.output
    assert f"cls alarms could not be read: {refused}" in " ".join(listed.output.split())


async def test_logs_are_searched_in_the_region_their_topic_was_listed_in(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud_state
    async with client(state, "viewer") as c:
        failed, _ = await call(c, "list_log_topics", region="ap-shanghai")
        failed_search, said = await call(c, "search_logs", topic_id="t-1", region="ap-shanghai")
    assert not failed and not failed_search, said
    searched = [
        r for (_, action, _), r in zip(api.calls, api.regions, strict=True) if action == "SearchLog"
    ]
    assert searched == ["ap-shanghai"]


async def test_scale_node_pool_respects_permission(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud_state

    async def scale(c: Client, desired: int = 4, **mode: str) -> tuple[bool, Any]:
        return await call(
            c,
            "scale_node_pool",
            cluster_id="cls-abcd1234",
            node_pool_id="np-1",
            desired=desired,
            **mode,
        )

    async with client(state, "guest") as c:
        refused, message = await scale(c)
    assert refused and "rollback_permission 'none'" in message
    async with client(state, "viewer") as c:
        _, dry = await scale(c)
    assert dry["executed"] is False and api.node_pools["cls-abcd1234"][0]["DesiredNodesNum"] == 3
    async with client(state, "ops") as c:
        # Allowed to execute, but not asked to: a cloud write without a mode is a dry run
        # (a voice model that leaves the mode out never changes a cluster).
        _, preview = await scale(c)
        assert preview["executed"] is False
        assert api.node_pools["cls-abcd1234"][0]["DesiredNodesNum"] == 3
        _, done = await scale(c, mode="execute")
        out_of_range, message = await scale(c, 9, mode="execute")
    assert done == {
        "cluster_id": "cls-abcd1234",
        "node_pool_id": "np-1",
        "previous": 3,
        "desired": 4,
        "executed": True,
    }
    assert api.node_pools["cls-abcd1234"][0]["DesiredNodesNum"] == 4
    assert out_of_range and "within [1, 6]" in message
    # Each row names the region the pool was looked for in: the configured one, the region
    # left out (it said None).
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    regions = {r.detail["region"] for r in rows if r.action == "cloud.scale_node_pool"}
    assert regions == {state.tencent.region} == set(api.regions)


async def test_scaling_a_node_pool_to_its_current_size_sends_nothing_and_is_audited_as_a_noop(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud_state
    async with client(state, "ops") as c:
        failed, same = await call(
            c,
            "scale_node_pool",
            cluster_id="cls-abcd1234",
            node_pool_id="np-1",
            desired=3,
            mode="execute",
        )
    assert not failed, same
    assert same["executed"] is False and same["previous"] == same["desired"] == 3
    assert [a for _, a, _ in api.calls if a == "ModifyNodePoolDesiredCapacityAboutAsg"] == []
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    assert [r.detail["outcome"] for r in rows if r.action == "cloud.scale_node_pool"] == ["noop"]


async def test_without_credentials_tools_say_what_to_configure(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    _, state = cloud_state
    state = AppState(**{**state.__dict__, "tencent": TencentCloud(None, region="ap-guangzhou")})
    async with client(state, "ops") as c:
        failed, message = await call(c, "list_clusters")
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert failed and "TENCENTCLOUD_SECRET_ID" in message
    # Nothing was sent: no API code in front, as the writes say it (it read "NotConfigured: ...").
    assert "NotConfigured" not in message, message
    assert tools["list_alarms"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["scale_node_pool"].annotations.destructive_hint is True  # type: ignore[union-attr]


async def test_cloud_cli_lists_clusters_and_explains_missing_credentials(
    cloud_state: tuple[TencentApi, AppState], monkeypatch: object
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    _, state = cloud_state
    env = cli_env(state)
    runner = CliRunner()
    listed = await asyncio.to_thread(runner.invoke, app, ["cloud", "clusters"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "cls-abcd1234" in listed.output and "prod" in listed.output
    bare = {"TENCENTCLOUD_SECRET_ID": "", "TENCENTCLOUD_SECRET_KEY": ""}
    missing = await asyncio.to_thread(runner.invoke, app, ["cloud", "alarms"], env=bare)
    assert missing.exit_code == 1 and "TENCENTCLOUD_SECRET_ID" in missing.output
    assert missing.output.startswith("Tencent Cloud is not configured"), missing.output


def test_cloud_cli_refuses_a_look_back_out_of_range_by_its_option() -> None:
    from typer.testing import CliRunner

    from ambient.cli import app

    env = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
    runner = CliRunner()
    for args in (
        ["cloud", "logs", "t-1", "--hours", "1e12"],
        ["cloud", "logs", "t-1", "--hours", "nan"],
        ["cloud", "logs", "t-1", "--hours", "0"],
        ["cloud", "alarms", "--hours", "99999999999"],
        ["cloud", "alarms", "--hours", "0"],
    ):
        result = runner.invoke(app, args, env=env)
        # A usage error naming the option (exit 2), never a traceback.
        assert result.exit_code == 2, (args, result.output)
        assert "--hours" in result.output and "Traceback" not in result.output, result.output


async def test_a_search_window_without_an_offset_is_in_the_callers_time_zone(
    cloud_state: tuple[TencentApi, AppState], deps: WorkerDeps
) -> None:
    """'08:00 to 09:00' from a Shanghai user is 00:00-01:00 UTC (as a schedule's '08:00' is
    theirs); a time with its offset is read as written; a caller with no profile reads UTC."""
    api, state = cloud_state
    async with deps.db.session() as session:
        (await UserRepository(session).get("viewer")).timezone = "Asia/Shanghai"  # type: ignore[union-attr]
        (await UserRepository(session).get("ops")).timezone = "America/New_York"  # type: ignore[union-attr]
        await session.commit()
    windows = [
        ("viewer", "2026-11-21T08:00:00", "2026-11-21T09:00:00"),
        ("viewer", "2026-11-21T08:00:00Z", "2026-11-21T09:00:00+00:00"),
        ("ops", "2026-07-01T08:00:00", "2026-07-01T08:30:00"),
        ("nobody", "2026-11-21T08:00:00", "2026-11-21T09:00:00"),
    ]
    for user, start, end in windows:
        async with client(state, user) as c:
            failed, said = await call(c, "search_logs", topic_id="t-1", start=start, end=end)
        assert not failed, said

    def ms(text: str) -> int:
        return int(datetime.fromisoformat(text).timestamp() * 1000)

    searched = [(p["From"], p["To"]) for _, action, p in api.calls if action == "SearchLog"]
    assert searched == [
        (ms("2026-11-21T00:00:00+00:00"), ms("2026-11-21T01:00:00+00:00")),
        (ms("2026-11-21T08:00:00+00:00"), ms("2026-11-21T09:00:00+00:00")),
        (ms("2026-07-01T12:00:00+00:00"), ms("2026-07-01T12:30:00+00:00")),
        (ms("2026-11-21T08:00:00+00:00"), ms("2026-11-21T09:00:00+00:00")),
    ]


async def test_a_search_given_only_its_end_reads_the_hour_before_that_end(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """A search for "the logs up to 18:00 yesterday": search_logs given only ``end`` took its
    start as an hour before now, after that end, and refused the search with "the window's
    start (...) is after its end", a start the caller never gave. The hour up to the end is
    searched."""
    api, state = cloud_state
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    api.logs = [{"time": int((end - timedelta(minutes=m)).timestamp() * 1000), "json": {"m": m}}
                for m in (10, 50, 70)]  # fmt: skip
    async with client(state, "viewer") as c:
        failed, found = await call(c, "search_logs", topic_id="t-1", end=end.isoformat())
    assert not failed, found
    assert [r["content"]["m"] for r in found["logs"]] == [10, 50] and found["complete"]
    (searched,) = [p for _, action, p in api.calls if action == "SearchLog"]
    assert searched["To"] - searched["From"] == 3_600_000


async def test_a_configured_region_out_of_format_is_named_as_the_setting_to_fix(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """AMBIENT_TENCENTCLOUD_REGION=guangzhou (the region as people say it): every read answered
    "region must be a Tencent Cloud region name ... (not 'guangzhou')" to a user who had given
    no region, and the CLI's --region was the only region they could see to change."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    env = cli_env(state, AMBIENT_TENCENTCLOUD_REGION="guangzhou")
    runner = CliRunner()
    listed = await asyncio.to_thread(runner.invoke, app, ["cloud", "clusters"], env=env)
    assert listed.exit_code == 1, listed.output
    assert "AMBIENT_TENCENTCLOUD_REGION" in listed.output, listed.output
    assert "e.g. ap-guangzhou" in listed.output and "'guangzhou'" in listed.output
    # A region given with the call is that call's to fix, as before.
    given = await asyncio.to_thread(
        runner.invoke, app, ["cloud", "clusters", "--region", "gz"], env=env
    )
    assert given.exit_code != 0 and "AMBIENT_TENCENTCLOUD_REGION" not in given.output
    assert not [call for call in api.calls if call[1] == "DescribeClusters"]


async def test_a_cluster_asked_for_in_another_region_is_not_found_naming_the_region_asked(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """A cluster in ap-shanghai asked for with the default region (ap-guangzhou): TKE does not
    know it there, and the answer was "ResourceNotFound.ClusterNotFound: cluster cls-... not
    found" to a user looking at it in the console. Now the region asked is named."""
    api, state = cloud_state
    api.cluster_regions["cls-abcd1234"] = "ap-shanghai"
    async with client(state, "ops") as c:
        failed, said = await call(c, "list_node_pools", cluster_id="cls-abcd1234")
        _, pools = await call(c, "list_node_pools", cluster_id="cls-abcd1234", region="ap-shanghai")
        scale_failed, scaled = await call(
            c, "scale_node_pool", cluster_id="cls-abcd1234", node_pool_id="np-1", desired=4
        )
    assert failed and "ResourceNotFound.ClusterNotFound" in said
    assert "region ap-guangzhou" in said, said
    assert pools["node_pools"][0]["node_pool_id"] == "np-1"
    assert scale_failed and "region ap-guangzhou" in scaled, scaled


async def test_keys_with_a_trailing_newline_are_read_as_the_keys(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """Keys from a file (a Kubernetes secret made with `echo`, an env file) end in a newline:
    the SDK's Credential refuses whitespace ("secret key should not contain spaces") and
    `ambient cloud clusters` ended in a traceback, as did every process that builds the client.
    No Tencent Cloud key holds whitespace (the API's own words: "注意前后不得有空格")."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    _, state = cloud_state
    env = cli_env(
        state,
        TENCENTCLOUD_SECRET_ID=f"{SECRET_ID}\n",
        TENCENTCLOUD_SECRET_KEY=f" {SECRET_KEY}\r\n",
    )
    listed = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", "clusters"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "cls-abcd1234" in listed.output


async def test_cloud_logs_says_when_nothing_matched_or_more_matched_than_shown(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """`ambient cloud logs` with no hits printed nothing at all: a typo in a query and a quiet
    hour looked the same as a command that did not run."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    env = cli_env(state)
    nothing = await asyncio.to_thread(
        CliRunner().invoke, app, ["cloud", "logs", "t-1", "--query", "level:FATAL"], env=env
    )
    assert nothing.exit_code == 0, nothing.output
    assert "no logs matched 'level:FATAL' in the last 1 hour" in nothing.output
    recent = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    api.logs += [{"time": recent + n, "json": {"msg": f"timeout {n}"}} for n in range(3)]
    cut = await asyncio.to_thread(
        CliRunner().invoke, app, ["cloud", "logs", "t-1", "--limit", "1"], env=env
    )
    assert cut.exit_code == 0, cut.output
    assert "more logs matched than the 1 shown" in cut.output
    # An SQL analysis answers its first 100 rows, whatever --limit says: said, with the way on.
    api.logs += [{"time": recent + n, "json": {"level": f"L{n:03d}"}} for n in range(150)]
    sql = ["--query", "* | select level, count(*) as n group by level", "--limit", "1000"]
    rows = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", "logs", "t-1", *sql], env=env)
    assert rows.exit_code == 0, rows.output
    assert "the SQL answered its first 100 rows, add 'limit N' to the SQL" in rows.output
    # An SQL that says its own limit is told to raise it, not to add one.
    sql[1] += " limit 120"
    rows = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", "logs", "t-1", *sql], env=env)
    assert "the SQL answered its first 120 rows, its own limit: raise it" in rows.output


async def test_cloud_logs_and_alarms_say_their_times_in_the_terminals_zone(
    cloud_state: tuple[TencentApi, AppState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ambient cloud logs` and `ambient cloud alarms` printed UTC wall times with no zone: on
    a terminal in Asia/Shanghai an error at 00:05 Beijing time read as "16:05" the day
    before. Times are said in the terminal's zone, with its offset."""
    import asyncio
    import time

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    api.logs = [{"time": int(at.timestamp() * 1000), "json": {"msg": "db timeout"}}]
    api.cls_records = [
        {"AlarmName": "5xx burst", "Status": 0, "CreateTime": int(at.timestamp() * 1000)}
    ]
    beijing = at.astimezone(ZoneInfo("Asia/Shanghai"))
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        env = cli_env(state)
        logs = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", "logs", "t-1"], env=env)
        alarms = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", "alarms"], env=env)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert logs.exit_code == 0 and alarms.exit_code == 0, logs.output + alarms.output
    assert f"{beijing:%Y-%m-%d %H:%M:%S}+08:00 " in logs.output, logs.output
    assert f"{beijing:%Y-%m-%d %H:%M}+08:00" in alarms.output, alarms.output


async def test_a_search_cls_stopped_at_its_limit_answers_what_was_read_saying_so(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """A search that hits CLS's maximum count (FailedOperation.GetlogReachLimit) failed whole,
    the page already read lost. Now the tool answers that page, not complete, saying CLS
    stopped the search; the command says it instead of "raise --limit"."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    recent = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    api.logs += [{"time": recent + n, "json": {"msg": f"timeout {n:04}"}} for n in range(1_200)]
    api.search_result_bytes = 600 * 20  # pages of 500 after the first 1000 is too large
    api.search_pages = 1
    async with client(state, "viewer") as c:
        failed, found = await call(c, "search_logs", topic_id="t-1", limit=1000)
    assert not failed, found
    assert len(found["logs"]) == 500 and not found["complete"]
    assert found["logs"][0]["content"] == {"msg": "timeout 1199"}
    assert "FailedOperation.GetlogReachLimit" in found["stopped"]
    api.search_pages = 1
    said = await asyncio.to_thread(
        CliRunner().invoke, app, ["cloud", "logs", "t-1", "--limit", "1000"], env=cli_env(state)
    )
    assert said.exit_code == 0, said.output
    assert "CLS stopped the search at its maximum count of logs" in said.output
    assert "raise --limit" not in said.output
    # Stopped at its very first page, nothing was read to answer: said as what to change,
    # not as CLS's bare code and words ("FailedOperation.GetlogReachLimit: 日志检索达到上限").
    api.search_pages = 0
    async with client(state, "viewer") as c:
        failed, said_first = await call(c, "search_logs", topic_id="t-1", limit=1000)
    assert failed, said_first
    assert (
        "FailedOperation.GetlogReachLimit: CLS stopped the search at its maximum count of logs "
        "before any was read (日志检索达到上限): narrow the query or the time range"
    ) in said_first


async def test_a_search_that_does_not_move_on_is_said_with_one_advice_in_the_command(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """A next page holding only logs answered before: the command said "…: ask again, or narrow
    the time range: narrow the query or the hours", two advices, one given twice."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    recent = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    results = [
        {"TopicId": "t-1", "PkgId": "P", "PkgLogId": str(n), "Time": recent - n}
        | {"LogJson": json.dumps({"msg": f"timeout {n}"})}
        for n in range(3)
    ]
    answer = {"Analysis": False, "ListOver": False, "Context": "c", "Results": results}
    page = (200, "application/json", json.dumps({"Response": answer}).encode())
    api.raw["SearchLog"] = [page, page]
    said = await asyncio.to_thread(
        CliRunner().invoke, app, ["cloud", "logs", "t-1", "--limit", "10"], env=cli_env(state)
    )
    assert said.exit_code == 0, said.output
    text = " ".join(said.output.split())  # the console wraps its lines
    assert text.endswith(
        "CLS answered a page without a log it had not answered before (logs landing late move "
        "a search on): run it again"
    ), text
    assert "narrow" not in text and "ask again" not in text, text


def nested(depth: int, time: str) -> str:
    """A JSON log line whose "detail" holds objects ``depth`` levels deep (built as text: no
    encoder's recursion limit in the way)."""
    inner = '{"a": ' * depth + "1" + "}" * depth
    return f'{{"time": "{time}", "level": "ERROR", "msg": "deep {depth}", "detail": {inner}}}'


async def test_a_log_line_nested_hundreds_deep_is_answered_as_its_text(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """A JSON line nested 200-900 levels deep read fine and then failed the answer (pydantic
    encodes 255 levels at most): search_logs said only "Error executing tool", for a file
    topic and a CLS one alike. Now such a record's content is its JSON as text."""
    api, state = cloud_state
    assert state.settings.log_dir is not None
    when = datetime.now(UTC) - timedelta(minutes=4)
    lines = [nested(depth, when.isoformat()) for depth in (300, 900)]
    (state.settings.log_dir / "deep.log").write_text("\n".join(lines) + "\n")
    api.logs.append({"time": int(when.timestamp() * 1000), "json": json.loads(lines[0])})
    async with client(state, "viewer") as c:
        file_failed, from_file = await call(c, "search_logs", topic_id="file:deep.log")
        cls_failed, from_cls = await call(c, "search_logs", topic_id="t-1")
    assert not file_failed and not cls_failed, (from_file, from_cls)
    for found, depths in ((from_file, [300, 900]), (from_cls, [300])):
        texts = [record["content"] for record in found["logs"]]
        assert all(isinstance(text, str) for text in texts), texts
        assert sorted(text.count('{"a": ') for text in texts) == depths
        assert all(
            text.startswith(f'{{"time": "{when.isoformat()}", "level": "ERROR"') for text in texts
        )


# The same read asked at both doors: (what, the MCP tool and its arguments, the command's
# arguments, what both must do: "same" answer, "same refusal" in the same words, "refused").
BOTH_DOORS = [
    (
        "a file topic that exists",
        ("search_logs", {"topic_id": "file:app.log", "query": "timeout", "limit": 50}),
        ["logs", "file:app.log", "--query", "timeout", "--limit", "50"],
        "same",
    ),
    (
        "a CLS topic",
        ("search_logs", {"topic_id": "t-1", "query": "timeout", "limit": 50}),
        ["logs", "t-1", "--query", "timeout", "--limit", "50"],
        "same",
    ),
    (
        "a file topic outside the log folder",
        ("search_logs", {"topic_id": "file:../outside.log"}),
        ["logs", "file:../outside.log"],
        "same refusal",
    ),
    (
        "a file topic that does not exist",
        ("search_logs", {"topic_id": "file:missing.log"}),
        ["logs", "file:missing.log"],
        "same refusal",
    ),
    (
        "an alarm look-back over 30 days",
        ("list_alarms", {"hours": 24 * 31}),
        ["alarms", "--hours", str(24 * 31)],
        "refused",
    ),
    (
        "more logs than a search answers",
        ("search_logs", {"topic_id": "t-1", "limit": 1001}),
        ["logs", "t-1", "--limit", "1001"],
        "refused",
    ),
]


async def test_a_read_asked_at_the_mcp_tool_and_the_command_gets_one_answer(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """`ambient cloud logs file:app.log` went to CLS as a topic id, while search_logs read the
    file: each door held its own rules. Now both ask the one reads service."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    assert state.settings.log_dir is not None
    (state.settings.log_dir.parent / "outside.log").write_text('{"msg": "outside timeout"}\n')
    recent = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    api.logs = [{"time": recent, "json": {"level": "ERROR", "msg": "cls timeout"}}]
    env = cli_env(state, AMBIENT_LOG_DIR=str(state.settings.log_dir))
    for what, (tool, arguments), command, expected in BOTH_DOORS:
        async with client(state, "viewer") as c:
            mcp_failed, mcp_said = await call(c, tool, **arguments)
        as_json = [] if expected == "refused" else ["--json"]
        cli = await asyncio.to_thread(
            CliRunner().invoke, app, ["cloud", *command, *as_json], env=env
        )
        if expected == "same":
            assert not mcp_failed and cli.exit_code == 0, (what, mcp_said, cli.output)
            assert mcp_said["logs"], what  # a record found, not two empty answers
            assert json.loads(cli.stdout) == mcp_said, what
        elif expected == "same refusal":
            assert mcp_failed and cli.exit_code == 1, (what, mcp_said, cli.output)
            assert mcp_said == f"Error executing tool {tool}: {cli.stderr.strip()}", what
            assert "outside timeout" not in mcp_said + cli.output, what
        else:
            option = command[-2]  # the option refused, named by both doors
            assert mcp_failed and option.removeprefix("--") in mcp_said, (what, mcp_said)
            assert cli.exit_code == 2 and option in cli.output, (what, cli.output)


async def test_the_reads_service_keeps_its_bounds_whichever_door_asks(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """The doors refuse first; a door that did not (a new tool, a script on the service) is
    refused by the service, before anything is asked of Tencent Cloud."""
    api, state = cloud_state
    asked = len(api.calls)
    cvm = {"InstanceId": "ins-1"}
    for read, field in [
        (state.cloud_reads.search_logs("t-1", limit=1001), "limit"),
        (state.cloud_reads.search_logs("t-1", hours=24 * 3651), "hours"),
        (state.cloud_reads.alarms(hours=24 * 31), "hours"),
        (state.cloud_reads.metric("QCE/CVM", "CPUUsage", cvm, minutes=0), "minutes"),
        # Not a window too short for it (asking 3333334 minutes, past the 7 days a read takes).
        (state.cloud_reads.metric("QCE/CVM", "CPUUsage", cvm, period=200_000_000), "period"),
        (state.cloud_reads.metric("QCE/CVM", "CPUUsage", cvm, period=0), "period"),
        (state.cloud_reads.metric("QCE/CVM", "CPUUsage", cvm, period=86401), "period"),
    ]:
        # Inclusive bounds "between 1 and N", a look back "more than 0 and at most N".
        with pytest.raises(CloudOpsInputError, match=f"^{field}: (between 1|more than 0) and"):
            await read
    assert len(api.calls) == asked


async def test_a_read_refused_says_what_to_fix_at_both_doors_as_a_write_does(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """A read refused went out raw at the MCP tools and `ambient cloud` ("UnauthorizedOperation:
    ... (RequestId ...)") while a write refused the same way named the CAM permission to grant
    or the keys to check. Reads say it too, keeping the code and the RequestId for support."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    env = cli_env(state)
    refusals = (
        ("DescribeClusters", "UnauthorizedOperation", "list_clusters", ["clusters"]),
        ("DescribeTopics", "AuthFailure.SecretIdNotFound", "list_log_topics", ["topics"]),
    )
    said = []
    for action, code, tool, command in refusals:
        api.failures[action] = [code, code]
        async with client(state, "viewer") as c:
            failed, answer = await call(c, tool)
        cli = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", *command], env=env)
        assert failed and cli.exit_code == 1, (answer, cli.output)
        assert answer == f"Error executing tool {tool}: {cli.stderr.strip()}"
        assert f"{action} ({code})" in answer and "(RequestId req-standin)" in answer, answer
        said.append(answer)
    assert "check that the CAM policy allows tke:DescribeClusters" in said[0]
    assert "check TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY" in said[1], said[1]


async def test_a_region_tencent_cloud_does_not_know_is_said_by_the_name_given(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """A typo written as a region (ap-guangzhuo) passes the format check and the API refuses
    its header: the answer spoke of "`X-TC-Region`", a name the user never typed. It names the
    region given (or the setting it came from) and the region it is close to."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    _, state = cloud_state
    async with client(state, "viewer") as c:
        failed, said = await call(c, "list_clusters", region="ap-guangzhuo")
    runner = CliRunner()
    args = ["cloud", "topics", "--region", "ap-guangzhuo"]
    cli = await asyncio.to_thread(runner.invoke, app, args, env=cli_env(state))
    env = cli_env(state, AMBIENT_TENCENTCLOUD_REGION="ap-guangzhuo")
    configured = await asyncio.to_thread(runner.invoke, app, ["cloud", "clusters"], env=env)
    assert failed and cli.exit_code == 1 and configured.exit_code == 1
    for answer in (said, cli.stderr, configured.stderr):
        assert "no region named ap-guangzhuo" in answer, answer
        assert "did you mean ap-guangzhou?" in answer and "X-TC-Region" not in answer, answer
    assert "(set as AMBIENT_TENCENTCLOUD_REGION)" in configured.stderr, configured.stderr
    assert "AMBIENT_TENCENTCLOUD_REGION" not in said + cli.stderr


async def test_alarms_asked_for_a_region_are_that_regions_only(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """DescribeAlertRecordHistory and DescribeAlarmHistories answer every region's alarms
    (Region "此参数为可选参数"): `list_alarms(region="ap-shanghai")` and `ambient cloud alarms
    --region ap-shanghai` listed Guangzhou's alarms too, each saying its own region (Cloud
    Monitor's still, after CLS's were kept to the region asked). Asked a region, they answer
    its alarms of both sources; asked none, every region's, as before."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    t = (int(datetime.now(UTC).timestamp()) - 600) * 1000
    api.cls_records = [
        {"AlarmName": "sh burst", "Status": 0, "CreateTime": t, "Region": "ap-shanghai"},
        {"AlarmName": "gz burst", "Status": 0, "CreateTime": t + 1, "Region": "ap-guangzhou"},
    ]
    # Cloud Monitor writes a region by its short name (the API reference's examples).
    api.monitor_alarms = [
        {
            "PolicyName": f"{r} cpu",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": t // 1000 - 1 - i,
            "Region": r,
        }
        for i, r in enumerate(("sh", "gz"))
    ]
    async with client(state, "viewer") as c:
        _, asked = await call(c, "list_alarms", hours=1, region="ap-shanghai")
        _, every = await call(c, "list_alarms", hours=1)
        tools = {t.name: t for t in (await c.list_tools()).tools}
    # Its region said "(default: configured)", as the other reads' do, of every region's answer.
    region = tools["list_alarms"].input_schema["properties"]["region"]["description"]
    assert region.endswith("(default: every region's)"), region
    assert [a["name"] for a in asked["alarms"]] == ["sh burst", "sh cpu"], asked
    names = ["gz burst", "sh burst", "sh cpu", "gz cpu"]
    assert [a["name"] for a in every["alarms"]] == names, every
    args = ["cloud", "alarms", "--region", "ap-shanghai", "--json"]
    listed = await asyncio.to_thread(CliRunner().invoke, app, args, env=cli_env(state))
    assert listed.exit_code == 0, listed.output
    assert [a["name"] for a in json.loads(listed.stdout)] == ["sh burst", "sh cpu"], listed.stdout
    helped = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", "alarms", "--help"])
    assert "(default: every region's)" in " ".join(helped.output.split()), helped.output


async def test_a_search_of_logs_without_a_time_is_not_said_to_match_none_in_the_command(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """Every log's Time in seconds: the search stopped after as many skipped as asked, and the
    command said "no logs matched '*' in the last 1 hour" of 5 logs it could not read."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    seconds = int(datetime.now(UTC).timestamp()) - 60
    results = [
        {"TopicId": "t-1", "PkgId": "P", "PkgLogId": str(n), "Time": seconds - n}
        | {"LogJson": json.dumps({"msg": f"timeout {n}"})}
        for n in range(5)
    ]
    answer = {"Analysis": False, "ListOver": False, "Context": "c", "Results": results}
    api.raw["SearchLog"] = [(200, "application/json", json.dumps({"Response": answer}).encode())]
    said = await asyncio.to_thread(
        CliRunner().invoke, app, ["cloud", "logs", "t-1", "--limit", "5"], env=cli_env(state)
    )
    assert said.exit_code == 0, said.output
    text = " ".join(said.output.split())  # the console wraps its lines
    assert text == (
        "the search stopped after 5 logs without a time in its range (SearchLog's Time, an "
        "integer of milliseconds): check the way to the API (AMBIENT_TENCENTCLOUD_ENDPOINT, a "
        "proxy) 5 unreadable lines skipped"
    ), text


async def test_alarms_without_a_time_are_said_skipped_in_the_command(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    """An alarm whose FirstOccurTime is not the API's is skipped and counted (list_alarms'
    ``unreadable``); the command listed the others and said nothing of it, where `cloud logs`
    says its unreadable lines."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    api, state = cloud_state
    t = int(datetime.now(UTC).timestamp()) - 600
    histories = [
        {"AlarmId": "a-1", "PolicyName": "cpu-high", "AlarmStatus": "ALARM", "FirstOccurTime": t},
        {"AlarmId": "a-2", "PolicyName": "disk-full", "FirstOccurTime": "yesterday"},
    ]
    answer = {"Response": {"Histories": histories, "TotalCount": 2}}
    api.raw["DescribeAlarmHistories"] = [(200, "application/json", json.dumps(answer).encode())]
    listed = await asyncio.to_thread(
        CliRunner().invoke, app, ["cloud", "alarms"], env=cli_env(state)
    )
    assert listed.exit_code == 0, listed.output
    assert "cpu-high" in listed.output, listed.output
    assert "1 unreadable alarm skipped" in " ".join(listed.output.split()), listed.output
