"""The telemetry sink interface the core reports to, and the pieces every sink shares.

The core (:mod:`..core.machine`) never talks to Prometheus or OpenTelemetry. It calls a
:class:`StreamObserver`: one object per logical stream, obtained from each
:class:`TelemetrySink` with :meth:`TelemetrySink.bind`. The monitor wires three sinks
(Prometheus, OpenTelemetry metrics, spans) behind a :class:`Fanout` that logs and swallows any
exception a sink raises, so telemetry can never break the user's stream.

Nothing here is called per chunk: the core batches bytes and chunk gaps and hands them on every
1,024 chunks, at least once a second while content flows, and at the end
(:meth:`StreamObserver.content`), so a sink's cost per chunk is amortised. Sinks must not keep
a reference to the ``gaps_ms`` list they are handed.

Every text that reaches a metric label or a span attribute from outside (model and provider
names, the service, the upstream's response id) goes through :func:`clean_label` first: the one
place where label values are made safe to export.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ... import conventions as c

if TYPE_CHECKING:
    from ..core.checkpoint import Checkpoint

__all__ = [
    "MAX_LABEL_CHARS",
    "CapacitySource",
    "CapacityTracker",
    "ErrorRateWindow",
    "Fanout",
    "LabelCap",
    "StreamObserver",
    "TelemetrySink",
    "clean_label",
    "server_attributes",
]

log = logging.getLogger("steadystream.telemetry")

#: Longest label value (and span attribute from outside), in characters.
MAX_LABEL_CHARS = 128
# A value cut to the cap ends in "~" and this many hex digits of the sha256 of the whole value,
# so two long names that share a prefix stay two series (and the same name is always the same).
_HASH_CHARS = 12
_HEAD_CHARS = MAX_LABEL_CHARS - 1 - _HASH_CHARS


def clean_label(value: object) -> str:
    """``value`` made safe for a metric label or a span attribute.

    * Characters that are not printable become U+FFFD: lone surrogates (which ``json.loads``
      accepts, and which made every later Prometheus scrape fail with a ``UnicodeEncodeError``),
      control characters such as newlines, and format or separator characters other than the
      space. Quotes and backslashes are printable and kept; the exposition format escapes them.
    * Values longer than :data:`MAX_LABEL_CHARS` keep their first characters, then ``~`` and 12
      hex digits of the sha256 of the whole value: bounded, stable and still distinct.

    Idempotent (a clean value is returned unchanged); a non-string is converted with ``str``
    (``unknown`` when that fails). Costs a length check and two flag reads for an ordinary
    ASCII name.
    """
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:
            return c.UNKNOWN
    if len(text) <= MAX_LABEL_CHARS:
        if text.isascii() and text.isprintable():
            return text
        return _printable(text)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{_printable(text[:_HEAD_CHARS])}~{digest}"


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


class LabelCap:
    """The first ``cap`` distinct values of a label, then ``other``: bounded cardinality.

    Values are cleaned first (:func:`clean_label`: printable, at most 128 characters), so the
    cap counts what is exported and holds no hostile text."""

    __slots__ = ("_cap", "_lock", "_seen")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return c.UNKNOWN
        if type(value) is str and value in self._seen:
            return value  # seen values are clean, and a clean value cleans to itself
        value = clean_label(value)
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._cap:
                return c.OTHER_MODEL
            self._seen.add(value)
            return value


_DEFAULT_PORTS = {"https": 443, "http": 80, "wss": 443, "ws": 80}


def server_attributes(url: Any) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of the upstream at ``url``: an httpx / httpx2
    ``URL`` (a client's ``base_url``, a response's ``url``) or a URL string. The port is the
    URL's, else the scheme's default (443 for https); ``{}`` when there is no host. The one
    place these two attributes are made, for passive and resilient streams alike."""
    if url is None:
        return {}
    host: Any = None
    port: Any = None
    scheme: Any = None
    try:
        if isinstance(url, str):
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            host, scheme = parts.hostname, parts.scheme
            port = parts.port
        else:
            host = getattr(url, "host", None)
            port = getattr(url, "port", None)
            scheme = getattr(url, "scheme", None)
    except (ValueError, TypeError):  # a malformed port, say: no attributes, no failure
        return {}
    if not isinstance(host, str) or not host:
        return {}
    out: dict[str, Any] = {c.ATTR_SERVER_ADDRESS: clean_label(host)}
    if not isinstance(port, int) or isinstance(port, bool):
        port = _DEFAULT_PORTS.get(str(scheme).lower()) if scheme else None
    if port is not None:
        out[c.ATTR_SERVER_PORT] = port
    return out


class StreamObserver(Protocol):
    """Receives what happens to one logical stream. Times are seconds on the core's clock.

    Call order: ``started`` once; then per attempt ``attempt_started`` ... ``attempt_ended``;
    ``first_token`` at most once (the logical stream's first content), or instead
    ``first_token_timeout`` once just before ``ended`` (no content after a first-token
    timeout); ``ended`` exactly once.
    """

    def started(self, t: float) -> None:
        """The logical stream opened (``stream_in_flight`` +1, span start)."""

    def attempt_started(self, attempt: int, t: float) -> None:
        """Attempt ``attempt`` (1-based) began (child span start)."""

    def attempt_ended(self, attempt: int, t: float, error_class: str | None) -> None:
        """Attempt ``attempt`` ended, with ``error_class`` when it failed (child span end)."""

    def first_token(self, ttft_s: float, t: float) -> None:
        """First content of the logical stream, ``ttft_s`` after it opened."""

    def first_token_timeout(self, waited_s: float, t: float) -> None:
        """The logical stream ended without content after a first-token timeout, the last one
        ``waited_s`` after it opened (observed in the TTFT histogram in place of
        ``first_token``: at most one of the two per stream, at its end)."""

    def content(self, nbytes: int, gaps_ms: Sequence[float]) -> None:
        """A batch of content: bytes delivered and the chunk gaps (ms) since the last batch."""

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        """The checkpoint at a moment that matters: a timeout, a failed attempt, the end.
        (Periodic checkpoints are kept by the core, not reported: they are per-chunk work.)"""

    def timeout(self, phase: str, t: float) -> None:
        """A timeout fired (``phase``: ``first_token``, ``idle``, ``total``, ``dial``, ``tls``)."""

    def retry(self, reason: str, attempt: int, t: float) -> None:
        """A retry for ``reason`` is about to start attempt ``attempt``."""

    def resume(self, ok: bool, t: float, checkpoint: Checkpoint | None) -> None:
        """A resume from ``checkpoint`` succeeded (``ok``) or failed."""

    def recovery(self, ms: float) -> None:
        """Interruption to first content after it took ``ms`` milliseconds."""

    def budget_exhausted(self, t: float) -> None:
        """A retry was refused because the retry budget was spent."""

    def client_slow(self, terminated: bool, dropped_bytes: int, t: float) -> None:
        """The consumer fell behind the buffer cap: the stream was cut (``terminated``) or
        ``dropped_bytes`` of increments were dropped."""

    def reassembly_error(self, kind: str, detail: str) -> None:
        """A reassembly problem of ``kind`` (utf8, sse, json, fence)."""

    def response_id(self, response_id: str) -> None:
        """The upstream response id became known (spans only; never a metric label)."""

    def ended(
        self,
        outcome: str,
        error_class: str | None,
        phases_ms: Mapping[str, float],
        t: float,
        info: Mapping[str, Any],
    ) -> None:
        """The logical stream ended. ``phases_ms`` maps phase -> milliseconds (only measured
        phases); ``info`` holds ``bytes``, ``chunks``, ``attempts`` and ``duration`` (seconds
        from open to end), and what the upstream reported, each only when it did:
        ``input_tokens`` and ``output_tokens`` (summed over the stream's requests),
        ``finish_reasons`` (a tuple) and ``response_model``."""


class TelemetrySink(Protocol):
    """A telemetry backend. :meth:`bind` is called once per logical stream."""

    def bind(
        self, model: str, provider: str, *, request_model: str, attributes: Mapping[str, Any]
    ) -> StreamObserver:
        """An observer for a stream whose (capped) ``model`` label and ``provider`` are given;
        ``request_model`` is the uncapped name (spans may carry it, metrics must not)."""

    def rejected(self, reason: str, model: str, provider: str) -> None:
        """A stream was refused at ingress before it existed."""

    def shared_fallback(self, limit: str, n: int = 1) -> None:
        """``n`` decisions of ``limit`` (conventions.SHARED_LIMITS) were taken on local limits
        because the shared store was unavailable; ``n=0`` creates the series at zero."""

    def loop_lag(self, source: str, ms: float) -> None:
        """One lag sample of this process (conventions.LAG_SOURCES), in milliseconds."""


_METHODS = (
    "started",
    "attempt_started",
    "attempt_ended",
    "first_token",
    "first_token_timeout",
    "content",
    "checkpoint",
    "timeout",
    "retry",
    "resume",
    "recovery",
    "budget_exhausted",
    "client_slow",
    "reassembly_error",
    "response_id",
    "ended",
)

# Errors already logged with a traceback, by (sink type, method): one traceback each, then
# debug lines, so a broken exporter cannot flood the logs of a busy service.
_reported: set[tuple[str, str]] = set()


def report_telemetry_error(where: str, method: str) -> None:
    """Log the exception being handled as a swallowed telemetry failure."""
    key = (where, method)
    if key in _reported:
        log.debug("telemetry error in %s.%s (swallowed)", where, method, exc_info=True)
    else:
        _reported.add(key)
        log.exception("telemetry error in %s.%s; the stream continues", where, method)


def _fan(name: str) -> Callable[..., None]:
    def call(self: Fanout, *args: Any) -> None:
        for obs in self._observers:
            try:
                getattr(obs, name)(*args)
            except Exception:
                report_telemetry_error(type(obs).__name__, name)

    call.__name__ = name
    return call


class Fanout:
    """One :class:`StreamObserver` that forwards to several, swallowing (and logging) errors."""

    __slots__ = ("_observers",)

    def __init__(self, observers: Sequence[StreamObserver]) -> None:
        self._observers = tuple(observers)

    for _name in _METHODS:
        locals()[_name] = _fan(_name)
    del _name


class ErrorRateWindow:
    """Errors / streams over the last ``window`` seconds, in O(1) memory.

    A fixed ring of ``window / step`` buckets (30 x 10 s by default); each bucket remembers the
    step it belongs to, so stale buckets are ignored (and reused) without a sweep. The rate is
    therefore exact to one step's granularity. Thread-safe.
    """

    __slots__ = ("_epochs", "_errors", "_lock", "_n", "_streams", "step")

    def __init__(self, window: float = 300.0, step: float = 10.0) -> None:
        self._n = max(1, round(window / step))
        self.step = step
        self._epochs = [-1] * self._n
        self._errors = [0] * self._n
        self._streams = [0] * self._n
        self._lock = threading.Lock()

    def record(self, t: float, error: bool) -> None:
        """Count one finished stream at time ``t`` (an error when ``error``)."""
        epoch = int(t // self.step)
        i = epoch % self._n
        with self._lock:
            if self._epochs[i] != epoch:
                self._epochs[i] = epoch
                self._errors[i] = 0
                self._streams[i] = 0
            self._streams[i] += 1
            if error:
                self._errors[i] += 1

    def rate(self, t: float) -> float:
        """The error ratio over the window ending at ``t`` (0.0 with no streams)."""
        now = int(t // self.step)
        oldest = now - self._n + 1
        errors = streams = 0
        with self._lock:
            for i in range(self._n):
                if oldest <= self._epochs[i] <= now:
                    errors += self._errors[i]
                    streams += self._streams[i]
        return errors / streams if streams else 0.0


class CapacitySource(Protocol):
    """What admits streams (an :class:`~..policy.ingress.IngressGuard`): its cap."""

    max_concurrent: int


class CapacityTracker:
    """The ingress capacity of this process per service: the caps of the distinct live
    guards of its monitors, added up (``stream_ingress_max_concurrent``).

    Two monitors with their own guards admit twice the streams; two sharing one guard admit
    its cap once. Guards are held weakly: a guard that is garbage collected (with its
    monitors) stops counting, and ``on_change(service)`` is called so a sink that stores the
    value (prometheus_client's multiprocess files) can write the new total. Thread-safe.
    """

    __slots__ = ("__weakref__", "_lock", "_on_change", "_sources")

    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, weakref.WeakSet[Any]] = {}
        self._on_change = on_change

    def add(self, service: str, source: CapacitySource) -> bool:
        """Count ``source``'s cap under ``service``; False when it was already counted."""
        with self._lock:
            sources = self._sources.setdefault(service, weakref.WeakSet())
            if source in sources:
                return False
            sources.add(source)
        if self._on_change is not None:
            # The tracker is held weakly too: a finalizer must not keep a sink alive.
            ref = weakref.ref(self)
            # Not at interpreter exit: a worker's last value stays in its file until
            # mark_process_dead, as its stream_in_flight does.
            weakref.finalize(source, _capacity_changed, ref, service).atexit = False
            self._changed(service)
        return True

    def total(self, service: str) -> int:
        """The summed caps of ``service``'s live guards (0 when none)."""
        with self._lock:
            sources = self._sources.get(service)
            return sum(int(s.max_concurrent) for s in sources) if sources else 0

    def services(self) -> list[str]:
        """Every service a guard was ever counted for."""
        with self._lock:
            return list(self._sources)

    def _changed(self, service: str) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(service)
        except Exception:
            report_telemetry_error(type(self).__name__, "on_change")


def _capacity_changed(ref: weakref.ref[CapacityTracker], service: str) -> None:
    tracker = ref()
    if tracker is not None:
        tracker._changed(service)
