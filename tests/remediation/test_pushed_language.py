"""A remediation's pushes reach a Chinese reader in Chinese on every channel: its request for
approval (the answer's deadline in the reader's time zone, with its zone) and its end; the
English reader's stay English."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserSettings
from ambient.remediation.ladder import MODES_ZH, RUNG_NAMES_ZH
from ambient.remediation.outcomes import HANDED_OVER_ZH
from ambient.remediation.runs import ApprovalInput, RemediationStatus
from ambient.storage.models import XiaozhiEndpoint
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from ambient.xiaozhi import DeviceService
from tests.conftest import running_worker
from tests.remediation.support import (
    add_user,
    alert,
    as_door,
    error_rate,
    remediation_settings,
    state_reaches,
)
from tests.remediation.test_workflow import start
from tests.support.channels import pushed_everywhere
from workflows.remediation import GradedRemediationWorkflow

USER = "ops-zh"


async def approved_at_rung_two(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    language: Language,
    zone: str | None = None,
    voice: str | None = None,
) -> tuple[RemediationStatus, dict[str, list[str]], dict[str, list[str]], datetime]:
    """A dry run of USER (who reads ``language``, in time ``zone``, and speaks to the product
    by ``voice``: see `_speaking`) whose rung 2 waits for approval, is approved and resolves:
    its status, each channel's titles and texts of what it was pushed, and the answer's
    deadline as the run showed it while it waited."""
    remediation_settings(deps, remediation_approval_from_rung=2)
    async with pushed_everywhere(deps, USER) as pushed:
        async with deps.db.session() as session:
            users = UserRepository(session)
            user = await users.get(USER)
            assert user is not None
            await users.update(user, UserSettings(language=language, timezone=zone))
            if voice == "voice token":
                await users.rotate_voice_token(user)
            await session.commit()
        await add_user(deps, "lead", permission="execute")
        await _speaking(deps, voice)
        async with (
            error_rate(healthy_from=3) as (_, url),
            running_worker(env.client, deps) as worker,
        ):
            handle = await start(env, worker.task_queue, alert(url), user=USER)
            waiting = await state_reaches(env, handle, ("waiting_approval",))
            assert waiting.waiting is not None
            answer = ApprovalInput(approver="lead", approver_permission="execute", approve=True)
            await handle.execute_update(
                GradedRemediationWorkflow.approve, await as_door(deps, handle, answer)
            )
            status = await handle.result()
        received = pushed.bots.received
        titles = {
            "wecom": [
                body["markdown"]["content"].splitlines()[0] for n, body in received if n == "wecom"
            ],
            "webhook": [body["title"] for n, body in received if n == "webhook"],
            # As the mail reader decodes it (RFC 2047 in the raw mail).
            "email": [str(mail["Subject"]) for mail in pushed.mailbox.messages],
        }
        for raw in pushed.mailbox.raw:
            assert raw.split(b"\r\n\r\n", 1)[0].isascii() and raw.decode("utf-8")
        return status, titles, await pushed.shown(), waiting.waiting.until


async def _speaking(deps: WorkerDeps, voice: str | None) -> None:
    """USER given a way to speak to the product: a 小智 "device" of theirs, a xiaozhi.me
    "endpoint" (接入点), or "allowed" on lead's device (a voice token: by its caller)."""
    mac = "aa:bb:cc:dd:ee:01"
    if voice == "device":
        await DeviceService(deps.db).add(USER, USER, mac)
    elif voice == "allowed":
        await DeviceService(deps.db).add("lead", "lead", mac)
        await DeviceService(deps.db).allow(USER, mac)
    elif voice == "endpoint":
        async with deps.db.session() as session:
            url = "wss://api.xiaozhi.me/mcp/?token=…"
            session.add(XiaozhiEndpoint(user=USER, url_sealed="sealed", url_masked=url))
            await session.commit()


@pytest.mark.parametrize("voice", [None, "device", "allowed", "endpoint", "voice token"])
async def test_a_chinese_readers_approval_request_and_end_are_said_in_chinese(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, voice: str | None
) -> None:
    """A dry run changed nothing: its end says the alert cleared ("已修复" said a fix that
    was not made; a change made is said fixed, tests/remediation/test_cluster.py). It is
    answered "用语音" only by a reader with a way to speak to the product: one with no 小智
    device, 接入点 or voice token was told to all the same."""
    status, titles, shown, until = await approved_at_rung_two(
        ts_env, deps, Language.ZH, "Asia/Shanghai", voice
    )
    assert status.state == "resolved", status.outcome
    service, rid = "cls-test0001/prod/checkout", status.remediation_id
    asked, done = f"待审批：{service} 第 2 级（扩容）", f"告警已恢复：{service}"
    assert titles == {
        "wecom": [f"### {asked}", f"### {done}"],
        "webhook": [asked, done],
        "email": [asked, done],
    }
    for texts in shown.values():
        # The inbox lists the newest first; the robot's text starts with the title as its
        # heading; the email's text ends its lines with CRLF.
        texts = [t.split("\n", 1)[-1] if t.startswith("###") else t.strip() for t in texts]
        (request,) = [t for t in texts if "批准或拒绝" in t]
        assert request.startswith(f"修复 `{rid}` 要执行第 2 级（扩容），模式：演练。"), request
        # The deadline is said in the reader's zone (Beijing: 8 hours ahead), with its zone.
        beijing = f"{until.astimezone(UTC) + timedelta(hours=8):%Y-%m-%d %H:%M}"
        where = "在它的页面、用语音或在它的讨论里" if voice else "在它的页面或它的讨论里"
        said = f"请在 {beijing}（Asia/Shanghai，UTC+08:00）前{where}批准或拒绝"
        assert said in request, request
        assert ("语音" in request) == bool(voice), request
        end = f"修复 `{rid}`（演练，未做改动）：告警在第 2 级（扩容）后恢复。"
        assert [t for t in texts if t != request] == [end], texts


async def test_an_english_readers_remediation_pushes_stay_english(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    status, titles, shown, until = await approved_at_rung_two(ts_env, deps, Language.EN, "UTC")
    assert status.state == "resolved", status.outcome
    assert titles["email"] == [
        "Approval needed: scale out (absolute replica count, capped by the blast-radius limit) "
        "of cls-test0001/prod/checkout",
        "Alert cleared: cls-test0001/prod/checkout",
    ]
    said = (
        f"Remediation `{status.remediation_id}`: a dry run, nothing was changed: the alert "
        "cleared at rung 2 (scale_out)."
    )
    assert said in [text.strip() for text in shown["email"]]
    # A reader in UTC reads the deadline in UTC, said so; with no way to speak to the product
    # (no 小智 device, 接入点 or voice token), not told to answer by voice.
    (request,) = [t for t in shown["email"] if "Approve or refuse" in t]
    assert f"discussion before {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC," in request
    assert "Approve or refuse it on its page or in its discussion before" in request, request
    # Its page is linked, at this run (an e-mail's reader has no MCP tool to answer with).
    page = f"/app/remediation?id={status.remediation_id}&run={status.run_key.partition('@')[2]}"
    assert request.rstrip().endswith(f"{deps.settings.public_base_url}{page}"), request


def test_a_pushs_chinese_rung_and_mode_names_are_the_pages() -> None:
    """Written twice (a workflow reads no catalog): the push and the page name a rung alike."""
    from api.i18n import translations
    from api.routers.ops_pages import REMEDIATION_STATES, RUNG_NAMES

    zh = translations(Language.ZH).gettext
    assert RUNG_NAMES_ZH == {rung: zh(name) for rung, name in RUNG_NAMES.items()}
    assert MODES_ZH == {mode: zh(REMEDIATION_STATES[mode]) for mode in MODES_ZH}
    # A hand-over's reason the run builds: its push and its page say it alike.
    assert HANDED_OVER_ZH == {msgid: zh(msgid) for msgid in HANDED_OVER_ZH}


async def test_a_chinese_readers_hand_over_names_the_rungs_tried_in_chinese(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Its frame was Chinese, the rungs tried and the reason English ("已尝试：restart (not
    resolved)", "lead refused rung 3"); the refuser's own words stay as typed."""
    remediation_settings(deps, remediation_approval_from_rung=3)
    await add_user(deps, USER, language=Language.ZH)
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url), user=USER)
        await state_reaches(ts_env, handle, ("waiting_approval",))
        answer = ApprovalInput(
            approver="lead", approver_permission="execute", approve=False, reason="not now"
        )
        await handle.execute_update(
            GradedRemediationWorkflow.approve, await as_door(deps, handle, answer)
        )
        status = await handle.result()
    assert status.state == "handed_over", status.outcome
    assert status.outcome == "a dry run, nothing was changed: lead refused rung 3: not now"
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    (hand_over,) = [m for m in inbox if m.title.startswith("需要人工处理")]
    assert "。已尝试：重启（未解决）、扩容（未解决）。" in hand_over.body, hand_over.body
    said = "已停止：演练，未做任何改动：lead 拒绝了第 3 级：not now。告警："
    assert said in hand_over.body, hand_over.body
