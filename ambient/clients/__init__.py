"""Plain async clients for the outside world, usable with or without Temporal."""
