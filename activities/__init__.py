"""Activities: the only code a workflow uses to touch the outside world (the worker's list of
them: activities/registry.py)."""
