"""chat_stream: retries before content, ResumeFailed after it, with the real openai SDK (sync
and async) against the simulator's POST /v1/chat/completions.

Each attempt's fault is scripted per request by an httpx2 request hook on the client (the
``Script`` of the Anthropic tests: first request, first fault; later requests none), and the
simulator records every request, so a test asserts exactly how many went over the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx2
import openai
import pytest

import steadystream as ss
import telemetry_support
from anthropic_support import delta, sha
from steadystream import conventions as c
from steadystream.instrumentation.openai import chat_stream
from steadystream.simulate import PROFILES, ROUTE_CHAT, Upstream, expected_text
from test_anthropic_resilient import Script, without_gauges

MODEL = "gpt-sim"
TOKENS = 24
MESSAGES = [{"role": "user", "content": "hi"}]
EXPECTED = expected_text("hi", tokens=TOKENS)
MODES = ["sync", "async"]


def make_spec(max_retries: int = 3, **timeouts: str) -> ss.Spec:
    """Generous timeouts (a loaded CI machine never crosses them) unless a test sets short ones
    for the fault it injects; retries with short backoff."""
    t = {"first_token": "20s", "stream_idle": "20s", "total": "60s", **timeouts}
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "timeouts": t,
                "checkpoint": {"every": 4},
                "retry": {
                    "max_retries": max_retries,
                    "base_backoff": "10ms",
                    "max_backoff": "50ms",
                    "budget": "100%",
                    "min_per_second": 10,
                },
            },
        }
    )


class Telemetry(telemetry_support.Telemetry):
    labels: ClassVar[dict[str, str]] = {"service": "svc", "model": MODEL, "provider": "openai"}
    default_spec = staticmethod(make_spec)


@pytest.fixture
def up() -> Iterator[Upstream]:
    with Upstream(record_requests=True) as upstream:
        yield upstream


class Run:
    """One chat_stream run: the chunks the consumer received, and the error it ended with."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.error: BaseException | None = None

    @property
    def text(self) -> str:
        return "".join(ch.choices[0].delta.content or "" for ch in self.chunks if ch.choices)


def run(mode: str, tel: Telemetry, up: Upstream, script: Script | None = None, **kw: Any) -> Run:
    """Stream ``kw`` through chat_stream with a sync or async client, keeping every chunk the
    consumer got before an error (the error is kept, not raised). Without a ``script`` the
    server's profile decides each request's fault."""
    hooks = [] if script is None else [script.hook]
    ahooks = [] if script is None else [script.ahook]
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_completion_tokens": TOKENS, **kw}
    out = Run()
    if mode == "sync":
        http = httpx2.Client(event_hooks={"request": hooks})
        client = openai.OpenAI(base_url=up.base_url, api_key="test", http_client=http)
        try:
            for chunk in chat_stream(tel.monitor, client, **kwargs):
                out.chunks.append(chunk)
        except ss.StreamError as exc:
            out.error = exc
        finally:
            http.close()
        return out

    async def main() -> None:
        async with httpx2.AsyncClient(event_hooks={"request": ahooks}) as http:
            client = openai.AsyncOpenAI(base_url=up.base_url, api_key="test", http_client=http)
            try:
                async for chunk in chat_stream(tel.monitor, client, **kwargs):
                    out.chunks.append(chunk)
            except ss.StreamError as exc:
                out.error = exc

    asyncio.run(main())
    return out


def assert_well_formed(chunks: list[Any], *, usage: bool = False) -> None:
    """One completion's chunks: one opening chunk (the role) first, one closing chunk
    (finish_reason), then the usage chunk when asked for; every chunk with the same id."""
    assert len({ch.id for ch in chunks}) == 1
    roles = [ch.choices[0].delta.role for ch in chunks if ch.choices]
    assert roles[0] == "assistant" and roles.count("assistant") == 1
    finishes = [i for i, ch in enumerate(chunks) if ch.choices and ch.choices[0].finish_reason]
    assert len(finishes) == 1
    if usage:
        assert finishes == [len(chunks) - 2]
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
    else:
        assert finishes == [len(chunks) - 1]


def bodies(up: Upstream) -> list[dict[str, Any]]:
    return [r.json() for r in up.recorded_requests if r.route == ROUTE_CHAT]


def ok_deltas(text: str, **extra: float) -> dict[str, float]:
    """Every metric a healthy stream delivering ``text`` in TOKENS chunks changes, and how."""
    return {
        "stream_bytes_total": len(text.encode()),
        "stream_chunk_gap_ms_count": TOKENS - 1,
        "stream_first_token_latency_ms_count": 1,
        # Every phase but pool: the client was not built by openai_client_options.
        **{f"stream_phase_duration_ms_count,phase={p}": 1 for p in c.PHASES if p != c.PHASE_POOL},
        "stream_requests_total,outcome=ok": 1,
        **extra,
    }


@pytest.mark.parametrize("mode", MODES)
def test_healthy_stream(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    result = run(mode, tel, up)
    assert result.error is None
    assert_well_formed(result.chunks)
    assert sha(result.text) == sha(EXPECTED)
    assert without_gauges(delta(before, tel.snapshot())) == ok_deltas(EXPECTED)
    assert len(tel.stream_spans()) == 1
    (body,) = bodies(up)
    assert body["messages"] == MESSAGES and body["stream"] is True


@pytest.mark.parametrize("mode", MODES)
def test_include_usage_ends_with_the_usage_chunk(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    result = run(mode, tel, up, stream_options={"include_usage": True})
    assert result.error is None
    assert_well_formed(result.chunks, usage=True)
    assert result.chunks[-1].usage.completion_tokens == TOKENS
    assert sha(result.text) == sha(EXPECTED)


RETRIED_BEFORE_CONTENT = [
    ("429, retry_after=100ms", "429"),
    ("500", "5xx"),
    ("503", "5xx"),
    ("529", "5xx"),
    ("408", "408"),
    ("drop_after=0", "network"),  # right after the headers
    ("drop_after=1", "network"),  # after the opening chunk (held back, never delivered)
    ("end_after=1", "network"),  # a clean EOF without finish_reason, before content
    ("keepalive=2@10ms", "network"),  # keep-alives only, then an empty end
    ("error_event=1", "5xx"),  # an in-band server_error chunk (the SDK raises it)
    ("failed=1", "5xx"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "reason"), RETRIED_BEFORE_CONTENT)
def test_retried_before_content(mode: str, fault: str, reason: str, up: Upstream) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    result = run(mode, tel, up, Script(fault))
    assert result.error is None
    assert_well_formed(result.chunks)  # the failed attempt's opening chunk is not repeated
    assert sha(result.text) == sha(EXPECTED)
    d = without_gauges(delta(before, tel.snapshot()))
    retried = {f"stream_retry_total,reason={reason}": 1, "stream_recovery_latency_ms_count": 1}
    assert d == ok_deltas(EXPECTED, **retried)
    assert len(tel.stream_spans()) == 1
    first, second = bodies(up)
    assert first == second  # a plain retry of the same request


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_first_token_is_retried(mode: str, up: Upstream) -> None:
    tel = Telemetry(make_spec(first_token="1s"))
    before = tel.snapshot()
    result = run(mode, tel, up, Script("delay=10s"))
    assert result.error is None
    assert_well_formed(result.chunks)
    assert sha(result.text) == sha(EXPECTED)
    d = delta(before, tel.snapshot())
    assert d["stream_retry_total,reason=first_token_timeout"] == 1
    assert d[f"stream_timeouts_total,phase={c.TIMEOUT_FIRST_TOKEN}"] == 1
    assert d["stream_requests_total,outcome=ok"] == 1
    assert len(bodies(up)) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", ["split=utf8", "split=random", "drip=1ms", "stall=50ms@6"])
def test_byte_level_faults_keep_the_text_exact(mode: str, fault: str, up: Upstream) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    result = run(mode, tel, up, Script(fault))
    assert result.error is None
    assert_well_formed(result.chunks)
    assert sha(result.text) == sha(EXPECTED)
    assert without_gauges(delta(before, tel.snapshot())) == ok_deltas(EXPECTED)
    assert len(bodies(up)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_length_finish_is_a_legitimate_truncated_end(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    result = run(mode, tel, up, Script("incomplete=9"))
    assert result.error is None
    assert_well_formed(result.chunks)
    assert result.chunks[-1].choices[0].finish_reason == "length"
    assert sha(result.text) == sha(expected_text("hi", tokens=8))
    assert tel.value("stream_requests_total", outcome="ok") == 1
    assert len(bodies(up)) == 1


# ------------------------------------------------------------------- a cut after content


CUT_AFTER_CONTENT = [
    # (fault, pieces the consumer got, the failure behind ResumeFailed)
    ("drop_after=8", 7, ss.UpstreamError),  # the opening chunk, 7 deltas, then the cut
    ("end_after=8", 7, ss.UpstreamError),  # EOF without finish_reason
    ("error_event=8", 7, ss.UpstreamError),  # a server_error chunk mid-stream
    ("failed=11", 10, ss.UpstreamError),
]


def assert_resume_failed(result: Run, pieces: int, cause: type, tel: Telemetry) -> None:
    """ResumeFailed with exactly what the consumer received, nothing re-requested."""
    delivered = expected_text("hi", tokens=pieces)
    assert isinstance(result.error, ss.ResumeFailed)
    assert isinstance(result.error.__cause__, cause)
    assert result.text == delivered
    checkpoint = result.error.checkpoint
    assert checkpoint is not None
    assert checkpoint.offset == len(delivered.encode())
    assert checkpoint.sha256 == sha(delivered)
    assert tel.value("stream_resume_failure_total") == 1
    assert tel.value("stream_resume_success_total") == 0
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_RESUME_FAILED) == 1
    assert tel.value("stream_requests_total", outcome="error") == 1
    assert tel.value("stream_bytes_total") == len(delivered.encode())
    assert len(tel.stream_spans()) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "pieces", "cause"), CUT_AFTER_CONTENT)
def test_a_cut_after_content_is_resume_failed(
    mode: str, fault: str, pieces: int, cause: type, up: Upstream
) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    result = run(mode, tel, up, Script(fault))
    assert_resume_failed(result, pieces, cause, tel)
    d = delta(before, tel.snapshot())
    assert not any(k.startswith("stream_retry_total") for k in d)  # no retry was attempted
    assert len(bodies(up)) == 1  # and no second request regenerated text


@pytest.mark.parametrize("mode", MODES)
def test_a_stall_after_content_is_cut_at_idle_and_resume_failed(mode: str, up: Upstream) -> None:
    tel = Telemetry(make_spec(stream_idle="1s"))
    result = run(mode, tel, up, Script("stall=10s@7"))
    assert_resume_failed(result, 6, ss.IdleTimeout, tel)
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_IDLE) == 1
    assert len(bodies(up)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_before_the_usage_chunk_is_resume_failed(mode: str, up: Upstream) -> None:
    """Asked for usage, the stream ends with the usage chunk: a cut right after the closing
    chunk lost it, and the consumer is told (with the whole text in the checkpoint)."""
    tel = Telemetry()
    result = run(
        mode, tel, up, Script(f"end_after={1 + TOKENS + 1}"), stream_options={"include_usage": True}
    )
    assert_resume_failed(result, TOKENS, ss.UpstreamError, tel)
    assert "usage" in str(result.error.__cause__)
    assert result.chunks[-1].choices[0].finish_reason == "stop"


# --------------------------------------------------------------------------- final errors


@pytest.mark.parametrize("mode", MODES)
def test_a_bad_request_is_not_retried(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    result = run(mode, tel, up, Script("400"))
    assert isinstance(result.error, ss.UpstreamError) and result.error.status == 400
    assert result.chunks == []
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_4XX) == 1
    assert len(bodies(up)) == 1
    assert len(tel.stream_spans()) == 1


@pytest.mark.parametrize("mode", MODES)
def test_rate_limits_that_outlast_the_retries_are_a_typed_error(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    result = run(mode, tel, up, Script(*["429, retry_after=20ms"] * 4))
    assert isinstance(result.error, ss.UpstreamError)
    assert result.error.status == 429 and result.error.retry_after == pytest.approx(0.02)
    assert result.chunks == []  # no opening chunk of a failed attempt leaked out
    assert tel.value("stream_retry_total", reason="429") == 3
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_RATE_LIMITED) == 1
    assert len(bodies(up)) == 4
    assert len(tel.stream_spans()) == 1


@pytest.mark.parametrize("mode", MODES)
def test_breaking_out_early_is_abandoned(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    if mode == "sync":
        client = openai.OpenAI(base_url=up.base_url, api_key="test")
        stream = chat_stream(tel.monitor, client, model=MODEL, messages=MESSAGES, max_tokens=TOKENS)
        with stream:
            for chunk in stream:
                if chunk.choices[0].delta.content:
                    break
    else:

        async def main() -> None:
            aclient = openai.AsyncOpenAI(base_url=up.base_url, api_key="test")
            stream = chat_stream(
                tel.monitor, aclient, model=MODEL, messages=MESSAGES, max_tokens=TOKENS
            )
            async with stream:
                async for chunk in stream:
                    if chunk.choices[0].delta.content:
                        break

        asyncio.run(main())
    assert tel.value("stream_requests_total", outcome=c.OUTCOME_ABANDONED) == 1
    assert len(tel.stream_spans()) == 1


def test_arguments_are_checked() -> None:
    tel = Telemetry()
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="test")
    with pytest.raises(TypeError, match="stream"):
        chat_stream(tel.monitor, client, model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(TypeError, match="messages"):
        chat_stream(tel.monitor, client, model=MODEL)
    with pytest.raises(TypeError, match=r"chat\.completions"):
        chat_stream(tel.monitor, object(), model=MODEL, messages=MESSAGES)


# ------------------------------------------------------------------ every fault profile

SWEEP_SEED = 3
SWEEP_SPEC = {"first_token": "2s", "stream_idle": "2s", "total": "30s"}
# What each profile does to a chat stream when every request of it is faulted. Chat has one
# opening chunk before content, so the early drops (0..3 events) land after content for some
# draws; the random mixes may do anything a typed error covers.
PROFILE_OUTCOMES: dict[str, tuple[type | None, ...]] = {
    "none": (None,),
    "flaky": (None, ss.ResumeFailed, ss.UpstreamError),
    "mixed": (None, ss.StreamError),
    "rate-limit": (ss.UpstreamError,),
    "outage": (ss.UpstreamError,),
    "server-errors": (ss.UpstreamError,),
    "drops": (ss.ResumeFailed,),
    "early-drops": (ss.UpstreamError, ss.ResumeFailed),
    "slow-first-token": (ss.FirstTokenTimeout,),
    "stall": (ss.ResumeFailed,),
    "broken-chunks": (None,),
    "utf8-splits": (None,),
    "slow-drip": (None,),
    "keepalive-only": (ss.FirstTokenTimeout,),
    "error-event": (ss.ResumeFailed,),
    "failed": (ss.ResumeFailed,),
    "incomplete": (None,),
    "resume-failure": (ss.ResumeFailed,),
}


def test_the_sweep_covers_every_profile() -> None:
    assert set(PROFILE_OUTCOMES) == set(PROFILES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("profile", sorted(PROFILE_OUTCOMES))
def test_every_fault_profile_ends_exact_or_typed(mode: str, profile: str) -> None:
    """Whatever the profile does: the text the consumer got is a prefix of the answer (all of
    it when the stream ended well), the error is typed and carries that exact checkpoint, and
    the stream is counted and spanned once."""
    tel = Telemetry(make_spec(max_retries=1, **SWEEP_SPEC))
    with Upstream(profile, seed=SWEEP_SEED) as up:
        result = run(mode, tel, up)
    outcomes = PROFILE_OUTCOMES[profile]
    expected = expected_text("hi", seed=SWEEP_SEED, tokens=TOKENS)
    if result.error is None:
        assert None in outcomes
        truncated = (
            profile == "incomplete" or result.chunks[-1].choices[0].finish_reason == "length"
        )
        if not truncated:
            assert sha(result.text) == sha(expected)
            assert_well_formed(result.chunks)
        assert tel.value("stream_requests_total", outcome="ok") == 1
    else:
        assert isinstance(result.error, tuple(t for t in outcomes if t is not None))
        assert expected.startswith(result.text)
        checkpoint = result.error.checkpoint
        offset = 0 if checkpoint is None else checkpoint.offset
        assert offset == len(result.text.encode())
        assert tel.value("stream_requests_total", outcome="error") == 1
    assert tel.value("stream_bytes_total") == len(result.text.encode())
    assert len(tel.stream_spans()) == 1
