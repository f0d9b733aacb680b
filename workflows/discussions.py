"""DiscussionNotifyWorkflow — `discussion-notify/{message id}`: tell the other people, once.

Started when a message is posted; the workflow id makes a second start for the same message a
no-op, and each recipient's delivery is keyed by message and recipient.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ambient.discussions.rules import DiscussionNotice
    from ambient.domain.notify import Message, NotificationKind, Target, Wording
    from ambient.render import markdown_literal

from workflows.sends import deliver, given_up


@workflow.defn
class DiscussionNotifyWorkflow:
    @workflow.run
    async def run(self, notice: DiscussionNotice) -> list[str]:
        # Who and the topic are text (anyone's words): shown as written, never a link or markup
        # in the email or robot that renders the body; the message itself is markdown.
        line = " ".join(notice.topic.split())  # one line: no headings, no broken title
        who = markdown_literal(notice.from_id)
        topic = markdown_literal(line)
        body = f"**{who}** in *{topic}*:\n\n{notice.content}"
        # In Chinese, to whoever reads it (the notify activity picks).
        zh = Wording(
            title=f"{notice.from_id} 在「{line}」中留言"[:200],
            body=f"**{who}** 在「{topic}」中留言：\n\n{notice.content}",
        )
        for recipient in notice.recipients:
            try:
                await deliver(
                    user=recipient,
                    key=f"discussion/{notice.message_id}/{recipient}",
                    message=Message(title=f"{notice.from_id} in {line}"[:200], body=body, zh=zh),
                    targets=[Target(type="inbox", target="")],
                    about=f"a message from {notice.from_id} in a discussion",
                    kind=NotificationKind.SYSTEM,
                )
            except ActivityError as error:
                given_up(error)
        return notice.recipients
