"""Spans: GenAI attributes, one span per logical stream, a child per attempt, events."""

from __future__ import annotations

import contextlib
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from telemetry_support import is_attempt_span, is_stream_span

SECRET = "the-secret-prompt-and-content"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def setup(every: int = 2) -> tuple[ss.StreamMonitor, InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    spec = ss.Spec.model_validate(
        {"version": 1, "service": "svc", "stream": {"checkpoint": {"every": every}}}
    )
    m = ss.StreamMonitor(
        spec, registry=CollectorRegistry(), tracer_provider=tp, clock=FakeClock(), watchdog=False
    )
    return m, exporter, tp


def delta(text: str, seq: int) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "delta": text, "sequence_number": seq}


def test_stream_span_attributes_events_and_parent() -> None:
    """The stream span follows GenAI conventions, is a child of the current span, has a
    first-token event and a checkpoint event, and records no content."""
    m, exporter, tp = setup(every=2)
    items = [
        {"type": "response.created", "response": {"id": "resp_9"}, "sequence_number": 0},
        delta(SECRET, 1),
        delta(SECRET, 2),
        delta(SECRET, 3),
        {"type": "response.completed", "response": {"id": "resp_9"}, "sequence_number": 4},
    ]
    with tp.get_tracer("test").start_as_current_span("request") as parent:
        list(m.wrap(iter(items), model="gpt-4.1-mini", provider="openai"))
    (stream,) = [s for s in exporter.get_finished_spans() if is_stream_span(s)]
    assert stream.name == "chat gpt-4.1-mini"
    assert stream.parent is not None and stream.parent.span_id == parent.get_span_context().span_id
    assert stream.kind is trace.SpanKind.CLIENT
    attrs = dict(stream.attributes)
    assert attrs[c.ATTR_PROVIDER] == "openai"
    assert attrs[c.ATTR_REQUEST_MODEL] == "gpt-4.1-mini"
    assert attrs[c.ATTR_REQUEST_STREAM] is True
    assert attrs[c.ATTR_RESPONSE_ID] == "resp_9"
    assert attrs[c.ATTR_OUTCOME] == c.OUTCOME_OK
    assert attrs[c.ATTR_CHUNKS] == 3
    assert attrs[c.ATTR_BYTES] == 3 * len(SECRET)
    assert {c.ATTR_PHASE_PREFIX + p for p in (c.PHASE_FIRST_TOKEN_WAIT, c.PHASE_CONSUMER)} <= set(
        attrs
    )
    names = [e.name for e in stream.events]
    assert names[0] == c.EVENT_FIRST_TOKEN
    checkpoints = [dict(e.attributes) for e in stream.events if e.name == c.EVENT_CHECKPOINT]
    # The final checkpoint is recorded (intermediate ones only before failures and retries).
    assert [(cp["chunks"], cp["sequence_number"]) for cp in checkpoints] == [(3, 4)]
    dumped = repr(attrs) + repr([dict(e.attributes) for e in stream.events])
    assert SECRET not in dumped
    assert stream.status.status_code is StatusCode.UNSET


def test_one_span_per_logical_stream_with_a_child_per_attempt() -> None:
    """Two attempts (a failed one, then a resumed one) give two attempt spans under one
    stream span, with retry and resume events on the stream span."""
    m, exporter, _ = setup()
    clock = m.clock
    core = m.open_stream("gpt-4.1", "openai")
    core.begin_attempt(clock())
    core.on_wait(clock())
    core.on_item(delta("a", 1), clock())
    core.on_error(ConnectionResetError(), clock())
    core.record_retry(c.RETRY_REASON_NETWORK, clock())
    core.begin_attempt(clock())
    core.record_resume(True, clock())
    core.on_wait(clock())
    core.on_item({"type": "response.completed", "response": {"id": "r"}}, clock())
    assert core.close(clock()) == c.OUTCOME_OK
    finished = exporter.get_finished_spans()
    (stream,) = [s for s in finished if is_stream_span(s)]
    attempts = [s for s in finished if is_attempt_span(s)]
    assert [a.attributes[c.ATTR_ATTEMPT] for a in attempts] == [1, 2]
    assert all(a.parent.span_id == stream.context.span_id for a in attempts)
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[1].status.status_code is StatusCode.UNSET
    assert [e.name for e in stream.events if e.name in (c.EVENT_RETRY, c.EVENT_RESUME)] == [
        c.EVENT_RETRY,
        c.EVENT_RESUME,
    ]
    assert stream.attributes[c.ATTR_ATTEMPT] == 2


def test_timeout_event_and_error_status() -> None:
    """A timeout adds a timeout event and ends the span with an error status, once."""
    m, exporter, _ = setup()
    clock = m.clock

    def upstream() -> Any:
        yield {"type": "response.created", "response": {"id": "r"}}
        clock.t += 10  # past the 3 s first-token budget
        yield delta("late", 1)

    wrapped = m.wrap(upstream(), model="gpt-4.1", provider="openai")
    next(wrapped)
    with contextlib.suppress(ss.FirstTokenTimeout):
        next(wrapped)
    wrapped.close()
    (stream,) = [s for s in exporter.get_finished_spans() if is_stream_span(s)]
    assert stream.status.status_code is StatusCode.ERROR
    assert stream.attributes[c.ATTR_ERROR_CLASS] == c.ERROR_CLASS_FIRST_TOKEN_TIMEOUT
    (event,) = [e for e in stream.events if e.name == c.EVENT_TIMEOUT]
    assert event.attributes[c.LABEL_PHASE] == c.TIMEOUT_FIRST_TOKEN
