"""Test-only helpers and workflows (never shipped as features)."""
