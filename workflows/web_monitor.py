"""WebMonitorWorkflow — `web-monitor/{user}/{task}`: watch pages for changes and keywords."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ambient.domain.checks import CheckPageInput, PageCheck
    from ambient.domain.notify import Message
    from ambient.domain.tasks import (
        TaskStatus,
        UrlState,
        WebMonitorInput,
        WebMonitorState,
    )
    from ambient.domain.watches import (
        TaskKind,
        WebMonitorConfig,
        notification_targets,
    )

from workflows.watch_controls import WatchControls, failure_text, url_key

CHECK_TIMEOUT = timedelta(seconds=60)
# Runs recorded before checks became local activities replay the regular-activity path.
LOCAL_CHECKS = "local-check-page"
CHECK_RETRY = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=5))


@workflow.defn
class WebMonitorWorkflow(WatchControls):
    KIND = TaskKind.WEB_MONITOR
    config: WebMonitorConfig
    state: WebMonitorState

    @workflow.init
    def __init__(self, request: WebMonitorInput) -> None:
        super().__init__()
        self.user, self.task = request.user, request.task
        self.config = request.config
        self.state = request.state or WebMonitorState()
        self.continue_after = request.continue_as_new_after_checks
        self.restore()

    @workflow.run
    async def run(self, request: WebMonitorInput) -> TaskStatus:
        await self.run_watch()
        return self.status()

    def continued(self) -> WebMonitorInput:
        return WebMonitorInput(
            user=self.user,
            task=self.task,
            config=self.config,
            state=self.state,
            continue_as_new_after_checks=self.continue_after,
        )

    async def check(self) -> None:
        self.state.checks += 1
        urls = [str(url) for url in self.config.urls]
        results = await asyncio.gather(*(self.fetch(url) for url in urls))
        for result in results:
            await self.apply(result)

    async def fetch(self, url: str) -> PageCheck:
        try:
            return await self.run_check(url)
        except ActivityError as error:
            # A check that failed for good is a failed check, not the end of the watch.
            return PageCheck(url=url, outcome="error", error=failure_text(error))

    async def run_check(self, url: str) -> PageCheck:
        if workflow.patched(LOCAL_CHECKS):
            # A bounded check with no side effect but a snapshot row: a local activity costs
            # about half the history events and server work of a regular one.
            return await workflow.execute_local_activity(
                "check_page",
                self.check_input(url),
                result_type=PageCheck,
                start_to_close_timeout=CHECK_TIMEOUT,
                retry_policy=CHECK_RETRY,
            )
        return await workflow.execute_activity(
            "check_page",
            self.check_input(url),
            result_type=PageCheck,
            start_to_close_timeout=CHECK_TIMEOUT,
            retry_policy=CHECK_RETRY,
        )

    def check_input(self, url: str) -> CheckPageInput:
        seen = self.state.urls.get(url, UrlState())
        return CheckPageInput(
            task=self.task,
            url=url,
            selector=self.config.selector_for(url),
            ignore_patterns=self.config.ignore_patterns,
            keywords=self.config.keywords,
            etag=seen.etag,
            last_modified=seen.last_modified,
            last_hash=seen.hash,
        )

    async def apply(self, result: PageCheck) -> None:
        url, now = result.url, workflow.now()
        seen = self.state.urls.setdefault(url, UrlState())
        seen.last_checked_at, seen.last_outcome = now, result.outcome
        key = f"{self.task}/{self.life}/{self.state.checks}/{url_key(url)}"
        targets = notification_targets(self.config.notification, self.config.targets)
        if result.outcome == "error":
            await self.record_failure(
                seen,
                result.error,
                self.config.failure_threshold,
                key,
                payload={"url": url, "error": result.error, "failures": seen.failures + 1},
                message=Message(
                    title=f"Failing: {url}",
                    body=f"{seen.failures + 1} checks in a row failed. Last error: {result.error}",
                    link=url,
                ),
                targets=targets,
            )
            return
        await self.record_success(
            seen,
            key,
            payload={"url": url, "after_failures": seen.failures},
            message=Message(title=f"Recovered: {url}", body="The page answers again.", link=url),
            targets=targets,
        )
        seen.hash = result.hash
        seen.etag, seen.last_modified = result.etag, result.last_modified
        if result.outcome != "changed":
            return
        seen.last_change_at = now
        self.state.changes_total += 1
        payload: dict[str, Any] = {"url": url, "excerpt": result.excerpt, "hits": result.hits}
        if result.hits:
            self.state.hits_total += 1
            lines = "\n".join(
                f"- **{keyword}**: {line}"
                for keyword, found in result.hits.items()
                for line in found
            )
            await self.tell(
                kind="watch.hit",
                key=f"{key}/hit",
                payload=payload,
                message=Message(title=f"Keyword hit on {url}", body=lines, link=url),
                targets=targets,
            )
        else:
            # With keywords set, only hits are worth a message; plain changes stay events.
            message = (
                None
                if self.config.keywords
                else Message(title=f"Changed: {url}", body=f"```\n{result.excerpt}\n```", link=url)
            )
            await self.tell(
                kind="watch.change",
                key=f"{key}/change",
                payload=payload,
                message=message,
                targets=targets,
            )

    @workflow.update
    async def update_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Replace the configuration; the next check uses it."""
        self.config = WebMonitorConfig.model_validate(config)
        self.wake = True
        return self.config.model_dump(mode="json")

    @update_config.validator
    def validate_config(self, config: dict[str, Any]) -> None:
        # Raising here rejects the update before it enters history: nothing changes.
        WebMonitorConfig.model_validate(config)

    def last_error(self) -> str | None:
        """The error of a URL whose last check failed, else of the last failed delivery."""
        for url, seen in self.state.urls.items():
            if seen.last_outcome == "error":
                return f"{url}: {seen.last_error}"
        failure = self.state.last_failure
        return f"{failure.what}: {failure.error}" if failure else None

    @workflow.query
    def status(self) -> TaskStatus:
        return TaskStatus(
            task_id=workflow.info().workflow_id,
            kind=TaskKind.WEB_MONITOR,
            user=self.user,
            state=self.current_state(),
            checks=self.state.checks,
            config=self.config.model_dump(mode="json"),
            detail={
                "urls": {u: s.model_dump(mode="json") for u, s in self.state.urls.items()},
                "hits_total": self.state.hits_total,
                "changes_total": self.state.changes_total,
                "last_error": self.last_error(),
                **self.life_detail(),
            },
        )
