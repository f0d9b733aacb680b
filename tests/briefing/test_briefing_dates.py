"""A briefing asked for by date: the date as people write it finds the stored one."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.service import BriefingNotFoundError, BriefingService, InvalidBriefingError
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from tests.briefing.test_briefing_share import _store
from tests.conftest import unique


async def test_a_date_without_leading_zeros_finds_the_briefing_and_a_future_one_is_not_found(
    dev_env: WorkflowEnvironment, settings: Settings, deps: WorkerDeps
) -> None:
    user = unique("dates")
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
