"""DiscussionNotifyWorkflow — `discussion-notify/{message id}`: tell the other people, once.

Started when a message is posted; the workflow id makes a second start for the same message a
no-op, and each recipient's delivery is keyed by message and recipient.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ambient.discussions.rules import DiscussionNotice
    from ambient.domain.notify import Message, NotificationKind, Target

from workflows.watch_controls import deliver


@workflow.defn
class DiscussionNotifyWorkflow:
    @workflow.run
    async def run(self, notice: DiscussionNotice) -> list[str]:
        body = f"**{notice.from_id}** in *{notice.topic}*:\n\n{notice.content}"
        for recipient in notice.recipients:
            await deliver(
                user=recipient,
                key=f"discussion/{notice.message_id}/{recipient}",
                message=Message(title=f"{notice.from_id} in {notice.topic}"[:200], body=body),
                targets=[Target(type="inbox", target="")],
                kind=NotificationKind.SYSTEM,
            )
        return notice.recipients
