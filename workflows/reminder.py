"""ReminderWorkflow — one run of a scheduled reminder or news digest (a Schedule starts it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.watches import WatchActivities
    from ambient.domain.checks import CheckPageInput, PageCheck, more_new_lines, notice_said
    from ambient.domain.notify import Message, Wording
    from ambient.log_redaction import hide_in_urls
    from ambient.watches.notification_spec import notification_targets
    from ambient.watches.reminders import ReminderRun

from workflows.sends import delivery_errors, failure_text, record_event


async def check_news_pages(
    task: str, urls: Sequence[object], categories: list[str], round: str | None = None
) -> list[PageCheck | BaseException]:
    """Every news page checked against the page as ``task`` stored it last (with a ``round``,
    as its rounds before stored it last: `CheckPageInput.round`); a check that failed for good
    is its exception, so one bad page is a line saying so, not a lost digest."""
    return await asyncio.gather(
        *(
            workflow.execute_activity_method(
                WatchActivities.check_page,
                CheckPageInput(task=task, url=str(url), keywords=categories, round=round),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=2),
                # A URL's user info and query (where credentials go) are not shown.
                summary=f"check news page {hide_in_urls(str(url))}",
            )
            for url in urls
        ),
        return_exceptions=True,
    )


@workflow.defn
class ReminderWorkflow:
    def __init__(self) -> None:
        self.cancel: BaseException | None = None  # the run's cancel, heard at a record

    @workflow.run
    async def run(self, run: ReminderRun) -> str:
        config = run.config
        # The schedule gives each run its own workflow id: a natural idempotency key.
        key = workflow.info().workflow_id
        targets = notification_targets(config.notification, config.targets)
        if config.action == "reminder":
            message = Message(title="Reminder", body=config.message, zh=Wording(title="提醒"))
        else:
            digest, zh = await self.digest(run)
            message = Message(
                title="News digest", body=digest, zh=Wording(title="新闻摘要", body=zh)
            )
        kind = f"schedule.{config.action}"
        await self.record(
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
            about=kind,
            failed="notify: ",
            task=run.task,
        )
        if errors:
            # Counted and recorded where the user sees events (the run itself completes, unless
            # its cancel was heard at a record).
            await self.record(
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
        if self.cancel is not None:
            raise self.cancel  # the run ends Canceled
        return message.body

    async def record(self, **event: Any) -> None:
        """Record an event once per key. The run's cancel cutting it (TRY_CANCEL: the write
        may still be made, after the run ended) is heard once: the record is made again and
        the run goes on to send what it recorded, the cancel raised at its end."""
        try:
            await record_event(**event)
        except (ActivityError, asyncio.CancelledError) as error:
            # The cancel cutting the write (ActivityError), or heard with its completion in one
            # workflow task (CancelledError: the SDK keeps the cancel, the write was made).
            if self.cancel is not None or not is_cancelled_exception(error):
                raise
            self.cancel = error
            await record_event(**event)

    async def digest(self, run: ReminderRun) -> tuple[str, str]:
        """The news digest's body, in English and in Chinese (the pages' lines as written)."""
        # Each run is its own workflow: compare with the last run's stored page.
        checks = await check_news_pages(run.pages_key, run.config.news_urls, run.config.categories)
        en: list[str] = []
        zh: list[str] = []
        for url, check in zip(run.config.news_urls, checks, strict=True):
            notes: tuple[str, str] | None = None
            lines: list[str] = []
            zh_lines: list[str] | None = None  # None: the same lines
            more = 0  # new lines past those shown
            if isinstance(check, BaseException):
                why = failure_text(check)
                notes = f"unavailable ({why})", f"无法访问（{why}）"
            elif check.outcome == "error":
                notes = f"unavailable ({check.error})", f"无法访问（{check.error}）"
            elif check.outcome == "baseline":
                # Its next run, whenever its schedule makes it (a week on, a cron's next
                # time): "from tomorrow" was said to weekly and cron digests too.
                notes = (
                    "first look taken; news appear from its next run",
                    "已记下页面当前内容，下次起推送新闻",
                )
            elif check.hits:
                lines = [f"- [{k}] {line}" for k, found in check.hits.items() for line in found]
                zh_lines = [
                    f"- [{k}] {notice_said(line, zh=True)}"
                    for k, found in check.hits.items()
                    for line in found
                ]
            elif run.config.categories:
                # Categories keep their news only: a day without a hit has none to tell (every
                # new line of every topic was listed).
                notes = "nothing new in your categories", "你关注的类别没有新内容"
            elif added := [ln[1:] for ln in check.excerpt.splitlines() if ln.startswith("+")]:
                # Every new line the excerpt holds, then how many more: the next run compares
                # with the page as stored now, so a line left out unsaid was never told.
                lines = [f"- {ln}" for ln in added]
                more = check.more_added
            else:
                # Unchanged, or changed with nothing added (lines only removed, or moved): its
                # section was the page's address with nothing under it.
                notes = "nothing new", "没有新内容"
            page = url if isinstance(check, BaseException) else check.url
            if notes is None:
                section = f"**{page}**\n" + "\n".join(lines)
                zh_section = f"**{page}**\n" + "\n".join(lines if zh_lines is None else zh_lines)
                en.append(section + (f"\n{more_new_lines(more, zh=False)}" if more else ""))
                zh.append(zh_section + (f"\n{more_new_lines(more, zh=True)}" if more else ""))
            else:
                en.append(f"**{page}**: {notes[0]}")
                zh.append(f"**{page}**：{notes[1]}")
        return "\n\n".join(en), "\n\n".join(zh)
