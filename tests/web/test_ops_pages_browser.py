"""Briefing and remediation pages in headless chromium: read the briefing, approve a step."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, Dialog, expect
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig, plan_for
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.storage.repositories import InboxRepository
from api.app import create_app
from tests.briefing.harness import write_day_logs
from tests.briefing.test_briefing_surfaces import _all_day, _zone_away_from_midnight
from tests.conftest import unique
from tests.remediation.support import (
    add_user,
    alert,
    new_token,
    remediation_settings,
    remediations_on_dev,
    waiting_dry_run,
)
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.web.test_pages_browser import fits_phone, phone_page


async def test_member_reads_the_briefing_and_approves_a_remediation_step(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("ops-web")
    await add_user(deps, name, permission="dry_run")
    token = await new_token(deps, name)
    zone = _zone_away_from_midnight()
    today = datetime.now(ZoneInfo(zone)).date()
    logs = write_day_logs(tmp_path / "app.log", plan_for(today, BriefingConfig(timezone=zone)))
    async with remediations_on_dev(dev_env, deps, healthy_from=1) as (
        metric_url,
        settings,
        remediations,
    ):
        briefings = BriefingService(dev_env.client, settings, deps.db)
        await briefings.create(name, _all_day(zone, log_source={"type": "file", "path": str(logs)}))

        async def prepared() -> bool:
            return bool(await briefings.list_briefings(name))

        await eventually(prepared, "the briefing is prepared")
        started = await remediations.start(
            name, alert(metric_url, workload=name, settle_seconds=0), mode="dry_run"
        )
        rid = started.remediation_id

        async def waiting() -> bool:
            return (await remediations.get(name, rid)).state == "waiting_approval"

        await eventually(waiting, "the remediation waits for approval")
        async with serve(create_app(settings)) as base, phone_page(browser) as page:
            await page.goto(f"{base}/signin")
            await page.get_by_label("API token").fill(token)
            await page.get_by_role("button", name="Sign in").click()

            await page.get_by_role("link", name="Briefings").click()
            briefing = page.locator("#briefing")
            await expect(briefing).to_contain_text(today.isoformat())
            await expect(briefing).to_contain_text("Spoken")
            await fits_phone(page, "10-briefing")
            await page.get_by_role("button", name="Send to my channels").click()
            # No push channel of the member's: the page says so, and that the inbox has it.
            await expect(page.get_by_role("status")).to_have_text(
                "No push channel of yours takes briefings: add one. Your inbox has it."
            )
            # The push carries a share link: it opens the report without signing in.
            async with deps.db.session() as session:
                sent = await InboxRepository(session).list(name)
            link = next(m.link for m in sent if m.link and "/share/" in m.link)
            shared = await page.context.browser.new_context(viewport={"width": 390, "height": 844})  # type: ignore[union-attr]
            share_page = await shared.new_page()
            # The link names the public URL; this test's API listens elsewhere: keep the path.
            await share_page.goto(base + urlsplit(link).path)
            await expect(share_page.locator("body")).to_contain_text(today.isoformat())
            await expect(share_page.locator("h1")).to_have_count(1)
            # Log templates keep their <*> placeholders (no markdown emphasis eats them).
            await expect(share_page.locator("table")).to_contain_text("<*>")
            assert await share_page.locator("table em").count() == 0
            await fits_phone(share_page, "10b-briefing-share-link")
            await shared.close()

            await page.get_by_role("link", name="Remediations").click()
            await page.locator("#remediations a").first.click()
            await expect(page.locator("main")).to_contain_text("waiting for approval")
            # The page's own buttons answer it: no MCP tool call to type (the service's words).
            await expect(page.locator("main")).not_to_contain_text("approve_remediation")
            await expect(page.locator("#audit")).to_contain_text("score")
            await fits_phone(page, "11-remediation-waiting")
            await page.get_by_label("Reason (optional)").fill("looks safe")
            # Approve asks first, as Abort does: the step changes the workload.
            asked: list[str] = []

            async def accept(dialog: Dialog) -> None:
                asked.append(dialog.message)
                await dialog.accept()

            page.on("dialog", accept)
            await page.get_by_role("button", name="Approve restart").click()
            # It says which step it approved, as every door names it.
            await expect(page.get_by_role("status")).to_have_text(
                "Approved step 1 (restart, a dry run)"
            )
            await expect(page.locator("main h1")).to_contain_text(name)

        async def moved_on() -> bool:
            return (await remediations.get(name, rid)).state != "waiting_approval"

        await eventually(moved_on, "the approved step runs")
        view = await remediations.get(name, rid)
        assert any(d.approver == name and d.approve for d in view.approvals)
        assert asked == [f"Approve restart for {rid}? The run takes this step."], asked


async def test_enter_in_the_reason_field_decides_nothing(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Enter in the reason field submitted the form's first button, Approve, with no question:
    an operator writing why they would refuse approved the step."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("enter")
    await add_user(deps, name, permission="dry_run")
    token = await new_token(deps, name)
    async with remediations_on_dev(dev_env, deps, healthy_from=1) as (url, settings, runs):
        rid = await waiting_dry_run(runs, name, url)
        async with serve(create_app(settings)) as base, phone_page(browser) as page:
            await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
            await page.goto(f"{base}/app/remediation?id={rid}")
            reason = page.get_by_label("Reason (optional)")
            await reason.fill("too risky at peak, refusing")
            await reason.press("Enter")
            # Enter sent nothing: the reason is still there to send with the button meant.
            await page.get_by_role("button", name="Refuse").click()
            await expect(page.get_by_role("status")).to_have_text(
                "Refused step 1 (restart, a dry run)"
            )
        view = await runs.get(name, rid)
    decided = [(d.approver, d.approve, d.reason) for d in view.approvals]
    assert decided == [(name, False, "too risky at peak, refusing")], decided


async def test_member_opens_a_discussion_and_replies_on_the_page(
    browser: Browser, deps: WorkerDeps
) -> None:
    name = unique("talker")
    await add_user(deps, name)
    token = await new_token(deps, name)
    async with serve(create_app(deps.settings)) as base, phone_page(browser) as page:
        await page.goto(f"{base}/signin")
        await page.get_by_label("API token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("link", name="Discussions").click()
        await page.get_by_label("Topic").fill(f"支付超时 {name}")
        await page.get_by_label("Message").fill("p99 上升到 3 秒")
        await page.get_by_role("button", name="Post").click()
        await expect(page.locator("#messages")).to_contain_text("p99 上升到 3 秒")
        await page.get_by_label(f"Reply as {name}").fill("已回滚，恢复正常")
        await page.get_by_role("button", name="Reply").click()
        await expect(page.get_by_role("status")).to_contain_text("Posted")
        await expect(page.locator("#messages li")).to_have_count(2)
        await fits_phone(page, "12-discussion")
