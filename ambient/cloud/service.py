"""Asked-for cloud operations: create node pools, logsets, topics, CLS alarms, scheduled SQL.

One service behind the MCP tools, the API routes and the CLI, so the rules hold everywhere:

- the caller's permission is read from the database on every call (`rollback_permission`:
  ``none`` refuses, ``dry_run`` may preview, ``execute`` may change the cloud);
- ``dry_run`` is the default and sends nothing: it answers the exact request that would go;
- a create first looks its resource up by name, so a retried create finds what the first
  attempt made instead of making a second one;
- every call leaves an audit row (refusals and failures included);
- Tencent Cloud errors come back as one readable sentence per class (auth, quota, invalid
  parameter, not found, unavailable).

The operations live by area: node_pools, logs (CLS), workloads and apply (Kubernetes),
images; audit and creates hold the rules they share.
"""

from __future__ import annotations

from ambient.cloud.logs import ClsWrites
from ambient.cloud.node_pools import NodePoolWrites


class CloudOpsService(NodePoolWrites, ClsWrites):
    """Cloud writes for one process; callers pass who is asking, never what they may do."""
