"""The simulated upstream speaks the Responses API: the real openai client streams from it."""

from __future__ import annotations

import openai
import pytest

from steadystream.simulate import (
    ROUTE_CREATE,
    ROUTE_RESUME,
    ROUTE_RETRIEVE,
    Upstream,
    deltas,
    expected_text,
)

MODEL = "gpt-4.1"


def _client(up: Upstream, **kwargs: object) -> openai.OpenAI:
    # Strict validation: every event must parse into the SDK's own pydantic models.
    return openai.OpenAI(
        base_url=up.base_url,
        api_key="test",
        max_retries=0,
        _strict_response_validation=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _aclient(up: Upstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=up.base_url, api_key="test", max_retries=0, _strict_response_validation=True
    )


def _text(events: list) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def test_plain_stream_matches_expected_text(upstream: Upstream) -> None:
    """A plain stream yields the full lifecycle and exactly the expected text."""
    client = _client(upstream)
    events = list(client.responses.create(model=MODEL, input="hello", stream=True))
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert _text(events) == expected_text("hello", seed=0)
    assert events[-1].response.output_text == expected_text("hello", seed=0)
    assert upstream.stats.requests[(ROUTE_CREATE, 200)] == 1


async def test_async_client_streams(aupstream: Upstream) -> None:
    """The async client streams the same text from the upstream running in the test's loop."""
    client = _aclient(aupstream)
    stream = await client.responses.create(model=MODEL, input="hello", stream=True)
    events = [e async for e in stream]
    assert _text(events) == expected_text("hello")
    assert events[-1].type == "response.completed"


def test_text_is_deterministic_per_prompt_and_seed(upstream_factory) -> None:
    """The same prompt and seed give the same text; another seed or prompt gives another."""
    up = upstream_factory(seed=5)
    client = _client(up)
    a = _text(list(client.responses.create(model=MODEL, input="p", stream=True)))
    b = _text(list(client.responses.create(model=MODEL, input="p", stream=True)))
    assert a == b == expected_text("p", seed=5)
    assert a != expected_text("p", seed=6)
    assert a != expected_text("q", seed=5)


def test_text_covers_every_utf8_width(upstream: Upstream) -> None:
    """The output holds 2-, 3- and 4-byte characters, a ZWJ sequence and a combining mark."""
    text = _text(list(_client(upstream).responses.create(model=MODEL, input="x", stream=True)))
    widths = {len(ch.encode()) for ch in text}
    assert widths >= {1, 2, 3, 4}
    assert "\u200d" in text
    assert "\u0301" in text


def test_max_output_tokens_sets_number_of_deltas(upstream: Upstream) -> None:
    """max_output_tokens=2000 yields 2000 deltas; the delta-size header groups pieces."""
    client = _client(upstream)
    events = list(
        client.responses.create(model=MODEL, input="big", stream=True, max_output_tokens=2000)
    )
    got = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(got) == 2000
    assert "".join(got) == expected_text("big", tokens=2000)
    grouped = list(
        client.responses.create(
            model=MODEL,
            input="big",
            stream=True,
            max_output_tokens=30,
            extra_headers={"x-steadystream-delta-size": "4"},
        )
    )
    got = [e.delta for e in grouped if e.type == "response.output_text.delta"]
    assert got == deltas("big", tokens=30, delta_size=4)
    assert len(got) == 8


def test_seed_header_overrides_server_seed(upstream: Upstream) -> None:
    """x-steadystream-seed chooses the text seed for one request."""
    client = _client(upstream)
    events = client.responses.create(
        model=MODEL, input="s", stream=True, extra_headers={"x-steadystream-seed": "9"}
    )
    assert _text(list(events)) == expected_text("s", seed=9)


def test_non_stream_create_returns_the_finished_response(upstream: Upstream) -> None:
    """A create without stream returns the completed response with the same text and usage."""
    response = _client(upstream).responses.create(model=MODEL, input="hello", max_output_tokens=7)
    assert response.status == "completed"
    assert response.output_text == expected_text("hello", tokens=7)
    assert response.usage is not None and response.usage.output_tokens == 7


def test_background_resume_with_starting_after_gives_same_text(upstream: Upstream) -> None:
    """A background stream cut after a few events and resumed with starting_after is complete."""
    client = _client(upstream)
    stream = client.responses.create(model=MODEL, input="resume me", stream=True, background=True)
    head = []
    for event in stream:
        head.append(event)
        if len(head) == 9:
            break
    stream.close()
    response_id = head[0].response.id
    last = head[-1].sequence_number
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=last))
    assert rest[0].sequence_number == last + 1
    assert _text(head) + _text(rest) == expected_text("resume me")
    assert rest[-1].type == "response.completed"
    assert upstream.stats.requests[(ROUTE_RESUME, 200)] == 1


async def test_async_background_resume(aupstream: Upstream) -> None:
    """The async client resumes a background response with starting_after to the same text."""
    client = _aclient(aupstream)
    stream = await client.responses.create(
        model=MODEL, input="async resume", stream=True, background=True
    )
    head = []
    async for event in stream:
        head.append(event)
        if len(head) == 6:
            break
    await stream.close()
    rest_stream = await client.responses.retrieve(
        head[0].response.id, stream=True, starting_after=head[-1].sequence_number
    )
    rest = [e async for e in rest_stream]
    assert _text(head) + _text(rest) == expected_text("async resume")


def test_background_create_and_retrieve(upstream: Upstream) -> None:
    """background=True without stream answers queued at once; retrieve returns the stored text."""
    client = _client(upstream)
    created = client.responses.create(model=MODEL, input="bg", background=True)
    assert created.status in ("queued", "in_progress", "completed")
    assert created.background is True
    replay = list(client.responses.retrieve(created.id, stream=True))
    assert _text(replay) == expected_text("bg")
    stored = client.responses.retrieve(created.id)
    assert stored.status == "completed"
    assert stored.output_text == expected_text("bg")
    assert upstream.response(created.id).text == expected_text("bg")
    stats = upstream.stats
    assert (stats.requests[(ROUTE_RESUME, 200)], stats.requests[(ROUTE_RETRIEVE, 200)]) == (1, 1)


def test_retrieve_unknown_id_is_404(upstream: Upstream) -> None:
    """Retrieving an unknown response raises the SDK's NotFoundError."""
    with pytest.raises(openai.NotFoundError):
        _client(upstream).responses.retrieve("resp_nope")


def test_stream_retrieve_of_foreground_response_is_rejected(upstream: Upstream) -> None:
    """Only background responses can be streamed on retrieve, as in the real API."""
    client = _client(upstream)
    events = list(client.responses.create(model=MODEL, input="fg", stream=True))
    with pytest.raises(openai.BadRequestError):
        list(client.responses.retrieve(events[0].response.id, stream=True, starting_after=3))


def test_idempotency_key_replays_the_same_response(upstream: Upstream) -> None:
    """A repeated create with the same Idempotency-Key returns the same id and text."""
    client = _client(upstream)
    headers = {"Idempotency-Key": "key-1"}
    first = list(
        client.responses.create(
            model=MODEL, input="idem", stream=True, background=True, extra_headers=headers
        )
    )
    second = list(
        client.responses.create(
            model=MODEL, input="idem", stream=True, background=True, extra_headers=headers
        )
    )
    assert first[0].response.id == second[0].response.id
    assert _text(first) == _text(second) == expected_text("idem")
    stats = upstream.stats
    assert stats.idempotent_replays == 1
    assert stats.responses_created == 1


def test_keep_alive_reuses_one_connection(upstream: Upstream) -> None:
    """Sequential requests from one client reuse one kept-alive connection."""
    client = _client(upstream)
    for _ in range(3):
        list(client.responses.create(model=MODEL, input="ka", stream=True))
    assert upstream.stats.connections_total == 1


def test_invalid_request_is_a_400_naming_the_field(upstream: Upstream) -> None:
    """A create without input is rejected with a 400 naming 'input'."""
    with pytest.raises(openai.BadRequestError, match="input"):
        _client(upstream).responses.create(model=MODEL, stream=True)  # type: ignore[call-overload]


def test_stop_closes_open_connections_promptly(upstream_factory) -> None:
    """Stopping while a stream is open ends it; the client sees a network error, not a hang."""
    up = upstream_factory()
    client = _client(up)
    stream = client.responses.create(
        model=MODEL,
        input="stop",
        stream=True,
        extra_headers={"x-steadystream-fault": "stall=30s@5"},
    )
    got = []
    with pytest.raises(openai.APIConnectionError):
        for event in stream:
            got.append(event)
            if len(got) == 5:
                up.stop_thread()
    assert len(got) == 5


def test_store_forgets_oldest_responses_beyond_its_bound(upstream_factory) -> None:
    """With max_stored=2, the oldest of three responses is forgotten and answers 404."""
    up = upstream_factory(max_stored=2)
    client = _client(up)
    ids = [client.responses.create(model=MODEL, input=f"r{i}").id for i in range(3)]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(ids[0])
    assert client.responses.retrieve(ids[2]).output_text == expected_text("r2")


def test_store_byte_bound_releases_idempotency_keys(upstream_factory) -> None:
    """Beyond max_stored_bytes old responses go, and their idempotency keys start afresh."""
    up = upstream_factory(max_stored_bytes=1)
    client = _client(up)
    key = {"Idempotency-Key": "k"}
    first = client.responses.create(model=MODEL, input="a", extra_headers=key)
    client.responses.create(model=MODEL, input="b")
    again = client.responses.create(model=MODEL, input="a", extra_headers=key)
    assert again.id != first.id
    assert up.stats.idempotent_replays == 0


async def test_many_concurrent_async_streams(aupstream: Upstream) -> None:
    """Fifty concurrent async streams each get their own prompt's exact text."""
    import asyncio

    client = _aclient(aupstream)

    async def one(i: int) -> str:
        stream = await client.responses.create(model=MODEL, input=f"c{i}", stream=True)
        return _text([e async for e in stream])

    texts = await asyncio.gather(*(one(i) for i in range(50)))
    assert texts == [expected_text(f"c{i}") for i in range(50)]
    assert aupstream.stats.requests_to(ROUTE_CREATE, 200) == 50


def test_listens_on_loopback_address_only(upstream: Upstream) -> None:
    """The server binds 127.0.0.1 exactly: the same port on 127.0.0.2 refuses connections."""
    import socket

    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", upstream.port), timeout=5)


def test_cancel_stops_a_background_generation(upstream_factory) -> None:
    """responses.cancel stops a paced background response; it stays cancelled with partial text."""
    up = upstream_factory(token_interval=0.01)
    client = _client(up)
    created = client.responses.create(
        model=MODEL, input="long", background=True, max_output_tokens=10_000
    )
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    stored = up.response(created.id)
    assert stored is not None and stored.status == "cancelled"
    assert expected_text("long", tokens=10_000).startswith(stored.text)
    assert len(stored.text) < len(expected_text("long", tokens=10_000))


def test_cancel_of_foreground_response_is_rejected(upstream: Upstream) -> None:
    """Only background responses can be cancelled."""
    client = _client(upstream)
    response = client.responses.create(model=MODEL, input="fg")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(response.id)


def test_delete_forgets_a_response(upstream: Upstream) -> None:
    """After responses.delete the id answers 404."""
    client = _client(upstream)
    response = client.responses.create(model=MODEL, input="gone")
    client.responses.delete(response.id)
    assert upstream.response(response.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def _raw_exchange(up: Upstream, request: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", up.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):  # the server closes after answering
            data += chunk
    return data


def test_malformed_request_is_answered_400_and_closed(upstream: Upstream) -> None:
    """A garbage request line gets a 400 JSON error and the connection is closed."""
    data = _raw_exchange(upstream, b"NONSENSE\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b'"invalid_request_error"' in data


def test_chunked_request_body_is_accepted(upstream: Upstream) -> None:
    """A create whose JSON body is sent with chunked transfer encoding is understood."""
    body = b'{"model":"m","input":"chunked","max_output_tokens":3}'
    request = (
        b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
        + b"%x\r\n%b\r\n" % (10, body[:10])
        + b"%x\r\n%b\r\n" % (len(body) - 10, body[10:])
        + b"0\r\n\r\n"
    )
    data = _raw_exchange(upstream, request)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert expected_text("chunked", tokens=3).encode() in data


def test_unknown_paths_and_methods_are_404_and_405(upstream: Upstream) -> None:
    """Paths outside /v1/responses answer 404; unsupported methods on it answer 405."""
    import httpx

    with httpx.Client(base_url=upstream.url, timeout=10) as http:
        assert http.get("/v1/models").status_code == 404
        assert http.put("/v1/responses").status_code == 405
