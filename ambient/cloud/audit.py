"""Who may change the cloud, and the audit row every asked-for operation leaves (the rules:
ambient/cloud/service.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, Literal

import anyio

from ambient.clients.tencent.client import TencentCloud
from ambient.cloud.errors import CloudOpsError, CloudOpsRefusedError
from ambient.domain.identifiers import TencentRegion
from ambient.domain.users import RollbackPermission
from ambient.log_redaction import redact_values
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.users import user_named

log = logging.getLogger(__name__)

Mode = Literal["dry_run", "execute"]
STOPPED = "the call was stopped before it finished (its caller cancelled or timed out)"
# By how far it got: ``detail["sent"]``, set by the calls that track it (creates, node pools,
# apply_yaml, scale and restart_workload); a dry run sends no write.
INTERRUPTED = {
    True: f"{STOPPED}; a request it had sent may still be carried out: ask again with the "
    "same request to see what it did",
    False: f"{STOPPED} before anything was sent; nothing was changed",
}
AUDIT_GRACE = 10.0  # seconds a call waits for its audit row once cancelled (or to finish one)
Region = TencentRegion | None
Row = tuple[str, str, dict[str, Any]]  # an audit row's operation, subject and detail
Stopped = Callable[[], list[Row]]  # the rows of the call a step is part of, if it is stopped


def interrupted(detail: dict[str, Any]) -> dict[str, Any]:
    """The row of a call stopped part-way: ``detail``, saying how far it got."""
    sent = detail.get("mode") == "execute" and detail.get("sent", True)
    reason = INTERRUPTED[bool(sent)]
    return {**detail, "outcome": "failed", "kind": "interrupted", "reason": reason}


def outcome_of(mode: Mode, *, changed: bool, existing: bool = False) -> str:
    """What an asked-for write did, as its audit row says: existing, executed, dry_run or noop;
    unconfirmed when it was sent, its answer lost, and one of the name found (``existing``)."""
    if existing:
        return "unconfirmed" if changed else "existing"
    return "executed" if changed else ("dry_run" if mode == "dry_run" else "noop")


# Audit rows being written: a task is kept until it ends (the loop holds only weak ones).
_writing: set[asyncio.Future[None]] = set()


class CloudGuard:
    """Permission and audit for one process's cloud writes; callers pass who is asking."""

    def __init__(self, db: Database, tencent: TencentCloud) -> None:
        self.db, self.tencent = db, tencent

    # --- permission and audit -----------------------------------------------------------
    async def audit(self, actor: str, operation: str, subject: str, detail: dict[str, Any]) -> None:
        # The row is read by admins and other readers: the request as sent, its keys redacted
        # (a notice's webhook URL carries one).
        detail = redact_values(detail)
        async with self.db.session() as session:
            await AuditRepository(session).append(
                actor=actor, action=f"cloud.{operation}", subject=subject, detail=detail
            )
            await session.commit()

    def _started(self, actor: str, rows: list[Row]) -> list[tuple[asyncio.Future[None], Row]]:
        started: list[tuple[asyncio.Future[None], Row]] = []
        for row in rows:
            write = asyncio.ensure_future(self.audit(actor, *row))
            _writing.add(write)
            write.add_done_callback(_writing.discard)
            started.append((write, row))
        return started

    async def recorded(
        self,
        actor: str,
        operation: str,
        subject: str,
        detail: Any,
        stopped: Stopped | None = None,
        *,
        cancelled: bool = False,
    ) -> None:
        """The audit row, written whatever happens to the call: its own task, waited for under
        a shield (a cancel, a second one too, does not stop it) for at most AUDIT_GRACE (a
        hung database does not hold the call for ever: logged). A cancel met while waiting
        is raised once the row is written. ``stopped`` gives the rows of the call this one is
        a step of, written too once it is cancelled (at once if ``cancelled``): one grace."""
        writes = self._started(actor, [(operation, subject, detail)])
        if cancelled and stopped is not None:
            writes += self._started(actor, stopped())
        try:
            with anyio.move_on_after(AUDIT_GRACE, shield=True) as grace:
                while not all(write.done() for write, _ in writes):
                    try:
                        await asyncio.wait([write for write, _ in writes])  # not cancelling them
                    except asyncio.CancelledError:
                        if grace.cancel_called:
                            raise  # the grace ran out: the scope ends here
                        if not cancelled and stopped is not None:
                            writes += self._started(actor, stopped())
                        cancelled = True
        finally:
            # Said however the wait ended (all written, the grace run out, or an error of the
            # wait; a second asyncio cancel does not end it: absorbed above, the wait goes on),
            # and a write that then fails is said too: nobody awaits it.
            for write, (late, where, row) in writes:
                if not write.done():
                    said = redact_values(row)
                    log.error(
                        "the audit row of cloud.%s on %s was not written within %s s (the "
                        "database did not answer); it goes on being written: %s",
                        late,
                        where,
                        AUDIT_GRACE,
                        said,
                    )
                    write.add_done_callback(
                        partial(_failed_late, operation=late, subject=where, said=said)
                    )
        failed = [(w, row) for w, row in writes if w.done() and not w.cancelled() and w.exception()]
        # Each logged, the first too: its raise may go to a caller that is gone.
        for write, (late, where, row) in failed:
            _failed_late(write, late, where, redact_values(row))
        if failed:
            raise failed[0][0].exception()  # type: ignore[misc]
        if cancelled:
            raise asyncio.CancelledError

    @contextlib.asynccontextmanager
    async def audited(
        self,
        actor: str,
        operation: str,
        subject: str,
        detail: dict[str, Any],
        stopped: Stopped | None = None,
    ) -> AsyncIterator[None]:
        """The call's audit row: ``detail`` as the block leaves it (its outcome set there), or
        for a CloudOpsError raised inside, the failed call's (``failures_audited``)."""
        async with self.failures_audited(actor, operation, subject, detail, stopped):
            yield
        await self.recorded(actor, operation, subject, detail, stopped)

    @contextlib.asynccontextmanager
    async def failures_audited(
        self,
        actor: str,
        operation: str,
        subject: str,
        detail: dict[str, Any],
        stopped: Stopped | None = None,
    ) -> AsyncIterator[None]:
        """A CloudOpsError raised inside leaves a failed call's audit row: ``detail`` and why;
        so does the call cancelled inside (its caller gone), saying how far it got."""
        try:
            yield
        except CloudOpsError as exc:
            failure = {"outcome": "failed", "kind": exc.kind, "reason": str(exc)}
            await self.recorded(actor, operation, subject, {**detail, **failure}, stopped)
            raise
        except anyio.get_cancelled_exc_class():
            # Its caller cancelled or timed out; a request sent goes on without it.
            with contextlib.suppress(asyncio.CancelledError):  # the one raised on
                stop = interrupted(detail)
                await self.recorded(actor, operation, subject, stop, stopped, cancelled=True)
            raise

    async def authorize(
        self, actor: str, operation: str, subject: str, mode: Mode, **asked: Any
    ) -> RollbackPermission:
        """The stored permission; refused (and audited with ``asked``) unless it covers ``mode``."""
        user = await user_named(self.db, actor)
        permission = (
            RollbackPermission(user.rollback_permission) if user else RollbackPermission.NONE
        )
        if permission is RollbackPermission.NONE:
            reason = (
                f"You may not change the cloud ({actor!r} has rollback_permission 'none' or "
                "is not a registered user); ask an admin."
            )
        elif mode == "execute" and permission is not RollbackPermission.EXECUTE:
            reason = (
                "Your rollback_permission is 'dry_run': you may preview this change "
                "(mode='dry_run') but not execute it; ask an admin."
            )
        else:
            return permission
        await self.audit(
            actor,
            operation,
            subject,
            {**asked, "mode": mode, "outcome": "refused", "permission": permission.value},
        )
        raise CloudOpsRefusedError(reason)


def _failed_late(write: asyncio.Future[None], operation: str, subject: str, said: Any) -> None:
    """A failed audit row: logged (its raise, if any, may reach nobody)."""
    if not write.cancelled() and (exc := write.exception()) is not None:
        log.error("the audit row of cloud.%s on %s was lost: %r: %s", operation, subject, exc, said)
