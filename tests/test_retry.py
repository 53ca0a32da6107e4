"""Retry classification and backoff (pure: no clock, no network)."""

from __future__ import annotations

import email.utils
import math
import random

import httpx
import httpx2
import openai
import pytest

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.policy.retry import (
    Backoff,
    classify,
    parse_retry_after,
    parse_should_retry,
)

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/responses")


def _status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    response = httpx2.Response(status, headers=headers or {}, request=REQUEST)
    return openai.APIStatusError(f"HTTP {status}", response=response, body=None)


@pytest.mark.parametrize(
    ("status", "reason", "error_class"),
    [
        (429, c.RETRY_REASON_429, c.ERROR_CLASS_RATE_LIMITED),
        (408, c.RETRY_REASON_408, c.ERROR_CLASS_UPSTREAM_4XX),
        (500, c.RETRY_REASON_5XX, c.ERROR_CLASS_UPSTREAM_5XX),
        (502, c.RETRY_REASON_5XX, c.ERROR_CLASS_UPSTREAM_5XX),
        (503, c.RETRY_REASON_5XX, c.ERROR_CLASS_UPSTREAM_5XX),
        (504, c.RETRY_REASON_5XX, c.ERROR_CLASS_UPSTREAM_5XX),
    ],
)
def test_transient_statuses_are_retried(status: int, reason: str, error_class: str) -> None:
    """429, 408 and the short-lived 5xx are retried under their reason label."""
    verdict = classify(_status_error(status))
    assert verdict.retry is True
    assert verdict.reason == reason
    assert verdict.error_class == error_class
    assert verdict.status == status
    assert reason in c.RETRY_REASONS


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_client_errors_are_never_retried(status: int) -> None:
    """Other 4xx mean the request is wrong; repeating it only adds load."""
    verdict = classify(_status_error(status))
    assert verdict.retry is False
    assert verdict.reason is None
    assert verdict.error_class == c.ERROR_CLASS_UPSTREAM_4XX


def test_x_should_retry_true_never_promotes_a_4xx() -> None:
    """x-should-retry: true admits odd 5xx such as 501 but never a client error."""
    assert classify(_status_error(501, {"x-should-retry": "true"})).retry is True
    assert classify(_status_error(501)).retry is False
    assert classify(_status_error(400, {"x-should-retry": "true"})).retry is False


def test_x_should_retry_false_vetoes() -> None:
    """x-should-retry: false turns a retryable 503 into a final error."""
    verdict = classify(_status_error(503, {"x-should-retry": "false"}))
    assert verdict.retry is False
    assert verdict.reason == c.RETRY_REASON_5XX
    assert verdict.error_class == c.ERROR_CLASS_UPSTREAM_5XX


def test_retry_after_is_carried_and_capped() -> None:
    """A Retry-After within the cap is carried; one past the cap fails the attempt."""
    ok = classify(_status_error(429, {"retry-after": "2"}), retry_after_cap=5.0)
    assert ok.retry is True and ok.retry_after == 2.0
    too_long = classify(_status_error(429, {"retry-after": "60"}), retry_after_cap=5.0)
    assert too_long.retry is False and too_long.retry_after == 60.0


def test_retry_after_forms() -> None:
    """retry-after-ms wins, then seconds, then an HTTP date relative to the given now."""
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "1.5"}) == 1.5
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == 7.0
    past = email.utils.formatdate(now - 100, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0
    assert parse_retry_after({"retry-after": date}) is None  # no clock given: no guess
    assert parse_retry_after({"retry-after": "soon"}, now=now) is None
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({"retry-after": "inf"}) == math.inf
    assert parse_retry_after(None) is None
    assert parse_retry_after(httpx2.Headers({"Retry-After-Ms": "10"})) == 0.01


def test_should_retry_header_values() -> None:
    """x-should-retry is read case-insensitively; anything but true/false is no opinion."""
    assert parse_should_retry({"X-Should-Retry": "TRUE"}) is True
    assert parse_should_retry({"x-should-retry": "false"}) is False
    assert parse_should_retry({"x-should-retry": "maybe"}) is None
    assert parse_should_retry({}) is None


def test_sdk_connection_errors_are_network() -> None:
    """openai's APIConnectionError and APITimeoutError are transient network failures."""
    for exc in (openai.APIConnectionError(request=REQUEST), openai.APITimeoutError(REQUEST)):
        verdict = classify(exc)
        assert verdict.retry is True
        assert verdict.reason == c.RETRY_REASON_NETWORK
        assert verdict.error_class == c.ERROR_CLASS_NETWORK


@pytest.mark.parametrize("module", [httpx, httpx2])
def test_http_client_errors_by_duck_typing(module: object) -> None:
    """httpx and httpx2 transport errors and status errors classify without imports."""
    request = module.Request("GET", "http://127.0.0.1/")  # type: ignore[attr-defined]
    read = module.ReadError("reset", request=request)  # type: ignore[attr-defined]
    assert classify(read).reason == c.RETRY_REASON_NETWORK
    proto = module.RemoteProtocolError("peer closed", request=request)  # type: ignore[attr-defined]
    assert classify(proto).retry is True
    connect = module.ConnectTimeout("slow", request=request)  # type: ignore[attr-defined]
    verdict = classify(connect)
    assert verdict.retry is True and verdict.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT
    response = module.Response(503, headers={"retry-after": "1"}, request=request)  # type: ignore[attr-defined]
    status = module.HTTPStatusError("503", request=request, response=response)  # type: ignore[attr-defined]
    verdict = classify(status)
    assert verdict.retry is True and verdict.retry_after == 1.0 and verdict.status == 503
    bad_url = module.UnsupportedProtocol("ftp", request=request)  # type: ignore[attr-defined]
    assert classify(bad_url).retry is False


def test_sdk_timeout_caused_by_a_connect_timeout() -> None:
    """openai's APITimeoutError raised from httpx2.ConnectTimeout is a connect timeout."""
    try:
        try:
            raise httpx2.ConnectTimeout("dial", request=REQUEST)
        except httpx2.ConnectTimeout as inner:
            raise openai.APITimeoutError(REQUEST) from inner
    except openai.APITimeoutError as exc:
        verdict = classify(exc)
    assert verdict.retry is True and verdict.reason == c.RETRY_REASON_NETWORK
    assert verdict.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT
    assert classify(openai.APITimeoutError(REQUEST)).error_class == c.ERROR_CLASS_NETWORK


def test_plain_os_errors() -> None:
    """Connection resets are network errors; a ValueError is a bug, not a retry."""
    assert classify(ConnectionResetError()).retry is True
    assert classify(ValueError("bad")).retry is False
    assert classify(ValueError("bad")).error_class == c.ERROR_CLASS_OTHER


def test_timeouts() -> None:
    """First-token and idle timeouts retry under their own labels; the total timeout never."""
    first = classify(ss.FirstTokenTimeout())
    assert (first.retry, first.reason) == (True, c.RETRY_REASON_FIRST_TOKEN_TIMEOUT)
    idle = classify(ss.IdleTimeout())
    assert (idle.retry, idle.reason) == (True, c.RETRY_REASON_IDLE_TIMEOUT)
    total = classify(ss.TotalTimeout())
    assert (total.retry, total.error_class) == (False, c.ERROR_CLASS_TOTAL_TIMEOUT)


def test_upstream_errors() -> None:
    """UpstreamError classifies by status, or by its own flag when it has none."""
    assert classify(ss.UpstreamError(status=503)).reason == c.RETRY_REASON_5XX
    assert classify(ss.UpstreamError(status=400)).retry is False
    dropped = classify(ss.UpstreamError("dropped", retryable=True))
    assert (dropped.retry, dropped.reason, dropped.error_class) == (
        True,
        c.RETRY_REASON_NETWORK,
        c.ERROR_CLASS_NETWORK,
    )
    failed = classify(ss.UpstreamError("failed", error_class=c.ERROR_CLASS_RESPONSE_FAILED))
    assert (failed.retry, failed.error_class) == (False, c.ERROR_CLASS_RESPONSE_FAILED)
    event = ss.UpstreamError("overloaded", error_class=c.ERROR_CLASS_UPSTREAM_EVENT, retryable=True)
    assert classify(event).reason == c.RETRY_REASON_5XX


def test_own_load_shedding_is_not_retried() -> None:
    """An ingress rejection or an exhausted budget is final inside the monitor."""
    assert classify(ss.IngressRejected(reason=c.REJECT_RATE)).retry is False
    assert classify(ss.RetryBudgetExhausted()).retry is False


def test_no_retry_after_content_unless_resumable() -> None:
    """After content, a retry would re-generate text, unless the stream resumes exactly."""
    exc = _status_error(503)
    blocked = classify(exc, delivered=True, resumable=False)
    assert blocked.retry is False and blocked.reason == c.RETRY_REASON_5XX
    assert "delivered" in blocked.why
    assert classify(exc, delivered=True, resumable=True).retry is True


def test_backoff_is_exponential_capped_and_jittered() -> None:
    """Delays double from the base, stop at the cap and stay within the jitter band."""
    no_jitter = Backoff(base=0.3, cap=5.0, jitter=0.0)
    assert [no_jitter.delay(n) for n in range(6)] == pytest.approx([0.3, 0.6, 1.2, 2.4, 4.8, 5.0])
    assert no_jitter.delay(10_000) == 5.0
    rng = random.Random(3)
    jittered = Backoff(base=0.3, cap=5.0, jitter=0.25, rng=rng.random)
    samples = [jittered.delay(1) for _ in range(500)]
    assert min(samples) >= 0.6 * 0.75 and max(samples) <= 0.6 * 1.25
    assert max(samples) - min(samples) > 0.2  # really spread, not constant
    assert Backoff(base=0.3, cap=5.0, jitter=0.0, rng=lambda: 0.0).delay(1) == pytest.approx(0.6)
    assert Backoff(base=0.3, cap=5.0, jitter=0.25, rng=lambda: 0.0).delay(1) == pytest.approx(0.45)


def test_backoff_honours_retry_after_with_cap() -> None:
    """A server-requested delay replaces the computed one, clamped to the cap."""
    backoff = Backoff(base=0.3, cap=5.0, jitter=0.25, retry_after_cap=10.0, rng=lambda: 0.9)
    assert backoff.delay(0, retry_after=2.0) == 2.0
    assert backoff.delay(0, retry_after=50.0) == 10.0


def test_backoff_from_spec() -> None:
    """The spec's retry section configures the backoff."""
    spec = ss.default_spec("svc")
    backoff = Backoff.from_spec(spec.stream.retry, rng=lambda: 0.5)
    assert (backoff.base, backoff.cap, backoff.jitter) == (0.3, 5.0, 0.25)
    assert backoff.delay(0) == pytest.approx(0.3)


def test_resilience_modules_import_no_http_or_llm_client() -> None:
    """Duck typing all the way: the resilience modules load neither openai nor httpx(2)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from steadystream.instrumentation import active, openai\n"
        "from steadystream.instrumentation.policy import budget, ingress, relay, resume, retry\n"
        "print(sorted(m for m in ('openai', 'httpx', 'httpx2') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
