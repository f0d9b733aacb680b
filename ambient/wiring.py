"""The composition root: settings, database, Temporal client and channels, built once by an
entry point (the API lifespan, `ambient mcp`, the CLI, the bridge) and handed to every door."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from temporalio.client import Client

from ambient import temporal
from ambient.clients.llm import LLMClient
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.registry import build_channels
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tls import ca_context
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import require_current, upgrade_async

if TYPE_CHECKING:
    # Each service's module is imported by the property that builds it: a CLI command that
    # asks one service (or only the database: `ambient chat` finding its user) does not
    # import the other areas and their workflows (~2 s of CPU a process).
    from ambient.agent.digest import EventDigestService
    from ambient.briefing.service import BriefingService
    from ambient.clients.kube import KubeClients
    from ambient.cloud.reads import CloudReads
    from ambient.cloud.service import CloudOpsService
    from ambient.cloud.workloads import WorkloadOps
    from ambient.discussions.service import DiscussionService
    from ambient.remediation.service import RemediationService
    from ambient.watches.service import TaskService
    from ambient.xiaozhi import DeviceService


@dataclass
class AppState:
    settings: Settings
    db: Database
    temporal: Client
    channels: ChannelRegistry
    tencent: TencentCloud | None = None
    # The user a stdio session acts as (`ambient mcp --user NAME`); HTTP uses the bearer token.
    stdio_user: str | None = None
    # The process's LLM client (its HTTP client reused by every copy of this state).
    llm: LLMClient | None = None
    # The process's Kubernetes clients, one a cluster as the worker keeps them: made at the
    # first cluster read or change a door asks for (so a CLI command that touches no cluster
    # does not import lightkube), in a holder every copy of this state shares, closed by
    # ``open_state``.
    kube: dict[str, KubeClients] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.llm is None:
            self.llm = LLMClient(self.settings)

    # Each service is built here and only here, so every door gets the same collaborators.
    # Properties, not cached ones: a service is a few references, and tests copy a state with
    # ``AppState(**state.__dict__)``, which a cached value in ``__dict__`` would break.

    @property
    def cloud(self) -> TencentCloud:
        """The Tencent Cloud client (one from settings when the state was made without)."""
        return self.tencent or TencentCloud.from_settings(self.settings)

    @property
    def briefings(self) -> BriefingService:
        from ambient.briefing.service import BriefingService

        return BriefingService(self.temporal, self.settings, self.db, self.tencent)

    @property
    def remediations(self) -> RemediationService:
        from ambient.remediation.service import RemediationService

        return RemediationService(self.temporal, self.settings, self.db, self.llm)

    @property
    def tasks(self) -> TaskService:
        from ambient.watches.service import TaskService

        return TaskService(self.temporal, self.settings, self.db, briefings=self.briefings)

    @property
    def discussions(self) -> DiscussionService:
        from ambient.discussions.service import DiscussionService

        return DiscussionService(self.db, self.settings, self.temporal, self.remediations)

    @property
    def cloud_ops(self) -> CloudOpsService:
        from ambient.cloud.service import CloudOpsService

        return CloudOpsService(self.db, self.cloud)

    @property
    def kube_clients(self) -> KubeClients:
        if not self.kube:
            from ambient.clients.kube import KubeClients

            self.kube["clients"] = KubeClients(self.settings.kubeconfig, self.cloud)
        return self.kube["clients"]

    @property
    def workload_ops(self) -> WorkloadOps:
        """apply_yaml, scale_workload, restart_workload, on the process's cluster clients."""
        from ambient.cloud.workloads import WorkloadOps

        return WorkloadOps(self.cloud_ops, self.kube_clients)

    @property
    def cloud_reads(self) -> CloudReads:
        from ambient.cloud.reads import CloudReads

        return CloudReads(self.settings, self.cloud, self.kube_clients)

    async def close_clusters(self) -> None:
        for clients in self.kube.values():
            await clients.aclose()

    @property
    def digests(self) -> EventDigestService:
        from ambient.agent.digest import EventDigestService

        return EventDigestService(self.temporal, self.settings, self.db)

    @property
    def devices(self) -> DeviceService:
        from ambient.xiaozhi import DeviceService

        return DeviceService(self.db)


@asynccontextmanager
async def open_state(
    settings: Settings, *, stdio_user: str | None = None, upgrade: bool = False
) -> AsyncIterator[AppState]:
    """Database and a lazy Temporal client, closed on exit; a database behind is refused.

    ``upgrade``: a CLI command brings the database up to date first, as `ambient migrate` does
    (whoever runs it holds the database); the API and MCP never change the schema at start.
    """
    async with AsyncExitStack() as stack:
        if upgrade:
            await upgrade_async(settings.resolved_database_url)
        else:
            await require_current(settings.resolved_database_url)
        db = await stack.enter_async_context(Database(settings.resolved_database_url))
        # Lazy: the API and MCP start (and report it) even while Temporal is down.
        client = await temporal.connect(settings, lazy=True)
        http = await stack.enter_async_context(
            httpx.AsyncClient(timeout=30, trust_env=False, verify=ca_context())
        )
        state = AppState(
            settings=settings,
            db=db,
            temporal=client,
            channels=build_channels(settings, db, http),
            tencent=TencentCloud.from_settings(settings),
            stdio_user=stdio_user,
        )
        stack.push_async_callback(state.channels.aclose)  # before the database closes
        stack.push_async_callback(state.close_clusters)
        yield state


class StateHolder:
    """Lets a door be built first (the API mounts the MCP app) and get the state when it starts."""

    def __init__(self, state: AppState | None = None) -> None:
        self.state = state

    def get(self) -> AppState:
        if self.state is None:
            raise RuntimeError("application state is not ready (lifespan not started)")
        return self.state
