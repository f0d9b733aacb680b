"""A request field the product leaves as None is not sent: the stand-in refuses a JSON null
(a conservative assumption: the API documents nothing of null), where leaving the field out
keeps its documented default."""

from __future__ import annotations

import asyncio
import json

from ambient.clients.tencent.client import TencentCloud
from tests.standins.tencent_api import TencentApi


async def test_a_field_left_none_is_not_sent_as_null(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """TencentCloud.call sent a dict's None as null (the SDK drops None from its typed models
    only): the stand-in took a null for absent, so a product's `"Limit": null` passed the tests
    and the real API may refuse it."""
    api, tc = cloud
    api.logsets = [{"LogsetId": "ls-1", "LogsetName": "audit"}]
    asked = {"Offset": None, "Limit": None, "Filters": [{"Key": "logsetName", "Values": ["audit"]}]}
    answer = await tc.call("cls", "DescribeLogsets", asked)
    assert [s["LogsetId"] for s in answer["Logsets"]] == ["ls-1"]
    # What came over the wire: the fields left out, no null in the body at all.
    sent = api.bodies[-1]
    assert b"null" not in sent, sent
    assert json.loads(sent) == {"Filters": [{"Key": "logsetName", "Values": ["audit"]}]}


async def test_the_stand_in_refuses_a_null(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A null sent as it is (the SDK's own ``_call``, no product code in between): a required
    parameter null is missing, any other is of the wrong type; the call is recorded."""
    api, tc = cloud
    sdk = tc._client("cls", "ap-guangzhou")
    said = []
    for params in (
        {"From": 1, "To": 2, "TopicId": "topic-1", "Limit": None},
        {"From": None, "To": 2, "TopicId": "topic-1"},
        {"Filters": [{"Key": "logsetName", "Values": None}]},
    ):
        action = "DescribeLogsets" if "Filters" in params else "SearchLog"
        sent = await asyncio.to_thread(sdk._call, action, params)  # the stand-in is on this loop
        error = json.loads(sent.content)["Response"]["Error"]
        said.append((error["Code"], error["Message"]))
    assert said == [
        ("InvalidParameter", "`Limit` is null, not of the type SearchLog defines"),
        ("MissingParameter", "The request is missing a required parameter `From`."),
        ("MissingParameter", "The request is missing a required parameter `Filters.0.Values`."),
    ]
    assert api.calls[0][2]["Limit"] is None  # recorded as sent
