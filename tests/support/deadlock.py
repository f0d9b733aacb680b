"""Test workers give a workflow activation more than the SDK's 2 s before its deadlock detector
interrupts it.

The detector (temporalio 1.35: 2 s an activation, fixed unless ``debug_mode``) raises an
exception into the workflow's thread at whatever line it is on. On a starved test host (six
test processes and their servers on two cores) an ordinary activation passes 2 s now and then,
and an interruption that lands between the workflow's event loop taking a ready callback and
running it loses that callback: the task it would have woken never runs again, so the run's
safe eviction can never finish and the worker's shutdown waits for it for good (a clean-clone
run hung so in a fixture's teardown, its tasks "cancelling", each waiting on a future already
cancelled; reproduced outside the suite by waking 2,000 tasks in one activation past 2 s: the
eviction was retried for good in the first try). The product's worker keeps the SDK's detector;
tests of it ask for it (`sdk_deadlock_detector`).
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import _workflow

# Long enough that no load of the test host reaches it; a workflow that truly blocks still
# fails its task (and the test its wait) instead of hanging.
LOADED_HOST_SECONDS = 30.0
# What test workers built from now on give an activation (None: the SDK's own).
seconds: float | None = LOADED_HOST_SECONDS


def patient_detector() -> None:
    """Every workflow worker (a Worker's, a Replayer's) built in this process gives an
    activation ``seconds`` (unless set to None, or the worker has no detector: debug mode)."""
    init = _workflow._WorkflowWorker.__init__
    if getattr(init, "patient", False):
        return

    def patient(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if seconds is not None and self._deadlock_timeout_seconds is not None:
            self._deadlock_timeout_seconds = seconds

    patient.patient = True  # type: ignore[attr-defined]
    _workflow._WorkflowWorker.__init__ = patient  # type: ignore[method-assign]
