"""Hostile input at the runtime's boundaries: label values, SSE bodies, telemetry providers.

Each test reproduces a defect first seen with hostile or careless input (a model name that broke
every later scrape, an SSE event that made the wrapper drop the events around it, an unbounded
SSE line, a meter provider that fails at construction, a watchdog holding finished streams).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import steadystream as ss
import telemetry_support
from steadystream import conventions as c
from steadystream.exporters import start_metrics_server
from steadystream.instrumentation.core.reassembly import ServerSentEvent, SSEParser
from steadystream.instrumentation.sinks.telemetry import MAX_LABEL_CHARS, clean_label
from telemetry_support import is_stream_span

# ---------------------------------------------------------------------------- label values

LONG_A = "a" * 1_000_000  # 1 MB
LONG_B = "a" * 999_999 + "b"  # differs from LONG_A in its last character only
HOSTILE = (
    "gpt-\ud800-lone-surrogate",
    "\udfff",
    LONG_A,
    LONG_B,
    "line one\nline two\r\n",
    'say "hi"',
    "back\\slash\\",
    "nul\x00bell\x07tab\t",
    "rtl\u202eoverride",
)


class Telemetry(telemetry_support.Telemetry):
    pass


def _clean(value: str) -> bool:
    """Encodable as UTF-8, printable (no control characters), at most the cap."""
    value.encode("utf-8")  # raises on a lone surrogate
    return value.isprintable() and len(value) <= MAX_LABEL_CHARS


def test_clean_label_replaces_invalid_text_and_caps_length_stably() -> None:
    """Invalid Unicode and control characters become U+FFFD; long values keep a prefix and a
    stable hash suffix, so distinct long names stay distinct; cleaning is idempotent."""
    assert clean_label("gpt-4.1") == "gpt-4.1"
    assert clean_label("gpt-\ud800x") == "gpt-\ufffdx"
    assert clean_label("a\nb") == "a\ufffdb"
    assert clean_label('q"\\') == 'q"\\'  # printable; the exposition format escapes these
    assert clean_label("modèle-✓") == "modèle-✓"
    for name in HOSTILE:
        out = clean_label(name)
        assert _clean(out), repr(out[:40])
        assert clean_label(out) == out
        assert clean_label(name) == out  # stable across calls
    a, b = clean_label(LONG_A), clean_label(LONG_B)
    assert a != b and len(a) == len(b) == MAX_LABEL_CHARS
    assert a.startswith("a" * 100)
    assert clean_label("x" * MAX_LABEL_CHARS) == "x" * MAX_LABEL_CHARS
    assert len(clean_label("x" * (MAX_LABEL_CHARS + 1))) == MAX_LABEL_CHARS
    assert clean_label(42) == "42"

    class NoStr:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert clean_label(NoStr()) == c.UNKNOWN


def test_metrics_scrape_survives_hostile_model_and_provider_names() -> None:
    """A lone surrogate once made every later scrape fail (HTTP 500), a 1 MB name made every
    scrape 1 MB larger. Now: /metrics answers 200 with a bounded body that prometheus_client's
    own parser reads, and every label value is clean; spans and OTel metrics carry the same
    cleaned values."""
    tel = Telemetry(watchdog=False)
    for name in HOSTILE:
        list(tel.monitor.wrap(iter(["hello"]), model=name, provider=name))
    # The same hostile name again maps to the same series.
    list(tel.monitor.wrap(iter(["again"]), model=HOSTILE[0], provider="openai"))

    with start_metrics_server(0, registry=tel.registry) as server:
        resp = httpx.get(server.url, timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    # 9 label sets of every metric, each label value at most 128 characters (<= 512 bytes).
    assert len(resp.content) < 1_000_000, len(resp.content)
    models: set[str] = set()
    providers: set[str] = set()
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            for key, val in sample.labels.items():
                assert _clean(val), (family.name, key, val[:40])
            if c.LABEL_MODEL in sample.labels:
                models.add(sample.labels[c.LABEL_MODEL])
                providers.add(sample.labels[c.LABEL_PROVIDER])
    expected = {clean_label(n) for n in HOSTILE}
    assert models == expected
    # Providers are capped at 8 distinct values (the ninth hostile name is "other").
    assert providers - {c.OTHER_MODEL, "openai"} <= expected
    assert clean_label(HOSTILE[0]) in providers and clean_label(LONG_A) in providers
    assert clean_label(LONG_A) in models and clean_label(LONG_B) in models
    ok = sum(
        s.value
        for f in text_string_to_metric_families(resp.text)
        for s in f.samples
        if s.name == "stream_requests_total" and s.labels.get(c.LABEL_OUTCOME) == "ok"
    )
    assert ok == len(HOSTILE) + 1

    for attrs in tel.otel_attributes():
        for key in (c.LABEL_MODEL, c.LABEL_PROVIDER):
            if key in attrs:
                assert _clean(attrs[key]), (key, attrs[key][:40])

    spans = [s for s in tel.spans.get_finished_spans() if is_stream_span(s)]
    assert len(spans) == len(HOSTILE) + 1
    for span in spans:
        attrs = dict(span.attributes or {})
        for key in (c.ATTR_REQUEST_MODEL, c.ATTR_PROVIDER):
            assert _clean(attrs[key]), (key, attrs[key][:40])
    assert {dict(s.attributes or {})[c.ATTR_REQUEST_MODEL] for s in spans} == expected


def test_hostile_names_still_count_against_the_model_cap() -> None:
    """The cap on distinct model labels holds for cleaned names (cleaning does not mint new
    series: 40 distinct 1 MB names make at most max_models labels plus ``other``)."""
    tel = Telemetry(watchdog=False)
    cap = tel.monitor.spec.stream.max_models
    labels = {tel.monitor.model_label(f"{i}" + "z" * 1_000_000) for i in range(cap + 8)}
    assert len(labels) == cap + 1 and c.OTHER_MODEL in labels
    assert all(_clean(v) for v in labels)


# ---------------------------------------------------------------------------- SSE bodies


def sse(event: str, data: Any) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"event: {event}\ndata: {payload}\n\n".encode()


CREATED = sse("response.created", {"type": "response.created", "response": {"id": "resp_1"}})
COMPLETED = sse("response.completed", {"type": "response.completed", "response": {"id": "resp_1"}})


def delta(text: str) -> bytes:
    return sse("response.output_text.delta", {"type": "response.output_text.delta", "delta": text})


# JSON nested far past the interpreter's recursion limit: json.loads raises RecursionError.
DEEP = sse("response.output_text.annotation.added", "[" * 100_000 + "]" * 100_000)


class SSEServer:
    """A loopback HTTP server answering every GET with one canned ``text/event-stream`` body,
    written in pieces of ``piece`` bytes; with ``stall``, the response then stays open (no
    more bytes) until the server is closed."""

    def __init__(self, body: bytes, *, piece: int = 65536, stall: bool = False) -> None:
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.close_connection = True  # one request per connection
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                try:
                    for i in range(0, len(body), piece):
                        part = body[i : i + piece]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        self.wfile.flush()
                    if stall:
                        outer.release.wait(timeout=60)
                        return
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client hung up: that is what a cap is for

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1/responses"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> SSEServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def small_cap_spec(max_event_bytes: str = "64KiB") -> ss.Spec:
    # Generous timeouts: a loaded CI machine never crosses them; the cap ends the stream.
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "max_event_bytes": max_event_bytes,
                "timeouts": {"first_token": "30s", "stream_idle": "30s", "total": "60s"},
            },
        }
    )


def prom(tel: Telemetry, name: str, **labels: str) -> float:
    base = {"service": "svc", "model": "m", "provider": "p"}
    v = tel.registry.get_sample_value(name, {**base, **labels})
    return 0.0 if v is None else v


def test_unreadable_event_is_counted_and_every_event_is_delivered() -> None:
    """An event whose JSON is nested too deep to parse once raised RecursionError inside the
    wrapper's measuring; it was swallowed as a telemetry error and every event parsed from
    that network chunk (valid deltas included) was never yielded, while the stream counted as
    ok. Now every event is yielded, the problem is counted as a json reassembly error, and the
    content around it is measured."""
    body = CREATED + delta("Hel") + DEEP + delta("lo") + COMPLETED
    tel = Telemetry(watchdog=False)
    with (
        SSEServer(body) as server,
        httpx.Client() as client,
        client.stream("GET", server.url) as resp,
    ):
        events = list(tel.monitor.wrap(resp, model="m", provider="p"))
    assert [e.event for e in events] == [
        "response.created",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.output_text.delta",
        "response.completed",
    ]
    assert events[2].data == DEEP.decode().split("data: ", 1)[1].rstrip("\n")
    assert prom(tel, "stream_reassembly_errors_total", kind=c.REASSEMBLY_JSON) == 1
    assert prom(tel, "stream_bytes_total") == len("Hello")
    assert prom(tel, "stream_requests_total", outcome=c.OUTCOME_OK) == 1


async def test_unreadable_event_is_delivered_by_the_async_shell() -> None:
    """The same through an async httpx response."""
    body = CREATED + DEEP + delta("Hi") + COMPLETED
    tel = Telemetry()
    with SSEServer(body) as server:
        async with httpx.AsyncClient() as client, client.stream("GET", server.url) as resp:
            events = [e async for e in tel.monitor.wrap(resp, model="m", provider="p")]
    assert len(events) == 4
    assert prom(tel, "stream_reassembly_errors_total", kind=c.REASSEMBLY_JSON) == 1
    assert prom(tel, "stream_bytes_total") == 2
    assert prom(tel, "stream_requests_total", outcome=c.OUTCOME_OK) == 1


HUGE = b"event: response.output_text.delta\ndata: " + b"x" * (1 << 20) + b"\n\n"


def assert_ended_too_large(tel: Telemetry, err: ss.EventTooLarge, delivered: str) -> None:
    assert err.retryable is False
    assert err.checkpoint is not None and err.checkpoint.offset == len(delivered)
    assert "max_event_bytes" in str(err)
    assert prom(tel, "stream_errors_total", error_class=c.ERROR_CLASS_EVENT_TOO_LARGE) == 1
    assert prom(tel, "stream_reassembly_errors_total", kind=c.REASSEMBLY_SSE) == 1
    assert prom(tel, "stream_requests_total", outcome=c.OUTCOME_ERROR) == 1
    assert prom(tel, "stream_in_flight") == 0
    spans = [s for s in tel.spans.get_finished_spans() if is_stream_span(s)]
    assert len(spans) == 1
    attrs = dict(spans[0].attributes or {})
    assert attrs[c.ATTR_ERROR_CLASS] == c.ERROR_CLASS_EVENT_TOO_LARGE


def test_sse_line_past_the_cap_ends_the_stream_with_a_typed_error() -> None:
    """Nothing capped a line or an event, so a 1 MiB ``data:`` line was buffered whole (and
    re-scanned per chunk). Now a line past ``stream.max_event_bytes`` ends the stream with
    EventTooLarge, after the events before it, even when the upstream then keeps the
    connection open without sending anything (the stream does not wait for it)."""
    body = CREATED + delta("Hi") + HUGE + delta("never") + COMPLETED
    tel = Telemetry(spec=small_cap_spec())
    got: list[Any] = []
    with (
        SSEServer(body, piece=4096, stall=True) as server,
        httpx.Client() as client,
        client.stream("GET", server.url) as resp,
        pytest.raises(ss.EventTooLarge) as info,
    ):
        for event in tel.monitor.wrap(resp, model="m", provider="p"):
            got.append(event)
    assert [e.event for e in got] == ["response.created", "response.output_text.delta"]
    assert_ended_too_large(tel, info.value, "Hi")


async def test_sse_event_past_the_cap_ends_an_async_stream() -> None:
    """An event of many small data lines that add up past the cap ends the stream the same
    way, through the async shell."""
    many = b"event: response.output_text.delta\n" + b"data: yyyyyyyy\n" * 10_000 + b"\n"
    body = CREATED + delta("Hey") + many + COMPLETED
    tel = Telemetry(spec=small_cap_spec())
    got: list[Any] = []
    with SSEServer(body, piece=1000, stall=True) as server:
        async with httpx.AsyncClient() as client, client.stream("GET", server.url) as resp:
            with pytest.raises(ss.EventTooLarge) as info:
                async for event in tel.monitor.wrap(resp, model="m", provider="p"):
                    got.append(event)
    assert [e.event for e in got] == ["response.created", "response.output_text.delta"]
    assert_ended_too_large(tel, info.value, "Hey")


def test_byte_chunks_past_the_cap_are_handed_on_then_the_stream_ends() -> None:
    """Bytes passed through unchanged: every chunk up to the one that crossed the cap is
    yielded (the consumer parses them itself), then EventTooLarge."""
    body = CREATED + delta("Yo") + HUGE
    chunks = [body[i : i + 64] for i in range(0, len(body), 64)]
    tel = Telemetry(spec=small_cap_spec(), watchdog=False)
    got: list[bytes] = []
    with pytest.raises(ss.EventTooLarge) as info:
        for chunk in tel.monitor.wrap(iter(chunks), model="m", provider="p"):
            got.append(chunk)
    crossing = (len(CREATED + delta("Yo")) + 64 * 1024) // 64 + 1
    assert got == chunks[: len(got)] and crossing - 2 <= len(got) <= crossing + 2
    assert_ended_too_large(tel, info.value, "Yo")


def test_sse_parser_caps_lines_and_events_in_bytes() -> None:
    """The parser's own bounds: a complete line, a line still arriving and an event's data
    lines together are measured in UTF-8 bytes; after the cap it ignores its input."""
    line = SSEParser(max_event_bytes=1024)
    assert line.feed("data: ok\n\n") == [ServerSentEvent("message", "ok")]
    assert line.feed("data: " + "é" * 600 + "\n\n") == []  # 600 characters, 1200 bytes
    assert line.too_large is not None and "line" in line.too_large
    assert line.feed("data: later\n\n") == [] and not line.final()

    pending = SSEParser(max_event_bytes=1024)
    for _ in range(20):
        pending.feed("z" * 60)  # no line end yet: 1200 bytes held
    assert pending.too_large is not None

    event = SSEParser(max_event_bytes=1024)
    out = event.feed("data: a\n\n" + "data: 0123456789\n" * 100)
    assert out == [ServerSentEvent("message", "a")]
    assert event.too_large is not None and "event" in event.too_large

    fine = SSEParser(max_event_bytes=1024)
    assert fine.feed("data: " + "x" * 1000 + "\n\n")[0].data == "x" * 1000
    assert fine.too_large is None


def test_sse_parser_scans_cr_only_bodies_once() -> None:
    """CR-only line ends (no LF anywhere) parse as before, in one pass."""
    p = SSEParser()
    body = "".join(f"data: {i}\r\r" for i in range(2000))
    events = p.feed(body)
    assert [e.data for e in events] == [str(i) for i in range(2000)]


# ---------------------------------------------------------------------------- providers, watchdog


class _BrokenMeter:
    """A meter whose every instrument creation raises (an exporter misconfigured at start)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("create_"):

            def create(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError(f"{name} refused")

            return create
        raise AttributeError(name)


class BrokenMeterProvider(MeterProvider):
    """The SDK provider, except that its meters cannot create instruments."""

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        return _BrokenMeter()


class BrokenTracerProvider(TracerProvider):
    """The SDK provider, except that it cannot hand out a tracer."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no tracer for you")


def test_monitor_survives_providers_that_fail_at_construction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """StreamMonitor() used to raise when the meter provider's instrument creation raised.
    Now the failing sinks are left out (logged, at most once per sink with a traceback) and
    the monitor works on the others: streams flow and Prometheus counts them."""
    caplog.set_level("DEBUG", logger="steadystream.telemetry")
    registry = CollectorRegistry()
    monitors = [
        ss.StreamMonitor(
            ss.default_spec("svc"),
            registry=registry,
            tracer_provider=BrokenTracerProvider(),
            meter_provider=BrokenMeterProvider(),
            watchdog=False,
        )
        for _ in range(3)
    ]
    for m in monitors:
        assert list(m.wrap(iter(["a", "b"]), model="m", provider="p")) == ["a", "b"]
    labels = {"service": "svc", "model": "m", "provider": "p"}
    assert registry.get_sample_value("stream_requests_total", {**labels, "outcome": "ok"}) == 3
    assert registry.get_sample_value("stream_bytes_total", labels) == 6
    failures = [r for r in caplog.records if "__init__" in r.getMessage()]
    assert {"OTelMetricsSink", "TracingSink"} <= {
        w for r in failures for w in ("OTelMetricsSink", "TracingSink") if w in r.getMessage()
    }
    # One traceback per sink at most, across every monitor (later ones are debug lines).
    for sink in ("OTelMetricsSink", "TracingSink"):
        errors = [r for r in failures if sink in r.getMessage() and r.levelname == "ERROR"]
        assert len(errors) <= 1, errors


def test_watchdog_holds_nothing_for_finished_streams() -> None:
    """Every sync stream arms a deadline look; finished streams used to keep theirs until the
    deadline (thousands after 10k fast streams). Now a stream that ends drops its look: after
    N fast streams, in every way a stream can end, the watchdog holds no entries."""
    tel = Telemetry()  # watchdog on; default timeouts (3 s first token, 45 s total)
    watchdog = tel.monitor.watchdog
    assert watchdog is not None
    live = tel.monitor.wrap(iter(["held", "open"]), model="m", provider="p")
    assert next(live) == "held"
    assert watchdog.pending() == 1  # a stream in progress is watched
    for i in range(200):
        stream = tel.monitor.wrap(iter(["x", "y"]), model="m", provider="p")
        if i % 4 == 0:
            assert list(stream) == ["x", "y"]  # exhausted
        elif i % 4 == 1:
            next(stream)
            stream.close()  # closed early
        elif i % 4 == 2:
            with stream:
                next(stream)  # left through the context manager
        else:
            for _ in stream:
                break  # broken out of, then collected
            del stream
    assert watchdog.pending() == 1 and watchdog.due(live) is not None
    assert list(live) == ["open"]
    assert watchdog.pending() == 0
    assert prom(tel, "stream_requests_total", outcome=c.OUTCOME_OK) == 51
    assert prom(tel, "stream_requests_total", outcome=c.OUTCOME_ABANDONED) == 150


def test_unreadable_sse_event_objects_are_counted_and_handed_on() -> None:
    """Already-parsed SSE events (objects with ``event`` and ``data``) are read the same way:
    one whose JSON cannot be parsed is counted as a json reassembly error, not logged as a
    telemetry failure, and handed on unchanged with the others."""
    deep = ServerSentEvent("response.output_text.annotation.added", "[" * 100_000 + "]" * 100_000)
    items = [
        ServerSentEvent("response.output_text.delta", json.dumps({"delta": "ab"})),
        deep,
        ServerSentEvent("response.output_text.delta", json.dumps({"delta": "c"})),
    ]
    tel = Telemetry(watchdog=False)
    out = list(tel.monitor.wrap(iter(items), model="m", provider="p"))
    assert out == items and out[1] is deep
    assert prom(tel, "stream_reassembly_errors_total", kind=c.REASSEMBLY_JSON) == 1


async def test_unreadable_items_are_counted_by_the_async_shell() -> None:
    """The same through the async shell."""
    deep = ServerSentEvent("message", "{" + '"a":{' * 50_000 + "}" * 50_001)

    async def source() -> Any:
        yield "x"
        yield deep
        yield "y"

    tel = Telemetry()
    out = [i async for i in tel.monitor.wrap(source(), model="m", provider="p")]
    assert out == ["x", deep, "y"]
    assert prom(tel, "stream_reassembly_errors_total", kind=c.REASSEMBLY_JSON) == 1
    assert prom(tel, "stream_bytes_total") == 2


def test_expect_json_on_content_nested_too_deep_still_ends_the_stream() -> None:
    """With expect_json=True the content is checked at the end; content nested past the
    recursion limit made that check raise inside the stream's end, so the stream was never
    recorded as ended (in flight forever, span open). Now it ends ok, with the check's
    problem counted."""
    tel = Telemetry(watchdog=False)
    parts = ["[" * 50_000, "]" * 50_000]
    out = list(tel.monitor.wrap(iter(parts), model="m", provider="p", expect_json=True))
    assert out == parts
    assert prom(tel, "stream_requests_total", outcome=c.OUTCOME_OK) == 1
    assert prom(tel, "stream_in_flight") == 0
    assert prom(tel, "stream_reassembly_errors_total", kind=c.REASSEMBLY_JSON) == 1
    assert len([s for s in tel.spans.get_finished_spans() if is_stream_span(s)]) == 1


def test_active_stream_past_the_cap_fails_without_retrying() -> None:
    """monitor.stream over byte chunks: EventTooLarge is not retried (the upstream would send
    the same event again) and reaches the consumer with the checkpoint."""
    body = CREATED + delta("ok") + HUGE
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    opened: list[Any] = []

    def opener(checkpoint: Any) -> Any:
        opened.append(checkpoint)
        return iter(chunks)

    tel = Telemetry(spec=small_cap_spec())
    with pytest.raises(ss.EventTooLarge) as info:
        for _ in tel.monitor.stream(opener, model="m", provider="p"):
            pass
    assert opened == [None]
    assert_ended_too_large(tel, info.value, "ok")
    assert prom(tel, "stream_retry_total", reason=c.RETRY_REASON_NETWORK) == 0


def test_abandoned_wrapper_closes_the_upstream_after_the_cap() -> None:
    """A consumer that stops taking events once the stream ended on the cap (events still
    queued) and drops the wrapper: the upstream response is closed all the same."""
    body = CREATED + delta("a") + delta("b") + HUGE
    # A 1 KiB cap: the first network read (one 64 KiB write on loopback) holds the three
    # events and enough of the long line to pass it, so the events are still queued.
    tel = Telemetry(spec=small_cap_spec("1KiB"), watchdog=False)
    with SSEServer(body, stall=True) as server, httpx.Client() as client:
        resp = client.send(client.build_request("GET", server.url), stream=True)
        stream = tel.monitor.wrap(resp, model="m", provider="p")
        assert next(stream).event == "response.created"
        # Read on until the cap ended the stream; the other events wait in the queue.
        while prom(tel, "stream_requests_total", outcome=c.OUTCOME_ERROR) == 0:
            assert next(stream).event == "response.output_text.delta"
        assert not resp.is_closed
        del stream
        assert resp.is_closed
