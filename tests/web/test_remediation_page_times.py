"""A remediation's page gives the time a run waits until in the reader's time zone."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, expect
from temporalio.testing import WorkflowEnvironment

from ambient import no_answer
from ambient.deps import WorkerDeps
from ambient.remediation.views import RemediationError
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import unique
from tests.remediation.support import (
    add_user,
    alert,
    closed_today_and_tomorrow,
    new_token,
    remediation_settings,
    remediations_on_dev,
)
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.web.test_pages_browser import phone_page


async def test_a_run_waiting_for_its_change_window_says_until_when_in_the_readers_zone(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, browser: Browser
) -> None:
    """It said "until 2026-11-28 00:00 UTC" to a reader whose settings name Asia/Shanghai,
    where every other time on the pages is in the reader's zone."""
    # Closed today and tomorrow: the first rung waits for the window of the day after.
    remediation_settings(
        deps,
        remediation_change_windows=closed_today_and_tomorrow(deps),
        remediation_max_gate_wait_minutes=48 * 60,
    )
    name = unique("lan")
    await add_user(deps, name)
    async with deps.db.session() as session:
        user = await UserRepository(session).get(name)
        assert user is not None
        user.language, user.timezone = "zh", "Asia/Shanghai"
        await session.commit()
    token = await new_token(deps, name)
    async with remediations_on_dev(dev_env, deps) as (metric_url, settings, remediations):
        sent = alert(metric_url, workload=name, settle_seconds=0)
        rid = (await remediations.start(name, sent, mode="dry_run")).remediation_id

        async def waiting_until() -> datetime | None:
            try:
                view = await remediations.get(name, rid)
            except RemediationError as exc:  # its first task not done yet on a busy machine
                if no_answer.SILENT_WORKER not in str(exc):
                    raise
                return None
            return view.waiting.until if view.waiting else None

        until = await eventually(waiting_until, "the run waits for its change window")
        shown = until.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
        async with serve(create_app(settings)) as base, phone_page(browser) as page:
            await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
            await page.goto(f"{base}/app/remediation?id={rid}")
            row = page.locator("tr", has=page.locator("th", has_text=re.compile("^等待$")))
            await expect(row).to_contain_text(shown)
            assert "UTC" not in await row.inner_text()
            # Why, in Chinese too: it said "outside change windows; next opens <UTC time>".
            said = " ".join((await row.locator("td").inner_text()).split())
            assert said == f"变更窗口 (级别 重启) 至 {shown} 现在不在变更窗口内"
        await dev_env.client.get_workflow_handle(rid).terminate("test over")
