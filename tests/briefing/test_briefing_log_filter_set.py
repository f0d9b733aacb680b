"""A CLS filter CLS refuses is refused when the briefing is set up or its filter changed, by
field, through every door; any other failure of that one search refuses nothing."""

from __future__ import annotations

import dataclasses

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.errors import InvalidBriefingError
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, make_user
from tests.standins.tencent_api import TencentApi
from tests.support.mcp_as import mcp_as
from tests.support.servers import serve
from tests.support.tencent import ops_state, standin_tencent

REFUSED = (
    "log_source.query: CLS refuses the filter 'level:ERROR' on topic topic-1 "
    "(FailedOperation.QueryError: QueryError [illegal_argument_exception] Cannot search on "
    "field [level] since it is not indexed); give one on fields the topic's index holds (or "
    "index the field in its index configuration), or '*'"
)


def _source(query: str) -> dict[str, str]:
    return {"type": "cls", "topic_id": "topic-1", "query": query}


async def test_a_filter_on_a_field_without_an_index_is_refused_when_set_by_name(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """`level:ERROR` on a topic whose index lacks `level` was taken, and every morning's read
    failed with "yesterday's logs could not be read". Now one search (one log of the last hour)
    tries it at create and at a change of it: refused by field, naming CLS's reason, through
    the MCP tool too; nothing starts, and the running config stays."""
    api = TencentApi(indexed={"msg"})
    await make_user(deps.db, "rae")
    async with serve(api.app()) as base:
        deps.tencent = standin_tencent(base)
        async with briefing_stack(ts_env, deps) as stack:
            with pytest.raises(InvalidBriefingError) as at_create:
                await stack.service.create("rae", {"log_source": _source("level:ERROR")})
            assert await stack.service.read_status("rae") is None  # nothing started
            settings = deps.settings.model_copy(
                update={"temporal_task_queue": stack.worker.task_queue}
            )
            state = dataclasses.replace(
                ops_state(deps, deps.tencent, settings), temporal=ts_env.client
            )
            async with mcp_as(state, "rae") as mcp:
                by_tool = await mcp.call_tool(
                    "create_daily_briefing", {"log_source": _source("level:ERROR")}
                )
            await stack.service.create("rae", {"log_source": _source("msg:refused")})
            with pytest.raises(InvalidBriefingError) as at_change:
                await stack.service.create("rae", {"log_source": _source("level:ERROR")})
            kept = await stack.service.read_status("rae")
    assert str(at_create.value) == REFUSED and at_create.value.field == "log_source.query"
    assert at_create.value.given == "level:ERROR"
    assert by_tool.is_error
    assert " ".join(getattr(c, "text", "") for c in by_tool.content).endswith(REFUSED)
    assert str(at_change.value) == REFUSED
    assert kept is not None and kept.config.log_source is not None
    assert kept.config.log_source.query == "msg:refused"  # type: ignore[union-attr]
    searches = [p for _, action, p in api.calls if action == "SearchLog"]
    tries = [p for p in searches if p["To"] - p["From"] == 3_600_000]
    assert len(tries) == 4 and all(p["Limit"] == 1 for p in tries)
    # Set up after its preparation hour, the briefing prepares today's at once: that read
    # (yesterday's whole day) runs the accepted filter, never a refused one.
    assert all(p["QueryString"] == "msg:refused" for p in searches if p not in tries)


@pytest.mark.parametrize(
    "failure",
    [
        "AuthFailure.UnauthorizedOperation",
        "FailedOperation.SearchTimeout",
        "InternalError",
        # A query that failed to run, naming no index or syntax: a filter written otherwise
        # would meet it too (it was refused as the filter's).
        "FailedOperation.QueryError",
    ],
)
async def test_a_filter_tried_in_vain_for_another_reason_is_not_refused(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, failure: str
) -> None:
    """The keys or a permission, a search that timed out, Tencent Cloud failing: no refusal of
    the config (the morning's read says those, with what to do)."""
    api = TencentApi(indexed={"msg"})
    api.failures["SearchLog"] = [failure]
    api.failure_words["SearchLog"] = "search_phase_execution_exception: all shards failed"
    await make_user(deps.db, "rae")
    async with serve(api.app()) as base:
        deps.tencent = standin_tencent(base)
        async with briefing_stack(ts_env, deps) as stack:
            made = await stack.service.create("rae", {"log_source": _source("msg:refused")})
    assert made.created and api.failures["SearchLog"] == []  # tried, and failed


async def test_a_topic_with_no_index_is_refused_when_set_and_said_as_such(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A topic with no index at all (CLS: ResourceNotFound.IndexNotExist) was taken, and every
    morning said "the log topic does not exist"; now refused by field, saying what to turn on."""
    api = TencentApi(indexed={"msg"})
    api.failures["SearchLog"] = ["ResourceNotFound.IndexNotExist"]
    api.failure_words["SearchLog"] = "index not exist"
    await make_user(deps.db, "rae")
    async with serve(api.app()) as base:
        deps.tencent = standin_tencent(base)
        async with briefing_stack(ts_env, deps) as stack:
            with pytest.raises(InvalidBriefingError) as refused:
                await stack.service.create("rae", {"log_source": _source("msg:refused")})
    assert refused.value.field == "log_source.topic_id", refused.value
    assert "it has no index" in str(refused.value) and "CLS console" in str(refused.value)


@pytest.mark.parametrize(
    ("query", "field"),
    [("msg:payment AND level:ERROR", "level"), ('NOT pod:"api:v2" AND msg:x', "pod")],
)
async def test_a_filter_of_several_parts_with_a_field_without_an_index_is_refused(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, query: str, field: str
) -> None:
    """A filter whose second part names a field the index lacks is refused by CLS as the first
    is (the stand-in checked a single `key:value` only, so such a filter passed our tests)."""
    api = TencentApi(indexed={"msg"})
    await make_user(deps.db, "rae")
    async with serve(api.app()) as base:
        deps.tencent = standin_tencent(base)
        async with briefing_stack(ts_env, deps) as stack:
            with pytest.raises(InvalidBriefingError) as refused:
                await stack.service.create("rae", {"log_source": _source(query)})
            made = await stack.service.create("rae", {"log_source": _source("msg:a AND msg:b")})
    assert refused.value.field == "log_source.query", refused.value
    assert f"Cannot search on field [{field}]" in str(refused.value), refused.value
    assert made.created
