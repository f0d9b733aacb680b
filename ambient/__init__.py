"""ambient-ops: an ambient operations assistant for teams on Tencent Cloud, built on Temporal."""

__version__ = "0.1.0"
