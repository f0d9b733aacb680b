"""The voice profile over real services: remediations waiting for me, by spoken reference."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import no_answer, temporal
from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.remediation import service as remediation_service
from ambient.remediation.ladder import Mode
from ambient.remediation.runs import RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository, user_named
from ambient.wiring import AppState
from ambient.xiaozhi import DeviceService
from ambient.xiaozhi_context import voice_facts
from mcp_server import voice_answer
from mcp_server.voice_approvals import CONFIRM_ASKED, CONFIRM_WINDOW
from mcp_server.voice_sentences import UNCONFIRMED_NEEDS, WORKER_SILENT
from tests.conftest import running_worker, unique
from tests.remediation.support import (
    add_user,
    alert,
    error_rate,
    new_token,
    remediation_settings,
    run_row,
    state_reaches,
)
from tests.standins.tencent_api import TencentApi
from tests.support.mcp_as import mcp_as
from tests.support.pages import signed_in
from tests.support.servers import HANG, serve
from tests.support.tencent import standin_tencent
from tests.support.waits import ask, eventually
from tests.voice.support import say, voice_client
from worker import build_worker

OWNER = "ops"
NOT_PERMITTED = "没办法完成：你没有这个权限，请找管理员授权。"


@asynccontextmanager
async def waiting(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    *workloads: str,
    alerts: Sequence[dict[str, str]] = (),
    mode: Mode = "dry_run",
) -> AsyncIterator[tuple[AppState, dict[str, WorkflowHandle[Any, RemediationStatus]]]]:
    """A run of OWNER's on each workload (and each of ``alerts``, the alert's fields: keyed
    namespace/workload), each asked in ``mode`` and waiting for approval, and a state serving
    them."""
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        state = AppState(
            settings=settings, db=deps.db, temporal=ts_env.client, channels=deps.channels
        )
        service = RemediationService(ts_env.client, settings, deps.db)
        handles = {}
        for fired in [*({"workload": w} for w in workloads), *alerts]:
            started = await service.start(OWNER, alert(url, **fired), mode)
            key = "/".join(filter(None, (fired.get("namespace"), fired["workload"])))
            handles[key] = ts_env.client.get_workflow_handle(
                started.remediation_id, result_type=RemediationStatus
            )
            await state_reaches(ts_env, handles[key], ("waiting_approval",))
        yield state, handles


@asynccontextmanager
async def stuck_waiting(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, *workloads: str
) -> AsyncIterator[
    tuple[
        AppState,
        RemediationService,
        dict[str, WorkflowHandle[Any, RemediationStatus]],
        RemediationStatus,
    ]
]:
    """A run of OWNER's on each workload, each waiting for approval, on a service that never
    heals, so an approved run moves on to its next rung; the state, the service, the handles
    and the last run's status when it waited."""
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        state = AppState(
            settings=settings, db=deps.db, temporal=ts_env.client, channels=deps.channels
        )
        service = RemediationService(ts_env.client, settings, deps.db)
        handles = {}
        for workload in workloads:
            started = await service.start(
                OWNER, alert(url, workload=workload, settle_seconds=0), "dry_run"
            )
            handles[workload] = ts_env.client.get_workflow_handle(
                started.remediation_id, result_type=RemediationStatus
            )
            last = await state_reaches(ts_env, handles[workload], ("waiting_approval",))
        yield state, service, handles, last


async def test_the_profile_is_nine_tools_in_under_8_kb_with_chinese_first_descriptions(
    deps: WorkerDeps, ts_env: WorkflowEnvironment
) -> None:
    state = AppState(
        settings=deps.settings, db=deps.db, temporal=ts_env.client, channels=deps.channels
    )
    async with voice_client(state, OWNER) as client:
        tools = (await client.list_tools()).tools
    listed = json.dumps(
        [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools],
        ensure_ascii=False,
    )
    assert len(tools) <= 10
    assert len(listed.encode()) <= 8 * 1024, len(listed.encode())
    assert {t.name for t in tools} >= {
        "greet",
        "what_needs_me",
        "approve_remediation",
        "refuse_remediation",
        "task_status",
        "pause_task",
        "resume_task",
        "cluster_health",
        "recent_errors",
    }
    for tool in tools:
        description = tool.description or ""
        assert "\u4e00" <= description[0] <= "\u9fff", description  # Chinese first
        assert tool.output_schema is None  # nothing but the words on every turn


async def test_an_answer_whose_same_call_again_does_more_is_not_published_idempotent(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """approve_remediation and refuse_remediation were published idempotentHint: true, yet two
    identical calls did two things: the first asked "…要批准第一个，checkout…吗？确认就再说一次
    批准。", the second approved. A client or relay retrying an "idempotent" call turned the
    question into an approval; so did the full server's approval without its rung, once the
    run moved on. Pauses and resumes are idempotent (one paused stays paused)."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout", "payments") as (state, _):
        async with voice_client(state, OWNER) as client:
            voice = {t.name: t.annotations for t in (await client.list_tools()).tools}
            first = await say(client, "approve_remediation", which="checkout")
            again = await say(client, "approve_remediation", which="checkout")
        async with mcp_as(state, OWNER) as client:
            full = {t.name: t.annotations for t in (await client.list_tools()).tools}
    assert "吗" in first and "已批准" in again, (first, again)  # why: the same call, more done
    idempotent = {name: notes.idempotent_hint for name, notes in voice.items() if notes}
    assert idempotent == {
        "greet": True,
        "what_needs_me": True,
        "approve_remediation": False,
        "refuse_remediation": False,
        "task_status": True,
        "pause_task": True,
        "resume_task": True,
        "cluster_health": True,
        "recent_errors": True,
    }, idempotent
    approving = voice["approve_remediation"]
    assert approving is not None and approving.destructive_hint is True
    decide = {name: full[name] for name in ("approve_remediation", "reply_message")}
    assert all(n is not None and n.idempotent_hint is False for n in decide.values()), decide
    steer = {name: full[name] for name in ("pause_task", "resume_task", "abort_remediation")}
    assert all(n is not None and n.idempotent_hint is True for n in steer.values()), steer


async def test_the_first_one_waiting_for_me_is_approved_by_voice_and_strangers_hear_nothing(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    await add_user(deps, "guest")
    await add_user(deps, "boss", role="admin")
    async with deps.db.session() as session:
        users = UserRepository(session)
        for name in (OWNER, "guest", "boss"):
            row = await users.get(name)
            assert row is not None
            row.voiceprint_id = f"vp-{name}"
        await session.commit()
    # The owner's kitchen speaker; guest and boss each allow it to answer them by voiceprint.
    devices = DeviceService(deps.db)
    await devices.add(OWNER, OWNER, "AA:BB:CC:00:11:22")
    for name in ("guest", "boss"):
        await devices.allow(name, "aa:bb:cc:00:11:22")
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        handle = handles["checkout"]

        async with voice_client(state, OWNER) as client:
            needs = await say(client, "what_needs_me")
            assert "1 个修复等你审批" in needs and "checkout" in needs

            # A stranger's voice, or one the owner never allowed: nobody's data.
            stranger = await say(client, "what_needs_me", speaker="陌生人")
            assert "不认识" in stranger and "checkout" not in stranger
            # xiaozhi-server's mark of a voice its voiceprints did not match, as a model passes
            # it on: with voiceprints in use (the owner enrolled one), a stranger, not the owner.
            for marked in ("未知说话人", "未知", "unknown", "Unknown speaker"):
                unmatched = await say(client, "what_needs_me", speaker=marked)
                assert "不认识" in unmatched and "checkout" not in unmatched, marked
            # What a small model fills when no voiceprint was given — the assistant's name in
            # Latin letters, or the argument's own description — is the owner, not a stranger.
            for guessed in ("xiaozhi", "小智小智", "声纹认出的人名"):
                owner = await say(client, "what_needs_me", speaker=guessed)
                assert "checkout" in owner, guessed
            # An allowed speaker hears their own (nothing), never the owner's; not "all is
            # well": the time-skipping server does not say which workers poll (UNIMPLEMENTED).
            guest = await say(client, "what_needs_me", speaker="vp-guest")
            assert guest == UNCONFIRMED_NEEDS, guest
            # An admin speaking through a member's device gains nothing.
            boss = await say(client, "approve_remediation", which="第一个", speaker="vp-boss")
            assert "权限" in boss
            guest_tries = await say(
                client, "approve_remediation", which="第一个", speaker="vp-guest"
            )
            assert "没有等你审批" in guest_tries
            # Named by their user name, an enrolled guest is no one: a voice the voiceprints
            # did not match may say any name.
            by_name = await say(client, "approve_remediation", which="第一个", speaker="guest")
            assert "不认识" in by_name and "checkout" not in by_name, by_name

            # The owner enrolled a voiceprint: naming no one, the call reads but may not act.
            unnamed = await say(client, "approve_remediation", which="第一个")
            assert "没听出是谁" in unnamed
            me = f"vp-{OWNER}"
            out_of_range = await say(client, "approve_remediation", which="第二个", speaker=me)
            assert "只有 1 个" in out_of_range
            unknown = await say(client, "approve_remediation", which="payments", speaker=me)
            assert "没找到" in unknown and "checkout" in unknown
            assert (await ask(handle, "status", result_type=RemediationStatus)).state == (
                "waiting_approval"
            )

            approved = await say(client, "approve_remediation", which="第一个", speaker=me)
            assert "已批准" in approved and "checkout" in approved
        status = await ask(handle, "status", result_type=RemediationStatus)
        assert [a.approver for a in status.approvals] == [OWNER]
        async with deps.db.session() as session:
            rows = await AuditRepository(session).list(subject=status.run_key, action="approve")
        # The audit says the approval came by voice.
        assert [(r.actor, r.detail["via"]) for r in rows] == [(OWNER, "voice")]


async def _no_permission(deps: WorkerDeps) -> None:
    """The owner's rollback permission taken away (after their runs started)."""
    async with deps.db.session() as session:
        row = await UserRepository(session).get(OWNER)
        assert row is not None
        row.rollback_permission = "none"
        await session.commit()


async def test_a_refusal_by_the_service_is_spoken_not_an_error(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        handle = handles["checkout"]
        # The owner's permission is taken away after the run started: approving needs it.
        await _no_permission(deps)
        async with voice_client(state, OWNER) as client:
            refused = await say(client, "approve_remediation", which="checkout")
            refusing = await say(client, "refuse_remediation", which="checkout", reason="不急")
        # Said in words, not the service's English ("cannot approve : ops has rollback_...").
        assert refused == refusing == NOT_PERMITTED
        status = await ask(handle, "status", result_type=RemediationStatus)
        assert status.state == "waiting_approval" and status.approvals == []


async def test_a_refusal_whose_reason_came_as_a_number_is_made_with_it_as_text(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """refuse_remediation(which="checkout", reason=5) was answered "没听清原因，请再说一次。":
    the optional reason was not read as text as which and name are, so the refusal never ran,
    however often it was said again."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        async with voice_client(state, OWNER) as client:
            refused = await say(client, "refuse_remediation", which="checkout", reason=5)
        status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
    assert refused == "好的，已拒绝checkout 的错误率修复的重启（第 1 级，演练）。", refused
    assert [(a.approver, a.approve, a.reason) for a in status.approvals] == [(OWNER, False, "5")]


async def test_a_run_asked_to_execute_by_a_dry_run_user_is_said_theirs_to_approve(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A user of dry_run asked to execute: the run went on as a dry run, which they may
    approve, and what_needs_me said "审批要先请管理员授权。" (judged by the mode asked, kept
    in the run's row), while approve_remediation approved it (a review)."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)  # rollback_permission dry_run
    async with waiting(ts_env, deps, "checkout", mode="execute") as (state, handles):
        status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
        assert (status.mode_asked, status.mode) == ("execute", "dry_run")
        async with voice_client(state, OWNER) as client:
            needs = await say(client, "what_needs_me")
        assert "审批要先请管理员授权" not in needs and "批准" in needs, needs


def test_a_step_is_named_and_one_that_changes_the_cluster_is_asked_about_first() -> None:
    """One fix waiting: "批准第一个" approved it at once, "好的，已批准payment 的错误率的修复",
    never saying the step was an isolation, or a dry run (a review). The step is named by what
    it does, and one that changes the cluster (not a dry run's) is asked about first, one fix
    waiting or many; a dry run's alone is approved at once, a refusal too."""
    from mcp_server.voice_approvals import asks_first, step_said

    assert step_said(4, "execute") == ("隔离（第 4 级）", "step 4 (isolate)")
    assert step_said(1, "dry_run") == ("重启（第 1 级，演练）", "step 1 (restart, a dry run)")
    assert asks_first(1, False, True, "execute") and asks_first(2, False, True, "dry_run")
    assert not asks_first(1, False, True, "dry_run") and not asks_first(1, False, False, "execute")


async def test_with_two_waiting_a_user_without_the_permission_is_refused_before_any_question(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """With two fixes waiting, "批准 payments" from a user with rollback_permission none was
    asked back ("要批准第二个，payments … 的修复吗？确认就再说一次批准。"), and the yes was
    refused: a voice turn spent on an approval the user could never make. Refused at once."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout", "payments") as (state, handles):
        await _no_permission(deps)
        async with voice_client(state, OWNER) as client:
            needs = await say(client, "what_needs_me")
            refused = await say(client, "approve_remediation", which="payments")
            refusing = await say(client, "refuse_remediation", which="checkout")
        # Not invited to say "批准第一个" either: told what approving needs first.
        assert "批准第一个" not in needs and "审批要先请管理员授权。" in needs, needs
        assert refused == refusing == NOT_PERMITTED
        async with deps.db.session() as session:
            events = await EventRepository(session).list(user=OWNER, kind=CONFIRM_ASKED)
        assert [e.payload for e in events if "asked" in e.payload] == []
        for handle in handles.values():
            status = await ask(handle, "status", result_type=RemediationStatus)
            assert status.state == "waiting_approval" and status.approvals == []


async def test_a_fix_is_said_by_its_metric_in_chinese_and_found_by_those_words(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A Chinese listener heard "checkout 的 error rate" (the alert's metric as its source wrote
    it, English inside a Chinese sentence), and "批准 checkout 的错误率", said in their words,
    found nothing: "没找到…"."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        async with voice_client(state, OWNER) as client:
            needs = await say(client, "what_needs_me")
            approved = await say(client, "approve_remediation", which="checkout 的错误率")
        status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
    assert needs == "有 1 个修复等你审批：第一个是checkout 的错误率。可以说“批准第一个”。", needs
    assert approved == "好的，已批准checkout 的错误率修复的重启（第 1 级，演练）。", approved
    assert [a.approver for a in status.approvals] == [OWNER]


async def test_two_fixes_whose_metrics_are_said_alike_are_named_apart_and_found_so(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """checkout in prod on "cpu_usage" and in staging on "cpu_util" were both said "checkout
    的 CPU 使用率": two fixes told apart by their place only, and said back, either one was
    asked about again; a plain "memory" (bytes as likely as a ratio) was said "内存使用率"."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    fixes = [("prod", "checkout", "cpu_usage"), ("staging", "checkout", "cpu_util")]
    fired = [
        {"namespace": namespace, "workload": workload, "metric": metric}
        for namespace, workload, metric in [*fixes, ("prod", "payments", "memory")]
    ]
    async with waiting(ts_env, deps, alerts=fired) as (state, _):
        async with voice_client(state, OWNER) as client:
            needs = await say(client, "what_needs_me")
            asked = await say(client, "approve_remediation", which="checkout 的 cpu util")
    assert needs == (
        "有 3 个修复等你审批：第一个是checkout 的 cpu usage；第二个是checkout 的 cpu util；"
        "第三个是payments 的内存。可以说“批准第一个”。"
    ), needs
    assert asked == (
        "有 3 个修复在等你审批。要批准第二个，checkout 的 cpu util修复的重启（第 1 级，演练）吗？"
        "确认就再说一次批准。"
    ), asked


async def test_fixes_waiting_past_the_three_named_are_said_to_go_on(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """With four fixes waiting, what_needs_me said "有 4 个修复等你审批：第一个是…；第二个是…；
    第三个是…。": three named as if they were all."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    said: dict[Language, str] = {}
    async with waiting(ts_env, deps, "checkout", "payments", "search", "catalog") as (state, _):
        for language in (Language.ZH, Language.EN):
            async with deps.db.session() as session:
                row = await UserRepository(session).get(OWNER)
                assert row is not None
                row.language = language
                await session.commit()
            async with voice_client(state, OWNER) as client:
                said[language] = await say(client, "what_needs_me")
    assert said[Language.ZH] == (
        "有 4 个修复等你审批：第一个是checkout 的错误率；第二个是payments 的错误率；"
        "第三个是search 的错误率 等。可以说“批准第一个”。"
    ), said
    assert said[Language.EN] == (
        "4 fixes waiting for your approval: first, error rate on checkout; second, error rate"
        " on payments; third, error rate on search; and more. You can say approve the first one."
    ), said


async def test_fixes_alike_but_for_their_cluster_are_named_by_it_and_found_so(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """checkout's error rate in prod on two clusters was said "checkout（prod）的错误率" twice:
    two items the listener heard alike, and said back, either one was asked about again. Named
    by the cluster as its user calls it: its TKE name, or the kubeconfig context's own name."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    api = TencentApi(
        clusters=[
            {"ClusterId": "cls-test0001", "ClusterName": "guangzhou", "ClusterStatus": "Running"},
            {"ClusterId": "cls-test0002", "ClusterName": "shanghai", "ClusterStatus": "Running"},
        ]
    )
    fired = [{"cluster_id": c, "workload": "checkout"} for c in ("cls-test0001", "cls-test0002")]
    async with (
        serve(api.app()) as base,
        waiting(ts_env, deps, alerts=[*fired, {"workload": "payments"}]) as (state, _),
    ):
        state.tencent = standin_tencent(base)
        async with voice_client(state, OWNER) as client:

            async def named() -> str | None:
                # A call waits CLUSTERS_WAIT (1 s) for TKE's list; on a loaded machine the
                # first may say them by place (the slow-TKE test below), the next by name.
                said = await say(client, "what_needs_me")
                return said if "guangzhou" in said else None

            needs = await eventually(named, "clusters named")
            asked = await say(client, "approve_remediation", which="shanghai 的 checkout")
            again = await say(
                client, "approve_remediation", which="guangzhou 集群的 checkout 的错误率"
            )
            # Confirmed: the fix made is named as it was asked about, by its cluster (it was
            # "checkout 的错误率", with the other checkout's fix still waiting).
            made = await say(
                client, "approve_remediation", which="guangzhou 集群的 checkout 的错误率"
            )
    assert needs == (
        "有 3 个修复等你审批：第一个是checkout（guangzhou 集群）的错误率；第二个是checkout"
        "（shanghai 集群）的错误率；第三个是payments 的错误率。可以说“批准第一个”。"
    ), needs
    assert asked == (
        "有 3 个修复在等你审批。要批准第二个，checkout（shanghai 集群）的错误率修复的"
        "重启（第 1 级，演练）吗？确认就再说一次批准。"
    ), asked
    assert again.startswith("有 3 个修复在等你审批。要批准第一个，"), again
    assert made == (
        "好的，已批准checkout（guangzhou 集群）的错误率修复的重启（第 1 级，演练）。"
    ), made


CLUSTERS = [
    {"ClusterId": "cls-test0001", "ClusterName": "guangzhou", "ClusterStatus": "Running"},
    {"ClusterId": "cls-test0002", "ClusterName": "shanghai", "ClusterStatus": "Running"},
]
UNNAMED = (
    "有 2 个修复等你审批：第一个是checkout（prod）的错误率；第二个是checkout（prod）的错误率。"
    "可以说“批准第一个”。"
)


@asynccontextmanager
async def _releasing(released: asyncio.Event) -> AsyncIterator[None]:
    """A request held at the stand-in let go however the test ends (its server stops next)."""
    try:
        yield
    finally:
        released.set()


@pytest.mark.parametrize("tke", ["failing", "slow"])
async def test_clusters_tke_does_not_list_are_unnamed_without_asking_it_each_call(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tke: str
) -> None:
    """Fixes alike but for their cluster are named by TKE's names for them; each call waited
    for them up to half its budget, and asked TKE again after a failure: with TKE throttled or
    unreachable every what_needs_me, approval and refusal lost seconds, one more SDK thread
    each. One read is shared, a call waits for it CLUSTERS_WAIT at most, and a read failed or
    late is not asked again for a while: the fixes are told apart by place meanwhile."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    api = TencentApi(clusters=CLUSTERS)
    arrived, released = asyncio.Event(), asyncio.Event()
    if tke == "failing":
        api.failures["DescribeClusters"] = ["InternalError"]
    else:
        api.held["DescribeClusters"] = (arrived, released)
    fired = [{"cluster_id": c, "workload": "checkout"} for c in ("cls-test0001", "cls-test0002")]

    def asked_tke() -> int:
        return sum(action == "DescribeClusters" for _, action, _ in api.calls)

    async with serve(api.app()) as base, waiting(ts_env, deps, alerts=fired) as (state, _):
        state.tencent = standin_tencent(base)
        async with voice_client(state, OWNER) as client, _releasing(released):
            needs = await say(client, "what_needs_me")
            asked = await say(client, "approve_remediation", which="第二个")
            assert (needs, asked_tke()) == (UNNAMED, 1), (needs, asked_tke())
            assert asked == (
                "有 2 个修复在等你审批。要批准第二个，checkout（prod）的错误率修复的"
                "重启（第 1 级，演练）吗？确认就再说一次批准。"
            ), asked
            if tke == "slow":
                # The read that came late names them from the next call on, asked no more.
                assert arrived.is_set()
                released.set()

                async def named() -> str | None:
                    said = await say(client, "what_needs_me")
                    return said if "guangzhou" in said else None

                assert "checkout（shanghai 集群）" in await eventually(named, "clusters named")
                assert asked_tke() == 1


async def test_a_named_approver_hears_and_approves_a_run_waiting_for_them(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The policy names oncall an approver on the cluster; the run is ops's.
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approvers={"cls-test*": ["oncall"]}
    )
    await add_user(deps, OWNER)
    await add_user(deps, "oncall")
    await add_user(deps, "bystander")
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        handle = handles["checkout"]
        async with voice_client(state, "bystander") as client:
            # Nothing of theirs; not "all is well": the time-skipping server does not say which
            # workers poll (UNIMPLEMENTED).
            assert await say(client, "what_needs_me") == UNCONFIRMED_NEEDS
        # What 小智's prompt is told at the wake too: the run is ops's, the approval oncall's,
        # and it is open among the runs oncall sees (as what_needs_me lists them).
        oncall = await user_named(deps.db, "oncall")
        assert oncall is not None
        facts = await voice_facts(deps.db, oncall, state.remediations, budget=HANG)
        assert (facts.approvals_waiting, facts.open_alerts) == (1, 1)
        assert "有 1 个修复在等审批" in facts.hint
        async with voice_client(state, "oncall") as client:
            needs = await say(client, "what_needs_me")
            assert "1 个修复等你审批" in needs and "checkout" in needs
            approved = await say(client, "approve_remediation", which="checkout")
            assert "已批准" in approved
        status = await ask(handle, "status", result_type=RemediationStatus)
        assert [a.approver for a in status.approvals] == ["oncall"]


async def test_a_device_owner_gains_no_cluster_approval_through_an_approvers_voiceprint(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # oncall is the cluster's approver and allowed the bystander's kitchen speaker; the speaker
    # argument is the model's text, so the bystander can name oncall at will: the run (ops's)
    # is not the bystander's to see or steer, through oncall's voiceprint or otherwise.
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approvers={"cls-test*": ["oncall"]}
    )
    await add_user(deps, OWNER)
    await add_user(deps, "oncall")
    await add_user(deps, "bystander")
    devices = DeviceService(deps.db)
    await devices.add("bystander", "bystander", "aa:bb:cc:00:11:33")
    await devices.allow("oncall", "aa:bb:cc:00:11:33")
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        handle = handles["checkout"]
        async with voice_client(state, "bystander") as client:
            needs = await say(client, "what_needs_me", speaker="oncall")
            tried = await say(client, "approve_remediation", which="checkout", speaker="oncall")
        assert "checkout" not in needs and "权限" in needs
        assert "权限" in tried and "已批准" not in tried
        status = await ask(handle, "status", result_type=RemediationStatus)
        assert status.state == "waiting_approval" and status.approvals == []


async def test_with_two_waiting_a_decision_is_named_back_and_made_when_confirmed(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout", "payments") as (state, handles):

        async def approvals(workload: str) -> list[tuple[str, bool]]:
            status = await ask(handles[workload], "status", result_type=RemediationStatus)
            return [(a.approver, a.approve) for a in status.approvals]

        async with voice_client(state, OWNER) as client:
            # "Approve it" read by a model as one of the two: named back, nothing approved.
            asked = await say(client, "approve_remediation", which="payments")
            assert "有 2 个" in asked and "payments" in asked and "吗" in asked
            # "It" after the question is the run asked about: a switch to a refusal of it is
            # asked in turn, and a "yes" to that refusal's question would make it.
            switched = await say(client, "refuse_remediation", which="它")
            assert "要拒绝" in switched and "payments" in switched
            # The other run named is asked about in turn.
            other = await say(client, "approve_remediation", which="checkout")
            assert "checkout" in other and "吗" in other
            assert await approvals("checkout") == [] and await approvals("payments") == []

            # A question asked longer ago than the window confirms nothing.
            async with deps.db.session() as session:
                last = (await EventRepository(session).list(user=OWNER, kind=CONFIRM_ASKED))[0]
                last.created_at -= CONFIRM_WINDOW + timedelta(seconds=1)
                await session.commit()
            assert "哪一个" in await say(client, "approve_remediation", which="确认")
            assert "吗" in await say(client, "approve_remediation", which="checkout")

            # The user says yes: the model calls again with the name or with nothing in it.
            done = await say(client, "approve_remediation", which="确认")
            assert "已批准" in done and "checkout" in done
            assert await approvals("checkout") == [(OWNER, True)]
            assert await approvals("payments") == []
            # A decision made ends the question: a second "yes" carries nothing over; it names
            # the one left, which is asked about by name.
            again = await say(client, "approve_remediation", which="确认")
            assert "payments" in again and "吗" in again and "已批准" not in again, again
            # One left waiting, named: a decision on it is made at once.
            refused = await say(client, "refuse_remediation", which="payments")
            assert "已拒绝" in refused
        assert await approvals("payments") == [(OWNER, False)]
        # Each question is kept as an event of the user's, naming one life of one run.
        async with deps.db.session() as session:
            events = await EventRepository(session).list(user=OWNER, kind=CONFIRM_ASKED)
        asked = [e.payload["asked"] for e in reversed(events) if "asked" in e.payload]
        assert [(a["run_key"].split("@")[0], a["approve"]) for a in asked] == [
            (handles["payments"].id, True),
            (handles["payments"].id, False),
            (handles["checkout"].id, True),
            (handles["checkout"].id, True),
            (handles["payments"].id, True),
        ]
        assert {a["rung"] for a in asked} == {1} and "made" in events[0].payload


async def test_more_open_alerts_than_one_list_holds_are_said_as_more(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """After a storm, what_needs_me counted the open runs of one list of 500 and said
    "另有 500 个" for 600; and with no fix waiting the answer began with "另有" ("Plus" in
    English), besides nothing."""
    await add_user(deps, OWNER)
    async with deps.db.session() as session:
        session.add_all(
            run_row(f"remediation/fp-{i}", OWNER, source="webhook", state="applying")
            for i in range(600)
        )
        await session.commit()
    state = AppState(
        settings=deps.settings, db=deps.db, temporal=ts_env.client, channels=deps.channels
    )
    async with voice_client(state, OWNER) as client:
        needs = await say(client, "what_needs_me")
        async with deps.db.session() as session:
            row = await UserRepository(session).get(OWNER)
            assert row is not None
            row.language = "en"
            await session.commit()
        needs_en = await say(client, "what_needs_me")
    # With nothing waiting, the count is no "另有" (besides) after nothing.
    assert needs == "没有等你审批的修复，有 500 多个告警正在自动处理。", needs
    assert needs_en == (
        "No fixes wait for your approval; 500 alerts or more are being handled automatically."
    )


async def test_what_needs_me_says_a_silent_worker_not_that_nothing_waits(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which runs wait is each run's query: with no worker answering, every query failed and
    the run was dropped as if it no longer waited, so a run waiting for the user's approval was
    said as '另有 1 个告警正在自动处理。' — and the approval could not be found by voice."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout") as (state, _):
        pass  # the worker stops here; the run still waits for the approval
    # Each read waits out QUERY_TIMEOUT with no worker: 1 s rather than the product's 5 (two
    # reads); what is said does not depend on how long the query waited.
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
    async with voice_client(state, OWNER) as client:
        assert await say(client, "what_needs_me") == WORKER_SILENT
        assert await say(client, "approve_remediation", which="checkout") == WORKER_SILENT


@workflow.defn(name="GradedRemediationWorkflow", sandboxed=False)
class CannotReplay:
    """The run's code after a deploy that cannot replay its history: every task fails."""

    @workflow.run
    async def run(self, given: Any) -> None:
        raise RuntimeError("this code cannot replay the run")


async def test_a_run_whose_worker_keeps_failing_it_is_left_out_not_the_whole_list(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run waiting for approval whose worker then kept failing its task (code that cannot
    replay it after a deploy): the server refuses its reads, and what_needs_me failed as a
    whole for it, so no other run's approval could be heard or given by voice."""
    # The failing worker holds each retried task for the run's task timeout: 5 s, not a minute.
    monkeypatch.setattr(remediation_service, "TASK_TIMEOUT", timedelta(seconds=5))
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(dev_env, deps, "checkout") as (state, handles):
        pass  # the worker stops here; the run still waits for the approval
    handle = handles["checkout"]
    queue = state.settings.temporal_task_queue
    async with Worker(dev_env.client, task_queue=queue, workflows=[CannotReplay]):
        await handle.signal("anything")  # a workflow task for the new code to fail

        async def refused_by_the_server() -> bool:
            try:
                await handle.query("status", rpc_timeout=timedelta(seconds=1))
            except RPCError as exc:
                return no_answer.task_failing(exc)
            return False

        # From the task's third attempt.
        await eventually(refused_by_the_server, "the server refuses the run's reads")
        view = await state.remediations.get(OWNER, handle.id)
        assert (view.state, view.unanswered) == ("waiting_approval", no_answer.failing_worker())
        async with voice_client(state, OWNER) as client:
            # Not asked for an approval it cannot take, and the list is said, not failed.
            assert await say(client, "what_needs_me") == (
                "没有等你审批的修复，有 1 个告警正在自动处理。"
            )
        # Its page says the worker keeps failing it, not "busy or stopped: reload in a moment".
        address = dev_env.client.service_client.config.target_host
        settings = state.settings.model_copy(update={"temporal_address": address})
        token = await new_token(deps, OWNER)
        async with signed_in(settings, token) as http:
            page = await http.get("/app/remediation", params={"id": handle.id})
        assert page.status_code == 200, page.headers.get("location")
        assert "它的 worker 一直在这次修复上失败" in page.text
        assert "正忙或已停止" not in page.text
        await handle.terminate("the test is over")


async def test_a_yes_approves_the_run_asked_about_not_the_same_alerts_next_run(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        state = AppState(
            settings=settings, db=deps.db, temporal=ts_env.client, channels=deps.channels
        )
        service = RemediationService(ts_env.client, settings, deps.db)
        checkout = alert(url, workload="checkout", settle_seconds=0)
        rid = ""
        for same in (checkout, alert(url, workload="payments", settle_seconds=0)):
            started = await service.start(OWNER, same, "dry_run")
            rid = rid or started.remediation_id
            handle = ts_env.client.get_workflow_handle(
                started.remediation_id, result_type=RemediationStatus
            )
            await state_reaches(ts_env, handle, ("waiting_approval",))
        first = (await service.get(OWNER, rid)).run_key
        looked = RemediationService.seen_status
        race: list[str] = []

        async def get(self: RemediationService, user: str, which: str, **kw: Any) -> Any:
            view = await looked(self, user, which, **kw)
            if race == ["armed"] and which == rid:
                # The voice has read the run asked about; before it sends the "yes", that run
                # is aborted and the same alert's next run waits for approval.
                race[:] = ["done"]
                await service.abort(OWNER, rid, "not now", via="api")
                # Ended, not ending: while the aborted run still sends its report the same alert
                # is refused ("send the alert again in a minute"), and no next run comes.
                aborted = ts_env.client.get_workflow_handle(rid, run_id=first.split("@")[1])
                await aborted.result()
                await service.start(OWNER, checkout, "dry_run")

                async def next_waiting() -> str | None:
                    now = await looked(service, OWNER, rid)
                    waits = now.run_key != first and now.state == "waiting_approval"
                    return now.run_key if waits else None

                race.append(await eventually(next_waiting, "the next run waits"))
            return view

        monkeypatch.setattr(RemediationService, "seen_status", get)
        # The race is staged inside the "yes" call (an abort, a start, the next run waiting):
        # on a loaded machine that outlasted the call's 8 s budget and the stage was cut off.
        monkeypatch.setattr(voice_answer, "CALL_BUDGET", HANG)
        async with voice_client(state, OWNER) as client:
            asked = await say(client, "approve_remediation", which="checkout")
            assert "有 2 个" in asked and "checkout" in asked and "吗" in asked
            race.append("armed")
            heard = await say(client, "approve_remediation", which="确认")
            assert "已批准" not in heard, heard
        assert race[0] == "done"
        now = await looked(service, OWNER, rid)
        assert (now.run_key, now.state, now.attempts) == (race[1], "waiting_approval", [])


async def test_a_question_answered_with_the_verb_it_asked_for_makes_the_decision(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The question ends "确认就再说一次批准": the user said "批准", the model passed it as
    ``which``, and heard "没找到“批准”" with the list again; nothing was approved."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout", "payments", "cart") as (state, handles):
        async with voice_client(state, OWNER) as client:
            assert "吗" in await say(client, "approve_remediation", which="checkout")
            done = await say(client, "approve_remediation", which="批准")
            assert "吗" in await say(client, "refuse_remediation", which="payments")
            refused = await say(client, "refuse_remediation", which="拒绝。")
        assert "已批准" in done and "checkout" in done, done
        assert "已拒绝" in refused and "payments" in refused, refused
        status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
        assert [(a.approver, a.approve) for a in status.approvals] == [(OWNER, True)]


async def test_an_approval_said_again_after_the_run_moved_on_does_not_approve_its_next_rung(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The one fix waiting was approved by voice; the call came again (a model repeating it, a
    relay retrying) once the run had moved on to its next rung, and approved that rung too,
    which nobody had heard of. Now the next rung is named and asked first; a yes makes it."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        state = AppState(
            settings=settings, db=deps.db, temporal=ts_env.client, channels=deps.channels
        )
        service = RemediationService(ts_env.client, settings, deps.db)
        started = await service.start(OWNER, alert(url, settle_seconds=0), "dry_run")
        handle = ts_env.client.get_workflow_handle(
            started.remediation_id, result_type=RemediationStatus
        )
        first = await state_reaches(ts_env, handle, ("waiting_approval",))
        assert first.waiting is not None

        async def next_rung() -> RemediationStatus:
            for _ in range(200):
                now = await ask(handle, "status", result_type=RemediationStatus)
                if now.waiting is not None and now.waiting.rung != first.waiting.rung:
                    return now
                await ts_env.sleep(timedelta(seconds=20))
            raise AssertionError(f"no next rung waits: {now.state}")

        async with voice_client(state, OWNER) as client:
            approved = await say(client, "approve_remediation", which="checkout")
            assert "已批准" in approved and "checkout" in approved
            waits = await next_rung()
            again = await say(client, "approve_remediation", which="checkout")
            now = await ask(handle, "status", result_type=RemediationStatus)
            assert "已批准" not in again and "checkout" in again and "吗" in again, again
            assert [a.rung for a in now.approvals] == [first.waiting.rung]
            # The listener means it: the next rung is approved when said again.
            done = await say(client, "approve_remediation", which="批准")
            assert "已批准" in done, done
        now = await ask(handle, "status", result_type=RemediationStatus)
        assert waits.waiting is not None
        assert [a.rung for a in now.approvals] == [first.waiting.rung, waits.waiting.rung]


async def test_a_yes_to_a_rung_someone_else_decided_meanwhile_does_not_decide_the_next_rung(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Two waited; the voice asked "要批准第一个，checkout …吗？". Meanwhile the other fix was
    refused and checkout's rung approved on the web page, and checkout moved on to its next
    rung; the user's "确认" then approved that next rung (one fix waited, so it was made at
    once), though the question was about the rung already decided."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with stuck_waiting(ts_env, deps, "checkout", "payments") as (
        state,
        service,
        handles,
        first,
    ):
        assert first.waiting is not None
        async with voice_client(state, OWNER) as client:
            asked = await say(client, "approve_remediation", which="checkout")
            assert "有 2 个" in asked and "吗" in asked
            await service.approve(OWNER, handles["payments"].id, False, "not now", via="api")
            await service.approve(OWNER, handles["checkout"].id, True, "on the web page", via="web")
            for _ in range(200):
                now = await ask(handles["checkout"], "status", result_type=RemediationStatus)
                if now.waiting is not None and now.waiting.rung != first.waiting.rung:
                    break
                await ts_env.sleep(timedelta(seconds=20))
            yes = await say(client, "approve_remediation", which="确认")
            assert "已批准" not in yes and "下一步" in yes, yes
        now = await ask(handles["checkout"], "status", result_type=RemediationStatus)
        assert [a.rung for a in now.approvals] == [first.waiting.rung]


@pytest.mark.parametrize(
    ("approve", "on_the_page"), [(True, OWNER), (False, OWNER), (True, "boss")]
)
async def test_an_answer_by_voice_after_one_on_the_page_asks_about_the_next_rung_first(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, approve: bool, on_the_page: str
) -> None:
    """The owner (or an admin) approved checkout's rung on the web page, the run moved on,
    and the owner's "批准 checkout" (or "拒绝") at the speaker decided the next rung at once,
    one nobody had heard of (a refusal handed the run over): the voice knew only its own
    answers."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    await add_user(deps, "boss", role="admin", permission="execute")
    async with stuck_waiting(ts_env, deps, "checkout") as (state, service, handles, first):
        assert first.waiting is not None
        checkout = handles["checkout"]
        await service.approve(on_the_page, checkout.id, True, "on the web page", via="web")
        for _ in range(200):
            now = await ask(checkout, "status", result_type=RemediationStatus)
            if now.waiting is not None and now.waiting.rung != first.waiting.rung:
                break
            await ts_env.sleep(timedelta(seconds=20))
        tool = "approve_remediation" if approve else "refuse_remediation"
        async with voice_client(state, OWNER) as client:
            said = await say(client, tool, which="checkout")
        assert "已批准" not in said and "已拒绝" not in said and "吗" in said, said
        now = await ask(checkout, "status", result_type=RemediationStatus)
        assert [(a.rung, a.approve) for a in now.approvals] == [(first.waiting.rung, True)]
        assert now.state == "waiting_approval"


async def test_a_question_answered_with_yes_and_the_verb_together_makes_the_decision(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """ "要批准…吗？确认就再说一次批准。" answered "好的，批准": the model passed it as ``which``,
    the listener heard "没找到“好的，批准”" with the list again, and nothing was approved."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout", "payments", "cart") as (state, handles):
        async with voice_client(state, OWNER) as client:
            assert "吗" in await say(client, "approve_remediation", which="checkout")
            done = await say(client, "approve_remediation", which="好的，批准")
            assert "吗" in await say(client, "refuse_remediation", which="payments")
            refused = await say(client, "refuse_remediation", which="对 拒绝吧")
        assert "已批准" in done and "checkout" in done, done
        assert "已拒绝" in refused and "payments" in refused, refused
        status = await ask(handles["cart"], "status", result_type=RemediationStatus)
        assert status.state == "waiting_approval" and status.approvals == []


async def test_a_yes_in_the_listeners_own_words_confirms_the_fix_asked_about(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """After "…要批准第一个，checkout…吗？确认就再说一次批准。" the user said "批准那个",
    "同意那个修复", "yes approve it", "可以" or "ok", and heard "没找到“批准那个”。等你审批的
    有：…": only a bare yes or the verb confirmed. A verb with a pointer, or a plain assent,
    is a yes to the question asked; words that say no yes ("what is it", "等一下") approve
    nothing, and a yes with no question pending is never quoted back as a fix's name."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    yeses = {"checkout": "批准那个", "payments": "同意那个修复", "cart": "yes approve it"}
    yeses["search"] = "可以"
    async with waiting(ts_env, deps, *yeses, "orders", "billing") as (state, handles):

        async def approvals(workload: str) -> list[tuple[str, bool]]:
            status = await ask(handles[workload], "status", result_type=RemediationStatus)
            return [(a.approver, a.approve) for a in status.approvals]

        async with voice_client(state, OWNER) as client:
            for workload, yes in yeses.items():
                asked = await say(client, "approve_remediation", which=workload)
                assert workload in asked and asked.endswith("吗？确认就再说一次批准。"), asked
                done = await say(client, "approve_remediation", which=yes)
                assert done.startswith("好的，已批准") and workload in done, (yes, done)
            assert "吗" in await say(client, "approve_remediation", which="orders")
            unsure = await say(client, "approve_remediation", which="what is it")
            held = await say(client, "approve_remediation", which="等一下")
            assert await approvals("orders") == []
            # "等一下" answered the question: a yes after it has none to confirm.
            which = await say(client, "approve_remediation", which="嗯")
            assert "吗" in await say(client, "approve_remediation", which="orders")
            done = await say(client, "approve_remediation", which="ok")
        assert "已批准" not in unsure, unsure
        assert held == "好的，先不批准，什么都没提交。", held
        assert which == (
            "你说的是哪一个？等你审批的有：orders 的错误率、billing 的错误率。请说服务名或第几个。"
        ), which
        assert done == "好的，已批准orders 的错误率修复的重启（第 1 级，演练）。", done
        for workload in (*yeses, "orders"):
            assert await approvals(workload) == [(OWNER, True)], workload
        assert await approvals("billing") == []


async def test_a_question_back_to_the_confirmation_approves_nothing_and_is_asked_again(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """After "…要批准第一个，checkout…吗？确认就再说一次批准。" the user asked back "你确定吗？"
    and heard "好的，已批准checkout…": "确定" was a yes and "吗" a particle. A reply that asks
    back is no yes: the question is asked again, and nothing is approved until a yes."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout", "payments") as (state, handles):
        async with voice_client(state, OWNER) as client:
            asked = await say(client, "approve_remediation", which="checkout")
            assert asked.endswith("吗？确认就再说一次批准。"), asked
            again = []
            for question in ("你确定吗？", "批准吗", "对吗", "可以吗", "嗯？", "approve what?"):
                again.append(await say(client, "approve_remediation", which=question))
            status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
            assert status.approvals == [], again
            done = await say(client, "approve_remediation", which="确定")
        assert all(said == asked for said in again), again
        assert done.startswith("好的，已批准checkout"), done
        status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
        assert [(a.approver, a.approve) for a in status.approvals] == [(OWNER, True)]


async def test_a_no_in_the_listeners_words_refuses_only_the_fix_asked_about_and_when_asked(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """ "不要", "算了", "no don't do it" and "拒绝那个" were heard "没找到“不要”。等你审批的
    有：…". A no to "要批准…吗？" through refuse_remediation is the refusal of the fix asked
    about, asked in turn; a no to "要拒绝…吗？" refuses nothing; a no passed to
    approve_remediation approves nothing and ends the question."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout", "payments", "cart") as (state, handles):

        async def approvals(workload: str) -> list[tuple[str, bool]]:
            status = await ask(handles[workload], "status", result_type=RemediationStatus)
            return [(a.approver, a.approve) for a in status.approvals]

        async with voice_client(state, OWNER) as client:
            assert "吗" in await say(client, "approve_remediation", which="checkout")
            switched = await say(client, "refuse_remediation", which="不要")
            refused = await say(client, "refuse_remediation", which="拒绝那个")
            assert "吗" in await say(client, "refuse_remediation", which="payments")
            kept = await say(client, "refuse_remediation", which="算了")
            which = await say(client, "refuse_remediation", which="no don't do it")
            assert "吗" in await say(client, "approve_remediation", which="cart")
            not_approved = await say(client, "approve_remediation", which="不要")
            after = await say(client, "approve_remediation", which="确认")
        refusals = [await approvals(w) for w in ("checkout", "payments", "cart")]
    assert switched == (
        "有 3 个修复在等你审批。要拒绝第一个，checkout 的错误率修复的重启（第 1 级，演练）吗？"
        "确认就再说一次拒绝。"
    ), switched
    assert refused == "好的，已拒绝checkout 的错误率修复的重启（第 1 级，演练）。", refused
    assert kept == "好的，先不拒绝，什么都没提交。", kept
    assert which.startswith("你说的是哪一个？等你审批的有：") and "“" not in which, which
    assert not_approved == "好的，先不批准，什么都没提交。", not_approved
    assert after.startswith("你说的是哪一个？"), after
    assert refusals == [[(OWNER, False)], [], []], refusals


async def test_the_other_decisions_verb_decides_nothing_and_is_said_as_heard(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The user said "reject the first" and the model called approve_remediation, which
    approved the one dry run waiting: "reject" was no refusal's word, and "the first" its
    place. The other decision's verb, in either language, sends nothing and is said as heard
    ("拒绝第一个" to approve_remediation was "好的，先不批准" as if the user had said wait);
    through its own tool, it decides."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout") as (state, handles):

        async def approvals() -> list[tuple[str, bool]]:
            status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
            return [(a.approver, a.approve) for a in status.approvals]

        async with voice_client(state, OWNER) as client:
            not_approved = [
                await say(client, "approve_remediation", which=said)
                for said in ("reject the first", "拒绝第一个", "reject")
            ]
            not_refused = await say(client, "refuse_remediation", which="批准第一个")
            assert await approvals() == [], (not_approved, not_refused)
            refused = await say(client, "refuse_remediation", which="reject the first")
        assert await approvals() == [(OWNER, False)], refused
    assert not_approved == ["我听到的是拒绝，不是批准，什么都没提交。"] * 3, not_approved
    assert not_refused == "我听到的是批准，不是拒绝，什么都没提交。", not_refused
    assert refused == "好的，已拒绝checkout 的错误率修复的重启（第 1 级，演练）。", refused


async def test_the_one_fix_waiting_named_by_nothing_is_asked_about_by_name_not_which_one(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """With one fix waiting, "批准" or "那个修复" was answered "你说的是哪一个？等你审批的有：
    checkout 的错误率。请说服务名或第几个。": a list of one. That one is asked about by name (a dry
    run said so), and made when confirmed."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        async with voice_client(state, OWNER) as client:
            asked = await say(client, "approve_remediation", which="那个修复")
            status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
            assert status.approvals == []
            done = await say(client, "approve_remediation", which="批准")
    assert asked == (
        "要批准checkout 的错误率修复的重启（第 1 级，演练）吗？确认就再说一次批准。"
    ), asked
    assert done == "好的，已批准checkout 的错误率修复的重启（第 1 级，演练）。", done


@pytest.mark.parametrize(
    ("tool", "said"),
    [
        ("approve_remediation", "批准 checkout 吗？"),
        ("approve_remediation", "批准第一个吗"),
        ("refuse_remediation", "拒绝 checkout 吗？"),
    ],
)
async def test_a_question_naming_the_one_fix_waiting_decides_nothing(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tool: str, said: str
) -> None:
    """With one dry-run fix waiting, a named one is decided at once: "批准 checkout 吗？"
    (asking) approved it. A question back is asked, whatever it names."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout") as (state, handles):
        async with voice_client(state, OWNER) as client:
            asked = await say(client, tool, which=said)
        status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
    assert status.approvals == [], asked
    assert asked.endswith("吗？确认就再说一次" + ("批准。" if "approve" in tool else "拒绝。")), (
        asked
    )


async def test_a_confirmed_approval_is_of_the_rung_read_not_one_reached_while_answering(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "确认" read checkout's rung; before it was sent, that rung was approved on the web
    page and the run moved on: the voice's approval, sent without the rung it read, approved
    the next rung, which nobody had heard of."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with stuck_waiting(ts_env, deps, "checkout", "payments") as (
        state,
        service,
        handles,
        first,
    ):
        assert first.waiting is not None
        looked = RemediationService.seen_status
        race: list[str] = []

        async def get(self: RemediationService, user: str, which: str, **kw: Any) -> Any:
            view = await looked(self, user, which, **kw)
            if race and race[0] == "armed" and which == handles["checkout"].id:
                race.append("read")  # the list of those waiting, then the run decided on
            if race == ["armed", "read", "read"]:
                race[:] = ["done"]  # read; now decided on the web page, and the run moves on
                await service.approve(OWNER, handles["payments"].id, False, "not now", via="api")
                await service.approve(OWNER, which, True, "on the web page", via="web")
                for _ in range(200):
                    now = await ask(handles["checkout"], "status", result_type=RemediationStatus)
                    if now.waiting is not None and now.waiting.rung != first.waiting.rung:
                        break
                    await ts_env.sleep(timedelta(seconds=20))
            return view

        monkeypatch.setattr(RemediationService, "seen_status", get)
        monkeypatch.setattr(voice_answer, "CALL_BUDGET", HANG)
        async with voice_client(state, OWNER) as client:
            asked = await say(client, "approve_remediation", which="checkout")
            assert "有 2 个" in asked and "吗" in asked
            race.append("armed")
            # The same answer as the web page's (the same approver, the same rung): made once.
            await say(client, "approve_remediation", which="确认")
        assert race == ["done"]
        now = await ask(handles["checkout"], "status", result_type=RemediationStatus)
        assert [a.rung for a in now.approvals] == [first.waiting.rung]


async def checkout_waiting(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    stack: AsyncExitStack,
) -> tuple[AppState, Any, WorkflowHandle[Any, RemediationStatus], Any]:
    """Checkout's run waiting for the owner's approval and listed so: the voice's state, the
    run's worker, its handle and its status then."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    _, url = await stack.enter_async_context(error_rate(healthy_from=1))
    worker = await stack.enter_async_context(running_worker(dev_env.client, deps))
    settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
    state = AppState(settings=settings, db=deps.db, temporal=dev_env.client, channels=deps.channels)
    # The dev server is the session's: a workload of this test's own.
    checkout = alert(url, namespace=unique("prod"))
    rid = (await state.remediations.start(OWNER, checkout, "dry_run")).remediation_id
    handle = dev_env.client.get_workflow_handle(rid, result_type=RemediationStatus)
    waits = await state_reaches(
        dev_env, handle, ("waiting_approval",), step=timedelta(milliseconds=100)
    )
    # The server's list shows it waiting (what the voice's list of those waiting reads).
    shown = f'WorkflowId = "{rid}" AND {temporal.STATE.name} = "waiting_approval"'

    async def listed() -> list[Any]:
        return [e async for e in dev_env.client.list_workflows(shown)]

    await eventually(listed, "the run listed as waiting")
    return state, worker, handle, waits


def before_the_decisions_read(
    monkeypatch: pytest.MonkeyPatch, rid: str, meanwhile: Any
) -> list[Any]:
    """``meanwhile(read)`` runs as the voice reads the run a second time (its decision's read,
    after the list's), ``read`` being that read; the views the voice got, in order."""
    looked = RemediationService.seen_status
    views: list[Any] = []
    meanwhile_runs: list[bool] = []

    async def get(self: RemediationService, user: str, which: str, **kw: Any) -> Any:
        if meanwhile_runs:  # what ``meanwhile`` does reads too (another door's approval)
            return await looked(self, user, which, **kw)
        if which != rid or len(views) != 1:
            view = await looked(self, user, which, **kw)
        else:
            meanwhile_runs.append(True)
            try:
                view = await meanwhile(lambda: looked(self, user, which, **kw))
            finally:
                meanwhile_runs.clear()
        views.append(view)
        return view

    monkeypatch.setattr(RemediationService, "seen_status", get)
    monkeypatch.setattr(voice_answer, "CALL_BUDGET", HANG)
    return views


async def test_an_approval_read_from_a_run_that_did_not_answer_sends_nothing_and_says_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list read checkout waiting; the decision's read of it got no answer (its worker had
    stopped), so the approval was sent with no rung, and once a worker was back the run
    approved whichever rung waited then: one the speaker had not heard of. Now the voice says
    the run did not answer, to try again, and sends and records nothing."""
    async with AsyncExitStack() as stack:
        state, worker, handle, waits = await checkout_waiting(dev_env, deps, stack)

        async def stopped(read: Any) -> Any:  # the run's worker has stopped, back right after
            await worker.shutdown()
            # The decision's read waits out QUERY_TIMEOUT with no worker: 1 s, not the
            # product's 5 (the reads before it, of a live worker, keep the product's).
            monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
            view = await read()
            await stack.enter_async_context(
                build_worker(dev_env.client, deps, task_queue=worker.task_queue)
            )
            return view

        views = before_the_decisions_read(monkeypatch, handle.id, stopped)
        async with deps.db.session() as session:
            before = await AuditRepository(session).list(subject=waits.run_key, limit=1000)
        async with voice_client(state, OWNER) as client:
            said = await say(client, "approve_remediation", which="checkout")
        assert [v.unanswered for v in views] == ["", no_answer.silent_worker()]
        assert "没有响应" in said and "稍后再试" in said and "已批准" not in said, said
        async with deps.db.session() as session:
            after = await AuditRepository(session).list(subject=waits.run_key, limit=1000)
            notes = await EventRepository(session).list(user=OWNER, kind=CONFIRM_ASKED)
        assert [r.id for r in after] == [r.id for r in before] and notes == []
        status = await ask(handle, "status", result_type=RemediationStatus)
        assert status.state == "waiting_approval" and status.approvals == []
        # The same rung waits (its shown deadline was once 12 ms later after the other worker
        # took the run over; the approval's timer is the server's).
        assert status.waiting is not None and waits.waiting is not None
        assert (status.waiting.what, status.waiting.rung) == ("approval", waits.waiting.rung)


async def test_an_approval_read_from_a_run_decided_elsewhere_meanwhile_sends_nothing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list read checkout waiting; by the decision's read its rung had been decided
    through another door, and the voice sent its approval with no rung: a next rung waiting
    by the time it landed would be approved, though nobody had heard of it. Now the voice says
    the fix waits no more, and sends nothing."""
    async with AsyncExitStack() as stack:
        state, _, handle, waits = await checkout_waiting(dev_env, deps, stack)

        async def decided(read: Any) -> Any:
            await state.remediations.approve(
                OWNER, handle.id, False, "from the web page", via="web"
            )
            return await read()

        views = before_the_decisions_read(monkeypatch, handle.id, decided)
        approve, sent = RemediationService.approve, []

        async def approving(self: RemediationService, *args: Any, **kw: Any) -> Any:
            sent.append(kw)  # the web page's and any other
            return await approve(self, *args, **kw)

        monkeypatch.setattr(RemediationService, "approve", approving)
        async with voice_client(state, OWNER) as client:
            said = await say(client, "approve_remediation", which="checkout")
        assert [v.waiting for v in views] == [waits.waiting, None], said
        assert "不在等你审批" in said and "已批准" not in said, said
        assert sent == [{"via": "web"}]  # the web page's decision only: the voice sent none
        status = await ask(handle, "status", result_type=RemediationStatus)
        assert [(a.rung, a.approve) for a in status.approvals] == [(waits.waiting.rung, False)]


async def test_an_approval_sent_but_not_confirmed_in_time_is_said_so_and_its_next_rung_asked(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval reached the run (a busy worker applied it), but its answer came after the
    call's budget: the speaker heard "the system is slow" and nothing was noted, so the next
    "approve" approved the run's next rung at once, which nobody had heard of. Now the
    speaker hears it is not confirmed yet, and the next rung is asked first."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    approve = RemediationService.approve

    async def applied_answered_late(*args: Any, **kwargs: Any) -> Any:
        await asyncio.shield(approve(*args, **kwargs))  # applied, whatever the call's budget
        await asyncio.Event().wait()  # its answer does not come within the call

    async with stuck_waiting(ts_env, deps, "checkout") as (state, _, handles, first):
        handle = handles["checkout"]
        assert first.waiting is not None
        async with voice_client(state, OWNER) as client:
            with monkeypatch.context() as patched:
                # The call ends on its budget, the approval applied; 12 s: more than the reads
                # before the approval take on a busy machine.
                patched.setattr(voice_answer, "CALL_BUDGET", 12.0)
                patched.setattr(RemediationService, "approve", applied_answered_late)
                sent = await say(client, "approve_remediation", which="checkout")

            async def next_rung() -> RemediationStatus | None:
                now = await ask(handle, "status", result_type=RemediationStatus)
                moved = now.waiting is not None and now.waiting.rung != first.waiting.rung
                if not moved:
                    await ts_env.sleep(timedelta(seconds=20))
                return now if moved else None

            await eventually(next_rung, "the run's next rung waits")
            again = await say(client, "approve_remediation", which="checkout")
        now = await ask(handle, "status", result_type=RemediationStatus)
    assert "还没得到确认" in sent and "checkout" in sent, sent
    assert "已批准" not in again and "吗" in again, again
    assert [a.rung for a in now.approvals] == [first.waiting.rung]
