"""Reassembly: strict incremental UTF-8, the SSE parser, fences, and their property tests."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from steadystream import conventions as c
from steadystream.instrumentation.core.reassembly import (
    FenceTracker,
    ServerSentEvent,
    SSEParser,
    Utf8Decoder,
    looks_like_sse,
)
from steadystream.instrumentation.core.shell import ByteReader
from steadystream.instrumentation.providers.base import CONTENT, END, KEEPALIVE
from steadystream.instrumentation.providers.registry import read_sse


def split_at(data: bytes | str, cuts: list[int]) -> list:
    """``data`` cut at the given (sorted, deduplicated) positions."""
    points = sorted({min(max(0, p), len(data)) for p in cuts})
    out, start = [], 0
    for p in points:
        out.append(data[start:p])
        start = p
    out.append(data[start:])
    return out


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(st.integers(min_value=0, max_value=400), max_size=40))
def test_utf8_split_anywhere_reassembles_exactly(text: str, cuts: list[int]) -> None:
    """Any text cut at any byte positions decodes to itself, never emitting half a character."""
    data = text.encode("utf-8", "surrogatepass")
    dec = Utf8Decoder()
    pieces = [dec.decode(p) for p in split_at(data, cuts)]
    pieces.append(dec.final())
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return  # lone surrogates are not valid UTF-8; covered by the invalid-input test
    assert "".join(pieces) == text
    assert dec.errors == 0
    for piece in pieces:
        piece.encode("utf-8")  # every emitted piece is whole characters


def test_utf8_invalid_bytes_are_counted_not_dropped() -> None:
    """Invalid bytes count as an error and become U+FFFD; the text after them survives."""
    dec = Utf8Decoder()
    out = dec.decode(b"ok \xff\xfe then") + dec.decode("é".encode()[:1])
    out += dec.final()
    assert out.startswith("ok ") and "then" in out
    assert dec.errors == 2  # the invalid bytes, and the truncated final character


SSE_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["message", "response.output_text.delta", "ping"]),
        st.text(alphabet=st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=30),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    SSE_EVENTS,
    st.sampled_from(["\n", "\r", "\r\n"]),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
)
def test_sse_split_frames_reassemble_exactly(
    events: list[tuple[str, str]], eol: str, cuts: list[int]
) -> None:
    """SSE frames cut at any byte (inside a CRLF or a UTF-8 character) parse to the same
    events as the uncut body, for every line ending."""
    body = "".join(
        f"event: {name}{eol}data: {data}{eol}: keep-alive{eol}{eol}" for name, data in events
    )
    reader = ByteReader(sse=True)
    got: list[ServerSentEvent] = []
    for piece in split_at(body.encode(), cuts):
        got.extend(reader.feed(piece)[1])
    got.extend(reader.final()[1])
    assert [(e.event, e.data) for e in got] == events


def test_sse_lines_split_only_on_cr_lf_crlf() -> None:
    """U+2028, U+2029, U+0085 and form feeds stay inside the data; CR, LF, CRLF end lines."""
    p = SSEParser()
    data = "a\u2028b\u2029c\x85d\x0ce"
    events = p.feed(f"data: {data}\r\ndata: second\rdata:third\n\n")
    assert events == [ServerSentEvent("message", f"{data}\nsecond\nthird")]


def test_sse_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    """A CR ending one chunk and the LF starting the next make one CRLF, not an empty line."""
    p = SSEParser()
    assert p.feed("data: x\r") == []
    assert p.feed("\ndata: y\r\n") == []
    assert p.feed("\r\n") == [ServerSentEvent("message", "x\ny")]


def test_sse_fields_id_retry_comments_and_unterminated_event() -> None:
    """id, retry and comments follow the spec; a body cut inside an event is reported."""
    p = SSEParser()
    events = p.feed(": hi\nid: 7\nretry: 150\nretry: x\nevent: e\ndata\n\nid: bad\0\ndata: z\n\n")
    assert events == [ServerSentEvent("e", "", "7", 150), ServerSentEvent("message", "z", "7", 150)]
    assert p.comments == 1
    assert not p.final()
    p.feed("data: cut")
    assert p.final()


def test_byte_reader_reports_utf8_and_sse_problems_at_end() -> None:
    """Invalid UTF-8 and a body ending mid-event are the reassembly problems reported."""
    reader = ByteReader()
    reader.feed(b'data: {"type":"response.output_text.delta","delta":"\xff"}\n\ndata: {"ty')
    kinds = [kind for kind, _ in reader.final()[2]]
    assert kinds == [c.REASSEMBLY_UTF8, c.REASSEMBLY_SSE]


def test_byte_reader_sniffs_sse_or_plain_text() -> None:
    """Bodies that start like SSE are parsed as SSE; anything else is plain text content."""
    assert looks_like_sse(b"\xef\xbb\xbfevent: x\n")
    assert looks_like_sse(b": ping\n")
    assert not looks_like_sse(b"Hello data: x")
    reader = ByteReader()
    readings, events = reader.feed(b"Hello, w")
    assert [(r.kind, r.text) for r in readings] == [(CONTENT, "Hello, w")] and events == []


def test_sse_data_classification() -> None:
    """[DONE] ends, JSON deltas are content, plain-text data is content, empty is keep-alive."""
    assert read_sse("[DONE]").kind == END
    delta = json.dumps({"type": "response.output_text.delta", "delta": "hé"})
    assert read_sse(delta).text == "hé"
    assert read_sse("plain words").kind == CONTENT
    assert read_sse("").kind == KEEPALIVE
    named = read_sse(json.dumps({"delta": "x"}), "response.output_text.delta")
    assert (named.kind, named.text) == (CONTENT, "x")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=20), st.booleans())
def test_fence_tracker_independent_of_splits(cuts: list[int], closed: bool) -> None:
    """Whether a fence is left open does not depend on where the content was cut."""
    text = "Intro\n```python\nprint('`~')\n  ``` \nmore ``inline``\n~~~\nx\n"
    if closed:
        text += "~~~\n"
    tracker = FenceTracker()
    for piece in split_at(text, cuts):
        tracker.feed(piece)
    assert tracker.unclosed is not closed


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=10),
    st.sampled_from(["\n", "\r", "\r\n"]),
    st.lists(st.integers(min_value=0, max_value=3000), max_size=25),
)
def test_wrapped_split_sse_bytes_measure_exact_content(
    deltas: list[str], eol: str, cuts: list[int]
) -> None:
    """Through monitor.wrap: byte pieces come out unchanged, and the content measured (bytes,
    checkpoint hash) is exactly the deltas, wherever frames and characters were cut."""
    import hashlib

    from opentelemetry.trace import NoOpTracerProvider
    from prometheus_client import CollectorRegistry

    import steadystream as ss

    frames = [{"type": "response.created", "response": {"id": "r"}, "sequence_number": 0}]
    frames += [
        {"type": "response.output_text.delta", "delta": d, "sequence_number": i + 1}
        for i, d in enumerate(deltas)
    ]
    frames.append({"type": "response.completed", "response": {"id": "r"}})
    body = "".join(f"event: {f['type']}{eol}data: {json.dumps(f)}{eol}{eol}" for f in frames)
    body = body.encode("utf-8", "surrogatepass")
    pieces = [p for p in split_at(body, cuts) if p]
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(
        ss.default_spec("svc"),
        registry=registry,
        tracer_provider=NoOpTracerProvider(),
        watchdog=False,
    )
    wrapped = monitor.wrap(iter(pieces), model="m", provider="p")
    out = list(wrapped)
    assert len(out) == len(pieces) and all(a is b for a, b in zip(out, pieces, strict=True))
    content = "".join(deltas).encode("utf-8", "surrogatepass")
    cp = wrapped.checkpoint
    assert (cp.offset, cp.sha256, cp.chunks) == (
        len(content),
        hashlib.sha256(content).hexdigest(),
        len(deltas),
    )
    labels = {"service": "svc", "model": "m", "provider": "p"}
    assert registry.get_sample_value("stream_bytes_total", labels) == len(content)
    assert registry.get_sample_value("stream_requests_total", {**labels, "outcome": "ok"}) == 1
