"""What tools/list publishes as each tool's input schema: repeats once under $defs, no titles,
bounds in JSON Schema's words, still a schema every documented example passes."""

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from ambient.settings import Settings
from api.app import create_app
from mcp_server.server import build_server
from mcp_server.tool_schemas import published
from mcp_server.voice import build_voice_server
from tests.support.servers import http_client, serve
from tests.watches.test_tasks_mcp import ORIGINAL


def _schemas() -> dict[str, dict[str, Any]]:
    return {name: tool.parameters for name, tool in _tools().items()}


def _tools() -> dict[str, Any]:
    server = build_server(Settings())
    return {tool.name: tool for tool in server._tool_manager.list_tools()}


def _titles(node: Any) -> list[str]:
    """Titles that only repeat a name: a property's own, a definition's key, the arguments'."""
    if isinstance(node, list):
        return [found for item in node for found in _titles(item)]
    if not isinstance(node, dict):
        return []
    found = []
    for name, schema in (node.get("properties") or {}).items():
        if isinstance(schema, dict) and schema.get("title") == name.replace("_", " ").title():
            found.append(schema["title"])
    for name, schema in (node.get("$defs") or {}).items():
        if schema.get("title") == name:
            found.append(name)
    for value in node.values():
        found += _titles(value)
    return found


def test_every_published_input_schema_is_valid_resolves_its_refs_and_carries_no_titles() -> None:
    schemas = _schemas()
    assert len(schemas) > 50
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        assert _titles(schema) == [] and "title" not in schema, name
        text = repr(schema)
        for ref in {part.split("'")[0] for part in text.split("'$ref': '#/$defs/")[1:]}:
            assert ref in schema["$defs"], (name, ref)


def test_the_generic_task_tool_names_each_repeated_model_once() -> None:
    schema = _schemas()["create_background_task"]
    assert {"NotificationSpec", "Target"} <= set(schema["$defs"])
    assert repr(schema).count("'method': {") == 1  # NotificationSpec's fields, once
    kinds = schema["properties"]["config"]["anyOf"]
    assert all("notification" in kind["properties"] for kind in kinds)
    # The config's description names each kind's model: their names stay.
    assert [kind["title"] for kind in kinds] == [
        "WebMonitorConfig",
        "ThresholdWatchConfig",
        "ReminderConfig",
        "NewsDigestConfig",
    ]


@pytest.mark.parametrize("example", ORIGINAL, ids=[e["type"] for e in ORIGINAL])
def test_each_original_example_passes_the_published_schema_and_a_bad_one_does_not(
    example: dict[str, Any],
) -> None:
    validator = Draft202012Validator(_schemas()["create_background_task"])
    assert list(validator.iter_errors(example)) == []
    bad = {**example, "config": {**example["config"], "notification": {"method": 7}}}
    assert list(validator.iter_errors(bad)) != []


class _Address(BaseModel):
    city: str
    street: str


class _Letter(BaseModel):
    title: str
    sender: _Address
    to: _Address


def test_a_field_called_title_stays_and_the_models_own_defs_lose_their_titles() -> None:
    schema = published(_Letter.model_json_schema())
    assert schema["required"] == ["title", "sender", "to"]
    assert schema["properties"]["title"] == {"type": "string"}
    assert schema["properties"]["sender"] == schema["properties"]["to"]
    assert schema["$defs"]["_Address"]["required"] == ["city", "street"]
    assert _titles(schema) == []
    Draft202012Validator(schema).validate(
        {"title": "hi", "sender": {"city": "a", "street": "b"}, "to": {"city": "c", "street": "d"}}
    )


def test_a_repeated_model_whose_name_and_numbered_name_are_both_taken_gets_a_free_one() -> None:
    inline = {"title": "X", "type": "object", "properties": {"n": {"type": "integer"}}}
    schema = {
        "type": "object",
        "properties": {"a": inline, "b": dict(inline)},
        "$defs": {"X": {"type": "string"}, "X2": {"type": "integer"}},
    }
    hoisted = published(schema)  # took its numbered name, not a loop over a taken one
    assert hoisted["properties"]["a"] == hoisted["properties"]["b"] == {"$ref": "#/$defs/X3"}
    assert hoisted["$defs"]["X2"] == {"type": "integer"}


@pytest.mark.parametrize("tool", ["create_daily_briefing", "analyze_logs"])
def test_a_log_source_is_published_as_its_two_shapes_not_any_object(tool: str) -> None:
    # It was {"type": "object", "additionalProperties": true}: a model read the shapes from prose.
    schema = _schemas()[tool]
    argument = schema["properties"]["log_source"]
    if tool == "create_daily_briefing":
        assert {"type": "null"} in argument["anyOf"]
        argument = {"anyOf": [part for part in argument["anyOf"] if part != {"type": "null"}]}
    check = Draft202012Validator({**argument, "$defs": schema.get("$defs", {})})
    for good in (
        {"type": "file", "path": "/var/log/app"},
        {"type": "cls", "topic_id": "t-1", "region": "ap-shanghai", "query": "level:ERROR"},
        {"path": "/var/log/app"},
        {"topic_id": "t-1"},
    ):
        assert check.is_valid(good), good
    for bad in ({"type": "ftp", "path": "x"}, {"type": "cls"}, {"type": "file"}, {"url": "x"}):
        assert not check.is_valid(bad), bad
    text = repr(argument)
    assert "'file'" in text and "'cls'" in text


def _pydantic_words(node: Any, path: str = "") -> list[str]:
    """Where a schema says a bound in pydantic's words (ge, le, gt, lt), which no JSON Schema
    validator or model reads, instead of minimum, maximum and their exclusive forms."""
    if isinstance(node, list):
        return [found for item in node for found in _pydantic_words(item, path)]
    if not isinstance(node, dict):
        return []
    found = [f"{path}/{key}" for key in ("ge", "le", "gt", "lt") if key in node]
    for key, value in node.items():
        if key == "properties":  # a field may be called "ge"
            found += [f for name, sub in value.items() for f in _pydantic_words(sub, name)]
        else:
            found += _pydantic_words(value, path)
    return found


async def test_no_published_schema_says_a_bound_in_pydantics_words(settings: Settings) -> None:
    # 38 bounds of 17 tools (list_tasks' page_size, scale_workload's replicas, ...) and 41 of
    # the API's were published as {"ge": 1, "le": 1000}: a client or a model took any number.
    voice = build_voice_server(settings)._tool_manager.list_tools()
    tools = {**_tools(), **{f"voice {tool.name}": tool for tool in voice}}
    assert {name: _pydantic_words(tool.parameters) for name, tool in tools.items()} == {
        name: [] for name in tools
    }
    async with serve(create_app(settings)) as base, http_client(base) as http:
        document = (await http.get("/openapi.json")).json()
    assert _pydantic_words(document) == []
    limit = next(
        p for p in document["paths"]["/tasks"]["get"]["parameters"] if p["name"] == "page_size"
    )
    assert limit["schema"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 1000}


# A tool's arguments its own model refuses by a numeric bound, and by nothing else.
ALERT = {
    "source": "manual",
    "cluster_id": "cls-abc12345",
    "namespace": "default",
    "workload": "api",
}
BOUNDED = [
    ("list_tasks", {"page_size": 0}),
    ("list_tasks", {"page_size": 1001}),
    ("list_events", {"limit": 0}),
    ("list_events", {"before_id": 0}),
    (
        "scale_workload",
        {
            "workload": {"cluster_id": "cls-abc12345", "namespace": "prod", "name": "api"},
            "replicas": 0,
        },
    ),
    ("scale_node_pool", {"cluster_id": "cls-abc12345", "node_pool_id": "np-1", "desired": -1}),
    ("list_alarms", {"hours": 100000}),
    ("remediation_stats", {"days": 0}),
    ("list_remediations", {"offset": -1}),
    ("start_remediation", {"alert": {**ALERT, "settle_seconds": -1}}),
]


@pytest.mark.parametrize(("tool", "arguments"), BOUNDED, ids=[f"{t}-{a}" for t, a in BOUNDED])
def test_a_bound_a_tool_enforces_is_one_its_published_schema_says(
    tool: str, arguments: dict[str, Any]
) -> None:
    found = _tools()[tool]
    with pytest.raises(ValidationError):
        found.fn_metadata.arg_model.model_validate(arguments)
    assert not Draft202012Validator(found.parameters).is_valid(arguments), found.parameters


def test_update_task_publishes_the_config_of_a_daily_briefing_it_takes() -> None:
    # Its config was web monitor | threshold watch | reminder, each taking no other field: a
    # validating client refused a briefing's {"window_end": "11:00"} that the tool takes
    # (test_the_daily_briefing_id_works_with_the_generic_task_tools).
    check = Draft202012Validator(_schemas()["update_task"])
    for config in (
        {"window_end": "11:00"},
        {"log_source": {"type": "file", "path": "/var/log/app"}, "timezone": "Europe/Berlin"},
        {"log_source": {"topic_id": "t-1"}, "news_urls": ["https://example.com/feed"]},
    ):
        assert list(check.iter_errors({"task_id": "daily-briefing/dev", "config": config})) == []
    for config in ({"window_end": 11}, {"log_source": {"type": "ftp"}}, {"wake_at": "11:00"}):
        assert not check.is_valid({"task_id": "daily-briefing/dev", "config": config}), config
