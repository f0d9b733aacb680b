"""Pure, deterministic, sandbox-safe domain models and policies (no I/O, no clock)."""
