"""A tool's input schema as tools/list publishes it: repeated models once, no echo titles."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast


# The two largest tools' schemas were two fifths repeats and titles. Arguments are validated by
# the tool's own model, not by this text.
def published(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's input schema as tools/list publishes it: repeated models once, no echo titles."""
    # A model that appears more than once (a notification target in every kind of config) is
    # put once under $defs; a title that only repeats a name the caller already has is left out.
    body = {key: value for key, value in schema.items() if key != "$defs"}
    defs = dict(schema.get("$defs", {}))
    names: dict[str, str] = {}
    for text, count in Counter(_models(body)).items():
        if count > 1:
            model = json.loads(text)
            base = model["title"]
            numbered = (f"{base}{n}" for n in itertools.count(len(defs)))
            name = base if base not in defs else next(n for n in numbered if n not in defs)
            defs[name] = model
            names[text] = name
    for name in names.values():  # a model inside a hoisted one, by reference too
        defs[name] = {key: _referenced(value, names) for key, value in defs[name].items()}
    published = without_titles(_referenced(body, names))
    published.pop("title", None)  # "<tool>Arguments"
    if defs:
        published["$defs"] = without_titles({"$defs": defs})["$defs"]
    return cast(dict[str, Any], published)


def _models(node: Any, *, root: bool = True) -> Iterator[str]:
    """Each object model inside ``node`` (not ``node`` itself), as its JSON text."""
    if isinstance(node, list):
        for item in node:
            yield from _models(item, root=False)
    elif isinstance(node, dict):
        if not root and node.get("type") == "object" and isinstance(node.get("title"), str):
            yield json.dumps(node, sort_keys=True)
        for value in node.values():
            yield from _models(value, root=False)


def _referenced(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_referenced(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "object" and isinstance(node.get("title"), str):
        name = names.get(json.dumps(node, sort_keys=True))
        if name is not None:
            return {"$ref": f"#/$defs/{name}"}
    return {key: _referenced(value, names) for key, value in node.items()}


def without_titles(node: Any) -> Any:
    """``node`` without the titles that only repeat a property's name or a definition's key."""
    # A model's name inline stays: a description may name it ("web_monitor → WebMonitorConfig").
    if isinstance(node, list):
        return [without_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: without_titles(value) for key, value in node.items()}
    # The title pydantic gives a property is its name title-cased; a definition's is its key.
    for key, named in (("properties", lambda n: n.replace("_", " ").title()), ("$defs", str)):
        if isinstance(out.get(key), dict):
            out[key] = {name: _untitled(schema, named(name)) for name, schema in out[key].items()}
    return out


def _untitled(schema: Any, title: str) -> Any:
    if isinstance(schema, dict) and schema.get("title") == title:
        return {key: value for key, value in schema.items() if key != "title"}
    return schema
