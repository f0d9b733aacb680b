"""The settings page's digest form: a refusal names the field by its label, in the page's
language, and shows the form again as the user filled it in."""

from __future__ import annotations

import html
import re

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.support.pages import signed_in


async def test_a_refused_digest_is_said_by_its_label_and_keeps_what_was_typed(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    name = unique("digest")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language="zh"))
        await session.commit()
    async with signed_in(settings, token, "/app/settings") as http:
        for typed in ("2", "1e400", "abc", "2.5"):
            refused = await http.post("/app/digest", data={"enabled": "on", "every_minutes": typed})
            assert refused.status_code == 422, (typed, refused.status_code, refused.headers)
            said = html.unescape(refused.text)
            notice = re.search(r'<p class="error" role="alert">(.*?)</p>', said, re.S)
            assert notice is not None and "查看间隔（分钟）" in notice.group(1), said
            assert "every_minutes:" not in notice.group(1)
            assert "Input should" not in notice.group(1), notice.group(1)  # in Chinese
            form = said[
                said.index('id="digest"') : said.index("</form>", said.index('id="digest"'))
            ]
            assert f'value="{typed}"' in form and re.search(r'name="enabled"\s*checked', form)
        # Nothing was stored: the page still shows the digest off.
        shown = (await http.get("/app/settings")).text
        form = shown[
            shown.index('id="digest"') : shown.index("</form>", shown.index('id="digest"'))
        ]
        assert not re.search(r'name="enabled"\s*checked', form)


async def test_a_digest_paused_in_the_web_ui_is_said_paused_on_the_settings_page(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The page showed the digest on, nothing said, while the paused schedule ran nothing."""
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    name = unique("digest-paused")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language="zh"))
        await session.commit()
    handle = dev_env.client.get_schedule_handle(f"event-agent/{name}")
    try:
        async with signed_in(settings, token, "/app/settings") as http:
            saved = await http.post("/app/digest", data={"enabled": "on", "every_minutes": "15"})
            assert saved.status_code == 303, saved.text
            running = html.unescape((await http.get("/app/settings")).text)
            await handle.pause(note="paused from the Web UI")
            paused = html.unescape((await http.get("/app/settings")).text)
    finally:
        await handle.delete()
    said = "已被运维人员在 Temporal Web UI 中暂停"
    assert said not in running
    assert said in paused, paused[paused.index('id="digest"') - 200 :][:1500]
