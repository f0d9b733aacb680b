"""A log source Tencent Cloud refuses is said in the spoken headline with what to do: keys or
a permission to fix, a region to check, a busy API to wait for (all four were "Yesterday's
logs could not be read" alike, and the user could not tell a fix from a wait)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, make_user
from tests.standins.tencent_api import TencentApi
from tests.support.servers import serve
from tests.support.tencent import standin_tencent


@pytest.mark.parametrize(
    ("refused", "language", "said"),
    [
        (["AuthFailure.UnauthorizedOperation"], "en", "refused the keys or a permission: ask"),
        (["AuthFailure.SignatureFailure"], "zh", "腾讯云拒绝了密钥或权限，请管理员检查"),
        (["RequestLimitExceeded"] * 50, "en", "busy: prepare it again on the briefing page"),
        (["UnsupportedRegion"], "en", "check the log source's region and topic"),
        # Answered, not done (a search timed out): a wait, not the network to check.
        (["FailedOperation.SearchTimeout"] * 50, "en", "could not complete the search"),
    ],
)
async def test_a_refused_log_source_is_said_with_what_to_do(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, refused: list[str], language: str, said: str
) -> None:
    api = TencentApi()
    api.failures = {"SearchLog": list(refused)}
    source = {"type": "cls", "topic_id": "topic-1"}
    config = BriefingConfig(timezone="Asia/Shanghai", language=language, log_source=source)
    await make_user(deps.db, "rae")
    async with serve(api.app()) as base:
        deps.tencent = standin_tencent(base)
        async with briefing_stack(ts_env, deps) as stack:
            day = await stack.plan(config)
            await stack.service.create("rae", config)
            await stack.skip_to(day.window_start + timedelta(minutes=20))
            spoken = await stack.service.greet("rae", via="voice", request_id="morning", within=15)
    # In the headline, the first sentence with the greeting: a voice cut to three says it.
    headline = spoken.text.split("。" if language == "zh" else ". ")[0]
    assert said in headline, spoken.text
