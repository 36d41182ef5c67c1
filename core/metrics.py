"""The process's Prometheus registry: every module declares its metrics against it."""

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=True)
