"""The API served over a running worker: its settings, and a client talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient.deps import WorkerDeps
from ambient.settings import Settings
from api.app import create_app
from tests.conftest import running_worker
from tests.support.servers import http_client, serve


def api_client(base: str, **options: Any) -> httpx.AsyncClient:
    """A client to the API served at ``base`` on loopback (see http_client); ``options``
    (headers, cookies) as httpx.AsyncClient takes them."""
    return http_client(base, **options)


def reaching(deps: WorkerDeps, client: Client, worker: Worker) -> Settings:
    """deps' settings that reach ``worker``: its task queue, the Temporal server of ``client``."""
    return deps.settings.model_copy(
        update={
            "temporal_task_queue": worker.task_queue,
            "temporal_address": client.service_client.config.target_host,
        }
    )


@asynccontextmanager
async def api_over_worker(
    env: WorkflowEnvironment, deps: WorkerDeps
) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    """A worker on deps, the API served with settings that reach it, and a client to the API."""
    async with running_worker(env.client, deps) as worker:
        settings = reaching(deps, env.client, worker)
        async with (
            serve(create_app(settings)) as base,
            api_client(base) as http,
        ):
            yield settings, http


@asynccontextmanager
async def signed_in_api(settings: Settings, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API served with ``settings`` on a loopback port, and a client signed in as
    ``token``'s user (its requests take paths relative to the API)."""
    async with (
        serve(create_app(settings)) as base,
        api_client(base, headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        yield http
