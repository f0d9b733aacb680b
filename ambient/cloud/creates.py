"""The shared create flow: look the name up, send only when nothing is found, audit the outcome
(the rules: ambient/cloud/service.py)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field

from ambient.clients.tencent import writes
from ambient.clients.tencent.errors import TencentCloudError
from ambient.clients.tencent.writes import CloudRequest
from ambient.cloud.audit import CloudGuard, Mode, outcome_of
from ambient.cloud.errors import CloudOpsFailedError, readable

Finder = Callable[[], Awaitable[str | None]]


class WriteStep(BaseModel):
    request: CloudRequest = Field(description="exactly what is (or would be) sent")
    idempotency_key: str
    sent: bool = Field(description="true when this call sent the request")
    existing: bool = Field(description="true when a resource of that name already existed")
    resource_id: str | None = None


class WriteResult(BaseModel):
    operation: str
    mode: Mode
    steps: list[WriteStep]
    resource_id: str | None = Field(description="the id of the created (or found) resource")
    summary: str


# One lock per resource being created without a unique name, for the whole process (every
# door builds its own CloudOpsService). A create looks the name up and sends only when nothing
# was found; two callers doing that at once both find nothing. TKE node pools and CLS
# scheduled SQL tasks have no unique name (no conflict code answers the second create), so
# two simultaneous creates in this process made two resources; with the lock the second
# waits and finds the first's. Callers in *different* processes (the API and a CLI at the
# same moment) can still race there, and then two resources exist: list_node_pools and the
# console show both, and either may be deleted. A lock's entry goes with its last user.
_CREATING: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


class CloudCreates(CloudGuard):
    """Creates by name, idempotent across retries and concurrent callers of this process."""

    async def _create_one(
        self,
        actor: str,
        operation: str,
        subject: str,
        mode: Mode,
        request: Callable[[], CloudRequest],
        find: Finder,
        what: str,
    ) -> WriteResult:
        """One resource: the permission, then the create (or the one found by name). Building
        ``request`` checks the input, after the permission: who may not act hears that."""
        await self.authorize(actor, operation, subject, mode)
        async with self.failures_audited(actor, operation, subject, {"mode": mode}):
            built = request()
        step = await self._create(actor, operation, subject, mode, built, find)
        return self._result(operation, mode, [step], what)

    async def _create(
        self,
        actor: str,
        operation: str,
        subject: str,
        mode: Mode,
        request: CloudRequest,
        find: Finder,
    ) -> WriteStep:
        # The region the request goes to, named: the preview and the audit say where it acts.
        request = request.model_copy(update={"region": request.region or self.tencent.region})
        key = request.idempotency_key()
        detail: dict[str, Any] = {
            "mode": mode,
            "request": request.model_dump(),
            "idempotency_key": key,
        }
        # A create whose name the API keeps unique answers a race with its conflict code (and
        # the loser adopts the winner's); the others take turns per resource in this process.
        # Keyed by what names the resource: operation, subject (cluster and name) and region
        # (the configured one when the request leaves it out: the same place as naming it).
        lock = (
            contextlib.nullcontext()
            if request.action in writes.NAME_TAKEN or mode == "dry_run"
            else _CREATING.setdefault(f"{operation}\n{subject}\n{request.region}", asyncio.Lock())
        )
        async with self.audited(actor, operation, subject, detail):
            with readable(request.product, request.action):
                async with lock:
                    step = await self._find_or_send(request, key, mode, find)
            detail["outcome"] = outcome_of(mode, changed=step.sent, existing=step.existing)
            detail["resource_id"] = step.resource_id
        return step

    async def _find_or_send(
        self, request: CloudRequest, key: str, mode: Mode, find: Finder
    ) -> WriteStep:
        found = await find()
        step = WriteStep(
            request=request,
            idempotency_key=key,
            sent=False,
            existing=found is not None,
            resource_id=found,
        )
        if found is None and mode == "execute":
            # Send the create; if another caller made the same name in between, that one is it.
            try:
                step.resource_id = await writes.send(self.tencent, request)
                step.sent = True
            except TencentCloudError as exc:
                if writes.answer_lost(exc):
                    step.resource_id, step.sent = (
                        await self._made_unanswered(request, exc, find),
                        True,
                    )
                    return step
                if not writes.name_taken(request.action, exc.code):
                    raise
                step.resource_id = await find()
                if step.resource_id is None:
                    raise
                step.existing = True
        return step

    async def _made_unanswered(
        self, request: CloudRequest, exc: TencentCloudError, find: Finder
    ) -> str | None:
        """A create sent whose answer never came may have been carried out: the one a lookup
        finds is what it made; none found, the caller hears that it may still have been made
        (a retry finds it, and makes none if it is there), not that Tencent Cloud was down."""
        self.tencent.forget(request.region)
        with contextlib.suppress(TencentCloudError):
            if (found := await find()) is not None:
                return found
        raise CloudOpsFailedError(
            "answer_lost",
            f"{request.action} got no answer from Tencent Cloud ({exc.message}): it may have "
            "been made all the same, and nothing of that name is listed yet; ask again with "
            "the same request in a minute: it looks for what this one made first and makes no "
            "second",
        )

    @staticmethod
    def _result(operation: str, mode: Mode, steps: list[WriteStep], what: str) -> WriteResult:
        last = steps[-1]
        if last.existing:
            summary = f"{what} already exists ({last.resource_id}); nothing sent"
        elif last.sent:
            summary = f"created {what} ({last.resource_id})"
        else:
            summary = f"dry run: would send {last.request.action} for {what}; nothing sent"
        return WriteResult(
            operation=operation,
            mode=mode,
            steps=steps,
            resource_id=last.resource_id,
            summary=summary,
        )
