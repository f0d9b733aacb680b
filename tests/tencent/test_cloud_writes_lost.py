"""Asked-for Tencent Cloud writes whose answer was lost, and the documented codes of the
writes' API references, through the MCP tools against the TC3-verifying stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import anyio
import pytest

from ambient.clients.tencent import writes
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError, TencentRequestError
from ambient.cloud import audit
from ambient.cloud.errors import CloudOpsFailedError
from ambient.cloud.logs import LogsetSpec
from ambient.cloud.node_pools import NodePoolScaleSpec, NodePoolSpec
from ambient.deps import WorkerDeps
from ambient.storage.audit import AuditRepository
from ambient.wiring import AppState
from tests.standins.tencent_api import TencentApi
from tests.support.servers import HANG
from tests.support.tencent import cancelled_while_out, held_audit, ops_state, standin_tencent
from tests.tencent.test_cloud_tools import call, client
from tests.tencent.test_cloud_writes import ALARM, CASES, POOL, SQL, cloud

__all__ = ["cloud"]  # the fixture, shared

# A gateway's answer in place of the API's: the request reached Tencent Cloud (or did not), the
# answer never came back.
LOST = (504, "text/html", b"<html><body><h1>504 Gateway Time-out</h1></body></html>")
NAMED_CASES = [case for case in CASES if case[0] != "create_cls_alarm"]


@pytest.mark.parametrize(("tool", "arg", "spec", "actions"), NAMED_CASES)
async def test_a_create_whose_answer_is_lost_says_the_one_found_may_be_another_callers(
    cloud: tuple[TencentApi, AppState],
    tool: str,
    arg: str,
    spec: dict[str, Any],
    actions: list[str],
) -> None:
    """The create reached Tencent Cloud; its answer was a gateway's 504. What a lookup finds
    then may be what it made or another caller's (made between our lookup and our send): it
    is said found, perhaps this request's, audited unconfirmed; never 'created'."""
    api, state = cloud
    api.raw[actions[-1]] = [LOST]
    async with client(state, "ops") as c:
        failed, done = await call(c, tool, **{arg: spec}, mode="execute")
        assert not failed, done
        _, again = await call(c, tool, **{arg: spec}, mode="execute")
    assert len(api.creates()) == 1
    assert done["resource_id"] and done["resource_id"] == again["resource_id"]
    step = done["steps"][-1]
    assert step["sent"] is True and step["existing"] is True, step
    assert "may be" in done["summary"] and not done["summary"].startswith("created")
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action=f"cloud.{tool}", limit=10)
    assert sorted(r.detail["outcome"] for r in rows) == ["existing", "unconfirmed"]


async def test_a_logset_another_caller_made_behind_a_lost_answer_is_not_claimed_as_made(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """Another caller made logset audit between our lookup and our send; ours met its
    conflict, answered by a gateway's 504. It was said 'created logset 'audit'
    (logset-someone-else)', existing false, audited executed."""
    api, state = cloud
    theirs = {"LogsetId": "logset-someone-else", "LogsetName": "audit"}
    api.before["CreateLogset"] = lambda: api.logsets.append(theirs)
    api.raw["CreateLogset"] = [LOST]
    async with client(state, "ops") as c:
        failed, done = await call(c, "create_logset", logset={"name": "audit"}, mode="execute")
    assert not failed, done
    assert done["resource_id"] == "logset-someone-else"
    assert done["steps"][0]["existing"] is True and "created" not in done["summary"], done
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.create_logset")
    assert [r.detail["outcome"] for r in rows] == ["unconfirmed"]


@pytest.mark.parametrize("status", [403, 407, 503])
async def test_a_proxy_refusing_a_create_is_not_said_an_answer_lost(
    cloud: tuple[TencentApi, AppState], status: int
) -> None:
    """A proxy's 403/407/503 answers before anything reached Tencent Cloud: the create was
    said 'may have been made' and looked up again (kind answer_lost)."""
    api, state = cloud
    api.raw["CreateLogset"] = [(status, "text/html", b"<html>proxy says no</html>")]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_logset", logset={"name": "audit"}, mode="execute")
    assert failed and "may have been made" not in message and f"HTTP {status}" in message
    assert [a for _, a, _ in api.calls][-1] == "CreateLogset"  # no lookup after it
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.create_logset")
    assert [r.detail["kind"] for r in rows] == ["unavailable"]


async def test_a_create_whose_connection_is_refused_is_not_an_answer_lost() -> None:
    """Connection refused: nothing was sent, yet the SDK's ClientNetworkError (no RequestId)
    was read as an answer lost ('may have been made', the name looked up again)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    tc = standin_tencent(f"http://127.0.0.1:{port}")
    with pytest.raises(TencentCloudError) as failed:
        await tc.call("cls", "CreateLogset", {"LogsetName": "audit"})
    assert failed.value.code == "ClientNetworkError", failed.value
    assert not writes.answer_lost(failed.value)


@pytest.mark.parametrize("held", [False, True], ids=["closed", "timed-out"])
async def test_a_create_whose_answer_breaks_off_mid_body_is_an_answer_lost(held: bool) -> None:
    """The SDK sends with stream=True and the body is read after it: an answer cut short (200,
    Content-Length 100, closed after a few bytes, or held past the client's timeout) raised
    requests' ChunkedEncodingError or ConnectionError(ReadTimeoutError), not a Tencent Cloud
    error: no audit row, the caller crashed. It is an answer lost."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def cut_short() -> None:
            conn, _ = server.accept()
            with conn:
                read = b""
                while b"\r\n\r\n" not in read:
                    read += conn.recv(65536)
                head, body = read.split(b"\r\n\r\n", 1)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:  # the whole request read: a FIN, not a reset
                    body += conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 100\r\n\r\n{"Response": {'
                )
                if held:
                    conn.recv(1)  # until the client gives up and closes

        served = asyncio.create_task(asyncio.to_thread(cut_short))
        tc = standin_tencent(f"http://127.0.0.1:{port}")
        if held:
            tc = TencentCloud(
                tc.credential, region=tc.region, endpoint=tc._endpoint, protocol="http", timeout=1
            )
        with pytest.raises(TencentCloudError) as failed:
            await tc.call("cls", "CreateLogset", {"LogsetName": "audit"})
        await served
    assert failed.value.code == "ClientNetworkError", failed.value
    assert writes.answer_lost(failed.value)


async def test_a_create_whose_read_timed_out_is_an_answer_lost(
    cloud: tuple[TencentApi, AppState], deps: WorkerDeps
) -> None:
    """The request was sent and its answer did not come within the client's timeout (the
    stand-in holds it until the test releases it): it may have been made."""
    api, state = cloud
    arrived, released = asyncio.Event(), asyncio.Event()
    api.held["CreateLogset"] = (arrived, released)
    tc = state.tencent
    impatient = TencentCloud(
        tc.credential, region=tc.region, endpoint=tc._endpoint, protocol="http", timeout=1
    )
    try:
        with pytest.raises(CloudOpsFailedError) as failed:
            await ops_state(deps, impatient).cloud_ops.create_logset(
                "ops", LogsetSpec(name="audit"), "execute"
            )
    finally:
        released.set()
    assert failed.value.kind == "answer_lost" and "may have been made" in str(failed.value)


async def test_a_lookup_that_fails_after_a_lost_answer_says_it_could_not_be_checked(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """No answer, and the lookup after it failed too: it said 'nothing of that name is listed
    yet', which nobody saw; then the lookup's code and message without its RequestId."""
    api, state = cloud
    api.before["CreateLogset"] = lambda: api.failures.update(DescribeLogsets=["InternalError"])
    api.raw["CreateLogset"] = [LOST]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_logset", logset={"name": "audit"}, mode="execute")
    assert failed and "could not be checked" in message, message
    assert "(InternalError: injected InternalError (RequestId req-" in message, message
    assert "not listed" not in message


async def test_a_create_whose_answer_is_lost_and_nothing_is_listed_says_it_may_have_been_made(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """No answer and nothing of the name listed (not made, or not listed yet): 'unavailable;
    try again' said nothing happened. The answer says it may have been made and that the same
    request again makes no second; audited with kind answer_lost."""
    api, state = cloud
    api.failures["CreateLogset"] = ["InternalError"]  # not made, and the gateway's page said
    api.raw["CreateLogset"] = [LOST]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_logset", logset={"name": "audit"}, mode="execute")
    assert failed and "may have been made" in message and "meets its name taken" in message
    assert "504" in message and "unavailable" not in message
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.create_logset", limit=10)
    assert [(r.detail["outcome"], r.detail["kind"]) for r in rows] == [("failed", "answer_lost")]


async def test_a_create_the_api_says_timed_out_on_its_side_may_have_been_made(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """CreateAlarmNotice's documented FailedOperation.Timeout (操作超时) is the API's own
    timeout: the notice may have been made. It was said 'Tencent Cloud is unavailable ...; try
    again' as if nothing had happened; now as an answer lost, and no policy goes out."""
    api, state = cloud
    api.failures["CreateAlarmNotice"] = ["FailedOperation.Timeout"]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_cls_alarm", alarm=ALARM, mode="execute")
    assert failed and "may have been made" in message and "unavailable" not in message, message
    assert "CLS timed out on its side" in message and "RequestId req-standin" in message
    assert [a for _, a, _ in api.creates()] == ["CreateAlarmNotice"]
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.create_cls_alarm_notice")
    assert [r.detail["kind"] for r in rows] == ["answer_lost"]


async def test_a_topic_being_created_by_another_request_is_the_one_found(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """CreateTopic's documented FailedOperation.TopicCreating (Topic 创建中): another caller's
    create of the name is under way. It was said 'CreateTopic (...) failed'; the topic listed is
    the one asked for, as after a conflict."""
    api, state = cloud
    racing = {"TopicId": "topic-racing", "TopicName": "nginx", "LogsetId": "logset-app"}
    api.before["CreateTopic"] = lambda: api.topics.append(racing)
    api.failures["CreateTopic"] = ["FailedOperation.TopicCreating"]
    topic = {"logset_id": "logset-app", "name": "nginx"}
    async with client(state, "ops") as c:
        failed, result = await call(c, "create_log_topic", topic=topic, mode="execute")
    assert not failed, result
    assert result["resource_id"] == "topic-racing" and result["steps"][0]["existing"] is True


WITHOUT_NOTICE = {**ALARM, "notice_name": None, "notice_webhook": None, "notice_ids": ["n-1"]}


@pytest.mark.parametrize(
    ("tool", "arg", "spec", "action", "code", "says"),
    [
        # CreateAlarm: 低频不支持告警 (a topic on low-frequency storage), not a parameter's fault.
        (
            "create_cls_alarm",
            "alarm",
            WITHOUT_NOTICE,
            "CreateAlarm",
            "OperationDenied.AlarmNotSupportForSearchLow",
            "standard storage",
        ),
        # CreateTopic: Topic 创建中, with nothing of the name listed yet.
        (
            "create_log_topic",
            "topic",
            {"logset_id": "logset-app", "name": "nginx"},
            "CreateTopic",
            "FailedOperation.TopicCreating",
            "ask again in a moment",
        ),
        # CreateScheduledSql: 无效的数据加工语句.
        (
            "create_scheduled_sql",
            "task",
            SQL,
            "CreateScheduledSql",
            "InvalidParameter.InvalidEtlContent",
            "search_logs",
        ),
    ],
)
async def test_documented_codes_of_the_creates_say_what_to_do(
    cloud: tuple[TencentApi, AppState],
    tool: str,
    arg: str,
    spec: dict[str, Any],
    action: str,
    code: str,
    says: str,
) -> None:
    api, state = cloud
    api.alarm_notices = [{"AlarmNoticeId": "n-1", "Name": "oncall", "Type": "All"}]
    api.failures[action] = [code]
    async with client(state, "ops") as c:
        failed, message = await call(c, tool, **{arg: spec}, mode="execute")
    assert failed and says in message and code in message, message
    assert "rejected a parameter" not in message and " failed:" not in message


# A node pool of one node (0-4) the resize tests scale.
POOL_A = {
    "NodePoolId": "np-1",
    "Name": "a",
    "DesiredNodesNum": 1,
    "MinNodesNum": 0,
    "MaxNodesNum": 4,
}


@pytest.mark.parametrize("words", [None, "", "FailedOperation.AsCommon"])
@pytest.mark.parametrize("code", ["FailedOperation.AsCommon", "InternalError.AsCommon"])
async def test_an_auto_scaling_refusal_of_a_node_pool_says_what_to_fix(
    cloud: tuple[TencentApi, AppState], code: str, words: str | None
) -> None:
    """CreateClusterNodePool's documented AS errors (the scaling group or launch configuration
    refused: a group name the account uses, a subnet, an instance type) were 'CreateClusterNode
    Pool (...) failed: ...', and InternalError.AsCommon 'unavailable ...; try again'. Its words
    may name the cause or nothing (empty, or the code alone): one advice says what to do either
    way, with the words the API gave."""
    api, state = cloud
    api.failures["CreateClusterNodePool"] = [code]
    if words is not None:
        api.failure_words["CreateClusterNodePool"] = words
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_node_pool", pool=POOL, mode="execute")
    assert failed and f"CreateClusterNodePool ({code}): Auto Scaling refused" in message, message
    assert "if its words name a cause" in message and "fix that and ask again" in message
    assert "if not, try again later" in message and " failed:" not in message, message
    assert "scaling groups and launch configurations in the Auto Scaling console" in message
    assert "quote the RequestId to Tencent Cloud support" in message, message
    told = f"injected {code}" if words is None else words  # the API's words, whole
    assert message.endswith(f"support. {told} (RequestId req-standin)".replace("  ", " "))


async def _scale_refused(cloud: tuple[TencentApi, AppState], code: str) -> tuple[bool, str]:
    """scale_node_pool of np-1 to 2, its ModifyNodePoolDesiredCapacityAboutAsg answered ``code``."""
    api, state = cloud
    api.node_pools["cls-abcd1234"] = [dict(POOL_A)]
    api.failures["ModifyNodePoolDesiredCapacityAboutAsg"] = [code]
    async with client(state, "ops") as c:
        return await call(
            c,
            "scale_node_pool",
            cluster_id="cls-abcd1234",
            node_pool_id="np-1",
            desired=2,
            mode="execute",
        )


async def test_a_node_pool_tke_has_no_record_of_says_where_to_look(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """ModifyNodePoolDesiredCapacityAboutAsg's documented FailedOperation.RecordNotFound (the pool
    gone between the read and the change) was said 'ModifyNodePool... failed: ...'."""
    failed, message = await _scale_refused(cloud, "FailedOperation.RecordNotFound")
    assert failed and "list_node_pools" in message and "does not exist" in message, message


async def test_a_node_pool_busy_being_created_or_updated_says_ask_again_once_it_is_normal(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """ResourceUnavailable.NodePoolStateNotNormal (节点池状态不正常: a pool being created or
    updated) was said 'ModifyNodePool... failed: ...', as if the resize could never work."""
    code = "ResourceUnavailable.NodePoolStateNotNormal"
    failed, message = await _scale_refused(cloud, code)
    assert failed and "the node pool is busy" in message and code in message, message
    assert "once list_node_pools shows it normal" in message and "failed:" not in message


async def test_a_node_pool_scale_whose_answer_is_lost_after_it_landed_is_said_done(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """The resize reached TKE; its answer was a gateway's 504. It was said 'Tencent Cloud is
    unavailable ...; try again' and audited failed while the pool had its new size: the pool
    read again says what was done."""
    api, state = cloud
    api.node_pools["cls-abcd1234"] = [dict(POOL_A)]
    api.raw["ModifyNodePoolDesiredCapacityAboutAsg"] = [LOST]
    async with client(state, "ops") as c:
        failed, done = await call(
            c,
            "scale_node_pool",
            cluster_id="cls-abcd1234",
            node_pool_id="np-1",
            desired=3,
            mode="execute",
        )
    assert not failed, done
    assert done["executed"] is True and done["previous"] == 1
    assert api.node_pools["cls-abcd1234"][0]["DesiredNodesNum"] == 3
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.scale_node_pool")
    assert [r.detail["outcome"] for r in rows] == ["executed"]


async def test_a_node_pool_scale_unanswered_whose_re_read_fails_says_both_with_the_request_id(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """TKE timed out on its side (its RequestId given) and the pool could not be read again:
    the re-read's failure was swallowed, and the resize's code and RequestId, which Tencent's
    support asks for, were left out of 'got no answer'."""
    api, state = cloud
    api.node_pools["cls-abcd1234"] = [dict(POOL_A)]
    api.failures["ModifyNodePoolDesiredCapacityAboutAsg"] = ["FailedOperation.Timeout"]
    refused = ["UnauthorizedOperation.CamNoAuth"]
    api.before["ModifyNodePoolDesiredCapacityAboutAsg"] = lambda: api.failures.update(
        DescribeClusterNodePools=refused
    )
    spec = NodePoolScaleSpec(cluster_id="cls-abcd1234", node_pool_id="np-1", desired=3)
    with pytest.raises(CloudOpsFailedError) as lost:
        await state.cloud_ops.scale_node_pool("ops", spec, "execute")
    said = str(lost.value)
    assert lost.value.kind == "answer_lost" and "may be resizing to 3" in said, said
    assert "FailedOperation.Timeout: injected FailedOperation.Timeout (RequestId req-" in said
    assert "could not be checked (UnauthorizedOperation.CamNoAuth: " in said, said
    assert [a for _, a, _ in api.calls].count("DescribeClusterNodePools") == 2


async def _rows(state: AppState) -> list[tuple[str, str | None]]:
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.create_logset")
    return [(r.detail["outcome"], r.detail.get("kind")) for r in rows]


async def test_a_create_stopped_while_its_request_is_out_leaves_its_audit_row(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """A call cancelled while its create was out (an MCP client that cancelled or timed out, the
    chat agent's call past its time) left no audit row at all, while the create went on in
    Tencent Cloud: now one, failed with kind interrupted, the request in it."""
    api, state = cloud
    held = api.held["CreateLogset"] = (asyncio.Event(), asyncio.Event())
    asked = state.cloud_ops.create_logset("ops", LogsetSpec(name="audit"), "execute")
    rows = await cancelled_while_out(state, asked, held, "cloud.create_logset")
    assert [(r["outcome"], r["kind"]) for r in rows] == [("failed", "interrupted")]
    assert rows[0]["request"]["action"] == "CreateLogset"
    assert "may still" in rows[0]["reason"] and rows[0]["sent"] is True


@pytest.mark.parametrize("mode", ["dry_run", "execute"])
async def test_a_create_stopped_during_its_lookup_says_nothing_was_sent(
    cloud: tuple[TencentApi, AppState], mode: str
) -> None:
    """Cancelled while it looked the name up (or in a dry run), the row said 'a request it had
    sent may still be carried out' when nothing had been sent."""
    api, state = cloud
    held = api.held["DescribeLogsets"] = (asyncio.Event(), asyncio.Event())
    asked = state.cloud_ops.create_logset("ops", LogsetSpec(name="audit"), mode)  # type: ignore[arg-type]
    rows = await cancelled_while_out(state, asked, held, "cloud.create_logset")
    assert len(rows) == 1 and "before anything was sent" in rows[0]["reason"], rows
    assert "may still" not in rows[0]["reason"] and api.creates() == []


async def test_a_second_cancel_does_not_lose_the_interrupted_row(
    cloud: tuple[TencentApi, AppState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its create was out, and cancelled again while its row was written: the
    second cancel stopped the write (the shield held only anyio's cancel), no row at all."""
    api, state = cloud
    arrived, released = asyncio.Event(), asyncio.Event()
    api.held["CreateLogset"] = (arrived, released)
    writing, written = held_audit(monkeypatch)
    task = asyncio.create_task(
        state.cloud_ops.create_logset("ops", LogsetSpec(name="audit"), "execute")
    )
    await arrived.wait()
    task.cancel()
    await writing.wait()
    task.cancel()
    written.set()
    with anyio.fail_after(HANG), pytest.raises(asyncio.CancelledError):
        await task
    released.set()
    assert await _rows(state) == [("failed", "interrupted")]


async def test_a_cancel_while_the_executed_row_is_written_does_not_lose_it(
    cloud: tuple[TencentApi, AppState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create done, its caller cancelled while its row was written: no row (the success
    row was not shielded at all) for a logset made."""
    api, state = cloud
    writing, written = held_audit(monkeypatch)
    task = asyncio.create_task(
        state.cloud_ops.create_logset("ops", LogsetSpec(name="audit"), "execute")
    )
    await writing.wait()
    task.cancel()
    written.set()
    with anyio.fail_after(HANG), pytest.raises(asyncio.CancelledError):
        await task
    assert await _rows(state) == [("executed", None)]
    assert [a for _, a, _ in api.creates()] == ["CreateLogset"]


@pytest.mark.parametrize(
    ("cancels", "fails"), [(1, False), (2, False), (0, True)], ids=["cancelled", "twice", "lost"]
)
async def test_an_audit_row_past_its_grace_does_not_hold_the_call_and_is_logged(
    cloud: tuple[TencentApi, AppState],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    cancels: int,
    fails: bool,
) -> None:
    """The database does not answer a call's row within the grace (made short here): the call
    cancelled while its create was out waited for it for ever; answered, and its row then
    failing, the row was lost with only asyncio's "exception never retrieved" to say so (nobody
    awaited the write). Each ends, logged; the row is written when it can be, or logged lost
    with the request's detail redacted. Cancelled again while its row is written, the call left
    the grace's scope by its own CancelledError, the row said late: now it still waits for the
    row (the grace, not a cancel, bounds it), which is then written and not said late."""
    api, state = cloud
    # Cancelled twice: a grace no load outlasts; the row is let through after the second cancel.
    monkeypatch.setattr(audit, "AUDIT_GRACE", 2 * HANG if cancels == 2 else 0.2)
    writing, written = held_audit(monkeypatch, fails=fails)
    sent, answered = asyncio.Event(), asyncio.Event()
    if cancels:
        api.held["CreateLogset"] = (sent, answered)
    task = asyncio.create_task(
        state.cloud_ops.create_logset("ops", LogsetSpec(name="audit"), "execute")
    )
    if cancels:
        await sent.wait()
        task.cancel()
    if cancels == 2:
        await writing.wait()
        task.cancel()  # delivered before the row's write runs again (asyncio runs in order)
        written.set()
    stopped = pytest.raises(asyncio.CancelledError) if cancels else contextlib.nullcontext()
    with anyio.fail_after(HANG), stopped:
        await task
    assert writing.is_set() and ("was not written" in caplog.text) == (cancels != 2), caplog.text
    written.set()
    answered.set()
    await asyncio.gather(*audit._writing, return_exceptions=fails)
    if fails:
        assert "was lost" in caplog.text and "disk I/O error" in caplog.text, caplog.text
        assert [a for _, a, _ in api.creates()] == ["CreateLogset"]
    else:
        assert await _rows(state) == [("failed", "interrupted")]


async def test_a_system_disk_type_auto_scaling_does_not_know_is_refused_before_any_call(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """disk_type was free text: 'SSD' or 'cloud_premium' was promised by a dry run and sent,
    for AS to refuse (its SystemDisk.DiskType takes eight values). Now a tool error naming the
    field, nothing asked of Tencent Cloud."""
    api, state = cloud
    async with client(state, "viewer") as c:
        for disk_type in ("SSD", "cloud_premium"):
            failed, message = await call(
                c, "create_node_pool", pool={**POOL, "disk_type": disk_type}
            )
            assert failed and "disk_type" in message and "CLOUD_PREMIUM" in message, message
        failed, dry = await call(c, "create_node_pool", pool={**POOL, "disk_type": "CLOUD_HSSD"})
    assert not failed, dry
    assert json.loads(dry["steps"][0]["request"]["params"]["LaunchConfigurePara"])[
        "SystemDisk"
    ] == {
        "DiskType": "CLOUD_HSSD",
        "DiskSize": 50,
    }
    assert [a for _, a, _ in api.calls] == ["DescribeClusterNodePools"]


async def test_the_stand_in_refuses_a_system_disk_type_auto_scaling_does_not_know(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    params = NodePoolSpec.model_validate(POOL).request().params
    launch = {**json.loads(params["LaunchConfigurePara"]), "SystemDisk": {"DiskType": "SSD"}}
    with pytest.raises(TencentRequestError) as refused:
        await state.tencent.call(
            "tke", "CreateClusterNodePool", {**params, "LaunchConfigurePara": json.dumps(launch)}
        )
    assert refused.value.code == "InvalidParameter.Param"
    assert api.node_pools["cls-abcd1234"] == []


def _old_gpu_pool(state: str) -> dict[str, Any]:
    return {
        "NodePoolId": "np-old",
        "Name": "gpu",
        "LifeState": state,
        "DesiredNodesNum": 0,
        "MinNodesNum": 0,
        "MaxNodesNum": 4,
    }


async def test_a_node_pool_deleted_is_not_the_one_a_create_of_its_name_finds(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """The user deleted node pool gpu and asked for a new one: the lookup by name took the
    deleted pool (LifeState deleted) for it, 'already exists (np-old); nothing sent'."""
    api, state = cloud
    api.node_pools["cls-abcd1234"] = [_old_gpu_pool("deleted")]
    async with client(state, "ops") as c:
        failed, done = await call(c, "create_node_pool", pool=POOL, mode="execute")
    assert not failed, done
    assert done["resource_id"] != "np-old" and done["steps"][0]["sent"] is True
    assert [a for _, a, _ in api.creates()] == ["CreateClusterNodePool"]


async def test_a_node_pool_being_deleted_is_said_so_and_nothing_is_sent(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """A pool of the name being deleted (LifeState deleting) was answered as the new one
    ('already exists'); it is not, and its scaling group's name is unique in the account
    until it is gone (AS CreateAutoScalingGroup), so the create waits for that: said so."""
    api, state = cloud
    api.node_pools["cls-abcd1234"] = [_old_gpu_pool("deleting")]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_node_pool", pool=POOL, mode="execute")
    assert failed and "being deleted" in message and "list_node_pools" in message, message
    assert api.creates() == []
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.create_node_pool")
    assert [(r.detail["outcome"], r.detail["kind"]) for r in rows] == [("failed", "conflict")]


@pytest.mark.parametrize(
    ("action", "code", "tool", "args"),
    [
        (
            "CreateLogset",
            "InvalidParameter.LogsetConflict",
            "create_logset",
            {"logset": {"name": "audit"}},
        ),
        ("CreateClusterNodePool", "FailedOperation.AsCommon", "create_node_pool", {"pool": POOL}),
    ],
)
async def test_a_create_refused_whose_lookup_then_fails_says_both(
    cloud: tuple[TencentApi, AppState], action: str, code: str, tool: str, args: dict[str, Any]
) -> None:
    """Sent and refused for its name (or Auto Scaling's general error), and the lookup after
    it failed: only the lookup's 'Tencent Cloud is unavailable …; try again' was said, not that
    the create went out nor its refusal and RequestId. Both said now; audited failed, sent."""
    api, state = cloud
    lookup = {
        "CreateLogset": "DescribeLogsets",
        "CreateClusterNodePool": "DescribeClusterNodePools",
    }
    api.before[action] = lambda: api.failures.update({lookup[action]: ["InternalError"]})
    api.failures[action] = [code]
    async with client(state, "ops") as c:
        failed, message = await call(c, tool, mode="execute", **args)
    assert failed, message
    assert f"{action} was sent and refused ({code}: injected {code} (RequestId req-" in message
    assert "could not be checked (InternalError: injected InternalError (RequestId req-" in message
    operation = f"cloud.{tool}"
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action=operation)
    assert [(r.detail["outcome"], r.detail["sent"]) for r in rows] == [("failed", True)]


@pytest.mark.parametrize("code", ["FailedOperation.AsCommon", "InternalError.AsCommon"])
async def test_a_node_pool_create_auto_scaling_refuses_finds_the_pool_listed_by_then(
    cloud: tuple[TencentApi, AppState], code: str
) -> None:
    """A retry after a lost answer whose pool was not listed yet: the lookup finds nothing, the
    create goes out, and Auto Scaling refuses it (AsCommon). It was said 'Auto Scaling refused
    ...; fix that' while the pool was there to find; then 'already exists (np-made); nothing
    sent' (sent false) while the create had gone out; then 'this one made nothing', audited
    existing. AsCommon is any error creating the scaling group (伸缩组资源创建报错, the API
    reference), not a name taken, and InternalError.AsCommon is the server's: this request may
    have made the pool and then failed. Said so, with the refusal whole; audited unconfirmed."""
    api, state = cloud
    made = {**_old_gpu_pool("creating"), "NodePoolId": "np-made"}
    api.before["CreateClusterNodePool"] = lambda: api.node_pools["cls-abcd1234"].append(made)
    api.failures["CreateClusterNodePool"] = [code]
    async with client(state, "ops") as c:
        failed, done = await call(c, "create_node_pool", pool=POOL, mode="execute")
    assert not failed, done
    [step] = done["steps"]
    assert (step["sent"], step["existing"], step["refused"]) == (True, True, None), step
    assert step["error"] == f"{code}: injected {code} (RequestId req-standin)", step
    assert done["resource_id"] == "np-made" and done["summary"] == (
        f"CreateClusterNodePool was refused with a general Auto Scaling error ({step['error']}); "
        "node pool 'gpu' is listed now (np-made): an earlier request's, another caller's, or "
        "possibly this one's — check it with list_node_pools"
    )
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.create_node_pool")
    [row] = [r.detail for r in rows]
    assert (row["outcome"], row["sent"], row["resource_id"]) == ("unconfirmed", True, "np-made")
