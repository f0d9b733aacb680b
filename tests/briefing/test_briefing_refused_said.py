"""A log source Tencent Cloud refuses is said in the spoken headline with what to do: keys or
a permission to fix, a region to check, a busy API to wait for (all four were "Yesterday's
logs could not be read" alike, and the user could not tell a fix from a wait)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.models import BriefingInputs, SourceNote
from ambient.briefing.offline import offline_draft
from ambient.briefing.report import full_report_markdown
from ambient.briefing.writer import finish
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, make_user
from tests.standins.tencent_api import TencentApi
from tests.support.servers import free_port, serve
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
    source = {"type": "cls", "topic_id": "topic-1"}
    config = BriefingConfig(timezone="Asia/Shanghai", language=language, log_source=source)
    await make_user(deps.db, "rae")
    async with serve(api.app()) as base:
        deps.tencent = standin_tencent(base)
        async with briefing_stack(ts_env, deps) as stack:
            day = await stack.plan(config)
            await stack.service.create("rae", config)  # its filter tried: answered
            api.failures = {"SearchLog": list(refused)}  # refused from the morning's read on
            await stack.skip_to(day.window_start + timedelta(minutes=20))
            spoken = await stack.service.greet("rae", via="voice", request_id="morning", within=15)
    # In the headline, the first sentence with the greeting: a voice cut to three says it.
    headline = spoken.text.split("。" if language == "zh" else ". ")[0]
    assert said in headline, spoken.text


@pytest.mark.parametrize(
    ("language", "item"),
    [
        ("zh", "数据源不可用：日志：腾讯云拒绝了密钥或权限，请管理员检查"),
        (
            "en",
            "logs unavailable: Tencent Cloud refused the keys or a permission: ask your "
            "administrator",
        ),
    ],
)
def test_a_refused_log_source_is_listed_whole_in_the_briefings_language(
    language: str, item: str
) -> None:
    """The page's "needs attention" item of a refused log source was Tencent's English words
    cut at 90 characters, mid-advice, in a Chinese briefing too. It says what to do, whole; the
    full report's sources keep Tencent's words."""
    detail = (
        "CLS topic topic-1: AuthFailure.UnauthorizedOperation: CAM refused the request for "
        "cls:SearchLog (RequestId 6f1c2d3e-aaaa-bbbb-cccc-0123456789ab); give the key's user "
        "the permission"
    )
    note = SourceNote(source="logs", ok=False, detail=detail, kind="auth")
    inputs = BriefingInputs(date="2026-12-06", language=language, notes=[note])
    assert offline_draft(inputs).needs_attention == [item]
    report = full_report_markdown(finish(offline_draft(inputs), inputs, "offline"), inputs)
    assert "AuthFailure.UnauthorizedOperation" in report


async def test_a_log_source_whose_api_is_not_reached_is_said_as_a_way_to_check(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Never reached (a refused connection: a wrong endpoint, DNS, a proxy): not a wait for a
    busy API but the way to it to check, told apart by the sentence failure() says."""
    source = {"type": "cls", "topic_id": "topic-1"}
    config = BriefingConfig(timezone="Asia/Shanghai", language="en", log_source=source)
    await make_user(deps.db, "rae")
    deps.tencent = standin_tencent(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    async with briefing_stack(ts_env, deps) as stack:
        day = await stack.plan(config)
        await stack.service.create("rae", config)
        await stack.skip_to(day.window_start + timedelta(minutes=20))
        spoken = await stack.service.greet("rae", via="voice", request_id="morning", within=15)
    assert "could not be reached: if it lasts" in spoken.text.split(". ")[0], spoken.text
