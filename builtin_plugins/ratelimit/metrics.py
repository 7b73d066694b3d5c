"""The plugin's Prometheus metrics (``elemta_ratelimit_*``).

Metrics are registered once per registry and reused by later instances of the plugin (a
config reload builds a new one), since a registry refuses a name twice.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class RateLimitMetrics:
    checks: Counter
    hits: Counter
    denied: Counter
    backend_errors: Counter
    leases: Gauge


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, RateLimitMetrics] = (
    weakref.WeakKeyDictionary())


def metrics_for(registry: CollectorRegistry | None) -> RateLimitMetrics:
    if registry is not None and registry in _BY_REGISTRY:
        return _BY_REGISTRY[registry]
    r = registry if registry is not None else CollectorRegistry()
    m = RateLimitMetrics(
        checks=Counter("elemta_ratelimit_checks", "Rate limit checks by hook", ["hook"],
                       registry=r),
        hits=Counter("elemta_ratelimit_hits", "Checks refused because a limit was reached",
                     ["limit"], registry=r),
        denied=Counter("elemta_ratelimit_denied", "Connections refused by the deny list",
                       registry=r),
        backend_errors=Counter("elemta_ratelimit_backend_errors",
                               "Checks the backend could not answer, by policy applied",
                               ["backend", "policy"], registry=r),
        leases=Gauge("elemta_ratelimit_leases", "Connection slots this node holds", registry=r),
    )
    if registry is not None:
        _BY_REGISTRY[registry] = m
    return m
