"""A workflow that does what workflow code must not, to show what the worker's sandbox stops.

tests/foundation/test_sandbox_guard.py loads this file as a module of the `workflows` package,
so the worker's runner treats it as it treats our workflow modules.
"""

from __future__ import annotations

import random
from datetime import datetime

from temporalio import workflow


@workflow.defn(name="SandboxProbe")
class SandboxProbe:
    @workflow.run
    async def run(self, what: str) -> str:
        if what == "clock":
            return datetime.now().isoformat()
        if what == "random":
            return str(random.random())
        if what == "open":
            with open(__file__, encoding="utf-8") as source:  # noqa: ASYNC230 - the point
                return source.readline()
        if what == "clock imported in the run":
            import datetime as clock

            return clock.datetime.now().isoformat()
        if what == "random imported in the run":
            import random as chance

            return str(chance.random())
        return what
