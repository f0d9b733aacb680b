"""A remediation page's audit reads as `ambient remediation show` says it: each line's time,
what was done and who did it, in the reader's language; not its record's JSON."""

from __future__ import annotations

import asyncio
import re
from html import unescape

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language
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
from tests.support.servers import HANG
from tests.support.waits import eventually

ITEM = re.compile(
    r'<li><time>[^<]*</time> <b>([^<]*)</b>(?: <span class="via">([^<]*)</span>)?'
    r' <span class="muted">([^<]*)</span></li>'
)


def audit_of(page: str) -> tuple[str, list[tuple[str, str]]]:
    """The page's audit list as written, and its (action, actor) lines (an action with the
    door it came through, when its record names one)."""
    listed = page.partition('id="audit">')[2].partition("</ol>")[0]
    return listed, [
        (unescape(f"{a} {via}" if via else a), unescape(b)) for a, via, b in ITEM.findall(listed)
    ]


async def test_the_audit_of_a_refused_run_names_each_action_in_the_readers_language(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=2)
    name, reader = unique("kai"), unique("lan")
    await add_user(deps, name, permission="dry_run", language=Language.EN)
    await add_user(deps, reader, permission="dry_run", role="admin", language=Language.ZH)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        sent = alert(metric_url, workload=name, settle_seconds=0)
        rid = (await remediations.start(name, sent, mode="dry_run")).remediation_id
        runs = RunKeys(remediations, name, rid)
        first = await eventually(runs.waiting, "rung 2 waits for approval")
        await remediations.approve(name, rid, False, "not now", via="web")
        await eventually(lambda: runs.ended(first), "the refused run hands over")
        # Its state is final before its end is recorded (the `finished` audit, the row): the
        # page is read once the run has closed, all of that written.
        await asyncio.wait_for(dev_env.client.get_workflow_handle(rid).result(), HANG)
        pages = {}
        for who in (name, reader):
            token = await new_token(deps, who)
            async with signed_in(settings, token) as http:
                shown = await http.get("/app/remediation", params={"id": rid})
                assert shown.status_code == 200, shown.headers.get("location")
                pages[who] = audit_of(shown.text)

    listed, lines = pages[name]
    # Its record's JSON was shown under each line ({"rung": 2, "approve": false, ...}).
    assert "{" not in listed and "<pre>" not in listed, listed
    # A dry run's restart is not verified healthy: rung 2 waits, is refused, and hands over.
    assert lines == [
        ("scored", "remediation"),
        ("planned", "remediation"),
        ("baseline", "remediation"),
        ("permission", "remediation"),
        ("gate", "remediation"),
        ("checkpoint", "remediation"),
        ("action", "remediation"),
        ("verification", "remediation"),
        ("permission", "remediation"),
        ("workload read before asking", "remediation"),  # a paused one is not asked about
        ("refusal sent on the web page", name),
        ("token spent", name),
        ("refused", name),
        ("hand over", "remediation"),
        ("finished", "remediation"),
    ], lines
    listed, lines = pages[reader]
    assert "{" not in listed and "<pre>" not in listed, listed
    assert [action for action, _ in lines] == [
        "已评分",
        "已计划",
        "事发前基线",
        "权限核定",
        "放行检查",
        "变更前快照",
        "执行变更",
        "验证",
        "权限核定",
        "审批前读取工作负载",
        "已发送拒绝 在网页上",
        "令牌已使用",
        "已拒绝",
        "转交给人",
        "已结束",
    ], lines
