"""The run life cycle: Celery execution, leases and heartbeats, launching, presets, the run pages."""
