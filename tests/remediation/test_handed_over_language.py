"""A hand-over's reason reaches a Chinese reader in Chinese, in its push and on the page, where
the run built it: a change or checkpoint the cluster refused, a workload stopped on purpose, an
isolation an earlier run left, a gate closed too long, an approval not given in time. They were
English sentences inside the Chinese frame ("已停止：rung 1 (restart) could not be applied …");
the English stays as it was (the audit, MCP and the record keep it)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.remediation.ladder import ISOLATION_LABEL, Rung
from ambient.remediation.outcomes import a_while, in_chinese, not_approved
from ambient.remediation.runs import RemediationStatus
from ambient.storage.repositories import InboxRepository
from api.i18n import Words
from api.routers.page_words import in_words
from tests.conftest import running_worker
from tests.remediation.support import add_user, alert, error_rate, remediation_settings
from tests.remediation.test_cluster import CLUSTER, V1, _kubeconfig, cluster
from tests.remediation.test_cluster_edges import _run
from tests.remediation.test_workflow import USER, start
from tests.standins.kube_api import KubeApi
from tests.support.servers import serve

__all__ = ["cluster"]  # the fixture, used by name


async def said_in_chinese(deps: WorkerDeps, status: RemediationStatus) -> tuple[str, str]:
    """The run's reason as its hand-over push said it to USER, and as a Chinese page says it."""
    assert status.state == "handed_over", status.outcome
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    (pushed,) = [m for m in inbox if m.title.startswith("需要人工处理")]
    reason = pushed.body.split("已停止：", 1)[1].split("。告警：", 1)[0]
    assert status.outcome_said is not None, status
    return reason, in_words(status.outcome_said.refusal(), Words(Language.ZH))


async def test_a_change_the_cluster_refuses_is_handed_over_in_chinese(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    api.forbidden = {"patch deployments"}
    status = await _run(ts_env, deps, path, healthy_from=None, language=Language.ZH)

    assert status.outcome.startswith("rung 1 (restart) could not be applied (rung 1 on ")
    cause = status.outcome.split(" could not be applied (", 1)[1][:-1]
    pushed, page = await said_in_chinese(deps, status)
    assert pushed == page == f"第 1 级执行失败（{cause}）", (pushed, page)


async def test_a_checkpoint_the_cluster_refuses_is_handed_over_in_chinese(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    api.forbidden = {"deployments"}
    status = await _run(ts_env, deps, path, healthy_from=None, language=Language.ZH)

    lead = "rung 1 (restart) was not applied: its checkpoint could not be read ("
    assert status.outcome.startswith(lead), status.outcome
    cause = status.outcome.removeprefix(lead)[:-1]
    pushed, page = await said_in_chinese(deps, status)
    assert pushed == page == f"第 1 级未执行：读取检查点失败（{cause}）", (pushed, page)


async def test_a_workload_stopped_on_purpose_is_handed_over_in_chinese(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """The step's own reason (the executor's) stays as written, the run's words around it are
    Chinese."""
    api, path = cluster
    api.deployments[("prod", "checkout")]["spec"]["replicas"] = 0
    api._reconcile("prod", "checkout")
    status = await _run(ts_env, deps, path, healthy_from=None, language=Language.ZH)

    stopped = status.attempts[0].skipped_reason
    assert status.outcome.startswith(f"rung 1 (restart) was skipped: {stopped}; no rung above")
    pushed, page = await said_in_chinese(deps, status)
    assert (
        pushed
        == page
        == (
            f"第 1 级已跳过：{stopped}；不再尝试更高的级别：有意缩到 0 个副本的工作负载并没有故障，"
            "回滚或隔离它会推翻这个决定"
        )
    ), (pushed, page)


async def test_an_alert_cleared_behind_both_isolations_of_an_earlier_run_is_said_in_both(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """An earlier run left the Service's selector and a deny-all NetworkPolicy: each is named,
    and both undone first, in English as before and in Chinese."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    api.add_service("prod", "checkout", {"app": "checkout", ISOLATION_LABEL: "0f1e2d3c4b5a6978"})
    name = "ambient-isolate-remediation-0123456789abcdef-0a1b2c3d4e"
    api.add_deny_policy("prod", name, "checkout", {ISOLATION_LABEL: "0f1e2d3c4b5a6978"})
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        status = await _run(ts_env, deps, path, healthy_from=1, language=Language.ZH)

    assert status.outcome == (
        "the alert cleared at rung 1 (restart) with the service isolated since before this run "
        f"(the selector of Service checkout carries {ISOLATION_LABEL}; the deny-all "
        f"NetworkPolicy {name} in prod selects its pods): no traffic reaches it, which is no "
        "fix; restore the selector and delete the NetworkPolicy first"
    ), status.outcome
    pushed, page = await said_in_chinese(deps, status)
    assert (
        pushed
        == page
        == (
            "告警在第 1 级后恢复，但服务在这次修复之前就已被隔离（"
            "Service checkout 的选择器带有隔离标签 "
            f"{ISOLATION_LABEL}；prod 中拒绝所有流量的 NetworkPolicy {name} 选中了它的 Pod）："
            "没有流量到达它，这不算修复；请先恢复选择器，并删除该 NetworkPolicy"
        )
    ), (pushed, page)


async def test_a_gate_closed_too_long_is_handed_over_with_its_reason_in_chinese(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """The rate limit's reason (the gate's) was English inside "现在不能改动：…"."""
    _, path = cluster  # the restart takes the hour's one change: the scale out's gate closes
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        kubeconfig=path,
        remediation_rate_limit_per_hour=1,
        remediation_max_gate_wait_minutes=0,
    )
    await add_user(deps, USER, permission="execute", language=Language.ZH)
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        subject = alert(url, cluster_id=CLUSTER)
        status = await (await start(ts_env, worker.task_queue, subject, mode="execute")).result()

    assert status.outcome == (
        "cannot change now: cluster rate limit: 1 changes in the last hour (max 1)"
    ), status.outcome
    pushed, page = await said_in_chinese(deps, status)
    assert (
        pushed == page == ("现在不能改动：集群变更频率限制：过去一小时已有 1 次变更（上限 1 次）")
    ), (pushed, page)


def test_an_approval_not_given_in_time_says_its_wait_as_people_do() -> None:
    """It said "within 0:30:00" (a timedelta's str), in both languages."""
    said = {
        timedelta(minutes=30): ("30 min", "30 分钟"),
        timedelta(hours=2): ("2 h", "2 小时"),
        timedelta(minutes=90): ("1 h 30 min", "1 小时 30 分钟"),
        timedelta(seconds=45): ("45 s", "45 秒"),
    }
    zh = Words(Language.ZH)
    for length, (english, chinese) in said.items():
        assert (str(a_while(length)), in_chinese(a_while(length))) == (english, chinese)
        assert in_words(a_while(length), zh) == chinese
    late = not_approved(Rung.SCALE_OUT, timedelta(minutes=30))
    assert str(late) == "nobody approved rung 2 within 30 min"
    assert in_chinese(late) == in_words(late, zh) == "第 2 级在 30 分钟内无人批准"
