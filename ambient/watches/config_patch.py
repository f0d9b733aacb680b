"""An update of a task's config as a JSON Merge Patch (RFC 7396) over the config in force.

A field sent replaces the stored one, an object merges field by field, null resets a field to
its default (the key is dropped, so the model's default applies) and a list replaces whole.
An object inside the config whose kind (a source's ``type``, a notification's ``method``)
changes is replaced whole: the fields (and credentials) of another kind are not merged in; the
config's own kind (a reminder's ``type`` or ``action``) keeps the fields it shares, and the
service drops the stored ones the new kind has no use for (``retyped`` in
ambient/watches/reminders.py). A map of the user's own keys (a metric's ``dimensions``, a
page's ``selectors``, ``headers``) is a value: replaced whole, so a key left out is gone, not
kept from the stored map (a key sent null is left out too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KIND_FIELDS = ("type", "action", "method")
VALUE_MAPS = frozenset({"dimensions", "selectors", "headers"})


def merged(
    stored: Mapping[str, Any],
    patch: Mapping[str, Any],
    resets: Mapping[str, Sequence[str]] | None = None,
    *,
    inner: bool = False,
) -> dict[str, Any]:
    """``patch`` merged over ``stored``; ``resets``: top-level fields that say the same thing
    as another (a threshold and its conditions): one sent drops the stored other; ``inner``:
    an object inside the config (replaced whole when its kind changes)."""
    if inner and kind_changed(stored, patch):
        return merged({}, patch, inner=True)
    out = dict(stored)
    for key, value in patch.items():
        for other in (resets or {}).get(key, ()):
            if other not in patch:
                out.pop(other, None)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and key not in VALUE_MAPS:
            below = out.get(key)
            out[key] = merged(below if isinstance(below, Mapping) else {}, value, inner=True)
        elif isinstance(value, Mapping):  # a value map: its null keys are none of its keys
            out[key] = {name: each for name, each in value.items() if each is not None}
        else:
            out[key] = value
    return out


def kind_changed(stored: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """Whether ``patch`` gives the object another kind than ``stored``'s."""
    return any(key in stored and patch.get(key) not in (None, stored[key]) for key in KIND_FIELDS)


def changed(before: Mapping[str, Any], after: Mapping[str, Any], at: str = "") -> list[str]:
    """The fields whose value differs, dotted inside objects (``source.url``); a value map
    is one field (its keys are a user's, a URL's dots among them)."""
    paths = []
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key), after.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping) and key not in VALUE_MAPS:
            paths += changed(old, new, f"{at}{key}.")
        elif old != new:
            paths.append(f"{at}{key}")
    return paths
