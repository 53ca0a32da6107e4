"""The fault-injecting upstream: response store, generation tasks, request routing, delivery."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from .. import conventions as conv
from . import _protocol as proto
from ._faults import (
    KIND_DELAY,
    KIND_DRIP,
    KIND_DROP,
    KIND_ERROR_EVENT,
    KIND_FAILED,
    KIND_KEEPALIVE,
    KIND_SPLIT,
    KIND_STALL,
    FaultPlan,
    FaultSyntaxError,
    Profile,
    parse_fault,
    request_rng,
    resolve_profile,
)
from ._http import BadRequest, Request, ResponseWriter, read_request
from ._textgen import DEFAULT_TOKENS, MAX_TOKENS, deltas, prompt_key

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


@dataclass
class _Event:
    seq: int
    frame: bytes
    is_delta: bool


@dataclass
class StoredResponse:
    """A response as the simulator stores it (read it with ``Upstream.response(id)``)."""

    id: str
    status: str
    """``queued``, ``in_progress``, ``completed``, ``failed``, ``incomplete`` or ``cancelled``."""
    background: bool
    text: str
    """The output text generated so far."""
    events: int
    """SSE events generated so far (the next event's ``sequence_number``)."""


@dataclass
class _Generation:
    """One response being generated: its event log grows while delivery tasks read it."""

    meta: proto.ResponseMeta
    deltas: list[str]
    terminal: str | None
    terminal_at: int
    events: list[_Event] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    status: str = "queued"
    error: dict[str, Any] | None = None
    incomplete_reason: str | None = None
    done: bool = False
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    nbytes: int = 0
    idempotency_key: str | None = None
    store_bytes: list[int] = field(default_factory=lambda: [0])
    """Shared running total of the store's event bytes (a one-element list, mutated in place)."""

    @property
    def planned_events(self) -> int:
        if self.terminal is not None:
            return self.terminal_at + 1
        return proto.LIFECYCLE_PRELUDE + len(self.deltas) + proto.LIFECYCLE_TAIL

    def snapshot(self) -> dict[str, Any]:
        text = "".join(self.text_parts)
        if self.status == "completed":
            output = [proto.message_item(self.meta, "completed", text)]
        elif len(self.events) > 2:
            output = [
                proto.message_item(
                    self.meta,
                    "in_progress" if not self.done else "incomplete",
                    text if len(self.events) > 3 else None,
                )
            ]
        else:
            output = []
        return proto.response_object(
            self.meta,
            status=self.status,
            output=output,
            error=self.error,
            incomplete_reason=self.incomplete_reason,
            usage_=proto.usage(self.meta, len(self.text_parts)) if self.done else None,
        )

    def emit(self, event_type: str, data: dict[str, Any], *, is_delta: bool = False) -> None:
        seq = len(self.events)
        data = {"type": event_type, "sequence_number": seq, **data}
        frame = proto.sse_frame(event_type, data)
        self.events.append(_Event(seq, frame, is_delta))
        self.nbytes += len(frame)
        self.store_bytes[0] += len(frame)
        self.changed.set()
        self.changed = asyncio.Event()

    def finish(self) -> None:
        self.done = True
        self.changed.set()

    async def wait_event(self, index: int) -> _Event | None:
        """Event ``index``, waiting for it to be generated; ``None`` once there will be none."""
        while index >= len(self.events):
            if self.done:
                return None
            await self.changed.wait()
        return self.events[index]

    def view(self) -> StoredResponse:
        return StoredResponse(
            id=self.meta.id,
            status=self.status,
            background=self.meta.background,
            text="".join(self.text_parts),
            events=len(self.events),
        )


class _ClientError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


def _split_points(frame: bytes, mode: int | str, rng: random.Random) -> list[bytes]:
    """Cut one frame into the pieces written separately."""
    if isinstance(mode, int):
        return [frame[i : i + mode] for i in range(0, len(frame), mode)]
    if mode == "utf8":
        # Cut after the first byte of every multi-byte character (lead bytes are 0b11xxxxxx).
        cuts = [i + 1 for i, b in enumerate(frame) if b >= 0xC0]
    else:
        n = min(len(frame) - 1, rng.randint(1, 3))
        cuts = sorted(rng.sample(range(1, len(frame)), n)) if n > 0 else []
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(frame[start:cut])
        start = cut
    pieces.append(frame[start:])
    return [p for p in pieces if p]


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
    ) -> None:
        self._profile = resolve_profile(profile)
        self.seed = seed
        self._requested_port = port
        self.token_interval = token_interval
        self.first_token_latency = first_token_latency
        self.max_stored = max_stored
        self.max_stored_bytes = max_stored_bytes
        self._store_bytes = [0]
        self._stats = _Stats()
        self._counter = 0
        self._created = 0
        self._store: OrderedDict[str, _Generation] = OrderedDict()
        self._idempotency: dict[str, str] = {}
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn_tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._port: int | None = None

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
    def stats(self) -> UpstreamStats:
        """A snapshot of the counters; safe to read from any thread."""
        return self._stats.snapshot()

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
        tasks.update(g.task for g in self._store.values() if g.task and not g.task.done())
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
        if parts[:2] == ["v1", "responses"]:
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
        try:
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

    async def _status_fault(self, plan: FaultPlan, out: ResponseWriter) -> bool:
        if plan.status is None:
            return False
        headers = [("x-request-id", f"req_sim_{self._counter}")]
        if plan.retry_after is not None:
            # Retry-After carries whole seconds (rounded up so a client never retries early);
            # retry-after-ms is the precise value, which the openai client prefers.
            headers.append(("retry-after", str(max(1, int(-(-plan.retry_after // 1))))))
            headers.append(("retry-after-ms", str(int(plan.retry_after * 1000))))
        body = proto.dumps(proto.status_error_body(plan.status)).encode()
        self._stats.fault(f"status_{plan.status}")
        await out.send(plan.status, body, "application/json", headers)
        return True

    # -------------------------------------------------------------------------------- routes
    async def _create(self, request: Request, out: ResponseWriter) -> None:
        params = self._parse_create(request)
        plan = self._plan(request, resume=False)
        if await self._status_fault(plan, out):
            return
        key = request.headers.get(conv.HEADER_IDEMPOTENCY_KEY.lower())
        gen = None
        if key is not None and key in self._idempotency:
            gen = self._store.get(self._idempotency[key])
            if gen is not None:
                self._stats.bump("idempotent_replays")
        if gen is None:
            gen = self._new_generation(request, params, plan)
            if key is not None:
                self._idempotency[key] = gen.meta.id
                gen.idempotency_key = key
        if params["stream"]:
            await self._deliver(gen, -1, plan, out)
        elif plan.drop_after is not None:
            # The response was accepted (and stored under its idempotency key) but the answer
            # is lost: exactly the case an idempotent retry exists for.
            self._stats.fault(KIND_DROP)
            out.abort()
        elif params["background"]:
            await self._send_json(out, 200, gen.snapshot())
        else:
            # A plain create waits for the whole response, like the real API.
            while not gen.done:
                await gen.changed.wait()
            if plan.delay:
                self._stats.fault(KIND_DELAY)
                await asyncio.sleep(plan.delay)
            await self._send_json(out, 200, gen.snapshot())

    async def _retrieve(self, response_id: str, request: Request, out: ResponseWriter) -> None:
        stream = request.query.get("stream", "false").lower() == "true"
        plan = self._plan(request, resume=True) if stream else FaultPlan()
        if await self._status_fault(plan, out):
            return
        gen = self._lookup(response_id)
        if not stream:
            await self._send_json(out, 200, gen.snapshot())
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
        await self._deliver(gen, starting_after, plan, out)

    async def _cancel(self, response_id: str, out: ResponseWriter) -> None:
        gen = self._lookup(response_id)
        if not gen.meta.background:
            raise _ClientError(400, "Only background responses can be cancelled.")
        if not gen.done and gen.task is not None:
            gen.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gen.task
        await self._send_json(out, 200, gen.snapshot())

    def _forget(self, gen: _Generation) -> None:
        if gen.task is not None and not gen.task.done():
            gen.task.cancel()
        self._store_bytes[0] -= gen.nbytes
        key = gen.idempotency_key
        if key is not None and self._idempotency.get(key) == gen.meta.id:
            del self._idempotency[key]
        gen.nbytes = 0
        gen.store_bytes = [0]  # bytes it still generates no longer count against the store

    async def _delete(self, response_id: str, out: ResponseWriter) -> None:
        gen = self._lookup(response_id)
        del self._store[response_id]
        self._forget(gen)
        await self._send_json(out, 200, {"id": response_id, "object": "response", "deleted": True})

    def _lookup(self, response_id: str) -> _Generation:
        gen = self._store.get(response_id)
        if gen is None:
            raise _ClientError(404, f"No response found with id '{response_id}'.")
        return gen

    async def _send_json(self, out: ResponseWriter, status: int, obj: object) -> None:
        await out.send(status, proto.dumps(obj).encode(), "application/json", [])

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

    def _new_generation(
        self, request: Request, params: dict[str, Any], plan: FaultPlan
    ) -> _Generation:
        self._created += 1
        digest = hashlib.sha256(f"steadystream-response:{self.seed}:{self._created}".encode())
        ident = digest.hexdigest()
        text_deltas = deltas(
            params["input"], params["seed"], params["tokens"], params["delta_size"]
        )
        last = proto.LIFECYCLE_PRELUDE + len(text_deltas)
        if plan.terminal is None:
            terminal_at = last
        elif plan.terminal_at is None:
            terminal_at = proto.LIFECYCLE_PRELUDE + len(text_deltas) // 2
        else:
            terminal_at = min(plan.terminal_at, last)
        meta = proto.ResponseMeta(
            id=f"resp_{ident[:32]}",
            item_id=f"msg_{ident[32:64]}",
            model=params["model"],
            created_at=int(time.time()),
            background=params["background"],
            max_output_tokens=params["max_output_tokens"],
            input_tokens=max(1, len(prompt_key(params["input"]).encode()) // 4),
            metadata={str(k): str(v) for k, v in params["metadata"].items()},
        )
        gen = _Generation(
            meta=meta,
            deltas=text_deltas,
            terminal=plan.terminal,
            terminal_at=terminal_at,
            store_bytes=self._store_bytes,
        )
        # Oldest responses are forgotten first, so long benchmark runs stay within bounds.
        while len(self._store) >= self.max_stored or (
            self._store and self._store_bytes[0] > self.max_stored_bytes
        ):
            _, old = self._store.popitem(last=False)
            self._forget(old)
        self._store[meta.id] = gen
        self._stats.bump("responses_created")
        gen.task = asyncio.get_running_loop().create_task(self._generate(gen))
        return gen

    async def _generate(self, gen: _Generation) -> None:
        """Append the response's events to its log: the simulated model at work.

        Runs independently of any connection, so a background response keeps generating
        while its client is disconnected, and a resume finds the rest.
        """
        meta = gen.meta
        try:
            if self._stop_at(gen):
                return
            gen.status = "queued" if meta.background else "in_progress"
            gen.emit("response.created", {"response": gen.snapshot()})
            if self._stop_at(gen):
                return
            gen.status = "in_progress"
            gen.emit("response.in_progress", {"response": gen.snapshot()})
            if self._stop_at(gen):
                return
            ids = {"item_id": meta.item_id, "output_index": 0}
            gen.emit(
                "response.output_item.added",
                {"output_index": 0, "item": proto.message_item(meta, "in_progress", None)},
            )
            if self._stop_at(gen):
                return
            gen.emit(
                "response.content_part.added",
                {**ids, "content_index": 0, "part": proto.output_text("")},
            )
            if self.first_token_latency:
                await asyncio.sleep(self.first_token_latency)
            for i, delta in enumerate(gen.deltas):
                if self._stop_at(gen):
                    return
                if i and self.token_interval:
                    await asyncio.sleep(self.token_interval)
                elif i % 64 == 63:
                    await asyncio.sleep(0)  # let deliveries run during long generations
                gen.text_parts.append(delta)
                gen.emit(
                    "response.output_text.delta",
                    {**ids, "content_index": 0, "delta": delta, "logprobs": []},
                    is_delta=True,
                )
            if self._stop_at(gen):
                return
            text = "".join(gen.text_parts)
            gen.emit(
                "response.output_text.done",
                {**ids, "content_index": 0, "text": text, "logprobs": []},
            )
            gen.emit(
                "response.content_part.done",
                {**ids, "content_index": 0, "part": proto.output_text(text)},
            )
            gen.emit(
                "response.output_item.done",
                {"output_index": 0, "item": proto.message_item(meta, "completed", text)},
            )
            gen.status = "completed"
            gen.done = True  # so the snapshot carries usage
            gen.emit("response.completed", {"response": gen.snapshot()})
        except asyncio.CancelledError:
            gen.status = "cancelled"
            raise
        finally:
            gen.finish()

    def _stop_at(self, gen: _Generation) -> bool:
        """Emit the planned terminal fault event if its sequence number is next."""
        if gen.terminal is None or len(gen.events) != gen.terminal_at:
            return False
        gen.done = True
        self._stats.fault(gen.terminal)
        if gen.terminal == KIND_ERROR_EVENT:
            gen.status = "failed"
            gen.error = {"code": "server_error", "message": proto.SIMULATED_ERROR_MESSAGE}
            gen.emit(
                "error",
                {
                    "code": "server_error",
                    "message": proto.SIMULATED_ERROR_MESSAGE,
                    "param": None,
                },
            )
        elif gen.terminal == KIND_FAILED:
            gen.status = "failed"
            gen.error = {"code": "server_error", "message": proto.SIMULATED_ERROR_MESSAGE}
            gen.emit("response.failed", {"response": gen.snapshot()})
        else:
            gen.status = "incomplete"
            gen.incomplete_reason = "max_output_tokens"
            gen.emit("response.incomplete", {"response": gen.snapshot()})
        return True

    # ---------------------------------------------------------------------------- delivery
    @staticmethod
    async def _quiet(seconds: float, heartbeat: float, out: ResponseWriter) -> None:
        """No events for ``seconds``; only ``: keep-alive`` comments every ``heartbeat`` if set.

        Heartbeats keep proxies from closing the connection but carry no content, so a client's
        idle timer must not count them as progress.
        """
        if not heartbeat:
            await asyncio.sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(heartbeat, left))
            if end - loop.time() > 0:
                await out.chunk(proto.KEEPALIVE_FRAME)

    async def _deliver(
        self, gen: _Generation, starting_after: int, plan: FaultPlan, out: ResponseWriter
    ) -> None:
        """Stream ``gen``'s events after ``starting_after`` to one client, applying ``plan``.

        Replays what is stored, then follows the generation live until it ends.
        """
        await out.start_stream(200, [("x-request-id", f"req_sim_{self._counter}")])
        if plan.drop_after == 0:
            self._stats.fault(KIND_DROP)
            out.abort()
            return
        if plan.keepalive:
            self._stats.fault(KIND_KEEPALIVE)
            for _ in range(plan.keepalive):
                await out.chunk(proto.KEEPALIVE_FRAME)
                await asyncio.sleep(plan.keepalive_every)
            await out.end_stream()
            return
        remaining = max(0, gen.planned_events - (starting_after + 1))
        drop_after = remaining // 2 if plan.drop_after == -1 else plan.drop_after
        stall_at = remaining // 2 if plan.stall_at is None else plan.stall_at
        rng = random.Random(plan.seed)
        index, sent, delayed = starting_after + 1, 0, False
        split_counted = False
        while True:
            event = await gen.wait_event(index)
            if event is None:
                break
            if drop_after is not None and sent == drop_after:
                self._stats.fault(KIND_DROP)
                out.abort()
                return
            if plan.stall and sent == stall_at:
                self._stats.fault(KIND_STALL)
                await self._quiet(plan.stall, plan.heartbeat, out)
            if plan.delay and event.is_delta and not delayed:
                self._stats.fault(KIND_DELAY)
                await self._quiet(plan.delay, plan.heartbeat, out)
            if event.is_delta:
                delayed = True
            pieces = [event.frame]
            if plan.split is not None:
                pieces = _split_points(event.frame, plan.split, rng)
                if len(pieces) > 1 and not split_counted:
                    self._stats.fault(KIND_SPLIT)
                    split_counted = True
            if sent == 0 and plan.drip:
                self._stats.fault(KIND_DRIP)
            for piece in pieces:
                if plan.drip:
                    await asyncio.sleep(plan.drip)
                await out.chunk(piece)
            sent += 1
            index += 1
        await out.end_stream()


__all__ = [
    "HEADER_DELTA_SIZE",
    "HEADER_TOKENS",
    "ROUTE_CANCEL",
    "ROUTE_CREATE",
    "ROUTE_DELETE",
    "ROUTE_OTHER",
    "ROUTE_RESUME",
    "ROUTE_RETRIEVE",
    "StoredResponse",
    "Upstream",
    "UpstreamStats",
]
