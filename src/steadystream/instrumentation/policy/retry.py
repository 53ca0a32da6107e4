"""Which failures to retry, and how long to wait first.

Two pure pieces, both free of I/O and of any clock or random source they are not handed:

* :func:`classify` looks at an exception and says whether a retry can help, under which
  ``stream_retry_total{reason}`` label, with which ``stream_errors_total{error_class}`` should it
  end the stream, and what delay the server asked for. steadystream's own typed errors know what
  they are; every other exception (the openai SDK's, httpx and httpx2 errors, plain
  ``OSError``) is read by the provider layer's one classifier
  (:func:`~..providers.failures.classify_failure`), the same one that labels a passive stream's
  error, and this module adds the policy: server hints, caps, content already delivered.
* :class:`Backoff` turns an attempt number (and a server-requested delay) into a sleep:
  exponential from ``spec.stream.retry.base_backoff``, capped by ``max_backoff``, with
  ``jitter`` either side.

The rules follow the baseline for streaming LLM APIs:

* retry transient network errors, 408, 429 and the short-lived 5xx (500, 502, 503, 504), plus the
  first-token and idle timeouts, but not one that ran out while this process itself lagged
  (:class:`~..errors.LagTimeout`: the upstream is not to blame); never any other 4xx (the
  request itself is wrong, and repeating it only adds load);
* ``x-should-retry: false`` vetoes a retry; ``x-should-retry: true`` also admits other 5xx
  (501, 505, ...), but never a 4xx;
* a ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date) longer than
  ``retry.retry_after_cap`` fails the attempt instead of parking a stream for minutes;
* once the consumer has received content, a failure is retried only when the stream can be
  resumed exactly (``resumable=True``); otherwise repeating the request would re-generate text
  behind the consumer's back.

Example::

    backoff = Backoff.from_spec(spec.stream.retry, rng=random.Random(7).random)
    verdict = classify(exc, delivered=False, resumable=False, retry_after_cap=30.0)
    if verdict.retry:
        time.sleep(backoff.delay(attempt, verdict.retry_after))
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import conventions as c
from ..errors import (
    FirstTokenTimeout,
    IdleTimeout,
    IngressRejected,
    LagTimeout,
    StreamError,
    StreamTimeout,
    UpstreamError,
)
from ..providers.failures import classify_failure, error_class_for_status, reason_for_status

if TYPE_CHECKING:
    from ...spec.model import Retry

__all__ = [
    "Backoff",
    "Verdict",
    "classify",
    "lag_caused",
    "parse_retry_after",
    "parse_should_retry",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do about one failed attempt.

    ``retry`` is the decision. ``reason`` is the ``stream_retry_total{reason}`` label when the
    failure is of a retryable kind (set even when ``retry`` is False because content was
    already delivered, so the caller can tell "would retry" from "never retry").
    ``error_class`` labels ``stream_errors_total`` if this failure ends the stream. ``status``
    is the HTTP status when there was one, ``retry_after`` the server-requested delay in
    seconds (already validated against the cap), and ``why`` a short human explanation for
    logs and span events.
    """

    retry: bool
    reason: str | None
    error_class: str
    status: int | None = None
    retry_after: float | None = None
    why: str = ""
    #: Retried without drawing on the retry budget (a failure this process's lag explains).
    free: bool = False


def parse_should_retry(headers: Mapping[str, str] | None) -> bool | None:
    """``x-should-retry``: ``True``/``False`` when the server says, ``None`` when it does not."""
    value = _header(headers, "x-should-retry")
    if value is None:
        return None
    value = value.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """The delay the server asked for, in seconds, or ``None``.

    Prefers ``retry-after-ms`` (OpenAI's millisecond header), then ``retry-after`` as a number
    of seconds, then ``retry-after`` as an HTTP date. ``now`` is the wall-clock time (Unix
    seconds) used for the date form; it is required for that form, so the function never reads
    the clock itself. Negative delays (a date in the past) become 0; unparseable values and
    non-finite numbers are ignored.
    """
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = _header(headers, name)
        if raw is None:
            continue
        try:
            value = float(raw.strip())
        except ValueError:
            continue
        if math.isnan(value):
            continue
        if math.isinf(value):
            # An infinite wait is a refusal; report it as "longer than any cap".
            return math.inf if value > 0 else 0.0
        return max(0.0, value / divisor)
    raw = _header(headers, "retry-after")
    if raw is None or now is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        when = email.utils.mktime_tz(parsed)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, float(when) - now)


def classify(
    exc: BaseException,
    *,
    delivered: bool = False,
    resumable: bool = False,
    retry_after_cap: float = math.inf,
    now: float | None = None,
) -> Verdict:
    """Decide whether ``exc`` is worth another attempt.

    ``delivered`` says the consumer already received content from this logical stream;
    ``resumable`` says the caller can continue it exactly (a Responses ``starting_after``
    re-attach, or an opener whose replay is verified against the checkpoint). ``now`` is the
    wall-clock time for HTTP-date ``retry-after`` values.
    """
    verdict = _classify_kind(exc, retry_after_cap=retry_after_cap, now=now)
    if verdict.retry and delivered and not resumable:
        return Verdict(
            retry=False,
            reason=verdict.reason,
            error_class=verdict.error_class,
            status=verdict.status,
            retry_after=verdict.retry_after,
            why="content was already delivered and the stream cannot be resumed",
        )
    return verdict


def lag_caused(verdict: Verdict, lag: float) -> Verdict:
    """``verdict`` of a failure this process's own lag explains rather than the upstream: a
    connect timeout that fired while the event loop (or watchdog) ran ``lag`` seconds late, the
    connection possibly made and not yet read. It is retried as before (``max_retries`` and the
    total budget still bound it) but without drawing on the retry budget, and if it ends the
    stream it does so as ``process_lag``, not as the upstream's ``connect_timeout``."""
    return Verdict(
        verdict.retry,
        verdict.reason,
        c.ERROR_CLASS_PROCESS_LAG,
        verdict.status,
        verdict.retry_after,
        f"{verdict.why}; this process lagged {lag * 1000:.0f} ms",
        free=verdict.retry,
    )


def _classify_kind(exc: BaseException, *, retry_after_cap: float, now: float | None) -> Verdict:
    # steadystream's own errors first: they already know what they are.
    if isinstance(exc, LagTimeout):
        # This process lagged past its grace: the upstream is not to blame, and a retry from
        # a lagging process would only add load (it sheds new streams at ingress instead).
        return Verdict(False, None, exc.error_class, why="this process was lagging")
    if isinstance(exc, FirstTokenTimeout):
        return Verdict(True, c.RETRY_REASON_FIRST_TOKEN_TIMEOUT, exc.error_class, why="first token")
    if isinstance(exc, IdleTimeout):
        return Verdict(True, c.RETRY_REASON_IDLE_TIMEOUT, exc.error_class, why="stream idle")
    if isinstance(exc, StreamTimeout):
        return Verdict(False, None, exc.error_class, why="the total budget is spent")
    if isinstance(exc, IngressRejected):
        # Our own load shedding: retrying inside the monitor would defeat it.
        return Verdict(False, None, exc.error_class, why="rejected at ingress")
    if isinstance(exc, UpstreamError):
        return _classify_upstream(exc, retry_after_cap=retry_after_cap)
    if isinstance(exc, StreamError):
        return Verdict(False, None, exc.error_class, why=type(exc).__name__)

    failure = classify_failure(exc)
    if failure.status is not None:
        headers = failure.headers
        return _classify_status(
            failure.status,
            should_retry=parse_should_retry(headers),
            retry_after=parse_retry_after(headers, now=now),
            retry_after_cap=retry_after_cap,
        )
    if failure.reason is not None:
        why = "connect" if failure.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT else "network"
        return Verdict(True, failure.reason, failure.error_class, why=why)
    return Verdict(False, None, failure.error_class, why=f"not retryable: {type(exc).__name__}")


def _classify_upstream(exc: UpstreamError, *, retry_after_cap: float) -> Verdict:
    error_class = exc.error_class
    if exc.status is not None:
        verdict = _classify_status(
            exc.status,
            should_retry=None,
            retry_after=exc.retry_after,
            retry_after_cap=retry_after_cap,
        )
        # The status decides (its ``retryable`` flag defaults to False for every UpstreamError,
        # so it cannot carry a refusal); a specific error class from the raiser is kept.
        if exc.error_class != c.ERROR_CLASS_OTHER:
            verdict = _with_error_class(verdict, exc.error_class)
        return verdict
    if error_class == c.ERROR_CLASS_OTHER:
        error_class = c.ERROR_CLASS_NETWORK
    if exc.retryable:
        reason = c.RETRY_REASON_NETWORK
        if error_class == c.ERROR_CLASS_RATE_LIMITED:
            reason = c.RETRY_REASON_429
        elif error_class in (c.ERROR_CLASS_UPSTREAM_5XX, c.ERROR_CLASS_UPSTREAM_EVENT):
            reason = c.RETRY_REASON_5XX
        return Verdict(True, reason, error_class, retry_after=exc.retry_after, why=str(exc))
    return Verdict(False, None, error_class, why=str(exc))


def _classify_status(
    status: int,
    *,
    should_retry: bool | None,
    retry_after: float | None,
    retry_after_cap: float,
) -> Verdict:
    error_class = error_class_for_status(status)
    reason = reason_for_status(status)
    if reason is None and should_retry is True and status >= 500:
        reason = c.RETRY_REASON_5XX
    if reason is None:
        return Verdict(False, None, error_class, status, why=f"HTTP {status} is not retryable")
    verdict = Verdict(True, reason, error_class, status, retry_after, why=f"HTTP {status}")
    if should_retry is False:
        return _no(verdict, "x-should-retry: false")
    if retry_after is not None and retry_after > retry_after_cap:
        return _no(verdict, f"retry-after {retry_after:g}s exceeds the cap {retry_after_cap:g}s")
    return verdict


def _no(verdict: Verdict, why: str) -> Verdict:
    return Verdict(
        False, verdict.reason, verdict.error_class, verdict.status, verdict.retry_after, why
    )


def _with_error_class(verdict: Verdict, error_class: str) -> Verdict:
    return Verdict(
        verdict.retry, verdict.reason, error_class, verdict.status, verdict.retry_after, verdict.why
    )


def _header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except Exception:  # a foreign mapping type that cannot be queried is "no header"
        return None
    if value is None:
        # Plain dicts are case-sensitive; HTTP headers are not.
        lowered = name.lower()
        try:
            for key, candidate in headers.items():
                if isinstance(key, str) and key.lower() == lowered:
                    return str(candidate)
        except Exception:
            return None
        return None
    return str(value)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, and a cap on server-requested delays.

    ``delay(n)`` for the n-th retry (0-based) is ``base * 2**n`` capped at ``cap``, then moved by
    up to ``jitter`` (a fraction) either side, so a crowd of streams that failed together does
    not come back together. A server-requested ``retry_after`` wins over the computed delay (the
    server knows when it will have capacity); it is clamped to ``retry_after_cap``, though
    :func:`classify` already refuses to retry past that cap.
    """

    base: float
    cap: float
    jitter: float
    retry_after_cap: float = 30.0
    rng: Callable[[], float] = random.random

    @classmethod
    def from_spec(cls, retry: Retry, *, rng: Callable[[], float] | None = None) -> Backoff:
        """Backoff from ``spec.stream.retry``; ``rng`` returns floats in [0, 1) (injectable)."""
        return cls(
            base=retry.base_backoff,
            cap=retry.max_backoff,
            jitter=retry.jitter,
            retry_after_cap=retry.retry_after_cap,
            rng=rng if rng is not None else random.random,
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.retry_after_cap)
        exponent = min(max(attempt, 0), 62)  # 2**62 * base overflows nothing and is capped anyway
        raw = min(self.cap, self.base * (2.0**exponent))
        spread = self.jitter * (2.0 * self.rng() - 1.0)
        return max(0.0, min(self.cap, raw * (1.0 + spread)))
