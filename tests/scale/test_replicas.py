"""Two workers and two API replicas on one PostgreSQL app database; one worker is killed -9.

Everything is real and out of process as in a deployment: ``ambient migrate`` once, two
``ambient worker`` and two ``ambient api`` processes on the session's Temporal dev server and a
PostgreSQL from pgserver's embedded binaries. Watches and remediations are created over HTTP
through both APIs. What happened is read from the stand-ins (bench/replicas.py's recorder:
pages that change edition on a clock and a webhook receiver; the Kubernetes API stand-in),
never from the product's own view of itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from ambient.domain.users import UserCreate
from ambient.remediation.ladder import STEP_ANNOTATION
from ambient.storage import Database
from ambient.storage.polls import WatchPollLease
from ambient.storage.users import UserRepository
from ambient.watches.leases import RELEASED
from bench.replicas import (
    USER,
    Recorder,
    api_clients,
    applied_steps,
    checks,
    cluster_env,
    create_watches,
    deliveries,
    finals,
    kube_standin,
    ready,
    start_remediation,
    started,
    step_writes,
    steps,
    stop_watches,
)
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture
from tests.standins.kube_api import ApiCall, kubeconfig
from tests.support.servers import serve
from tests.support.waits import eventually

WATCHES = 24
REMEDIATIONS = 4
INTERVAL = 60.0  # the product's shortest check interval
# A page changes every 2.5 intervals: two checks in a row never straddle two changes unless
# a check was skipped (and that is counted as lost anyway).
CHANGE_EVERY = 150.0
DEAD_AFTER = 10  # AMBIENT_WORKER_DEAD_AFTER_SECONDS: the dead worker's polls move sooner
# A check is late, not lost, within the dead process being noticed (dead_after + a 10 s
# sweep), its poll started again elsewhere, and the machine's load.
BOUND = 45.0
AFTER_KILL = 3  # fetches of every page after the kill before the watches are stopped


async def lease_holders(db: Database) -> dict[str, int]:
    async with db.session() as session:
        rows = await session.execute(
            select(WatchPollLease.process, func.count())
            .where(WatchPollLease.process != RELEASED)  # rows of ended polls: held by none
            .group_by(WatchPollLease.process)
        )
    return {process: n for process, n in rows.tuples()}


@pytest.mark.devserver
async def test_a_worker_killed_beside_another_on_postgresql_loses_and_repeats_nothing(
    dev_env: WorkflowEnvironment,
    postgres_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    recorder = Recorder(CHANGE_EVERY, WATCHES)
    kube = kube_standin(REMEDIATIONS)
    victim: list[subprocess.Popen[bytes]] = []
    killed_at: list[float] = []

    def kill_at_the_first_stamped_write(call: ApiCall) -> None:
        # Mid-ladder: a step's patch is stored and the other steps are on their way.
        if STEP_ANNOTATION in str(call.body) and not killed_at:
            os.kill(victim[0].pid, signal.SIGKILL)
            killed_at.append(time.time())

    kube.on_write = kill_at_the_first_stamped_write
    client = dev_env.client
    db = Database(postgres_url)
    try:
        async with serve(recorder.app()) as site, serve(kube.app()) as kube_url:
            config = tmp_path / "kubeconfig"
            config.write_text(yaml.safe_dump(kubeconfig({"replicas": kube_url})))
            address = client.service_client.config.target_host
            env = cluster_env(postgres_url, address, tmp_path, config, unique("replicas"))
            env["AMBIENT_WORKER_DEAD_AFTER_SECONDS"] = str(DEAD_AFTER)
            with started(env, tmp_path, workers=2, apis=2) as cluster:
                await ready(client, cluster)
                victim.append(cluster.workers[0])
                async with db.session() as session:
                    user, token = await UserRepository(session).create(UserCreate(name=USER))
                    user.rollback_permission = "execute"
                    await session.commit()
                async with api_clients(cluster.apis, token) as apis:
                    pages = [f"{site}/w/{n}" for n in range(WATCHES)]
                    ids = await create_watches(apis, pages, f"{site}/hook", INTERVAL, 8)

                    def fetched(times: int, since: float = 0.0) -> Any:
                        async def enough() -> bool:
                            counts = [
                                sum(1 for t, _ in recorder.fetches.get(f"/w/{n}", []) if t > since)
                                for n in range(WATCHES)
                            ]
                            return min(counts) >= times

                        return enough

                    await eventually(fetched(2), bound=4 * INTERVAL)  # every poll past its baseline
                    assert len(await lease_holders(db)) == 2  # both workers run polls
                    rids = [
                        await start_remediation(apis[i % 2], i, settle=5)
                        for i in range(REMEDIATIONS)
                    ]
                    # The hook kills.
                    await eventually(lambda: asyncio.sleep(0, killed_at), bound=120)
                    assert await asyncio.to_thread(victim[0].wait, 30) == -signal.SIGKILL
                    await eventually(
                        fetched(AFTER_KILL, killed_at[0]), bound=(AFTER_KILL + 2) * INTERVAL
                    )
                    # Every poll now held by the live worker (the dead one's taken over).
                    assert list((await lease_holders(db)).values()) == [WATCHES]
                    done = await finals(client, rids, 300)
                    stopped = time.time()
                    await stop_watches(apis, ids, 8)

                    async def delivered() -> bool:
                        told = deliveries(recorder.fetches, recorder.hooks, site)
                        return told.lost == 0

                    await eventually(delivered)
    finally:
        await db.close()

    found = checks(recorder.fetches, INTERVAL, BOUND, stopped)
    doubled = {
        page: [round(t - killed_at[0], 1) for t, _ in sorted(stamps)]
        for page, stamps in recorder.fetches.items()
        if checks({page: stamps}, INTERVAL, BOUND, stopped).duplicated
    }
    # On failure: the longest gap, and each doubled page's fetches in seconds from the kill.
    assert found.counts() == "0 / 0", (found.longest_gap, doubled)
    told = deliveries(recorder.fetches, recorder.hooks, site)
    assert told.changes >= WATCHES  # every page changed at least once while watched
    assert (told.lost, told.duplicated) == (0, 0)
    stepped = steps(applied_steps(done), step_writes(kube))
    assert stepped.applied == REMEDIATIONS
    assert (stepped.lost, stepped.duplicated, stepped.unfinished) == (0, 0, 0)
