"""A briefing asked for by date: the date as people write it finds the stored one."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.errors import BriefingNotFoundError, InvalidBriefingError
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from api.app import create_app
from tests.briefing.harness import make_user
from tests.briefing.test_briefing_share import _store
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.servers import http_client, serve


async def test_a_date_without_leading_zeros_finds_the_briefing_and_a_future_one_is_not_found(
    dev_env: WorkflowEnvironment, settings: Settings, deps: WorkerDeps
) -> None:
    user = unique("dates")
    await make_user(deps.db, user)  # a date of a user nobody registered is "no user"
    await _store(deps, user, "2026-01-05")
    service = BriefingService(dev_env.client, settings, deps.db)

    for asked in ("2026-01-05", "2026-1-5", "2026-01-5"):
        view = await service.get_briefing(user, asked)
        assert view.date == "2026-01-05", asked
        shared = await service.share(user, asked)
        assert shared.url
    with pytest.raises(BriefingNotFoundError, match="no briefing of 2999-01-05"):
        await service.get_briefing(user, "2999-01-05")
    with pytest.raises(InvalidBriefingError) as bad:
        await service.get_briefing(user, "2026-13-01")
    assert bad.value.field == "date"


async def test_a_path_date_that_is_no_date_is_a_422_naming_it_in_the_path(
    settings: Settings,
) -> None:
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        headers = await admin_headers(settings)
        read = await http.get("/briefings/2026-02-30", headers=headers)
        shared = await http.post("/briefings/2026-02-30/share", headers=headers)
        sent = await http.post("/briefings/send", json={"date": "2026-02-30"}, headers=headers)
    for answer, where in ((read, "path"), (shared, "path"), (sent, "body")):
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"] == [where, "date"], answer.request.url
        assert "is not a date as YYYY-MM-DD" in error["msg"]
