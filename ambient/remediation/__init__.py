"""Graded remediation: alerts, scores, ladder, safety, the service, its storage, executors."""
