"""The fault-injecting upstream: HTTP routing and the server's lifecycle.

:class:`Upstream` binds the loopback port, reads requests, routes them, picks each request's
fault plan and keeps the counters. What a response is made of, and the store that keeps it for
retrieves and resumes, live in :mod:`._generation`; writing it to a client with the plan's faults
applied lives in :mod:`._delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from .. import conventions as conv
from . import _anthropic as anthropic
from . import _chat as chat
from . import _gemini as gemini
from . import _protocol as proto
from ._delivery import deliver_status, deliver_stream, deliver_whole, send_json
from ._faults import (
    FaultPlan,
    FaultSyntaxError,
    Profile,
    parse_fault,
    request_rng,
    resolve_profile,
)
from ._generation import Generation, ResponseStore, StoredResponse, generate, new_generation
from ._http import BadRequest, Request, ResponseWriter, read_request
from ._textgen import DEFAULT_TOKENS, MAX_TOKENS, deltas

HOST: Final = "127.0.0.1"
HEADER_TOKENS: Final = "x-steadystream-tokens"
"""Request header: number of pieces to generate (overrides ``max_output_tokens``)."""
HEADER_DELTA_SIZE: Final = "x-steadystream-delta-size"
"""Request header: pieces per ``response.output_text.delta`` (default 1)."""

ROUTE_CREATE: Final = "POST /v1/responses"
ROUTE_RETRIEVE: Final = "GET /v1/responses/{id}"
ROUTE_RESUME: Final = "GET /v1/responses/{id}?stream=true"
"""Streamed retrieves (resumes) are counted apart from plain retrieves."""
ROUTE_CANCEL: Final = "POST /v1/responses/{id}/cancel"
ROUTE_DELETE: Final = "DELETE /v1/responses/{id}"
ROUTE_MESSAGES: Final = "POST /v1/messages"
"""Anthropic Messages (see :mod:`._anthropic`)."""
ROUTE_CHAT: Final = "POST /v1/chat/completions"
"""OpenAI Chat Completions (see :mod:`._chat`)."""
ROUTE_GEMINI_STREAM: Final = "POST /{version}/models/{model}:streamGenerateContent"
"""Gemini, streamed (``?alt=sse``; see :mod:`._gemini`)."""
ROUTE_GEMINI: Final = "POST /{version}/models/{model}:generateContent"
"""Gemini, the whole answer at once."""
ROUTE_OTHER: Final = "other"

_STOP_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class UpstreamStats:
    """A consistent snapshot of the simulator's counters (``Upstream.stats``).

    The mappings are :class:`collections.Counter` copies, so a missing key reads as 0.
    """

    requests: Mapping[tuple[str, int], int]
    """Requests by ``(route, HTTP status)``; routes are the ``ROUTE_*`` constants."""
    faults: Mapping[str, int]
    """Faults that took effect, by kind (``drop``, ``stall``, ``status_429``, ...)."""
    idempotent_replays: int
    """Creates answered from the store because their ``Idempotency-Key`` was seen before."""
    responses_created: int
    connections_open: int
    connections_total: int

    def requests_to(self, route: str, status: int | None = None) -> int:
        """Requests to ``route``, optionally only those answered with ``status``."""
        return sum(n for (r, s), n in self.requests.items() if r == route and status in (None, s))


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.faults: Counter[str] = Counter()
        self.idempotent_replays = 0
        self.responses_created = 0
        self.connections_open = 0
        self.connections_total = 0

    def bump(self, attr: str, delta: int = 1) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + delta)

    def request(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[(route, status)] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def snapshot(self) -> UpstreamStats:
        with self._lock:
            return UpstreamStats(
                requests=Counter(self.requests),
                faults=Counter(self.faults),
                idempotent_replays=self.idempotent_replays,
                responses_created=self.responses_created,
                connections_open=self.connections_open,
                connections_total=self.connections_total,
            )


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator received it (``Upstream(record_requests=True)``)."""

    route: str
    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-cased names."""
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class _ClientError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


def _int_arg(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return value


class Upstream:
    """A fault-injecting OpenAI Responses API on ``127.0.0.1``; see :mod:`steadystream.simulate`.

    Use it as a context manager, sync (the server runs on its own thread and event loop) or
    async (the server runs in the current loop)::

        with Upstream(profile="flaky", seed=7) as up:
            client = openai.OpenAI(base_url=up.base_url, api_key="test")

        async with Upstream() as up:
            client = openai.AsyncOpenAI(base_url=up.base_url, api_key="test")

    ``token_interval`` paces generation (seconds between deltas, default 0: as fast as the loop
    goes) and ``first_token_latency`` delays the first delta of every generation; both shape
    the simulated model, while faults shape individual requests. The store keeps at most
    ``max_stored`` responses and ``max_stored_bytes`` of events, forgetting the oldest first
    (a forgotten id answers 404, and its idempotency key is released).
    """

    def __init__(
        self,
        profile: str | Profile = "none",
        seed: int = 0,
        port: int = 0,
        *,
        token_interval: float = 0.0,
        first_token_latency: float = 0.0,
        max_stored: int = 10_000,
        max_stored_bytes: int = 256 * 1024 * 1024,
        record_requests: bool = False,
    ) -> None:
        if not isinstance(profile, str | Profile):
            raise ValueError(f"profile must be a profile name or a Profile, got {profile!r}")
        self._profile = resolve_profile(profile)
        self.seed = _int_arg("seed", seed)
        if not 0 <= _int_arg("port", port) <= 65535:
            raise ValueError(f"port must be 0-65535 (0: a free one), got {port!r}")
        for name, value in (
            ("token_interval", token_interval),
            ("first_token_latency", first_token_latency),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        for name, value in (("max_stored", max_stored), ("max_stored_bytes", max_stored_bytes)):
            if _int_arg(name, value) < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        if not isinstance(record_requests, bool):
            raise ValueError(f"record_requests must be True or False, got {record_requests!r}")
        self._requested_port = port
        self.token_interval = token_interval
        self.first_token_latency = first_token_latency
        self._store = ResponseStore(max_stored, max_stored_bytes)
        self._stats = _Stats()
        self._counter = 0
        self._created = 0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn_tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._port: int | None = None
        self._record = record_requests
        self._recorded: list[RecordedRequest] = []
        self._recorded_lock = threading.Lock()

    # ------------------------------------------------------------------------ public surface
    @property
    def port(self) -> int:
        """The bound TCP port (known once started)."""
        if self._port is None:
            raise RuntimeError("the upstream is not running; use it as a context manager")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the server root."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass it as ``openai.OpenAI(base_url=...)``."""
        return f"{self.url}/v1"

    @property
    def profile(self) -> Profile:
        """The server-wide fault profile; assign a name or a :class:`Profile` to change it."""
        return self._profile

    @profile.setter
    def profile(self, value: str | Profile) -> None:
        self._profile = resolve_profile(value)

    @property
    def max_stored(self) -> int:
        """The most responses the store keeps."""
        return self._store.max_stored

    @max_stored.setter
    def max_stored(self, value: int) -> None:
        self._store.max_stored = value

    @property
    def max_stored_bytes(self) -> int:
        """The event bytes beyond which the store forgets its oldest responses."""
        return self._store.max_stored_bytes

    @max_stored_bytes.setter
    def max_stored_bytes(self, value: int) -> None:
        self._store.max_stored_bytes = value

    @property
    def stats(self) -> UpstreamStats:
        """A snapshot of the counters; safe to read from any thread."""
        return self._stats.snapshot()

    @property
    def recorded_requests(self) -> list[RecordedRequest]:
        """Every request received, in order, when created with ``record_requests=True`` (so a
        test can assert what went over the wire); safe to read from any thread."""
        with self._recorded_lock:
            return list(self._recorded)

    def response(self, response_id: str) -> StoredResponse | None:
        """The stored response ``response_id`` (a snapshot), or ``None`` if unknown."""
        gen = self._store.get(response_id)
        return None if gen is None else gen.view()

    # --------------------------------------------------------------------- lifecycle: async
    async def start(self) -> None:
        """Bind and start serving in the running loop (the async context manager calls it)."""
        if self._server is not None:
            raise RuntimeError("the upstream is already running")
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._handle_connection, HOST, self._requested_port, limit=64 * 1024
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, abort every open connection and generation; bounded in time."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = set(self._conn_tasks)
        tasks.update(self._store.running_tasks())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), _STOP_TIMEOUT)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------------- lifecycle: sync
    def start_in_thread(self) -> None:
        """Start on a background thread with its own event loop (the sync ``with`` does this)."""
        if self._thread is not None:
            raise RuntimeError("the upstream is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="steadystream-upstream", daemon=True
        )
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(_STOP_TIMEOUT)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT)
            loop.close()
            raise
        self._thread = thread

    def stop_thread(self) -> None:
        """Stop the server started by :meth:`start_in_thread` and join its thread (bounded)."""
        thread, self._thread = self._thread, None
        loop = self._loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(_STOP_TIMEOUT * 2)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT)
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> Self:
        self.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    # -------------------------------------------------------------------------- connection
    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        self._writers.add(writer)
        self._stats.bump("connections_open")
        self._stats.bump("connections_total")
        try:
            while True:
                try:
                    request = await read_request(reader)
                except BadRequest as exc:
                    self._stats.request(ROUTE_OTHER, 400)
                    out = ResponseWriter(writer, keep_alive=False)
                    body = proto.error_body(str(exc), type_="invalid_request_error")
                    await out.send(400, proto.dumps(body).encode(), "application/json", [])
                    break
                if request is None:
                    break
                out = await self._dispatch(request, writer)
                if not out.keep_alive or writer.transport.is_closing():
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            # Only stop() cancels connections. Ending normally keeps asyncio's stream callback
            # from logging the cancellation as an unhandled error.
            pass
        finally:
            self._stats.bump("connections_open", -1)
            self._writers.discard(writer)
            self._conn_tasks.discard(task)
            if writer.transport.is_closing():
                writer.transport.abort()
            else:
                writer.close()

    async def _dispatch(self, request: Request, writer: asyncio.StreamWriter) -> ResponseWriter:
        parts = [p for p in request.path.split("/") if p]
        route = ROUTE_OTHER
        gemini_call = gemini.parse_path(parts) if request.method == "POST" else None
        if parts == ["v1", "messages"] and request.method == "POST":
            route = ROUTE_MESSAGES
        elif parts == ["v1", "chat", "completions"] and request.method == "POST":
            route = ROUTE_CHAT
        elif gemini_call is not None:
            stream = gemini_call[1] == gemini.METHOD_STREAM
            route = ROUTE_GEMINI_STREAM if stream else ROUTE_GEMINI
        elif parts[:2] == ["v1", "responses"]:
            if len(parts) == 2 and request.method == "POST":
                route = ROUTE_CREATE
            elif len(parts) == 3 and request.method == "GET":
                streamed = request.query.get("stream", "false").lower() == "true"
                route = ROUTE_RESUME if streamed else ROUTE_RETRIEVE
            elif len(parts) == 4 and parts[3] == "cancel" and request.method == "POST":
                route = ROUTE_CANCEL
            elif len(parts) == 3 and request.method == "DELETE":
                route = ROUTE_DELETE
        out = ResponseWriter(
            writer,
            keep_alive=request.keep_alive,
            on_status=lambda status: self._stats.request(route, status),
        )
        if self._record:
            recorded = RecordedRequest(
                route, request.method, request.path, dict(request.headers), request.body
            )
            with self._recorded_lock:
                self._recorded.append(recorded)
        try:
            if route == ROUTE_MESSAGES:
                await self._messages(request, out)
                return out
            if route == ROUTE_CHAT:
                await self._chat(request, out)
                return out
            if gemini_call is not None:
                await self._gemini(request, out, *gemini_call)
                return out
            if route == ROUTE_CREATE:
                await self._create(request, out)
            elif route in (ROUTE_RETRIEVE, ROUTE_RESUME):
                await self._retrieve(parts[2], request, out)
            elif route == ROUTE_CANCEL:
                await self._cancel(parts[2], out)
            elif route == ROUTE_DELETE:
                await self._delete(parts[2], out)
            elif parts[:2] == ["v1", "responses"]:
                raise _ClientError(405, f"{request.method} {request.path} is not supported.")
            else:
                raise _ClientError(404, f"Unknown path {request.path!r}.")
        except _ClientError as exc:
            body = proto.error_body(exc.message, type_="invalid_request_error", param=exc.param)
            await out.send(exc.status, proto.dumps(body).encode(), "application/json", [])
        return out

    # ------------------------------------------------------------------------------ faults
    def _plan(self, request: Request, *, resume: bool) -> FaultPlan:
        self._counter += 1
        counter = self._counter
        header = request.headers.get(conv.HEADER_FAULT.lower())
        if header is not None:
            rng = request_rng(self.seed, counter)
            try:
                return parse_fault(header, rng=rng, seed=rng.getrandbits(32))
            except FaultSyntaxError as exc:
                raise _ClientError(400, f"{conv.HEADER_FAULT}: {exc}") from None
        return self._profile.choose(self.seed, counter, resume=resume)[1]

    def _request_id(self) -> str:
        return f"req_sim_{self._counter}"

    # -------------------------------------------------------------------------------- routes
    async def _create(self, request: Request, out: ResponseWriter) -> None:
        params = self._parse_create(request)
        plan = self._plan(request, resume=False)
        if await deliver_status(
            plan, out, request_id=self._request_id(), on_fault=self._stats.fault
        ):
            return
        key = request.headers.get(conv.HEADER_IDEMPOTENCY_KEY.lower())
        gen = None
        if key is not None:
            gen = self._store.by_idempotency_key(key)
            if gen is not None:
                self._stats.bump("idempotent_replays")
        if gen is None:
            gen = self._new_generation(params, plan)
            if key is not None:
                self._store.remember_key(key, gen)
        if params["stream"]:
            await deliver_stream(
                gen, -1, plan, out, request_id=self._request_id(), on_fault=self._stats.fault
            )
        else:
            await deliver_whole(
                gen, plan, out, wait=not params["background"], on_fault=self._stats.fault
            )

    async def _messages(self, request: Request, out: ResponseWriter) -> None:
        """``POST /v1/messages``: Anthropic Messages, with the same faults as Responses."""
        try:
            body = json.loads(request.body or b"null")
            if not isinstance(body, dict):
                raise anthropic.PrefillError("the request body must be a JSON object")
            prompt, prefill, fields = anthropic.parse_messages_request(body, request.headers)
            tokens = self._int_param(
                request.headers.get(HEADER_TOKENS, body.get("max_tokens")), "max_tokens", 1
            )
            delta_size = self._int_param(
                request.headers.get(HEADER_DELTA_SIZE), HEADER_DELTA_SIZE, 1
            )
            seed = request.headers.get(conv.HEADER_SEED.lower())
            text_seed = self.seed if seed is None else int(seed)
            text_deltas = anthropic.continuation_deltas(
                prompt, prefill, text_seed, tokens, delta_size
            )
            plan = self._plan(request, resume=False)
        except (anthropic.PrefillError, _ClientError, ValueError, UnicodeDecodeError) as exc:
            message = exc.message if isinstance(exc, _ClientError) else str(exc)
            body_ = anthropic.error_body("invalid_request_error", message, self._request_id())
            await out.send(400, proto.dumps(body_).encode(), "application/json", [])
            return
        rid = self._request_id()
        if await deliver_status(
            plan,
            out,
            request_id=rid,
            on_fault=self._stats.fault,
            error_body=anthropic.status_error_body,
        ):
            return
        self._created += 1
        gen = anthropic.new_message(
            prompt,
            text_deltas,
            fields["model"],
            plan,
            seed=self.seed,
            number=self._created,
            thinking=fields["thinking"],
        )
        self._start(gen, anthropic.generate_message)
        if fields["stream"]:
            await deliver_stream(gen, -1, plan, out, request_id=rid, on_fault=self._stats.fault)
            return
        while not gen.done:
            await gen.changed.wait()
        if gen.error is not None:
            status = 529 if gen.error["code"] == "overloaded_error" else 500
            err = anthropic.error_body(gen.error["code"], gen.error["message"], rid)
            await out.send(status, proto.dumps(err).encode(), "application/json", [])
            return
        stop = "max_tokens" if gen.incomplete_reason else "end_turn"
        await send_json(out, 200, anthropic.message_object(gen, stop))

    async def _chat(self, request: Request, out: ResponseWriter) -> None:
        """``POST /v1/chat/completions``: Chat Completions, with the same faults as Responses."""
        try:
            body = json.loads(request.body or b"null")
            if not isinstance(body, dict):
                raise chat.RequestError("The request body must be a JSON object.")
            params = chat.parse_chat_request(body)
            if HEADER_TOKENS in request.headers:
                params.tokens = self._int_param(request.headers[HEADER_TOKENS], HEADER_TOKENS, 1)
            delta_size = self._int_param(
                request.headers.get(HEADER_DELTA_SIZE), HEADER_DELTA_SIZE, 1
            )
            seed = request.headers.get(conv.HEADER_SEED.lower())
            text_seed = self.seed if seed is None else int(seed)
            plan = self._plan(request, resume=False)
        except (chat.RequestError, ValueError, UnicodeDecodeError) as exc:
            param = exc.param if isinstance(exc, chat.RequestError) else None
            raise _ClientError(400, str(exc), param) from None
        rid = self._request_id()
        if await deliver_status(plan, out, request_id=rid, on_fault=self._stats.fault):
            return
        self._created += 1
        text_deltas = deltas(params.prompt, text_seed, params.tokens, delta_size)
        gen = chat.new_completion(params, text_deltas, plan, seed=self.seed, number=self._created)
        self._start(gen, chat.generate_chat)
        if params.stream:
            await deliver_stream(gen, -1, plan, out, request_id=rid, on_fault=self._stats.fault)
            return
        while not gen.done:
            await gen.changed.wait()
        if gen.error is not None:
            err = proto.error_body(gen.error["message"], type_="server_error")
            await out.send(500, proto.dumps(err).encode(), "application/json", [])
            return
        await send_json(out, 200, chat.completion_object(gen))

    async def _gemini(self, request: Request, out: ResponseWriter, model: str, method: str) -> None:
        """``POST /v1beta/models/{model}:streamGenerateContent`` (and ``:generateContent``):
        Gemini, with the same faults as Responses (see :mod:`._gemini`)."""
        try:
            body = json.loads(request.body or b"null")
            if not isinstance(body, dict):
                raise gemini.GeminiRequestError("the request body must be a JSON object")
            prompt, fields = gemini.parse_generate_request(body, request.headers, request.query)
            tokens = self._int_param(
                request.headers.get(HEADER_TOKENS, fields["tokens"]),
                "maxOutputTokens",
                DEFAULT_TOKENS,
            )
            delta_size = self._int_param(
                request.headers.get(HEADER_DELTA_SIZE), HEADER_DELTA_SIZE, 1
            )
            seed = request.headers.get(conv.HEADER_SEED.lower())
            text_seed = self.seed if seed is None else int(seed)
            plan = gemini.for_gemini(self._plan(request, resume=False))
        except (gemini.GeminiRequestError, _ClientError, ValueError, UnicodeDecodeError) as exc:
            status = (
                exc.status if isinstance(exc, gemini.GeminiRequestError | _ClientError) else 400
            )
            message = exc.message if isinstance(exc, _ClientError) else str(exc)
            await send_json(out, status, gemini.error_body(status, message))
            return
        rid = self._request_id()
        if await deliver_status(
            plan,
            out,
            request_id=rid,
            on_fault=self._stats.fault,
            error_body=lambda status: gemini.status_error_body(status, plan.retry_after),
        ):
            return
        self._created += 1
        gen = gemini.new_content(
            prompt,
            model,
            plan,
            seed=self.seed,
            text_seed=text_seed,
            tokens=tokens,
            delta_size=delta_size,
            number=self._created,
            thoughts=fields["thoughts"],
        )
        self._start(gen, gemini.generate_content)
        if method == gemini.METHOD_STREAM:
            await deliver_stream(gen, -1, plan, out, request_id=rid, on_fault=self._stats.fault)
            return
        while not gen.done:
            await gen.changed.wait()
        if gen.error is not None:
            status = gen.error["code"]
            await send_json(out, status, gemini.error_body(status, gen.error["message"]))
            return
        await send_json(out, 200, gemini.response_object(gen))

    def _start(self, gen: Any, generate: Callable[..., Awaitable[None]]) -> None:
        """Store a new generation and start its generator task (``generate``: the API's own,
        paced by the upstream's first-token latency and token interval)."""
        self._store.add(gen)
        self._stats.bump("responses_created")
        gen.task = asyncio.get_running_loop().create_task(
            generate(
                gen,
                first_token_latency=self.first_token_latency,
                token_interval=self.token_interval,
                on_fault=self._stats.fault,
            )
        )

    async def _retrieve(self, response_id: str, request: Request, out: ResponseWriter) -> None:
        stream = request.query.get("stream", "false").lower() == "true"
        plan = self._plan(request, resume=True) if stream else FaultPlan()
        if await deliver_status(
            plan, out, request_id=self._request_id(), on_fault=self._stats.fault
        ):
            return
        gen = self._lookup(response_id)
        if not stream:
            await send_json(out, 200, gen.snapshot())
            return
        if not gen.meta.background:
            raise _ClientError(
                400,
                "Streaming a response on retrieve is only supported for responses created "
                "with background=true.",
                "stream",
            )
        raw = request.query.get("starting_after", "-1")
        try:
            starting_after = int(raw)
        except ValueError:
            raise _ClientError(400, f"starting_after must be an integer, got {raw!r}.") from None
        if starting_after < -1:
            raise _ClientError(400, "starting_after must be >= -1.", "starting_after")
        await deliver_stream(
            gen,
            starting_after,
            plan,
            out,
            request_id=self._request_id(),
            on_fault=self._stats.fault,
        )

    async def _cancel(self, response_id: str, out: ResponseWriter) -> None:
        gen = self._lookup(response_id)
        if not gen.meta.background:
            raise _ClientError(400, "Only background responses can be cancelled.")
        if not gen.done and gen.task is not None:
            gen.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gen.task
        await send_json(out, 200, gen.snapshot())

    async def _delete(self, response_id: str, out: ResponseWriter) -> None:
        self._lookup(response_id)
        self._store.delete(response_id)
        await send_json(out, 200, {"id": response_id, "object": "response", "deleted": True})

    def _lookup(self, response_id: str) -> Generation:
        gen = self._store.get(response_id)
        if gen is None:
            raise _ClientError(404, f"No response found with id '{response_id}'.")
        return gen

    # ---------------------------------------------------------------------------- creating
    def _parse_create(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _ClientError(400, f"The request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _ClientError(400, "The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _ClientError(400, "Missing required parameter: 'model'.", "model")
        if "input" not in body or not isinstance(body["input"], str | list):
            raise _ClientError(400, "'input' must be a string or a list of items.", "input")
        stream = body.get("stream") or False
        background = body.get("background") or False
        if not isinstance(stream, bool) or not isinstance(background, bool):
            raise _ClientError(400, "'stream' and 'background' must be booleans.")
        if background and body.get("store") is False:
            raise _ClientError(400, "Background mode requires store=true.", "store")
        max_tokens = body.get("max_output_tokens")
        tokens = self._int_param(
            request.headers.get(HEADER_TOKENS, max_tokens), "max_output_tokens", DEFAULT_TOKENS
        )
        delta_size = self._int_param(request.headers.get(HEADER_DELTA_SIZE), HEADER_DELTA_SIZE, 1)
        seed = request.headers.get(conv.HEADER_SEED.lower())
        try:
            text_seed = self.seed if seed is None else int(seed)
        except ValueError:
            raise _ClientError(400, f"{conv.HEADER_SEED} must be an integer.") from None
        metadata = body.get("metadata") or {}
        return {
            "model": model,
            "input": body["input"],
            "stream": stream,
            "background": background,
            "max_output_tokens": max_tokens if isinstance(max_tokens, int) else None,
            "tokens": tokens,
            "delta_size": delta_size,
            "seed": text_seed,
            "metadata": metadata if isinstance(metadata, dict) else {},
        }

    @staticmethod
    def _int_param(value: object, name: str, default: int) -> int:
        if value is None:
            return default
        try:
            number = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise _ClientError(400, f"{name} must be an integer.", name) from None
        if isinstance(value, bool) or not 1 <= number <= MAX_TOKENS:
            raise _ClientError(400, f"{name} must be between 1 and {MAX_TOKENS}.", name)
        return number

    def _new_generation(self, params: dict[str, Any], plan: FaultPlan) -> Generation:
        self._created += 1
        gen = new_generation(params, plan, seed=self.seed, number=self._created)
        self._start(gen, generate)
        return gen


__all__ = [
    "HEADER_DELTA_SIZE",
    "HEADER_TOKENS",
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
    "RecordedRequest",
    "Upstream",
    "UpstreamStats",
]
