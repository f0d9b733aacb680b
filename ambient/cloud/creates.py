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
from ambient.cloud.audit import CloudGuard, Mode, Stopped, outcome_of
from ambient.cloud.errors import CloudOpsFailedError, readable

Finder = Callable[[], Awaitable[str | None]]


class WriteStep(BaseModel):
    request: CloudRequest = Field(description="exactly what is (or would be) sent")
    idempotency_key: str
    sent: bool = Field(description="true when this call sent the request")
    existing: bool = Field(
        description="true when a resource of that name was found (sent too: found after the "
        "answer was lost, this request's or another caller's)"
    )
    resource_id: str | None = None
    refused: str | None = Field(
        default=None,
        description="the API's refusal of the request sent, its name taken (its conflict "
        "code), one of the name found then: made before it, this request made nothing",
    )
    error: str | None = Field(
        default=None,
        description="the API's general error to the request sent (a node pool's AsCommon), "
        "one of the name found then: made before it, or by it before it failed",
    )


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


# What the same request asked again after a lost answer does, by how the API keeps names.
ELSE = (
    "Look for it before asking again: the same request sends nothing if one of the name is "
    "listed by then, but makes a second if it is not listed yet (the name is not unique)"
)
AGAIN = {
    **dict.fromkeys(
        writes.NAME_TAKEN,
        "The same request again finds it, or meets its name taken and finds it then: no second",
    ),
    "CreateClusterNodePool": (
        "The same request again sends nothing if the pool is listed by then; if not, it is "
        "sent, and Auto Scaling's general error (AsCommon) has the pool looked up again"
    ),
}


def _unanswered(exc: TencentCloudError) -> str:
    if exc.code in writes.TIMED_OUT:  # its RequestId kept: CLS's support can trace it
        return "CLS timed out on its side, not saying whether it was carried out"
    return "got no answer from Tencent Cloud"


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
        async with self.failures_audited(actor, operation, subject, {"mode": mode, "sent": False}):
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
        detail: dict[str, Any] | None = None,
        stopped: Stopped | None = None,
    ) -> WriteStep:
        """The one write and its audit row, ``detail`` (the caller's to read, if given; and
        ``stopped``, the rows of the call it is a step of if it is stopped)."""
        # The region the request goes to, named: the preview and the audit say where it acts.
        request = request.model_copy(update={"region": request.region or self.tencent.region})
        key = request.idempotency_key()
        detail = {} if detail is None else detail
        detail.update(
            mode=mode,
            request=request.model_dump(),
            idempotency_key=key,
            sent=False,  # until the write goes out: a call stopped before says so
        )
        # A create whose name the API keeps unique answers a race with its conflict code (and
        # the loser adopts the winner's); the others take turns per resource in this process.
        # Keyed by what names the resource: operation, subject (cluster and name) and region
        # (the configured one when the request leaves it out: the same place as naming it).
        lock = (
            contextlib.nullcontext()
            if request.action in writes.NAME_TAKEN or mode == "dry_run"
            else _CREATING.setdefault(f"{operation}\n{subject}\n{request.region}", asyncio.Lock())
        )
        async with self.audited(actor, operation, subject, detail, stopped):
            with readable(request.product, request.action):
                async with lock:
                    step = await self._find_or_send(request, key, mode, find, detail)
            changed = step.sent and step.refused is None
            detail["outcome"] = outcome_of(mode, changed=changed, existing=step.existing)
            detail["resource_id"] = step.resource_id
        return step

    async def _find_or_send(
        self, request: CloudRequest, key: str, mode: Mode, find: Finder, detail: dict[str, Any]
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
                detail["sent"] = True
                step.resource_id = await writes.send(self.tencent, request)
                step.sent = True
            except TencentCloudError as exc:
                if writes.answer_lost(exc):
                    # Sent, its answer lost: one found of the name may be ours or another's.
                    step.resource_id = await self._made_unanswered(request, exc, find)
                    step.sent = step.existing = True
                    return step
                if not writes.maybe_taken(request.action, exc.code):
                    raise
                try:
                    step.resource_id = await find()
                except TencentCloudError as again:  # the lookup's error said, and the refusal
                    raise CloudOpsFailedError(
                        "failed",
                        f"{request.action} was sent and refused ({exc}); whether one of its "
                        f"name is listed could not be checked ({again}). "
                        f"{AGAIN.get(request.action, ELSE)}",
                    ) from None
                if step.resource_id is None:
                    raise
                step.sent = step.existing = True
                if writes.name_taken(request.action, exc.code):  # made before it, not by it
                    step.refused = str(exc)
                else:  # a node pool's AsCommon (any error making its scaling group): maybe ours
                    step.error = str(exc)
        return step

    async def _made_unanswered(
        self, request: CloudRequest, exc: TencentCloudError, find: Finder
    ) -> str:
        """A create sent whose answer never came may have been carried out: the one a lookup
        finds of the name is this request's or another caller's (made between our lookup and
        our send: nothing here tells them apart); none found, or the lookup failing, the
        caller hears that it may still have been made, not that Tencent Cloud was down."""
        self.tencent.forget(request.region)
        try:
            found = await find()
        except TencentCloudError as again:
            listed = f"whether it is there could not be checked ({again})"
        else:
            if found is not None:
                return found
            listed = "it is not listed yet"
        raise CloudOpsFailedError(
            "answer_lost",
            f"{request.action} was sent and {_unanswered(exc)} ({exc}): it may have been made "
            f"all the same, and {listed}. {AGAIN.get(request.action, ELSE)}",
        )

    @staticmethod
    def _result(operation: str, mode: Mode, steps: list[WriteStep], what: str) -> WriteResult:
        last = steps[-1]
        if last.refused is not None:
            summary = (
                f"{last.request.action} was sent and refused ({last.refused}); {what} is "
                f"listed ({last.resource_id}), made before this request (an earlier one's or "
                "another caller's): this one made nothing"
            )
        elif last.error is not None:
            summary = (
                f"{last.request.action} was refused with a general Auto Scaling error "
                f"({last.error}); {what} is listed now ({last.resource_id}): an earlier "
                "request's, another caller's, or possibly this one's — check it with "
                "list_node_pools"
            )
        elif last.existing and last.sent:
            summary = (
                f"{last.request.action} was sent and its answer lost; {what} is listed "
                f"({last.resource_id}): it may be the one this request made or another caller's"
            )
        elif last.existing:
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
