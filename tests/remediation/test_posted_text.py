"""A remediation's posts on its discussion are markdown: a person's words in them (an abort's
reason) are escaped there once; the discussion page shows them, and a search finds them, as
written."""

from __future__ import annotations

import html
import re

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.discussions.service import DiscussionService
from ambient.domain.users import UserCreate
from ambient.remediation.runs import AbortInput
from ambient.remediation.storage import record_asked
from ambient.render import markdown_literal
from ambient.storage.models import DiscussionMessage
from ambient.storage.users import UserRepository
from tests.conftest import running_worker, unique
from tests.remediation.support import alert, error_rate, remediation_settings, state_reaches
from tests.remediation.test_workflow import start
from tests.support.pages import signed_in
from workflows.remediation import GradedRemediationWorkflow


async def test_an_abort_reason_is_escaped_once_in_the_outcome_post_and_shown_as_written(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner = unique("posts-ops")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=owner))
        await session.commit()
    reason = "*not now* see [runbook](https://evil.example) `deploy_x`"
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url), user=owner)
        await state_reaches(ts_env, handle, ("waiting_approval",))
        # As the service sends it: the checked request recorded first, its token sent, so the
        # name is trusted.
        async with deps.db.writing() as session:
            run_key = f"{handle.id}@{handle.result_run_id}"
            sent = await record_asked(session, run_key, owner, {"reason": reason}, "abort")
        asked = AbortInput(by=owner, reason=reason, token=sent)
        await handle.signal(GradedRemediationWorkflow.abort, asked)
        status = await handle.result()
    assert status.state == "aborted"
    written = f"aborted: a dry run, nothing was changed: aborted by {owner}: {reason}"
    async with deps.db.session() as session:
        posts = await session.scalars(
            select(DiscussionMessage).where(DiscussionMessage.from_id == "remediation")
        )
        [post] = [p for p in posts if "outcome" in p.tags and owner in p.content]
    # Markdown (what read_discussion gives and a client may render): the words, escaped once.
    assert post.content == markdown_literal(written)
    # Searched for as written, it is found.
    found = await DiscussionService(deps.db, deps.settings).search_messages(owner, "`deploy_x`")
    assert [m.id for m in found.results] == [post.id]
    async with signed_in(deps.settings, token) as http:
        page = await http.get("/app/discussion", params={"id": post.discussion_id})
    assert page.status_code == 200
    shown = [html.unescape(p) for p in re.findall(r"<pre>(.*?)</pre>", page.text, re.S)]
    assert written in shown
