"""The Prometheus endpoint (``--metrics-port``) serves what the backends counted."""

from __future__ import annotations

import socket

import httpx

from server.backends.base import FinishReason, GenerationResult
from server.metrics import BackendMetrics, CacheMetrics, rss_bytes, start_exporter


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_endpoint_serves_backend_counts() -> None:
    m = BackendMetrics("metrics-test")
    m.answered(0.25, [GenerationResult([1, 2, 3], "abc", FinishReason.EOS, 4, 0.1, 0.15)])
    m.failed("timeout", "no answer within 3000 ms")
    m.state_changed("open")
    cache = CacheMetrics()
    cache.hit()
    cache.miss()
    assert cache.rate == 0.5
    port = _port()
    start_exporter(port)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'pingti_backend_requests_total{backend="metrics-test",outcome="ok"} 1.0' in text
    assert 'pingti_backend_requests_total{backend="metrics-test",outcome="timeout"} 1.0' in text
    assert 'pingti_request_seconds_bucket{backend="metrics-test",le="0.3"} 1.0' in text
    assert 'pingti_generated_tokens_total{backend="metrics-test"} 3.0' in text
    assert 'pingti_backend_up{backend="metrics-test"} 0.0' in text
    assert "process_resident_memory_bytes" in text and "pingti_cache_lookups_total" in text
    summary = m.summary()
    assert summary["requests"] == 2 and summary["errors"] == {"timeout": 1}
    assert summary["tokensPerS"] == round(3 / 0.15, 4) and summary["ttftP50S"] == 0.1
    assert (rss_bytes() or 0) > 10_000_000
