"""Prometheus metrics (``elemta_*``). Hook latency is read from the pipeline at scrape time,
so dispatch itself only bumps plain counters."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from elemta_core.hooks.pipeline import BUCKETS, Pipeline
from elemta_core.hooks.types import Action

log = logging.getLogger("elemta.metrics")


class PipelineCollector(Collector):
    def __init__(self, pipeline: Callable[[], Pipeline]) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[HistogramMetricFamily | CounterMetricFamily]:
        hist = HistogramMetricFamily("elemta_hook_duration_seconds",
                                     "Hook call latency per plugin and hook",
                                     labels=["plugin", "hook"])
        actions = CounterMetricFamily("elemta_hook_actions", "Non-CONTINUE results per plugin",
                                      labels=["plugin", "hook", "action"])
        failures = CounterMetricFamily("elemta_hook_failures",
                                       "Plugin exceptions, timeouts and unavailability",
                                       labels=["plugin", "hook", "reason"])
        for lk in self.pipeline().links():
            st = lk.stats
            cum, buckets = 0, []
            for bound, n in zip(BUCKETS, st.buckets):
                cum += n
                buckets.append((repr(bound), cum))
            buckets.append(("+Inf", st.count))
            hist.add_metric([lk.plugin, lk.hook.value], buckets, st.total)
            for action in Action:
                if action is not Action.CONTINUE and st.actions[action]:
                    actions.add_metric([lk.plugin, lk.hook.value, action.name.lower()],
                                       st.actions[action])
            failures.add_metric([lk.plugin, lk.hook.value, "error"], st.failures)
            failures.add_metric([lk.plugin, lk.hook.value, "timeout"], st.timeouts)
        yield hist
        yield actions
        yield failures


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Counter("elemta_connections", "SMTP connections by outcome",
                                   ["outcome"], registry=r)
        self.active_connections = Gauge("elemta_active_connections", "Open SMTP sessions",
                                        registry=r)
        self.messages = Counter("elemta_messages", "Messages by outcome", ["outcome"], registry=r)
        self.message_bytes = Counter("elemta_message_bytes", "Bytes of accepted messages",
                                     registry=r)
        self.security_events = Counter("elemta_security_events",
                                       "Security events (rate_limited, auth_failed …)",
                                       ["kind"], registry=r)
        self.queue_depth = Gauge("elemta_queue_depth", "Messages in the spool by state",
                                 ["state"], registry=r)
        self.plugin_restarts = Counter("elemta_plugin_restarts", "External plugin restarts",
                                       ["plugin"], registry=r)
        self._collector: PipelineCollector | None = None

    def watch_pipeline(self, pipeline: Callable[[], Pipeline]) -> None:
        if self._collector is None:
            self._collector = PipelineCollector(pipeline)
            self.registry.register(self._collector)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, port)
