"""The briefings page said "Pushed at 10:00" (已于 10:00 推送) and the state "pushed" (已推送) of
a day whose inbox alone took it (no push channel set up, or each failed): now it says where it
went, the channels that took it or the inbox, in headless chromium."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig, plan_for
from ambient.briefing.service import BriefingService
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.briefing.harness import write_day_logs
from tests.briefing.test_briefing_after_window import DEAD, TAKES
from tests.briefing.test_briefing_surfaces import _all_day, _zone_away_from_midnight
from tests.conftest import running_worker, unique
from tests.notify.standins import PushEndpoints
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.web.test_pages_browser import phone_page

HHMM = r"\d{2}:\d{2}"


@pytest.mark.parametrize(
    ("channels", "language", "line", "state"),
    [
        (TAKES, Language.EN, f"Sent to your channels at {HHMM}", "pushed"),
        ([DEAD, *TAKES[1:]], Language.ZH, f"已于 {HHMM} 发到你的钉钉", "已推送"),
        ([], Language.EN, f"Put in your inbox at {HHMM}; no push channel took it", "in your inbox"),
        ([DEAD], Language.ZH, f"已于 {HHMM} 放入你的收件箱，没有推送渠道收到", "在收件箱"),
    ],
    ids=["all-en", "some-zh", "none-en", "failed-zh"],
)
async def test_the_briefing_page_says_where_a_pushed_briefing_went(
    browser: Browser,
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    channels: list[dict[str, str]],
    language: Language,
    line: str,
    state: str,
) -> None:
    name = unique("pushed-page")
    zone = _zone_away_from_midnight()
    today = datetime.now(ZoneInfo(zone)).date()
    logs = write_day_logs(tmp_path / "app.log", plan_for(today, BriefingConfig(timezone=zone)))
    async with serve(PushEndpoints().app()) as robots:
        deps.settings = deps.settings.model_copy(
            update={"wecom_base_url": robots, "dingtalk_base_url": robots}
        )
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        async with deps.db.session() as session:
            repo = UserRepository(session)
            user, token = await repo.create(UserCreate(name=name, language=language))
            await repo.set_push_config(user, {"channels": channels})
            await session.commit()
        async with running_worker(dev_env.client, deps) as worker:
            settings = deps.settings.model_copy(
                update={
                    "temporal_task_queue": worker.task_queue,
                    "temporal_address": dev_env.client.service_client.config.target_host,
                }
            )
            briefings = BriefingService(dev_env.client, settings, deps.db)
            await briefings.create(
                name, _all_day(zone, log_source={"type": "file", "path": str(logs)})
            )

            async def prepared() -> bool:
                return bool(await briefings.list_briefings(name))

            await eventually(prepared, "today's briefing prepared")
            async with serve(create_app(settings)) as base, phone_page(browser) as page:
                await page.context.add_cookies(
                    [{"name": "ambient_token", "value": token, "url": base}]
                )
                await page.goto(f"{base}/app/briefings")
                send = "发送到我的推送渠道" if language is Language.ZH else "Send to my channels"
                await page.get_by_role("button", name=send).click()
                await expect(page.get_by_role("status")).not_to_be_empty()
                await expect(page.locator("#pushed")).to_have_text(re.compile(f"^{line}$"))
                await expect(page.locator("#briefing .state")).to_have_text(state)
                # The day in the history too.
                await expect(page.locator(".cards .state").first).to_have_text(state)
