"""A Chinese user's remediation page: the run in Chinese words, and an answer from a page that no
longer matches the run refused in Chinese."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from urllib.parse import unquote

import httpx
import pytest_asyncio
from babel.messages.pofile import read_po
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserSettings
from ambient.refusals import Refusal
from ambient.remediation.attempt_words import outcome_words, skipped_words
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.ladder import (
    RUNG_ACTIONS,
    RolloutHealth,
    Rung,
    StepRequest,
    StepResult,
    WorkloadRef,
)
from ambient.remediation.outcomes import A_DRY_RUN, CANCELLED
from ambient.remediation.runs import FINAL_STATES
from ambient.remediation.views import already_finished
from ambient.storage.users import UserRepository
from api.i18n import Words, catalog_path, translations
from api.routers.ops_pages import RUNG_NAMES, attempt_words
from api.routers.page_words import in_words
from tests.conftest import unique
from tests.remediation.support import (
    RunKeys,
    add_user,
    alert,
    new_token,
    remediation_settings,
    remediations_on_dev,
)
from tests.support.pages import signed_in
from tests.support.waits import eventually


def said(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    return unquote(answer.headers["location"].partition("msg=")[2])


@pytest_asyncio.fixture
async def approved_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A Chinese member's pages, and a dry run of theirs approved on its page and finished."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("fang")
    await add_user(deps, name, permission="dry_run")
    async with deps.db.session() as session:
        users = UserRepository(session)
        user = await users.get(name)
        assert user is not None
        await users.update(user, UserSettings(language=Language.ZH))
        token = await users.rotate_token(user)
        await session.commit()
    async with remediations_on_dev(dev_env, deps, healthy_from=2) as (
        metric_url,
        settings,
        remediations,
    ):
        started = await remediations.start(
            name, alert(metric_url, workload=name, settle_seconds=0), mode="dry_run"
        )
        rid = started.remediation_id

        async def in_state(*states: str) -> bool:
            return (await remediations.get(name, rid)).state in states

        await eventually(lambda: in_state("waiting_approval"), "the run waits for approval")
        async with signed_in(settings, token, f"/app/remediation?id={rid}") as http:
            form = {"remediation_id": rid, "action": "approve"}
            # A worker too busy to read the run in time (a loaded test host; its deadlock
            # detector failing the run's task over and over) has the page say so, and nothing
            # was answered: the member clicks again.
            busy = (
                "这次修复没有及时应答（它的 worker 正忙或已停止），请稍后再试。",
                "它的 worker 一直在这一步上失败（Temporal：Workflow Task in failed state）；"
                "原因见 worker 的日志。如果一直这样，需要运维人员处理。",
            )

            async def approve() -> str | None:
                answer = said(await http.post("/app/remediation/action", data=form))
                return None if answer in busy else answer

            approved = await eventually(approve, "the page approves the run")
            assert approved == "已批准第 1 级（重启，演练）", approved
            await eventually(lambda: in_state(*FINAL_STATES), "the approved run ends")
            yield http, rid


async def test_a_second_approve_and_an_abort_of_a_finished_run_are_said_in_chinese(
    approved_run: tuple[httpx.AsyncClient, str],
) -> None:
    http, rid = approved_run
    # The same button again (a double click, a second tab): the answer taken is said again.
    form = {"remediation_id": rid, "action": "approve"}
    again = said(await http.post("/app/remediation/action", data=form))
    assert again == "已批准第 1 级（重启，演练）"
    # Another answer now: the step is answered, said in Chinese.
    form["action"] = "refuse"
    refused = said(await http.post("/app/remediation/action", data=form))
    assert refused == f"{rid} 现在没有在等待批准：这一步已经答复过，或这次处置已经结束"
    form["action"] = "abort"
    aborted = said(await http.post("/app/remediation/action", data=form))
    assert aborted.startswith(f"{rid} 已经结束（状态 "), aborted


async def test_a_chinese_users_remediation_page_names_the_plan_and_attempt_modes_in_chinese(
    approved_run: tuple[httpx.AsyncClient, str],
) -> None:
    http, rid = approved_run
    page = (await http.get("/app/remediation", params={"id": rid})).text
    plan = re.findall(r"<li>(\w+) — ([^<]*?)(?: （需要审批）)?</li>", page)
    # The rungs by their names in Chinese, not their ids (RESTART, SCALE_OUT...).
    assert plan == [
        ("重启", "滚动重启（新的 Pod，同一个版本）"),
        ("扩容", "扩容（绝对副本数，受爆炸半径上限约束）"),
        ("回滚", "回滚到开始时所运行版本的上一个版本"),
        ("隔离", "隔离服务（Service 选择器不再匹配任何 Pod）"),
    ]
    attempts = re.findall(r"<b>(\d+)\. (\w+)</b> (\S+)", page)
    assert attempts == [("1", "重启", "演练")]
    # How it ended, in Chinese too (it said "resolved at rung 1 (restart)"), as a dry run that
    # changed nothing (it said 已在第 1 级解决, as if its restart had fixed it).
    ended = re.findall(r"<th>结果</th><td>([^<]*)</td>", page)
    assert ended == ["演练，未做任何改动：告警在第 1 级后恢复"]


async def test_a_chinese_readers_remediation_page_says_its_attempts_in_chinese(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The attempts of a zh reader's run read "dry run: would restart … (restartedAt
    2026-…+00:00)" and "metric 0.5 is not healthy (below 0.05); rollout not observed (…)": the
    step's and the check's English as the executor wrote them, with a time in UTC."""
    remediation_settings(deps, remediation_approval_from_rung=2)
    name = unique("buzhou")
    await add_user(deps, name, permission="dry_run", language=Language.ZH)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        sent = alert(metric_url, workload=name, settle_seconds=0)
        rid = (await remediations.start(name, sent, mode="dry_run")).remediation_id
        runs = RunKeys(remediations, name, rid)
        await eventually(runs.waiting, "rung 2 waits for approval")
        token = await new_token(deps, name)
        async with signed_in(settings, token) as http:
            shown = await http.get("/app/remediation", params={"id": rid})
        await remediations.abort(name, rid, "done looking", via="web")
    assert shown.status_code == 200
    attempts = shown.text.partition('<ul class="cards">')[2].partition("</ul>")[0]
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", attempts)).split())
    english = re.findall(r"\b(?:dry run|would|restart|replicas|metric|healthy|rollout)\b", text)
    assert not english, f"English on a Chinese page: {text}"
    assert "+00:00" not in text, text


# What the cluster's plan of each rung writes on a dry run (kube_plans, kube_reads): a paused
# Deployment's restart and rollback, one an autoscaler scales, the isolation that leaves a
# shared Service alone, the full rollback's notes; and the rollout's verdict.
CLUSTER_SAID = {
    Rung.RESTART: StepResult(
        applied=False,
        detail="deployment prod/checkout is paused (spec.paused): nothing rolls out",
        skipped_reason="deployment prod/checkout is paused: a restart would not roll out until "
        "someone resumes it (kubectl rollout resume)",
    ),
    Rung.SCALE_OUT: StepResult(
        applied=False,
        detail="deployment prod/checkout runs 2 replicas under HorizontalPodAutoscaler "
        "checkout (1-5 replicas)",
        skipped_reason="deployment prod/checkout is scaled by HorizontalPodAutoscaler checkout "
        "(1-5 replicas): its controller would undo a count set on the Deployment; raise the "
        "autoscaler's bounds instead",
    ),
    Rung.ROLLBACK: StepResult(
        applied=False,
        detail="deployment prod/checkout is paused (spec.paused): nothing rolls out",
        skipped_reason="deployment prod/checkout is paused: a rollback would not roll out "
        "until someone resumes it (kubectl rollout resume)",
    ),
    Rung.ISOLATE: StepResult(
        applied=False,
        detail="dry run: would isolate: Services checkout, checkout-canary in prod select no "
        "pod (ambient-ops/isolated=3f2a); Service shared also selects the pods of deployment "
        "prod/cart: left as it is",
    ),
    Rung.FULL_ROLLBACK: StepResult(
        applied=False,
        detail="dry run: would full rollback: deployment prod/checkout to its template at the "
        "first checkpoint (release is not a Deployment revision); replicas back to 4; "
        "ConfigMap app-config data back to the first checkpoint; Service checkout selector "
        "back to {'app': 'checkout'}; NetworkPolicy ambient-isolate-checkout-3f2a removed",
    ),
}


class ClusterPlans(DryRunExecutor):
    """A dry run's answers as the cluster's plan writes them, its rollout half available."""

    async def apply(self, step: StepRequest) -> StepResult:
        return CLUSTER_SAID[step.rung]

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth:
        detail = "1 of 2 updated replicas are available"
        return RolloutHealth(available=False, ready_replicas=1, desired=2, detail=detail)


async def test_a_chinese_readers_page_says_the_clusters_isolation_rollback_and_verdict(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A dry run on a cluster (a paused Deployment, an autoscaled one, the isolation, the full
    rollback, the rollout's verdict) showed its attempts in English on a zh page: each is
    said in Chinese now, the objects' names as written."""
    remediation_settings(deps, remediation_approval_from_rung=0)
    deps.executors = {"dry_run": ClusterPlans(), "kubernetes": DryRunExecutor()}
    name = unique("jiqun")
    await add_user(deps, name, permission="dry_run", language=Language.ZH)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        # Scored for all five rungs (the full rollback too).
        labels = {"tier": "critical", "user_facing": "true"}
        sent = alert(metric_url, workload=name, settle_seconds=0, labels=labels)
        rid = (await remediations.start(name, sent, mode="dry_run")).remediation_id

        async def ended() -> bool:
            return (await remediations.get(name, rid)).state in FINAL_STATES

        await eventually(ended, "the dry run climbs the ladder and hands over")
        token = await new_token(deps, name)
        async with signed_in(settings, token) as http:
            shown = await http.get("/app/remediation", params={"id": rid})
    assert shown.status_code == 200
    attempts = shown.text.partition('<ul class="cards">')[2].partition("</ul>")[0]
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", attempts)).split())
    for said in (
        "Deployment prod/checkout 已暂停（spec.paused）：什么都不会发布",
        "在有人恢复它（kubectl rollout resume）之前，重启不会发布",
        "在有人恢复它（kubectl rollout resume）之前，回滚不会发布",
        "请改为调高自动扩缩的上下限",
        "隔离：prod 中的 Service checkout, checkout-canary 不再选中任何 Pod",
        "Service shared 也选中了 deployment prod/cart 的 Pod：保持原样",
        "全面回滚：Deployment prod/checkout 回到第一个检查点时的模板（所运行的版本不是 "
        "Deployment 的一个版本）；副本数回到 4；ConfigMap app-config 的数据回到第一个检查点时；"
        "Service checkout 的选择器回到 {'app': 'checkout'}；NetworkPolicy "
        "ambient-isolate-checkout-3f2a 已删除",
        "发布不可用：2 个已更新的副本中有 1 个可用",
    ):
        assert said in text, text
    # The objects' names stay as written (spec.paused, an autoscaler's "(1-5 replicas)").
    english = re.findall(
        r"\b(?:dry run|would|selects?|rollback|rolled|removed|back to|available|someone|"
        r"template|revision|isolate: Services)\b",
        text,
    )
    assert not english, f"English on a Chinese page: {text}"


def test_an_attempts_steps_and_checks_are_said_in_chinese_and_unchanged_in_english() -> None:
    """The executor's and the check's English, as records of any release hold it: a Chinese
    page says the restart, scale and rollback steps and the verdicts in Chinese, an English
    page as written; both give the times in the reader's zone."""
    zh, en = Words(Language.ZH), Words(Language.EN)
    stored = {
        "dry run: would scale deployment/prod/web from 2 to 4 replicas; from the alert (no "
        "cluster access configured)": "演练：将把 Deployment prod/web 从 2 个副本扩到 4 个；"
        "依据告警推算（未配置集群访问）",
        "roll back deployment prod/web to revision 3 (nginx:1.25, app:7)": (
            "把 Deployment prod/web 回滚到版本 3（nginx:1.25, app:7）"
        ),
        "restart deployment prod/web (restartedAt 2026-03-01T08:00:00+00:00); already done: "
        "deployment prod/web": "重启 Deployment prod/web（restartedAt 2026-03-01T16:00:00+08:00）"
        "；已完成：deployment prod/web",
        "metric 0.01 is healthy (at or below 0.05, above 0); rollout not observed (no cluster "
        "access configured)": "指标 0.01 正常（不高于 0.05，高于 0）；"
        "未观察到发布状态（未配置集群访问）",
        # A Deployment at 0 replicas, the isolation by a NetworkPolicy, from the alert alone,
        # the rollout's verdicts.
        "dry run: deployment prod/web ran no pod at the first checkpoint; from it (no cluster "
        "access configured)": "演练：Deployment prod/web 在第一个检查点时没有运行任何 Pod；"
        "依据该检查点推算（未配置集群访问）",
        "dry run: would isolate: no Service selects only web; deny-all NetworkPolicy "
        "ambient-isolate-web-1a": "演练：将隔离：没有只选中 web 的 Service；"
        "用拒绝所有流量的 NetworkPolicy ambient-isolate-web-1a",
        "dry run: would isolate deployment/prod/web: add {'ambient-ops/isolated': '1a'} to the "
        "selector of its Services; from the alert (no cluster access configured)": "演练：将隔离 "
        "Deployment prod/web：在它的 Service 的选择器中加入 {'ambient-ops/isolated': '1a'}；"
        "依据告警推算（未配置集群访问）",
        "dry run: would full rollback of deployment/prod/web: nothing was read, so only the "
        "intent is recorded; from the alert (no cluster access configured)": "演练：将全面回滚 "
        "Deployment prod/web：什么都没读到，只记下了意图；依据告警推算（未配置集群访问）",
        "full rollback: deployment prod/web is paused: its release is not put back until it is "
        "resumed; replicas left to HorizontalPodAutoscaler web (1-5 replicas); already done: "
        "configmap prod/app": "全面回滚：Deployment prod/web 已暂停：恢复（resume）之前不会放回"
        "它的版本；副本数交给 HorizontalPodAutoscaler web (1-5 replicas)；"
        "已完成：configmap prod/app",
        "metric 0.5 is not healthy (below 0.05); rollout not available: deployment prod/web is "
        "scaled to 0 replicas: no pod serves": "指标 0.5 不正常（正常应为低于 0.05）；发布不可用："
        "Deployment prod/web 已缩到 0 个副本：没有 Pod 提供服务",
        "rollout available: prod/web successfully rolled out (2/2 available)": (
            "发布可用：prod/web 已成功发布（2/2 可用）"
        ),
        # A paused Deployment: judged by its available replicas; its scale out not made.
        "rollout available: deployment prod/web is paused mid-rollout (2 of 5 updated): 5/5 "
        "available": "发布可用：Deployment prod/web 在发布中途暂停（5 个中已更新 2 个）：5/5 可用",
        "rollout not available: deployment prod/web is paused: 3 of 5 available": (
            "发布不可用：Deployment prod/web 已暂停：5 个副本中有 3 个可用"
        ),
        "prod/web is paused (spec.paused): not scaled": "prod/web 已暂停（spec.paused）：未扩容",
    }
    for english, chinese in stored.items():
        assert attempt_words(english, zh, "Asia/Shanghai") == chinese
        assert attempt_words(english, en, "UTC") == english
    # The reasons a step was skipped: a Deployment at 0 replicas, its autoscaler's, paused.
    skipped = {
        "deployment prod/web is scaled to 0 replicas: someone stopped it, and the scale out "
        "does not start it again (scale it up by hand if it should run)": "Deployment prod/web "
        "已缩到 0 个副本：有人停了它，扩容不会让它重新运行（如果它应该运行，请手动扩容）",
        "deployment prod/web is scaled to 0 replicas by HorizontalPodAutoscaler web of "
        "ScaledObject web (0-5 replicas) (or what drives it, such as KEDA), and a restart would "
        "start no pod of it (change the autoscaler's bounds or triggers if it should run)": (
            "Deployment prod/web 被 HorizontalPodAutoscaler web of ScaledObject web (0-5 "
            "replicas)（或驱动它的组件，如 KEDA）缩到 0 个副本，重启也不会启动它的任何 Pod"
            "（如果它应该运行，请修改自动扩缩的上下限或触发条件）"
        ),
        "prod/web is paused: someone holds its rollout, and the ladder does not scale it while "
        "it is held (kubectl rollout resume)": "prod/web 已暂停：有人暂停了它的发布，暂停期间修复"
        "阶梯不会为它扩容（kubectl rollout resume）",
    }
    for english, chinese in skipped.items():
        assert in_words(skipped_words(english), zh) == chinese
        assert in_words(skipped_words(english), en) == english
    # Words no msgid fits stay as written.
    assert attempt_words("isolate: the mesh's policy", zh, None) == "isolate: the mesh's policy"


def test_a_runs_end_and_a_failed_check_are_said_in_chinese_and_unchanged_in_english() -> None:
    """A run cancelled in Temporal, refused by a revoked permission (a dry run's too), a check
    that failed and a metric whose newest datapoint is from before the change stayed English on
    a Chinese reader's page."""
    zh, en = Words(Language.ZH), Words(Language.EN)
    ends: dict[str | Refusal, str] = {
        CANCELLED: (
            "在 Temporal 中取消（Request Cancellation），不是通过 ambient-ops：发起者未经核实"
        ),
        "refused: rollback_permission is 'none': an admin must grant dry_run or execute": (
            "被拒绝：rollback_permission 为 'none'：需要管理员授予 dry_run 或 execute"
        ),
        "refused: no user 'fang'": "被拒绝：没有用户 'fang'",
        Refusal(A_DRY_RUN, reason="refused: no user 'fang'"): (
            "演练，未做任何改动：被拒绝：没有用户 'fang'"
        ),
    }
    for english, chinese in ends.items():
        assert in_words(outcome_words(english), zh) == chinese
        assert in_words(outcome_words(english), en) == str(english)
    checks = {
        "verification failed: no datapoint after the change: the newest (2026-12-05 01:00:00 "
        "UTC) is from before it": "验证失败：变更之后没有数据点：最新的（2026-12-05 01:00:00 UTC）"
        "在变更之前",
        "metric: no datapoint after the change: the newest is from before it; rollout not "
        "available: 1 of 2 updated replicas are available": "指标：变更之后没有数据点：最新的"
        "在变更之前；发布不可用：2 个已更新的副本中有 1 个可用",
        "verification failed: the API server timed out": "验证失败：the API server timed out",
    }
    for english, chinese in checks.items():
        assert attempt_words(english, zh, "Asia/Shanghai") == chinese
        assert attempt_words(english, en, "UTC") == english


def test_every_rung_of_the_ladder_has_a_chinese_translation() -> None:
    with catalog_path(Language.ZH).open("rb") as po:
        catalog = read_po(po)
    missing = [a for a in RUNG_ACTIONS.values() if a not in catalog or not catalog[a].string]
    assert missing == []
    assert set(RUNG_NAMES) == set(Rung)


async def test_an_english_page_names_the_finished_run_by_its_own_id(
    approved_run: tuple[httpx.AsyncClient, str], deps: WorkerDeps
) -> None:
    http, rid = approved_run
    async with deps.db.session() as session:
        users = UserRepository(session)
        [name] = [u.name for u in await users.list_all() if u.name.startswith("fang-")]
        user = await users.get(name)
        assert user is not None
        await users.update(user, UserSettings(language=Language.EN))
        await session.commit()
    form = {"remediation_id": rid, "action": "abort"}
    aborted = said(await http.post("/app/remediation/action", data=form))
    assert aborted == f"{rid} already finished (state resolved)"


def test_a_finished_run_is_said_in_chinese_as_in_english_whichever_answer_met_it() -> None:
    # "already finished (state …)" was "已经结束：不能再中止" (cannot abort any more), yet an
    # approve that meets the ended run (service._ended) says it too; the state was dropped.
    refused = already_finished("r-1", "succeeded")
    chinese = translations(Language.ZH).gettext(refused.msgid) % refused.values
    assert chinese == "r-1 已经结束（状态 succeeded）", chinese


def test_an_answer_to_a_rung_passed_and_a_finished_runs_state_are_said_in_chinese() -> None:
    """A zh page answering from a tab left open said "Approval not accepted: rung 2 of … no
    longer waits for approval: …" in English, a refusal called an approval; a second abort
    said "已经结束（状态 aborted）" (a review)."""
    from ambient.remediation.views import (
        ANSWER_TOO_LATE,
        REFUSAL_TOO_EARLY,
        RUNG_NAMES,
    )
    from ambient.words import Words, in_words

    _ = Words(Language.ZH)
    late = Refusal(
        ANSWER_TOO_LATE, asked=2, run="r-1", waits=3, rung=Refusal(RUNG_NAMES[Rung.ROLLBACK])
    )
    assert in_words(late, _) == (
        "批准没有生效：r-1 的第 2 级已经不在等待批准，现在等待批准的是第 3 级（回滚），"
        "请先看一下再答复"
    )
    early = Refusal(
        REFUSAL_TOO_EARLY, asked=4, run="r-1", waits=3, rung=Refusal(RUNG_NAMES[Rung.ROLLBACK])
    )
    assert in_words(early, _).startswith("拒绝没有生效：r-1 还没到第 4 级")
    assert str(early).startswith("refusal not accepted: rung 4 of r-1 has not come yet")
    assert in_words(already_finished("r-1", "aborted"), _) == "r-1 已经结束（状态 已中止）"
