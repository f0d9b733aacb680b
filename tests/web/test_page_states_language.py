"""The pages name the states of runs and briefings in the page's language."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ambient.briefing.models import BriefingContent
from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Briefing, RemediationRecord
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.remediation.support import run_row
from tests.support.pages import signed_in
from tests.support.servers import free_port, http_client, serve


async def test_a_chinese_users_remediation_list_names_states_and_modes_in_chinese(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="yun", language=Language.ZH)
        )
        for number, (state, mode) in enumerate(
            [("waiting_approval", "dry_run"), ("budget_exhausted", "execute")]
        ):
            session.add(
                RemediationRecord(
                    run_key=f"remediation-yun-{number}@run",
                    remediation_id=f"remediation-yun-{number}",
                    user="yun",
                    cluster_id="cls-abcd1234",
                    service=f"default/web-{number}",
                    alert_type="cpu",
                    source="test",
                    mode=mode,
                    state=state,
                    score=80,
                    budget=4,
                    attempts=1,
                )
            )
        await session.commit()
    async with signed_in(settings, token) as http:
        page = (await http.get("/app/remediations")).text
    cards = page[page.index('id="remediations"') :]
    for english in ("waiting_approval", "budget_exhausted", "dry_run", "execute"):
        assert english not in cards, english
    for chinese in ("等待批准", "预算用尽", "演练", "执行"):
        assert chinese in cards, chinese


async def test_a_chinese_users_briefing_page_names_each_briefings_state_in_chinese(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="qing", language=Language.ZH)
        )
        for day, status in (("2026-11-24", "pushed"), ("2026-11-25", "given")):
            content = BriefingContent(
                headline="一切正常",
                spoken_text="昨天一切正常。",
                date=day,
                generated_by="offline",
                spoken_segments=["昨天一切正常。"],
            )
            session.add(
                Briefing(
                    user="qing", date=day, status=status, content=content.model_dump(mode="json")
                )
            )
        await session.commit()
    async with signed_in(settings, token) as http:
        page = (await http.get("/app/briefings")).text
    states = re.findall(r'<span class="state">([^<]*)</span>', page)
    assert states == ["已播报", "已播报", "已推送"], states


async def test_a_briefing_page_for_a_day_that_is_no_date_says_so_on_the_page(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="ning"))
        await session.commit()
    async with signed_in(settings, token) as http:
        for day in ("2026-02-30", "tomorrow"):
            page = await http.get("/app/briefings", params={"date": day})
            assert page.headers["content-type"].startswith("text/html"), page.text
            assert f"Date: &#39;{day}&#39; is not a date as YYYY-MM-DD" in page.text
            assert "<h2>History</h2>" in page.text
        # A day the service reads (strptime) and has no briefing for: said as asked.
        page = await http.get("/app/briefings", params={"date": "2026-1-5"})
        assert "No briefing for 2026-1-5." in page.text


async def test_a_briefing_day_that_is_no_date_is_said_in_chinese_on_a_chinese_page(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="lan", language="zh"))
        await session.commit()
    async with signed_in(settings, token) as http:
        page = await http.get("/app/briefings", params={"date": "2026-02-30"})
    shown = re.search(r'<p class="muted">([^<]*)</p>', page.text)
    assert shown is not None, page.text
    assert shown[1] == "日期 &#39;2026-02-30&#39; 不是 YYYY-MM-DD 格式的日期"
    assert "<h2>历史</h2>" in page.text


async def test_a_chinese_users_settings_name_the_rollback_permission_in_chinese(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    shown = {}
    async with serve(create_app(settings)) as base:
        for permission in ("none", "dry_run", "execute"):
            async with db.session() as session:
                user, token = await UserRepository(session).create(
                    UserCreate(name=f"zhu-{permission}".replace("_", "-"), language="zh")
                )
                user.rollback_permission = permission
                await session.commit()
            async with http_client(base, cookies={"ambient_token": token}) as http:
                page = (await http.get("/app/settings")).text
            found = re.search(r"回滚权限：<b>([^<]*)</b>", page)
            assert found is not None, page
            shown[permission] = found[1]
    assert shown == {"none": "无", "dry_run": "演练", "execute": "执行"}


async def test_a_briefing_given_by_voice_says_so_in_chinese(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="xia", language="zh"))
        day = "2026-11-25"
        content = BriefingContent(
            headline="一切正常",
            spoken_text="昨天一切正常。",
            date=day,
            generated_by="offline",
            spoken_segments=["昨天一切正常。"],
        )
        session.add(
            Briefing(
                user="xia",
                date=day,
                status="given",
                content=content.model_dump(mode="json"),
                given_at=datetime(2026, 11, 25, 8, 5, tzinfo=UTC),
                given_via="voice",
            )
        )
        await session.commit()
    async with signed_in(settings, token) as http:
        page = (await http.get("/app/briefings", params={"date": day})).text
    spoken = re.search(r"<p class=\"muted\">已于 [0-9:]+ 播报（([^<]*)）</p>", page)
    assert spoken is not None, page
    assert spoken[1] == "语音"


async def test_the_remediation_list_with_temporal_down_says_its_states_are_as_last_stored(
    settings: Settings, db: Database
) -> None:
    # A running run's row holds the state it was planned in: the API says so in a header,
    # the page showed "planned" for a run waiting for its approver, with no word of it.
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="ming", language=Language.ZH)
        )
        session.add(run_row("remediation-ming", "ming", mode="execute", state="planned"))
        await session.commit()
    async with signed_in(settings, token) as http:
        page = (await http.get("/app/remediations")).text
    notice = re.search(r'<p class="notice" id="states-as-stored"[^>]*>(.*?)</p>', page, re.S)
    assert notice is not None, page
    assert "状态为最后记录的状态" in notice.group(1), notice.group(1)
