"""Connections: separate dial and TLS deadlines, and the connection pool (stream.pool).

Real parts throughout: loopback listeners that really stall a TCP connect or a TLS handshake,
the real openai SDK (sync and async) over the clients ``openai_client_options`` builds, and the
simulator on 127.0.0.1. Elapsed times are checked as lower bounds only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI, OpenAI

import steadystream as ss
import telemetry_support
from steadystream import conventions as c
from steadystream.instrumentation.openai import responses_stream
from steadystream.instrumentation.providers.failures import (
    classify_failure,
    connect_timeout_phase,
)
from steadystream.simulate import expected_text
from steadystream.spec import SpecError, parse_spec

LABELS = {"service": "svc", "model": "gpt-4.1", "provider": "openai"}
#: Generous bound for conditions a test waits for (a loaded 2-core CI machine).
WAIT = 30.0


class Telemetry(telemetry_support.Telemetry):
    labels = LABELS


def make_spec(
    *, dial: str = "1s", tls: str = "500ms", pool: dict[str, int] | None = None
) -> ss.Spec:
    stream: dict[str, Any] = {
        "timeouts": {
            "dial": dial,
            "tls_handshake": tls,
            "first_token": "20s",
            "stream_idle": "20s",
            "total": "60s",
        },
        "retry": {"max_retries": 0},
    }
    if pool is not None:
        stream["pool"] = pool
    return ss.Spec.model_validate({"version": 1, "service": "svc", "stream": stream})


# ------------------------------------------------------------------------ loopback listeners


class SilentTLSListener:
    """Accepts TCP connections and reads whatever arrives (the ClientHello) without ever
    answering, so the TLS handshake stalls while the TCP connect succeeded at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        #: Called with each chunk a client sends (the ClientHello, or a proxy's CONNECT line).
        self.on_data: Any = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                if self.on_data is not None:
                    self.on_data(data)
        except OSError:
            pass

    def close(self) -> None:
        """Stop listening and drop every held connection (idempotent)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self._thread.join(WAIT)
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes the reader, and the peer
                conn.close()
            self._conns.clear()


class FullBacklogListener:
    """A listener that never accepts, with its accept queue filled: Linux drops the SYN of any
    further connection (the queue is full), so a TCP connect to it hangs until its timeout.

    ``listen(0)`` leaves room for one connection; fillers connect until one of them really
    times out, which proves the queue is full (no guessed sleep)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(64):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(1.0)
            try:
                filler.connect(("127.0.0.1", self.port))
            except TimeoutError:
                filler.close()
                return  # the queue is full: connects hang from now on
            self._fillers.append(filler)
        raise AssertionError("the listener's accept queue never filled up")

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self.sock.close()


@pytest.fixture
def silent_tls() -> Iterator[SilentTLSListener]:
    listener = SilentTLSListener()
    yield listener
    listener.close()


@pytest.fixture
def full_backlog() -> Iterator[FullBacklogListener]:
    listener = FullBacklogListener()
    yield listener
    listener.close()


def _chain(exc: BaseException | None) -> str:
    """The messages of ``exc`` and the exceptions it was raised from."""
    parts = []
    while exc is not None and len(parts) < 8:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


def _https(port: int) -> str:
    return f"https://127.0.0.1:{port}/v1"


# ------------------------------------------------------------------------ dial and TLS


def test_tls_stall_fails_at_the_tls_deadline_counted_as_tls(silent_tls: SilentTLSListener) -> None:
    """dial 1 s, tls_handshake 500 ms, a listener that accepts and never answers the
    handshake: the resilient stream fails with a connect timeout after (at least) the TLS
    deadline, counted under phase="tls" and not "dial"."""
    tel = Telemetry(make_spec(dial="1s", tls="500ms"))
    options = tel.monitor.openai_client_options()
    started = time.monotonic()
    with (
        OpenAI(base_url=_https(silent_tls.port), api_key="test", max_retries=0, **options) as cl,
        pytest.raises(ss.UpstreamError) as info,
    ):
        list(responses_stream(tel.monitor, cl, model="gpt-4.1", input="hi"))
    elapsed = time.monotonic() - started
    assert info.value.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT
    assert info.value.retryable
    assert "TLS handshake" in _chain(info.value) and "tls_handshake" in _chain(info.value)
    assert silent_tls.accepted >= 1  # the TCP connect succeeded; the handshake stalled
    assert elapsed >= 0.5
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_TLS) == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_DIAL) == 0
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_CONNECT_TIMEOUT) == 1


async def test_tls_stall_async_fails_at_the_tls_deadline_counted_as_tls(
    silent_tls: SilentTLSListener,
) -> None:
    """The same stall through AsyncOpenAI and the async transport."""
    tel = Telemetry(make_spec(dial="1s", tls="500ms"))
    options = tel.monitor.openai_client_options(asynchronous=True)
    started = time.monotonic()
    async with AsyncOpenAI(
        base_url=_https(silent_tls.port), api_key="test", max_retries=0, **options
    ) as cl:
        with pytest.raises(ss.UpstreamError) as info:
            async for _ in responses_stream(tel.monitor, cl, model="gpt-4.1", input="hi"):
                pass
    elapsed = time.monotonic() - started
    assert info.value.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT
    assert elapsed >= 0.5
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_TLS) == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_DIAL) == 0


def test_tls_deadline_is_its_own_not_dial_plus_tls(silent_tls: SilentTLSListener) -> None:
    """On the transport itself: the ConnectTimeout of a stalled handshake is marked ``tls``,
    names the spec field, and is a retryable connect timeout for the one classifier."""
    spec = make_spec(dial="5s", tls="300ms")
    client: httpx2.Client = ss.openai_client_options(spec)["http_client"]
    started = time.monotonic()
    with client, pytest.raises(httpx2.ConnectTimeout) as info:
        client.get(f"https://127.0.0.1:{silent_tls.port}/")
    assert time.monotonic() - started >= 0.3
    assert connect_timeout_phase(info.value) == c.TIMEOUT_TLS
    assert "stream.timeouts.tls_handshake" in str(info.value)
    failure = classify_failure(info.value)
    assert failure.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT
    assert failure.reason == c.RETRY_REASON_NETWORK


def test_dial_stall_counted_as_dial(full_backlog: FullBacklogListener) -> None:
    """A TCP connect that hangs (the listener's accept queue is full, so the SYN is dropped)
    fails at the dial deadline, counted under phase="dial"."""
    tel = Telemetry(make_spec(dial="400ms", tls="5s"))
    options = tel.monitor.openai_client_options()
    started = time.monotonic()
    with (
        OpenAI(base_url=_https(full_backlog.port), api_key="test", max_retries=0, **options) as cl,
        pytest.raises(ss.UpstreamError) as info,
    ):
        list(responses_stream(tel.monitor, cl, model="gpt-4.1", input="hi"))
    assert time.monotonic() - started >= 0.4
    assert info.value.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT
    assert "TCP connect" in _chain(info.value) and "stream.timeouts.dial" in _chain(info.value)
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_DIAL) == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_TLS) == 0


async def test_dial_stall_async_counted_as_dial(full_backlog: FullBacklogListener) -> None:
    tel = Telemetry(make_spec(dial="400ms", tls="5s"))
    options = tel.monitor.openai_client_options(asynchronous=True)
    async with AsyncOpenAI(
        base_url=_https(full_backlog.port), api_key="test", max_retries=0, **options
    ) as cl:
        with pytest.raises(ss.UpstreamError) as info:
            async for _ in responses_stream(tel.monitor, cl, model="gpt-4.1", input="hi"):
                pass
    assert info.value.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_DIAL) == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_TLS) == 0


def test_both_connect_timeouts_are_retried(silent_tls: SilentTLSListener) -> None:
    """A TLS timeout is a transient connect failure: with one retry allowed, the stream
    tries twice and counts two TLS timeouts and one network retry."""
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "timeouts": {"dial": "1s", "tls_handshake": "300ms"},
                "retry": {"max_retries": 1, "base_backoff": "10ms", "max_backoff": "20ms"},
            },
        }
    )
    tel = Telemetry(spec)
    options = tel.monitor.openai_client_options()
    with (
        OpenAI(base_url=_https(silent_tls.port), api_key="test", max_retries=0, **options) as cl,
        pytest.raises(ss.UpstreamError),
    ):
        list(responses_stream(tel.monitor, cl, model="gpt-4.1", input="hi"))
    assert silent_tls.accepted == 2
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_TLS) == 2
    assert tel.value("stream_retry_total", reason=c.RETRY_REASON_NETWORK) == 1


def test_proxy_environment_still_applies(
    upstream: Any, silent_tls: SilentTLSListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client given a transport would ignore HTTPS_PROXY / NO_PROXY: the options mount the
    proxies as httpx2 does. A request to an https host goes to the proxy (the listener reads
    its CONNECT line); one to a NO_PROXY host goes direct, through the measured pool."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{silent_tls.port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    seen: list[bytes] = []
    silent_tls.on_data = seen.append
    spec = make_spec(pool={"max_connections": 2, "max_keepalive": 1})
    tel = Telemetry(spec)
    client: httpx2.Client = tel.monitor.openai_client_options()["http_client"]
    failed: list[BaseException] = []

    def through_proxy() -> None:
        try:
            client.get("https://api.example.invalid/v1/models", timeout=WAIT)
        except httpx2.HTTPError as exc:
            failed.append(exc)

    worker = threading.Thread(target=through_proxy)
    worker.start()
    _wait_for(lambda: b"".join(seen).startswith(b"CONNECT api.example.invalid:443"), "a CONNECT")
    silent_tls.close()  # the proxy goes away: the request fails instead of waiting
    worker.join(WAIT)
    assert not worker.is_alive() and failed
    with OpenAI(
        base_url=upstream.base_url, api_key="test", max_retries=0, http_client=client
    ) as cl:
        stream = cl.responses.create(model="gpt-4.1", input="hi", stream=True)
        list(tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"))
    assert tel.value("stream_phase_duration_ms_count", phase=c.PHASE_POOL) == 1


def test_watchdog_still_cuts_a_stalled_stream_over_the_deadline_backend(upstream: Any) -> None:
    """The backend wraps the connection's stream; the watchdog still finds its socket and
    shuts it down when a sync stream stalls past stream_idle."""
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {"timeouts": {"first_token": "20s", "stream_idle": "400ms", "total": "60s"}},
        }
    )
    tel = Telemetry(spec)
    options = tel.monitor.openai_client_options()
    with OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0, **options) as cl:
        stream = cl.responses.create(
            model="gpt-4.1", input="hi", stream=True, extra_headers={c.HEADER_FAULT: "stall=60s@10"}
        )
        with pytest.raises(ss.IdleTimeout):
            for _ in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"):
                pass
        assert stream.response.is_closed
    assert tel.value("stream_timeout_idle_total") == 1


def test_an_unmarked_connect_timeout_counts_as_dial() -> None:
    """A client built some other way has one connect budget: its ConnectTimeout is ``dial``."""
    exc = httpx2.ConnectTimeout("timed out")
    assert connect_timeout_phase(exc) == c.TIMEOUT_DIAL
    assert classify_failure(exc).error_class == c.ERROR_CLASS_CONNECT_TIMEOUT


# ------------------------------------------------------------------------ the pool


def test_pool_section_errors_name_file_line_and_field() -> None:
    """max_keepalive above max_connections, a zero pool and an unknown key: each problem is
    located at its field."""
    text = (
        "version: 1\nservice: x\nstream:\n  pool:\n    max_connections: 2\n    max_keepalive: 5\n"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, "slo.yaml")
    assert str(info.value) == (
        "slo.yaml:6:20: stream.pool.max_keepalive: max_keepalive (5) must not exceed "
        "max_connections (2)"
    )
    text = "version: 1\nservice: x\nstream:\n  pool: {max_connections: 0, idle: 3}\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text, "slo.yaml")
    lines = str(info.value).splitlines()
    assert lines[0].startswith("slo.yaml:4:27: stream.pool.max_connections: ")
    assert lines[1].startswith("slo.yaml:4:30: stream.pool.idle: unknown field")


def test_pool_defaults_are_the_openai_sdks() -> None:
    """Without stream.pool the client keeps the SDK's own limits (1000 / 100)."""
    import openai

    with OpenAI(api_key="test", **ss.openai_client_options(make_spec())) as cl:
        limits = cl._client._transport.limits
    default = openai.DEFAULT_CONNECTION_LIMITS
    assert limits.max_connections == default.max_connections
    assert limits.max_keepalive_connections == default.max_keepalive_connections


def _pool_of(client: OpenAI | AsyncOpenAI) -> Any:
    return client._client._transport._pool  # the httpcore2 pool behind the SDK client


def test_pool_limits_reach_the_clients_transport() -> None:
    """stream.pool sizes the pool of both the sync and the async client; the connections use
    the deadline backend."""
    spec = make_spec(dial="700ms", tls="300ms", pool={"max_connections": 7, "max_keepalive": 3})
    with OpenAI(api_key="test", **ss.openai_client_options(spec)) as cl:
        transport = cl._client._transport
        assert transport.limits.max_connections == 7
        assert transport.limits.max_keepalive_connections == 3
        pool = _pool_of(cl)
        assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)
        assert (pool._network_backend.dial, pool._network_backend.tls) == pytest.approx((0.7, 0.3))
        assert cl.timeout.connect == pytest.approx(1.0)  # the backstop: dial + TLS
    options = ss.openai_client_options(spec, asynchronous=True)
    aclient = AsyncOpenAI(api_key="test", **options)
    pool = _pool_of(aclient)
    assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)
    assert (pool._network_backend.dial, pool._network_backend.tls) == pytest.approx((0.7, 0.3))


def test_httpx_limits_carry_the_pool_sizes() -> None:
    """A plain httpx client gets the same pool sizes."""
    import httpx

    spec = make_spec(pool={"max_connections": 9, "max_keepalive": 4})
    limits = Telemetry(spec).monitor.httpx_limits()
    assert isinstance(limits, httpx.Limits)
    assert (limits.max_connections, limits.max_keepalive_connections) == (9, 4)
    with httpx.Client(timeout=ss.httpx_timeout(spec), limits=limits) as client:
        pool = client._transport._pool  # the httpcore pool behind the client
        assert (pool._max_connections, pool._max_keepalive_connections) == (9, 4)


def test_an_async_client_refuses_the_sync_options() -> None:
    """The options are for one kind of client; the SDK names the mistake."""
    with pytest.raises(TypeError, match="http_client"):
        AsyncOpenAI(api_key="test", **ss.openai_client_options(make_spec()))


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT}s waiting for {what}")
        time.sleep(0.01)


def _pool_phases(tel: Telemetry) -> list[float]:
    """Every stream's ``pool`` phase, read from its span (ms)."""
    key = c.ATTR_PHASE_PREFIX + c.PHASE_POOL
    spans = [s for s in tel.spans.get_finished_spans() if telemetry_support.is_stream_span(s)]
    return [float((s.attributes or {})[key]) for s in spans if key in (s.attributes or {})]


def test_pool_phase_recorded_for_a_passive_stream(upstream: Any) -> None:
    """monitor.wrap of an SDK stream from a client built by the options: one pool
    observation (and the text intact)."""
    spec = make_spec(pool={"max_connections": 4, "max_keepalive": 2})
    tel = Telemetry(spec)
    options = tel.monitor.openai_client_options()
    with OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0, **options) as cl:
        stream = cl.responses.create(model="gpt-4.1", input="hi", stream=True)
        events = list(tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == expected_text("hi", seed=0)
    assert tel.value("stream_phase_duration_ms_count", phase=c.PHASE_POOL) == 1
    assert len(_pool_phases(tel)) == 1


def test_second_stream_waits_in_a_one_connection_pool_sync(upstream: Any) -> None:
    """max_connections 1, two concurrent streams: the second request waits in the pool until
    the first stream ends, and its pool phase is a positive observation."""
    spec = make_spec(pool={"max_connections": 1, "max_keepalive": 1})
    tel = Telemetry(spec)
    options = tel.monitor.openai_client_options()
    with OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0, **options) as cl:
        pool = _pool_of(cl)
        first = cl.responses.create(model="gpt-4.1", input="hi", stream=True)
        first_events = tel.monitor.wrap(first, model="gpt-4.1", provider="openai")
        second_text: list[str] = []
        errors: list[BaseException] = []

        def second() -> None:
            try:
                for e in responses_stream(tel.monitor, cl, model="gpt-4.1", input="hi"):
                    if e.type == "response.output_text.delta":
                        second_text.append(e.delta)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        worker = threading.Thread(target=second)
        worker.start()
        _wait_for(lambda: len(pool._requests) == 2, "the second request to queue in the pool")
        list(first_events)  # the first stream ends and gives its connection back
        worker.join(WAIT)
        assert not worker.is_alive() and not errors
    assert "".join(second_text) == expected_text("hi", seed=0)
    assert tel.value("stream_phase_duration_ms_count", phase=c.PHASE_POOL) == 2
    assert tel.value("stream_phase_duration_ms_sum", phase=c.PHASE_POOL) > 0
    phases = _pool_phases(tel)
    assert len(phases) == 2 and max(phases) > 0


async def test_second_stream_waits_in_a_one_connection_pool_async(aupstream: Any) -> None:
    """The same with AsyncOpenAI: two tasks, one connection."""
    spec = make_spec(pool={"max_connections": 1, "max_keepalive": 1})
    tel = Telemetry(spec)
    options = tel.monitor.openai_client_options(asynchronous=True)
    async with AsyncOpenAI(
        base_url=aupstream.base_url, api_key="test", max_retries=0, **options
    ) as cl:
        pool = _pool_of(cl)
        first = await cl.responses.create(model="gpt-4.1", input="hi", stream=True)

        async def second() -> str:
            parts = []
            async for e in responses_stream(tel.monitor, cl, model="gpt-4.1", input="hi"):
                if e.type == "response.output_text.delta":
                    parts.append(e.delta)
            return "".join(parts)

        task = asyncio.create_task(second())
        deadline = time.monotonic() + WAIT
        while len(pool._requests) < 2:
            assert time.monotonic() < deadline, "the second request never queued in the pool"
            assert not task.done(), task
            await asyncio.sleep(0.01)
        async for _ in tel.monitor.wrap(first, model="gpt-4.1", provider="openai"):
            pass
        text = await asyncio.wait_for(task, WAIT)
    assert text == expected_text("hi", seed=0)
    assert tel.value("stream_phase_duration_ms_count", phase=c.PHASE_POOL) == 2
    phases = _pool_phases(tel)
    assert len(phases) == 2 and max(phases) > 0
