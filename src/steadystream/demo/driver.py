"""The demo's driver: the upstream, the ``/metrics`` server and the concurrent consumer streams.

:func:`run_demo` (and :func:`run_demo_async`, in a running loop) starts the fault-injecting
upstream (:mod:`steadystream.simulate`) on loopback and serves the registry on ``/metrics``,
drives ``streams`` concurrent resilient streams through the upstream with the real
``openai.AsyncOpenAI`` client, keeps its own :class:`~.report.ClientTally` of what the consumers
saw, shows :class:`~.live.Progress`, and ends with :func:`~.report.build_report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from .. import conventions as c
from ..spec import Spec, default_spec
from .defaults import DEFAULT_DURATION, DEFAULT_FAULTS, DEFAULT_SERVICE, DEFAULT_STREAMS
from .live import Progress
from .report import ClientTally, DemoReport, build_report
from .scrape import scrape_config

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..simulate import Profile

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_FAULTS",
    "DEFAULT_SERVICE",
    "DEFAULT_STREAMS",
    "DEMO_ANTHROPIC_MODEL",
    "DEMO_MODEL",
    "PROVIDERS",
    "LoadControl",
    "Script",
    "StreamFactory",
    "resilient_stream",
    "run_demo",
    "run_demo_async",
    "slow_relay_stream",
]

#: The simulated model: a first token after 250 ms, then a delta every 20 ms (about 1 s per
#: stream), so 16 streams make a steady ~15 streams/s, well inside the default ingress limits.
DEMO_FIRST_TOKEN_LATENCY = 0.25
DEMO_TOKEN_INTERVAL = 0.02
DEMO_MODEL = "gpt-4.1-mini"
#: With ``provider="anthropic"``: the model name sent, and ``max_tokens`` (which the simulator
#: reads as the answer's length in pieces, like its default for the Responses API).
DEMO_ANTHROPIC_MODEL = "claude-sonnet-4-6"
DEMO_MAX_TOKENS = 32
#: The providers the demo drives (``demo --provider``): ``openai`` is the Responses API,
#: ``chat`` OpenAI Chat Completions (``chat_stream``), ``anthropic`` Messages.
PROVIDERS = ("openai", "chat", "anthropic")
DEMO_PROVIDER = "openai"

#: After the duration, streams still running get this long to finish before they are cancelled
#: (and counted as abandoned), so the defaults stay under a minute whatever the fault profile.
DRAIN_SECONDS = 8.0

_PROMPTS = (
    "Explain exponential backoff with jitter in three sentences.",
    "Write a haiku about a dropped TCP connection.",
    "Summarise the SRE Workbook chapter on burn-rate alerts.",
    "List five causes of a stalled token stream.",
    "Describe an idempotency key to a new engineer.",
    "Give a JSON object with the fields name, latency_ms and ok.",
)


#: ``stream_factory(monitor, client, prompt)``: one consumer stream of the demo.
StreamFactory = Callable[[Any, Any, str], AsyncIterable[Any]]


@dataclass(frozen=True)
class LoadControl:
    """What a :data:`Script` steers while the load runs: the simulated ``upstream`` (set
    ``upstream.profile`` to switch its faults), the live ``progress`` view, and what the
    report is built from (``registry``, ``tally``, and the run's ``seed``, ``streams`` and
    monotonic ``started``)."""

    upstream: Any
    progress: Progress
    registry: Any
    tally: ClientTally
    seed: int
    streams: int
    started: float


#: ``script(control)``: run beside the load instead of ``duration``; the load ends when it
#: returns (an exception it raises ends the load, then propagates).
Script = Callable[[LoadControl], Awaitable[None]]


@dataclass(frozen=True)
class ChatClient:
    """An OpenAI client the demo drives through Chat Completions (``demo --provider chat``)
    rather than the Responses API."""

    openai: Any

    async def close(self) -> None:
        await self.openai.close()


def resilient_stream(monitor: Any, client: Any, prompt: str) -> AsyncIterable[Any]:
    """The demo's default consumer stream: ``responses_stream`` with an OpenAI client,
    ``chat_stream`` with a :class:`ChatClient`, ``messages_stream`` with an Anthropic client
    (retries, budget, resume where the API allows it)."""
    stream: AsyncIterable[Any]
    if isinstance(client, ChatClient):
        from ..instrumentation.openai import chat_stream

        stream = chat_stream(
            monitor,
            client.openai,
            model=DEMO_MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream_options={"include_usage": True},
        )
        return stream
    if hasattr(client, "responses"):
        from ..instrumentation.openai import responses_stream

        stream = responses_stream(monitor, client, model=DEMO_MODEL, input=prompt)
        return stream
    from ..instrumentation.anthropic import messages_stream

    stream = messages_stream(
        monitor,
        client,
        model=DEMO_ANTHROPIC_MODEL,
        max_tokens=DEMO_MAX_TOKENS,
        messages=[{"role": "user", "content": prompt}],
    )
    return stream


#: Slow consumers (the slow-consumer failure class) read one event every 100 ms, like a client
#: on a congested link, through a relay buffer of 2 KiB: the spec's cap is sized for real
#: responses, and the simulated ones are a few KiB, so a smaller cap makes the policy visible.
SLOW_CONSUMER_DELAY = 0.1
SLOW_CONSUMER_BUFFER = 2048
#: Share of slow consumers when ``slow_consumers`` is not given: some with the realistic
#: ``mixed`` profile (every failure class, the client-side one included), none otherwise.
MIXED_SLOW_CONSUMERS = 0.03


def slow_relay_stream(monitor: Any, client: Any, prompt: str) -> AsyncIterable[Any]:
    """A slow consumer: the resilient stream relayed through a bounded buffer
    (``monitor.relay``, policy from ``spec.stream.flow_control.on_overflow``) and read at one
    event per :data:`SLOW_CONSUMER_DELAY` seconds."""

    async def consume() -> AsyncIterator[Any]:
        source = resilient_stream(monitor, client, prompt)
        async with monitor.relay(source, max_buffer=SLOW_CONSUMER_BUFFER) as relayed:
            async for event in relayed:
                yield event
                await asyncio.sleep(SLOW_CONSUMER_DELAY)

    return consume()


async def _one_stream(
    monitor: Any, client: Any, prompt: str, tally: ClientTally, factory: StreamFactory
) -> bool:
    """One stream through ``factory``, tallied; True when it ended well."""
    from ..instrumentation.errors import StreamError
    from ..instrumentation.providers import content_text, is_incomplete

    tally.started += 1
    last = None
    try:
        async for event in factory(monitor, client, prompt):
            last = event
            tally.content_bytes += len(content_text(event).encode("utf-8"))
    except asyncio.CancelledError:
        tally.abandoned += 1
        raise
    except StreamError as exc:
        tally.failed += 1
        tally.errors[exc.error_class] += 1
    except Exception as exc:
        # Anything else reaching the consumer is still a failed stream, and the report must
        # say what it was rather than hide it.
        tally.failed += 1
        tally.errors[type(exc).__name__] += 1
    else:
        # A response that ends with response.incomplete arrives without an exception (its
        # events are the answer), but the consumer got a truncated answer: a failed stream.
        if last is not None and is_incomplete(last):
            tally.failed += 1
            tally.errors[c.ERROR_CLASS_RESPONSE_INCOMPLETE] += 1
        else:
            tally.ok += 1
            return True
    return False


#: A worker's pause after a failed stream: 50 ms doubling to 1 s, with jitter. A caller backs
#: off as real clients do; without it, a stream rejected at ingress (which fails at once,
#: without awaiting anything) would have the worker spin and starve the event loop.
BACKOFF_BASE = 0.05
BACKOFF_MAX = 1.0


def backoff_delay(failures: int, jitter: float) -> float:
    """Seconds to wait after ``failures`` consecutive failed streams (``jitter`` in [0, 1))."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(failures - 1, 8)) * (0.5 + jitter / 2)


async def run_demo_async(
    *,
    duration: float = DEFAULT_DURATION,
    streams: int = DEFAULT_STREAMS,
    faults: str | Profile = DEFAULT_FAULTS,
    metrics_port: int | None = 0,
    spec: Spec | None = None,
    seed: int = 0,
    registry: CollectorRegistry | None = None,
    out: TextIO | None = None,
    live: bool | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
    drain: float = DRAIN_SECONDS,
    token_interval: float = DEMO_TOKEN_INTERVAL,
    first_token_latency: float = DEMO_FIRST_TOKEN_LATENCY,
    stream_factory: StreamFactory = resilient_stream,
    slow_consumers: float | None = None,
    provider: str = "openai",
    script: Script | None = None,
) -> DemoReport:
    """Run the demo in the running event loop; see :func:`run_demo` for the arguments.

    ``stop``: set it to end the run early (what Ctrl-C does with ``handle_signals``); ``drain``:
    seconds running streams get to finish after the duration before they are cancelled.
    ``script``: when given, the load runs until it returns instead of for ``duration``
    (the scripted incident of :mod:`.incident`).
    """
    from prometheus_client import CollectorRegistry as _Registry

    from ..instrumentation.monitor import StreamMonitor
    from ..simulate import Upstream, resolve_profile

    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if streams < 1:
        raise ValueError(f"streams must be at least 1, got {streams!r}")
    profile = resolve_profile(faults)  # an unknown name fails here, before anything starts
    if slow_consumers is None:
        slow_consumers = MIXED_SLOW_CONSUMERS if profile.name == DEFAULT_FAULTS else 0.0
    if not 0.0 <= slow_consumers <= 1.0:
        raise ValueError(f"slow_consumers must be a share from 0 to 1, got {slow_consumers!r}")
    spec = spec if spec is not None else default_spec(DEFAULT_SERVICE)
    registry = registry if registry is not None else _Registry()
    out = out if out is not None else sys.stdout
    live = out.isatty() if live is None else live
    stop = stop if stop is not None else asyncio.Event()
    interrupted = False
    tally = ClientTally()
    rng = random.Random(seed)
    monitor = StreamMonitor(spec, registry=registry)

    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        stop.set()

    if handle_signals:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        loop.add_signal_handler(signal.SIGTERM, on_sigint)

    metrics_url = None
    server = None
    injected: dict[str, int] = {}
    started = time.monotonic()
    try:
        if metrics_port is not None:
            server, address = _serve_metrics(registry, metrics_port)
            metrics_url = f"http://{address}/metrics"
            print(f"metrics: {metrics_url}", file=out)
            print("Prometheus scrape config (prometheus.yml):", file=out)
            print(scrape_config(address, spec), file=out, flush=True)
        async with Upstream(
            profile=profile,
            seed=seed,
            token_interval=token_interval,
            first_token_latency=first_token_latency,
        ) as upstream:
            length = "the scripted incident" if script is not None else f"{duration:g}s"
            print(
                f"upstream: {upstream.base_url} (faults {profile.name!r}, seed {seed}); "
                f"{streams} concurrent streams for {length}; Ctrl-C stops early",
                file=out,
                flush=True,
            )
            client = (
                _anthropic_client(upstream.url)
                if provider == "anthropic"
                else ChatClient(_openai_client(upstream.base_url))
                if provider == "chat"
                else _openai_client(upstream.base_url)
            )
            accepting = True

            jitter = random.Random(seed + 1)  # apart from rng, so prompts stay as seeded

            async def worker() -> None:
                failures = 0
                while accepting and not stop.is_set():
                    slow = slow_consumers > 0 and rng.random() < slow_consumers
                    factory = slow_relay_stream if slow else stream_factory
                    if await _one_stream(monitor, client, rng.choice(_PROMPTS), tally, factory):
                        failures = 0
                        continue
                    failures += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            stop.wait(), backoff_delay(failures, jitter.random())
                        )

            with Progress(
                spec, registry, tally, out, live=live, duration=None if script else duration
            ) as progress:
                tasks = [asyncio.create_task(worker()) for _ in range(streams)]
                script_task = None
                if script is not None:
                    control = LoadControl(
                        upstream, progress, registry, tally, seed, streams, progress.started
                    )
                    script_task = asyncio.create_task(script(control))
                    stopping = asyncio.create_task(stop.wait())
                    while not stop.is_set() and not script_task.done():
                        progress.tick()
                        await asyncio.wait({script_task, stopping}, timeout=0.5)
                    stopping.cancel()
                    # Stopped before the script's end (Ctrl-C): stop the streams now.
                    interrupted = interrupted or not script_task.done()
                else:
                    # --duration is seconds of load, counted from when the streams start.
                    deadline = progress.started + duration
                    while not stop.is_set() and time.monotonic() < deadline:
                        progress.tick()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(
                                stop.wait(), timeout=min(0.5, max(deadline - time.monotonic(), 0))
                            )
                accepting = False
                script_error: BaseException | None = None
                if script_task is not None:
                    if not script_task.done():  # stopped early (Ctrl-C)
                        script_task.cancel()
                    try:
                        await script_task
                    except asyncio.CancelledError:
                        pass
                    except Exception as exc:  # re-raised once the load has stopped
                        script_error = exc
                    if script_error is not None:
                        interrupted = True  # no drain: the run failed
                # On time: let running streams finish (bounded); on Ctrl-C: stop them now.
                grace = 0.0 if interrupted else drain
                if grace > 0 and tally.in_flight:
                    progress.finishing(grace)
                progress.tick(force=not interrupted)
                drain_end = time.monotonic() + grace
                pending = {t for t in tasks if not t.done()}
                while pending and time.monotonic() < drain_end and not interrupted:
                    _, pending = await asyncio.wait(
                        pending, timeout=min(0.5, max(drain_end - time.monotonic(), 0))
                    )
                    progress.tick()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await client.close()
                progress.tick()
                if script_error is not None:
                    raise script_error
            injected = _injected(upstream)
    finally:
        if handle_signals:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
        if server is not None:
            server.close()
    return build_report(
        spec=spec,
        registry=registry,
        tally=tally,
        faults=profile.name,
        seed=seed,
        streams=streams,
        duration_s=time.monotonic() - started,
        interrupted=interrupted,
        metrics_url=metrics_url,
        injected=injected,
    )


def run_demo(
    *,
    duration: float = DEFAULT_DURATION,
    streams: int = DEFAULT_STREAMS,
    faults: str | Profile = DEFAULT_FAULTS,
    metrics_port: int | None = 0,
    spec: Spec | None = None,
    seed: int = 0,
    registry: CollectorRegistry | None = None,
    out: TextIO | None = None,
    live: bool | None = None,
    handle_signals: bool = False,
    drain: float = DRAIN_SECONDS,
    token_interval: float = DEMO_TOKEN_INTERVAL,
    first_token_latency: float = DEMO_FIRST_TOKEN_LATENCY,
    stream_factory: StreamFactory = resilient_stream,
    slow_consumers: float | None = None,
    provider: str = "openai",
) -> DemoReport:
    """Run the demo and return its :class:`DemoReport`.

    Arguments (all keyword, all optional):

    - ``duration`` seconds of load (default 20) and ``streams`` concurrent streams (16);
    - ``faults``: a fault profile of :mod:`steadystream.simulate`, by name or as a
      ``Profile`` (default ``mixed``: every server-side failure class at realistic rates);
    - ``token_interval`` / ``first_token_latency``: the simulated model's pace (seconds);
    - ``stream_factory(monitor, client, prompt)``: the consumer stream (default
      :func:`resilient_stream`); tests plug in other consumers (a slow one, one expecting
      JSON) and keep the same tally and report;
    - ``slow_consumers``: share of streams read by :func:`slow_relay_stream` instead (default:
      3 % with the ``mixed`` profile, so every failure class shows, else none);
    - ``provider``: ``openai`` (the Responses API, ``responses_stream``), ``chat`` (Chat
      Completions, ``chat_stream``) or ``anthropic`` (Messages, ``messages_stream``); the
      simulator speaks all three with the same faults;
    - ``metrics_port``: serve ``/metrics`` on ``127.0.0.1:<port>`` (0 picks a free port; None
      serves nothing, for callers that expose ``registry`` themselves);
    - ``spec`` (default ``default_spec("chat-gateway")``), ``seed`` (reproducible faults and
      prompts), ``registry`` (a fresh ``CollectorRegistry`` by default);
    - ``out`` and ``live``: where progress goes and whether it is a live rich table (default:
      when ``out`` is a TTY); ``handle_signals``: first Ctrl-C stops the run early and the
      report is still returned, marked ``interrupted``.
    """
    return asyncio.run(
        run_demo_async(
            duration=duration,
            streams=streams,
            faults=faults,
            metrics_port=metrics_port,
            spec=spec,
            seed=seed,
            registry=registry,
            out=out,
            live=live,
            handle_signals=handle_signals,
            drain=drain,
            token_interval=token_interval,
            first_token_latency=first_token_latency,
            stream_factory=stream_factory,
            slow_consumers=slow_consumers,
            provider=provider,
        )
    )


def _openai_client(base_url: str) -> Any:
    try:
        from openai import AsyncOpenAI
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the demo needs the openai SDK: pip install 'steadystream[demo]'"
        ) from None
    # The upstream is the local simulator: no real key exists or is needed.
    return AsyncOpenAI(base_url=base_url, api_key="sk-steadystream-demo")


def _anthropic_client(url: str) -> Any:
    try:
        from anthropic import AsyncAnthropic
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "demo --provider anthropic needs the anthropic SDK: "
            "pip install 'steadystream[anthropic]'"
        ) from None
    return AsyncAnthropic(base_url=url, api_key="sk-ant-steadystream-demo")


def _injected(upstream: Any) -> dict[str, int]:
    stats = getattr(upstream, "stats", None)
    faults = getattr(stats, "faults", None)
    return {str(k): int(v) for k, v in dict(faults or {}).items()}


def _serve_metrics(registry: Any, port: int) -> tuple[Any, str]:
    from ..exporters import start_metrics_server

    server = start_metrics_server(port, "127.0.0.1", registry=registry)
    return server, f"127.0.0.1:{server.port}"
