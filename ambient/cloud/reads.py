"""Cloud reads: TKE clusters and node pools, CLS topics, log searches, Cloud Monitor metrics,
alarm history, Kubernetes workloads.

One service behind the MCP cloud tools and `ambient cloud`, so each read's rules hold at every
door: a ``file:NAME`` topic is read from AMBIENT_LOG_DIR and never from outside it, a search
defaults to the hour before its end, each look-back has one bound, and a cluster reference names
its kubeconfig by one rule (``cluster_client``). What fails comes out as the doors already say it:
TencentCloudError and KubeError as they are, a file topic's problem as a CloudOpsFailedError.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from ambient.clients.kube import KubeClients, Workload, list_workloads
from ambient.clients.logs import FileLogSource, LogPathError
from ambient.clients.tencent.alarms import AlarmHistory, list_alarms
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.clusters import Cluster, NodePool, list_clusters, list_node_pools
from ambient.clients.tencent.logs import LogTopic, SearchResult, list_log_topics, search_logs
from ambient.clients.tencent.metrics import MetricPoint, get_metric
from ambient.cloud.errors import CloudOpsFailedError, CloudOpsInputError, told
from ambient.settings import Settings

FILE_TOPIC = "file:"
# How far back a read reaches: alarms 30 days, a metric 7 days, logs ten years (any real
# look-back; far past it the window cannot even be computed).
MAX_ALARM_HOURS = 24 * 30
MAX_METRIC_MINUTES = 7 * 24 * 60
# Cloud Monitor's longest period is a day (its periods: 60, 300, 3600, 86400 seconds), as a
# threshold watch's tencent_monitor source allows.
MAX_METRIC_PERIOD = 86400
MAX_LOG_HOURS = 24 * 3650
MAX_LOGS = 1000  # logs a search answers at most (CLS SearchLog's Limit allows 1000)


class LogSearch(SearchResult):
    """A search's answer, of a CLS topic or a ``file:NAME`` one."""


def look_back(amount: float, most: int, unit: str, before: datetime | None = None) -> datetime:
    """The moment ``amount`` hours or minutes (``unit``) before ``before`` (default now);
    ValueError past the bound."""
    if not 0 < amount <= most:
        raise ValueError(f"more than 0 and at most {most} {unit}, not {amount:g}")
    try:
        return (before or datetime.now(UTC)) - timedelta(**{unit: amount})
    except OverflowError:  # before the first year a datetime holds
        raise ValueError(f"{amount:g} {unit} before {before} is no time") from None


def _since(
    field: str, amount: float, most: int, unit: str, before: datetime | None = None
) -> datetime:
    try:
        return look_back(amount, most, unit, before)
    except ValueError as exc:
        raise CloudOpsInputError(field, str(exc)) from None


class CloudReads:
    """Every cloud read of one process; nothing here changes the cloud or needs a permission."""

    def __init__(self, settings: Settings, tencent: TencentCloud, kube: KubeClients) -> None:
        self.settings, self.tencent, self.kube = settings, tencent, kube

    async def clusters(self, region: str | None = None) -> list[Cluster]:
        return await list_clusters(self.tencent, region=region)

    async def node_pools(self, cluster_id: str, region: str | None = None) -> list[NodePool]:
        return await list_node_pools(self.tencent, cluster_id, region=region)

    async def log_topics(self, region: str | None = None) -> list[LogTopic]:
        return await list_log_topics(self.tencent, region=region)

    async def search_logs(
        self,
        topic_id: str,
        query: str = "*",
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        hours: float = 1,
        limit: int = 100,
        region: str | None = None,
        zone: tzinfo = UTC,
    ) -> LogSearch:
        """A CLS topic's logs, or a ``file:NAME`` topic's, in [start, end), newest first; end
        defaults to now, start to ``hours`` before the end (an end given alone: the hour up to
        it, not a window from an hour ago that ends before it begins). A file's line whose
        time has no offset is read in ``zone``, the caller's, as the briefing reads it."""
        if not 1 <= limit <= MAX_LOGS:
            raise CloudOpsInputError("limit", f"between 1 and {MAX_LOGS}, not {limit}")
        finish = end or datetime.now(UTC)
        begin = start or _since("hours", hours, MAX_LOG_HOURS, "hours", before=finish)
        if topic_id.startswith(FILE_TOPIC):
            return await self._search_file(topic_id, query, begin, finish, limit, zone)
        found = await search_logs(
            self.tencent, topic_id, query, begin, finish, limit=limit, region=region
        )
        return LogSearch(**found.model_dump())

    async def _search_file(
        self, topic_id: str, query: str, start: datetime, end: datetime, limit: int, zone: tzinfo
    ) -> LogSearch:
        folder = self.settings.log_dir
        if folder is None:
            raise CloudOpsFailedError(
                "not_configured", "file log topics need AMBIENT_LOG_DIR (a folder of log files)"
            )
        try:
            # Real paths: a symlink (or `..`) that leads out of the folder is refused.
            source = FileLogSource.inside(folder, topic_id.removeprefix(FILE_TOPIC), zone)
            found = await source.search(query, start, end, limit=limit)
        except LogPathError as exc:
            raise CloudOpsFailedError("invalid", str(exc)) from None
        except FileNotFoundError as exc:
            raise CloudOpsFailedError("not_found", str(exc)) from None
        except OSError as exc:
            reason = exc.strerror or exc
            raise CloudOpsFailedError(
                "failed", f"cannot read {topic_id[:100]!r}: {reason}"
            ) from None
        return LogSearch(**found.model_dump() | {"skipped_lines": source.skipped})

    async def metric(
        self,
        namespace: str,
        metric: str,
        dimensions: dict[str, str],
        *,
        minutes: int = 60,
        period: int = 60,
        region: str | None = None,
    ) -> list[MetricPoint]:
        """Datapoints of a Cloud Monitor metric over the last ``minutes``."""
        if not 1 <= period <= MAX_METRIC_PERIOD:
            # Said on period, not as a window too short for it, nor failed computing windows.
            raise CloudOpsInputError(
                "period",
                f"between 1 and {MAX_METRIC_PERIOD} seconds (a day, Cloud Monitor's longest "
                "period; its periods are 60, 300, 3600 and 86400)",
            )
        window = _since("minutes", minutes, MAX_METRIC_MINUTES, "minutes"), datetime.now(UTC)
        # Datapoints lie on the period's boundaries and only those inside the window are
        # answered: a window shorter than a period may hold none, an empty answer that reads as
        # an instance reporting nothing.
        if minutes * 60 < period:
            raise CloudOpsInputError(
                "minutes",
                f"the window ({minutes} min) is shorter than the metric's period ({period} s), "
                f"so it holds no datapoint: ask for at least {-(-period // 60)} minutes, or a "
                "shorter period",
            )
        return await get_metric(
            self.tencent, namespace, metric, dimensions, *window, period=period, region=region
        )

    async def alarms(self, hours: int = 24, region: str | None = None) -> AlarmHistory:
        """Cloud Monitor alarm history and CLS alert records of the last ``hours``."""
        start = _since("hours", hours, MAX_ALARM_HOURS, "hours")
        # A source not read says what to fix, as a read that failed whole does (``told``).
        return await list_alarms(self.tencent, start, datetime.now(UTC), region=region, said=told)

    async def workloads(
        self, cluster_id: str | None = None, namespace: str | None = None, region: str | None = None
    ) -> list[Workload]:
        """Deployments of a cluster (AMBIENT_KUBECONFIG's current context when none is named),
        of one namespace or all, on the process's kept client of the cluster."""
        return await self.kube.using(
            cluster_id, region, lambda client: list_workloads(client, namespace)
        )
