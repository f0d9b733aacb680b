"""Our workflows' posts on the discussion bus (as the product's agents)."""

from __future__ import annotations

from temporalio import activity

from ambient.discussions.rules import AgentPost, AgentPosted
from ambient.discussions.service import DiscussionService
from ambient.settings import Settings
from ambient.storage import Database


class DiscussionActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        # No Temporal client here: people in the discussion hear of it through the
        # workflow's own pushes; the bus keeps the thread.
        self._service = DiscussionService(db, settings)

    @activity.defn
    async def post_to_discussion(self, post: AgentPost) -> AgentPosted:
        """Post once per message id; joins the open discussion on the topic or opens one."""
        info = activity.info()
        if post.subject == info.workflow_id:
            # A workflow posting about itself posts about this run: the same alert remediated
            # again later (maybe for another user) is another remediation, with its own
            # discussion and its own members (the run key, as RemediationRecord.run_key).
            post = post.model_copy(update={"subject": f"{info.workflow_id}@{info.workflow_run_id}"})
        posted = await self._service.post_as_agent(post)
        return AgentPosted(discussion_id=posted.discussion_id, message_id=posted.message_id)
