"""monitor.wrap on sync streams: the real openai client and real httpx against the simulator."""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from openai import OpenAI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

import steadystream as ss
import telemetry_support
from steadystream import conventions as c
from steadystream.simulate import DEFAULT_TOKENS, expected_text
from telemetry_support import is_attempt_span

FAULT = c.HEADER_FAULT
LABELS = {"service": "svc", "model": "gpt-4.1", "provider": "openai"}


SHORT = {"first_token": "400ms", "stream_idle": "400ms"}


def make_spec(**timeouts: str) -> ss.Spec:
    """A spec with generous timeouts (a loaded CI machine never crosses them) unless a test
    sets short ones for the fault it injects."""
    t = {"first_token": "20s", "stream_idle": "20s", "total": "60s", **timeouts}
    return ss.Spec.model_validate(
        {"version": 1, "service": "svc", "stream": {"timeouts": t, "checkpoint": {"every": 4}}}
    )


class Telemetry(telemetry_support.Telemetry):
    labels = LABELS
    default_spec = staticmethod(make_spec)


def tee(source: Any, seen: list[Any]) -> Iterator[Any]:
    """Yield what ``source`` yields, remembering each item."""
    for item in source:
        seen.append(item)
        yield item


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def create(client: OpenAI, fault: str = "none", **kw: Any) -> Any:
    return client.responses.create(
        model="gpt-4.1", input="hi", stream=True, extra_headers={FAULT: fault}, **kw
    )


@pytest.fixture
def client(upstream: Any) -> Iterator[OpenAI]:
    with OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as cl:
        yield cl


def test_openai_events_pass_through_unchanged_with_exact_metrics(client: OpenAI) -> None:
    """Every SDK event comes out as the very same object, in order; each metric moves by
    exactly the expected amount in Prometheus and OpenTelemetry."""
    tel = Telemetry()
    seen: list[Any] = []
    out = list(tel.monitor.wrap(tee(create(client), seen), model="gpt-4.1", provider="openai"))
    assert len(out) == len(seen) == DEFAULT_TOKENS + 8
    assert all(a is b for a, b in zip(out, seen, strict=True))
    expected = expected_text("hi", seed=0).encode()
    assert text_of(out).encode() == expected

    assert tel.value("stream_requests_total", outcome="ok") == 1
    assert tel.value("stream_bytes_total") == len(expected)
    assert tel.value("stream_first_token_latency_ms_count") == 1
    assert tel.value("stream_chunk_gap_ms_count") == DEFAULT_TOKENS - 1
    assert tel.value("stream_in_flight") == 0
    assert tel.value("stream_error_rate") == 0
    for phase in (c.PHASE_FIRST_TOKEN_WAIT, c.PHASE_UPSTREAM_WAIT, c.PHASE_CONSUMER):
        assert tel.value("stream_phase_duration_ms_count", phase=phase) == 1
    assert tel.value("stream_phase_duration_ms_count", phase=c.PHASE_OPEN) == 0
    assert sum(tel.value("stream_errors_total", error_class=e) for e in c.ERROR_CLASSES) == 0

    points = {
        m.name: m.data.data_points
        for rm in tel.reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert [p.value for p in points[c.BYTES_TOTAL]] == [len(expected)]
    assert [p.count for p in points[c.CHUNK_GAP]] == [DEFAULT_TOKENS - 1]
    assert [(dict(p.attributes)[c.LABEL_OUTCOME], p.value) for p in points[c.REQUESTS_TOTAL]] == [
        ("ok", 1)
    ]
    assert [p.value for p in points[c.IN_FLIGHT]] == [0]

    (span,) = tel.stream_spans()
    attrs = dict(span.attributes)
    assert attrs[c.ATTR_PROVIDER] == "openai"
    assert attrs[c.ATTR_REQUEST_MODEL] == "gpt-4.1"
    assert attrs[c.ATTR_REQUEST_STREAM] is True
    assert attrs[c.ATTR_RESPONSE_ID].startswith("resp_")
    assert attrs[c.ATTR_TIME_TO_FIRST_CHUNK] > 0
    assert attrs[c.ATTR_OUTCOME] == c.OUTCOME_OK
    assert attrs[c.ATTR_BYTES] == len(expected)


@pytest.mark.parametrize("http", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_httpx_sse_response_yields_parsed_events(upstream: Any, http: Any) -> None:
    """An httpx / httpx2 response is read as SSE and yielded as events; split frames still
    add up."""
    tel = Telemetry()
    body = {"model": "gpt-4.1", "input": "hi", "stream": True}
    with (
        http.Client() as hc,
        hc.stream(
            "POST", f"{upstream.base_url}/responses", json=body, headers={FAULT: "split=utf8"}
        ) as resp,
    ):
        events = list(tel.monitor.wrap(resp, model="gpt-4.1", provider="openai"))
    assert all(isinstance(e, ss.ServerSentEvent) for e in events)
    assert len(events) == DEFAULT_TOKENS + 8
    deltas = [e.json() for e in events if e.event == "response.output_text.delta"]
    assert "".join(d["delta"] for d in deltas) == expected_text("hi", seed=0)
    assert tel.value("stream_bytes_total") == len(expected_text("hi", seed=0).encode())
    assert tel.value("stream_requests_total", outcome="ok") == 1
    assert sum(tel.value("stream_reassembly_errors_total", kind=k) for k in c.REASSEMBLY_KINDS) == 0


def test_httpx_byte_chunks_pass_through_identical(upstream: Any) -> None:
    """Raw body chunks cut inside UTF-8 characters are yielded unchanged and measured exactly."""
    tel = Telemetry()
    body = {"model": "gpt-4.1", "input": "hi", "stream": True}
    seen: list[bytes] = []
    with (
        httpx.Client() as hc,
        hc.stream(
            "POST", f"{upstream.base_url}/responses", json=body, headers={FAULT: "split=random"}
        ) as resp,
    ):
        out = list(tel.monitor.wrap(tee(resp.iter_raw(), seen), model="gpt-4.1", provider="openai"))
    assert all(a is b for a, b in zip(out, seen, strict=True)) and len(out) == len(seen)
    assert tel.value("stream_bytes_total") == len(expected_text("hi", seed=0).encode())
    assert tel.value("stream_requests_total", outcome="ok") == 1


def test_idle_timeout_watchdog_interrupts_a_stalled_read(client: OpenAI) -> None:
    """A mid-stream stall longer than stream_idle: the watchdog cuts the blocked read and the
    consumer gets IdleTimeout carrying the checkpoint of exactly what it received."""
    tel = Telemetry(make_spec(**SHORT))
    stream = create(client, "stall=30s@10")
    received: list[Any] = []
    with pytest.raises(ss.IdleTimeout) as info:
        for event in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"):
            received.append(event)
    text = text_of(received).encode()
    cp = info.value.checkpoint
    assert cp is not None and text
    assert (cp.offset, cp.sha256) == (len(text), hashlib.sha256(text).hexdigest())
    assert cp.sequence_number == received[-1].sequence_number
    assert stream.response.is_closed
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_IDLE) == 1
    assert tel.value("stream_timeout_idle_total") == 1
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_IDLE_TIMEOUT) == 1
    assert tel.value("stream_requests_total", outcome="error") == 1
    (span,) = tel.stream_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert c.EVENT_TIMEOUT in [e.name for e in span.events]


def test_first_token_timeout_ignores_lifecycle_events(client: OpenAI) -> None:
    """Lifecycle events arrive at once but the first delta is late: FirstTokenTimeout."""
    tel = Telemetry(make_spec(**SHORT))
    stream = create(client, "delay=30s")
    received: list[Any] = []
    with pytest.raises(ss.FirstTokenTimeout) as info:
        for event in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"):
            received.append(event)
    assert [e.type for e in received][:1] == ["response.created"]
    assert info.value.checkpoint is None
    # Observed once, at the time waited (at least the 400 ms budget): the TTFT SLO counts the
    # stream as slow instead of losing it.
    assert tel.value("stream_first_token_latency_ms_count") == 1
    assert tel.value("stream_first_token_latency_ms_sum") >= 400
    assert tel.value("stream_first_token_latency_ms_bucket", le="250.0") == 0
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_FIRST_TOKEN) == 1


@pytest.mark.parametrize("how", ["break_with", "close", "gc"])
def test_early_exit_is_abandoned_span_ended_once_upstream_closed(client: OpenAI, how: str) -> None:
    """break (in a with block), close() and garbage collection end the stream once, as
    abandoned, and close the upstream."""
    tel = Telemetry()
    stream = create(client)
    wrapped = tel.monitor.wrap(stream, model="gpt-4.1", provider="openai")
    if how == "break_with":
        with wrapped:
            for event in wrapped:
                if event.type == "response.output_text.delta":
                    break
    elif how == "close":
        next(wrapped)
        wrapped.close()
        wrapped.close()
    else:
        next(wrapped)
        del wrapped
        gc.collect()
    assert stream.response.is_closed
    assert tel.value("stream_requests_total", outcome=c.OUTCOME_ABANDONED) == 1
    assert tel.value("stream_in_flight") == 0
    (span,) = tel.stream_spans()
    assert span.attributes[c.ATTR_OUTCOME] == c.OUTCOME_ABANDONED
    attempts = [s for s in tel.spans.get_finished_spans() if is_attempt_span(s)]
    assert len(attempts) == 1 and attempts[0].parent.span_id == span.context.span_id


def test_dropped_connection_is_an_error_and_reraised(client: OpenAI) -> None:
    """A connection dropped mid-body raises the client's own error and records one error."""
    tel = Telemetry()
    with pytest.raises(Exception) as info:
        list(tel.monitor.wrap(create(client, "drop_after=12"), model="gpt-4.1", provider="openai"))
    assert not isinstance(info.value, ss.StreamError)
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_NETWORK) == 1
    assert tel.value("stream_requests_total", outcome=c.OUTCOME_ERROR) == 1
    assert len(tel.stream_spans()) == 1


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        ("failed", c.ERROR_CLASS_RESPONSE_FAILED),
        ("incomplete", c.ERROR_CLASS_RESPONSE_INCOMPLETE),
    ],
)
def test_in_band_failures_count_as_errors(client: OpenAI, fault: str, error_class: str) -> None:
    """response.failed / response.incomplete are yielded to the consumer and counted as errors."""
    tel = Telemetry()
    out = list(tel.monitor.wrap(create(client, fault), model="gpt-4.1", provider="openai"))
    assert out[-1].type == "response." + fault
    assert tel.value("stream_errors_total", error_class=error_class) == 1
    assert tel.value("stream_error_rate") == 1.0


def test_raising_telemetry_sink_does_not_break_the_stream(
    client: OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """A tracer that raises on every call: the stream is delivered and Prometheus still counts."""

    class BrokenTracerProvider(TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            raise_always = super().get_tracer(*args, **kwargs)

            class Broken:
                def start_span(self, *a: Any, **k: Any) -> Any:
                    raise RuntimeError("tracing backend down")

            assert raise_always is not None
            return Broken()

    caplog.set_level(logging.DEBUG, logger="steadystream.telemetry")
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(
        make_spec(), registry=registry, tracer_provider=BrokenTracerProvider()
    )
    out = list(monitor.wrap(create(client), model="gpt-4.1", provider="openai"))
    assert text_of(out) == expected_text("hi", seed=0)
    assert registry.get_sample_value("stream_requests_total", {**LABELS, "outcome": "ok"}) == 1
    logged = [r for r in caplog.records if r.name == "steadystream.telemetry"]
    assert logged and all("telemetry error" in r.getMessage() for r in logged)


def test_keepalives_do_not_count_as_first_token(upstream: Any) -> None:
    """SSE keep-alive comments every 100 ms keep the connection alive but are not tokens: the
    first-token budget runs out while they keep coming."""
    tel = Telemetry(make_spec(first_token="300ms"))
    body = {"model": "gpt-4.1", "input": "hi", "stream": True}
    with (
        httpx.Client() as hc,
        hc.stream(
            "POST",
            f"{upstream.base_url}/responses",
            json=body,
            headers={FAULT: "keepalive=600@100ms"},
        ) as resp,
        pytest.raises(ss.FirstTokenTimeout),
    ):
        list(tel.monitor.wrap(resp, model="gpt-4.1", provider="openai"))
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_FIRST_TOKEN) == 1
    # Keep-alives are no token: the stream is observed at the time it waited, once.
    assert tel.value("stream_first_token_latency_ms_count") == 1
    assert tel.value("stream_first_token_latency_ms_sum") >= 300


def test_total_timeout_on_a_slow_drip(client: OpenAI) -> None:
    """Content keeps coming, slowly: no idle timeout, but the total budget ends the stream."""
    tel = Telemetry(make_spec(total="800ms", first_token="800ms", stream_idle="800ms"))
    with pytest.raises(ss.TotalTimeout) as info:
        list(tel.monitor.wrap(create(client, "drip=100ms"), model="gpt-4.1", provider="openai"))
    assert info.value.retryable is False
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_TOTAL) == 1
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_TOTAL_TIMEOUT) == 1


def test_watchdog_interrupts_a_stalled_httpx_response(upstream: Any) -> None:
    """The watchdog also unblocks a plain httpx response read (socket shutdown)."""
    tel = Telemetry(make_spec(**SHORT))
    body = {"model": "gpt-4.1", "input": "hi", "stream": True}
    events: list[Any] = []
    with (
        httpx.Client() as hc,
        hc.stream(
            "POST", f"{upstream.base_url}/responses", json=body, headers={FAULT: "stall=30s@12"}
        ) as resp,
        pytest.raises(ss.IdleTimeout) as info,
    ):
        for sse in tel.monitor.wrap(resp, model="gpt-4.1", provider="openai"):
            events.append(sse)
    text = "".join(
        e.json()["delta"] for e in events if e.event == "response.output_text.delta"
    ).encode()
    assert info.value.checkpoint is not None
    assert info.value.checkpoint.offset == len(text) > 0
    assert len(tel.stream_spans()) == 1


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class StallAfterContent:
    """One text delta, then a read that blocks until the upstream is closed (bounded: after
    10 s it ends quietly, as an upstream that finally finishes would)."""

    def __init__(self, on_block: Any) -> None:
        self.closed = threading.Event()
        self._on_block = on_block
        self._sent = False

    def __iter__(self) -> StallAfterContent:
        return self

    def __next__(self) -> Any:
        if not self._sent:
            self._sent = True
            return {"type": "response.output_text.delta", "delta": "héllo", "sequence_number": 4}
        self._on_block()
        if self.closed.wait(10.0):
            raise ConnectionError("closed by the watchdog")
        raise StopIteration

    def close(self) -> None:
        self.closed.set()


def test_watchdog_rearms_at_idle_deadline_when_first_token_budget_is_longer() -> None:
    """first_token (30 s) > stream_idle (8 s): after the first content the watchdog looks at the
    idle deadline, so a stall is cut at 8 s of silence, not at the first-token deadline."""
    clock = FakeClock()
    tel = Telemetry(make_spec(first_token="30s", stream_idle="8s"), clock=clock)
    seen_due: list[float | None] = []
    wrapper: Any = None

    def stall() -> None:
        # The reader is about to block: the watchdog must look at the idle deadline.
        seen_due.append(tel.monitor.watchdog.due(wrapper))
        clock.now += 9.0  # 9 s of silence after the content (fake time)
        tel.monitor.watchdog.wake()

    upstream = StallAfterContent(stall)
    wrapper = tel.monitor.wrap(upstream, model="gpt-4.1", provider="openai")
    received = []
    clock.now += 1.0
    with pytest.raises(ss.IdleTimeout) as info:
        for item in wrapper:
            received.append(item)
    assert seen_due == [1001.0 + 8.0]
    assert upstream.closed.is_set()
    assert info.value.checkpoint is not None
    assert info.value.checkpoint.offset == len("héllo".encode())
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_IDLE) == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_FIRST_TOKEN) == 0


@pytest.mark.timeout(15)
def test_openai_stall_with_long_first_token_budget_is_an_idle_timeout(client: OpenAI) -> None:
    """Reasoning-model budgets (first_token 20 s, stream_idle 400 ms): a mid-stream stall of the
    real SDK stream is cut by the watchdog at the idle budget, long before the first-token one."""
    tel = Telemetry(make_spec(first_token="20s", stream_idle="400ms"))
    stream = create(client, "stall=60s@10")
    received: list[Any] = []
    with pytest.raises(ss.IdleTimeout):
        for event in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"):
            received.append(event)
    assert text_of(received)
    assert stream.response.is_closed
    assert tel.value("stream_timeout_idle_total") == 1


def test_client_from_openai_client_options_waits_out_the_first_token_budget(
    upstream: Any,
) -> None:
    """A client built with ss.openai_client_options lets a slow first token (1 s, within the 5 s
    budget) arrive even though stream_idle is 300 ms: its read timeout is a backstop past both
    budgets, not the idle budget that would cut the wait for the first token."""
    spec = make_spec(first_token="5s", stream_idle="300ms")
    tel = Telemetry(spec)
    options = ss.openai_client_options(spec)
    with OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0, **options) as cl:
        stream = create(cl, "delay=1s")
        received = list(tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"))
    assert text_of(received) == expected_text("hi", seed=0)
    assert tel.value("stream_requests_total", outcome="ok") == 1


def test_resilient_stream_timing_out_every_attempt_is_one_slow_ttft(upstream: Any) -> None:
    """responses_stream against the simulator, every request's first delta late: both
    attempts hit the first-token timeout and the stream fails with FirstTokenTimeout. The
    TTFT histogram gets one observation for the logical stream, at the time it waited (from
    its open to the second timeout: at least both budgets), in Prometheus and OpenTelemetry;
    the span carries no time to first chunk."""
    from steadystream.instrumentation.openai import responses_stream

    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "timeouts": {"first_token": "300ms", "stream_idle": "20s", "total": "60s"},
                "retry": {"max_retries": 1, "base_backoff": "10ms", "max_backoff": "20ms"},
            },
        }
    )
    tel = Telemetry(spec)
    with (
        OpenAI(
            base_url=upstream.base_url,
            api_key="test",
            max_retries=0,
            default_headers={FAULT: "delay=30s"},
        ) as cl,
        pytest.raises(ss.FirstTokenTimeout),
    ):
        list(responses_stream(tel.monitor, cl, model="gpt-4.1", input="hi"))
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_FIRST_TOKEN) == 2
    assert tel.value("stream_retry_total", reason=c.RETRY_REASON_FIRST_TOKEN_TIMEOUT) == 1
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_FIRST_TOKEN_TIMEOUT) == 1
    assert tel.value("stream_first_token_latency_ms_count") == 1
    waited = tel.value("stream_first_token_latency_ms_sum")
    assert waited >= 600
    data = tel.reader.get_metrics_data()
    (point,) = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == c.FIRST_TOKEN_LATENCY
        for p in m.data.data_points
    ]
    assert point.count == 1 and point.sum == pytest.approx(waited)
    (span,) = tel.stream_spans()
    assert c.ATTR_TIME_TO_FIRST_CHUNK not in span.attributes
    assert c.EVENT_FIRST_TOKEN not in [e.name for e in span.events]
