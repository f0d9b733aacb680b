"""How a remediation run says its end: the outcome and the hand-over's reason (sandbox-safe).

Each is a Refusal: str() is the English (the audit, the record, MCP), a page says it from the
catalog, and the run's push to a Chinese reader from HANDED_OVER_ZH (``in_chinese``).
"""

from __future__ import annotations

from datetime import timedelta

from ambient.refusals import N_, Refusal
from ambient.remediation.alerts import Alert
from ambient.remediation.ladder import (
    ISOLATION_LABEL,
    RUNG_NAMES_ZH,
    Checkpoint,
    Mode,
    Rung,
    WorkloadRef,
    rung_zh,
)
from ambient.remediation.runs import AbortInput, Attempt
from ambient.remediation.safety import Gate, a_while

RESOLVED_AT = N_("resolved at rung %(rung)s (%(name)s)")
# What a dry run that was "resolved" says: the alert cleared on its own, nothing was changed.
CLEARED_AT = N_("the alert cleared at rung %(rung)s (%(name)s)")
A_DRY_RUN = N_("a dry run, nothing was changed: %(reason)s")
# A run cancelled in Temporal (the Web UI's "Request Cancellation"), not through a door.
CANCELLED = N_(
    "cancelled in Temporal (Request Cancellation), not through ambient-ops: "
    "the sender is not verified"
)
NOT_VERIFIED = N_("rung %(rung)s (%(name)s) was applied but could not be verified (%(cause)s)")
# How a dry run says these ends: it applied nothing, and its "resolved" is the alert clearing.
AS_A_DRY_RUN = {
    RESOLVED_AT: CLEARED_AT,
    NOT_VERIFIED: N_(
        "rung %(rung)s (%(name)s) was previewed but could not be verified (%(cause)s)"
    ),
}


CLEARED_WAITING = N_(
    "the alert cleared while rung %(rung)s (%(name)s) waited for its approval or change "
    "window, before its change"
)


def cleared_waiting(rung: Rung) -> Refusal:
    """A run whose alert was over by the time its rung's wait ended: no change made."""
    return Refusal(CLEARED_WAITING, **_at(rung))


def changes_made(attempts: list[Attempt]) -> tuple[str, str] | None:
    """The rungs that changed the cluster, as a run's end names them (English, Chinese):
    "the change made was at rung 1 (restart)", "第 1 级（重启）"; None when none did."""
    changed = [a for a in attempts if a.applied or a.already_applied]
    if not changed:
        return None
    made = "the change made was" if len(changed) == 1 else "the changes made were"
    rungs = ", ".join(f"rung {int(a.rung)} ({a.rung.name.lower()})" for a in changed)
    return f"{made} at {rungs}", "、".join(rung_zh(a.rung) for a in changed)


def resolved_at(rung: Rung) -> Refusal:
    """A resolved run's outcome (a Refusal: a page says it in its reader's language)."""
    return Refusal(RESOLVED_AT, **_at(rung))


def _at(rung: Rung) -> dict[str, int | str]:
    """The values that name a rung: its number and its name."""
    return {"rung": int(rung), "name": rung.name.lower()}


def aborted_by(aborted: AbortInput, verified: bool = True) -> Refusal:
    """An aborted run's outcome: who (or the name an abort sent in Temporal gave), and their
    reason when they gave one."""
    if not verified and not aborted.by:  # sent by hand without a name (abort_as_given)
        if aborted.reason:
            return Refusal(
                "aborted in Temporal, not through ambient-ops: the sender is not verified (it "
                "gave no name): %(reason)s",
                reason=aborted.reason,
            )
        return Refusal(
            "aborted in Temporal, not through ambient-ops: the sender is not verified (it "
            "gave no name)"
        )
    if not verified and aborted.reason:
        return Refusal(
            "aborted in Temporal, not through ambient-ops: the sender is not verified (it "
            "gave the name %(by)s): %(reason)s",
            by=repr(aborted.by),
            reason=aborted.reason,
        )
    if not verified:
        return Refusal(
            "aborted in Temporal, not through ambient-ops: the sender is not verified (it "
            "gave the name %(by)s)",
            by=repr(aborted.by),
        )
    if aborted.reason:
        return Refusal("aborted by %(by)s: %(reason)s", by=aborted.by, reason=aborted.reason)
    return Refusal("aborted by %(by)s", by=aborted.by)


# A hand-over's reason the run builds (and the parts of it it builds too: a gate's reason, a
# time, an isolation found), as a page says it (the catalog) and in Chinese for its push: a
# workflow reads no catalog, so it is written twice (tests/remediation check both agree).
# A person's words in it (a refusal's reason) and a cause the run was given stay as written.
HANDED_OVER_ZH = {
    "nobody approved rung %(rung)s within %(after)s": "第 %(rung)s 级在 %(after)s内无人批准",
    "%(seconds)s s": "%(seconds)s 秒",
    "%(minutes)s min": "%(minutes)s 分钟",
    "%(hours)s h": "%(hours)s 小时",
    "%(hours)s h %(minutes)s min": "%(hours)s 小时 %(minutes)s 分钟",
    "%(by)s refused rung %(rung)s": "%(by)s 拒绝了第 %(rung)s 级",
    "%(by)s refused rung %(rung)s: %(reason)s": "%(by)s 拒绝了第 %(rung)s 级：%(reason)s",
    "cannot change now: %(reason)s": "现在不能改动：%(reason)s",
    "outside change windows; next opens %(opens)s": "不在变更窗口内，下次开放时间 %(opens)s",
    "no change window opens within a week": "一周内没有变更窗口开放",
    "cluster cooldown: last change %(since)s ago (< %(cooldown)s)": (
        "集群冷却中：上次变更在 %(since)s前（两次变更至少间隔 %(cooldown)s）"
    ),
    # The wording before this release (safety.COOLDOWN_BEFORE): a run of the release before
    # replays the gate it was given, and its hand-over says it.
    "cluster cooldown: last change %(since)ss ago (< %(cooldown)ss)": (
        "集群冷却中：上次变更在 %(since)s 秒前（两次变更至少间隔 %(cooldown)s 秒）"
    ),
    "cluster rate limit: %(changes)s changes in the last hour (max %(max)s)": (
        "集群变更频率限制：过去一小时已有 %(changes)s 次变更（上限 %(max)s 次）"
    ),
    "breaker open: this rung failed %(failures)s times in a row on this service; "
    "closes in %(after)s": (
        "熔断中：这一级在这个服务上已连续失败 %(failures)s 次；%(after)s后放行一次试探"
    ),
    "the ladder reached hand-over (rung 6)": "已到第 6 级（转人工）",
    "the budget of %(budget)s attempt(s) is spent and the alert is not resolved": (
        "%(budget)s 次尝试的预算已用完，告警仍未解决"
    ),
    "a dry run, nothing was changed: %(reason)s": "演练，未做任何改动：%(reason)s",
    "the alert cleared at rung %(rung)s (%(name)s)": "告警在第 %(rung)s 级后恢复",
    "rung %(rung)s (%(name)s) was previewed but could not be verified (%(cause)s)": (
        "第 %(rung)s 级已预演，但无法核实结果（%(cause)s）"
    ),
    "rung %(rung)s (%(name)s) was not applied: its checkpoint could not be read (%(cause)s)": (
        "第 %(rung)s 级未执行：读取检查点失败（%(cause)s）"
    ),
    "rung %(rung)s (%(name)s) could not be applied (%(cause)s)": (
        "第 %(rung)s 级执行失败（%(cause)s）"
    ),
    "rung %(rung)s (%(name)s) may have been applied (%(why)s): check %(object)s": (
        "第 %(rung)s 级可能已执行（%(why)s）：请检查 %(object)s"
    ),
    "rung %(rung)s (%(name)s) was skipped: %(reason)s; no rung above it is tried: a workload "
    "scaled to 0 on purpose is not failing, and rolling it back or isolating it would undo "
    "that decision": (
        "第 %(rung)s 级已跳过：%(reason)s；不再尝试更高的级别：有意缩到 0 个副本的工作负载"
        "并没有故障，回滚或隔离它会推翻这个决定"
    ),
    "rung %(rung)s (%(name)s) was applied but could not be verified (%(cause)s)": (
        "第 %(rung)s 级已执行，但无法核实结果（%(cause)s）"
    ),
    "the alert cleared at rung %(rung)s (%(name)s) with the service isolated: no traffic "
    "reaches it, which is no fix": (
        "告警在第 %(rung)s 级后恢复，但服务已被隔离：没有流量到达它，这不算修复"
    ),
    "the alert cleared at rung %(rung)s (%(name)s) with the service isolated since before "
    "this run (%(isolated)s): no traffic reaches it, which is no fix; %(undo)s first": (
        "告警在第 %(rung)s 级后恢复，但服务在这次修复之前就已被隔离（%(isolated)s）："
        "没有流量到达它，这不算修复；请先%(undo)s"
    ),
    "the selector of Service %(names)s carries %(label)s": (
        "Service %(names)s 的选择器带有隔离标签 %(label)s"
    ),
    "the selector of Services %(names)s carry %(label)s": (
        "Service %(names)s 的选择器带有隔离标签 %(label)s"
    ),
    "the deny-all NetworkPolicy %(names)s in %(namespace)s selects its pods": (
        "%(namespace)s 中拒绝所有流量的 NetworkPolicy %(names)s 选中了它的 Pod"
    ),
    "the deny-all NetworkPolicies %(names)s in %(namespace)s select its pods": (
        "%(namespace)s 中拒绝所有流量的 NetworkPolicy %(names)s 选中了它的 Pod"
    ),
    "%(first)s; %(then)s": "%(first)s；%(then)s",
    "restore the selector": "恢复选择器",
    "delete the NetworkPolicy": "删除该 NetworkPolicy",
    "delete the NetworkPolicies": "删除这些 NetworkPolicy",
    "%(first)s and %(then)s": "%(first)s，并%(then)s",
    "the alert cleared at rung %(rung)s (%(name)s), but alerts that joined this run are not "
    "known to be over: %(alerts)s": (
        "告警在第 %(rung)s 级后恢复，但合并到这次修复的告警尚不能确定已结束：%(alerts)s"
    ),
}


def not_approved(rung: Rung, after: timedelta) -> Refusal:
    return Refusal(
        "nobody approved rung %(rung)s within %(after)s", rung=int(rung), after=a_while(after)
    )


def refused(by: str, rung: Rung, reason: str | None) -> Refusal:
    if reason:
        return Refusal(
            "%(by)s refused rung %(rung)s: %(reason)s", by=by, rung=int(rung), reason=reason
        )
    return Refusal("%(by)s refused rung %(rung)s", by=by, rung=int(rung))


def gate_closed(gate: Gate) -> Refusal:
    """A gate closed for longer than the run waits: its reason as a page says it, if it can."""
    reason = gate.said.refusal() if gate.said else gate.reason
    return Refusal("cannot change now: %(reason)s", reason=reason)


def ladder_top() -> Refusal:
    return Refusal("the ladder reached hand-over (rung 6)")


def budget_spent(budget: int) -> Refusal:
    return Refusal(
        "the budget of %(budget)s attempt(s) is spent and the alert is not resolved",
        budget=budget,
    )


def of_a_dry_run(
    reason: str | Refusal, attempts: list[Attempt], mode: Mode | None = None
) -> str | Refusal:
    """Any end of a dry run as a dry run says it (its rungs all previewed and none changed; no
    rung tried, the run's ``mode``): said alone, "resolved at rung 1", a refusal or an abort
    read as the end of a run that changed the cluster. Resolved, the alert cleared on its own."""
    dry = all(a.mode == "dry_run" for a in attempts) if attempts else mode == "dry_run"
    if not dry or (isinstance(reason, Refusal) and reason.msgid == A_DRY_RUN):
        return reason
    if isinstance(reason, Refusal) and reason.msgid in AS_A_DRY_RUN:
        reason = Refusal(AS_A_DRY_RUN[reason.msgid], **reason.values)
    return Refusal(A_DRY_RUN, reason=reason)


def not_checkpointed(rung: Rung, cause: str) -> Refusal:
    return Refusal(
        "rung %(rung)s (%(name)s) was not applied: its checkpoint could not be read (%(cause)s)",
        **_at(rung),
        cause=cause,
    )


def not_applied(rung: Rung, cause: str) -> Refusal:
    return Refusal(
        "rung %(rung)s (%(name)s) could not be applied (%(cause)s)",
        **_at(rung),
        cause=cause,
    )


# A dry run's try whose answer was lost: it sent nothing (its end says it was a dry run).
PREVIEW_LOST = N_("rung %(rung)s (%(name)s) was previewed, its answer lost (%(why)s)")


def maybe_applied(rung: Rung, why: str, target: WorkloadRef, *, dry_run: bool = False) -> Refusal:
    """A change given up (an abort, a cancel) after a try that may have written (``why``: its
    answer lost): a person looks at the object to know. A dry run's wrote nothing."""
    if dry_run:
        return Refusal(PREVIEW_LOST, **_at(rung), why=why)
    return Refusal(
        "rung %(rung)s (%(name)s) may have been applied (%(why)s): check %(object)s",
        **_at(rung),
        why=why,
        object=f"{target.kind.lower()}/{target.namespace}/{target.name}",
    )


def stopped_on_purpose(rung: Rung, reason: str) -> Refusal:
    """A scale out skipped because the workload is at 0 replicas on purpose (``reason``, the
    step's): climbing on would roll back and isolate a workload that is not failing."""
    return Refusal(
        "rung %(rung)s (%(name)s) was skipped: %(reason)s; no rung above it is tried: a workload "
        "scaled to 0 on purpose is not failing, and rolling it back or isolating it would undo "
        "that decision",
        **_at(rung),
        reason=reason,
    )


def not_verified(rung: Rung, cause: str) -> Refusal:
    return Refusal(NOT_VERIFIED, **_at(rung), cause=cause)


def cleared_isolated(rung: Rung) -> Refusal:
    return Refusal(
        "the alert cleared at rung %(rung)s (%(name)s) with the service isolated: no traffic "
        "reaches it, which is no fix",
        **_at(rung),
    )


def cleared_isolated_before(rung: Rung, baseline: Checkpoint | None) -> Refusal | None:
    """The alert cleared behind an isolation an earlier run left, as the run's first checkpoint
    found it: Services its rung 4 left its label in (they select no pods), or its deny-all
    NetworkPolicy on the pods; and what a person undoes first. None: none found."""
    if baseline is None:
        return None
    found: list[Refusal] = []
    undo: list[Refusal] = []
    names = sorted(
        n for n, selector in baseline.service_selectors.items() if ISOLATION_LABEL in selector
    )
    if names:
        which = (
            N_("the selector of Service %(names)s carries %(label)s")
            if len(names) == 1
            else N_("the selector of Services %(names)s carry %(label)s")
        )
        found.append(Refusal(which, names=", ".join(names), label=ISOLATION_LABEL))
        undo.append(Refusal("restore the selector"))
    policies = baseline.isolation_policies
    if policies:
        one = len(policies) == 1
        which = (
            N_("the deny-all NetworkPolicy %(names)s in %(namespace)s selects its pods")
            if one
            else N_("the deny-all NetworkPolicies %(names)s in %(namespace)s select its pods")
        )
        namespace = baseline.target.namespace
        found.append(Refusal(which, names=", ".join(policies), namespace=namespace))
        delete = N_("delete the NetworkPolicy") if one else N_("delete the NetworkPolicies")
        undo.append(Refusal(delete))
    if not found:
        return None
    isolated = _both(N_("%(first)s; %(then)s"), found)
    first = _both(N_("%(first)s and %(then)s"), undo)
    return Refusal(
        "the alert cleared at rung %(rung)s (%(name)s) with the service isolated since before "
        "this run (%(isolated)s): no traffic reaches it, which is no fix; %(undo)s first",
        **_at(rung),
        isolated=isolated,
        undo=first,
    )


def _both(msgid: str, parts: list[Refusal]) -> Refusal:
    """One part as it is; two said together by ``msgid``."""
    return parts[0] if len(parts) == 1 else Refusal(msgid, first=parts[0], then=parts[1])


def cleared_joined_open(rung: Rung, alerts: str) -> Refusal:
    return Refusal(
        "the alert cleared at rung %(rung)s (%(name)s), but alerts that joined this run are not "
        "known to be over: %(alerts)s",
        **_at(rung),
        alerts=alerts,
    )


def in_chinese(reason: str | Refusal) -> str:
    """A hand-over's reason in Chinese where the run built it (its parts too); a person's words
    and a cause the run was given as written."""
    if not isinstance(reason, Refusal) or reason.msgid not in HANDED_OVER_ZH:
        return str(reason)
    values = {k: in_chinese(v) if isinstance(v, Refusal) else v for k, v in reason.values.items()}
    return HANDED_OVER_ZH[reason.msgid] % values


def alerts_joined(alerts: list[Alert], *, zh: bool = False) -> str:
    """The alerts of another source or metric that joined the run: the person takes them too
    (``zh``: said in Chinese, the alerts' names as written)."""
    if not alerts:
        return ""
    names = ", ".join(alert_named(a, zh=zh) for a in alerts)
    return f"合并到这次修复的告警：{names}。" if zh else f" Alerts that joined it: {names}."


def alert_named(alert: Alert, *, zh: bool = False) -> str:
    """An alert as the run's messages name the alerts that joined it: its source and metric."""
    return f"{alert.source} {alert.metric or ('告警' if zh else 'alert')}"


def left_isolated(attempts: list[Attempt], *, zh: bool = False) -> str:
    """What the person handed the run must know first: an isolation this run left in place
    (no traffic reaches the workload), and how to undo it: its Services' selectors, or the
    deny-all NetworkPolicy rung 4 created when no Service selected the workload (``zh``:
    said in Chinese, a sentence of its own)."""
    done = {a.rung for a in attempts if a.applied}
    if Rung.ISOLATE not in done or Rung.FULL_ROLLBACK in done:
        return ""
    isolated = [a for a in attempts if a.applied and a.rung is Rung.ISOLATE][-1]
    # The objects it changed, as the audit shows them: kind/namespace/name.
    policies = [o.split("/", 2) for o in isolated.patch or {} if o.startswith("networkpolicy/")]
    if policies:
        _, namespace, name = policies[0]
        if zh:
            return (
                f"{namespace} 中拒绝所有流量的 NetworkPolicy {name} 仍挡着其 Pod 的全部流量"
                "（第 4 级隔离所建）：请先删除它以恢复流量，再做其他处理。"
            )
        return (
            f" The deny-all NetworkPolicy {name} in {namespace} still keeps all traffic from"
            " its pods (isolated at rung 4): delete it before anything else to restore traffic."
        )
    if zh:
        return (
            "它的 Service 仍不选中任何 Pod（第 4 级隔离所致）：请先恢复它们的选择器，再做其他处理。"
        )
    return (
        " Its Services still select no pods (isolated at rung 4): restore their selectors"
        " before anything else."
    )


def rungs_tried(attempts: list[Attempt], zh: bool = False, metric: bool = True) -> str:
    """The rungs tried, as a person handed the run reads them: each and how it went (without a
    ``metric`` to read, a dry run's rung was not seen to leave the alert unresolved)."""
    said = []
    for attempt in attempts:
        name = RUNG_NAMES_ZH[attempt.rung] if zh else attempt.rung.name.lower()
        if attempt.maybe_applied:
            name += "（可能已执行）" if zh else " (may have been applied)"
        elif attempt.skipped_reason is not None:
            name += "（未执行）" if zh else " (not applied)"
        elif attempt.resolved is False and attempt.mode == "dry_run" and not metric:
            name += "（演练，无验证指标可判断）" if zh else " (dry run, no verify metric to tell)"
        elif attempt.resolved is False:
            name += "（未解决）" if zh else " (not resolved)"
        said.append(name)
    return ("、" if zh else ", ").join(said)
