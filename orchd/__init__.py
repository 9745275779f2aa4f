"""orchd: an offline-first job orchestrator for air-gapped sites."""

__version__ = "0.1.0"
