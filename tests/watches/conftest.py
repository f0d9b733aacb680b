"""Watches' tests read the stand-in's values in order: each read of a metric takes the next."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.servers import HANG
from workflows import threshold_watch

PRODUCT_LOCAL_READ_LIMIT = threshold_watch.LOCAL_READ_LIMIT


@pytest.fixture(autouse=True)
def loaded_host_local_read_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # A local read not done in 2 s is read again as a regular activity: on a loaded host a
    # read the stand-in answered came back late, and the read again took the next value, so a
    # value the test set was skipped. A limit no load reaches; the test of a slow read itself
    # takes the product's (`product_local_read_limit`).
    monkeypatch.setattr(threshold_watch, "LOCAL_READ_LIMIT", timedelta(seconds=HANG))


@pytest.fixture
def product_local_read_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threshold_watch, "LOCAL_READ_LIMIT", PRODUCT_LOCAL_READ_LIMIT)
