"""Each injected fault has its observable effect on the real openai client (and on raw bytes)."""

from __future__ import annotations

import collections
import threading

import httpx
import openai
import pytest

from steadystream import conventions as conv
from steadystream.simulate import (
    PROFILE_FOR_FAILURE_CLASS,
    PROFILES,
    ROUTE_CREATE,
    ROUTE_RESUME,
    FaultPlan,
    FaultSyntaxError,
    Profile,
    Upstream,
    expected_text,
    parse_fault,
)

MODEL = "gpt-4.1"
FAULT = conv.HEADER_FAULT


def _client(up: Upstream, **kwargs: object) -> openai.OpenAI:
    options: dict = {"max_retries": 0, "_strict_response_validation": True, **kwargs}
    return openai.OpenAI(base_url=up.base_url, api_key="test", **options)


def _aclient(up: Upstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=up.base_url, api_key="test", max_retries=0, _strict_response_validation=True
    )


def _text(events: list) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def _stream(up: Upstream, fault: str, prompt: str = "fault", **kwargs: object):
    client = _client(up)
    return client.responses.create(
        model=MODEL, input=prompt, stream=True, extra_headers={FAULT: fault}, **kwargs
    )


def _collect_until_error(stream) -> tuple[list, BaseException | None]:
    events: list = []
    try:
        for event in stream:
            events.append(event)
    except openai.APIError as exc:
        return events, exc
    return events, None


# ------------------------------------------------------------------------------ HTTP status
def test_429_raises_rate_limit_error_with_retry_after(upstream: Upstream) -> None:
    """A 429 fault raises RateLimitError carrying Retry-After and retry-after-ms."""
    with pytest.raises(openai.RateLimitError) as info:
        _stream(upstream, "429, retry_after=1500ms")
    headers = info.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "1500"
    assert info.value.code == "rate_limit_exceeded"
    assert upstream.stats.faults["status_429"] == 1
    assert upstream.stats.requests[(ROUTE_CREATE, 429)] == 1


async def test_429_async_client(aupstream: Upstream) -> None:
    """The async client also raises RateLimitError on a 429 fault."""
    client = _aclient(aupstream)
    with pytest.raises(openai.RateLimitError):
        await client.responses.create(
            model=MODEL, input="x", stream=True, extra_headers={FAULT: "429, retry_after=10ms"}
        )


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_raises_internal_server_error(upstream: Upstream, status: int) -> None:
    """500 and 503 faults raise InternalServerError with that status."""
    with pytest.raises(openai.InternalServerError) as info:
        _stream(upstream, str(status))
    assert info.value.status_code == status
    assert upstream.stats.faults[f"status_{status}"] == 1


def test_client_retries_honour_retry_after_ms(upstream: Upstream) -> None:
    """With max_retries=2 the client retries a 429 twice (after retry-after-ms), then raises."""
    client = _client(upstream, max_retries=2)
    with pytest.raises(openai.RateLimitError):
        client.responses.create(
            model=MODEL, input="x", stream=True, extra_headers={FAULT: "429, retry_after=10ms"}
        )
    assert upstream.stats.requests[(ROUTE_CREATE, 429)] == 3


def test_rate_limit_and_outage_profiles_fail_every_request(upstream_factory) -> None:
    """The rate-limit profile answers every create 429; outage answers 503."""
    up = upstream_factory("rate-limit")
    for _ in range(3):
        with pytest.raises(openai.RateLimitError):
            _client(up).responses.create(model=MODEL, input="x", stream=True)
    up.profile = "outage"
    with pytest.raises(openai.InternalServerError):
        _client(up).responses.create(model=MODEL, input="x", stream=True)
    stats = up.stats
    assert stats.faults["status_429"] == 3
    assert stats.faults["status_503"] == 1


def test_header_none_overrides_profile(upstream_factory) -> None:
    """x-steadystream-fault: none streams normally even under the outage profile."""
    up = upstream_factory("outage")
    assert _text(list(_stream(up, "none"))) == expected_text("fault")


# -------------------------------------------------------------------------------- drops
def test_drop_mid_stream_raises_network_error_after_n_events(upstream: Upstream) -> None:
    """drop_after=10: ten events arrive (content among them), then APIConnectionError."""
    events, error = _collect_until_error(_stream(upstream, "drop_after=10"))
    assert isinstance(error, openai.APIConnectionError)
    assert len(events) == 10
    assert any(e.type == "response.output_text.delta" for e in events)
    assert upstream.stats.faults["drop"] == 1


def test_drop_before_first_content(upstream: Upstream) -> None:
    """drop_after=2: only lifecycle events arrive before the connection dies."""
    events, error = _collect_until_error(_stream(upstream, "drop_after=2"))
    assert isinstance(error, openai.APIConnectionError)
    assert [e.type for e in events] == ["response.created", "response.in_progress"]


def test_drop_right_after_headers(upstream: Upstream) -> None:
    """drop_after=0: no event at all, then a network error."""
    events, error = _collect_until_error(_stream(upstream, "drop_after=0"))
    assert isinstance(error, openai.APIConnectionError)
    assert events == []


async def test_drop_async_client(aupstream: Upstream) -> None:
    """The async client's iterator raises APIConnectionError after the dropped events."""
    client = _aclient(aupstream)
    stream = await client.responses.create(
        model=MODEL, input="x", stream=True, extra_headers={FAULT: "drop_after=7"}
    )
    events = []
    with pytest.raises(openai.APIConnectionError):
        async for event in stream:
            events.append(event)
    assert len(events) == 7


def test_background_resume_after_drop_gives_same_text(upstream: Upstream) -> None:
    """A dropped background stream resumed with starting_after yields exactly the full text."""
    client = _client(upstream)
    events, error = _collect_until_error(
        client.responses.create(
            model=MODEL,
            input="drop and resume",
            stream=True,
            background=True,
            max_output_tokens=200,
            extra_headers={FAULT: "drop_after=57"},
        )
    )
    assert isinstance(error, openai.APIConnectionError)
    last = events[-1].sequence_number
    assert last == 56
    rest = list(client.responses.retrieve(events[0].response.id, stream=True, starting_after=last))
    assert [e.sequence_number for e in rest] == list(range(last + 1, 200 + 8))
    assert _text(events) + _text(rest) == expected_text("drop and resume", tokens=200)
    assert upstream.stats.requests[(ROUTE_RESUME, 200)] == 1


def test_generation_continues_while_disconnected(upstream_factory) -> None:
    """A paced background response keeps generating after its stream drops."""
    up = upstream_factory(token_interval=0.002)
    client = _client(up)
    events, _ = _collect_until_error(
        client.responses.create(
            model=MODEL,
            input="paced",
            stream=True,
            background=True,
            max_output_tokens=20,
            extra_headers={FAULT: "drop_after=5"},
        )
    )
    response_id = events[0].response.id
    # Streaming the rest follows the generation live until it completes.
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=4))
    assert rest[-1].type == "response.completed"
    assert up.response(response_id).status == "completed"
    assert _text(events) + _text(rest) == expected_text("paced", tokens=20)


def test_idempotent_retry_after_drop_returns_same_response(upstream: Upstream) -> None:
    """A retried create with the same Idempotency-Key after a drop gets the same id and text."""
    client = _client(upstream)
    key = {"Idempotency-Key": "retry-1"}
    first, error = _collect_until_error(
        client.responses.create(
            model=MODEL,
            input="idem",
            stream=True,
            background=True,
            extra_headers={**key, FAULT: "drop_after=6"},
        )
    )
    assert isinstance(error, openai.APIConnectionError)
    second = list(
        client.responses.create(
            model=MODEL, input="idem", stream=True, background=True, extra_headers=key
        )
    )
    assert second[0].response.id == first[0].response.id
    assert _text(second) == expected_text("idem")
    assert upstream.stats.idempotent_replays == 1


def test_resume_failure_profile_refuses_resumes(upstream_factory) -> None:
    """Under resume-failure, streams drop and the resume is answered 404."""
    up = upstream_factory("resume-failure")
    client = _client(up)
    events, error = _collect_until_error(
        client.responses.create(model=MODEL, input="x", stream=True, background=True)
    )
    assert isinstance(error, openai.APIConnectionError)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(events[0].response.id, stream=True, starting_after=1)


# ---------------------------------------------------------------------- terminal events
def test_error_event_arrives_as_an_event(upstream: Upstream) -> None:
    """error_event=8: event 8 is an `error` event, and the stream then ends cleanly."""
    events = list(_stream(upstream, "error_event=8"))
    assert len(events) == 9
    assert events[-1].type == "error"
    assert events[-1].sequence_number == 8
    assert events[-1].code == "server_error"
    assert upstream.stats.faults["error_event"] == 1


def test_response_failed_arrives_as_an_event(upstream: Upstream) -> None:
    """failed: the stream ends with response.failed carrying the error, mid-stream."""
    events = list(_stream(upstream, "failed"))
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed"
    assert last.response.error is not None and last.response.error.code == "server_error"
    assert 4 < len(events) < 32 + 8
    assert expected_text("fault").startswith(_text(events))


def test_response_incomplete_arrives_as_an_event(upstream: Upstream) -> None:
    """incomplete=10: event 10 is response.incomplete with reason max_output_tokens."""
    events = list(_stream(upstream, "incomplete=10"))
    assert [e.sequence_number for e in events] == list(range(11))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert _text(events) == "".join(expected_text("fault", tokens=6))


def test_terminal_fault_is_stored_and_replayed_on_resume(upstream: Upstream) -> None:
    """A failed background response replays the same failure to a resume."""
    client = _client(upstream)
    first = list(_stream(upstream, "failed=12", prompt="stored failure", background=True))
    rest = list(client.responses.retrieve(first[0].response.id, stream=True, starting_after=5))
    assert [e.sequence_number for e in rest] == list(range(6, 13))
    assert rest[-1].type == "response.failed"
    assert client.responses.retrieve(first[0].response.id).status == "failed"


# ------------------------------------------------------------------------------ splits
@pytest.mark.parametrize("mode", ["1", "7", "utf8", "random"])
def test_split_frames_parse_to_identical_text(upstream: Upstream, mode: str) -> None:
    """Frames cut every N bytes, inside UTF-8 characters or at random still give the text."""
    events = list(_stream(upstream, f"split={mode}", max_output_tokens=64))
    assert _text(events) == expected_text("fault", tokens=64)
    assert [e.sequence_number for e in events] == list(range(64 + 8))
    assert upstream.stats.faults["split"] == 1


def _raw_pieces(up: Upstream, fault: str, **body: object) -> list[bytes]:
    payload = {"model": MODEL, "input": "raw", "stream": True, **body}
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST", f"{up.base_url}/responses", json=payload, headers={FAULT: fault}
        ) as response,
    ):
        assert response.status_code == 200
        return list(response.iter_raw())


def test_utf8_split_really_cuts_inside_characters(upstream: Upstream) -> None:
    """With split=utf8 the body arrives in pieces that end inside a multi-byte character."""
    pieces = _raw_pieces(upstream, "split=utf8")
    cut_inside = 0
    for piece in pieces:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError as exc:
            assert exc.reason in ("unexpected end of data", "invalid start byte")
            cut_inside += 1
    assert cut_inside >= 6
    assert b"".join(pieces).decode("utf-8").count("event: ") == 32 + 8


def test_unsplit_stream_writes_whole_frames(upstream: Upstream) -> None:
    """Without a split fault, every piece the client reads decodes as UTF-8 on its own, the
    multi-byte text included."""
    pieces = _raw_pieces(upstream, "none")
    decoded = [piece.decode("utf-8") for piece in pieces]
    assert "".join(decoded).count("event: ") == 32 + 8
    assert any(len(text.encode("utf-8")) > len(text) for text in decoded), "no multi-byte text"


def test_wire_format_is_event_and_data_lines(upstream: Upstream) -> None:
    """Each frame is `event: <type>` + `data: <json>` with a matching type and sequence."""
    import json

    body = b"".join(_raw_pieces(upstream, "none", max_output_tokens=3)).decode()
    frames = [f for f in body.split("\n\n") if f]
    assert len(frames) == 3 + 8
    for seq, frame in enumerate(frames):
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == event_line.removeprefix("event: ")
        assert data["sequence_number"] == seq


# ------------------------------------------------------------------- keep-alive, delays
def test_keepalive_only_stream_has_comments_and_no_events(upstream: Upstream) -> None:
    """keepalive=4@5ms: the body is four `: keep-alive` comments; the client sees no event."""
    assert _raw_pieces(upstream, "keepalive=4@5ms") == [b": keep-alive\n\n"] * 4
    assert list(_stream(upstream, "keepalive=2@5ms")) == []
    assert upstream.stats.faults["keepalive"] == 2


def test_first_token_delay_shows_as_timeout_after_lifecycle_events(upstream: Upstream) -> None:
    """delay=30s with a 2s read timeout: the four lifecycle events arrive, then a timeout."""
    client = _client(upstream, timeout=httpx.Timeout(10, read=2.0))
    events, error = _collect_until_error(
        client.responses.create(
            model=MODEL, input="x", stream=True, extra_headers={FAULT: "delay=30s"}
        )
    )
    assert isinstance(error, openai.APITimeoutError)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]


def test_stall_shows_as_timeout_after_n_events(upstream: Upstream) -> None:
    """stall=30s@12 with a 2s read timeout: exactly 12 events, then a timeout."""
    client = _client(upstream, timeout=httpx.Timeout(10, read=2.0))
    events, error = _collect_until_error(
        client.responses.create(
            model=MODEL, input="x", stream=True, extra_headers={FAULT: "stall=30s@12"}
        )
    )
    assert isinstance(error, openai.APITimeoutError)
    assert len(events) == 12
    assert upstream.stats.faults["stall"] == 1


@pytest.mark.parametrize("fault", ["delay=20ms", "stall=20ms@6", "drip=1ms", "stall=20ms"])
def test_short_delays_complete_with_identical_text(upstream: Upstream, fault: str) -> None:
    """Short delay, stall and drip faults take effect and the full text still arrives."""
    events = list(_stream(upstream, fault))
    assert _text(events) == expected_text("fault")
    kind = fault.split("=")[0]
    assert upstream.stats.faults[kind] == 1


# ------------------------------------------------------------------- header syntax, plans
def test_bad_fault_header_is_a_400_naming_the_item(upstream: Upstream) -> None:
    """An unknown fault in the header is answered 400 with a message naming it."""
    with pytest.raises(openai.BadRequestError, match="explode"):
        _stream(upstream, "explode=3")


def test_parse_fault_reads_every_item() -> None:
    """The header syntax maps onto the plan's fields, with units and defaults."""
    plan = parse_fault("delay=20ms, stall=2s@10, drop_after=20, split=utf8, drip=5ms")
    assert (plan.delay, plan.stall, plan.stall_at, plan.drop_after) == (0.02, 2.0, 10, 20)
    assert (plan.split, plan.drip) == ("utf8", 0.005)
    assert parse_fault("429").retry_after == 1.0
    assert parse_fault("503").retry_after is None
    assert parse_fault("failed=7").terminal == "failed"
    assert parse_fault("keepalive").keepalive == 3
    assert parse_fault("stall=1s, heartbeat=100ms").heartbeat == 0.1
    assert parse_fault("none").is_none


@pytest.mark.parametrize(
    "text",
    [
        "bogus",
        "delay=20",
        "stall=1s@x",
        "drop_after=9..3",
        "status=200",
        "retry_after=1s",
        "split=0",
    ],
)
def test_parse_fault_rejects_bad_items(text: str) -> None:
    """Malformed items raise FaultSyntaxError instead of being ignored."""
    with pytest.raises(FaultSyntaxError):
        parse_fault(text)


def test_ranges_are_drawn_within_bounds() -> None:
    """A range like drop_after=5..9 always draws a value inside it."""
    import random

    rng = random.Random(1)
    values = {parse_fault("drop_after=5..9", rng=rng).drop_after for _ in range(200)}
    assert values == {5, 6, 7, 8, 9}


# ---------------------------------------------------------------------------- profiles
def test_profiles_are_deterministic_per_seed_and_counter() -> None:
    """The same (seed, request number) always draws the same fault."""
    profile = PROFILES["mixed"]
    draws = [profile.choose(3, n) for n in range(500)]
    assert draws == [profile.choose(3, n) for n in range(500)]
    assert draws != [profile.choose(4, n) for n in range(500)]


def test_flaky_profile_rates() -> None:
    """flaky draws about 5% drops, 2% 429 and 1% 503 over many requests."""
    profile = PROFILES["flaky"]
    counts = collections.Counter(profile.choose(0, n)[0] for n in range(20_000))
    assert 0.04 < counts["drop_after=6..24"] / 20_000 < 0.06
    assert 0.015 < counts["429, retry_after=1s"] / 20_000 < 0.025
    assert 0.006 < counts["503"] / 20_000 < 0.014


def test_mixed_profile_covers_every_fault_kind() -> None:
    """The mixed profile draws every kind of fault within a few thousand requests."""
    profile = PROFILES["mixed"]
    plans = [profile.choose(0, n)[1] for n in range(5000)]
    assert {p.status for p in plans} >= {429, 500, 503}
    assert {p.terminal for p in plans} >= {"error_event", "failed", "incomplete"}
    assert {p.split for p in plans} >= {"utf8", "random"}
    assert any(p.drop_after is not None and p.drop_after <= 3 for p in plans)
    assert any(p.drop_after is not None and p.drop_after > 4 for p in plans)
    assert any(p.delay for p in plans) and any(p.stall for p in plans)
    assert any(p.drip for p in plans) and any(p.keepalive for p in plans)
    assert any(p.stall and p.heartbeat for p in plans)
    assert sum(p.is_none for p in plans) > 3000


def test_flaky_profile_end_to_end(upstream_factory) -> None:
    """Under flaky, most of 60 streams complete; failures are only drops, 429s and 503s."""
    up = upstream_factory("flaky", seed=11)
    client = _client(up)
    outcomes: collections.Counter[str] = collections.Counter()
    for i in range(60):
        try:
            events, error = _collect_until_error(
                client.responses.create(model=MODEL, input=f"p{i}", stream=True)
            )
        except openai.APIStatusError as exc:
            outcomes[str(exc.status_code)] += 1
            continue
        if error is None:
            assert _text(events) == expected_text(f"p{i}", seed=11)
            outcomes["ok"] += 1
        else:
            assert isinstance(error, openai.APIConnectionError)
            outcomes["drop"] += 1
    assert outcomes["ok"] >= 50
    assert set(outcomes) <= {"ok", "drop", "429", "503"}
    assert up.stats.faults["drop"] == outcomes["drop"]


def test_every_failure_class_profile_exists() -> None:
    """Each server-side failure class maps to a built-in profile."""
    for failure_class, name in PROFILE_FOR_FAILURE_CLASS.items():
        assert failure_class in conv.FAILURE_CLASSES
        assert name in PROFILES


def test_custom_profile_rejects_bad_rates_and_faults() -> None:
    """A profile whose rates exceed 1 or whose fault does not parse fails at definition."""
    with pytest.raises(ValueError):
        Profile("x", "too much", ((0.7, "503"), (0.5, "429")))
    with pytest.raises(FaultSyntaxError):
        Profile("y", "bad", ((0.1, "nope"),))
    assert FaultPlan().is_none


def test_bare_drop_cuts_the_stream_in_the_middle(upstream: Upstream) -> None:
    """`drop` without a count aborts after half of the stream's events."""
    events, error = _collect_until_error(_stream(upstream, "drop", max_output_tokens=40))
    assert isinstance(error, openai.APIConnectionError)
    assert len(events) == (40 + 8) // 2


def test_lost_answer_to_non_stream_create_is_recovered_by_idempotent_retry(
    upstream: Upstream,
) -> None:
    """A non-stream create whose answer is dropped was stored; the keyed retry returns it."""
    client = _client(upstream)
    key = {"Idempotency-Key": "lost-answer"}
    with pytest.raises(openai.APIConnectionError):
        client.responses.create(
            model=MODEL, input="lost", extra_headers={**key, FAULT: "drop_after=1"}
        )
    response = client.responses.create(model=MODEL, input="lost", extra_headers=key)
    assert response.output_text == expected_text("lost")
    stats = upstream.stats
    assert (stats.responses_created, stats.idempotent_replays) == (1, 1)


def test_connections_are_released_after_a_drop(upstream: Upstream) -> None:
    """After dropped and finished streams, the open-connection gauge returns to zero."""
    client = _client(upstream)
    _collect_until_error(_stream(upstream, "drop_after=3"))
    list(client.responses.create(model=MODEL, input="x", stream=True))
    client.close()
    for _ in range(500):  # bounded: the server notices the close within a few loop turns
        if upstream.stats.connections_open == 0:
            break
        threading.Event().wait(0.01)
    assert upstream.stats.connections_open == 0
    assert upstream.stats.connections_total == 2


def test_with_rates_scales_a_profile() -> None:
    """with_rates(2) doubles every rate; a scale that would exceed 1 is capped to sum 1."""
    doubled = PROFILES["flaky"].with_rates(2)
    assert [r for r, _ in doubled.mix] == pytest.approx([0.10, 0.04, 0.02])
    capped = PROFILES["flaky"].with_rates(100)
    assert sum(r for r, _ in capped.mix) == pytest.approx(1.0)


def test_heartbeat_fills_a_stall_with_comments_only(upstream: Upstream) -> None:
    """stall=60ms@6 with heartbeat=10ms: comments arrive between events 6 and 7, text intact.

    A heartbeat fills any gap longer than its interval, so on a loaded machine an ordinary gap
    may get one too: what is asserted is that the stall got comments, not that no other gap
    did."""
    pieces = _raw_pieces(upstream, "stall=60ms@6, heartbeat=10ms")
    frames = [f for f in b"".join(pieces).split(b"\n\n") if f]
    # For each keep-alive comment, how many events came before it.
    events_before = [
        sum(1 for g in frames[:i] if g != b": keep-alive")
        for i, f in enumerate(frames)
        if f == b": keep-alive"
    ]
    assert 6 in events_before, f"no keep-alive comment during the stall: {events_before}"
    assert all(f == b": keep-alive" or f.startswith((b"event:", b"data:")) for f in frames)
    events = list(_stream(upstream, "delay=30ms, heartbeat=5ms"))
    assert _text(events) == expected_text("fault")
