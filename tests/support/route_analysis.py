"""A test process keeps FastAPI's analysis of each route, not once per app.

FastAPI (0.16x) analyses every route's endpoint and dependencies (their signatures, a pydantic
field a parameter) for each app that includes the route, at that app's first request: about
0.2 s of CPU an app of ours. The API serves one app a process; the suite builds one app a test
(each with its own settings and database), hundreds of them in a test process. The analysis is
a function of the route's path, endpoint and dependencies alone: its result, built once and only
read afterwards, serves every app that includes the same route.
"""

from __future__ import annotations

from typing import Any

from fastapi import routing

_KEPT: dict[tuple[Any, ...], Any] = {}
_ANALYSE = "_build_dependant_with_parameterless_dependencies"


def keep_route_analysis() -> None:
    """Keep each route's analysis for the process (nothing where FastAPI has no such step)."""
    analyse = getattr(routing, _ANALYSE, None)
    if analyse is None or getattr(analyse, "kept", False):
        return

    def kept(*, path: str, call: Any, dependencies: Any) -> Any:
        key = (path, call, tuple(dependencies))
        if key not in _KEPT:
            _KEPT[key] = analyse(path=path, call=call, dependencies=dependencies)
        return _KEPT[key]

    kept.kept = True  # type: ignore[attr-defined]
    setattr(routing, _ANALYSE, kept)
