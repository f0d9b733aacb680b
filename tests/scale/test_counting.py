"""What the scale test and bench count from the stand-ins' record: each kind of loss and
repetition shows, and a clean record shows none."""

from __future__ import annotations

from collections import Counter

from bench.remediation_storm import exactly_once
from bench.replicas import checks, deliveries, steps

BASE = "http://127.0.0.1:1"
CLEAN = {"/w/0": [(0.0, 0), (60.0, 0), (120.0, 1), (180.0, 1)]}
CHANGED = [(125.0, "k1", f"Changed: {BASE}/w/0")]


def test_a_clean_record_counts_no_check_or_delivery_lost_or_repeated() -> None:
    found = checks(CLEAN, 60.0, 30.0, until=200.0)
    assert (found.fetches, found.counts()) == (4, "0 / 0")
    told = deliveries(CLEAN, CHANGED, BASE)
    assert (told.changes, told.delivered, told.lost, told.duplicated) == (1, 1, 0, 0)


def test_a_gap_past_the_bound_is_a_lost_check_and_a_check_twice_a_duplicate() -> None:
    gap = {"/w/0": [(0.0, 0), (60.0, 0), (200.0, 0)]}
    assert checks(gap, 60.0, 30.0, until=210.0).lost == [200.0]
    # The page's checks stopped before the watches were.
    assert checks(CLEAN, 60.0, 30.0, until=300.0).lost == [300.0]
    twice = {"/w/0": [(0.0, 0), (60.0, 0), (65.0, 0), (120.0, 0)]}
    assert checks(twice, 60.0, 30.0, until=130.0).counts(since=65.0) == "0 / 1"
    assert checks(twice, 60.0, 30.0, until=130.0).counts(since=66.0) == "0 / 0"


def test_the_grid_may_start_its_documented_spread_after_the_baseline() -> None:
    """A new watch's first grid check comes up to half an interval, at most 60 s, after the
    baseline's interval (workflows/web_monitor.py): not a lost check; later than that, one."""
    spread = {"/w/0": [(0.0, 0), (355.0, 0), (655.0, 0)]}
    assert checks(spread, 300.0, 30.0, until=700.0).counts() == "0 / 0"
    late = {"/w/0": [(0.0, 0), (395.0, 0), (695.0, 0)]}
    assert checks(late, 300.0, 30.0, until=700.0).lost == [395.0]
    # Past the first gap, no spread: the same gap later on is lost.
    again = {"/w/0": [(0.0, 0), (300.0, 0), (655.0, 0)]}
    assert checks(again, 300.0, 30.0, until=700.0).lost == [655.0]


def test_a_change_never_posted_is_lost_and_a_key_posted_twice_is_a_duplicate() -> None:
    assert deliveries(CLEAN, [], BASE).lost == 1
    assert deliveries(CLEAN, CHANGED * 2, BASE).duplicated == 1
    # One change reported under two keys is a duplicate too, and a failure message is no change.
    other = [(126.0, "k2", f"Changed: {BASE}/w/0"), (127.0, "k3", f"Failing: {BASE}/w/0")]
    assert deliveries(CLEAN, CHANGED + other, BASE).duplicated == 1


def test_a_step_never_written_is_lost_and_a_step_written_twice_a_duplicate() -> None:
    runs = [("resolved", ["s1"]), ("resolved", ["s2"])]
    clean = steps(runs, Counter({"s1": 1, "s2": 1}))
    assert (clean.applied, clean.lost, clean.duplicated, clean.unfinished) == (2, 0, 0, 0)
    assert steps(runs, Counter({"s1": 1})).lost == 1
    assert steps(runs[:1], Counter({"s1": 2})).duplicated == 1
    assert steps([("failed", [])], Counter()).unfinished == 1


def test_a_storm_change_a_retry_found_made_is_counted_and_a_second_write_flagged() -> None:
    # The storm bench counted "steps applied" without the changes a retry found already made
    # (its first try's write stored, the answer lost under load): "writes stored 100, steps
    # applied 59" read as an exactly-once failure that was none.
    runs = [("resolved", ["r1/rung1"]), ("resolved", ["r2/rung1"]), ("resolved", ["r3/rung1"])]
    stamped = Counter({"r1/rung1": 1, "r2/rung1": 1, "r3/rung1": 1})
    said = exactly_once(runs, {"r2/rung1", "r3/rung1"}, stamped, 3)
    assert said == (
        "exactly once: writes stored 3, changes made 3 (1 written by their run, 2 found "
        "already made by a retry); 3 step keys stamped, 0 lost, 0 duplicated"
    )
    twice = exactly_once(runs, set(), stamped + Counter({"r2/rung1": 1}), 4)
    assert twice.startswith("NOT EXACTLY ONCE: writes stored 4, changes made 3"), twice
    assert twice.endswith("1 duplicated; keys stored twice: r2/rung1"), twice
