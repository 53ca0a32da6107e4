"""Metrics: names, labels, buckets, exact deltas (fake clock), sharing and cardinality caps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Gauge, Histogram

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.sinks.prometheus import _observe_many, labelnames

BASE = {"service": "svc", "model": "m", "provider": "p"}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def spec(**stream: Any) -> ss.Spec:
    return ss.Spec.model_validate({"version": 1, "service": "svc", "stream": stream})


def monitor(
    clock: FakeClock | None = None, s: ss.Spec | None = None
) -> tuple[ss.StreamMonitor, CollectorRegistry, InMemoryMetricReader]:
    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    m = ss.StreamMonitor(
        s or spec(),
        registry=registry,
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[reader]),
        clock=clock or FakeClock(),
        watchdog=False,
    )
    return m, registry, reader


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    v = registry.get_sample_value(name, {**BASE, **labels})
    return 0.0 if v is None else v


def otel_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    return {
        m.name: list(m.data.data_points)
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for m in sm.metrics
    }


def timed(clock: FakeClock, steps: list[tuple[float, Any]]) -> Iterator[Any]:
    """An upstream that advances the fake clock by ``dt`` before yielding each item."""
    for dt, item in steps:
        clock.t += dt
        yield item


def delta(text: str) -> dict[str, str]:
    return {"type": "response.output_text.delta", "delta": text}


def test_registered_metric_names_equal_conventions() -> None:
    """The instrumentation registers exactly conventions.ALL_METRICS, with the right labels,
    in Prometheus and as OpenTelemetry instruments."""
    m, registry, _ = monitor()
    exposed = set()
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        exposed.add(name)
    assert exposed == set(c.EMITTED_METRICS)
    otel = m._sinks[1]
    assert set(otel.i) == set(c.EMITTED_METRICS)
    assert labelnames(c.RETRY_TOTAL) == (*c.BASE_LABELS, c.LABEL_REASON)
    assert labelnames(c.BYTES_TOTAL) == c.BASE_LABELS


def test_exact_deltas_with_a_fake_clock() -> None:
    """TTFT, gaps, bytes, phases and requests move by exactly the expected amounts."""
    clock = FakeClock()
    m, registry, reader = monitor(clock)
    steps = [
        (0.5, {"type": "response.created", "response": {"id": "r1"}}),
        (1.0, delta("héllo")),  # TTFT 1500 ms (created does not count)
        (0.25, delta(" w")),
        (0.25, {"type": "response.completed", "response": {"id": "r1"}}),
    ]
    items = list(m.wrap(timed(clock, steps), model="m", provider="p"))
    assert len(items) == 4
    assert value(registry, "stream_first_token_latency_ms_sum") == 1500.0
    assert value(registry, "stream_first_token_latency_ms_bucket", le="1500.0") == 1
    assert value(registry, "stream_first_token_latency_ms_bucket", le="1000.0") == 0
    assert value(registry, "stream_chunk_gap_ms_sum") == 250.0
    assert value(registry, "stream_chunk_gap_ms_count") == 1
    assert value(registry, "stream_bytes_total") == len("héllo w".encode())
    assert value(registry, "stream_requests_total", outcome="ok") == 1
    assert value(registry, "stream_phase_duration_ms_sum", phase="first_token_wait") == 1500.0
    assert value(registry, "stream_phase_duration_ms_sum", phase="upstream_wait") == 500.0
    assert value(registry, "stream_phase_duration_ms_sum", phase="consumer") == 0.0
    points = otel_points(reader)
    assert [p.sum for p in points[c.FIRST_TOKEN_LATENCY]] == [1500.0]
    assert [p.value for p in points[c.BYTES_TOTAL]] == [len("héllo w".encode())]


def test_histogram_buckets_include_every_spec_threshold() -> None:
    """A custom TTFT threshold (1234 ms) becomes a bucket bound next to the defaults."""
    s = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "slos": [
                {
                    "name": "ttft",
                    "objective": "95%",
                    "indicator": {
                        "latency": {"metric": c.FIRST_TOKEN_LATENCY, "threshold": "1234ms"}
                    },
                },
                {
                    "name": "gaps",
                    "objective": "99%",
                    "indicator": {"latency": {"metric": c.CHUNK_GAP, "threshold": "333ms"}},
                },
            ],
        }
    )
    m, registry, _ = monitor(s=s)
    assert 1234.0 in m.buckets[c.FIRST_TOKEN_LATENCY]
    assert 333.0 in m.buckets[c.CHUNK_GAP]
    assert set(c.LATENCY_BUCKETS_MS) <= set(m.buckets[c.FIRST_TOKEN_LATENCY])
    list(m.wrap(iter(["a"]), model="m", provider="p"))
    le = c.le_label(1234)
    assert (
        registry.get_sample_value("stream_first_token_latency_ms_bucket", {**BASE, "le": le}) == 1
    )


def test_model_label_is_capped() -> None:
    """Past spec.stream.max_models distinct models, new names are labelled 'other'."""
    m, registry, _ = monitor(s=spec(max_models=2))
    for model in ("a", "b", "c", "d", "a"):
        list(m.wrap(iter(["x"]), model=model, provider="p"))
    ok = {
        model: registry.get_sample_value(
            "stream_requests_total", {**BASE, "model": model, "outcome": "ok"}
        )
        for model in ("a", "b", "c", "d", c.OTHER_MODEL)
    }
    assert ok == {"a": 2, "b": 1, "c": None, "d": None, c.OTHER_MODEL: 2}


def test_provider_label_is_capped() -> None:
    """Past max_providers distinct providers, new names are labelled 'other' (metrics and the
    ingress rejection counter alike), so arbitrary provider strings stay bounded."""
    registry = CollectorRegistry()
    m = ss.StreamMonitor(
        spec(),
        registry=registry,
        tracer_provider=TracerProvider(),
        clock=FakeClock(),
        watchdog=False,
        max_providers=2,
    )
    for provider in ("p", "q", "user-supplied-1", "user-supplied-2", "p"):
        list(m.wrap(iter(["x"]), model="m", provider=provider))
    m.record_rejected(c.REJECT_REASONS[0], model="m", provider="user-supplied-3")
    ok = {
        provider: registry.get_sample_value(
            "stream_requests_total", {**BASE, "provider": provider, "outcome": "ok"}
        )
        for provider in ("p", "q", "user-supplied-1", "user-supplied-2", c.OTHER_MODEL)
    }
    assert ok == {"p": 2, "q": 1, "user-supplied-1": None, "user-supplied-2": None, "other": 2}
    rejected = {"provider": c.OTHER_MODEL, "reason": c.REJECT_REASONS[0]}
    assert registry.get_sample_value("stream_rejected_total", {**BASE, **rejected}) == 1
    providers = {
        s.labels["provider"]
        for fam in registry.collect()
        for s in fam.samples
        if "provider" in s.labels
    }
    assert providers == {"p", "q", c.OTHER_MODEL}
    assert ss.StreamMonitor(spec(), registry=CollectorRegistry()).provider_label("") == "unknown"


def test_two_monitors_share_one_registry() -> None:
    """A second monitor on the same registry reuses the collectors and counts into them."""
    registry = CollectorRegistry()
    tp = TracerProvider()
    m1 = ss.StreamMonitor(spec(), registry=registry, tracer_provider=tp, watchdog=False)
    m2 = ss.StreamMonitor(spec(), registry=registry, tracer_provider=tp, watchdog=False)
    list(m1.wrap(iter(["a"]), model="m", provider="p"))
    list(m2.wrap(iter(["bc"]), model="m", provider="p"))
    assert value(registry, "stream_requests_total", outcome="ok") == 2
    assert value(registry, "stream_bytes_total") == 3


def test_foreign_metric_with_our_name_is_a_clear_error() -> None:
    """A registry already holding an incompatible 'stream_in_flight' gets a clear error."""
    registry = CollectorRegistry()
    Gauge(c.IN_FLIGHT, "someone else's", ["pod"], registry=registry)
    with pytest.raises(ValueError, match="stream_in_flight"):
        ss.StreamMonitor(spec(), registry=registry, tracer_provider=TracerProvider())


def test_error_rate_gauge_slides_over_five_minutes() -> None:
    """stream_error_rate = errors / streams over the last 5 minutes, on the injected clock."""
    clock = FakeClock()
    m, registry, reader = monitor(clock)
    list(m.wrap(iter(["ok"]), model="m", provider="p"))
    failed = [{"type": "response.failed", "response": {"id": "r"}}]
    list(m.wrap(iter(failed), model="m", provider="p"))
    assert value(registry, "stream_error_rate") == 0.5
    assert [p.value for p in otel_points(reader)[c.ERROR_RATE]] == [0.5]
    clock.t += 301
    assert value(registry, "stream_error_rate") == 0.0


def test_hooks_for_the_active_mode_reach_every_sink() -> None:
    """Retries, resumes, recovery, budget, client-slow, dial timeouts and rejections count."""
    clock = FakeClock()
    m, registry, reader = monitor(clock)
    core = m.open_stream("m", "p")
    core.begin_attempt(clock())
    core.attempt_opened(clock())
    core.on_wait(clock())
    core.on_item(delta("a"), clock())
    clock.t += 1
    core.on_error(ConnectionResetError(), clock())
    core.record_retry(c.RETRY_REASON_NETWORK, clock())
    clock.t += 2
    core.begin_attempt(clock())
    core.record_resume(True, clock())
    core.on_wait(clock())
    core.on_item(delta("b"), clock())
    core.record_timeout(c.TIMEOUT_DIAL, clock())
    core.record_budget_exhausted(clock())
    core.record_resume(False, clock())
    core.record_client_slow(clock(), terminated=True)
    assert core.close(clock(), error=ss.ClientTooSlow()) == c.OUTCOME_ERROR
    m.record_rejected(c.REJECT_RATE, model="m", provider="p")

    assert value(registry, "stream_retry_total", reason="network") == 1
    assert value(registry, "stream_resume_success_total") == 1
    assert value(registry, "stream_resume_failure_total") == 1
    assert value(registry, "stream_recovery_latency_ms_sum") == 2000.0
    assert value(registry, "stream_retry_budget_exhausted_total") == 1
    assert value(registry, "stream_abort_client_slow_total") == 1
    assert value(registry, "stream_timeouts_total", phase="dial") == 1
    assert value(registry, "stream_errors_total", error_class="client_too_slow") == 1
    assert value(registry, "stream_rejected_total", reason="rate") == 1
    assert value(registry, "stream_requests_total", outcome="rejected") == 1
    assert value(registry, "stream_errors_total", error_class="rejected") == 1
    assert value(registry, "stream_phase_duration_ms_count", phase="open") == 1
    points = otel_points(reader)
    assert [p.value for p in points[c.RETRY_TOTAL]] == [1]
    assert [p.sum for p in points[c.RECOVERY_LATENCY]] == [2000.0]
    assert [p.value for p in points[c.REJECTED_TOTAL]] == [1]


def test_batched_histogram_observation_equals_one_by_one() -> None:
    """The batched bucket update leaves exactly the state of individual observe() calls."""
    bounds = (1.0, 5.0, 10.0, 100.0)
    values = [0.5, 1.0, 1.0001, 5.0, 7.0, 10.0, 99.0, 100.0, 101.0, 1e9, 0.0]
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("h", "h", ["x"], buckets=bounds, registry=r1).labels("1")
    h2 = Histogram("h", "h", ["x"], buckets=bounds, registry=r2).labels("1")
    for v in values:
        h1.observe(v)
    _observe_many(h2, values)

    def samples(r: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
        (family,) = r.collect()
        return [(x.name, x.labels, x.value) for x in family.samples if x.name != "h_created"]

    assert samples(r1) == samples(r2)


def test_in_flight_counts_open_streams() -> None:
    """stream_in_flight is 1 while a wrapped stream is open and 0 after it ends."""
    m, registry, _ = monitor()
    wrapped = m.wrap(iter(["a", "b"]), model="m", provider="p")
    next(wrapped)
    assert value(registry, "stream_in_flight") == 1
    list(wrapped)
    assert value(registry, "stream_in_flight") == 0


def test_client_timeout_helpers_map_dial_and_tls_to_connect() -> None:
    """httpx and openai client timeouts: connect = dial + TLS; read is a backstop past both the
    first-token and the idle budget (1.5 x the longer, + 250 ms), so the wrapper's typed
    timeouts fire first even when first_token > stream_idle."""
    s = spec(timeouts={"dial": "700ms", "tls_handshake": "300ms", "stream_idle": "5s"})
    t = ss.httpx_timeout(s)
    assert (t.connect, t.read, t.write, t.pool) == pytest.approx((1.0, 7.75, 3.0, 0.7))
    o = ss.openai_client_options(s)["timeout"]
    assert (o.connect, o.read) == pytest.approx((1.0, 7.75))
    reasoning = spec(timeouts={"first_token": "30s", "stream_idle": "8s"})
    assert ss.httpx_timeout(reasoning).read == pytest.approx(45.25)


GLOBAL_METER_SCRIPT = """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
import steadystream as ss

def run():
    m = ss.StreamMonitor(ss.default_spec("svc"), registry=CollectorRegistry(),
                         tracer_provider=TracerProvider(), watchdog=False)
    list(m.wrap(iter(["abc"]), model="m", provider="p"))
    return [type(s).__name__ for s in m._sinks]

print(run())
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
print(run())
names = {m.name for rm in reader.get_metrics_data().resource_metrics
         for sm in rm.scope_metrics for m in sm.metrics}
print("stream_bytes_total" in names)
"""


def test_meter_provider_none_means_the_installed_global_one() -> None:
    """meter_provider=None: no OpenTelemetry metrics until a global provider is installed,
    then that provider gets them (a fresh interpreter, so the global is really unset)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", GLOBAL_METER_SCRIPT],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    assert out == [
        "['PrometheusSink', 'TracingSink']",
        "['PrometheusSink', 'OTelMetricsSink', 'TracingSink']",
        "True",
    ]


def test_capacity_gauge_is_the_process_ingress_cap() -> None:
    """stream_ingress_max_concurrent{service} carries the ingress cap, in Prometheus and
    OpenTelemetry alike (same name, unit); a second monitor with its own guard adds its cap,
    one sharing a guard does not, and a garbage-collected monitor stops counting."""
    import gc

    m, registry, reader = monitor(s=spec(ingress={"max_concurrent": 40, "rate": "10/s"}))
    cap = {"service": "svc"}
    assert labelnames(c.INGRESS_MAX_CONCURRENT) == (c.LABEL_SERVICE,)
    assert registry.get_sample_value(c.INGRESS_MAX_CONCURRENT, cap) == 40
    (point,) = otel_points(reader)[c.INGRESS_MAX_CONCURRENT]
    assert point.value == 40 and dict(point.attributes) == cap
    (metric,) = [
        x
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for x in sm.metrics
        if x.name == c.INGRESS_MAX_CONCURRENT
    ]
    assert metric.unit == c.UNITS[c.INGRESS_MAX_CONCURRENT]

    other = ss.StreamMonitor(
        spec(ingress={"max_concurrent": 24, "rate": "10/s"}),
        registry=registry,
        tracer_provider=TracerProvider(),
        watchdog=False,
    )
    shared = ss.StreamMonitor(
        spec(),
        registry=registry,
        tracer_provider=TracerProvider(),
        ingress=m.ingress,
        watchdog=False,
    )
    assert registry.get_sample_value(c.INGRESS_MAX_CONCURRENT, cap) == 64
    del other, shared
    gc.collect()
    assert registry.get_sample_value(c.INGRESS_MAX_CONCURRENT, cap) == 40
