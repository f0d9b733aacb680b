"""Asked-for cloud operations (Tencent Cloud, Kubernetes): dry run first, permissioned, audited."""
