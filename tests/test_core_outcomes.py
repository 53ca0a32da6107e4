"""Outcome of a logical stream stopped while the active mode waits to retry a failed attempt."""

from __future__ import annotations

from steadystream import conventions as c
from steadystream.instrumentation.core.machine import CorePolicy, StreamCore
from steadystream.instrumentation.errors import UpstreamError
from telemetry_support import Recorder

POLICY = CorePolicy(first_token=3.0, idle=8.0, total=45.0, checkpoint_every=2)


def failed_then_retrying() -> tuple[StreamCore, Recorder]:
    rec = Recorder()
    core = StreamCore(POLICY, rec)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    core.on_wait(0.0)
    core.on_error(UpstreamError("503", status=503, error_class=c.ERROR_CLASS_UPSTREAM_5XX), 0.1)
    core.record_retry(c.RETRY_REASON_5XX, 0.1)
    return core, rec


def test_stopped_during_backoff_is_abandoned() -> None:
    """A consumer that stops while a retry is pending abandoned the stream; the retried
    attempt's error does not make it an error."""
    core, rec = failed_then_retrying()
    core.close(0.2, abandoned=True)
    assert [(args[0], args[1]) for args in rec.named("ended")] == [(c.OUTCOME_ABANDONED, None)]


def test_retried_attempt_then_success_is_ok() -> None:
    """A failure that a retry recovered leaves the stream ok."""
    core, rec = failed_then_retrying()
    core.begin_attempt(0.5)
    core.on_wait(0.5)
    core.on_item({"type": "response.output_text.delta", "delta": "hi"}, 0.6)
    core.on_item({"type": "response.completed", "response": {"id": "r"}}, 0.7)
    core.close(0.7)
    assert [(args[0], args[1]) for args in rec.named("ended")] == [(c.OUTCOME_OK, None)]


def test_refused_retry_keeps_the_root_cause() -> None:
    """When no retry follows (budget spent), the attempt's failure is the stream's error class."""
    rec = Recorder()
    core = StreamCore(POLICY, rec)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    core.on_wait(0.0)
    exc = UpstreamError("503", status=503, error_class=c.ERROR_CLASS_UPSTREAM_5XX)
    core.on_error(exc, 0.1)
    core.record_budget_exhausted(0.1)
    core.close(0.1, error=exc)
    assert [(args[0], args[1]) for args in rec.named("ended")] == [
        (c.OUTCOME_ERROR, c.ERROR_CLASS_UPSTREAM_5XX)
    ]
