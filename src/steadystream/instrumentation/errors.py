"""Typed stream errors.

Every error the wrapper raises to a consumer derives from :class:`StreamError` and carries
``retryable`` (may the caller try again?) and ``checkpoint`` (what was delivered, exactly, before
the failure), so a caller can resume without losing or duplicating content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .core.checkpoint import Checkpoint

__all__ = [
    "ClientTooSlow",
    "EventTooLarge",
    "FirstTokenTimeout",
    "IdleTimeout",
    "IngressRejected",
    "LagTimeout",
    "ResumeFailed",
    "RetryBudgetExhausted",
    "StreamError",
    "StreamTimeout",
    "TotalTimeout",
    "UpstreamError",
]


class StreamError(Exception):
    """Base class of every error steadystream raises into a stream.

    ``retryable`` tells the caller whether trying again can help; ``checkpoint`` is the last
    :class:`~steadystream.Checkpoint` (``None`` when nothing was delivered).
    """

    retryable: bool = False
    #: Value of ``stream_errors_total{error_class}`` for this error.
    error_class: ClassVar[str] = "other"

    def __init__(
        self,
        message: str = "",
        *,
        checkpoint: Checkpoint | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message or self.__class__.__name__)
        self.checkpoint = checkpoint
        if retryable is not None:
            self.retryable = retryable


class ClientTooSlow(StreamError):
    """The consumer fell behind the per-stream buffer cap; resume from ``checkpoint``."""

    retryable = True
    error_class = "client_too_slow"


class EventTooLarge(StreamError):
    """An SSE line or event of a byte body passed ``stream.max_event_bytes``.

    The events completed before it were delivered; the stream then ends with this error (the
    upstream would send the same event again, so it is not retryable). Counted in
    ``stream_errors_total{error_class="event_too_large"}`` and
    ``stream_reassembly_errors_total{kind="sse"}``.
    """

    retryable = False
    error_class = "event_too_large"


class StreamTimeout(StreamError):
    """A timeout budget from the spec ran out."""

    retryable = True
    phase: ClassVar[str] = "total"


class FirstTokenTimeout(StreamTimeout):
    """No content arrived within ``timeouts.first_token``."""

    error_class = "first_token_timeout"
    phase = "first_token"


class IdleTimeout(StreamTimeout):
    """No content arrived for ``timeouts.stream_idle`` (keep-alives do not count)."""

    error_class = "idle_timeout"
    phase = "idle"


class TotalTimeout(StreamTimeout):
    """The whole logical stream exceeded ``timeouts.total``."""

    retryable = False
    error_class = "total_timeout"
    phase = "total"


class LagTimeout(StreamTimeout):
    """A first-token or idle deadline ran out while this process itself was lagging: its event
    loop (or, for sync streams, its watchdog) kept running late through the grace it was given
    (see ``stream.ingress.overload``). The upstream is not to blame, so the monitor does not
    retry it into the retry budget; the caller may retry it elsewhere or later. ``phase`` is the
    deadline that ran out (``first_token`` or ``idle``); ``lag`` the lag measured, in seconds.
    Counted in ``stream_errors_total{error_class="process_lag"}``, never as a first-token or
    idle timeout."""

    retryable = True
    error_class = "process_lag"

    def __init__(
        self,
        message: str = "",
        *,
        phase: str,
        lag: float,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        super().__init__(message, checkpoint=checkpoint)
        self.phase = phase  # type: ignore[misc]
        self.lag = lag


class RetryBudgetExhausted(StreamError):
    """A retry was needed but the monitor's shared retry budget is spent (retry-storm guard)."""

    retryable = False
    error_class = "retry_budget_exhausted"

    def __init__(
        self,
        message: str = "",
        *,
        checkpoint: Checkpoint | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, checkpoint=checkpoint)
        self.cause = cause


class ResumeFailed(StreamError):
    """A resume could not continue the stream exactly (diverging replay, no resumable source)."""

    retryable = False
    error_class = "resume_failed"


class IngressRejected(StreamError):
    """The monitor refused a new stream: too many concurrent streams, over the rate limit, or
    no slot within the admission queue, or this process lags (``reason``: ``concurrency``,
    ``rate``, ``queue_full``, ``queue_timeout``, ``overloaded``). ``retry_after``: seconds after
    which trying again may succeed, when the guard can tell (an overloaded process)."""

    retryable = True
    error_class = "rejected"

    def __init__(self, message: str = "", *, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class UpstreamError(StreamError):
    """The upstream failed: an HTTP status, an ``error`` event, ``response.failed``, or a
    dropped connection (``status`` is ``None`` for the last)."""

    error_class = "other"

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        error_class: str | None = None,
        checkpoint: Checkpoint | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, checkpoint=checkpoint, retryable=retryable)
        self.status = status
        self.retry_after = retry_after
        if error_class is not None:
            self.error_class = error_class  # type: ignore[misc]
