"""The process's Prometheus registry: every module declares its metrics against it (served at GET /metrics)."""

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=True)
