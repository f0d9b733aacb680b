"""ReminderWorkflow — one run of a scheduled reminder or news digest (a Schedule starts it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.watches import WatchActivities
    from ambient.domain.checks import CheckPageInput, PageCheck
    from ambient.domain.notify import Message
    from ambient.watches.configs import notification_targets
    from ambient.watches.reminders import ReminderRun

from workflows.watch_controls import delivery_errors, failure_text, record_event


async def check_news_pages(
    task: str, urls: Sequence[object], categories: list[str]
) -> list[PageCheck | BaseException]:
    """Every news page checked against the page as ``task`` stored it last; a check that failed
    for good is its exception, so one bad page is a line saying so, not a lost digest."""
    return await asyncio.gather(
        *(
            workflow.execute_activity_method(
                WatchActivities.check_page,
                CheckPageInput(task=task, url=str(url), keywords=categories),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
            for url in urls
        ),
        return_exceptions=True,
    )


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
        kind = f"schedule.{config.action}"
        await record_event(
            user=run.user,
            task=run.task,
            kind=kind,
            key=key,
            payload={"title": message.title, "body": message.body[:2000]},
        )
        errors = await delivery_errors(
            user=run.user,
            key=key,
            message=message,
            targets=targets,
            failed="notify: ",
            task=run.task,
        )
        if errors:
            # Counted and recorded where the user sees events (the run itself completes).
            await record_event(
                user=run.user,
                task=run.task,
                kind="schedule.delivery_failed",
                key=f"{key}/delivery-failed",
                payload={
                    "event": kind,
                    "title": message.title,
                    "failed": len(errors),
                    "errors": errors[:10],
                },
            )
        return message.body

    async def digest(self, run: ReminderRun) -> str:
        # Each run is its own workflow: compare with the last run's stored page.
        checks = await check_news_pages(run.task, run.config.news_urls, run.config.categories)
        sections = []
        for url, check in zip(run.config.news_urls, checks, strict=True):
            if isinstance(check, BaseException):
                sections.append(f"**{url}**: unavailable ({failure_text(check)})")
            elif check.outcome == "error":
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
