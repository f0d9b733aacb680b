"""Asked-for cloud writes stopped part-way (their caller cancelled or timed out): the audit row
says how far each got (``sent``), through the real clients against the stand-ins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from starlette.requests import Request

from ambient.cloud import audit
from ambient.cloud.logs import AlarmSpec
from ambient.cloud.workloads import WorkloadSpec
from ambient.storage.audit import AuditRepository
from ambient.wiring import AppState
from tests.standins.kube_api import ApiCall
from tests.standins.tencent_api import TencentApi
from tests.support.servers import HANG
from tests.support.tencent import cancelled_while_out, held_audit
from tests.tencent.test_cloud_writes import ALARM, cloud
from tests.tencent.test_cloud_writes_kube import WORKLOAD, ApplyingKubeApi, cluster, standins

__all__ = ["cloud", "cluster", "standins"]  # the fixtures, shared


def _held_kube(
    kube: ApplyingKubeApi, method: str, conflicted: bool = False
) -> tuple[asyncio.Event, asyncio.Event]:
    """The Deployment's first ``method`` request (not a dry run; if ``conflicted``, the first
    after a write refused with 409) waits, once received and logged, until released: a write
    held there is sent and not yet answered."""
    arrived, released = asyncio.Event(), asyncio.Event()
    log = kube._log

    async def held(request: Request, status: int, body: Any = None) -> ApiCall:
        call = await log(request, status, body)
        if call.method == method and "/deployments/checkout" in call.path and not call.dry_run:
            if not arrived.is_set() and (not conflicted or 409 in [c.status for c in kube.calls]):
                arrived.set()
                await released.wait()
        return call

    kube._log = held  # type: ignore[method-assign]
    return arrived, released


@pytest.mark.parametrize(
    ("method", "conflicted", "sent", "said"),
    [
        ("GET", False, False, "before anything was sent"),
        ("PATCH", False, True, "may still be carried out"),
        ("GET", True, False, "before anything was sent"),
    ],
    ids=["read", "write", "read-after-409"],
)
@pytest.mark.parametrize("operation", ["restart_workload", "scale_workload"])
async def test_a_workload_change_stopped_says_whether_its_write_was_sent(
    cluster: tuple[ApplyingKubeApi, AppState],
    operation: str,
    method: str,
    conflicted: bool,
    sent: bool,
    said: str,
) -> None:
    """A restart or scale cancelled while it read the Deployment was audited 'a request it had
    sent may still be carried out' with nothing sent; the row says how far it got, and a
    cancel once the PATCH is out never says nothing was changed. Its PATCH refused (409:
    another writer in between, nothing stored) and the call cancelled while it read the
    Deployment again, it still said its request may be carried out."""
    kube, state = cluster
    if conflicted:
        kube.interfere("deployments", "shop", "checkout", lambda d: d["spec"].update(paused=False))
    arrived, released = _held_kube(kube, method, conflicted)
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = state.workload_ops
    asked = (
        ops.restart_workload("ops", spec, "execute")
        if operation == "restart_workload"
        else ops.scale_workload("ops", spec, 5, "execute")
    )
    [row] = await cancelled_while_out(state, asked, (arrived, released), f"cloud.{operation}")
    assert (row["outcome"], row["kind"], row.get("sent")) == ("failed", "interrupted", sent), row
    assert said in row["reason"], row
    assert len(kube.writes("deployments")) == int(sent)
    refused = [c for c in kube.calls if c.method == "PATCH" and c.status == 409]
    assert len(refused) == int(conflicted), kube.calls


@pytest.mark.parametrize(
    ("held", "sent", "notice"),
    [
        ("DescribeAlarmNotices", False, None),  # looked up (and compared) before its step
        ("CreateAlarmNotice", True, "failed"),
        ("its row", True, "executed"),
    ],
    ids=["notice-lookup", "notice-sent", "notice-made"],
)
async def test_an_alarm_stopped_in_its_notice_step_leaves_its_row_saying_how_far_it_got(
    cloud: tuple[TencentApi, AppState],
    monkeypatch: pytest.MonkeyPatch,
    held: str,
    sent: bool,
    notice: str | None,
) -> None:
    """create_cls_alarm makes its notice first: cancelled there, while the notice was looked
    up, sent or made and its row written, the call left no create_cls_alarm row at all. It
    leaves one now: interrupted, and sent (the notice's request) as far as it got."""
    api, state = cloud
    if held == "its row":
        arrived, released = held_audit(monkeypatch)
    else:
        arrived, released = asyncio.Event(), asyncio.Event()
        api.held[held] = (arrived, released)
    spec = AlarmSpec.model_validate(ALARM)
    task = asyncio.create_task(state.cloud_ops.create_cls_alarm("ops", spec, "execute"))
    await arrived.wait()
    task.cancel()
    released.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    said = {r.action: r.detail for r in rows if r.action.startswith("cloud.")}
    row = said["cloud.create_cls_alarm"]
    assert (row["outcome"], row["kind"], row["sent"]) == ("failed", "interrupted", sent), row
    if notice is None:  # stopped before its notice's step: the call's own row says so
        assert said.keys() == {"cloud.create_cls_alarm"}, said
        assert "step" not in row and api.creates() == [], row
        return
    assert said.keys() == {"cloud.create_cls_alarm_notice", "cloud.create_cls_alarm"}, said
    assert said["cloud.create_cls_alarm_notice"]["outcome"] == notice
    assert ("may still be carried out" in row["reason"]) is sent, row
    # Each row its own: the notice's request is in the notice's, the step in the alarm's.
    assert row["step"] == "create_cls_alarm_notice" and "request" not in row, row
    assert "step" not in said["cloud.create_cls_alarm_notice"], said
    assert "CreateAlarm" not in [a for _, a, _ in api.creates()]


@contextlib.asynccontextmanager
async def _cut_in_its_notice_step(
    cloud: tuple[TencentApi, AppState], monkeypatch: pytest.MonkeyPatch, fails: bool = False
) -> AsyncIterator[tuple[asyncio.Task[Any], list[str]]]:
    """create_cls_alarm cancelled while its notice's create is out, its audit rows held (each
    failing if ``fails``) under a grace longer than the test's guard, until both rows' writes
    began: the call's task and the rows begun; on leaving, the writes and the create go on."""
    api, state = cloud
    monkeypatch.setattr(audit, "AUDIT_GRACE", 2 * HANG)
    started: list[str] = []
    writing, written = held_audit(monkeypatch, fails=fails, started=started)
    sent, answered = asyncio.Event(), asyncio.Event()
    api.held["CreateAlarmNotice"] = (sent, answered)
    spec = AlarmSpec.model_validate(ALARM)
    task = asyncio.create_task(state.cloud_ops.create_cls_alarm("ops", spec, "execute"))
    await sent.wait()
    task.cancel()
    try:
        with anyio.fail_after(HANG):
            while len(started) < 2:
                await writing.wait()
                writing.clear()
        yield task, started
    finally:
        written.set()
        answered.set()


async def test_each_row_of_one_grace_that_fails_is_logged(
    cloud: tuple[TencentApi, AppState],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cancelled in its notice's step, the call writes the notice's row and the alarm's under
    one grace; both writes failing, the first's error was raised and the second's said nowhere
    (asyncio's "exception never retrieved" at most). Each is logged lost, the raised one too:
    its raise may go to a caller that is gone."""
    async with _cut_in_its_notice_step(cloud, monkeypatch, fails=True) as (task, _):
        pass
    with anyio.fail_after(HANG), pytest.raises(OSError, match="disk I/O error"):
        await task
    # Both logged, the raised one too (its raise may go to a caller that is gone).
    lost = sorted(r.getMessage() for r in caplog.records if "was lost" in r.getMessage())
    assert [m.split(" was lost")[0] for m in lost] == [
        "the audit row of cloud.create_cls_alarm on cls:alarm:too-many-errors",
        "the audit row of cloud.create_cls_alarm_notice on cls:notice:oncall",
    ], caplog.text
    assert all("OSError('disk I/O error')" in m for m in lost), lost


async def test_an_alarm_stopped_in_its_notice_step_writes_both_rows_under_one_grace(
    cloud: tuple[TencentApi, AppState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its notice's create was out, the call waited for the notice's row (up
    to the audit's grace), then began the alarm's and waited again: two graces for a database
    that does not answer, where the docs promise one. Both writes start at once now (the
    grace made longer than the test's guard: a second write after it never starts)."""
    async with _cut_in_its_notice_step(cloud, monkeypatch) as (task, started):
        assert sorted(started) == ["create_cls_alarm", "create_cls_alarm_notice"]
        assert not task.done()
    with anyio.fail_after(HANG), pytest.raises(asyncio.CancelledError):
        await task
