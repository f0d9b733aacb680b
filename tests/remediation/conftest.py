"""Fixtures the remediation tests share."""

from __future__ import annotations

from datetime import timedelta

import pytest

import workflows.remediation
import workflows.remediation_change
import workflows.remediation_verify
from ambient.remediation.runs import CHANGE_RETRY


@pytest.fixture
def quick_change_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """CHANGE_RETRY's tries, as many, a few hundred ms apart, where the workflow reads it: the
    checkpoint (workflows/remediation.py; a checkpoint read is a local activity, whose
    backoff, 2 min in all, the time-skipping server cannot skip), the verification
    (workflows/remediation_verify.py) and the change (workflows/remediation_change.py)."""
    quick = CHANGE_RETRY.__class__(
        maximum_attempts=CHANGE_RETRY.maximum_attempts,
        initial_interval=timedelta(milliseconds=50),
        maximum_interval=timedelta(milliseconds=200),
        non_retryable_error_types=CHANGE_RETRY.non_retryable_error_types,
    )
    monkeypatch.setattr(workflows.remediation, "CHANGE_RETRY", quick)
    monkeypatch.setattr(workflows.remediation_change, "CHANGE_RETRY", quick)
    monkeypatch.setattr(workflows.remediation_verify, "CHANGE_RETRY", quick)
