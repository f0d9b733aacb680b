"""ReminderWorkflow — one run of a scheduled reminder or news digest (a Schedule starts it)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from ambient.domain.checks import CheckPageInput, PageCheck
    from ambient.domain.notify import Message
    from ambient.domain.reminders import ReminderRun
    from ambient.domain.watches import notification_targets

from workflows.watch_controls import announce


@workflow.defn
class ReminderWorkflow:
    @workflow.run
    async def run(self, run: ReminderRun) -> str:
        config = run.config
        # The schedule gives each run its own workflow id: a natural idempotency key.
        key = workflow.info().workflow_id
        targets = notification_targets(config.notification, config.targets)
        if config.action == "reminder":
            message = Message(title="Reminder", body=config.message)
        else:
            message = Message(title="News digest", body=await self.digest(run))
        await announce(
            user=run.user,
            task=run.task,
            kind=f"schedule.{config.action}",
            key=key,
            payload={"title": message.title, "body": message.body[:2000]},
            message=message,
            targets=targets,
        )
        return message.body

    async def digest(self, run: ReminderRun) -> str:
        checks = await asyncio.gather(
            *(
                workflow.execute_activity(
                    "check_page",
                    # Each run is its own workflow: compare with the last run's stored page.
                    CheckPageInput(
                        task=run.task,
                        url=str(url),
                        keywords=run.config.categories,
                        since_stored=True,
                    ),
                    result_type=PageCheck,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=2),
                )
                for url in run.config.news_urls
            )
        )
        sections = []
        for check in checks:
            if check.outcome == "error":
                sections.append(f"**{check.url}**: unavailable ({check.error})")
            elif check.outcome == "baseline":
                sections.append(f"**{check.url}**: first look taken; news appear from tomorrow")
            elif check.hits:
                lines = [f"- [{k}] {line}" for k, found in check.hits.items() for line in found]
                sections.append(f"**{check.url}**\n" + "\n".join(lines))
            elif check.excerpt:
                added = [ln[1:] for ln in check.excerpt.splitlines() if ln.startswith("+")][:5]
                sections.append(f"**{check.url}**\n" + "\n".join(f"- {ln}" for ln in added))
            else:
                sections.append(f"**{check.url}**: nothing new")
        return "\n\n".join(sections)
