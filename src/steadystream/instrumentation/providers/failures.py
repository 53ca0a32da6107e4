"""The one exception classifier: what an exception out of an upstream or its HTTP client means.

Both the passive path (the core labels a failed stream's ``stream_errors_total{error_class}``)
and the retry policy (:mod:`..policy.retry` decides whether to try again, under which
``stream_retry_total{reason}``) read exceptions here, so the two can never disagree.

Recognised by duck typing, so neither ``openai`` nor ``httpx`` / ``httpx2`` / ``httpcore`` is
imported:

* an HTTP status: ``status_code`` (the openai SDK's ``APIStatusError``) or
  ``response.status_code`` (httpx's ``HTTPStatusError``): 429 is ``rate_limited``, 5xx
  ``upstream_5xx``, other 4xx ``upstream_4xx``; 408, 429, 500/502/503/504 and 529 (Anthropic's
  "overloaded") are transient;
* an error raised on a *successful* response (a status below 400) whose ``body`` a wire format
  reads as an in-band error: the anthropic SDK raises an ``error`` event that arrives inside a
  200 stream this way, and the openai SDK raises an ``{"error": {...}}`` chunk as an
  ``APIError`` with no status and the inner object as its body. It keeps the format's class
  (``upstream_error_event``) and is transient when the status the format says it stands for
  is (``overloaded_error``: 529; Chat Completions' ``server_error``: 500);
* a connect timeout (httpx's ``ConnectTimeout``, also when the openai SDK raised its
  ``APITimeoutError`` from one): ``connect_timeout``, transient. These are the spec's ``dial``
  / ``tls_handshake`` budgets running out inside the client. Which of the two ran out
  (``stream_timeouts_total{phase}``) is :func:`connect_timeout_phase`: the clients the package
  builds mark the timeout they raise with its step (:data:`CONNECT_PHASE_ATTR`, set by
  :mod:`..policy._httpx2`); an unmarked one (a client built some other way, with one connect
  budget for both steps) counts as ``dial``;
* other transport failures and timeouts (httpx's ``NetworkError`` and ``TimeoutException``
  families, ``RemoteProtocolError``, ``ProxyError``, the SDK's ``APIConnectionError``,
  ``http.client.IncompleteRead``, ``ConnectionError`` / ``TimeoutError`` / ``EOFError``):
  ``network``, transient.

Gemini (``google-genai``): its ``APIError`` (``ClientError`` 4xx, ``ServerError`` 5xx) carries
the status as ``code``, the error JSON as ``details`` and the HTTP response (httpx / httpx2) as
``response``, so an HTTP error reads like any other status. Two things are its own:

* an ``{"error": {...}}`` chunk inside a 200 stream is raised as an ``APIError`` whose
  ``response`` is the 200 stream's: it is an in-band error (``upstream_error_event``),
  transient when its ``code`` is (a ``503`` ``UNAVAILABLE`` chunk is retried as ``5xx``);
* Google sends a retry hint in the body, not in a header: a ``google.rpc.RetryInfo`` detail's
  ``retryDelay`` (``"1.5s"``). When the response has no ``retry-after`` header of its own, the
  hint is handed on as ``retry-after-ms`` in the failure's ``headers``, the one form the retry
  policy reads.

``PoolTimeout`` (httpx: no pooled connection became free within the ``pool`` timeout) is
``network``, not ``connect_timeout``: nothing was dialled. The client's own connection pool was
saturated, so counting it as a dial timeout (``stream_timeouts_total{phase="dial"}``) would send
the on-call engineer to the network or the upstream when the cause is local concurrency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ... import conventions as c
from ..errors import StreamError
from .base import ERROR
from .registry import read_item

__all__ = [
    "CONNECT_PHASE_ATTR",
    "RETRYABLE_STATUSES",
    "Failure",
    "classify_failure",
    "connect_timeout_phase",
    "error_class",
    "error_class_for_status",
    "is_connect_timeout",
    "reason_for_status",
    "status_and_headers",
]

#: HTTP statuses retried without a hint from the server.
RETRYABLE_STATUSES: Final[frozenset[int]] = frozenset({408, 429, 500, 502, 503, 504, 529})

# Exception class names (anywhere in the MRO) that mean "the network let us down", for httpx,
# httpx2, httpcore and the openai SDK, matched by name so none of them is imported here.
_NETWORK_NAMES: Final = frozenset(
    {
        "NetworkError",  # httpx: ConnectError, ReadError, WriteError, CloseError
        "TimeoutException",  # httpx: Connect/Read/Write/PoolTimeout
        "RemoteProtocolError",  # the peer closed mid-body or sent garbage framing
        "ProxyError",
        "APIConnectionError",  # openai (APITimeoutError derives from it)
        "IncompleteRead",  # http.client
    }
)
_CONNECT_TIMEOUT_NAMES: Final = frozenset({"ConnectTimeout"})
#: The attribute of a connect timeout naming the step that ran out (``dial`` or ``tls``).
CONNECT_PHASE_ATTR: Final = "steadystream_connect_phase"
_CONNECT_PHASES: Final = frozenset({c.TIMEOUT_DIAL, c.TIMEOUT_TLS})


@dataclass(frozen=True, slots=True)
class Failure:
    """What a foreign exception is: its ``stream_errors_total{error_class}``, the
    ``stream_retry_total{reason}`` when it is transient (``None``: retrying cannot help), and
    the HTTP status and response headers when there was a response."""

    error_class: str
    reason: str | None
    status: int | None = None
    headers: Mapping[str, str] | None = None


def reason_for_status(status: int) -> str | None:
    """``stream_retry_total{reason}`` label for a retryable status, ``None`` for the rest."""
    if status == 429:
        return c.RETRY_REASON_429
    if status == 408:
        return c.RETRY_REASON_408
    if status in RETRYABLE_STATUSES:
        return c.RETRY_REASON_5XX
    return None


def error_class_for_status(status: int) -> str:
    """``stream_errors_total{error_class}`` for an HTTP status that ended a stream."""
    if status == 429:
        return c.ERROR_CLASS_RATE_LIMITED
    if status >= 500:
        return c.ERROR_CLASS_UPSTREAM_5XX
    if 400 <= status < 500:
        return c.ERROR_CLASS_UPSTREAM_4XX
    return c.ERROR_CLASS_OTHER


def status_and_headers(exc: BaseException) -> tuple[int | None, Mapping[str, str] | None]:
    """HTTP status and response headers of an SDK or HTTP-client error, by duck typing.

    openai's ``APIStatusError`` has ``.status_code`` and ``.response.headers``; httpx's and
    httpx2's ``HTTPStatusError`` have only ``.response``. Connection errors have neither.
    """
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        status = getattr(response, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        return None, None
    headers = getattr(response, "headers", None)
    return status, headers if headers is not None else None


def is_connect_timeout(exc: BaseException) -> bool:
    """True when ``exc`` is, or was raised from, a connect timeout (httpx's ``ConnectTimeout``;
    the openai SDK wraps it in ``APITimeoutError``)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:  # a cause chain is short; never loop forever
        if _names(current) & _CONNECT_TIMEOUT_NAMES:
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def connect_timeout_phase(exc: BaseException) -> str:
    """``dial`` or ``tls``: the step of a connect timeout (see :func:`is_connect_timeout`)
    that ran out, read from the mark on ``exc`` or on an exception it was raised from;
    ``dial`` when none is marked."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        phase = getattr(current, CONNECT_PHASE_ATTR, None)
        if phase in _CONNECT_PHASES:
            return phase  # type: ignore[no-any-return]
        current = current.__cause__ or current.__context__
        seen += 1
    return c.TIMEOUT_DIAL


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def classify_failure(exc: BaseException) -> Failure:
    """Read a foreign exception (anything but steadystream's own :class:`StreamError`, which
    carries its class): see the module docstring."""
    status, headers = status_and_headers(exc)
    google = _google_details(exc)
    if google is not None:
        return _google_failure(exc, status, headers, google)
    if status is not None and status < 400:
        in_band = _in_band_error(exc)
        if in_band is not None:
            return in_band
    if status is not None:
        return Failure(error_class_for_status(status), reason_for_status(status), status, headers)
    if "APIError" in _names(exc):
        # The openai SDK raises an ``{"error": {...}}`` chunk of a 200 stream as a bare
        # ``APIError`` whose body is the inner object: the wire format reads it in its
        # envelope.
        body = getattr(exc, "body", None)
        in_band = _in_band_error(exc, {"error": body}) if isinstance(body, dict) else None
        if in_band is not None:
            return in_band
    if is_connect_timeout(exc):
        return Failure(c.ERROR_CLASS_CONNECT_TIMEOUT, c.RETRY_REASON_NETWORK)
    if _names(exc) & _NETWORK_NAMES or isinstance(exc, ConnectionError | TimeoutError | EOFError):
        return Failure(c.ERROR_CLASS_NETWORK, c.RETRY_REASON_NETWORK)
    return Failure(c.ERROR_CLASS_OTHER, None)


def _in_band_error(exc: BaseException, body: Any = None) -> Failure | None:
    """The in-band error a wire format reads in ``body`` (default: the exception's)."""
    if body is None:
        body = getattr(exc, "body", None)
    if not isinstance(body, dict):
        return None
    reading = read_item(body)
    if reading.kind != ERROR or reading.error_class is None:
        return None
    reason = reason_for_status(reading.status) if reading.status is not None else None
    return Failure(reading.error_class, reason)


# ------------------------------------------------------------------- Gemini (google-genai)

_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"


def _google_details(exc: BaseException) -> dict[str, Any] | None:
    """The error JSON of a google-genai ``APIError`` (an int ``code`` and a ``details`` dict),
    else ``None``. openai's ``APIError`` has no ``details`` and a string ``code``."""
    if "APIError" not in _names(exc):
        return None
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(details, dict):
        return None
    return details


def _google_failure(
    exc: BaseException,
    status: int | None,
    headers: Mapping[str, str] | None,
    details: dict[str, Any],
) -> Failure:
    code: int = exc.code  # type: ignore[attr-defined]
    if status is not None and status < 400:
        # An error chunk inside a 200 stream: in band, transient when its code is.
        reading = read_item(details)
        if reading.kind == ERROR and reading.error_class is not None:
            return Failure(reading.error_class, reason_for_status(code))
        return Failure(c.ERROR_CLASS_UPSTREAM_EVENT, reason_for_status(code))
    if status is None:
        status = code  # an APIError built without a response
    delay = _retry_info_delay(details)
    if delay is not None and not _has_retry_after(headers):
        headers = {**(dict(headers) if headers is not None else {}), "retry-after-ms": delay}
    return Failure(error_class_for_status(status), reason_for_status(status), status, headers)


def _has_retry_after(headers: Mapping[str, str] | None) -> bool:
    if headers is None:
        return False
    try:
        return any(
            isinstance(k, str) and k.lower() in ("retry-after", "retry-after-ms") for k in headers
        )
    except Exception:
        return False


def _retry_info_delay(details: dict[str, Any]) -> str | None:
    """``retryDelay`` of a ``google.rpc.RetryInfo`` detail, in milliseconds (as text)."""
    err = details.get("error")
    items = err.get("details") if isinstance(err, dict) else None
    if not isinstance(items, list):
        return None
    for item in items:
        if not isinstance(item, dict) or item.get("@type") != _RETRY_INFO:
            continue
        raw = item.get("retryDelay")
        if not isinstance(raw, str) or not raw.endswith("s"):
            return None
        try:
            seconds = float(raw[:-1])
        except ValueError:
            return None
        if seconds != seconds or seconds < 0:  # NaN or negative: no usable hint
            return None
        return str(seconds * 1000.0)
    return None


def error_class(exc: BaseException) -> str:
    """The ``stream_errors_total{error_class}`` label for ``exc``: a steadystream error's own
    class (an :class:`~steadystream.UpstreamError` of no particular class by its status), or
    :func:`classify_failure`'s."""
    if isinstance(exc, StreamError):
        status: Any = getattr(exc, "status", None)
        if exc.error_class == c.ERROR_CLASS_OTHER and isinstance(status, int):
            return error_class_for_status(status)
        return exc.error_class
    return classify_failure(exc).error_class
