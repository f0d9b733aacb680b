"""Record workflow histories for replay checks: `python -m tests.support.record`.

Tests of product workflows save their histories with ``save_history`` when
AMBIENT_RECORD_HISTORIES=1; this module's main records the foundation's test workflow.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from temporalio.client import WorkflowHandle

from tests.support.servers import http_client, start_test_server

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


def recording() -> bool:
    return os.environ.get("AMBIENT_RECORD_HISTORIES") == "1"


async def save_history(handle: WorkflowHandle[object, object], name: str) -> Path | None:
    """Write the history of ``handle`` to tests/histories/<name>.json when recording."""
    if not recording():
        return None
    path = HISTORIES / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(without_stack_traces((await handle.fetch_history()).to_json()))
    return path


def without_stack_traces(history: str) -> str:
    """The history with its failures' stack traces blanked: they name this machine's paths,
    and replay reads none of them."""

    def blank(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "stackTrace" and isinstance(value, str):
                    node[key] = ""
                else:
                    blank(value)
        elif isinstance(node, list):
            for value in node:
                blank(value)

    data = json.loads(history)
    blank(data)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


async def _record_ping() -> None:
    from ambient.binaries import find_binary
    from ambient.clients.notify.registry import build_channels
    from ambient.deps import WorkerDeps
    from ambient.domain.users import UserCreate
    from ambient.settings import Environment, Settings
    from ambient.storage import Database
    from ambient.storage.migrate import upgrade_async
    from ambient.storage.users import UserRepository
    from tests.support.workflows import PingInput, PingWorkflow
    from worker import build_worker

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(environment=Environment.TEST, data_dir=Path(tmp), _env_file=None)  # type: ignore[call-arg]
        await upgrade_async(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="alice"))
            await session.commit()
        # Stopped however this process ends, as the tests' servers are.
        env = await start_test_server(find_binary("temporal-test-server"))
        async with (
            env,
            http_client() as http,
        ):
            deps = WorkerDeps(settings, db, build_channels(settings, db, http), http)
            async with build_worker(
                env.client, deps, task_queue="record", extra_workflows=[PingWorkflow]
            ):
                handle = await env.client.start_workflow(
                    PingWorkflow.run,
                    PingInput(user="alice", text="hello"),
                    id="ping-recorded",
                    task_queue="record",
                )
                await handle.result()
            path = HISTORIES / "support" / "ping.json"
            path.write_text(without_stack_traces((await handle.fetch_history()).to_json()))
            print(f"wrote {path}")
        await db.close()


if __name__ == "__main__":
    asyncio.run(_record_ping())
