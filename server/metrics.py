"""What the server measures about itself: per backend latency, time to first token, tokens/s,
answers and failures by kind; the request cache's hit rate; memory.

Two views of the same counts:

- :meth:`BackendMetrics.summary` and :func:`server_figures`: numbers for ``pingti/status`` (p50
  and p99 over the last ``WINDOW`` answers, so a status line reflects now, not the whole day);
- Prometheus (``pingti-ls --metrics-port``, :func:`start_exporter`): histograms and counters in
  the maintained client library's registry, for a team's dashboards.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

WINDOW = 512  # answers whose latency the status percentiles cover

_REGISTRY: Any = None
_FAMILIES: dict[str, Any] = {}


def registry() -> Any:
    """The process's Prometheus registry with pingti's metric families (made once)."""
    global _REGISTRY
    if _REGISTRY is None:
        import prometheus_client as prom

        reg = prom.CollectorRegistry()
        prom.ProcessCollector(registry=reg)  # process_resident_memory_bytes, cpu seconds, fds
        buckets = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)
        _FAMILIES.update(
            latency=prom.Histogram("pingti_request_seconds", "Time from sending a request to a "
                              "backend to its whole answer", ["backend"], buckets=buckets,
                              registry=reg),
            ttft=prom.Histogram("pingti_time_to_first_token_seconds", "Time to the first token",
                           ["backend"], buckets=buckets, registry=reg),
            requests=prom.Counter("pingti_backend_requests", "Requests per backend by outcome "
                             "(ok, cancelled, or a failure kind)", ["backend", "outcome"],
                             registry=reg),
            tokens=prom.Counter("pingti_generated_tokens", "Tokens generated", ["backend"],
                           registry=reg),
            health=prom.Counter("pingti_health_check_failures", "Failed health checks of a "
                                "backend whose circuit is open", ["backend"], registry=reg),
            state=prom.Gauge("pingti_backend_up", "1 while the backend's circuit is closed or "
                        "half-open, 0 while it is open", ["backend"], registry=reg),
            cache=prom.Counter("pingti_cache_lookups", "Completion requests answered without the "
                          "model (hit) or not (miss)", ["result"], registry=reg),
            queue=prom.Gauge("pingti_queue_depth", "Requests waiting or decoding", registry=reg),
        )
        _REGISTRY = reg
    return _REGISTRY


def family(name: str) -> Any:
    registry()
    return _FAMILIES[name]


def start_exporter(port: int, host: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``host:port`` (a thread of prometheus_client's own server)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=registry())
    logger.info("Prometheus metrics on http://%s:%d/metrics", host, port)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class BackendMetrics:
    """One backend's counts (status view and Prometheus)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.latencies: deque[float] = deque(maxlen=WINDOW)
        self.ttfts: deque[float] = deque(maxlen=WINDOW)
        self.ok = 0
        self.cancelled_n = 0
        self.errors: Counter[str] = Counter()
        self.tokens = 0
        self.decode_s = 0.0
        self.health_failures = 0
        self.last_error: str | None = None

    def answered(self, seconds: float, results: Sequence[Any]) -> None:
        self.ok += 1
        self.latencies.append(seconds)
        first = min((r.prefill_s for r in results), default=seconds)
        self.ttfts.append(first)
        n = sum(len(r.token_ids) for r in results)
        self.tokens += n
        self.decode_s += max((r.decode_s for r in results), default=0.0)
        family("latency").labels(self.label).observe(seconds)
        family("ttft").labels(self.label).observe(first)
        family("requests").labels(self.label, "ok").inc()
        family("tokens").labels(self.label).inc(n)

    def cancelled(self) -> None:
        self.cancelled_n += 1
        family("requests").labels(self.label, "cancelled").inc()

    def failed(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        self.last_error = message
        family("requests").labels(self.label, kind).inc()

    def health_failed(self, message: str) -> None:
        """A health check failed (not a request: it is not in ``requests`` nor ``errors``)."""
        self.health_failures += 1
        self.last_error = message
        family("health").labels(self.label).inc()

    def state_changed(self, state: str) -> None:
        family("state").labels(self.label).set(0 if state == "open" else 1)

    def summary(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        lat = list(self.latencies)
        return {"requests": self.ok + self.cancelled_n + sum(self.errors.values()),
                "answered": self.ok, "cancelled": self.cancelled_n, "errors": dict(self.errors),
                "latencyP50S": r(percentile(lat, 0.5)), "latencyP99S": r(percentile(lat, 0.99)),
                "ttftP50S": r(percentile(list(self.ttfts), 0.5)),
                "tokensPerS": r(self.tokens / self.decode_s) if self.decode_s > 0 else None,
                "healthCheckFailures": self.health_failures, "lastError": self.last_error}


class CacheMetrics:
    """The request cache's hits (typed through, identical request) against model runs."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def hit(self) -> None:
        self.hits += 1
        family("cache").labels("hit").inc()

    def miss(self) -> None:
        self.misses += 1
        family("cache").labels("miss").inc()

    @property
    def rate(self) -> float | None:
        total = self.hits + self.misses
        return round(self.hits / total, 4) if total else None


def rss_bytes() -> int | None:
    """The server's resident memory (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
