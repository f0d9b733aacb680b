"""Answers that are not what the API references document: an item without its id, a list
whose paging does not move on. The real SDK against the loopback stand-in."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from ambient.clients.tencent import client
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.clusters import list_clusters, list_node_pools
from ambient.clients.tencent.errors import TencentAnswerError, TencentListChangedError
from ambient.clients.tencent.logs import list_log_topics
from ambient.clients.tencent.writes import find_topic
from ambient.cloud.errors import failure
from tests.standins.tencent_api import TencentApi


def _answer(payload: dict[str, Any]) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps({"Response": payload}).encode()


def _cluster(n: int) -> dict[str, Any]:
    return {"ClusterId": f"cls-{n:08d}", "ClusterName": f"c{n}", "ClusterStatus": "Running"}


async def test_an_item_without_its_id_is_said_as_an_answer_not_the_apis_and_not_asked_again(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A cluster, node pool or topic without its id was a KeyError ('ClusterId'): a tool said
    only that it failed; then a retryable error, asked again and said as "Tencent Cloud is
    unavailable ... try again", which the same answer makes false."""
    api, tc = cloud
    api.node_pools = {"cls-00000001": []}
    nameless = {"ClusterName": "prod", "ClusterStatus": "Running"}
    api.raw["DescribeClusters"] = [_answer({"Clusters": [nameless], "TotalCount": 1})]
    api.raw["DescribeClusterNodePools"] = [_answer({"NodePoolSet": [{"Name": "np"}]})]
    api.raw["DescribeTopics"] = [_answer({"Topics": [{"TopicName": "t"}], "TotalCount": 1})]
    said = []
    for read in (list_clusters, lambda tc: list_node_pools(tc, "cls-00000001"), list_log_topics):
        with pytest.raises(TencentAnswerError) as caught:
            await read(tc)
        said.append(caught.value.message)
    assert [s.split(" (")[0] for s in said] == [
        "the answer is not the API's: DescribeClusters answered an item without its ClusterId",
        "the answer is not the API's: DescribeClusterNodePools answered an item without its "
        "NodePoolId",
        "the answer is not the API's: DescribeTopics answered an item without its TopicId",
    ]
    assert "AMBIENT_TENCENTCLOUD_ENDPOINT" in said[0] and "'prod'" in said[0]
    assert [c[1] for c in api.calls] == [
        "DescribeClusters",
        "DescribeClusterNodePools",
        "DescribeTopics",
    ]
    kind, text = failure(caught.value, "cls", "DescribeTopics").kind, str(caught.value)
    assert kind == "failed" and "unavailable" not in text, text


async def test_a_lookup_by_name_whose_item_has_no_id_is_not_said_absent(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """find_topic read a topic of the name without its TopicId as none there, and a create
    after it made a second topic of that name."""
    api, tc = cloud
    topic = {"TopicName": "app", "LogsetId": "ls-1"}
    api.raw["DescribeTopics"] = [_answer({"Topics": [topic], "TotalCount": 1})]
    with pytest.raises(TencentAnswerError, match="DescribeTopics answered an item without its"):
        await find_topic(tc, "ls-1", "app", region=None)


async def test_a_list_that_ignores_offset_without_a_total_stops_with_the_rows_it_has(
    cloud: tuple[TencentApi, TencentCloud], caplog: pytest.LogCaptureFixture
) -> None:
    """An API (a gateway, a stand-in) answering the first page to every Offset and no
    TotalCount was asked again without end, and stopped only when a page came again byte for
    byte: its rows changing (a cluster's status) it went on. Here it answers so five times,
    then as the API does: main's loop took five copies of the page."""
    api, tc = cloud
    first = [_cluster(n) for n in range(100)]
    api.clusters = [*first, _cluster(100)]
    changing = [[{**c, "ClusterStatus": f"Running{n}"} for c in first] for n in range(5)]
    api.raw["DescribeClusters"] = [_answer({"Clusters": rows}) for rows in changing]
    with caplog.at_level(logging.WARNING):
        clusters = await list_clusters(tc)
    assert [c.cluster_id for c in clusters] == [c["ClusterId"] for c in first]
    assert [c[2]["Offset"] for c in api.calls] == [0, 100]
    assert "DescribeClusters read no further after 2 pages: kept 100 items" in caplog.text


async def test_a_list_whose_pages_stop_short_of_its_total_is_an_error_not_a_short_list(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A list answering its first page to every Offset, with a TotalCount of 250, was
    answered as its 100 rows (a lookup by name then said "none", and a create made twice)."""
    api, tc = cloud
    first = [_cluster(n) for n in range(100)]
    changing = [[{**c, "ClusterStatus": f"Running{n}"} for c in first] for n in range(3)]
    api.raw["DescribeClusters"] = [
        _answer({"Clusters": rows, "TotalCount": 250}) for rows in changing
    ]
    with pytest.raises(TencentAnswerError) as caught:
        await list_clusters(tc)
    assert caught.value.message.startswith(
        "the answer is not the API's: DescribeClusters listed 100 of its 250 items in 2 pages"
    ), caught.value.message
    assert [c[2]["Offset"] for c in api.calls] == [0, 100]


async def test_a_list_that_changes_while_read_is_read_again_not_answered_short(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A cluster made between two pages, before the second's Offset: that page starts one row
    earlier than asked, its first row one read before, and the new cluster is in no page read.
    The row read twice was kept twice; now the list is read anew from its first page, and
    is whole, neither short nor with a row twice."""
    api, tc = cloud
    rows = [_cluster(n) for n in range(150)]
    api.raw["DescribeClusters"] = [
        _answer({"Clusters": rows[:100], "TotalCount": 150}),
        _answer({"Clusters": rows[99:150], "TotalCount": 151}),
    ]
    api.clusters = [_cluster(150), *rows]  # what the API answers once the raw pages are served
    clusters = await list_clusters(tc)
    assert sorted(c.cluster_id for c in clusters) == sorted(c["ClusterId"] for c in api.clusters)
    assert [c[2]["Offset"] for c in api.calls] == [0, 100, 0, 100]


async def test_a_list_with_one_item_removed_and_one_made_between_pages_is_read_again(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Between two pages a cluster is made (at the list's head) and one of the second page's
    deleted: the total is the same, and the second page starts a row earlier than asked (a row
    read twice, one short of the total). It was said "not the API's answer" and not asked
    again, as if a proxy ignored Offset; it is a list that changed, read anew and whole."""
    api, tc = cloud
    rows = [_cluster(n) for n in range(150)]
    now = [_cluster(150), *rows[:120], *rows[121:]]
    api.raw["DescribeClusters"] = [
        _answer({"Clusters": rows[:100], "TotalCount": 150}),
        _answer({"Clusters": now[100:150], "TotalCount": 150}),
    ]
    api.clusters = now  # what the API answers once the raw pages are served
    clusters = await list_clusters(tc)
    assert sorted(c.cluster_id for c in clusters) == sorted(c["ClusterId"] for c in now)
    assert [c[2]["Offset"] for c in api.calls] == [0, 100, 0, 100]


async def test_a_list_whose_page_holds_no_item_short_of_its_total_is_not_the_apis_answer(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """An empty page before a total that did not change: no list that changed answers so."""
    api, tc = cloud
    rows = [_cluster(n) for n in range(150)]
    api.raw["DescribeClusters"] = [
        _answer({"Clusters": rows[:100], "TotalCount": 150}),
        _answer({"Clusters": [], "TotalCount": 150}),
    ]
    with pytest.raises(TencentAnswerError, match="listed 100 of its 150 items in 2 pages"):
        await list_clusters(tc)


async def test_a_first_page_holding_a_row_twice_short_of_its_total_is_not_the_apis_answer(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A way to the API that drops a row and serves another twice in the one page there is: the
    page was taken without its twin, as a page that started earlier than asked, and read again
    3 times as a list that changed ("try again in a moment")."""
    api, tc = cloud
    rows = [_cluster(0), _cluster(0), _cluster(1)]
    api.raw["DescribeClusters"] = [_answer({"Clusters": rows, "TotalCount": 3})]
    with pytest.raises(TencentAnswerError, match="listed 2 of its 3 items in 1 pages"):
        await list_clusters(tc)
    assert [c[2]["Offset"] for c in api.calls] == [0]


@pytest.mark.parametrize(
    ("second", "total", "said"),
    [
        # A way to the API that drops a row of each second page: it starts a row earlier than
        # asked, one short of the total (in-page twins counted as served).
        (slice(99, 149), 150, "listed 149 of its 150 items in 2 pages"),
        # One whose second page always says a lower TotalCount: it raised ListChanged before
        # the read was noted.
        (slice(100, 149), 149, "listed 150 items, then 149 at page 2"),
    ],
)
async def test_a_list_short_alike_at_each_of_its_reads_is_not_a_list_that_changed(
    cloud: tuple[TencentApi, TencentCloud], second: slice, total: int, said: str
) -> None:
    """The same answer at each of the 3 reads was said a list that changed ("try again in a
    moment"), which no read mends: it is the API's pages or the way to it."""
    api, tc = cloud
    rows = [_cluster(n) for n in range(150)]
    api.raw["DescribeClusters"] = [
        _answer({"Clusters": rows[:100], "TotalCount": 150}),
        _answer({"Clusters": rows[second], "TotalCount": total}),
    ] * 3
    with pytest.raises(TencentAnswerError) as caught:
        await list_clusters(tc)
    assert caught.value.message == (
        f"DescribeClusters {said}, the same at each of its 3 reads (a list that changed would "
        "not answer alike): check the API's pages or the way to it (a proxy, "
        "AMBIENT_TENCENTCLOUD_ENDPOINT)"
    )
    assert [c[2]["Offset"] for c in api.calls] == [0, 100] * 3


async def test_a_list_that_changes_at_each_read_is_said_changed_after_three_reads(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """An item leaving the list while each read pages (its total lower than at the first
    page): read three times from the first page, then a passing failure, ListChanged."""
    api, tc = cloud
    rows = [_cluster(n) for n in range(150)]
    api.raw["DescribeClusters"] = [
        page
        for left in range(3)  # one more gone at each read: no read alike
        for page in (
            _answer({"Clusters": rows[left : left + 100], "TotalCount": 150 - left}),
            _answer({"Clusters": rows[left + 101 : 150], "TotalCount": 149 - left}),
        )
    ]
    with pytest.raises(TencentListChangedError) as changed:
        await list_clusters(tc)
    # Said to whoever reads it: what happened and what to do, not the read's own bookkeeping.
    assert changed.value.message == (
        "Tencent Cloud's DescribeClusters list changed at each of its 3 reads (items made or "
        "removed meanwhile); try again in a moment"
    )
    assert [c[2]["Offset"] for c in api.calls] == [0, 100] * 3


async def test_a_list_whose_pages_are_smaller_than_asked_is_read_to_its_total(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """An API that answers fewer rows a page than Limit asks (20 of 100) is read to its
    TotalCount, its pages counted at the size they come in."""
    api, tc = cloud
    rows = [_cluster(n) for n in range(50)]
    api.raw["DescribeClusters"] = [
        _answer({"Clusters": rows[at : at + 20], "TotalCount": 50}) for at in (0, 20, 40)
    ]
    clusters = await list_clusters(tc)
    assert [c.cluster_id for c in clusters] == [c["ClusterId"] for c in rows]
    assert [c[2]["Offset"] for c in api.calls] == [0, 20, 40]


async def test_a_list_of_more_pages_than_a_list_without_a_total_may_have_is_read_whole(
    cloud: tuple[TencentApi, TencentCloud], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAX_PAGES bounds a list that gives no total; one whose TotalCount needs more pages (a
    month of alarm records, 100 a page) was cut there and said "not the API's answer"."""
    monkeypatch.setattr(client, "MAX_PAGES", 3)
    api, tc = cloud
    rows = [_cluster(n) for n in range(100)]
    api.raw["DescribeClusters"] = [
        _answer({"Clusters": rows[at : at + 20], "TotalCount": 100}) for at in range(0, 100, 20)
    ]
    clusters = await list_clusters(tc)
    assert [c.cluster_id for c in clusters] == [c["ClusterId"] for c in rows]
