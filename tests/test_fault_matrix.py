"""Every simulator fault x (sync, async) through responses_stream with the real openai client.

Each case injects one fault on the first request only (an httpx2 request hook sets the
simulator's fault header), then asserts the outcome: the recovered text is byte-identical to the
fault-free run (sha256), or the right typed error with the exact checkpoint; the exact metric
deltas read from a fresh CollectorRegistry; and the span events read from an
InMemorySpanExporter. No timing is asserted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.monitor import StreamMonitor
from steadystream.instrumentation.openai import responses_stream, without_retries
from steadystream.instrumentation.policy.retry import Backoff
from steadystream.simulate import ROUTE_CREATE, ROUTE_RESUME, Upstream, deltas, expected_text
from telemetry_support import is_attempt_span, is_stream_span

MODEL = "gpt-4.1"
PROMPT = "tell me about streams"
EXPECTED = expected_text(PROMPT, seed=0)
EXPECTED_SHA = hashlib.sha256(EXPECTED.encode()).hexdigest()
DELTAS = deltas(PROMPT, seed=0)


def make_spec(idle: str = "20s") -> ss.Spec:
    """Tiny backoffs; budgets far from anything a loaded CI machine could hit by accident,
    except the idle budget of the stall case."""
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "matrix",
            "stream": {
                "timeouts": {"first_token": "20s", "stream_idle": idle, "total": "60s"},
                "retry": {"max_retries": 3, "base_backoff": "10ms", "max_backoff": "40ms"},
                "ingress": {"max_concurrent": 64, "rate": "1000/s"},
            },
        }
    )


class RecordingBackoff(Backoff):
    """The real backoff, remembering the server-requested delay of each retry."""

    def __init__(self) -> None:
        super().__init__(base=0.01, cap=0.04, jitter=0.25)
        object.__setattr__(self, "requested", [])

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        self.requested.append(retry_after)  # type: ignore[attr-defined]
        return super().delay(attempt, retry_after)


class FaultScript:
    """Puts the given fault headers on the next requests, one each, then nothing."""

    def __init__(self, *faults: str) -> None:
        self.faults = list(faults)
        self.seen: list[tuple[str, str, str | None]] = []

    def _apply(self, request: Any) -> None:
        self.seen.append(
            (request.method, request.url.path, request.headers.get(c.HEADER_IDEMPOTENCY_KEY))
        )
        if self.faults:
            request.headers[c.HEADER_FAULT] = self.faults.pop(0)

    def sync_hook(self, request: Any) -> None:
        self._apply(request)

    async def async_hook(self, request: Any) -> None:
        self._apply(request)


@dataclass
class Case:
    """One row of the matrix."""

    fault: str
    #: A fault for the second request (the retry or resume), if any.
    then: str | None = None
    retries: dict[str, int] = field(default_factory=dict)
    resumes: int = 0
    creates: int = 1
    retrieves: int = 0
    error: type[ss.StreamError] | None = None
    error_class: str | None = None
    #: Content deltas delivered before the error (for the checkpoint).
    delivered: int = 0
    idle: str = "20s"
    timeouts: dict[str, int] = field(default_factory=dict)
    idempotent_replays: int = 0
    resume_failures: int = 0
    #: The server-requested delays the backoff was given (None: none requested).
    retry_after: list[float | None] | None = None


# Events: 0 created, 1 in_progress, 2 output_item.added, 3 content_part.added, 4.. deltas.
CASES = {
    "429-retry-after": Case(
        "429, retry_after=20ms", retries={"429": 1}, creates=2, retry_after=[0.02]
    ),
    "503": Case("503", retries={"5xx": 1}, creates=2),
    "500": Case("500", retries={"5xx": 1}, creates=2),
    "drop-after-headers": Case(
        "drop_after=0", retries={"network": 1}, creates=2, idempotent_replays=1
    ),
    "drop-before-content": Case("drop_after=3", retries={"network": 1}, resumes=1, retrieves=1),
    "drop-after-content": Case("drop_after=9", retries={"network": 1}, resumes=1, retrieves=1),
    # first_token (20s) > stream_idle (1s), as for reasoning models: the idle deadline after
    # the first content is earlier than the first-token one, and must still fire. A stall
    # the monitor missed would end in the client's read-timeout backstop (reason "network").
    "stall": Case(
        "stall=60s@9",
        retries={"idle_timeout": 1},
        resumes=1,
        retrieves=1,
        idle="1s",
        timeouts={"idle": 1},
    ),
    "error-event": Case(
        "error_event=8",
        error=ss.UpstreamError,
        error_class=c.ERROR_CLASS_UPSTREAM_EVENT,
        delivered=4,
    ),
    "response-failed": Case(
        "failed=8",
        error=ss.UpstreamError,
        error_class=c.ERROR_CLASS_RESPONSE_FAILED,
        delivered=4,
    ),
    "bad-request": Case(
        "400", error=ss.UpstreamError, error_class=c.ERROR_CLASS_UPSTREAM_4XX, delivered=0
    ),
    "resume-refused": Case(
        "drop_after=9",
        then="404",
        retries={"network": 1},
        retrieves=1,
        error=ss.ResumeFailed,
        error_class=c.ERROR_CLASS_RESUME_FAILED,
        delivered=5,
        resume_failures=1,
    ),
    "split-utf8": Case("split=utf8"),
    "split-random": Case("split=random"),
    "none": Case("none"),
}


class Harness:
    """A fresh registry, tracer and monitor around one upstream."""

    def __init__(self, up: Upstream, case: Case) -> None:
        self.up = up
        self.registry = CollectorRegistry()
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.backoff = RecordingBackoff()
        self.monitor = StreamMonitor(
            make_spec(case.idle),
            registry=self.registry,
            tracer_provider=provider,
            backoff=self.backoff,
        )
        self.script = FaultScript(case.fault, *([case.then] if case.then else []))
        self.before = up.stats

    def value(self, metric: str, **extra: str) -> float:
        labels = {"service": "matrix", "model": MODEL, "provider": "openai", **extra}
        found = self.registry.get_sample_value(metric, labels)
        return found if found is not None else 0.0

    def sync_client(self) -> openai.OpenAI:
        http = httpx2.Client(event_hooks={"request": [self.script.sync_hook]})
        return openai.OpenAI(base_url=self.up.base_url, api_key="test", http_client=http)

    def async_client(self) -> openai.AsyncOpenAI:
        http = httpx2.AsyncClient(event_hooks={"request": [self.script.async_hook]})
        return openai.AsyncOpenAI(base_url=self.up.base_url, api_key="test", http_client=http)


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def consume_sync(h: Harness) -> tuple[list[Any], BaseException | None]:
    events: list[Any] = []
    try:
        for event in responses_stream(h.monitor, h.sync_client(), model=MODEL, input=PROMPT):
            events.append(event)
    except ss.StreamError as exc:
        return events, exc
    return events, None


async def consume_async(h: Harness) -> tuple[list[Any], BaseException | None]:
    events: list[Any] = []
    try:
        async for event in responses_stream(h.monitor, h.async_client(), model=MODEL, input=PROMPT):
            events.append(event)
    except ss.StreamError as exc:
        return events, exc
    return events, None


def check(h: Harness, case: Case, events: list[Any], error: BaseException | None) -> None:
    text = text_of(events)
    attempts = 1 + sum(case.retries.values())
    if case.error is None:
        assert error is None, f"unexpected {error!r}"
        assert hashlib.sha256(text.encode()).hexdigest() == EXPECTED_SHA
        assert text == EXPECTED
        seqs = [e.sequence_number for e in events]
        assert seqs == list(range(len(DELTAS) + 8)), "every event exactly once, in order"
        outcome, error_class = c.OUTCOME_OK, None
    else:
        assert isinstance(error, case.error), f"expected {case.error.__name__}, got {error!r}"
        assert error.error_class == case.error_class
        delivered = "".join(DELTAS[: case.delivered])
        assert text == delivered
        cp = error.checkpoint
        if case.delivered:
            assert cp is not None
            assert cp.offset == len(delivered.encode())
            assert cp.sha256 == hashlib.sha256(delivered.encode()).hexdigest()
            assert cp.chunks == case.delivered
        else:
            assert cp is None or cp.offset == 0
        if case.error is ss.ResumeFailed and case.then == "404":
            # The refusal itself stays visible as the cause.
            cause = error.__cause__
            assert isinstance(cause, ss.UpstreamError) and cause.status == 404
            assert cause.error_class == c.ERROR_CLASS_UPSTREAM_4XX
        outcome, error_class = c.OUTCOME_ERROR, case.error_class

    # Retry-After was honoured (retry-after-ms, the precise header, wins).
    expected_requested = case.retry_after or [None] * (attempts - 1)
    assert h.backoff.requested == expected_requested  # type: ignore[attr-defined]

    # Metrics: exact values in a fresh registry.
    for reason in c.RETRY_REASONS:
        assert h.value("stream_retry_total", reason=reason) == case.retries.get(reason, 0), reason
    assert h.value("stream_resume_success_total") == case.resumes
    assert h.value("stream_resume_failure_total") == case.resume_failures
    assert h.value("stream_retry_budget_exhausted_total") == 0
    for o in c.OUTCOMES:
        assert h.value("stream_requests_total", outcome=o) == (1 if o == outcome else 0), o
    for ec in c.ERROR_CLASSES:
        expected_errors = 1 if ec == error_class else 0
        assert h.value("stream_errors_total", error_class=ec) == expected_errors, ec
    for phase in c.TIMEOUT_PHASES:
        assert h.value("stream_timeouts_total", phase=phase) == case.timeouts.get(phase, 0)
    assert h.value("stream_timeout_idle_total") == case.timeouts.get("idle", 0)
    assert h.value("stream_bytes_total") == len(text.encode())
    assert h.value("stream_in_flight") == 0
    # One TTFT observation per logical stream: its first content, or the time waited when a
    # first-token timeout left it without any.
    timed_out_waiting = not text and case.timeouts.get(c.TIMEOUT_FIRST_TOKEN, 0) > 0
    assert h.value("stream_first_token_latency_ms_count") == (1 if text or timed_out_waiting else 0)
    interrupted_then_content = case.error is None and attempts > 1
    assert h.value("stream_recovery_latency_ms_count") == (1 if interrupted_then_content else 0)

    # Spans: one logical stream span, one child per attempt, events for retry/resume/timeout.
    spans = h.exporter.get_finished_spans()
    streams = [s for s in spans if is_stream_span(s)]
    tries = [s for s in spans if is_attempt_span(s)]
    assert len(streams) == 1
    assert len(tries) == attempts
    root = streams[0]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in tries)
    names = [e.name for e in root.events]
    assert names.count(c.EVENT_RETRY) == attempts - 1
    assert names.count(c.EVENT_RESUME) == case.resumes + case.resume_failures
    assert names.count(c.EVENT_TIMEOUT) == sum(case.timeouts.values())
    assert names.count(c.EVENT_FIRST_TOKEN) == (1 if text else 0)
    assert root.attributes[c.ATTR_OUTCOME] == outcome

    # The upstream saw exactly the requests the policy allows, all with one idempotency key.
    after = h.up.stats
    assert after.requests_to(ROUTE_CREATE) - h.before.requests_to(ROUTE_CREATE) == case.creates
    assert after.requests_to(ROUTE_RESUME) - h.before.requests_to(ROUTE_RESUME) == case.retrieves
    assert after.idempotent_replays - h.before.idempotent_replays == case.idempotent_replays
    keys = {key for _, _, key in h.script.seen}  # creates and resumes alike
    assert len(keys) == 1 and None not in keys


@pytest.fixture(scope="module")
def shared_upstream() -> Any:
    """One simulator for the whole matrix (faults are per request, so cases do not mix)."""
    with Upstream(profile="none", seed=0) as up:
        yield up


@pytest.mark.parametrize("name", list(CASES))
def test_fault_matrix_sync(shared_upstream: Upstream, name: str) -> None:
    """Sync client: each fault recovers byte-exactly or ends in the right typed error."""
    case = CASES[name]
    h = Harness(shared_upstream, case)
    events, error = consume_sync(h)
    check(h, case, events, error)


@pytest.mark.parametrize("name", list(CASES))
async def test_fault_matrix_async(shared_upstream: Upstream, name: str) -> None:
    """Async client: each fault recovers byte-exactly or ends in the right typed error."""
    case = CASES[name]
    h = Harness(shared_upstream, case)
    events, error = await consume_async(h)
    check(h, case, events, error)


def test_client_retries_are_turned_off_on_a_copy(shared_upstream: Upstream) -> None:
    """The monitor owns retries: the copy has max_retries=0, the caller's client is untouched."""
    client = openai.OpenAI(base_url=shared_upstream.base_url, api_key="test", max_retries=5)
    monitor = StreamMonitor(make_spec(), registry=CollectorRegistry())
    quiet = without_retries(client, monitor)
    assert quiet.max_retries == 0 and client.max_retries == 5
    assert quiet.timeout.connect == 2.0  # dial 1s + TLS 1s from the spec
    assert quiet.timeout.read > 20.0  # a backstop beyond the monitor's own 20s budgets
