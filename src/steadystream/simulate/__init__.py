"""A fault-injecting OpenAI Responses API, Chat Completions and Anthropic Messages upstream on
loopback, for tests, the demo and benchmarks.

The real ``openai`` client streams from it unmodified; faults act at the byte and socket level
(frames cut inside UTF-8 characters, connections aborted mid-body, stalls), so the failure modes
a streaming gateway meets in production can be produced on demand and reproduced exactly.

Starting and stopping
=====================

One call, sync or async. Sync runs the server on a background thread with its own event loop;
async runs it in the current loop. It only ever binds ``127.0.0.1``::

    from openai import OpenAI
    from steadystream.simulate import Upstream, expected_text

    with Upstream(profile="none", seed=0, port=0) as up:     # port 0: any free port
        client = OpenAI(base_url=up.base_url, api_key="test")  # http://127.0.0.1:PORT/v1
        stream = client.responses.create(model="gpt-4.1", input="hi", stream=True)
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        assert text == expected_text("hi", seed=0)

    async with Upstream(profile="flaky", seed=7) as up:
        client = AsyncOpenAI(base_url=up.base_url, api_key="test")

``Upstream(profile, seed, port, *, token_interval=0.0, first_token_latency=0.0,
max_stored=10_000, max_stored_bytes=256 MiB)``: ``token_interval`` (seconds between generated
deltas) and ``first_token_latency`` shape the simulated model; faults shape individual requests.
The store forgets the oldest responses beyond its bounds (their ids then answer 404).
``up.profile = "outage"`` switches the profile while running. ``up.stats`` is a snapshot of the
counters (readable from any thread, no HTTP): ``requests[(route, status)]`` with routes
``ROUTE_CREATE``/``ROUTE_RESUME`` (streamed retrieves)/``ROUTE_RETRIEVE``/..., ``faults[kind]``
(faults that took effect), ``idempotent_replays``, ``responses_created``, ``connections_open``,
``connections_total``. ``up.response(id)`` returns a stored response's status and text. Stopping
aborts every open connection and generation, bounded to seconds.

pytest: ``pytest_plugins = ["steadystream.simulate.pytest_plugin"]`` gives the fixtures
``upstream`` (sync, profile ``none``), ``aupstream`` (async) and ``upstream_factory``
(``upstream_factory("flaky", seed=3, token_interval=0.01)``, stopped at teardown). Use
``aupstream`` only with ``AsyncOpenAI``: a blocking client in the test's loop would wait on a
server that needs that same loop.

Command line: ``steadystream simulate [--port P] [--faults PROFILE] [--seed N]
[--token-interval DUR] [--first-token-latency DUR]`` serves in the foreground, prints the base
URL, and stops on Ctrl-C or SIGTERM.

Throughput, for sizing benchmarks: about 13,000 events/s to a raw httpx reader in the same
process (one HTTP chunk and one drain per event); the openai client parses about 3,500/s.

What it serves
==============

``POST /v1/responses``
    ``model`` and ``input`` (string or list of items) are required. With ``stream: true`` the
    answer is ``text/event-stream`` (chunked; keep-alive) carrying, each with a
    ``sequence_number`` from 0: ``response.created``, ``response.in_progress``,
    ``response.output_item.added``, ``response.content_part.added``,
    ``response.output_text.delta`` x N, ``response.output_text.done``,
    ``response.content_part.done``, ``response.output_item.done``, ``response.completed``
    (N + 8 events). Without ``stream`` it answers the finished response as JSON.
    ``background: true`` stores the response and keeps generating server-side whatever happens
    to the connection (non-streamed: answered at once with status ``queued``).
``GET /v1/responses/{id}``
    The stored response (a snapshot while it is still generating).
``GET /v1/responses/{id}?stream=true&starting_after=N``
    Background responses only (as in the real API): replays events N+1... and follows the
    generation live to its end. ``client.responses.retrieve(id, stream=True, starting_after=N)``.
``POST /v1/messages``
    Anthropic Messages (``anthropic.Anthropic(base_url=up.url)``: the SDK adds ``/v1``). The
    ``anthropic-version`` header, ``model``, ``max_tokens`` (the number of pieces, like
    ``max_output_tokens``) and ``messages`` are required. The answer to a single user message
    ``"hi"`` is ``expected_text("hi")``, as in the Responses API. Streamed: ``message_start``,
    ``content_block_start``, ``ping``, ``content_block_delta`` x N, ``content_block_stop``,
    ``message_delta``, ``message_stop``. A last, assistant, message is a prefill the answer
    continues (it must be a prefix of this conversation's answer and must not end in
    whitespace, else 400). Errors have Anthropic's shape; ``529`` is ``overloaded_error``;
    ``error_event`` sends an ``error`` event with ``overloaded_error``, ``failed`` one with
    ``api_error``, ``incomplete`` ends with ``stop_reason: max_tokens``. A request with
    ``thinking: {"type": "enabled"}`` gets a ``thinking`` block (``THINKING_TEXT``) at index 0
    before the text block at index 1. Every other fault
    works as for Responses.
``POST /v1/chat/completions``
    OpenAI Chat Completions (``OpenAI(base_url=up.base_url)``): ``model`` and ``messages`` are
    required, ``max_completion_tokens`` (or ``max_tokens``) is the number of pieces; the answer
    to a single user message ``"hi"`` is ``expected_text("hi")``. Streamed: ``data:``-only
    ``chat.completion.chunk`` frames (the assistant role, a chunk per delta, a closing chunk
    with ``finish_reason``, a usage chunk with ``stream_options: {"include_usage": true}``),
    then ``data: [DONE]``; without ``stream``, one ``chat.completion``. ``error_event`` and
    ``failed`` send an ``{"error": ...}`` chunk (``server_error``) and end without
    ``[DONE]``; ``incomplete`` ends with ``finish_reason: length``. Every other fault works as
    for Responses. ``Upstream(record_requests=True)`` keeps each request
    (``up.recorded_requests``) so a test can assert what went over the wire.
``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``
    Gemini (``genai.Client(api_key=..., http_options=types.HttpOptions(base_url=up.url))``).
    An API key and ``contents`` are required; ``generationConfig.maxOutputTokens`` is the
    number of pieces. The answer to ``contents="hi"`` is ``expected_text("hi")``. One
    ``data:`` chunk (a ``GenerateContentResponse``) per delta, then one with
    ``finishReason: STOP``; no ``event:`` lines, no SSE comments (a ``keepalive`` fault is an
    empty body). Errors have Google's shape (``{"error": {"code", "message", "status"}}``, a
    429 with a ``RetryInfo`` detail); ``error_event`` sends a ``503 UNAVAILABLE`` error chunk,
    ``failed`` a ``500 INTERNAL`` one, ``incomplete`` ends with ``finishReason: MAX_TOKENS``.
    ``thinkingConfig.includeThoughts`` adds a thought-summary chunk (``THOUGHT_TEXT``) first.
    ``:generateContent`` answers the whole response as JSON.
``POST /v1/responses/{id}/cancel``, ``DELETE /v1/responses/{id}``
    Cancel a background generation; forget a response.

Output is deterministic: the text depends only on ``(input, seed, tokens)``, and
:func:`expected_text` returns it, so tests compare byte-exactly. It mixes ASCII with CJK,
4-byte emoji, ZWJ sequences, flags, combining marks, Cyrillic and Arabic (the first six pieces
always cover every UTF-8 width). The number of pieces is ``max_output_tokens`` (default
32; the ``x-steadystream-tokens`` header overrides it), and ``x-steadystream-delta-size: K`` puts
K pieces in each delta (default 1). The text seed is the server's ``seed`` unless the request
sends ``x-steadystream-seed``. ``Idempotency-Key``: a create repeating a key seen before gets
the stored response (same id, same text) instead of a new one.

Faults
======

A request's fault comes from its ``x-steadystream-fault`` header if present (``none`` disables
the profile for that request), else from the server's profile. Faults apply to creates and to
streamed retrieves (resumes); a plain ``GET`` of a stored response is never faulted. On a
non-streamed create, ``drop_after`` (any N) aborts the connection instead of answering, after
the response was stored, so an ``Idempotency-Key`` retry recovers it. The header is a
comma-separated list of items; counts may be ranges ``A..B`` and durations ``lo..hi`` (drawn
from the seeded generator); durations need a unit (``20ms``, ``1.5s``). Event counts count SSE
events sent on this connection.

=======================  ==================================================================
``delay=DUR``            wait DUR before the first ``output_text.delta`` (lifecycle events
                         are sent at once: time to first *token*, not first byte)
``stall=DUR[@N]``        no bytes for DUR after N events (default: mid-stream)
``drop_after=N``         abort the TCP connection after N events (0: right after the headers;
                         4 or less: before the first content); the client sees an incomplete
                         chunked body. ``drop`` alone drops mid-stream.
``end_after=N``          end the body cleanly after N events: a cut that looks like a
                         normal end (no terminal event; only its absence tells)
``429`` / ``503`` / ...  answer that HTTP status with an OpenAI error body (same as
                         ``status=CODE``); ``retry_after=DUR`` adds ``Retry-After`` (whole
                         seconds, rounded up) and ``retry-after-ms``; a 429 defaults to 1s
``error_event[=N]``      an ``error`` event as event N (default mid-stream), then a clean end
``failed[=N]``           ``response.failed`` as event N
``incomplete[=N]``       ``response.incomplete`` (reason ``max_output_tokens``) as event N
``split=N|utf8|random``  write every frame in pieces: N bytes each, cut inside every
                         multi-byte UTF-8 character, or 1-3 seeded random cuts; each piece is
                         its own HTTP chunk, so the cut is visible to the client
``drip=DUR``             pause DUR before every write (a slow drip)
``keepalive[=N[@DUR]]``  send only N ``: keep-alive`` comments DUR apart (default 3 @ 100ms),
                         then end the body without a single event
``heartbeat=DUR``        during a ``delay`` or ``stall``, send ``: keep-alive`` every DUR
                         instead of silence (no content: an idle timer must not reset)
``none``                 no fault
=======================  ==================================================================

Example: ``x-steadystream-fault: stall=20ms@10, split=utf8``. A header that does not parse is
answered 400 naming the bad item. ``up.stats.faults`` counts faults as they take effect, by
kind: ``delay``, ``stall``, ``drop``, ``end``, ``status_<code>``, ``error_event``, ``failed``,
``incomplete``, ``split``, ``drip``, ``keepalive`` (a ``drop_after`` beyond the end of a short
stream never takes effect and is not counted). ``error_event``, ``failed`` and
``incomplete`` change the stored response itself (a resume sees the same ending); all other
faults affect only the one request. A background response keeps generating when its stream is
dropped, so ``retrieve(id, stream=True, starting_after=last_seen)`` returns the rest.

Profiles (:data:`PROFILES`): each request draws at most one fault at the profile's rates,
deterministically from ``(seed, request number)``. Resumes (streamed retrieves) are clean unless
the profile has a resume mix. Built in:

- ``none``; ``flaky``: 5% mid-stream drops, 2% 429, 1% 503;
- ``mixed``: about 25% of requests get a fault, spread over every class (429, 503, 500, drops
  before and after content, slow first token, stalls (silent or with heartbeats), random and
  UTF-8 splits, drip, keep-alive-only, ``error`` event, ``response.failed``,
  ``response.incomplete``); 3% of resumes drop or 404;
- one fault on every request: ``rate-limit`` (429, Retry-After 1s), ``outage`` (503),
  ``server-errors`` (500), ``drops``, ``early-drops``, ``slow-first-token`` (4s),
  ``stall`` (10s), ``broken-chunks``, ``utf8-splits``, ``slow-drip``, ``keepalive-only``,
  ``error-event``, ``failed``, ``incomplete``, ``resume-failure`` (drops, then every resume 404).

Durations in the single-fault profiles cross the default runtime policy (first token 3s, idle
8s). :data:`PROFILE_FOR_FAILURE_CLASS` maps failure classes to the profile that causes them.
Build your own with ``Profile("name", "what", mix=((0.1, "drop_after=5..9"),))``.
"""

from __future__ import annotations

from ._anthropic import THINKING_TEXT
from ._faults import (
    PROFILE_FOR_FAILURE_CLASS,
    PROFILES,
    FaultPlan,
    FaultSyntaxError,
    Profile,
    parse_fault,
    resolve_profile,
)
from ._gemini import THOUGHT_TEXT
from ._generation import StoredResponse
from ._server import (
    HEADER_DELTA_SIZE,
    HEADER_TOKENS,
    ROUTE_CANCEL,
    ROUTE_CHAT,
    ROUTE_CREATE,
    ROUTE_DELETE,
    ROUTE_GEMINI,
    ROUTE_GEMINI_STREAM,
    ROUTE_MESSAGES,
    ROUTE_OTHER,
    ROUTE_RESUME,
    ROUTE_RETRIEVE,
    RecordedRequest,
    Upstream,
    UpstreamStats,
)
from ._textgen import DEFAULT_TOKENS, deltas, expected_text, prompt_key

__all__ = [
    "DEFAULT_TOKENS",
    "HEADER_DELTA_SIZE",
    "HEADER_TOKENS",
    "PROFILES",
    "PROFILE_FOR_FAILURE_CLASS",
    "ROUTE_CANCEL",
    "ROUTE_CHAT",
    "ROUTE_CREATE",
    "ROUTE_DELETE",
    "ROUTE_GEMINI",
    "ROUTE_GEMINI_STREAM",
    "ROUTE_MESSAGES",
    "ROUTE_OTHER",
    "ROUTE_RESUME",
    "ROUTE_RETRIEVE",
    "THINKING_TEXT",
    "THOUGHT_TEXT",
    "FaultPlan",
    "FaultSyntaxError",
    "Profile",
    "RecordedRequest",
    "StoredResponse",
    "Upstream",
    "UpstreamStats",
    "deltas",
    "expected_text",
    "parse_fault",
    "prompt_key",
    "resolve_profile",
]
