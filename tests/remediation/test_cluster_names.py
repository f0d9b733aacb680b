"""A TKE cluster named by its id (a watch's or the triage's alert) and by a kubeconfig context
that reaches it (a person's) is one cluster everywhere a remediation asks: its alert rules, its
approvers, its rate limit and its breaker. Each asked the raw name: a "manual only" rule on
cls-… did not hold for the context, an approver of cls-* could not steer the context's run,
and each name had its own hourly limit and breaker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment

from activities.remediation import RemediationActivities
from ambient.deps import WorkerDeps
from ambient.remediation.intake import cluster_approvers, cluster_names, cluster_service
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import GateInput
from ambient.remediation.safety import BreakerState, may_steer, named_anywhere
from ambient.remediation.scores import AlertRule
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import AlertRuleRepository, BreakerRepository
from ambient.settings import Settings
from tests.conftest import running_worker
from tests.remediation.support import (
    add_user,
    alert,
    app_state,
    call,
    error_of,
    mcp,
    remediation_settings,
)
from tests.standins.kube_api import kubeconfig

URL = "http://127.0.0.1:9/metrics"


def _tke_kubeconfig(path: Path, cluster: str, *contexts: str) -> Path:
    """The kubeconfig TKE gives for ``cluster``, with each of ``contexts`` reaching it."""
    config = kubeconfig({name: f"https://{cluster}.ccs.tencent-cloud.com" for name in contexts})
    config["clusters"] = [{"name": cluster, "cluster": config["clusters"][0]["cluster"]}]
    for context in config["contexts"]:
        context["context"]["cluster"] = cluster
    path.write_text(yaml.safe_dump(config))
    return path


def _cluster() -> str:
    return f"cls-{uuid.uuid4().hex[:8]}"


def test_a_cluster_has_its_id_and_every_context_that_reaches_it_as_names(tmp_path: Path) -> None:
    cluster = _cluster()
    path = _tke_kubeconfig(tmp_path / "kubeconfig", cluster, "prod", "prod[eu]")
    settings = Settings(kubeconfig=path)
    everyone = frozenset({cluster, "prod", "prod[eu]"})
    assert cluster_names(settings, "prod") == cluster_names(settings, cluster) == everyone
    assert cluster_names(settings, "cls-zzzz9999") == {"cls-zzzz9999"}
    assert cluster_service(settings, "prod", "prod/shop/checkout") == (
        cluster,
        f"{cluster}/shop/checkout",
    )
    assert cluster_service(settings, cluster, f"{cluster}/shop/checkout") == (
        cluster,
        f"{cluster}/shop/checkout",
    )
    assert cluster_service(settings, "kind-dev", "kind-dev/shop/x") == (
        "kind-dev",
        "kind-dev/shop/x",
    )


def test_an_approver_named_by_either_name_of_a_cluster_approves_under_both(tmp_path: Path) -> None:
    cluster = _cluster()
    path = _tke_kubeconfig(tmp_path / "kubeconfig", cluster, "prod", "prod[eu]")
    policy = {"cls-*": ["ana"], "prod": ["bo"], "staging": ["cy"]}
    approvers = cluster_approvers(Settings(kubeconfig=path, remediation_approvers=policy))
    for name in (cluster, "prod", "prod[eu]"):
        assert may_steer("ana", False, name, approvers), name
        assert may_steer("bo", False, name, approvers), name
        assert not may_steer("cy", False, name, approvers), name
    # Other clusters are as the policy says: bo is named on prod's cluster alone.
    assert may_steer("ana", False, "cls-zzzz9999", approvers)
    assert not may_steer("bo", False, "cls-zzzz9999", approvers)
    assert not may_steer("bo", False, "prodx", approvers)  # a context's name is no glob
    assert {u for u in ("ana", "bo", "cy", "dee") if named_anywhere(u, approvers)} == {
        "ana",
        "bo",
        "cy",
    }
    # No kubeconfig: the policy as it is written.
    assert cluster_approvers(Settings(remediation_approvers=policy)) == policy


async def test_a_manual_rule_on_the_tke_id_holds_for_an_alert_naming_the_context(
    deps: WorkerDeps, tmp_path: Path
) -> None:
    cluster = _cluster()
    path = _tke_kubeconfig(tmp_path / "kubeconfig", cluster, "prod")
    remediation_settings(deps, kubeconfig=path)
    rule = AlertRule(name=f"hands-off-{cluster}", cluster_id=cluster, manual=True)
    async with deps.db.session() as session:
        await AlertRuleRepository(session).put(rule)
        await session.commit()
    service = RemediationService(None, deps.settings, deps.db)  # type: ignore[arg-type]  # scores only
    by_id = await service.score(alert(URL, cluster_id=cluster))
    by_context = await service.score(alert(URL, cluster_id="prod"))
    assert by_id.manual and by_id.rule == rule.name
    assert by_context.manual and by_context.rule == rule.name, by_context
    assert [step.rung for step in by_context.plan] == [Rung.HAND_OVER]


async def test_one_cluster_has_one_hourly_limit_and_one_service_one_breaker_by_any_name(
    deps: WorkerDeps, tmp_path: Path
) -> None:
    cluster = _cluster()
    path = _tke_kubeconfig(tmp_path / "kubeconfig", cluster, "prod")
    remediation_settings(deps, kubeconfig=path, remediation_rate_limit_per_hour=1)
    gates = RemediationActivities(deps.db, deps.settings, None, {})
    now = datetime.now(UTC)

    async def check(name: str, workload: str, run: str) -> tuple[bool, str | None]:
        run_key = f"remediation/{run}@{uuid.uuid4().hex[:6]}"
        decision = await gates.check_remediation_gates(
            GateInput(
                run_key=run_key,
                key=f"{run_key}/rung-1/gate/1",
                cluster_id=name,
                service=f"{name}/shop/{workload}",
                rung=Rung.RESTART,
                now=now,
            )
        )
        return decision.allowed, decision.gate

    assert await check(cluster, "web", "a") == (True, None)
    # The same cluster by its context: its one slot this hour is taken.
    assert await check("prod", "api", "b") == (False, "rate_limit")

    # A breaker opened on the service under its TKE id holds for it under its context.
    remediation_settings(deps, kubeconfig=path, remediation_rate_limit_per_hour=0)
    gates = RemediationActivities(deps.db, deps.settings, None, {})
    async with deps.db.writing() as session:
        await BreakerRepository(session).save(
            None,
            f"{cluster}/shop/checkout",
            int(Rung.RESTART),
            BreakerState(failures=3, opened_at=now),
            "test",
        )
    assert await check("prod", "checkout", "c") == (False, "breaker")
    assert await check("prod", "cart", "d") == (True, None)


async def test_an_approver_of_the_tke_id_sees_a_run_whose_alert_named_the_context(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    cluster = _cluster()
    path = _tke_kubeconfig(tmp_path / "kubeconfig", cluster, "prod")
    policy = {cluster: ["ana"], "staging": ["cy"]}
    remediation_settings(deps, kubeconfig=path, remediation_approvers=policy)
    for name in ("ops", "ana", "cy"):
        await add_user(deps, name)
    by_context = alert(URL, cluster_id="prod").model_dump(mode="json")
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        async with mcp(state, "ops") as client:
            rid = (await call(client, "start_remediation", alert=by_context))["remediation_id"]
        async with mcp(state, "cy") as client:
            refused = await error_of(client, "get_remediation", remediation_id=rid)
        async with mcp(state, "ana") as client:
            seen = await call(client, "get_remediation", remediation_id=rid)
            await call(client, "abort_remediation", remediation_id=rid, reason="test over")
    assert "not found" in refused.lower() or "no remediation" in refused.lower(), refused
    assert seen["remediation_id"] == rid and seen["alert"]["cluster_id"] == "prod"
